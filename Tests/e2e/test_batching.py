"""Dynamic batching, overload answers and binary tensors, end to end.

Each test store holds copies of the `mlp` test model under different batching configurations, and
a deliberately slow model (a chain of 512x512 MatMuls, made here with onnx.helper) for the queue
and deadline tests.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import pytest
import requests
from onnx import TensorProto, helper, numpy_helper

from test_operations import parse_metrics, value
from swerve_e2e import TEST_STORE, assert_error, assert_ok, finish_server, reference, start_server

WINDOWS = {
    "mlp_natural": {"max_batch_size": 16, "dynamic_batching": {"max_queue_delay_us": 0}},
    "mlp_window": {"max_batch_size": 16, "dynamic_batching": {"max_queue_delay_us": 2000, "preferred_batch_sizes": [8]}},
    "mlp_adaptive": {"max_batch_size": 16, "dynamic_batching": {"adaptive": True}, "instance_group": [{"count": 2}]},
}


def slow_model(path: Path, layers: int = 40, width: int = 512) -> None:
    """x [N, width] -> y: `layers` MatMuls with one shared weight (slow per row, small file)."""
    rng = np.random.default_rng(7)
    w = (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)
    nodes, prev = [], "x"
    for i in range(layers):
        out = "y" if i == layers - 1 else f"h{i}"
        nodes.append(helper.make_node("MatMul", [prev, "w"], [out], name=f"mm{i}"))
        prev = out
    graph = helper.make_graph(
        nodes, "slow", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", width])], [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


@pytest.fixture(scope="module")
def batching_server(tmp_path_factory):
    store = tmp_path_factory.mktemp("batching") / "models"
    for name, config in WINDOWS.items():
        shutil.copytree(TEST_STORE / "mlp" / "2", store / name / "1")
        (store / name / "config.json").write_text(json.dumps(config))
    slow_model(store / "slow" / "1" / "model.onnx")
    (store / "slow_q").mkdir()
    shutil.copytree(store / "slow" / "1", store / "slow_q" / "1")
    (store / "slow_q" / "config.json").write_text(json.dumps(
        {"max_batch_size": 64, "dynamic_batching": {"max_queue_size": 2}}))
    srv = start_server(store)
    yield srv
    finish_server(srv)


_local = threading.local()


def infer(srv, model: str, x: np.ndarray, **extra) -> requests.Response:
    """One V2 request, on a keep-alive session of the calling thread's own."""
    body = {"inputs": [{"name": "input" if model.startswith("mlp") else "x", "shape": list(x.shape),
                        "datatype": "FP32", "data": x.ravel().tolist()}], **extra}
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
    return _local.session.post(f"{srv.base_url}/v2/models/{model}/infer", json=body, timeout=60)


@pytest.mark.parametrize("model", sorted(WINDOWS))
def test_concurrent_clients_get_their_own_answers(batching_server, model):
    rng = np.random.default_rng(hash(model) % 1000)
    inputs = [rng.standard_normal((1 + i % 3, 8)).astype(np.float32) for i in range(96)]

    def one(x):
        return infer(batching_server, model, x)

    with ThreadPoolExecutor(max_workers=32) as pool:
        responses = list(pool.map(one, inputs))
    for x, resp in zip(inputs, responses):
        body = assert_ok(resp)
        out = body["outputs"][0]
        expected = reference("mlp", 2, {"input": x})["output"]
        assert out["shape"] == list(expected.shape)
        np.testing.assert_allclose(np.array(out["data"], dtype=np.float32).reshape(expected.shape), expected,
                                   rtol=1e-4, atol=1e-5)


def test_config_reports_batching(batching_server):
    config = assert_ok(batching_server.get("/v2/models/mlp_window/config"))
    assert config["max_batch_size"] == 16
    assert config["input"][0]["dims"] == [8]  # without the batch dimension, as Triton reports it
    assert config["dynamic_batching"]["max_queue_delay_microseconds"] == 2000
    assert config["dynamic_batching"]["preferred_batch_size"] == [8]
    assert config["instance_group"][0]["count"] == 1
    assert assert_ok(batching_server.get("/v2/models/mlp_adaptive/config"))["instance_group"][0]["count"] == 2


def test_too_many_rows_is_400(batching_server):
    assert "max_batch_size is 16" in assert_error(infer(batching_server, "mlp_natural", np.zeros((17, 8), np.float32)), 400)


def open_fds(srv) -> int:
    return len(os.listdir(f"/proc/{srv.process.proc.pid}/fd"))


def rss_kb(srv) -> int:
    for line in Path(f"/proc/{srv.process.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_full_queue_gives_503_and_leaks_nothing(batching_server):
    x = np.ones((32, 512), np.float32)
    assert_ok(infer(batching_server, "slow_q", x))  # warm up
    fds, rss = open_fds(batching_server), rss_kb(batching_server)
    statuses = []
    for _ in range(3):
        with ThreadPoolExecutor(max_workers=24) as pool:
            statuses += [r.status_code for r in pool.map(lambda _: infer(batching_server, "slow_q", x), range(24))]
    assert 503 in statuses and 200 in statuses, statuses
    assert set(statuses) <= {200, 503}
    # Every 503 is counted as an overload in the metrics, every 200 as a success.
    samples = parse_metrics(batching_server.get("/metrics").text)
    labels = {"model": "slow_q", "version": "1", "protocol": "v2"}
    assert value(samples, "swerve_requests_total", **labels, outcome="overloaded") == statuses.count(503)
    assert value(samples, "swerve_requests_total", **labels, outcome="success") == statuses.count(200) + 1
    resp = infer(batching_server, "slow_q", x)
    assert resp.status_code in (200, 503)
    if resp.status_code == 503:
        assert "queue is full" in resp.json()["error"]
    # Connections are closed by the clients; nothing stays suspended or open on the server.
    assert open_fds(batching_server) <= fds + 2
    assert rss_kb(batching_server) < rss + 32 * 1024


def test_expired_deadline_gives_504_and_is_not_run(batching_server):
    # A long request (2048 rows through 40 layers, sent as binary so that it queues at once) keeps
    # the model's only worker busy; a request with a 1 ms deadline queued behind it expires.
    big = np.ones((2048, 512), np.float32)
    body, head = binary_request({"x": big}, ["y"], True)
    small = np.ones((1, 512), np.float32)
    results = {}

    def long_one():
        results["long"] = requests.post(f"{batching_server.base_url}/v2/models/slow/infer", data=body,
                                        headers={"Inference-Header-Content-Length": str(head)}, timeout=120)

    t = threading.Thread(target=long_one)
    t.start()
    threading.Event().wait(0.1)
    results["short"] = infer(batching_server, "slow", small, parameters={"timeout": 1000})
    t.join()
    assert results["long"].status_code == 200
    assert "past its deadline" in assert_error(results["short"], 504)
    assert assert_error(infer(batching_server, "slow", small, parameters={"timeout": -5}), 400)


def test_clients_that_disconnect_while_waiting(batching_server):
    body = json.dumps({"inputs": [{"name": "x", "shape": [64, 512], "datatype": "FP32",
                                   "data": [1.0] * (64 * 512)}]}).encode()
    host, port = batching_server.host_port.rsplit(":", 1)
    for _ in range(12):
        s = socket.create_connection((host, int(port)))
        s.sendall(b"POST /v2/models/slow/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        s.close()  # gone before the answer
    # The daemon neither crashed nor wedged: it answers, and a fresh request still runs.
    assert batching_server.process.alive
    assert_ok(infer(batching_server, "slow", np.ones((1, 512), np.float32)))


def binary_request(inputs: dict[str, np.ndarray], outputs: list[str], binary_outputs: bool) -> tuple[bytes, int]:
    header = {"inputs": [{"name": n, "shape": list(a.shape), "datatype": "FP32",
                          "parameters": {"binary_data_size": a.nbytes}} for n, a in inputs.items()],
              "outputs": [{"name": n, "parameters": {"binary_data": binary_outputs}} for n in outputs]}
    head = json.dumps(header).encode()
    return head + b"".join(a.astype("<f4").tobytes() for a in inputs.values()), len(head)


def test_binary_tensors_in_and_out(batching_server):
    x = np.random.default_rng(3).standard_normal((5, 8)).astype(np.float32)
    body, head = binary_request({"input": x}, ["output"], True)
    resp = batching_server.post("/v2/models/mlp_natural/infer", data=body,
                                headers={"Inference-Header-Content-Length": str(head)})
    assert resp.status_code == 200, resp.text[:300]
    assert resp.headers["Content-Type"] == "application/octet-stream"
    n = int(resp.headers["Inference-Header-Content-Length"])
    meta = json.loads(resp.content[:n])
    out = meta["outputs"][0]
    assert out["parameters"]["binary_data_size"] == 5 * 4 * 4 and "data" not in out
    got = np.frombuffer(resp.content[n:], dtype="<f4").reshape(out["shape"])
    np.testing.assert_allclose(got, reference("mlp", 2, {"input": x})["output"], rtol=1e-4, atol=1e-5)
    # Binary in, JSON out.
    body, head = binary_request({"input": x}, ["output"], False)
    resp = batching_server.post("/v2/models/mlp_natural/infer", data=body,
                                headers={"Inference-Header-Content-Length": str(head)})
    data = assert_ok(resp)["outputs"][0]["data"]
    np.testing.assert_allclose(np.array(data, np.float32).reshape(5, 4), got, rtol=0, atol=0)


@pytest.mark.parametrize("size_delta,fragment", [(4, "binary bytes left"), (-4, "after the inputs")])
def test_binary_size_mismatch_is_400(batching_server, size_delta, fragment):
    x = np.ones((2, 8), np.float32)
    body, head = binary_request({"input": x}, ["output"], True)
    header = json.loads(body[:head])
    header["inputs"][0]["parameters"]["binary_data_size"] += size_delta
    head_bytes = json.dumps(header).encode()
    payload = head_bytes + x.tobytes()
    resp = batching_server.post("/v2/models/mlp_natural/infer", data=payload,
                                headers={"Inference-Header-Content-Length": str(len(head_bytes))})
    message = assert_error(resp, 400)
    assert fragment in message or "needs" in message
    bad = batching_server.post("/v2/models/mlp_natural/infer", data=payload,
                               headers={"Inference-Header-Content-Length": "999999"})
    assert_error(bad, 400)


def test_raw_binary_mode(batching_server):
    x = np.random.default_rng(4).standard_normal((3, 8)).astype(np.float32)
    resp = batching_server.post("/v2/models/mlp_natural/infer", data=x.tobytes(),
                                headers={"Inference-Header-Content-Length": "0"})
    assert resp.status_code == 200, resp.text[:300]
    n = int(resp.headers["Inference-Header-Content-Length"])
    out = json.loads(resp.content[:n])["outputs"][0]
    got = np.frombuffer(resp.content[n:], dtype="<f4").reshape(out["shape"])
    np.testing.assert_allclose(got, reference("mlp", 2, {"input": x})["output"], rtol=1e-4, atol=1e-5)


def test_tritonclient_binary_equals_json(batching_server):
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(batching_server.host_port)
    x = np.random.default_rng(5).standard_normal((7, 8)).astype(np.float32)
    answers = {}
    for binary in (False, True):
        inp = httpclient.InferInput("input", list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=binary)
        out = httpclient.InferRequestedOutput("output", binary_data=binary)
        answers[binary] = client.infer("mlp_window", [inp], outputs=[out]).as_numpy("output")
    np.testing.assert_array_equal(answers[True], answers[False])
    np.testing.assert_allclose(answers[True], reference("mlp", 2, {"input": x})["output"], rtol=1e-4, atol=1e-5)
    client.close()
