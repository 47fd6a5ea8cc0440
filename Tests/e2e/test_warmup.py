"""config.json's model_warmup (Triton's shape) through the real server: a sample that fails
keeps the version from becoming AVAILABLE (FAILED, with the sample's name and the reason);
zero, random and file data warm it up; the cold-start time (files to first answer) is
reported per version."""

from __future__ import annotations

import json

import numpy as np
import requests

from store_e2e import index, publish, stamped_model, start
from swerve_e2e import finish_server


def entry(server, model: str) -> dict:
    return next(e for e in index(server) if e["name"] == model and e.get("version") == "1")


def warmup(inputs: dict, **extra) -> str:
    return json.dumps({"model_warmup": [dict(name="sample", inputs=inputs, **extra)]})


def test_model_warmup_gates_availability_and_cold_start_is_reported(tmp_path):
    store = tmp_path / "models"
    for name in ("zero", "random", "file", "wrong"):
        publish(store, name, 1, stamped_model(1))
    (store / "zero" / "config.json").write_text(
        warmup({"x": {"data_type": "TYPE_FP32", "dims": [1, 4], "zero_data": True}}, count=3))
    # max_batch_size > 0: dims leave out the batch dimension, batch_size is prepended.
    (store / "random" / "config.json").write_text(json.dumps({
        "max_batch_size": 8,
        "model_warmup": [{"name": "rows", "batch_size": 8,
                          "inputs": {"x": {"data_type": "TYPE_FP32", "dims": [4], "random_data": True}}}]}))
    (store / "file" / "warmup").mkdir()
    (store / "file" / "warmup" / "x.bin").write_bytes(np.arange(8, dtype=np.float32).tobytes())
    (store / "file" / "config.json").write_text(
        warmup({"x": {"data_type": "TYPE_FP32", "dims": [2, 4], "input_data_file": "x.bin"}}))
    # The model takes [batch, 4]: a sample of [1, 5] cannot run, so the version must not serve.
    (store / "wrong" / "config.json").write_text(
        warmup({"x": {"data_type": "TYPE_FP32", "dims": [1, 5], "zero_data": True}}))
    server = start(store, ["--poll-interval", "0"])
    try:
        for name in ("zero", "random", "file"):
            assert entry(server, name)["lifecycle"] == "AVAILABLE", entry(server, name)
        wrong = entry(server, "wrong")
        assert wrong["lifecycle"] == "FAILED", wrong
        assert "model_warmup sample 'sample'" in wrong["reason"] and "run 1 of 1 failed" in wrong["reason"], wrong
        resp = requests.post(f"{server.base_url}/v2/models/wrong/infer", timeout=10,
                             json={"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [0] * 4}]})
        assert resp.status_code == 503 and "model_warmup" in resp.text
        # Cold start: reported once a request has been answered, at least the load's time.
        before = entry(server, "zero")
        assert "cold_start_ms" not in before and before["load_ms"] >= 0
        resp = requests.post(f"{server.base_url}/v2/models/zero/infer", timeout=10,
                             json={"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [0] * 4}]})
        assert resp.status_code == 200, resp.text
        after = entry(server, "zero")
        assert after["cold_start_ms"] >= after["load_ms"], after
    finally:
        finish_server(server)


def test_a_missing_warmup_file_fails_the_load_with_the_path(tmp_path):
    store = tmp_path / "models"
    publish(store, "m", 1, stamped_model(1))
    (store / "m" / "config.json").write_text(
        warmup({"x": {"data_type": "TYPE_FP32", "dims": [1, 4], "input_data_file": "missing.bin"}}))
    server = start(store, ["--poll-interval", "0"])
    try:
        m = entry(server, "m")
        assert m["lifecycle"] == "FAILED" and "warmup/missing.bin" in m["reason"] and "cannot open" in m["reason"], m
    finally:
        finish_server(server)
