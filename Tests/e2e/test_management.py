"""The management port: load from a request body, unload, index, rescan, the token (required off
loopback, enforced when set), and names and versions that try to leave the store (400)."""

from __future__ import annotations

import base64
import json
import os
import subprocess

import pytest
import requests

from store_e2e import (management_port, management_url, publish, raw_request, stamped_model, start, unsupported_model,
                       version_state, wait_until)
from swerve_e2e import finish_server, swerve_binary

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
X = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [0, 0, 0, 0]}]}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def store(tmp_path):
    root = tmp_path / "store" / "models"
    publish(root, "base", 1, stamped_model(1))
    return root


@pytest.fixture
def with_token(store):
    server = start(store, ["--poll-interval", "0", "--management-token", TOKEN])
    yield server
    finish_server(server)


def test_load_from_body_unload_and_index(with_token, store):
    url = management_url(with_token)
    body = {"parameters": {
        "config": json.dumps({"version_policy": {"all": {}}, "version_labels": {"stable": 1}}),
        "file:1/model.onnx": b64(stamped_model(1)),
        "file:2/model.onnx": b64(stamped_model(2)),
    }}
    resp = requests.post(f"{url}/v2/repository/models/uploaded/load", json=body, headers=AUTH, timeout=30)
    assert resp.status_code == 200, resp.text
    assert sorted(os.listdir(store / "uploaded")) == ["1", "2", "config.json"], "staging files left behind"
    answer = with_token.post("/v2/models/uploaded/infer", json=X).json()
    assert answer["model_version"] == "2" and answer["outputs"][0]["data"] == [2, 2, 2, 2]
    stable = with_token.post("/v1/models/uploaded/labels/stable:predict", json={"instances": [[0, 0, 0, 0]]})
    assert stable.status_code == 200 and stable.json()["predictions"] == [[1, 1, 1, 1]]
    entries = requests.post(f"{url}/v2/repository/index", headers=AUTH, timeout=10).json()
    mine = {e["version"]: e for e in entries if e["name"] == "uploaded"}
    assert mine["1"]["state"] == "READY" and mine["1"]["labels"] == ["stable"] and mine["2"]["state"] == "READY"

    # Versions are immutable: the same version again is a conflict, nothing changes.
    again = requests.post(f"{url}/v2/repository/models/uploaded/load", headers=AUTH, timeout=30,
                          json={"parameters": {"file:2/model.onnx": b64(stamped_model(9))}})
    assert again.status_code == 409 and "already exists" in again.json()["error"]
    # A broken upload fails with the reason, and what served keeps serving.
    broken = requests.post(f"{url}/v2/repository/models/uploaded/load", headers=AUTH, timeout=30,
                           json={"parameters": {"file:3/model.onnx": b64(unsupported_model())}})
    assert broken.status_code == 400, broken.text
    assert "SwerveNoSuchOperator" in broken.json()["error"] and "keep serving" in broken.json()["error"]
    assert with_token.post("/v2/models/uploaded/infer", json=X).json()["model_version"] == "2"

    # Unload: nothing serves; load again (from the store, no body): serves again.
    resp = requests.post(f"{url}/v2/repository/models/uploaded/unload", headers=AUTH, timeout=30)
    assert resp.status_code == 200, resp.text
    assert with_token.post("/v2/models/uploaded/infer", json=X).status_code in (404, 503)
    assert with_token.get("/v2/models/uploaded/ready").status_code != 200
    assert with_token.get("/v2/health/ready").status_code == 200, "an unloaded model is not pending"
    entries = requests.post(f"{url}/v2/repository/index", headers=AUTH, json={"ready": True}, timeout=10).json()
    assert all(e["name"] != "uploaded" for e in entries)
    # The broken version 3 stays FAILED, so the reload reports it, but versions 1 and 2 serve.
    resp = requests.post(f"{url}/v2/repository/models/uploaded/load", headers=AUTH, timeout=30)
    assert resp.status_code == 400 and "version 3" in resp.json()["error"]
    assert with_token.post("/v2/models/uploaded/infer", json=X).json()["model_version"] == "2"


def test_rescan_picks_up_a_new_version_without_polling(with_token, store):
    publish(store, "base", 2, stamped_model(2))
    assert version_state(with_token, "base", 2, TOKEN) is None  # --poll-interval 0: not seen yet
    resp = requests.post(management_url(with_token) + "/v2/repository/rescan", headers=AUTH, timeout=30)
    assert resp.status_code == 200
    assert version_state(with_token, "base", 2, TOKEN) == "AVAILABLE"
    assert with_token.post("/v2/models/base/infer", json=X).json()["model_version"] == "2"


def test_token_is_enforced(with_token):
    url = management_url(with_token)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {TOKEN}x"},
                    {"Authorization": TOKEN}, {"Authorization": "Bearer "}):
        resp = requests.post(f"{url}/v2/repository/index", headers=headers, timeout=10)
        assert resp.status_code == 401, (headers, resp.text)
        assert "--management-token" in resp.json()["error"]
    assert requests.post(f"{url}/v2/repository/index", headers=AUTH, timeout=10).status_code == 200
    assert requests.get(f"{url}/v2/health/live", timeout=10).status_code == 200


def test_uploads_need_a_token(store):
    server = start(store, ["--poll-interval", "0"])
    try:
        url = management_url(server)
        resp = requests.post(f"{url}/v2/repository/models/x/load", timeout=10,
                             json={"parameters": {"file:1/model.onnx": b64(stamped_model(1))}})
        assert resp.status_code == 403 and "--management-token" in resp.json()["error"]
        assert not (store / "x").exists()
        assert requests.post(f"{url}/v2/repository/index", timeout=10).status_code == 200  # loopback, no token set
    finally:
        finish_server(server)


def test_refuses_to_start_off_loopback_without_a_token(store):
    args = [str(swerve_binary()), "serve", "--model-store", str(store), "--port", "0",
            "--management-host", "0.0.0.0", "--management-port", "0"]
    env = {k: v for k, v in os.environ.items() if k != "SWERVE_MANAGEMENT_TOKEN"}
    done = subprocess.run(args, capture_output=True, text=True, timeout=30, env=env)
    assert done.returncode != 0
    assert "--management-token" in done.stdout + done.stderr, done.stdout + done.stderr


def test_off_loopback_with_a_token_enforces_it(store):
    server = start(store, ["--poll-interval", "0", "--management-host", "0.0.0.0", "--management-token", TOKEN])
    try:
        url = f"http://127.0.0.1:{management_port(server)}"
        assert requests.post(f"{url}/v2/repository/index", timeout=10).status_code == 401
        assert requests.post(f"{url}/v2/repository/index", headers=AUTH, timeout=10).status_code == 200
    finally:
        finish_server(server)


BAD_MODEL_PATHS = [
    "/v2/repository/models/../load",
    "/v2/repository/models/../../etc/load",
    "/v2/repository/models/..%2F..%2Fetc/load",
    "/v2/repository/models/%2Fetc%2Fpasswd/load",
    "/v2/repository/models/.hidden/load",
    "/v2/repository/models/a%2Fb/load",
    "/v2/repository/models/../unload",
    "/v2/repository/models/%2e%2e/unload",
]


@pytest.mark.parametrize("path", BAD_MODEL_PATHS)
def test_model_names_outside_the_store_are_refused(with_token, store, path):
    body = json.dumps({"parameters": {"file:1/model.onnx": b64(stamped_model(1))}}).encode()
    status, text = raw_request(management_port(with_token), "POST", path, body,
                               {**AUTH, "Content-Type": "application/json"})
    assert status == 400, (path, status, text)
    assert json.loads(text)["error"]
    assert sorted(p.name for p in store.parent.iterdir()) == ["models"], "something was written outside the store"


BAD_FILE_KEYS = ["file:../1/model.onnx", "file:/etc/passwd", "file:1/../../x.onnx", "file:1/../model.onnx",
                 "file:01/model.onnx", "file:0/model.onnx", "file:-1/model.onnx", "file:1.5/model.onnx",
                 "file:1/sub/model.onnx", "file:1/.hidden", "file:1/", "file:/1/model.onnx",
                 "file:99999999999999999999/model.onnx", "file:1"]


@pytest.mark.parametrize("key", BAD_FILE_KEYS)
def test_file_names_outside_the_version_are_refused(with_token, store, key):
    body = {"parameters": {"file:1/model.onnx": b64(stamped_model(1)), key: b64(b"x")}}
    resp = requests.post(management_url(with_token) + "/v2/repository/models/evil/load", json=body,
                         headers=AUTH, timeout=30)
    assert resp.status_code == 400, (key, resp.status_code, resp.text)
    assert not (store / "evil").exists()
    assert sorted(p.name for p in store.parent.iterdir()) == ["models"]


def test_bad_config_upload_is_refused_with_the_field(with_token, store):
    body = {"parameters": {"config": '{"version_labels": {"bad-label": 1}}', "file:1/model.onnx": b64(stamped_model(1))}}
    resp = requests.post(management_url(with_token) + "/v2/repository/models/cfg/load", json=body,
                         headers=AUTH, timeout=30)
    assert resp.status_code == 400 and "version_labels" in resp.json()["error"]
    assert not (store / "cfg").exists()
