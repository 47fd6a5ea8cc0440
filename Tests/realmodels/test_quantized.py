"""Quantized models served by Swerve over HTTP, against onnxruntime running the same int8 file.

The store (`.realmodels-quant`, or $SWERVE_QUANT_MODELS) is made by tools/export_quantized_models.py:
torchvision resnet18 (64x64) and a tiny BERT, each in float32 and quantized by onnxruntime's own
quantizer three ways: `quantize_dynamic` (DynamicQuantizeLinear + MatMulInteger / ConvInteger),
`quantize_static` in QDQ form (per-channel weights; Swerve fuses Conv/MatMul/Gemm between the pairs
into integer operators at load, as onnxruntime does) and in QOperator form (QLinearConv,
QLinearMatMul, com.microsoft QLinearAdd, QGemm, ...).

The reference is onnxruntime with its default optimizations (ORT_ENABLE_ALL: its QDQ fusions and
integer kernels). Measured: every output equal to onnxruntime's (0 steps) for all eight models at both
shapes, QDQ included (Swerve's fused integer operators requantize in float32 as onnxruntime does).
The tests still allow one quantization step of the output (the scale of the model's last
DequantizeLinear) for the QDQ and QOperator forms, for a value that lands on a float32 rounding tie
in another summation order, and for the dynamic and float32 forms (float outputs) a tolerance of the
output's range / 255 (dynamic: activation scales are computed at run time) or rtol 1e-3 (float32).
Each model's measured worst case is printed (pytest -s) and recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from realmodels import REPO_ROOT
from swerve_e2e import assert_ok, finish_server, start_server, v2_input
from test_real_exports import random_feeds

QDQ_STEPS = 1
QOPERATOR_STEPS = 1


def quant_store() -> Path:
    configured = os.environ.get("SWERVE_QUANT_MODELS")
    return Path(configured).resolve() if configured else REPO_ROOT / ".realmodels-quant"


MANIFEST = json.loads((quant_store() / "manifest.json").read_text()) if (quant_store() / "manifest.json").exists() else {}
SHAPES = {"resnet18": [(1, None), (4, None)], "bert_tiny": [(1, 16), (3, 23)]}
CASES = [pytest.param(name, batch, seq, id=f"{name}-b{batch}" + (f"-s{seq}" if seq else ""))
         for name, entry in sorted(MANIFEST.items()) for batch, seq in SHAPES[entry["model"]]]


@pytest.fixture(scope="module")
def quant_server():
    if not MANIFEST:
        pytest.fail(f"no quantized models in {quant_store()}: run `make test-quantized` (or "
                    f"`.venv-realmodels/bin/python tools/export_quantized_models.py`) first", pytrace=False)
    srv = start_server(quant_store())
    yield srv
    finish_server(srv)


def output_steps(path: Path) -> dict[str, float]:
    """The quantization step of each output a DequantizeLinear writes (its scale)."""
    model = onnx.load(str(path))
    constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    outputs = {o.name for o in model.graph.output}
    steps = {}
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.output[0] in outputs and node.input[1] in constants:
            steps[node.output[0]] = float(constants[node.input[1]].max())
    return steps


@pytest.mark.parametrize("name,batch,sequence", CASES)
def test_quantized_model_matches_onnxruntime(quant_server, name, batch, sequence):
    entry = MANIFEST[name]
    if quant_server.get(f"/v2/models/{name}/ready").status_code != 200:
        pytest.fail(f"swerve did not load {name}:\n{quant_server.process.output[-3000:]}", pytrace=False)
    path = quant_store() / entry["path"]
    feeds = random_feeds(entry["inputs"], batch, sequence, seed=batch * 100 + (sequence or 0))
    reference = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in reference.get_outputs()]
    expected = dict(zip(names, reference.run(names, feeds)))
    steps = output_steps(path)
    body = {"inputs": [v2_input(k, v) for k, v in feeds.items()]}
    for run in ("first run", "shape plan"):
        got = {o["name"]: np.asarray(o["data"], dtype=np.float32).reshape(o["shape"])
               for o in assert_ok(quant_server.post(f"/v2/models/{name}/infer", json=body))["outputs"]}
        for out in names:
            want = expected[out]
            diff = float(np.max(np.abs(got[out] - want)))
            form = entry["form"]
            if out in steps:
                allowed = steps[out] * (QDQ_STEPS if form == "qdq" else QOPERATOR_STEPS) * 1.0001
                print(f"{name} b{batch} {out}: max difference {diff:.6g} = {diff / steps[out]:.2f} steps ({run})")
            elif form == "dynamic":
                allowed = float(want.max() - want.min()) / 255
                print(f"{name} b{batch} {out}: max difference {diff:.6g}, range/255 = {allowed:.6g} ({run})")
            else:
                allowed = 1e-5 + 1e-3 * float(np.max(np.abs(want)))
            assert got[out].shape == want.shape, f"{name} {out}: shape {got[out].shape}, onnxruntime {want.shape}"
            assert diff <= allowed, f"{name} {out} ({run}): max difference {diff} above {allowed}"
