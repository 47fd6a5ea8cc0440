"""TF Serving REST API: model status, metadata and :predict (row and columnar forms)."""

from __future__ import annotations

import numpy as np
import pytest

from swerve_e2e import assert_error, assert_ok, assert_values, load_digits_sample, reference

BATCHES = [1, 3, 17]


def floats(seed: int, shape) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# ----------------------------------------------------------------------------- status

def test_status_lists_all_versions_newest_first(server):
    body = assert_ok(server.get("/v1/models/mlp"))
    statuses = body["model_version_status"]
    assert [s["version"] for s in statuses] == ["2", "1"]
    for status in statuses:
        assert status["state"] == "AVAILABLE"
        assert status["status"] == {"error_code": "OK", "error_message": ""}


def test_status_with_default_version_policy(server):
    body = assert_ok(server.get("/v1/models/mlp_latest"))
    statuses = body["model_version_status"]
    assert statuses[0] == {"version": "2", "state": "AVAILABLE",
                           "status": {"error_code": "OK", "error_message": ""}}
    assert all(s["state"] != "AVAILABLE" for s in statuses[1:]), statuses


@pytest.mark.parametrize("version", ["1", "2"])
def test_status_of_one_version(server, version):
    body = assert_ok(server.get(f"/v1/models/mlp/versions/{version}"))
    assert body["model_version_status"] == [
        {"version": version, "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]


def test_status_of_broken_model(server):
    body = assert_ok(server.get("/v1/models/broken"))
    statuses = body["model_version_status"]
    assert [s["version"] for s in statuses] == ["1"]
    assert statuses[0]["state"] == "END"
    assert statuses[0]["status"]["error_code"] != "OK"
    assert isinstance(statuses[0]["status"]["error_message"], str)
    assert statuses[0]["status"]["error_message"].strip()


@pytest.mark.parametrize("path", [
    "/v1/models/no_such_model",
    "/v1/models/mlp/versions/5",
    "/v1/models/no_such_model/metadata",
    "/v1/models/mlp/versions/5/metadata",
])
def test_unknown_model_or_version_is_404(server, path):
    assert_error(server.get(path), 404)


# ----------------------------------------------------------------------------- metadata

def tf_tensor(name: str, dtype: str, shape: list[int]) -> dict:
    return {
        "dtype": dtype,
        "tensor_shape": {"dim": [{"size": str(d), "name": ""} for d in shape], "unknown_rank": False},
        "name": name,
    }


TF_SIGNATURES = {
    "mlp": ({"input": ("DT_FLOAT", [-1, 8])}, {"output": ("DT_FLOAT", [-1, 4])}),
    "int_ops": (
        {"a": ("DT_INT64", [-1, 3]), "b": ("DT_INT64", [3]), "c": ("DT_INT32", [-1]),
         "x": ("DT_FLOAT", [-1, 4])},
        {"sum": ("DT_INT64", [-1, 3]), "c2": ("DT_INT32", [-1]), "y": ("DT_FLOAT", [-1, 4])},
    ),
    "bool_model": ({"flags": ("DT_BOOL", [-1, 2])}, {"same": ("DT_BOOL", [-1, 2])}),
    "digits": ({"input": ("DT_FLOAT", [-1, 64])},
               {"probabilities": ("DT_FLOAT", [-1, 10]), "label": ("DT_INT64", [-1])}),
}


def expected_metadata(model: str, version: str) -> dict:
    inputs, outputs = TF_SIGNATURES[model]
    return {
        "model_spec": {"name": model, "signature_name": "", "version": version},
        "metadata": {"signature_def": {"signature_def": {"serving_default": {
            "inputs": {n: tf_tensor(n, d, s) for n, (d, s) in inputs.items()},
            "outputs": {n: tf_tensor(n, d, s) for n, (d, s) in outputs.items()},
            "method_name": "tensorflow/serving/predict",
        }}}},
    }


@pytest.mark.parametrize("model", sorted(TF_SIGNATURES))
def test_metadata(server, model):
    body = assert_ok(server.get(f"/v1/models/{model}/metadata"))
    version = "2" if model == "mlp" else "1"
    assert body == expected_metadata(model, version)


def test_metadata_of_one_version(server):
    body = assert_ok(server.get("/v1/models/mlp/versions/1/metadata"))
    assert body == expected_metadata("mlp", "1")


# ----------------------------------------------------------------------------- predict

@pytest.mark.parametrize("batch", BATCHES)
def test_predict_rows_single_input_single_output(server, batch):
    x = floats(batch, (batch, 8))
    body = assert_ok(server.post("/v1/models/mlp:predict", json={"instances": x.tolist()}))
    assert list(body) == ["predictions"]
    predictions = body["predictions"]
    assert isinstance(predictions, list) and len(predictions) == batch
    assert all(isinstance(row, list) and len(row) == 4 for row in predictions)
    assert_values(predictions, reference("mlp", 2, {"input": x})["output"], "predictions")


@pytest.mark.parametrize("batch", BATCHES)
def test_predict_rows_version_1(server, batch):
    x = floats(50 + batch, (batch, 8))
    body = assert_ok(server.post("/v1/models/mlp/versions/1:predict", json={"instances": x.tolist()}))
    assert_values(body["predictions"], reference("mlp", 1, {"input": x})["output"], "predictions")


def test_predict_integers_become_the_declared_float_type(server):
    x = np.array([[1, 0, -2, 3, 0, 1, 2, -1], [0, 0, 0, 0, 5, 0, 0, 0]], dtype=np.int64)
    body = assert_ok(server.post("/v1/models/mlp:predict", json={"instances": x.tolist()}))
    want = reference("mlp", 2, {"input": x.astype(np.float32)})["output"]
    assert_values(body["predictions"], want, "predictions")


@pytest.mark.parametrize("batch", BATCHES)
def test_predict_columnar_single_input_single_output(server, batch):
    x = floats(60 + batch, (batch, 8))
    body = assert_ok(server.post("/v1/models/mlp:predict", json={"inputs": x.tolist()}))
    assert list(body) == ["outputs"]
    assert_values(body["outputs"], reference("mlp", 2, {"input": x})["output"], "outputs")


def test_predict_columnar_named_single_input(server):
    x = floats(70, (3, 8))
    body = assert_ok(server.post("/v1/models/mlp:predict", json={"inputs": {"input": x.tolist()}}))
    assert_values(body["outputs"], reference("mlp", 2, {"input": x})["output"], "outputs")


def test_predict_rows_several_outputs(server):
    pixels, labels = load_digits_sample()
    body = assert_ok(server.post("/v1/models/digits:predict", json={"instances": pixels.tolist()}))
    predictions = body["predictions"]
    assert len(predictions) == len(labels)
    want = reference("digits", 1, {"input": pixels})
    for i, row in enumerate(predictions):
        assert sorted(row) == ["label", "probabilities"]
        assert type(row["label"]) is int and row["label"] == labels[i]
        assert_values(row["probabilities"], want["probabilities"][i], f"row {i} probabilities")


def test_predict_columnar_several_outputs(server):
    pixels, labels = load_digits_sample()
    body = assert_ok(server.post("/v1/models/digits:predict", json={"inputs": pixels.tolist()}))
    outputs = body["outputs"]
    assert sorted(outputs) == ["label", "probabilities"]
    assert_values(outputs["label"], labels, "label")
    assert_values(outputs["probabilities"], reference("digits", 1, {"input": pixels})["probabilities"],
                  "probabilities")


@pytest.mark.parametrize("batch", BATCHES)
def test_predict_rows_several_inputs(server, batch):
    r = np.random.default_rng(80 + batch)
    feeds = {
        "a": r.integers(-2**40, 2**40, size=(batch, 3), dtype=np.int64),
        "c": r.integers(-46340, 46341, size=(batch,), dtype=np.int32),
        "x": r.standard_normal((batch, 4)).astype(np.float32),
    }
    instances = [{name: feeds[name][i].tolist() for name in ("a", "c", "x")} for i in range(batch)]
    assert all(type(row["c"]) is int for row in instances)  # scalar rows for a [-1] input
    body = assert_ok(server.post("/v1/models/multi_rows:predict", json={"instances": instances}))
    want = reference("multi_rows", 1, feeds)
    predictions = body["predictions"]
    assert len(predictions) == batch
    for i, row in enumerate(predictions):
        assert sorted(row) == ["c2", "twice", "y"]
        assert_values(row["twice"], want["twice"][i], f"row {i} twice")
        assert_values([row["c2"]], want["c2"][i:i + 1], f"row {i} c2")
        assert_values(row["y"], want["y"][i], f"row {i} y")


def test_predict_columnar_several_inputs(server):
    r = np.random.default_rng(90)
    feeds = {
        "a": r.integers(-2**40, 2**40, size=(4, 3), dtype=np.int64),
        "b": r.integers(-100, 100, size=(3,), dtype=np.int64),
        "c": r.integers(-46340, 46341, size=(5,), dtype=np.int32),
        "x": r.standard_normal((2, 4)).astype(np.float32),
    }
    body = assert_ok(server.post("/v1/models/int_ops:predict",
                                 json={"inputs": {k: v.tolist() for k, v in feeds.items()}}))
    want = reference("int_ops", 1, feeds)
    outputs = body["outputs"]
    assert sorted(outputs) == ["c2", "sum", "y"]
    for name in ("sum", "c2", "y"):
        assert_values(outputs[name], want[name], name)


def test_predict_bool_rows(server):
    flags = np.array([[True, False], [False, False], [True, True]])
    body = assert_ok(server.post("/v1/models/bool_model:predict", json={"instances": flags.tolist()}))
    assert_values(body["predictions"], flags, "predictions")


def test_predict_rows_with_unbatched_input_is_rejected(server):
    """int_ops' `b` is [3]: stacking rows gives [n, 3], which does not fit; that is a 400."""
    instances = [{"a": [1, 2, 3], "b": [1, 1, 1], "c": 2, "x": [0.0, 1.0, 2.0, 3.0]}]
    assert_error(server.post("/v1/models/int_ops:predict", json={"instances": instances}), 400)
    assert server.post("/v1/models/mlp:predict", json={"instances": [[0.0] * 8]}).status_code == 200
