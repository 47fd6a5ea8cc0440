"""Many models on one machine: measured memory per version, the memory budget, loading on
demand, eviction (least recently used, pinned models never), idle unloading, load waits, and
shutdown during loads. Each test starts its own swerve over its own store (store_e2e)."""

from __future__ import annotations

import random
import re
import threading
import time

import numpy as np
import requests
from onnx import TensorProto, helper, numpy_helper

from store_e2e import index, publish, rss_kib, stamped_model, start
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


def metric_sum(text: str, name: str, label_filter: str = "") -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and label_filter in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_many_models_under_a_budget(tmp_path):
    """Two dozen on-demand models under a budget that holds a few, two pinned ones, random
    traffic from six clients: no failed request, every model answered, evictions counted, the
    pinned models never evicted, the measured total within the budget, RSS within budget plus
    a stated margin; a model larger than the budget and a broken one refused with their reasons."""
    store = tmp_path / "models"
    width = 512  # 1 MiB of weights each
    on_demand = [f"m{i:02d}" for i in range(24)]
    for i, name in enumerate(on_demand):
        publish(store, name, 1, matmul_model(width, seed=i))
    for name in ("pinned_a", "pinned_b"):
        publish(store, name, 1, matmul_model(width, seed=99))
        (store / name / "config.json").write_text('{"load": "always"}')
    publish(store, "huge", 1, matmul_model(1400))  # 7.5 MiB: more than the whole budget
    publish(store, "broken", 1, b"this is not an ONNX file")
    budget = 6 * MB
    server = start(store, ["--poll-interval", "0", "--memory-budget", str(budget), "--load-on-demand", "--load-wait", "20"])
    try:
        assert server.ready_at_start, "on-demand models must not hold readiness back"
        states = {e["name"]: e.get("lifecycle") for e in index(server)}
        assert states["m00"] == "UNLOADED" and states["pinned_a"] == "AVAILABLE", states
        rss_before = rss_kib(server.process.proc.pid)

        failures: list[str] = []
        answered: set[str] = set()
        peak = {"models_bytes": 0.0, "rss_kib": 0}
        stop = threading.Event()

        def client(seed: int) -> None:
            rng = random.Random(seed)
            session = requests.Session()
            names = on_demand + ["pinned_a", "pinned_b"]
            while not stop.is_set():
                name = rng.choice(names)
                body = {"inputs": [{"name": "x", "shape": [1, width], "datatype": "FP32", "data": [0.0] * width}]}
                try:
                    resp = session.post(f"{server.base_url}/v2/models/{name}/infer", json=body, timeout=30)
                    if resp.status_code != 200:
                        failures.append(f"{name}: {resp.status_code} {resp.text[:200]}")
                    else:
                        answered.add(name)
                except Exception as error:  # noqa: BLE001 - any failure counts
                    failures.append(f"{name}: {error!r}")

        def monitor() -> None:
            while not stop.is_set():
                text = requests.get(f"{server.base_url}/metrics", timeout=10).text
                peak["models_bytes"] = max(peak["models_bytes"], metric_sum(text, "swerve_models_memory_bytes"))
                peak["rss_kib"] = max(peak["rss_kib"], rss_kib(server.process.proc.pid))
                pinned = [e for e in index(server) if e["name"].startswith("pinned")]
                if any(e["lifecycle"] != "AVAILABLE" for e in pinned):
                    failures.append(f"a pinned model left memory: {pinned}")
                time.sleep(0.1)

        # Every model once, in order, then random traffic.
        for name in on_demand:
            resp = infer(server, name, width=width)
            assert resp.status_code == 200, resp.text
            answered.add(name)
        threads = [threading.Thread(target=client, args=(s,), daemon=True) for s in range(6)]
        threads.append(threading.Thread(target=monitor, daemon=True))
        for t in threads:
            t.start()
        time.sleep(8)
        stop.set()
        for t in threads:
            t.join(timeout=40)

        assert not failures, failures[:5]
        assert answered >= set(on_demand) | {"pinned_a", "pinned_b"}
        text = requests.get(f"{server.base_url}/metrics", timeout=10).text
        assert metric_sum(text, "swerve_model_evictions_total") >= 20, "evictions are counted"
        assert metric_sum(text, "swerve_model_evictions_total", 'model="pinned') == 0
        assert metric_sum(text, "swerve_model_load_wait_seconds_count") > 0
        assert metric_sum(text, "swerve_memory_budget_bytes") == budget
        page = requests.get(f"{server.base_url}/status.json", timeout=10).json()
        assert page["memory"]["budget_bytes"] == budget and page["memory"]["evictions"] >= 20, page["memory"]
        assert 0 < page["memory"]["models_bytes"] <= budget
        # Requests that waited for a load are counted on the version that answered them.
        assert metric_sum(text, 'swerve_requests_total{model="",') == 0
        # The measured total stays within the budget; the process's RSS grows by at most the
        # budget plus 24 MiB (allocator slack, HTTP buffers, thread stacks of the versions' batchers).
        assert peak["models_bytes"] <= budget, peak
        assert peak["rss_kib"] - rss_before <= (budget + 24 * MB) / 1024, (peak, rss_before)

        resp = infer(server, "huge", width=1400)
        assert resp.status_code == 503 and "more than the whole memory budget" in resp.text, resp.text
        huge = entry(server, "huge")
        assert huge["lifecycle"] == "FAILED" and "--memory-budget" in huge["reason"], huge
        resp = infer(server, "broken", width=width)
        assert resp.status_code == 503 and "could not be loaded" in resp.text and "broken" in resp.text, resp.text
    finally:
        finish_server(server)


def test_idle_models_unload_and_load_again(tmp_path):
    store = tmp_path / "models"
    publish(store, "idle", 1, matmul_model(64))
    (store / "idle" / "config.json").write_text('{"load": "on_demand", "idle_timeout_s": 1}')
    server = start(store, ["--poll-interval", "0"])
    try:
        assert entry(server, "idle")["lifecycle"] == "UNLOADED"
        assert infer(server, "idle", width=64).status_code == 200
        assert entry(server, "idle")["lifecycle"] == "AVAILABLE"
        deadline = time.monotonic() + 10
        while entry(server, "idle")["lifecycle"] != "UNLOADED" and time.monotonic() < deadline:
            time.sleep(0.1)
        idle = entry(server, "idle")
        assert idle["lifecycle"] == "UNLOADED" and "idle" in idle["reason"], idle
        assert infer(server, "idle", width=64).status_code == 200
        text = requests.get(f"{server.base_url}/metrics", timeout=10).text
        assert metric_sum(text, "swerve_model_evictions_total", 'reason="idle"') == 1
    finally:
        finish_server(server)


def test_shutdown_during_loads(tmp_path):
    """SIGTERM while on-demand loads run and requests wait for them: every request is answered
    (served, or 503 with the reason), the daemon exits 0 and says it stopped."""
    store = tmp_path / "models"
    names = [f"m{i}" for i in range(8)]
    for i, name in enumerate(names):
        publish(store, name, 1, matmul_model(1024, seed=i))
    server = start(store, ["--poll-interval", "0", "--load-on-demand", "--load-workers", "1"])
    results: list[object] = []

    def ask(name: str) -> None:
        try:
            results.append(infer(server, name, width=1024).status_code)
        except Exception as error:  # noqa: BLE001
            results.append(repr(error))

    threads = [threading.Thread(target=ask, args=(n,), daemon=True) for n in names]
    for t in threads:
        t.start()
    time.sleep(0.3)
    status = server.process.stop(timeout=30)
    for t in threads:
        t.join(timeout=10)
    assert status == 0, server.process.output[-3000:]
    assert "event=stopped" in server.process.output
    assert len(results) == len(names) and all(r in (200, 503) for r in results), results
