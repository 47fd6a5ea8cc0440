"""Exports small quantized models for the quantization tests (store .realmodels-quant, git-ignored).

A torchvision resnet18 (random weights, batch normalization calibrated; 64x64 inputs to keep CI
short) and a tiny BERT (2 layers, hidden 128, generated weights) are exported in float32 with the
TorchScript exporter, then quantized by onnxruntime's own quantizer, as a user would:

  <model>_dynamic    quantize_dynamic (int8 weights, uint8 activations quantized at run time:
                     DynamicQuantizeLinear + MatMulInteger / ConvInteger)
  <model>_qdq        quantize_static, QDQ format, per-channel int8 weights, uint8 activations,
                     calibrated (MinMax) on generated inputs
  <model>_qoperator  quantize_static, QOperator format (QLinearConv, QLinearMatMul and the
                     com.microsoft QLinearAdd, QLinearGlobalAveragePool, ...), per tensor

plus the float32 exports (`<model>_fp32`) they came from. `manifest.json` says how to feed each,
which quantization it holds, and its operators. Run by `make test-quantized` (.venv-realmodels).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic,
                                      quantize_static)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from export_real_models import (BERT_VOCAB, SEED, BertWrapper, calibrate_batch_norm,  # noqa: E402
                                import_torchvision, random_feeds)

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / ".realmodels-quant"
IMAGE = 64


def make_resnet():
    tv = import_torchvision()
    torch.manual_seed(SEED)
    model = tv.models.resnet18(weights=None)
    calibrate_batch_norm(model, (8, 3, IMAGE, IMAGE))
    inputs = [{"name": "input", "dtype": "float32", "shape": ["batch", 3, IMAGE, IMAGE]}]
    return model.eval(), (torch.randn(2, 3, IMAGE, IMAGE),), inputs, ["output"], {"input": {0: "batch"}}


def make_bert():
    torch.manual_seed(SEED)
    model = BertWrapper().eval()
    ids = torch.randint(0, BERT_VOCAB, (2, 16), dtype=torch.int64)
    mask = torch.ones(2, 16, dtype=torch.int64)
    inputs = [
        {"name": "input_ids", "dtype": "int64", "shape": ["batch", "sequence"], "high": BERT_VOCAB},
        {"name": "attention_mask", "dtype": "int64", "shape": ["batch", "sequence"], "mask": True},
    ]
    dims = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}}
    return model, (ids, mask), inputs, ["last_hidden_state", "pooler_output"], dims


MODELS = {"resnet18": make_resnet, "bert_tiny": make_bert}


class Calibration(CalibrationDataReader):
    """Generated calibration inputs: 8 batches of 2 (the same generator the tests feed from)."""

    def __init__(self, inputs: list[dict]) -> None:
        rng = np.random.default_rng(SEED)
        self.batches = iter([random_feeds(inputs, 2, 16, rng) for _ in range(8)])

    def get_next(self):
        return next(self.batches, None)


def inventory(path: Path) -> dict:
    proto = onnx.load(str(path))
    ops = collections.Counter(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"
                              for n in proto.graph.node)
    return dict(sorted(ops.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="model store to write (default .realmodels-quant)")
    args = parser.parse_args()
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    manifest = {}
    for base, build in MODELS.items():
        module, example, inputs, output_names, dims = build()
        fp32 = out / f"{base}_fp32" / "1" / "model.onnx"
        fp32.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, example, str(fp32), dynamo=False, opset_version=17,
                              input_names=[s["name"] for s in inputs], output_names=output_names, dynamic_axes=dims)
        variants = {"fp32": fp32}
        for form in ("dynamic", "qdq", "qoperator"):
            path = out / f"{base}_{form}" / "1" / "model.onnx"
            path.parent.mkdir(parents=True, exist_ok=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if form == "dynamic":
                    quantize_dynamic(str(fp32), str(path), weight_type=QuantType.QInt8)
                else:
                    # Softmax stays float in the QOperator form: its com.microsoft QLinearSoftmax (a
                    # fixed-point table of onnxruntime's own) is not implemented by Swerve.
                    softmax = [n.name for n in onnx.load(str(fp32)).graph.node if n.op_type == "Softmax"]
                    quantize_static(str(fp32), str(path), Calibration(inputs),
                                    quant_format=QuantFormat.QDQ if form == "qdq" else QuantFormat.QOperator,
                                    per_channel=form == "qdq", activation_type=QuantType.QUInt8,
                                    weight_type=QuantType.QInt8,
                                    nodes_to_exclude=softmax if form == "qoperator" else None)
            variants[form] = path
        for form, path in variants.items():
            name = f"{base}_{form}"
            manifest[name] = {"model": base, "form": form, "path": str(path.relative_to(out)), "inputs": inputs,
                              "ops": inventory(path)}
            print(f"{name}: {sum(manifest[name]['ops'].values())} nodes, {path.stat().st_size // 1024} KiB")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    main()
