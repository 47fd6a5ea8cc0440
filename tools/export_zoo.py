#!/usr/bin/env python3
"""Export a zoo of real architectures to ONNX, with random weights and no downloads.

The zoo is how Swerve checks that it serves what people export: torchvision classification,
detection, segmentation, video and optical flow; Hugging Face transformers built from small configs
(encoders, decoders, encoder-decoders, vision and audio); plain PyTorch models that use the
operators exporters emit for RNNs, interpolation, top-k, cumulative sums, transposed convolutions and
scripted control flow. A subset is exported by both PyTorch exporters (TorchScript and dynamo).
Keras RNNs through tf2onnx are in `tools/export_keras_models.py` (`make test-tf`).

Writes a model store (default `.zoo/`, git-ignored) in the layout of `tools/export_real_models.py`:

    <out>/<model>_<exporter>/1/model.onnx
    <out>/manifest.json      per export: family, inputs (named dims), the two shapes to test, how to compare

Every export is checked with onnx's checker and run in onnxruntime. `Tests/zoo` serves the store
with swerve and compares every output with onnxruntime at both shapes.

    .venv-realmodels/bin/python tools/export_zoo.py [--out DIR] [--tier ci|full] [--only NAME ...]

`--tier ci` exports the representative third that `make test` runs (`make test-zoo` runs them all).
Weights are random but not degenerate: BatchNorm statistics are calibrated on random inputs and
detection heads are scaled so that scores differ (untrained heads give every box the same score).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
import types
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / ".zoo"
SEED = 20241202
VOCAB = 1000
OPSET = 17


# ---------------------------------------------------------------------------------------------
# torchvision without its C++ operators.
#
# PyPI's torchvision is built against CUDA torch; with the CPU torch its C++ extension does not load,
# and the detection models call torch.ops.torchvision.nms / roi_align. They are defined here (a
# greedy NMS, and torchvision's pure-PyTorch RoIAlign) so that the models run and trace;
# torchvision's own ONNX symbolics turn them into NonMaxSuppression and RoiAlign nodes.

def import_torchvision():
    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
    if not hasattr(torch.ops.torchvision, "nms"):
        lib = torch.library.Library("torchvision", "DEF")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
                   "SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor")
        lib.impl("nms", _nms, "CPU")
        lib.impl("roi_align", _roi_align, "CPU")
        import_torchvision.library = lib  # keep the registration alive
    import torchvision  # noqa: PLC0415
    import torchvision.models.detection  # noqa: F401, PLC0415
    import torchvision.models.optical_flow  # noqa: F401, PLC0415
    import torchvision.models.segmentation  # noqa: F401, PLC0415
    import torchvision.models.video  # noqa: F401, PLC0415
    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("torchvision") and hasattr(module, "_has_ops"):
            module._has_ops = _has_ops
    return torchvision


def _has_ops() -> bool:
    return True


def _nms(dets: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    order = torch.argsort(scores, descending=True, stable=True)
    x1, y1, x2, y2 = dets.unbind(1)
    area = (x2 - x1) * (y2 - y1)
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    keep = []
    for rank, i in enumerate(order.tolist()):
        if suppressed[rank]:
            continue
        keep.append(i)
        rest = order[rank + 1:]
        w = (torch.minimum(x2[i], x2[rest]) - torch.maximum(x1[i], x1[rest])).clamp(min=0)
        h = (torch.minimum(y2[i], y2[rest]) - torch.maximum(y1[i], y1[rest])).clamp(min=0)
        inter = w * h
        suppressed[rank + 1:] |= inter / (area[i] + area[rest] - inter) > iou_threshold
    return torch.tensor(keep, dtype=torch.int64)


def _roi_align(input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned):
    # torchvision's own pure-PyTorch RoIAlign (its torch.compile path), without the compile wrapper.
    module = sys.modules["torchvision.ops.roi_align"]
    reference = getattr(module._roi_align, "__wrapped__", module._roi_align)
    return reference(input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned)


# ---------------------------------------------------------------------------------------------
# The zoo.

@dataclass
class Built:
    module: nn.Module
    example: tuple
    inputs: list[dict]  # name, dtype, shape (ints and dim names), and "high" for token ids, "mask"
    outputs: list[str]
    shapes: list[dict]  # two assignments of the dim names, tested by Tests/zoo
    compare: str = "allclose"  # or "detection"


@dataclass
class Entry:
    name: str
    family: str
    build: Callable[[], Built]
    tier: str = "full"  # "ci": in the representative third `make test` runs
    exporters: tuple = ("torchscript",)
    note: str = ""


def calibrate_batch_norm(model: nn.Module, make_input: Callable[[], tuple]) -> None:
    """Random BatchNorm affine parameters and running statistics measured on random inputs (as
    after training): activations stay of order 1 instead of vanishing through deep networks."""
    generator = torch.Generator().manual_seed(SEED)
    norms = [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d))]
    for m in norms:
        with torch.no_grad():
            if m.weight is not None:
                m.weight.uniform_(0.5, 1.5, generator=generator)
                m.bias.normal_(0.0, 0.1, generator=generator)
        m.reset_running_stats()
        m.momentum = None
    if norms:
        model.train()
        with torch.no_grad():
            for _ in range(2):
                model(*make_input())
    model.eval()


def image_batch(size: int, channels: int = 3) -> Callable[[], Built]:
    return lambda: (torch.randn(4, channels, size, size),)


def classification(ctor: Callable[[], nn.Module], size: int) -> Callable[[], Built]:
    def build() -> Built:
        torch.manual_seed(SEED)
        model = ctor()
        calibrate_batch_norm(model, image_batch(size))
        return Built(model, (torch.randn(2, 3, size, size),),
                     [{"name": "input", "dtype": "float32", "shape": ["batch", 3, size, size]}], ["output"],
                     [{"batch": 1}, {"batch": 3}])
    return build


def tv(name: str, **kwargs) -> Callable[[], nn.Module]:
    return lambda: getattr(import_torchvision().models, name)(weights=None, **kwargs)


class DetectionOutputs(nn.Module):
    """A torchvision detector on one image [3, H, W] with its outputs as a flat tuple."""

    def __init__(self, model: nn.Module, keys: list[str]) -> None:
        super().__init__()
        self.model = model
        self.keys = keys

    def forward(self, image):
        result = self.model([image])[0]
        return tuple(result[k] for k in self.keys)


def damp_box_regression(model: nn.Module) -> None:
    """Untrained box regressors predict large deltas; through exp() and clipping to the image they
    make the boxes chaotic functions of the input (onnxruntime and PyTorch disagree by pixels).
    Trained ones predict small corrections: scale the regression layers down to that regime."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if any(k in name for k in ("bbox_pred", "bbox_reg", "regression_head", "kps_score")):
                p.mul_(0.1)


def spread_scores(model: nn.Module, heads: tuple[str, ...], size: int) -> float:
    """Untrained classification heads give scores that are all equal, all saturated or all below the
    detector's threshold; trained ones spread them. Scales the head's weights by the first factor
    that gives at least 3 detections of distinct scores, none saturated, on a random image.
    Returns the factor."""
    params = [p for name, p in model.named_parameters() if any(h in name for h in heads)]
    originals = [p.detach().clone() for p in params]
    image = torch.rand(3, size, size, generator=torch.Generator().manual_seed(SEED))
    for factor in (1.0, 0.5, 2.0, 0.25, 4.0, 0.1, 8.0, 0.05, 16.0, 0.02):
        with torch.no_grad():
            for p, original in zip(params, originals):
                p.copy_(original * factor)
            scores = model([image])[0]["scores"]
        if len(scores) >= 3 and float(scores.max()) < 0.995 and len(torch.unique(scores)) >= 0.9 * len(scores):
            return factor
    raise SystemExit(f"export_zoo: no scale of {heads} gives spread detection scores")


def detection(ctor: Callable[[], nn.Module], keys: list[str], heads: tuple[str, ...], size: int = 320) -> Callable[[], Built]:
    def build() -> Built:
        torch.manual_seed(SEED)
        model = ctor()
        # The backbone alone (a detector in training mode wants targets); head norms keep defaults.
        calibrate_batch_norm(model.backbone, lambda: (torch.rand(2, 3, size, size),))
        model.eval()
        damp_box_regression(model)
        spread_scores(model, heads, size)
        return Built(DetectionOutputs(model, keys).eval(), (torch.rand(3, size, size),),
                     [{"name": "image", "dtype": "float32", "shape": [3, "height", "width"], "uniform": True}],
                     keys, [{"height": size, "width": size}, {"height": size - 64, "width": size + 32}],
                     compare="detection")
    return build


def small_backbone_detector(kind: str) -> Callable[[], nn.Module]:
    """RetinaNet / FCOS / Mask R-CNN / Keypoint R-CNN on a ResNet-18 FPN (the architecture of the
    ResNet-50 models at a third of the weights); small images."""
    def ctor() -> nn.Module:
        torchvision = import_torchvision()
        det = torchvision.models.detection
        from torchvision.models.detection.backbone_utils import resnet_fpn_backbone  # noqa: PLC0415
        from torchvision.ops.feature_pyramid_network import LastLevelP6P7  # noqa: PLC0415

        common = {"min_size": 256, "max_size": 384}
        if kind in ("retinanet", "fcos"):
            backbone = resnet_fpn_backbone(backbone_name="resnet18", weights=None, trainable_layers=5,
                                           returned_layers=[2, 3, 4], extra_blocks=LastLevelP6P7(256, 256))
            cls = det.RetinaNet if kind == "retinanet" else det.FCOS
            return cls(backbone, num_classes=91, score_thresh=0.05, **common)
        backbone = resnet_fpn_backbone(backbone_name="resnet18", weights=None, trainable_layers=5)
        if kind == "maskrcnn":
            return det.MaskRCNN(backbone, num_classes=91, **common)
        return det.KeypointRCNN(backbone, num_classes=2, num_keypoints=17, **common)
    return ctor


class SegmentationOut(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)["out"]


def segmentation(ctor: Callable[[], nn.Module], size: int) -> Callable[[], Built]:
    def build() -> Built:
        torch.manual_seed(SEED)
        model = SegmentationOut(ctor())
        calibrate_batch_norm(model, image_batch(size))
        return Built(model, (torch.randn(2, 3, size, size),),
                     [{"name": "input", "dtype": "float32", "shape": ["batch", 3, size, size]}], ["out"],
                     [{"batch": 1}, {"batch": 2}])
    return build


def video_r3d() -> Built:
    torch.manual_seed(SEED)
    model = import_torchvision().models.video.r3d_18(weights=None)
    calibrate_batch_norm(model, lambda: (torch.randn(2, 3, 4, 56, 56),))
    return Built(model, (torch.randn(2, 3, 4, 56, 56),),
                 [{"name": "clip", "dtype": "float32", "shape": ["batch", 3, 4, 56, 56]}], ["logits"],
                 [{"batch": 1}, {"batch": 2}])


class FlowOut(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, a, b):
        return self.model(a, b, num_flow_updates=4)[-1]


def raft_small() -> Built:
    torch.manual_seed(SEED)
    model = FlowOut(import_torchvision().models.optical_flow.raft_small(weights=None))
    calibrate_batch_norm(model, lambda: (torch.randn(2, 3, 128, 128), torch.randn(2, 3, 128, 128)))
    spec = {"dtype": "float32", "shape": ["batch", 3, 128, 128]}
    return Built(model, (torch.randn(1, 3, 128, 128), torch.randn(1, 3, 128, 128)),
                 [{"name": "image1", **spec}, {"name": "image2", **spec}], ["flow"], [{"batch": 1}, {"batch": 2}])


# Hugging Face transformers from small configs: positional inputs, plain tensors out.

class HFOut(nn.Module):
    """A transformers model called with its inputs by name (`names`), the `fields` of its output as a tuple."""

    def __init__(self, model: nn.Module, fields: list[str], names: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.fields = fields
        self.names = names

    def forward(self, first, second=None):  # explicit (torch.export matches dynamic shapes to parameters)
        args = (first,) if second is None else (first, second)
        out = self.model(**dict(zip(self.names, args)), return_dict=True)
        return tuple(getattr(out, f) for f in self.fields)


def text_model(make: Callable[[], nn.Module], fields: list[str], mask: bool = True) -> Callable[[], Built]:
    def build() -> Built:
        torch.manual_seed(SEED)
        model = HFOut(make(), fields, ("input_ids", "attention_mask")).eval()
        ids = torch.randint(0, VOCAB, (2, 16))
        inputs = [{"name": "input_ids", "dtype": "int64", "shape": ["batch", "sequence"], "high": VOCAB}]
        example = (ids,)
        if mask:
            m = torch.ones(2, 16, dtype=torch.int64)
            m[1, 12:] = 0
            inputs.append({"name": "attention_mask", "dtype": "int64", "shape": ["batch", "sequence"], "mask": True})
            example = (ids, m)
        return Built(model, example, inputs, fields, [{"batch": 1, "sequence": 16}, {"batch": 3, "sequence": 29}])
    return build


def hf(class_name: str, config_name: str, **config) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        import_torchvision()  # transformers imports torchvision, which needs the operators defined first
        import transformers  # noqa: PLC0415

        cfg = getattr(transformers, config_name)(**config)
        return getattr(transformers, class_name)(cfg)
    return make


BERTISH = dict(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
               max_position_embeddings=128)


def vision_model(make: Callable[[], nn.Module], fields: list[str], size: int, channels: int = 3) -> Callable[[], Built]:
    def build() -> Built:
        torch.manual_seed(SEED)
        model = HFOut(make(), fields, ("pixel_values",)).eval()
        calibrate_batch_norm(model, image_batch(size, channels))
        return Built(model, (torch.randn(2, channels, size, size),),
                     [{"name": "pixel_values", "dtype": "float32", "shape": ["batch", channels, size, size]}], fields,
                     [{"batch": 1}, {"batch": 3}])
    return build


def wav2vec2() -> Built:
    torch.manual_seed(SEED)
    model = HFOut(hf("Wav2Vec2Model", "Wav2Vec2Config", hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=128, conv_dim=(32, 32, 32), conv_stride=(5, 2, 2), conv_kernel=(10, 3, 3),
                     num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, do_stable_layer_norm=False,
                     feat_extract_norm="group")(), ["last_hidden_state"], ("input_values",)).eval()
    return Built(model, (torch.randn(2, 1600),),
                 [{"name": "input_values", "dtype": "float32", "shape": ["batch", "samples"]}], ["last_hidden_state"],
                 [{"batch": 1, "samples": 1600}, {"batch": 2, "samples": 2400}])


# Plain PyTorch models for the operators exporters emit.

class Interpolations(nn.Module):
    """Resize in every form F.interpolate exports: nearest, bilinear (both align_corners), bicubic,
    by scale and to a size."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x):
        F = nn.functional
        y = self.conv(x)
        a = F.interpolate(y, scale_factor=2.0, mode="nearest")
        b = F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False)
        c = F.interpolate(y, size=(y.shape[2] * 2, y.shape[3] * 2), mode="bilinear", align_corners=True)
        d = F.interpolate(y, scale_factor=2.0, mode="bicubic", align_corners=False)
        return torch.cat([a, b, c, d], 1)


class TopKCumSum(nn.Module):
    """Scores through a linear layer, the top 5 per row with their indices, a running sum."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(32, 40)

    def forward(self, x):
        scores = self.linear(x)
        values, indices = torch.topk(scores, 5, dim=-1)
        return values, indices, torch.cumsum(scores, dim=-1)


class Decoder(nn.Module):
    """A U-Net-style decoder: transposed convolutions (stride 2, groups, output_padding), GroupNorm,
    PixelShuffle."""

    def __init__(self) -> None:
        super().__init__()
        self.up1 = nn.ConvTranspose2d(16, 16, 4, stride=2, padding=1)
        self.norm = nn.GroupNorm(4, 16)
        self.up2 = nn.ConvTranspose2d(16, 8, 3, stride=2, padding=1, output_padding=1, groups=2)
        self.conv = nn.Conv2d(8, 12, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x):
        y = torch.relu(self.norm(self.up1(x)))
        y = torch.relu(self.up2(y))
        return self.shuffle(self.conv(y))


class ScriptedLoop(nn.Module):
    """Python control flow kept by torch.jit.script: a loop over a data-dependent count that
    builds a list (Loop with SequenceInsert, ConcatFromSequence) and a branch (If)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(16, 16)

    def forward(self, x):
        parts: list[torch.Tensor] = []
        h = x
        for _ in range(int(x.shape[0]) + 1):
            h = torch.tanh(self.linear(h))
            parts.append(h)
        out = torch.cat(parts, 0)
        if bool(out.sum() > 0):
            out = out * 2
        else:
            out = out - 1
        return out


def plain(make: Callable[[], nn.Module], inputs: list[dict], outputs: list[str], example: tuple,
          shapes: list[dict], script: bool = False) -> Callable[[], Built]:
    def build() -> Built:
        torch.manual_seed(SEED)
        model = make().eval()
        if script:
            model = torch.jit.script(model)
        return Built(model, example, inputs, outputs, shapes)
    return build


def recurrent(kind: str) -> Callable[[], Built]:
    class Wrapped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            if kind == "rnn_relu":
                self.rnn = nn.RNN(24, 32, num_layers=2, nonlinearity="relu", batch_first=True)
            else:
                self.rnn = nn.RNN(24, 32, bidirectional=True)

        def forward(self, x):
            out, h = self.rnn(x)
            return out, h

    seq_first = kind != "rnn_relu"
    shape = ["sequence", "batch", 24] if seq_first else ["batch", "sequence", 24]
    example = (torch.randn(10, 2, 24),) if seq_first else (torch.randn(2, 10, 24),)
    return plain(Wrapped, [{"name": "input", "dtype": "float32", "shape": shape}], ["output", "h_n"], example,
                 [{"batch": 1, "sequence": 7}, {"batch": 3, "sequence": 19}])


def _vit_small():
    return import_torchvision().models.VisionTransformer(image_size=64, patch_size=16, num_layers=2, num_heads=4,
                                                         hidden_dim=64, mlp_dim=128, num_classes=10)


def _swin_small(v2: bool):
    models = import_torchvision().models
    from torchvision.models import swin_transformer as st  # noqa: PLC0415

    block = st.SwinTransformerBlockV2 if v2 else st.SwinTransformerBlock
    merging = st.PatchMergingV2 if v2 else st.PatchMerging
    return models.SwinTransformer(patch_size=[4, 4], embed_dim=32, depths=[2, 2], num_heads=[2, 4], window_size=[4, 4],
                                  num_classes=10, block=block, downsample_layer=merging)


def _maxvit_small():
    return import_torchvision().models.MaxVit(input_size=(64, 64), stem_channels=16, partition_size=4,
                                              block_channels=[32, 64], block_layers=[1, 1], head_dim=16,
                                              stochastic_depth_prob=0.0, num_classes=10)


def _deeplab_mobilenet():
    return import_torchvision().models.segmentation.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None)


def _lraspp():
    return import_torchvision().models.segmentation.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None)


def _fcn():
    return import_torchvision().models.segmentation.fcn_resnet50(weights=None, weights_backbone=None)


def _ssdlite():
    return import_torchvision().models.detection.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None)


def _frcnn_mobilenet():
    return import_torchvision().models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(weights=None,
                                                                                       weights_backbone=None)


BOXES = ["boxes", "scores", "labels"]
SEQ_SHAPES = [{"batch": 1, "sequence": 16}, {"batch": 3, "sequence": 29}]

ZOO: list[Entry] = [
    # torchvision classification
    Entry("resnet50", "classification", classification(tv("resnet50"), 128)),
    Entry("mobilenet_v3_small", "classification", classification(tv("mobilenet_v3_small"), 128), "ci",
          ("torchscript", "dynamo")),
    Entry("mobilenet_v3_large", "classification", classification(tv("mobilenet_v3_large"), 128)),
    Entry("efficientnet_b0", "classification", classification(tv("efficientnet_b0"), 128), "ci"),
    Entry("efficientnet_v2_s", "classification", classification(tv("efficientnet_v2_s"), 128)),
    Entry("regnet_y_400mf", "classification", classification(tv("regnet_y_400mf"), 128)),
    Entry("densenet121", "classification", classification(tv("densenet121"), 96)),
    Entry("squeezenet1_1", "classification", classification(tv("squeezenet1_1"), 128), "ci"),
    Entry("shufflenet_v2_x0_5", "classification", classification(tv("shufflenet_v2_x0_5"), 128), "ci"),
    Entry("mnasnet0_5", "classification", classification(tv("mnasnet0_5"), 128)),
    Entry("googlenet", "classification", classification(tv("googlenet", aux_logits=False, init_weights=True), 128)),
    Entry("inception_v3", "classification", classification(tv("inception_v3", aux_logits=False, init_weights=True), 299)),
    Entry("convnext_tiny", "classification", classification(tv("convnext_tiny"), 96)),
    Entry("vit_small", "classification", classification(_vit_small, 64), "ci", ("torchscript", "dynamo")),
    Entry("swin_small", "classification", classification(lambda: _swin_small(False), 64), "ci"),
    Entry("swin_v2_small", "classification", classification(lambda: _swin_small(True), 64)),
    Entry("maxvit_small", "classification", classification(_maxvit_small, 64)),
    # torchvision detection (one image [3, H, W]; boxes compared as sets, stable under ties)
    Entry("ssdlite320_mobilenet_v3", "detection",
          detection(_ssdlite, BOXES, ("head.classification_head",)), "ci"),
    Entry("fasterrcnn_mobilenet_v3_320", "detection",
          detection(_frcnn_mobilenet, BOXES, ("roi_heads.box_predictor.cls_score",)), "ci"),
    Entry("retinanet_resnet18_fpn", "detection",
          detection(small_backbone_detector("retinanet"), BOXES, ("head.classification_head.cls_logits",), 256)),
    Entry("fcos_resnet18_fpn", "detection",
          detection(small_backbone_detector("fcos"), BOXES, ("head.classification_head.cls_logits",), 256)),
    Entry("maskrcnn_resnet18_fpn", "detection",
          detection(small_backbone_detector("maskrcnn"), BOXES + ["masks"], ("roi_heads.box_predictor.cls_score",), 256)),
    Entry("keypointrcnn_resnet18_fpn", "detection",
          detection(small_backbone_detector("keypointrcnn"), BOXES + ["keypoints"],
                    ("roi_heads.box_predictor.cls_score",), 256)),
    # torchvision segmentation, video, optical flow
    Entry("lraspp_mobilenet_v3", "segmentation", segmentation(_lraspp, 128), "ci"),
    Entry("deeplabv3_mobilenet_v3", "segmentation", segmentation(_deeplab_mobilenet, 128)),
    Entry("fcn_resnet50", "segmentation", segmentation(_fcn, 96)),
    Entry("r3d_18", "video", video_r3d),
    Entry("raft_small", "optical flow", raft_small),
    # Hugging Face transformers (small configs)
    Entry("roberta", "transformers", text_model(hf("RobertaModel", "RobertaConfig", **BERTISH),
                                                ["last_hidden_state", "pooler_output"]), "ci", ("torchscript", "dynamo")),
    Entry("distilbert", "transformers", text_model(hf("DistilBertModel", "DistilBertConfig", vocab_size=VOCAB, dim=64,
                                                      n_layers=2, n_heads=2, hidden_dim=128, max_position_embeddings=128),
                                                   ["last_hidden_state"]), "ci"),
    Entry("gpt2", "transformers", text_model(hf("GPT2Model", "GPT2Config", vocab_size=VOCAB, n_embd=64, n_layer=2,
                                                n_head=2, n_positions=128, bos_token_id=0, eos_token_id=0),
                                             ["last_hidden_state"]), "ci"),
    Entry("bart", "transformers", text_model(hf("BartModel", "BartConfig", vocab_size=VOCAB, d_model=64, encoder_layers=1,
                                                decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
                                                encoder_ffn_dim=128, decoder_ffn_dim=128, max_position_embeddings=128),
                                             ["last_hidden_state"])),
    Entry("t5_encoder", "transformers", text_model(hf("T5EncoderModel", "T5Config", vocab_size=VOCAB, d_model=64, d_kv=32,
                                                      d_ff=128, num_layers=2, num_heads=2), ["last_hidden_state"])),
    Entry("albert", "transformers", text_model(hf("AlbertModel", "AlbertConfig", embedding_size=32, **BERTISH),
                                               ["last_hidden_state"])),
    Entry("electra", "transformers", text_model(hf("ElectraModel", "ElectraConfig", embedding_size=32, **BERTISH),
                                                ["last_hidden_state"])),
    Entry("deberta_v2", "transformers", text_model(hf("DebertaV2Model", "DebertaV2Config", **BERTISH),
                                                   ["last_hidden_state"])),
    Entry("llama", "transformers", text_model(hf("LlamaModel", "LlamaConfig", vocab_size=VOCAB, hidden_size=64,
                                                 intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                                                 num_key_value_heads=2, max_position_embeddings=128),
                                              ["last_hidden_state"])),
    Entry("vit_hf", "transformers", vision_model(hf("ViTModel", "ViTConfig", hidden_size=64, num_hidden_layers=2,
                                                    num_attention_heads=2, intermediate_size=128, image_size=64,
                                                    patch_size=16), ["last_hidden_state"], 64)),
    Entry("swin_hf", "transformers", vision_model(hf("SwinModel", "SwinConfig", image_size=64, patch_size=4, embed_dim=32,
                                                     depths=[2, 2], num_heads=[2, 4], window_size=4),
                                                  ["last_hidden_state"], 64)),
    Entry("segformer", "segmentation", vision_model(hf("SegformerForSemanticSegmentation", "SegformerConfig",
                                                       num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1],
                                                       hidden_sizes=[16, 32], num_attention_heads=[1, 2],
                                                       decoder_hidden_size=32, num_labels=5), ["logits"], 64)),
    Entry("wav2vec2", "transformers", wav2vec2),
    # plain PyTorch
    Entry("interpolate", "pytorch ops", plain(Interpolations, [{"name": "input", "dtype": "float32",
                                                                "shape": ["batch", 3, "height", "width"]}],
                                              ["output"], (torch.randn(2, 3, 16, 20),),
                                              [{"batch": 1, "height": 16, "width": 20}, {"batch": 2, "height": 11, "width": 7}]),
          "ci", ("torchscript", "dynamo")),
    Entry("topk_cumsum", "pytorch ops", plain(TopKCumSum, [{"name": "input", "dtype": "float32", "shape": ["batch", 32]}],
                                              ["values", "indices", "cumsum"], (torch.randn(2, 32),),
                                              [{"batch": 1}, {"batch": 5}]), "ci"),
    Entry("decoder_convtranspose", "pytorch ops", plain(Decoder, [{"name": "input", "dtype": "float32",
                                                                   "shape": ["batch", 16, 12, 12]}],
                                                        ["output"], (torch.randn(2, 16, 12, 12),),
                                                        [{"batch": 1}, {"batch": 3}]), "ci", ("torchscript", "dynamo")),
    Entry("scripted_loop", "pytorch ops", plain(ScriptedLoop, [{"name": "input", "dtype": "float32",
                                                                "shape": ["batch", 16]}],
                                                ["output"], (torch.randn(2, 16),), [{"batch": 1}, {"batch": 4}],
                                                script=True), "ci"),
    Entry("rnn_tanh_bidirectional", "recurrent", recurrent("rnn_tanh"), "ci"),
    Entry("rnn_relu_stacked", "recurrent", recurrent("rnn_relu")),
]
ENTRIES = {e.name: e for e in ZOO}


# ---------------------------------------------------------------------------------------------
# Export and checks.

def dynamic_axes(inputs: list[dict]) -> dict:
    return {s["name"]: {i: d for i, d in enumerate(s["shape"]) if isinstance(d, str)} for s in inputs}


def export(built: Built, exporter: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (path, path.with_name(path.name + ".data")):
        stale.unlink(missing_ok=True)
    names = [s["name"] for s in built.inputs]
    dims = dynamic_axes(built.inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            torch.onnx.export(built.module, built.example, str(path), dynamo=False, opset_version=OPSET,
                              input_names=names, output_names=built.outputs, dynamic_axes=dims)
        else:
            named: dict = {}
            shapes = tuple({axis: named.setdefault(label, torch.export.Dim(label, min=2, max=4096))
                            for axis, label in dims[n].items()} for n in names)
            program = torch.onnx.export(built.module, built.example, dynamo=True, input_names=names,
                                        output_names=built.outputs, dynamic_shapes=shapes, verbose=False)
            program.save(str(path))


def feeds_for(inputs: list[dict], dims: dict, seed: int) -> dict:
    """Random inputs of the manifest's specs with `dims` assigned; Tests/zoo makes the same ones."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in inputs:
        shape = [dims[d] if isinstance(d, str) else d for d in spec["shape"]]
        if spec.get("mask"):
            mask = np.ones(shape, dtype=np.int64)
            for row in range(1, shape[0]):
                mask[row, max(1, shape[1] - 3 * row):] = 0
            feeds[spec["name"]] = mask
        elif spec["dtype"] == "int64":
            feeds[spec["name"]] = rng.integers(0, spec["high"], size=shape, dtype=np.int64)
        elif spec.get("uniform"):
            feeds[spec["name"]] = rng.random(shape, dtype=np.float32)
        else:
            feeds[spec["name"]] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def inventory(path: Path) -> dict:
    proto = onnx.load(str(path), load_external_data=False)
    ops: collections.Counter = collections.Counter()

    def walk(graph) -> None:
        for n in graph.node:
            ops[n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"] += 1
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g)
                for g in a.graphs:
                    walk(g)

    walk(proto.graph)
    return {"opsets": {(o.domain or "ai.onnx"): o.version for o in proto.opset_import},
            "ops": dict(sorted(ops.items())), "nodes": len(proto.graph.node)}


def check(path: Path, built: Built) -> None:
    """onnx's checker, then onnxruntime at both test shapes (an export onnxruntime cannot run at
    them is not a test of swerve)."""
    onnx.checker.check_model(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for i, dims in enumerate(built.shapes):
        session.run(None, feeds_for(built.inputs, dims, seed=i))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="model store to write (default .zoo)")
    parser.add_argument("--tier", choices=("ci", "full"), default="full",
                        help="ci: the representative third `make test` runs; full: every model")
    parser.add_argument("--only", nargs="*", choices=sorted(ENTRIES), help="export only these models")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    # --only adds to the store's manifest; a whole tier replaces it (no stale entries).
    manifest = json.loads(manifest_path.read_text()) if args.only and manifest_path.exists() else {}
    chosen = [ENTRIES[n] for n in args.only] if args.only else [e for e in ZOO if args.tier == "full" or e.tier == "ci"]
    failures = []
    total = time.monotonic()
    for entry in chosen:
        try:
            built = entry.build()
        except Exception as error:  # noqa: BLE001 - reported below
            failures.append(f"{entry.name}: building the model: {type(error).__name__}: {str(error)[:300]}")
            print(failures[-1], flush=True)
            continue
        for exporter in entry.exporters:
            name = f"{entry.name}_{exporter}"
            path = out / name / "1" / "model.onnx"
            start = time.monotonic()
            try:
                export(built, exporter, path)
                check(path, built)
            except Exception as error:  # noqa: BLE001 - reported, and the export is left out of the manifest
                failures.append(f"{name}: {type(error).__name__}: {str(error).splitlines()[0][:300] if str(error) else ''}")
                manifest.pop(name, None)
                print(f"{name}: EXPORT FAILED: {failures[-1]}", flush=True)
                continue
            inv = inventory(path)
            manifest[name] = {"model": entry.name, "family": entry.family, "exporter": exporter, "tier": entry.tier,
                              "path": f"{name}/1/model.onnx", "inputs": built.inputs, "outputs": built.outputs,
                              "shapes": built.shapes, "compare": built.compare, **inv,
                              "file_bytes": sum(p.stat().st_size for p in path.parent.iterdir())}
            print(f"{name}: {time.monotonic() - start:.1f} s, {inv['nodes']} nodes, "
                  + ", ".join(f"{k} {v}" for k, v in inv["ops"].items()), flush=True)
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    print(f"export_zoo: {len(manifest)} exports in {out} ({time.monotonic() - total:.0f} s)")
    if failures:
        raise SystemExit("export_zoo: these exports failed (fix the model definition):\n  " + "\n  ".join(failures))


if __name__ == "__main__":
    main()
