"""Graceful shutdown: SIGTERM while 32 clients have requests in flight.

The model is a chain of MatMuls with a permutation matrix (built here with onnx.helper), slow
enough that the requests are still running when the signal comes, and exact: the answer is a
permutation of the input, so a partial or mixed-up answer shows.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time

import numpy as np
import onnx
import pytest
import requests
from onnx import TensorProto, helper

from swerve_e2e import SwerveProcess, assert_ok, swerve_binary, v2_input

CLIENTS = 32
ROWS, WIDTH, LAYERS = 32, 256, 2000
SHUTDOWN_TIMEOUT_S = 120


def write_slow_model(store, permutation: np.ndarray) -> None:
    weights = np.zeros((WIDTH, WIDTH), dtype=np.float32)
    weights[np.arange(WIDTH), permutation] = 1.0
    nodes, previous = [], "x"
    for i in range(LAYERS):
        nodes.append(helper.make_node("MatMul", [previous, "w"], [f"h{i}"]))
        previous = f"h{i}"
    nodes.append(helper.make_node("Identity", [previous], ["y"]))
    graph = helper.make_graph(
        nodes, "slow",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", WIDTH])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", WIDTH])],
        [helper.make_tensor("w", TensorProto.FLOAT, [WIDTH, WIDTH], weights.reshape(-1).tolist())])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    (store / "slow" / "1").mkdir(parents=True)
    onnx.save_model(model, str(store / "slow" / "1" / "model.onnx"))
    # The batcher holds requests until all the clients' rows are queued (or 5 s pass), then runs
    # them as one batch: every request is accepted and in flight when the signal comes, whatever
    # the machine's speed.
    (store / "slow" / "config.json").write_text(json.dumps(
        {"max_batch_size": CLIENTS * ROWS, "dynamic_batching": {"max_queue_delay_us": 5_000_000}}))


def server_connections(port: int) -> tuple[int, int]:
    """(established connections to `port`, connections waiting in its accept queue), from the
    kernel's tables: the server has accepted a connection when it is established and no longer
    queued on the listening socket."""
    established, queued = 0, 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port != port:
                continue
            if fields[3] == "01":
                established += 1
            elif fields[3] == "0A":
                queued += int(fields[4].split(":")[1], 16)
    return established, queued


def test_sigterm_finishes_requests_in_flight(tmp_path):
    rng = np.random.default_rng(7)
    permutation = rng.permutation(WIDTH)
    write_slow_model(tmp_path, permutation)
    process = SwerveProcess([
        str(swerve_binary()), "serve", "--model-store", str(tmp_path), "--host", "127.0.0.1", "--port", "0",
        "--management-port", "0", "--poll-interval", "0",
        "--shutdown-timeout", str(SHUTDOWN_TIMEOUT_S)])
    try:
        port = process.wait_for_port()
        process.wait_until_live()
        assert process.wait_until_ready(), f"the slow model did not load:\n{process.output}"
        base = process.base_url
        probe = requests.Session()  # a keep-alive connection opened before the signal
        assert probe.get(base + "/v2/health/ready", timeout=30).status_code == 200

        inputs = [rng.standard_normal((ROWS, WIDTH)).astype(np.float32) for _ in range(CLIENTS)]
        # A power of a permutation matrix is one (0s and one 1.0 per column): exact in float32.
        matrix = np.linalg.matrix_power(_perm_matrix(permutation), LAYERS)
        expected = [x @ matrix for x in inputs]
        bodies = [json.dumps({"inputs": [v2_input("x", x)]}).encode() for x in inputs]
        answers: list[requests.Response | Exception | None] = [None] * CLIENTS

        def client(i: int) -> None:
            try:
                answers[i] = requests.post(
                    f"{base}/v2/models/slow/infer", data=bodies[i], headers={"Content-Type": "application/json"},
                    timeout=300)
            except Exception as error:  # noqa: BLE001 - reported below
                answers[i] = error

        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        # Every client connected and accepted by the server (none left in the accept queue), then
        # the signal. The probe's keep-alive connection is one more.
        deadline = time.monotonic() + 120
        while True:
            established, queued = server_connections(port)
            if established >= CLIENTS + 1 and queued == 0:
                break
            assert time.monotonic() < deadline, f"the {CLIENTS} clients never were all connected"
            time.sleep(0.005)
        done = [describe(a) for a in answers if a is not None]
        assert not done, f"requests finished before all had started: {done[:3]}; make the slow model slower"
        os.kill(process.proc.pid, signal.SIGTERM)

        # New connections are refused once the server has quiesced.
        refused = False
        while not refused and process.alive:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
                time.sleep(0.01)
            except (ConnectionRefusedError, ConnectionResetError):
                # Refused, or reset: a connection that reached the backlog in the instant before the
                # listening socket was shut down is reset by the kernel, never accepted by swerve.
                refused = True
        assert refused, "the server exited before refusing a new connection; make the slow model slower"
        # The connection opened before the signal still works, and reports not-ready.
        ready = probe.get(base + "/v2/health/ready", timeout=30)
        assert ready.status_code == 503, ready.text
        assert "shutting down" in ready.json()["error"]

        for t in threads:
            t.join(timeout=300)
        returncode = process.proc.wait(timeout=SHUTDOWN_TIMEOUT_S + 30)
        for i, answer in enumerate(answers):
            assert isinstance(answer, requests.Response), f"client {i} got no answer: {answer!r}"
            body = assert_ok(answer)
            y = np.array(body["outputs"][0]["data"], dtype=np.float32).reshape(ROWS, WIDTH)
            np.testing.assert_array_equal(y, expected[i], err_msg=f"client {i}")
        assert returncode == 0, f"swerve exited with {returncode}:\n{process.output}"
        output = process.output
        assert "event=shutdown" in output and "event=stopped" in output, output
        assert "event=model_unloaded" in output and "model=slow" in output, output
    finally:
        process.stop()


def describe(answer) -> str:
    if isinstance(answer, requests.Response):
        return f"{answer.status_code} {answer.text[:200]}"
    return repr(answer)


def _perm_matrix(permutation: np.ndarray) -> np.ndarray:
    m = np.zeros((WIDTH, WIDTH), dtype=np.float32)
    m[np.arange(WIDTH), permutation] = 1.0
    return m
