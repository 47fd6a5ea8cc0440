"""Real exports served by Swerve, checked against onnxruntime: PyTorch (tools/export_real_models.py,
store .realmodels) and, with `make test-tf` (also in `make test`), Keras through tf2onnx (tools/export_keras_models.py,
store .realmodels-tf; choose the store with $SWERVE_REALMODELS).

For every export in the manifest (MLP, resnet18, mobilenet_v2, tiny BERT, nn.TransformerEncoder, nn.LSTM, nn.GRU;
TorchScript and dynamo exporters) and two input shapes (batch 1, and a larger batch with another
sequence length where the sequence is dynamic), the same random inputs go to Swerve over HTTP
(KServe V2 JSON) and to onnxruntime on the same file; every output must match with rtol 1e-3,
atol 1e-5. A model that Swerve cannot load fails here with the reason the server gives.
"""

from __future__ import annotations

import re

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
    # tools/export_keras_models.py (`make test-tf`)
    "keras_mlp": [(1, None), (32, None)],
    "keras_cnn": [(1, None), (8, None)],
    "keras_mobilenet_v2": [(1, None), (4, None)],
    "keras_lstm": [(1, None), (5, None)],
    "keras_gru": [(1, None), (5, None)],
    "keras_simple_rnn": [(1, None), (5, None)],
    "keras_bidirectional": [(1, None), (5, None)],
}
TORCH_EXPORTS = {f"{m}_{e}" for m in ("mlp", "resnet18", "mobilenet_v2", "bert_tiny", "transformer_encoder", "lstm", "gru")
                 for e in ("torchscript", "dynamo")}
KERAS_EXPORTS = {f"keras_{m}_tf2onnx" for m in ("mlp", "cnn", "mobilenet_v2", "lstm", "gru", "simple_rnn", "bidirectional")}

MANIFEST = load_manifest()


def _dynamic_sequence(entry: dict) -> bool:
    return any("sequence" in spec["shape"] for spec in entry["inputs"])


CASES = [pytest.param(name, batch, seq if _dynamic_sequence(entry) else None,
                      id=f"{name}-b{batch}" + (f"-s{seq}" if seq and _dynamic_sequence(entry) else ""))
         for name, entry in sorted(MANIFEST.items()) for batch, seq in SHAPES[entry["model"]]]


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
            feeds[spec["name"]] = rng.standard_normal(shape).astype(np.float32)
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
