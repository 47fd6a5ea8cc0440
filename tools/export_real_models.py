#!/usr/bin/env python3
"""Export real PyTorch architectures to ONNX, with random weights and no downloads.

Writes a model store (default `.realmodels/`, git-ignored) that `swerve serve` can load as is:

    <out>/<model>_<exporter>/1/model.onnx   (+ model.onnx.data for the dynamo exporter when large)
    <out>/manifest.json                     how to feed each model (used by Tests/realmodels, bench/)

Models (fixed seeds, `weights=None`, no hub access):

- `mlp`                  784-512-512-10 MLP, input `input` FP32 [batch, 784]
- `resnet18`             torchvision resnet18, input `input` FP32 [batch, 3, 224, 224]
- `mobilenet_v2`         torchvision mobilenet_v2, input `input` FP32 [batch, 3, 224, 224]
- `bert_tiny`            HF `BertModel` from a `BertConfig` (2 layers, hidden 128, 2 heads),
                         inputs `input_ids`, `attention_mask` INT64 [batch, sequence]
- `transformer_encoder`  `nn.TransformerEncoder` (2 layers, d_model 64, 4 heads, batch_first),
                         input `src` FP32 [batch, sequence, 64]
- `lstm`                 `nn.LSTM` (input 32, hidden 48, 2 layers, bidirectional, batch_first),
                         input `input` FP32 [batch, sequence, 32]; outputs the sequence, h_n, c_n
- `gru`                  `nn.GRU` (input 32, hidden 48, 1 layer, batch_first), same input;
                         outputs the sequence and h_n

- `small_cnn`            two Conv+BatchNorm+ReLU blocks, global average pool, Linear: input `input`
                         FP32 [batch, 3, 32, 32]

each exported twice: `torchscript` (`torch.onnx.export(..., dynamo=False)`) and `dynamo`
(`dynamo=True`, the default exporter), with a dynamic batch dimension (and sequence for the
transformers). Every export is checked with onnx's checker and run once in onnxruntime.

Precision variants (`PRECISIONS`): `small_cnn` and `transformer_encoder` also as float16
(`model.half()`), bfloat16 and float64, and `resnet18` as float16 (`<model>_<fp16|bf16|fp64>_<exporter>`,
manifest `precision`). Each variant has an fp32 twin with the same (rounded) weights in
`<name>/reference/model.onnx`, outside the versions the server loads: onnxruntime's CPU provider has no
bfloat16 Conv/MatMul and no float64 Conv, so the tests compare those with the twin.

    .venv-realmodels/bin/python tools/export_real_models.py [--out DIR] [--only NAME ...]

The environment is `tools/requirements-realmodels.txt` (`make realmodels` creates it). Prints the
operator inventory of every export (op type: count) and the time each took.
"""

from __future__ import annotations

import argparse
import collections
import copy
import json
import sys
import time
import types
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / ".realmodels"
SEED = 20240601
BERT_VOCAB = 1000


def import_torchvision():
    """torchvision from PyPI is built against CUDA torch; its meta registrations reference the
    `torchvision::nms` operator that the CPU torch lacks. The models need none of them."""
    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
    import torchvision  # noqa: PLC0415

    return torchvision


# ---------------------------------------------------------------------------------------------
# Model definitions: each returns (module, example inputs, manifest input specs, dynamic dims).

def make_mlp():
    torch.manual_seed(SEED)
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
    example = (torch.randn(2, 784),)
    inputs = [{"name": "input", "dtype": "float32", "shape": ["batch", 784]}]
    return model, example, inputs, ["output"], {"input": {0: "batch"}}


def calibrate_batch_norm(model: nn.Module, example_shape: tuple) -> None:
    """Gives BatchNormalization what training would: random affine parameters and running statistics
    measured on random inputs, so activations stay of order 1 through the network (with the
    initial mean 0 / variance 1 statistics, mobilenet_v2's outputs shrink to ~1e-9 and any
    comparison passes)."""
    generator = torch.Generator().manual_seed(SEED)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5, generator=generator)
                m.bias.normal_(0.0, 0.1, generator=generator)
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(*example_shape, generator=generator))
    model.eval()


def make_vision(name: str):
    def build():
        tv = import_torchvision()
        torch.manual_seed(SEED)
        model = getattr(tv.models, name)(weights=None)
        calibrate_batch_norm(model, (8, 3, 224, 224))
        example = (torch.randn(2, 3, 224, 224),)
        inputs = [{"name": "input", "dtype": "float32", "shape": ["batch", 3, 224, 224]}]
        return model, example, inputs, ["output"], {"input": {0: "batch"}}

    return build


class BertWrapper(nn.Module):
    """BertModel with positional int64 inputs and a tuple of plain tensors out."""

    def __init__(self) -> None:
        super().__init__()
        from transformers import BertConfig, BertModel  # noqa: PLC0415

        config = BertConfig(vocab_size=BERT_VOCAB, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=512, max_position_embeddings=512, hidden_act="gelu")
        self.bert = BertModel(config)

    def forward(self, input_ids, attention_mask):
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask, return_dict=True)
        return out.last_hidden_state, out.pooler_output


def make_bert():
    torch.manual_seed(SEED)
    model = BertWrapper()
    ids = torch.randint(0, BERT_VOCAB, (2, 16), dtype=torch.int64)
    mask = torch.ones(2, 16, dtype=torch.int64)
    mask[1, 12:] = 0
    inputs = [
        {"name": "input_ids", "dtype": "int64", "shape": ["batch", "sequence"], "high": BERT_VOCAB},
        {"name": "attention_mask", "dtype": "int64", "shape": ["batch", "sequence"], "mask": True},
    ]
    dims = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}}
    return model, (ids, mask), inputs, ["last_hidden_state", "pooler_output"], dims


def make_transformer_encoder():
    torch.manual_seed(SEED)
    layer = nn.TransformerEncoderLayer(d_model=64, nhead=4, dim_feedforward=128, dropout=0.1, batch_first=True)
    model = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
    example = (torch.randn(2, 16, 64),)
    inputs = [{"name": "src", "dtype": "float32", "shape": ["batch", "sequence", 64]}]
    return model, example, inputs, ["output"], {"src": {0: "batch", 1: "sequence"}}


class RecurrentOutputs(nn.Module):
    """An nn.LSTM / nn.GRU whose outputs are a flat tuple (the sequence, then the final states)."""

    def __init__(self, rnn: nn.Module) -> None:
        super().__init__()
        self.rnn = rnn

    def forward(self, input):
        out, state = self.rnn(input)
        return (out, *state) if isinstance(state, tuple) else (out, state)


def make_recurrent(kind: str):
    def build():
        torch.manual_seed(SEED)
        if kind == "lstm":
            rnn = nn.LSTM(32, 48, num_layers=2, bidirectional=True, batch_first=True)
            outputs = ["output", "h_n", "c_n"]
        else:
            rnn = nn.GRU(32, 48, batch_first=True)
            outputs = ["output", "h_n"]
        example = (torch.randn(2, 10, 32),)
        inputs = [{"name": "input", "dtype": "float32", "shape": ["batch", "sequence", 32]}]
        return RecurrentOutputs(rnn), example, inputs, outputs, {"input": {0: "batch", 1: "sequence"}}
    return build


class SmallCNN(nn.Module):
    """Conv-BN-ReLU twice (the second with stride 2), global average pool, Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(32, 10)

    def forward(self, input):
        return self.head(self.features(input))


def make_small_cnn():
    torch.manual_seed(SEED)
    model = SmallCNN()
    calibrate_batch_norm(model, (8, 3, 32, 32))
    example = (torch.randn(2, 3, 32, 32),)
    inputs = [{"name": "input", "dtype": "float32", "shape": ["batch", 3, 32, 32]}]
    return model, example, inputs, ["output"], {"input": {0: "batch"}}


# Exports whose dimensions the exporter fixes: the TorchScript tracer bakes the example's sequence
# length into nn.MultiheadAttention's reshapes (onnxruntime then fails on any other length), so
# that export is made with a fixed sequence of 16 and only a dynamic batch.
FIXED_DIMS = {("transformer_encoder", "torchscript"): {"sequence": 16}}

MODELS = {
    "mlp": make_mlp,
    "resnet18": make_vision("resnet18"),
    "mobilenet_v2": make_vision("mobilenet_v2"),
    "bert_tiny": make_bert,
    "transformer_encoder": make_transformer_encoder,
    "lstm": make_recurrent("lstm"),
    "gru": make_recurrent("gru"),
    "small_cnn": make_small_cnn,
}
EXPORTERS = ("torchscript", "dynamo")

# Precision variants: the module converted with `.to(dtype)` (`.half()` for float16), exported as
# `<model>_<precision>_<exporter>`.
PRECISIONS = {"fp16": (torch.float16, "float16"), "bf16": (torch.bfloat16, "bfloat16"), "fp64": (torch.float64, "float64")}
VARIANTS = {"small_cnn": ("fp16", "bf16", "fp64"), "transformer_encoder": ("fp16", "bf16", "fp64"), "resnet18": ("fp16",)}


# ---------------------------------------------------------------------------------------------
# Export and checks.

def export(model: nn.Module, example, input_names, output_names, dims, exporter: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (path, path.with_name(path.name + ".data")):
        stale.unlink(missing_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            torch.onnx.export(model, example, str(path), dynamo=False, input_names=input_names,
                              output_names=output_names, dynamic_axes=dims)
        else:
            # Positional (a tuple in input order), named Dims: the ONNX file then names them too.
            named = {}
            shapes = tuple({axis: named.setdefault(label, torch.export.Dim(label, min=1, max=4096))
                            for axis, label in dims[name].items()} for name in input_names)
            program = torch.onnx.export(model, example, dynamo=True, input_names=input_names,
                                        output_names=output_names, dynamic_shapes=shapes, verbose=False)
            program.save(str(path))


def inventory(path: Path) -> dict:
    proto = onnx.load(str(path), load_external_data=False)
    ops = collections.Counter(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"
                              for n in proto.graph.node)
    opsets = {(o.domain or "ai.onnx"): o.version for o in proto.opset_import}
    return {"ir_version": proto.ir_version, "opsets": opsets, "ops": dict(sorted(ops.items())),
            "nodes": len(proto.graph.node)}


def random_feeds(inputs: list[dict], batch: int, sequence: int, rng: np.random.Generator) -> dict:
    """Random inputs of the manifest's specs ("batch"/"sequence" dims set), as the tests make them."""
    feeds = {}
    for spec in inputs:
        shape = [batch if d == "batch" else sequence if d == "sequence" else d for d in spec["shape"]]
        if spec.get("mask"):
            mask = np.ones(shape, dtype=np.int64)
            for row in range(1, shape[0]):  # later rows: padding at the end
                mask[row, max(1, shape[1] - row * 3):] = 0
            feeds[spec["name"]] = mask
        elif spec["dtype"] == "int64":
            feeds[spec["name"]] = rng.integers(0, spec["high"], size=shape, dtype=np.int64)
        else:
            feeds[spec["name"]] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def convert(module: nn.Module, precision: str) -> tuple[nn.Module, nn.Module]:
    """The module in `precision`, and its fp32 twin holding the same (rounded) weights."""
    dtype = PRECISIONS[precision][0]
    converted = copy.deepcopy(module).half() if precision == "fp16" else copy.deepcopy(module).to(dtype)
    twin = copy.deepcopy(converted).float()
    return converted.eval(), twin.eval()


def check(path: Path, inputs: list[dict], module: nn.Module) -> tuple[float, float]:
    """onnx checker, then onnxruntime at batch 3 against torch; returns the largest difference and
    the largest output magnitude."""
    onnx.checker.check_model(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = random_feeds(inputs, 3, 12, np.random.default_rng(1))
    got = session.run(None, feeds)
    with torch.no_grad():
        want = module(*[torch.from_numpy(feeds[s["name"]]) for s in inputs])
    want = want if isinstance(want, tuple) else (want,)
    diff = max(float(np.max(np.abs(g - w.numpy()))) for g, w in zip(got, want))
    scale = max(float(np.max(np.abs(g))) for g in got)
    if diff > 1e-3 * max(1.0, scale):
        raise SystemExit(f"export_real_models: {path}: onnxruntime and torch differ by {diff}")
    return diff, scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="model store to write (default .realmodels)")
    parser.add_argument("--only", nargs="*", choices=sorted(MODELS), help="export only these models")
    parser.add_argument("--exporter", nargs="*", choices=EXPORTERS, default=list(EXPORTERS))
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    total = time.monotonic()
    for base in args.only or MODELS:
        module, example, inputs, output_names, dims = MODELS[base]()
        module.eval()
        for precision in (None, *VARIANTS.get(base, ())):
            if precision is None:
                variant, twin, example_in, typed = module, None, example, inputs
            else:
                variant, twin = convert(module, precision)
                example_in = tuple(x.to(PRECISIONS[precision][0]) if x.is_floating_point() else x for x in example)
                typed = [{**s, "dtype": PRECISIONS[precision][1]} if s["dtype"] == "float32" else s for s in inputs]
            for exporter in args.exporter:
                name = f"{base}_{exporter}" if precision is None else f"{base}_{precision}_{exporter}"
                path = out / name / "1" / "model.onnx"
                fixed = FIXED_DIMS.get((base, exporter), {})
                specs = [{**s, "shape": [fixed.get(d, d) for d in s["shape"]]} for s in typed]
                free = {n: {a: d for a, d in axes.items() if d not in fixed} for n, axes in dims.items()}
                start = time.monotonic()
                export(variant, example_in, [s["name"] for s in inputs], output_names, free, exporter, path)
                seconds = time.monotonic() - start
                entry = {"model": base, "exporter": exporter, "path": f"{name}/1/model.onnx"}
                if twin is None:
                    diff, scale = check(path, specs, module)
                else:
                    # The fp32 twin is what onnxruntime can always run; the variant gets onnx's checker.
                    onnx.checker.check_model(str(path))
                    reference = out / name / "reference" / "model.onnx"
                    export(twin, example, [s["name"] for s in inputs], output_names, free, exporter, reference)
                    twin_specs = [{**s, "shape": [fixed.get(d, d) for d in s["shape"]]} for s in inputs]
                    diff, scale = check(reference, twin_specs, twin)
                    entry.update(precision=precision, reference=f"{name}/reference/model.onnx")
                inv = inventory(path)
                manifest[name] = {**entry, "inputs": specs, "outputs": output_names, **inv,
                                  "file_bytes": sum(p.stat().st_size for p in path.parent.iterdir())}
                ops = ", ".join(f"{k} {v}" for k, v in inv["ops"].items())
                print(f"{name}: {seconds:.1f} s, opsets {inv['opsets']}, {inv['nodes']} nodes, "
                      f"output max |y| {scale:.3g}, ort-vs-torch max diff {diff:.2g}\n    {ops}", flush=True)
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    print(f"export_real_models: wrote {len(manifest)} models to {out} in {time.monotonic() - total:.1f} s")


if __name__ == "__main__":
    main()
