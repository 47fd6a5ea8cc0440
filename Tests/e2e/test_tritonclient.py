"""Triton's own HTTP client (JSON tensors, binary_data=False) against swerve."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.http as httpclient

from swerve_e2e import ATOL, RTOL, reference


@pytest.fixture(scope="module")
def client(server):
    c = httpclient.InferenceServerClient(url=server.host_port, network_timeout=30.0)
    yield c
    c.close()


def json_input(name: str, array: np.ndarray, datatype: str) -> httpclient.InferInput:
    tensor = httpclient.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=False)
    return tensor


def json_output(name: str) -> httpclient.InferRequestedOutput:
    return httpclient.InferRequestedOutput(name, binary_data=False)


def test_live_and_ready(client):
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("mlp")
    assert client.is_model_ready("mlp", model_version="1")
    assert not client.is_model_ready("broken")


def test_server_metadata(client):
    metadata = client.get_server_metadata()
    assert metadata["name"] == "swerve"


def test_model_metadata(client):
    metadata = client.get_model_metadata("mlp")
    assert metadata["name"] == "mlp"
    assert sorted(metadata["versions"], key=int) == ["1", "2"]
    assert metadata["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 8]}]
    assert metadata["outputs"] == [{"name": "output", "datatype": "FP32", "shape": [-1, 4]}]
    old = client.get_model_metadata("mlp", model_version="1")
    assert old["versions"] == ["1"]


def test_model_config(client):
    config = client.get_model_config("mlp")
    assert config["name"] == "mlp"
    assert config["platform"] == "onnx_onnxv1"


@pytest.mark.parametrize("batch", [1, 3, 17])
@pytest.mark.parametrize("version", ["", "1"])
def test_infer_mlp(client, batch, version):
    x = np.random.default_rng(500 + batch).standard_normal((batch, 8)).astype(np.float32)
    result = client.infer("mlp", [json_input("input", x, "FP32")], model_version=version,
                          outputs=[json_output("output")], request_id="triton-1")
    got = result.as_numpy("output")
    want = reference("mlp", int(version or 2), {"input": x})["output"]
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
    response = result.get_response()
    assert response["model_name"] == "mlp"
    assert response["model_version"] == (version or "2")
    assert response["id"] == "triton-1"


def test_infer_int_ops(client):
    r = np.random.default_rng(510)
    feeds = {
        "a": r.integers(-2**50, 2**50, size=(3, 3), dtype=np.int64),
        "b": r.integers(-9, 9, size=(3,), dtype=np.int64),
        "c": r.integers(-1000, 1000, size=(4,), dtype=np.int32),
        "x": r.standard_normal((2, 4)).astype(np.float32),
    }
    types = {"a": "INT64", "b": "INT64", "c": "INT32", "x": "FP32"}
    result = client.infer("int_ops", [json_input(n, v, types[n]) for n, v in feeds.items()],
                          outputs=[json_output("sum"), json_output("c2"), json_output("y")])
    want = reference("int_ops", 1, feeds)
    assert np.array_equal(result.as_numpy("sum"), want["sum"])
    assert result.as_numpy("sum").dtype == np.int64
    assert np.array_equal(result.as_numpy("c2"), want["c2"])
    assert result.as_numpy("c2").dtype == np.int32
    np.testing.assert_allclose(result.as_numpy("y"), want["y"], rtol=RTOL, atol=ATOL)


def test_infer_bool(client):
    flags = np.array([[True, False], [True, True], [False, False]])
    result = client.infer("bool_model", [json_input("flags", flags, "BOOL")],
                          outputs=[json_output("same")])
    got = result.as_numpy("same")
    assert got.dtype == np.bool_
    assert np.array_equal(got, flags)


def test_unknown_model_raises(client):
    x = np.zeros((1, 8), dtype=np.float32)
    with pytest.raises(httpclient.InferenceServerException):
        client.infer("no_such_model", [json_input("input", x, "FP32")])
