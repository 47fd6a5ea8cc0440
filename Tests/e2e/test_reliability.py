"""Nothing a request or a file does takes the daemon down or leaves a model serving nothing.

Each test is one defect of the reliability issue, run against the real binary: requests whose
outputs would need tens of GiB (413 saying how much, the daemon alive), a corpus of hostile model
files and configs loaded while another model serves traffic, a model whose newest version is
broken and whose serving version's directory is removed, and config errors that must be visible
where people look (index, TF Serving status, the management answer).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
import requests
from onnx import TensorProto, helper, numpy_helper

from store_e2e import (index, management_url, publish, remove_version, stamped_model, start, wait_until,
                       write_config)
from swerve_e2e import finish_server

X = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [0, 0, 0, 0]}]}


def onnx_bytes(nodes, inputs, outputs, initializers=(), opset: int = 17) -> bytes:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model.SerializeToString()


def outer_sum_model() -> bytes:
    """y = a + b with a: [n, 1], b: [1, m]: an ordinary broadcasting Add whose output is n x m."""
    return onnx_bytes(
        [helper.make_node("Add", ["a", "b"], ["y"])],
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["n", 1]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, "m"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "m"])])


def self_attention_scores_model() -> bytes:
    """scores = x @ x^T with x: [1, seq, 8]: an attention score matrix with a dynamic sequence."""
    return onnx_bytes(
        [helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 2, 1]),
         helper.make_node("MatMul", ["x", "xt"], ["scores"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "seq", 8])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, "seq", "seq"])])


def cyclic_model() -> bytes:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x", ], ["a"]), helper.make_node("Add", ["a", "c"], ["b"]),
         helper.make_node("Relu", ["b"], ["c"])], "cyclic",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, ["batch", 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def huge_constant_model() -> bytes:
    """y = x + ConstantOfShape([2^34]): 64 GiB of zeros computed from constants."""
    shape = numpy_helper.from_array(np.array([1 << 34], dtype=np.int64), "shape")
    return onnx_bytes(
        [helper.make_node("ConstantOfShape", ["shape"], ["zeros"]), helper.make_node("Add", ["x", "zeros"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1 << 34])], [shape])


def escaping_external_data_model() -> bytes:
    """A weight whose external data file lies outside the version directory."""
    weight = TensorProto()
    weight.name, weight.data_type = "w", TensorProto.FLOAT
    weight.dims.extend([4])
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "../../../escape.bin"), ("offset", "0"), ("length", "16")):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    return onnx_bytes(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])], [weight])


def huge_dims_model() -> bytes:
    """A declared input of 2^62 x 2^62 elements (its size overflows) on an otherwise valid graph."""
    return onnx_bytes(
        [helper.make_node("Relu", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1 << 62, 1 << 62])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1 << 62, 1 << 62])])


class Traffic:
    """Sends requests to one model on a thread until stopped; counts what failed."""

    def __init__(self, server, path: str, body: dict):
        self.server, self.path, self.body = server, path, body
        self.ok = 0
        self.failures: list[str] = []
        self.running = True
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        session = requests.Session()
        deadline = time.monotonic() + 120  # bounded even if the test forgets to stop it
        while self.running and time.monotonic() < deadline:
            try:
                resp = session.post(self.server.base_url + self.path, json=self.body, timeout=10)
                if resp.status_code == 200:
                    self.ok += 1
                else:
                    self.failures.append(f"{resp.status_code} {resp.text[:200]}")
            except requests.RequestException as error:
                self.failures.append(repr(error))
            time.sleep(0.002)

    def stop(self):
        self.running = False
        self.thread.join(timeout=15)


def error_of(resp: requests.Response, status: int) -> str:
    assert resp.status_code == status, f"{resp.status_code}: {resp.text[:500]}"
    assert resp.headers.get("Content-Type", "").startswith("application/json"), resp.headers
    return resp.json()["error"]


@pytest.fixture
def memory_server(tmp_path):
    store = tmp_path / "models"
    publish(store, "outer", 1, outer_sum_model())
    publish(store, "scores", 1, self_attention_scores_model())
    publish(store, "base", 1, stamped_model(1))
    server = start(store, ["--poll-interval", "0"])
    yield server
    finish_server(server)


def test_a_1mb_broadcast_request_that_would_need_64gib_gets_413(memory_server):
    # The request: a[131072, 1] + b[1, 131072] is 64 GiB of output from a 1 MB body.
    n = 131072
    body = {"inputs": [{"name": "a", "shape": [n, 1], "datatype": "FP32", "data": [0] * n},
                       {"name": "b", "shape": [1, n], "datatype": "FP32", "data": [0] * n}]}
    message = error_of(memory_server.post("/v2/models/outer/infer", json=body), 413)
    assert "64.0 GiB" in message and "--max-request-memory" in message, message
    assert memory_server.process.alive
    small = {"inputs": [{"name": "a", "shape": [2, 1], "datatype": "FP32", "data": [1, 2]},
                        {"name": "b", "shape": [1, 3], "datatype": "FP32", "data": [10, 20, 30]}]}
    resp = memory_server.post("/v2/models/outer/infer", json=small)
    assert resp.status_code == 200, resp.text
    assert resp.json()["outputs"][0]["data"] == [11, 21, 31, 12, 22, 32]


def test_an_attention_request_with_a_huge_sequence_gets_413(memory_server):
    # seq 131072 x 8 floats is a 4 MB binary body; the score matrix would be 64 GiB.
    seq = 131072
    data = np.zeros([1, seq, 8], dtype=np.float32).tobytes()
    header = json.dumps({"inputs": [{"name": "x", "shape": [1, seq, 8], "datatype": "FP32",
                                      "parameters": {"binary_data_size": len(data)}}]}).encode()
    resp = requests.post(memory_server.base_url + "/v2/models/scores/infer", data=header + data, timeout=60,
                         headers={"Inference-Header-Content-Length": str(len(header)),
                                  "Content-Type": "application/octet-stream"})
    message = error_of(resp, 413)
    assert "would need" in message and "GiB" in message, message
    assert memory_server.post("/v2/models/base/infer", json=X).status_code == 200
    assert memory_server.process.alive


def test_the_request_limit_is_a_flag(tmp_path):
    store = tmp_path / "models"
    publish(store, "outer", 1, outer_sum_model())
    server = start(store, ["--poll-interval", "0", "--max-request-memory", "1M"])
    try:
        n = 1024  # a 4 MiB output
        body = {"inputs": [{"name": "a", "shape": [n, 1], "datatype": "FP32", "data": [0] * n},
                           {"name": "b", "shape": [1, n], "datatype": "FP32", "data": [0] * n}]}
        message = error_of(server.post("/v2/models/outer/infer", json=body), 413)
        assert "4.0 MiB" in message and "1.0 MiB" in message, message
        # TF Serving's API answers the same way.
        rows = {"inputs": {"a": [[0]] * n, "b": [[0] * n]}}
        assert server.post("/v1/models/outer:predict", json=rows).status_code == 413
    finally:
        finish_server(server)


def test_hostile_files_load_under_traffic_without_harm(tmp_path):
    store = tmp_path / "store" / "models"
    publish(store, "base", 1, stamped_model(1))
    (tmp_path / "store" / "escape.bin").write_bytes(b"\0" * 16)
    secret_file = tmp_path / "secret.json"
    secret_file.write_text(json.dumps({"AKIA" + "SECRETSECRET" * 10: "x"}))
    server = start(store, ["--poll-interval", "0.2"])
    traffic = Traffic(server, "/v2/models/base/infer", X)
    try:
        good = stamped_model(1)
        hostile = {
            "truncated": good[: len(good) // 2],
            "empty": b"",
            "garbage": os.urandom(4096),
            "cyclic": cyclic_model(),
            "huge_constant": huge_constant_model(),
            "escaping": escaping_external_data_model(),
            "huge_dims": huge_dims_model(),
            "future_opset": onnx_bytes(
                [helper.make_node("Relu", ["x"], ["y"])],
                [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], opset=10000),
        }
        for name, data in hostile.items():
            publish(store, name, 1, data)
        configs = {
            "absurd_count": '{"instance_group": [{"count": 9223372036854775807}]}',
            "float_batch": '{"max_batch_size": 1e30}',
            "nested_typo": '{"max_batch_size": 4, "dynamic_batching": {"max_queue_delay": 100}}',
        }
        for name, text in configs.items():
            publish(store, name, 1, good)
            write_config(store, name, text)
        publish(store, "linked", 1, good)
        os.symlink(secret_file, store / "linked" / "config.json")

        everything = list(hostile) + list(configs) + ["linked"]

        def settled():
            entries = {e["name"]: e for e in index(server)}
            return all(n in entries and entries[n]["state"] == "UNAVAILABLE" for n in everything)

        wait_until("every hostile model to be refused", settled, server, timeout=60)
        reasons = {e["name"]: e["reason"] for e in index(server)}
        expected = {
            "truncated": "truncated", "cyclic": "cycle", "huge_constant": "would need", "escaping": "escape",
            "future_opset": "opset 10000", "absurd_count": "out of range", "float_batch": "max_batch_size",
            "nested_typo": "max_queue_delay", "huge_dims": "",
        }
        for name, fragment in expected.items():
            assert fragment.lower() in reasons[name].lower(), f"{name}: {reasons[name]}"
        # A linked config is quoted at most 40 characters deep, anywhere it is shown.
        assert "SECRET" * 8 not in json.dumps(reasons["linked"])
        status = server.get("/status.json")
        assert status.status_code == 200 and "SECRET" * 8 not in status.text
        assert server.process.alive
    finally:
        traffic.stop()
        finish_server(server)
    assert traffic.ok > 0
    assert traffic.failures == [], traffic.failures[:5]


def test_a_model_keeps_serving_when_its_serving_version_is_removed_after_a_broken_one(tmp_path):
    # The issue's sequence: v1-v3 (v3 serving), a truncated v4 fails, v3's directory is removed.
    store = tmp_path / "models"
    for v in (1, 2, 3):
        publish(store, "m", v, stamped_model(v))
    server = start(store, ["--poll-interval", "0.1"])
    traffic = Traffic(server, "/v2/models/m/infer", X)
    try:
        assert server.post("/v2/models/m/infer", json=X).json()["model_version"] == "3"
        good = stamped_model(4)
        publish(store, "m", 4, good[: len(good) // 2])
        wait_until("v4 to fail", lambda: any(e.get("version") == "4" and e["lifecycle"] == "FAILED"
                                             for e in index(server) if e["name"] == "m"), server)
        remove_version(store, "m", 3)
        wait_until("v2 to serve", lambda: server.post("/v2/models/m/infer", json=X).json().get("model_version") == "2",
                   server)
        reason = next(e["reason"] for e in index(server) if e["name"] == "m" and e.get("version") == "2")
        assert "serves in place of" in reason, reason
        time.sleep(0.5)
    finally:
        traffic.stop()
        finish_server(server)
    assert traffic.ok > 0
    assert traffic.failures == [], f"{len(traffic.failures)} of {traffic.ok + len(traffic.failures)}: {traffic.failures[:3]}"


def test_a_rejected_config_is_visible_where_people_look(tmp_path):
    store = tmp_path / "models"
    publish(store, "m", 1, stamped_model(1))
    write_config(store, "m", '{"version_labels": {"stable": 1}}')
    server = start(store, ["--poll-interval", "0.1"])
    try:
        write_config(store, "m", '{"version_labels": {"stable": 1}, "max_batch_size": 1e30}')

        def reason():
            return next((e["reason"] for e in index(server) if e["name"] == "m" and e.get("version") == "1"), "")

        wait_until("the rejected config to show", lambda: "max_batch_size" in reason(), server)
        entry = next(e for e in index(server) if e["name"] == "m")
        assert entry["state"] == "READY", "the previous configuration keeps serving"
        assert "out of range" in reason() and "previous configuration" in reason(), reason()
        status = server.get("/v1/models/m").json()["model_version_status"][0]
        assert status["state"] == "AVAILABLE" and "max_batch_size" in status["status"]["error_message"], status
        resp = requests.post(management_url(server) + "/v2/repository/models/m/load", timeout=30)
        message = error_of(resp, 400)
        assert "max_batch_size" in message and "keep serving" in message, message
        assert server.post("/v2/models/m/infer", json=X).status_code == 200
    finally:
        finish_server(server)
