"""Many models on one machine: measured memory per version, the memory budget, loading on
demand, eviction (least recently used, pinned models never), idle unloading, load waits, and
shutdown during loads. Each test starts its own swerve over its own store (store_e2e)."""

from __future__ import annotations

import re

import numpy as np
import requests
from onnx import TensorProto, helper, numpy_helper

from store_e2e import index, management_url, publish, stamped_model, start
from swerve_e2e import finish_server

X = [[0.0, 0.0, 0.0, 0.0]]
MB = 1 << 20


def matmul_model(width: int, seed: int = 0) -> bytes:
    """y = x @ W, x FP32 [batch, width], W [width, width] (width^2 * 4 bytes of weights)."""
    w = np.random.default_rng(seed).standard_normal([width, width]).astype(np.float32) * 0.01
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", width])], [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def infer(server, model: str, width: int = 4, timeout: float = 30) -> requests.Response:
    body = {"inputs": [{"name": "x", "shape": [1, width], "datatype": "FP32", "data": [0.0] * width}]}
    return requests.post(f"{server.base_url}/v2/models/{model}/infer", json=body, timeout=timeout)


def entry(server, model: str, version: int = 1) -> dict:
    return next(e for e in index(server) if e["name"] == model and e.get("version") == str(version))


def test_memory_is_measured_and_reported_everywhere(tmp_path):
    store = tmp_path / "models"
    publish(store, "big", 1, matmul_model(1024))  # a 4 MiB weight
    publish(store, "small", 1, stamped_model(1))
    server = start(store, ["--poll-interval", "0"])
    try:
        assert infer(server, "big", width=1024).status_code == 200
        assert infer(server, "small").status_code == 200
        big, small = entry(server, "big")["memory_bytes"], entry(server, "small")["memory_bytes"]
        # The weight in the kernel's packed layout (the file's pages dropped), plus a small arena.
        assert 4 * MB <= big <= 5 * MB, big
        assert small < MB, small
        status = requests.get(f"{server.base_url}/v1/models/big", timeout=10).json()
        assert status["memory_bytes"] == {"1": status["memory_bytes"]["1"]} and status["memory_bytes"]["1"] >= 4 * MB
        assert status["model_version_status"][0] == {
            "version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        page = requests.get(f"{server.base_url}/status.json", timeout=10).json()
        versions = {m["name"]: m["versions"][0] for m in page["models"]}
        assert versions["big"]["memory_bytes"] >= 4 * MB
        metrics = requests.get(f"{server.base_url}/metrics", timeout=10).text
        sample = re.search(r'^swerve_model_memory_bytes\{model="big",version="1"\} (\S+)$', metrics, re.M)
        assert sample and float(sample.group(1)) >= 4 * MB, metrics[:2000]
    finally:
        finish_server(server)
