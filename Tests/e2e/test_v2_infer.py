"""KServe V2 JSON inference, compared with onnxruntime on the same model files."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

from swerve_e2e import (
    REPO_ROOT,
    assert_error,
    assert_ok,
    assert_v2_output,
    load_digits_sample,
    reference,
    v2_input,
)

BATCHES = [1, 3, 17]


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def floats(seed: int, shape) -> np.ndarray:
    return rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("batch", BATCHES)
def test_mlp_default_is_highest_version(server, batch):
    x = floats(batch, (batch, 8))
    body = assert_ok(server.post("/v2/models/mlp/infer", json={"inputs": [v2_input("input", x)]}))
    assert body["model_name"] == "mlp"
    assert body["model_version"] == "2"
    assert len(body["outputs"]) == 1
    assert_v2_output(body["outputs"][0], "output", "FP32", reference("mlp", 2, {"input": x})["output"])


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("version", [1, 2])
def test_mlp_explicit_version(server, batch, version):
    x = floats(100 + batch, (batch, 8))
    body = assert_ok(server.post(f"/v2/models/mlp/versions/{version}/infer",
                                 json={"inputs": [v2_input("input", x)]}))
    assert body["model_name"] == "mlp"
    assert body["model_version"] == str(version)
    assert_v2_output(body["outputs"][0], "output", "FP32",
                     reference("mlp", version, {"input": x})["output"])


def test_mlp_versions_really_differ(server):
    """Guards the two tests above: version 1 and 2 must give different answers."""
    x = floats(7, (3, 8))
    old = assert_ok(server.post("/v2/models/mlp/versions/1/infer", json={"inputs": [v2_input("input", x)]}))
    new = assert_ok(server.post("/v2/models/mlp/infer", json={"inputs": [v2_input("input", x)]}))
    assert not np.allclose(old["outputs"][0]["data"], new["outputs"][0]["data"], atol=1e-3)


@pytest.mark.parametrize("batch", BATCHES)
def test_nested_data_equals_flat_data(server, batch):
    x = floats(200 + batch, (batch, 8))
    body = assert_ok(server.post("/v2/models/mlp/infer",
                                 json={"inputs": [v2_input("input", x, nested=True)]}))
    assert_v2_output(body["outputs"][0], "output", "FP32", reference("mlp", 2, {"input": x})["output"])


def test_id_is_echoed(server):
    x = floats(3, (1, 8))
    body = assert_ok(server.post("/v2/models/mlp/infer",
                                 json={"id": "request-42", "inputs": [v2_input("input", x)]}))
    assert body["id"] == "request-42"


def test_requested_output_is_returned(server):
    x = floats(4, (2, 8))
    body = assert_ok(server.post("/v2/models/mlp/infer", json={
        "inputs": [v2_input("input", x)], "outputs": [{"name": "output"}]}))
    assert [o["name"] for o in body["outputs"]] == ["output"]
    assert_v2_output(body["outputs"][0], "output", "FP32", reference("mlp", 2, {"input": x})["output"])


@pytest.mark.parametrize("batch", BATCHES)
def test_dynamo_export_with_external_data(server, batch):
    x = floats(300 + batch, (batch, 6))
    body = assert_ok(server.post("/v2/models/dynamo_mlp/infer", json={"inputs": [v2_input("x", x)]}))
    assert body["model_name"] == "dynamo_mlp"
    assert body["model_version"] == "1"
    assert_v2_output(body["outputs"][0], "y", "FP32", reference("dynamo_mlp", 1, {"x": x})["y"])


def int_ops_feeds(seed: int, n: int, m: int, k: int) -> dict[str, np.ndarray]:
    r = rng(seed)
    a = r.integers(-2**62, 2**62, size=(n, 3), dtype=np.int64)
    a[0, 0] = 2**53 + 1  # not representable as a double: catches float parsing of INT64
    return {
        "a": a,
        "b": r.integers(-1000, 1000, size=(3,), dtype=np.int64),
        "c": r.integers(-46340, 46341, size=(m,), dtype=np.int32),
        "x": r.standard_normal((k, 4)).astype(np.float32),
    }


@pytest.mark.parametrize("batch", BATCHES)
def test_int_ops_all_outputs(server, batch):
    feeds = int_ops_feeds(batch, batch, batch + 2, max(1, batch - 1))
    body = assert_ok(server.post("/v2/models/int_ops/infer",
                                 json={"inputs": [v2_input(k, v) for k, v in feeds.items()]}))
    want = reference("int_ops", 1, feeds)
    outputs = {o["name"]: o for o in body["outputs"]}
    assert sorted(outputs) == ["c2", "sum", "y"]
    assert_v2_output(outputs["sum"], "sum", "INT64", want["sum"])
    assert_v2_output(outputs["c2"], "c2", "INT32", want["c2"])
    assert_v2_output(outputs["y"], "y", "FP32", want["y"])


def test_int_ops_requested_outputs_in_request_order(server):
    feeds = int_ops_feeds(5, 2, 3, 4)
    inputs = [v2_input(k, feeds[k]) for k in ("x", "c", "b", "a")]  # input order does not matter
    body = assert_ok(server.post("/v2/models/int_ops/infer", json={
        "inputs": inputs, "outputs": [{"name": "y"}, {"name": "sum"}]}))
    want = reference("int_ops", 1, feeds)
    assert [o["name"] for o in body["outputs"]] == ["y", "sum"]
    assert_v2_output(body["outputs"][0], "y", "FP32", want["y"])
    assert_v2_output(body["outputs"][1], "sum", "INT64", want["sum"])


def test_int_ops_nested_int_data(server):
    feeds = int_ops_feeds(6, 3, 2, 2)
    inputs = [v2_input(k, v, nested=True) for k, v in feeds.items()]
    body = assert_ok(server.post("/v2/models/int_ops/infer", json={"inputs": inputs}))
    want = reference("int_ops", 1, feeds)
    outputs = {o["name"]: o for o in body["outputs"]}
    assert_v2_output(outputs["sum"], "sum", "INT64", want["sum"])
    assert_v2_output(outputs["c2"], "c2", "INT32", want["c2"])


@pytest.mark.parametrize("batch", BATCHES)
def test_bool_round_trip(server, batch):
    flags = rng(400 + batch).integers(0, 2, size=(batch, 2)).astype(np.bool_)
    request = {"inputs": [v2_input("flags", flags)]}
    assert all(type(v) is bool for v in request["inputs"][0]["data"])
    body = assert_ok(server.post("/v2/models/bool_model/infer", json=request))
    assert_v2_output(body["outputs"][0], "same", "BOOL", flags)


def test_digits_labels_match_true_labels(server):
    pixels, labels = load_digits_sample()
    body = assert_ok(server.post("/v2/models/digits/infer", json={"inputs": [v2_input("input", pixels)]}))
    want = reference("digits", 1, {"input": pixels})
    outputs = {o["name"]: o for o in body["outputs"]}
    assert_v2_output(outputs["probabilities"], "probabilities", "FP32", want["probabilities"])
    assert_v2_output(outputs["label"], "label", "INT64", labels)


@pytest.mark.parametrize("index", [0, 1, 2])
def test_digits_single_digit(server, index):
    pixels, labels = load_digits_sample()
    one = pixels[index:index + 1]
    body = assert_ok(server.post("/v2/models/digits/infer", json={
        "inputs": [v2_input("input", one)], "outputs": [{"name": "label"}]}))
    assert [o["name"] for o in body["outputs"]] == ["label"]
    assert body["outputs"][0]["data"] == [int(labels[index])]


def test_docs_example_request(server):
    """The README's example body (docs/examples/digit.json) works as written."""
    text = (REPO_ROOT / "docs" / "examples" / "digit.json").read_text()
    pixels, labels = load_digits_sample()
    example = json.loads(text)
    assert example["inputs"][0]["data"] == pixels[0].tolist(), (
        "docs/examples/digit.json and Tests/e2e/data are out of step; rerun tools/train_digits.py")
    resp = server.post("/v2/models/digits/infer", data=text,
                       headers={"Content-Type": "application/json"})
    body = assert_ok(resp)
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["label"]["data"] == [int(labels[0])]


@pytest.mark.parametrize("batch", [256, 4096])
def test_large_batch(server, batch):
    """Bodies of hundreds of KB arrive in many pieces; the answer must still be exact."""
    x = floats(900 + batch, (batch, 8))
    body = assert_ok(server.post("/v2/models/mlp/infer", json={"inputs": [v2_input("input", x)]}))
    assert_v2_output(body["outputs"][0], "output", "FP32", reference("mlp", 2, {"input": x})["output"])


def test_concurrent_requests(server):
    """Parallel clients on separate connections all get their own correct answers."""
    def one(seed: int):
        x = floats(1000 + seed, (1 + seed % 5, 8))
        resp = requests.post(server.base_url + "/v2/models/mlp/infer",
                             json={"id": str(seed), "inputs": [v2_input("input", x)]}, timeout=30)
        return seed, x, resp

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, range(64)))
    for seed, x, resp in results:
        body = assert_ok(resp)
        assert body["id"] == str(seed)
        assert_v2_output(body["outputs"][0], "output", "FP32",
                         reference("mlp", 2, {"input": x})["output"])


def test_default_version_policy_infers_with_the_latest(server):
    x = floats(8, (2, 8))
    body = assert_ok(server.post("/v2/models/mlp_latest/infer", json={"inputs": [v2_input("input", x)]}))
    assert body["model_name"] == "mlp_latest"
    assert body["model_version"] == "2"
    assert_v2_output(body["outputs"][0], "output", "FP32", reference("mlp", 2, {"input": x})["output"])
    resp = server.post("/v2/models/mlp_latest/versions/1/infer", json={"inputs": [v2_input("input", x)]})
    assert_error(resp, 404)
