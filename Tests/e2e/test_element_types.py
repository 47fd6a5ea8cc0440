"""Every numeric element type on the wire: KServe V2 JSON and binary tensors, TF Serving JSON, model
metadata and /config, datatype mismatches, and Triton's HTTP client with FP16 and BF16.

One small model per type (built here with onnx.helper into a store of its own): `y = x + c`, x of the
type with shape [batch, 4], c a constant of the same type. float16 and bfloat16 run as float32 inside
the engine; values here are multiples of 1/8, so every sum is exact in every type and the answers
must equal numpy's bit for bit.
"""

from __future__ import annotations

import json
import subprocess

import ml_dtypes
import numpy as np
import onnx
import pytest
import tritonclient.http as httpclient
from onnx import TensorProto, helper, numpy_helper

from swerve_e2e import assert_error, assert_ok, finish_server, start_server, swerve_binary

# V2 name -> (numpy dtype, ONNX type, TF Serving name).
TYPES = {
    "FP16": (np.dtype(np.float16), TensorProto.FLOAT16, "DT_HALF"),
    "BF16": (np.dtype(ml_dtypes.bfloat16), TensorProto.BFLOAT16, "DT_BFLOAT16"),
    "FP32": (np.dtype(np.float32), TensorProto.FLOAT, "DT_FLOAT"),
    "FP64": (np.dtype(np.float64), TensorProto.DOUBLE, "DT_DOUBLE"),
    "INT8": (np.dtype(np.int8), TensorProto.INT8, "DT_INT8"),
    "UINT8": (np.dtype(np.uint8), TensorProto.UINT8, "DT_UINT8"),
    "INT16": (np.dtype(np.int16), TensorProto.INT16, "DT_INT16"),
    "UINT16": (np.dtype(np.uint16), TensorProto.UINT16, "DT_UINT16"),
    "INT32": (np.dtype(np.int32), TensorProto.INT32, "DT_INT32"),
    "UINT32": (np.dtype(np.uint32), TensorProto.UINT32, "DT_UINT32"),
    "INT64": (np.dtype(np.int64), TensorProto.INT64, "DT_INT64"),
    "UINT64": (np.dtype(np.uint64), TensorProto.UINT64, "DT_UINT64"),
}
FLOATS = {"FP16", "BF16", "FP32", "FP64"}


def model_name(v2: str) -> str:
    return f"add_{v2.lower()}"


def constant(v2: str) -> np.ndarray:
    dtype = TYPES[v2][0]
    return np.array([0.125, 1.5, -2.25, 3] if v2 in FLOATS else [1, 2, 3, 4], dtype=np.float64).astype(dtype)


def sample(v2: str, rows: int) -> np.ndarray:
    dtype = TYPES[v2][0]
    if v2 in FLOATS:
        values = np.arange(rows * 4, dtype=np.float64).reshape(rows, 4) / 8 - 1
    else:
        values = np.arange(rows * 4, dtype=np.float64).reshape(rows, 4) % 100
    return values.astype(dtype)


def expected(v2: str, x: np.ndarray) -> np.ndarray:
    return (x.astype(np.float64) + constant(v2).astype(np.float64)).astype(TYPES[v2][0])


def build_model(v2: str) -> bytes:
    onnx_type = TYPES[v2][1]
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "c"], ["y"])], model_name(v2),
        [helper.make_tensor_value_info("x", onnx_type, ["batch", 4])],
        [helper.make_tensor_value_info("y", onnx_type, ["batch", 4])],
        [numpy_helper.from_array(constant(v2), "c")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.checker.check_model(model)
    return model.SerializeToString()


@pytest.fixture(scope="module")
def typed_store(tmp_path_factory):
    store = tmp_path_factory.mktemp("types") / "models"
    for v2 in TYPES:
        version = store / model_name(v2) / "1"
        version.mkdir(parents=True)
        (version / "model.onnx").write_bytes(build_model(v2))
    return store


@pytest.fixture(scope="module")
def typed_server(typed_store):
    srv = start_server(typed_store)
    yield srv
    finish_server(srv)


@pytest.mark.parametrize("v2", sorted(TYPES))
def test_check_generates_inputs_of_every_type(typed_store, v2):
    path = typed_store / model_name(v2) / "1" / "model.onnx"
    run = subprocess.run([str(swerve_binary()), "check", str(path)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"input       x {v2} [1, 4]" in run.stdout and f"output      y {v2} [1, 4]" in run.stdout, run.stdout


def json_values(array: np.ndarray) -> list:
    """JSON numbers for `array` (bfloat16 through float32, which holds it exactly)."""
    return (array.astype(np.float32) if array.dtype == ml_dtypes.bfloat16 else array).reshape(-1).tolist()


@pytest.mark.parametrize("v2", sorted(TYPES))
def test_metadata_and_config_name_the_type(typed_server, v2):
    name = model_name(v2)
    meta = assert_ok(typed_server.get(f"/v2/models/{name}"))
    assert meta["inputs"] == [{"name": "x", "datatype": v2, "shape": [-1, 4]}]
    assert meta["outputs"] == [{"name": "y", "datatype": v2, "shape": [-1, 4]}]
    config = assert_ok(typed_server.get(f"/v2/models/{name}/config"))
    assert config["input"][0]["data_type"] == f"TYPE_{v2}"
    assert config["output"][0]["data_type"] == f"TYPE_{v2}"
    v1 = assert_ok(typed_server.get(f"/v1/models/{name}/metadata"))
    inputs = v1["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]
    assert inputs["x"]["dtype"] == TYPES[v2][2]


@pytest.mark.parametrize("v2", sorted(TYPES))
def test_v2_json_round_trip(typed_server, v2):
    x = sample(v2, 3)
    body = {"inputs": [{"name": "x", "shape": [3, 4], "datatype": v2, "data": json_values(x)}]}
    out = assert_ok(typed_server.post(f"/v2/models/{model_name(v2)}/infer", json=body))["outputs"][0]
    assert out["datatype"] == v2 and out["shape"] == [3, 4]
    got = np.array(out["data"], dtype=np.float64).astype(TYPES[v2][0]).reshape(3, 4)
    np.testing.assert_array_equal(got, expected(v2, x))


@pytest.mark.parametrize("v2", sorted(TYPES))
def test_v2_binary_round_trip(typed_server, v2):
    x = sample(v2, 5)
    header = {"inputs": [{"name": "x", "shape": [5, 4], "datatype": v2, "parameters": {"binary_data_size": x.nbytes}}],
              "outputs": [{"name": "y", "parameters": {"binary_data": True}}]}
    head = json.dumps(header).encode()
    resp = typed_server.post(f"/v2/models/{model_name(v2)}/infer", data=head + x.tobytes(),
                             headers={"Inference-Header-Content-Length": str(len(head))})
    assert resp.status_code == 200, resp.text[:300]
    n = int(resp.headers["Inference-Header-Content-Length"])
    out = json.loads(resp.content[:n])["outputs"][0]
    assert out["datatype"] == v2 and out["parameters"]["binary_data_size"] == x.nbytes
    got = np.frombuffer(resp.content[n:], dtype=TYPES[v2][0]).reshape(5, 4)
    np.testing.assert_array_equal(got.view(np.uint8), expected(v2, x).view(np.uint8))


@pytest.mark.parametrize("v2", ["FP16", "BF16", "FP64", "INT8", "UINT64"])
def test_tf_serving_rows(typed_server, v2):
    x = sample(v2, 2)
    rows = [json_values(row) for row in x]
    body = assert_ok(typed_server.post(f"/v1/models/{model_name(v2)}:predict", json={"instances": rows}))
    got = np.array(body["predictions"], dtype=np.float64).astype(TYPES[v2][0])
    np.testing.assert_array_equal(got, expected(v2, x))


def test_float16_json_reads_decimals_with_one_rounding(typed_server):
    # 0.1 is no float16; the nearest is 0.0999755859375 (0x2E66). Written back in the shortest form.
    body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP16", "data": [0.1, 65504, 1e-7, -0.0]}]}
    out = assert_ok(typed_server.post("/v2/models/add_fp16/infer", json=body))["outputs"][0]["data"]
    want = (np.array([0.1, 65504, 1e-7, -0.0], np.float16).astype(np.float64) + constant("FP16")).astype(np.float16)
    np.testing.assert_array_equal(np.array(out, np.float16), want)  # 65504 + 1.5 rounds back to 65504


def test_16_bit_overflow_is_infinity(typed_server):
    body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP16", "data": [65504, 1e6, -1e6, 0]}]}
    resp = typed_server.post("/v2/models/add_fp16/infer", json=body)
    assert resp.status_code == 200, resp.text
    # JSON has no infinity; the writer follows TF Serving and Python (Infinity), as for FP32.
    assert "Infinity" in resp.text and "-Infinity" in resp.text


@pytest.mark.parametrize("v2,sent", [("FP16", "FP32"), ("BF16", "FP16"), ("FP64", "FP32"), ("UINT8", "INT8")])
def test_mismatched_datatype_is_400_naming_both(typed_server, v2, sent):
    body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": sent, "data": [1, 2, 3, 4]}]}
    message = assert_error(typed_server.post(f"/v2/models/{model_name(v2)}/infer", json=body), 400)
    assert v2 in message and sent in message


def test_out_of_range_integer_is_400(typed_server):
    body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "UINT8", "data": [1, 2, 300, 4]}]}
    message = assert_error(typed_server.post("/v2/models/add_uint8/infer", json=body), 400)
    assert "UINT8" in message


@pytest.fixture(scope="module")
def client(typed_server):
    c = httpclient.InferenceServerClient(url=typed_server.host_port, network_timeout=30.0)
    yield c
    c.close()


@pytest.mark.parametrize("v2,binary", [("FP16", True), ("FP16", False), ("BF16", True), ("FP64", False), ("UINT16", True)])
def test_tritonclient_sends_and_reads(client, v2, binary):
    x = sample(v2, 4)
    tensor = httpclient.InferInput("x", list(x.shape), v2)
    tensor.set_data_from_numpy(x, binary_data=binary)
    result = client.infer(model_name(v2), [tensor], outputs=[httpclient.InferRequestedOutput("y", binary_data=binary)])
    got = result.as_numpy("y")
    assert got.dtype == TYPES[v2][0]
    np.testing.assert_array_equal(got, expected(v2, x))
    meta = client.get_model_metadata(model_name(v2))
    assert meta["inputs"][0]["datatype"] == v2
