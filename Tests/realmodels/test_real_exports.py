"""Real exports served by Swerve, checked against onnxruntime: PyTorch (tools/export_real_models.py,
store .realmodels) and, with `make test-tf` (also in `make test`), Keras through tf2onnx (tools/export_keras_models.py,
store .realmodels-tf; choose the store with $SWERVE_REALMODELS).

For every export in the manifest (MLP, resnet18, mobilenet_v2, tiny BERT, nn.TransformerEncoder, nn.LSTM, nn.GRU,
a small CNN; TorchScript and dynamo exporters) and two input shapes (batch 1, and a larger batch with another
sequence length where the sequence is dynamic), the same random inputs go to Swerve over HTTP
(KServe V2 JSON) and to onnxruntime on the same file; every output must match with rtol 1e-3,
atol 1e-5. A model that Swerve cannot load fails here with the reason the server gives.

Precision variants (float16 from `model.half()`, bfloat16, float64; manifest `precision`) go over HTTP
in JSON and in binary tensors, and are compared with onnxruntime on the same file where its CPU
provider runs it (float16; float64 without Conv), else on the export's fp32 twin holding the same
rounded weights, fed the same rounded inputs. Tolerances are the type's: float16 and bfloat16 results
may differ from onnxruntime's by a few units in the last place of the 16-bit type.
"""

from __future__ import annotations

import json
import re

import ml_dtypes
import numpy as np
import onnxruntime as ort
import pytest
import requests

from realmodels import load_manifest
from swerve_e2e import V2_DTYPES, assert_ok, v2_input

RTOL = 1e-3
ATOL = 1e-5

# (batch, sequence) per model; sequence applies only where the export keeps it dynamic.
SHAPES = {
    "mlp": [(1, None), (32, None)],
    "resnet18": [(1, None), (4, None)],
    "mobilenet_v2": [(1, None), (4, None)],
    "bert_tiny": [(1, 16), (4, 37)],
    "transformer_encoder": [(1, 16), (4, 29)],
    "lstm": [(1, 16), (4, 29)],
    "gru": [(1, 16), (4, 29)],
    "small_cnn": [(1, None), (8, None)],
    # tools/export_keras_models.py (`make test-tf`)
    "keras_mlp": [(1, None), (32, None)],
    "keras_cnn": [(1, None), (8, None)],
    "keras_mobilenet_v2": [(1, None), (4, None)],
    "keras_lstm": [(1, None), (5, None)],
    "keras_gru": [(1, None), (5, None)],
    "keras_simple_rnn": [(1, None), (5, None)],
    "keras_bidirectional": [(1, None), (5, None)],
}
TORCH_EXPORTS = {f"{m}_{e}" for m in ("mlp", "resnet18", "mobilenet_v2", "bert_tiny", "transformer_encoder", "lstm", "gru",
                                      "small_cnn", "small_cnn_fp16", "small_cnn_bf16", "small_cnn_fp64",
                                      "transformer_encoder_fp16", "transformer_encoder_bf16", "transformer_encoder_fp64",
                                      "resnet18_fp16")
                 for e in ("torchscript", "dynamo")}

# Element types of the precision variants: numpy dtype, V2 datatype, and the tolerance against the reference
# (rtol, atol relative to the largest output magnitude): four float16 ulps (2^-10 each) and two bfloat16
# ulps (2^-7). Measured (docs/benchmarks.md): float16 at most 1.1e-3 of the largest output, bfloat16 2.6e-3.
PRECISION = {
    "float16": (np.dtype(np.float16), "FP16", 4e-3, 4e-3),
    "bfloat16": (np.dtype(ml_dtypes.bfloat16), "BF16", 1.6e-2, 1.6e-2),
    "float64": (np.dtype(np.float64), "FP64", 1e-6, 1e-8),
}
# A float64 variant whose reference is the fp32 twin (onnxruntime has no float64 Conv) can only be
# checked to float32's precision: the twin rounds every operation to 2^-24 (small_cnn at batch 8:
# 8e-8 absolute on outputs near 0.3).
FLOAT64_VS_FP32_TWIN = (1e-5, 1e-6)
# Variants Swerve cannot run yet, with what its error must say (none since float64 Conv and the
# float64 normalisations landed).
EXPECTED_FAILURES: dict[str, str] = {}
KERAS_EXPORTS = {f"keras_{m}_tf2onnx" for m in ("mlp", "cnn", "mobilenet_v2", "lstm", "gru", "simple_rnn", "bidirectional")}

MANIFEST = load_manifest()


def _dynamic_sequence(entry: dict) -> bool:
    return any("sequence" in spec["shape"] for spec in entry["inputs"])


CASES = [pytest.param(name, batch, seq if _dynamic_sequence(entry) else None,
                      id=f"{name}-b{batch}" + (f"-s{seq}" if seq and _dynamic_sequence(entry) else ""))
         for name, entry in sorted(MANIFEST.items()) if "precision" not in entry for batch, seq in SHAPES[entry["model"]]]


def random_feeds(inputs: list[dict], batch: int, sequence: int | None, seed: int) -> dict[str, np.ndarray]:
    """Inputs of the manifest's specs: floats N(0, 1); token ids uniform in [0, high); attention
    masks 1 with trailing padding (0) on all rows but the first."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in inputs:
        shape = [batch if d == "batch" else sequence if d == "sequence" else d for d in spec["shape"]]
        if spec.get("mask"):
            mask = np.ones(shape, dtype=np.int64)
            for row in range(1, shape[0]):
                mask[row, max(1, shape[1] - 3 * row):] = 0
            feeds[spec["name"]] = mask
        elif spec["dtype"] == "int64":
            feeds[spec["name"]] = rng.integers(0, spec["high"], size=shape, dtype=np.int64)
        else:
            dtype = PRECISION[spec["dtype"]][0] if spec["dtype"] in PRECISION else np.float32
            feeds[spec["name"]] = rng.standard_normal(shape).astype(np.float32).astype(dtype)
    return feeds


def management_index(server) -> list[dict]:
    port = re.search(r"management_port=(\d+)", server.process.output)
    assert port, f"no management_port=N in the server's output:\n{server.process.output}"
    resp = requests.post(f"http://127.0.0.1:{port.group(1)}/v2/repository/index", timeout=30)
    return assert_ok(resp)


def require_ready(server, name: str) -> None:
    """Fails with the server's reason when the model did not load."""
    if server.get(f"/v2/models/{name}/ready").status_code == 200:
        return
    entries = [e for e in management_index(server) if e.get("name") == name]
    pytest.fail(f"swerve did not load {name}: {entries or 'not in the repository index'}", pytrace=False)


def test_manifest_lists_every_export(store):
    """The store holds every PyTorch export (`make realmodels`) or every Keras one (`make test-tf`)."""
    keras = any(entry["exporter"] == "tf2onnx" for entry in MANIFEST.values())
    expected = KERAS_EXPORTS if keras else TORCH_EXPORTS
    assert expected <= set(MANIFEST), f"missing exports in {store}: {sorted(expected - set(MANIFEST))}"


@pytest.mark.parametrize("name,batch,sequence", CASES)
def test_export_matches_onnxruntime(real_server, store, name, batch, sequence):
    entry = MANIFEST[name]
    require_ready(real_server, name)
    feeds = random_feeds(entry["inputs"], batch, sequence, seed=batch * 1000 + (sequence or 0))
    reference = ort.InferenceSession(str(store / entry["path"]), providers=["CPUExecutionProvider"])
    names = [o.name for o in reference.get_outputs()]
    expected = dict(zip(names, reference.run(names, feeds)))

    body = {"inputs": [v2_input(k, v) for k, v in feeds.items()]}
    # The first request of a shape builds the engine's plan for that shape; the second runs through it.
    for run in ("first run", "shape plan"):
        answer = assert_ok(real_server.post(f"/v2/models/{name}/infer", json=body))
        got = {o["name"]: o for o in answer["outputs"]}
        assert set(got) == set(names), f"{name}: outputs {sorted(got)}, onnxruntime has {sorted(names)}"
        for out_name, want in expected.items():
            out = got[out_name]
            assert out["datatype"] == V2_DTYPES[want.dtype], f"{name}.{out_name}: datatype {out['datatype']}"
            assert out["shape"] == list(want.shape), f"{name}.{out_name}: shape {out['shape']} != {list(want.shape)}"
            values = np.asarray(out["data"], dtype=np.float64).reshape(want.shape)
            np.testing.assert_allclose(values, want.astype(np.float64), rtol=RTOL, atol=ATOL,
                                       err_msg=f"{name} output {out_name} (batch {batch}, sequence {sequence}, {run})")


PRECISION_CASES = [pytest.param(name, batch, seq if _dynamic_sequence(entry) else None, binary,
                                id=f"{name}-b{batch}" + (f"-s{seq}" if seq and _dynamic_sequence(entry) else "")
                                + ("-binary" if binary else "-json"))
                   for name, entry in sorted(MANIFEST.items()) if "precision" in entry
                   for batch, seq in SHAPES[entry["model"]] for binary in (False, True)]


def reference_outputs(store, entry: dict, feeds: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], bool]:
    """onnxruntime on the export itself when its CPU provider can run it, else on the fp32 twin
    (same rounded weights) fed the same rounded inputs; float64 arrays either way, and whether the
    twin was used."""
    try:
        session = ort.InferenceSession(str(store / entry["path"]), providers=["CPUExecutionProvider"])
        run_feeds = feeds
        twin = False
    except Exception:  # noqa: BLE001 - onnxruntime has no kernel for the type (bfloat16 Conv, float64 Conv)
        session = ort.InferenceSession(str(store / entry["reference"]), providers=["CPUExecutionProvider"])
        run_feeds = {k: v.astype(np.float32) if v.dtype.kind == "f" or v.dtype == ml_dtypes.bfloat16 else v
                     for k, v in feeds.items()}
        twin = True
    names = [o.name for o in session.get_outputs()]
    return {n: v.astype(np.float64) for n, v in zip(names, session.run(names, run_feeds))}, twin


def infer(server, name: str, feeds: dict[str, np.ndarray], binary: bool) -> dict[str, tuple[str, np.ndarray]]:
    """One V2 request, JSON or binary tensors both ways; outputs as (datatype, float64 array)."""
    v2 = {dtype: v2name for dtype, v2name, _, _ in PRECISION.values()}
    if not binary:
        inputs = [{"name": k, "shape": list(v.shape), "datatype": v2[v.dtype] if v.dtype in v2 else "INT64",
                   "data": v.astype(np.float64 if v.dtype.kind == "f" or v.dtype == ml_dtypes.bfloat16 else v.dtype)
                   .reshape(-1).tolist()} for k, v in feeds.items()]
        answer = assert_ok(server.post(f"/v2/models/{name}/infer", json={"inputs": inputs}))
        return {o["name"]: (o["datatype"], np.asarray(o["data"], dtype=np.float64).reshape(o["shape"]))
                for o in answer["outputs"]}
    header = {"inputs": [{"name": k, "shape": list(v.shape), "datatype": v2[v.dtype] if v.dtype in v2 else "INT64",
                          "parameters": {"binary_data_size": v.nbytes}} for k, v in feeds.items()],
              "parameters": {"binary_data_output": True}}
    head = json.dumps(header).encode()
    resp = server.post(f"/v2/models/{name}/infer", data=head + b"".join(v.tobytes() for v in feeds.values()),
                       headers={"Inference-Header-Content-Length": str(len(head))})
    assert resp.status_code == 200, f"{name}: {resp.status_code} {resp.text[:500]}"
    n = int(resp.headers["Inference-Header-Content-Length"])
    offset = n
    outputs = {}
    for o in json.loads(resp.content[:n])["outputs"]:
        dtype = {v2name: dtype for dtype, v2name, _, _ in PRECISION.values()}.get(o["datatype"], np.dtype(np.float32))
        size = o["parameters"]["binary_data_size"]
        array = np.frombuffer(resp.content[offset:offset + size], dtype=dtype).reshape(o["shape"])
        outputs[o["name"]] = (o["datatype"], array.astype(np.float64))
        offset += size
    assert offset == len(resp.content), f"{name}: {len(resp.content) - offset} bytes after the binary outputs"
    return outputs


@pytest.mark.parametrize("name,batch,sequence,binary", PRECISION_CASES)
def test_precision_variant_matches_onnxruntime(real_server, store, name, batch, sequence, binary):
    entry = MANIFEST[name]
    base = f"{entry['model']}_{entry['precision']}"
    require_ready(real_server, name)
    dtype, v2name, rtol, atol = PRECISION[entry["inputs"][0]["dtype"]]
    feeds = random_feeds(entry["inputs"], batch, sequence, seed=batch * 1000 + (sequence or 0))
    if base in EXPECTED_FAILURES:
        inputs = [{"name": k, "shape": list(v.shape), "datatype": v2name, "data": v.reshape(-1).tolist()}
                  for k, v in feeds.items()]
        resp = real_server.post(f"/v2/models/{name}/infer", json={"inputs": inputs})
        assert resp.status_code != 200, f"{name} runs now: remove it from EXPECTED_FAILURES"
        assert EXPECTED_FAILURES[base] in resp.text, resp.text
        pytest.xfail(f"{name}: {resp.json()['error']}")
    expected, twin = reference_outputs(store, entry, feeds)
    if twin and v2name == "FP64":
        rtol, atol = FLOAT64_VS_FP32_TWIN
    for run in ("first run", "shape plan"):
        got = infer(real_server, name, feeds, binary)
        assert set(got) == set(expected), f"{name}: outputs {sorted(got)}, onnxruntime has {sorted(expected)}"
        for out_name, want in expected.items():
            datatype, values = got[out_name]
            assert datatype == v2name, f"{name}.{out_name}: datatype {datatype}, expected {v2name}"
            scale = max(1.0, float(np.max(np.abs(want))))
            np.testing.assert_allclose(values, want, rtol=rtol, atol=atol * scale,
                                       err_msg=f"{name} output {out_name} (batch {batch}, sequence {sequence}, "
                                               f"{'binary' if binary else 'JSON'}, {run})")
