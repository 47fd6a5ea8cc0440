"""KServe V2 health, server metadata, model metadata, readiness and Triton config."""

from __future__ import annotations

import re

import pytest

from swerve_e2e import assert_error, assert_ok

# What each test model declares, in declaration order: (name, V2 datatype, shape).
SIGNATURES = {
    "mlp": ([("input", "FP32", [-1, 8])], [("output", "FP32", [-1, 4])]),
    "dynamo_mlp": ([("x", "FP32", [-1, 6])], [("y", "FP32", [-1, 3])]),
    "int_ops": (
        [("a", "INT64", [-1, 3]), ("b", "INT64", [3]), ("c", "INT32", [-1]), ("x", "FP32", [-1, 4])],
        [("sum", "INT64", [-1, 3]), ("c2", "INT32", [-1]), ("y", "FP32", [-1, 4])],
    ),
    "multi_rows": (
        [("a", "INT64", [-1, 3]), ("c", "INT32", [-1]), ("x", "FP32", [-1, 4])],
        [("twice", "INT64", [-1, 3]), ("c2", "INT32", [-1]), ("y", "FP32", [-1, 4])],
    ),
    "bool_model": ([("flags", "BOOL", [-1, 2])], [("same", "BOOL", [-1, 2])]),
    "digits": ([("input", "FP32", [-1, 64])],
               [("probabilities", "FP32", [-1, 10]), ("label", "INT64", [-1])]),
}
VERSIONS = {"mlp": ["1", "2"]}
SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")


def tensor_list(entries):
    return [{"name": n, "datatype": d, "shape": s} for n, d, s in entries]


def test_health_live(server):
    assert server.get("/v2/health/live").status_code == 200


def test_health_ready_despite_broken_model(server):
    """A FAILED version is parked, not aspired: it is retried only when its files change, so
    waiting for it would keep the server unready until someone fixes the file, and take every
    model's traffic away because of one bad file. It shows on the model's own ready (not ready)
    and in the repository index with its reason. See docs/model-store.md, "Readiness"."""
    assert server.ready_at_start, "GET /v2/health/ready never answered 200 within 30 s of start"
    resp = server.get("/v2/health/ready")
    assert resp.status_code == 200, (
        f"a broken model must not make the server unready: {resp.status_code} {resp.text[:500]}")


def test_server_metadata(server):
    body = assert_ok(server.get("/v2"))
    assert body["name"] == "swerve"
    assert isinstance(body["version"], str) and SEMVER.match(body["version"]), body["version"]
    assert isinstance(body["extensions"], list)
    assert all(isinstance(e, str) for e in body["extensions"])


@pytest.mark.parametrize("model", sorted(SIGNATURES))
def test_model_metadata(server, model):
    body = assert_ok(server.get(f"/v2/models/{model}"))
    inputs, outputs = SIGNATURES[model]
    assert body["name"] == model
    assert sorted(body["versions"], key=int) == VERSIONS.get(model, ["1"])
    assert all(isinstance(v, str) for v in body["versions"])
    assert body["platform"] == "onnx_onnxv1"
    assert body["inputs"] == tensor_list(inputs)
    assert body["outputs"] == tensor_list(outputs)


@pytest.mark.parametrize("version", ["1", "2"])
def test_model_version_metadata(server, version):
    body = assert_ok(server.get(f"/v2/models/mlp/versions/{version}"))
    assert body["name"] == "mlp"
    assert body["versions"] == [version]
    assert body["platform"] == "onnx_onnxv1"
    assert body["inputs"] == tensor_list(SIGNATURES["mlp"][0])
    assert body["outputs"] == tensor_list(SIGNATURES["mlp"][1])


@pytest.mark.parametrize("path", [
    "/v2/models/no_such_model",
    "/v2/models/no_such_model/versions/1",
    "/v2/models/mlp/versions/3",
    "/v2/models/no_such_model/ready",
    "/v2/models/mlp/versions/9/ready",
    "/v2/models/no_such_model/config",
    "/v2/models/mlp/versions/9/config",
])
def test_unknown_model_or_version_is_404(server, path):
    assert_error(server.get(path), 404)
    assert server.get("/v2/models/mlp").status_code == 200


@pytest.mark.parametrize("path", ["/v2/models/mlp/versions/0", "/v2/models/mlp/versions/x1"])
def test_invalid_version_is_a_client_error(server, path):
    """Not a positive integer: no such version (404) or a malformed path (400)."""
    assert_error(server.get(path), (400, 404))


@pytest.mark.parametrize("path", [
    "/v2/models/mlp/ready",
    "/v2/models/mlp/versions/1/ready",
    "/v2/models/mlp/versions/2/ready",
    "/v2/models/dynamo_mlp/ready",
    "/v2/models/int_ops/ready",
    "/v2/models/multi_rows/ready",
    "/v2/models/bool_model/ready",
    "/v2/models/digits/ready",
])
def test_model_ready(server, path):
    assert server.get(path).status_code == 200


@pytest.mark.parametrize("path", ["/v2/models/broken/ready", "/v2/models/broken/versions/1/ready"])
def test_broken_model_is_not_ready(server, path):
    resp = server.get(path)
    assert resp.status_code >= 400, f"broken model answered {resp.status_code} on {path}"
    assert_error(resp, resp.status_code)


CONFIG_TYPES = {"FP32": "TYPE_FP32", "INT64": "TYPE_INT64", "INT32": "TYPE_INT32", "BOOL": "TYPE_BOOL"}


def config_entries(entries):
    return [{"name": n, "data_type": CONFIG_TYPES[d], "dims": s} for n, d, s in entries]


def pick(items, keys=("name", "data_type", "dims")):
    return [{k: item.get(k) for k in keys} for item in items]


@pytest.mark.parametrize("model", sorted(SIGNATURES))
def test_model_config(server, model):
    body = assert_ok(server.get(f"/v2/models/{model}/config"))
    inputs, outputs = SIGNATURES[model]
    assert body["name"] == model
    assert body["platform"] == "onnx_onnxv1"
    assert body["max_batch_size"] == 0
    assert pick(body["input"]) == config_entries(inputs)
    assert pick(body["output"]) == config_entries(outputs)


def test_model_version_config(server):
    body = assert_ok(server.get("/v2/models/mlp/versions/1/config"))
    assert body["name"] == "mlp"
    assert body["platform"] == "onnx_onnxv1"
    assert body["max_batch_size"] == 0
    assert pick(body["input"]) == config_entries(SIGNATURES["mlp"][0])
    assert pick(body["output"]) == config_entries(SIGNATURES["mlp"][1])


def test_default_version_policy_serves_only_the_latest(server):
    """`mlp_latest` has versions 1 and 2 and no config.json: only version 2 is served."""
    body = assert_ok(server.get("/v2/models/mlp_latest"))
    assert body["versions"] == ["2"]
    assert assert_ok(server.get("/v2/models/mlp_latest/versions/2"))["versions"] == ["2"]
    assert server.get("/v2/models/mlp_latest/ready").status_code == 200
    assert server.get("/v2/models/mlp_latest/versions/1/ready").status_code != 200
    assert_error(server.get("/v2/models/mlp_latest/versions/1"), 404)
