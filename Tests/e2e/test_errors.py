"""Error answers: status codes, JSON `{"error": ...}` bodies, and serving on afterwards."""

from __future__ import annotations

import json

import numpy as np
import pytest

from swerve_e2e import assert_error, assert_ok, assert_v2_output, raw_post, reference, v2_input

GOOD_X = np.linspace(-1.0, 1.0, 16, dtype=np.float32).reshape(2, 8)


def assert_still_serving(server) -> None:
    """A good request right after an error gets a correct answer."""
    body = assert_ok(server.post("/v2/models/mlp/infer", json={"inputs": [v2_input("input", GOOD_X)]}))
    assert_v2_output(body["outputs"][0], "output", "FP32",
                     reference("mlp", 2, {"input": GOOD_X})["output"])


def mlp_input(**overrides) -> dict:
    entry = {"name": "input", "shape": [2, 8], "datatype": "FP32", "data": GOOD_X.reshape(-1).tolist()}
    entry.update(overrides)
    return entry


@pytest.mark.parametrize("method,path", [
    ("GET", "/no/such/route"),
    ("GET", "/v2/no_such_thing"),
    ("GET", "/v2/models/mlp/versions/2/nonsense"),
    ("POST", "/v2/models/mlp/nonsense"),
    ("GET", "/v1/no_such_thing"),
])
def test_unknown_route_is_404(server, method, path):
    assert_error(server.request(method, path), 404)
    assert_still_serving(server)


@pytest.mark.parametrize("path", [
    "/v2/models/no_such_model/infer",
    "/v2/models/mlp/versions/3/infer",
    "/v1/models/no_such_model:predict",
    "/v1/models/mlp/versions/3:predict",
])
def test_inference_on_unknown_model_or_version_is_404(server, path):
    body = ({"inputs": [mlp_input()]} if path.startswith("/v2")
            else {"instances": GOOD_X.tolist()})
    assert_error(server.post(path, json=body), 404)
    assert_still_serving(server)


@pytest.mark.parametrize("method,path", [
    ("GET", "/v2/models/mlp/infer"),
    ("PUT", "/v2/models/mlp/infer"),
    ("GET", "/v2/models/mlp/versions/1/infer"),
    ("POST", "/v2/health/live"),
    ("POST", "/v2/health/ready"),
    ("POST", "/v2"),
    ("POST", "/v2/models/mlp"),
    ("DELETE", "/v2/models/mlp"),
    ("POST", "/v2/models/mlp/ready"),
    ("POST", "/v2/models/mlp/config"),
    ("GET", "/v1/models/mlp:predict"),
    ("POST", "/v1/models/mlp"),
    ("POST", "/v1/models/mlp/metadata"),
])
def test_wrong_method_is_405(server, method, path):
    assert_error(server.request(method, path), 405)
    assert_still_serving(server)


@pytest.mark.parametrize("body", [
    "{not json",
    '{"inputs": [',
    "",
    '{"inputs": [{"name": "input", "shape": [2, 8], "datatype": "FP32", "data": [1, 2,]}]}',
    "\xff\xfe garbage",
])
def test_malformed_json_is_400_v2(server, body):
    resp = server.post("/v2/models/mlp/infer", data=body.encode("utf-8", "surrogateescape"),
                       headers={"Content-Type": "application/json"})
    assert_error(resp, 400)
    assert_still_serving(server)


@pytest.mark.parametrize("body", ["{not json", '{"instances": [[1, 2]', ""])
def test_malformed_json_is_400_v1(server, body):
    resp = server.post("/v1/models/mlp:predict", data=body,
                       headers={"Content-Type": "application/json"})
    assert_error(resp, 400)
    assert_still_serving(server)


BAD_V2_BODIES = {
    "not an object": [],
    "inputs not a list": {"inputs": 5},
    "no inputs": {},
    "empty inputs": {"inputs": []},
    "unknown input name": {"inputs": [mlp_input(name="nope")]},
    "input without data": {"inputs": [{k: v for k, v in mlp_input().items() if k != "data"}]},
    "input without shape": {"inputs": [{k: v for k, v in mlp_input().items() if k != "shape"}]},
    "wrong datatype INT64": {"inputs": [mlp_input(datatype="INT64", data=[1] * 16)]},
    "wrong datatype BOOL": {"inputs": [mlp_input(datatype="BOOL", data=[True] * 16)]},
    "unknown datatype": {"inputs": [mlp_input(datatype="FP33")]},
    "wrong inner dim": {"inputs": [mlp_input(shape=[2, 7], data=[0.5] * 14)]},
    "wrong rank": {"inputs": [mlp_input(shape=[16])]},
    "rank 3": {"inputs": [mlp_input(shape=[1, 2, 8])]},
    "too few values": {"inputs": [mlp_input(data=[0.5] * 15)]},
    "too many values": {"inputs": [mlp_input(data=[0.5] * 17)]},
    "nested data not matching shape": {"inputs": [mlp_input(data=[[0.5] * 8] * 3)]},
    "string in float data": {"inputs": [mlp_input(data=["a"] * 16)]},
    "negative dim": {"inputs": [mlp_input(shape=[-2, 8])]},
}


@pytest.mark.parametrize("case", sorted(BAD_V2_BODIES))
def test_bad_v2_request_is_400(server, case):
    assert_error(server.post("/v2/models/mlp/infer", json=BAD_V2_BODIES[case]), 400)
    assert_still_serving(server)


def test_missing_input_is_400(server):
    inputs = [
        v2_input("a", np.array([[1, 2, 3]], dtype=np.int64)),
        v2_input("b", np.array([1, 2, 3], dtype=np.int64)),
        v2_input("c", np.array([4], dtype=np.int32)),
    ]  # no "x"
    message = assert_error(server.post("/v2/models/int_ops/infer", json={"inputs": inputs}), 400)
    assert "x" in message
    assert_still_serving(server)


def test_int_data_out_of_range_is_400(server):
    inputs = [
        v2_input("a", np.array([[1, 2, 3]], dtype=np.int64)),
        v2_input("b", np.array([1, 2, 3], dtype=np.int64)),
        {"name": "c", "shape": [1], "datatype": "INT32", "data": [2**40]},
        v2_input("x", np.zeros((1, 4), dtype=np.float32)),
    ]
    assert_error(server.post("/v2/models/int_ops/infer", json={"inputs": inputs}), 400)
    assert_still_serving(server)


def test_bool_model_rejects_non_bool_data(server):
    body = {"inputs": [{"name": "flags", "shape": [1, 2], "datatype": "BOOL", "data": ["yes", "no"]}]}
    assert_error(server.post("/v2/models/bool_model/infer", json=body), 400)
    assert_still_serving(server)


def test_inference_on_broken_model_is_an_error(server):
    body = {"inputs": [mlp_input()]}
    resp = server.post("/v2/models/broken/infer", json=body)
    assert resp.status_code >= 400
    assert_error(resp, resp.status_code)
    assert_still_serving(server)


BAD_V1_BODIES = {
    "neither instances nor inputs": {"signature_name": ""},
    "row too short": {"instances": [[0.5] * 7]},
    "ragged rows": {"instances": [[0.5] * 8, [0.5] * 7]},
    "strings": {"instances": [["a"] * 8]},
    "unknown named input": {"inputs": {"nope": GOOD_X.tolist()}},
    "columnar wrong shape": {"inputs": [0.5] * 8},
}


@pytest.mark.parametrize("case", sorted(BAD_V1_BODIES))
def test_bad_v1_request_is_400(server, case):
    assert_error(server.post("/v1/models/mlp:predict", json=BAD_V1_BODIES[case]), 400)
    assert_still_serving(server)


def test_v1_multi_input_missing_input_is_400(server):
    instances = [{"a": [1, 2, 3], "x": [0.0, 1.0, 2.0, 3.0]}]  # no "c"
    assert_error(server.post("/v1/models/multi_rows:predict", json={"instances": instances}), 400)
    assert_still_serving(server)


# ----------------------------------------------------------------------------- body size

def test_body_over_max_body_size_is_413(server_factory):
    small = server_factory(["--max-body-size", "1024"])
    x = np.zeros((1, 8), dtype=np.float32)
    good = json.dumps({"inputs": [v2_input("input", x)]})
    assert len(good) < 1024

    big_x = np.full((40, 8), 0.123456, dtype=np.float32)
    big = json.dumps({"inputs": [v2_input("input", big_x)]})
    assert len(big) > 1024
    resp = small.post("/v2/models/mlp/infer", data=big, headers={"Content-Type": "application/json"})
    assert_error(resp, 413)

    resp = small.post("/v1/models/mlp:predict", data=json.dumps({"instances": big_x.tolist()}),
                      headers={"Content-Type": "application/json"})
    assert_error(resp, 413)

    body = assert_ok(small.post("/v2/models/mlp/infer", data=good,
                                headers={"Content-Type": "application/json"}))
    assert_v2_output(body["outputs"][0], "output", "FP32", reference("mlp", 2, {"input": x})["output"])

    # The limit is inclusive: exactly 1024 bytes is served, 1025 is too large.
    at_limit = good + " " * (1024 - len(good))
    assert len(at_limit.encode()) == 1024
    assert_ok(small.post("/v2/models/mlp/infer", data=at_limit,
                         headers={"Content-Type": "application/json"}))
    resp = small.post("/v2/models/mlp/infer", data=at_limit + " ",
                      headers={"Content-Type": "application/json"})
    assert_error(resp, 413)
    assert_ok(small.post("/v2/models/mlp/infer", data=good, headers={"Content-Type": "application/json"}))
    assert small.process.alive


def test_default_max_body_size_is_64_mib(server):
    status, body = raw_post(server.process.port, "/v2/models/mlp/infer", 64 * 1024 * 1024 + 1)
    assert status == 413, f"expected 413 for a body of 64 MiB + 1 byte, got {status}: {body[:300]!r}"
    message = json.loads(body)["error"]
    assert isinstance(message, str) and message.strip()
    assert_still_serving(server)
