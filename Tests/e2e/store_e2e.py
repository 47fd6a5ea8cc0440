"""Helpers for the model-store tests: version-stamped ONNX models made with `onnx.helper`, atomic
publishing into a store, a swerve started over its own store, the management port.

A "stamped" model computes y = x + version (x: FP32 [batch, 4]), so every answer says which
version computed it.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import onnx
import requests
from onnx import TensorProto, helper, numpy_helper

from swerve_e2e import Server, SwerveProcess, swerve_binary

STEP_TIMEOUT_S = 15.0


def stamped_model(version: int, padding_floats: int = 0) -> bytes:
    """y = x + version; `padding_floats` adds a weight (used, so it is mapped and read) of that size."""
    nodes = [helper.make_node("Add", ["x", "c"], ["y0"])]
    inits = [numpy_helper.from_array(np.full([4], float(version), dtype=np.float32), "c")]
    if padding_floats:
        # y = y0 + 0 * sum(w): the weight is read by every inference but changes nothing.
        rows = max(padding_floats // 4, 1)
        inits.append(numpy_helper.from_array(np.zeros([rows, 4], dtype=np.float32), "w"))
        inits.append(numpy_helper.from_array(np.zeros([1, rows], dtype=np.float32), "z"))
        nodes += [helper.make_node("MatMul", ["z", "w"], ["p"]), helper.make_node("Add", ["y0", "p"], ["y"])]
    else:
        nodes[0] = helper.make_node("Add", ["x", "c"], ["y"])
    graph = helper.make_graph(
        nodes, "stamped",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def unsupported_model() -> bytes:
    """A well-formed model whose one operator swerve does not implement."""
    graph = helper.make_graph(
        [helper.make_node("SwerveNoSuchOperator", ["x"], ["y"])], "unsupported",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def publish(store: Path, model: str, version: int, data: bytes) -> None:
    """Copies a version in atomically, as docs/model-store.md tells users to: write it under a
    hidden name in the model's directory (same file system), then rename the directory."""
    staging = store / model / f".staging-{version}"
    staging.mkdir(parents=True)
    (staging / "model.onnx").write_bytes(data)
    os.rename(staging, store / model / str(version))


def write_config(store: Path, model: str, text: str) -> None:
    """Replaces config.json atomically (write a temporary file, rename it over)."""
    temporary = store / model / ".config.json.tmp"
    temporary.write_text(text)
    os.rename(temporary, store / model / "config.json")


def start(store: Path, extra: list[str]) -> Server:
    """swerve over `store` with ports picked by the kernel and `extra` flags."""
    args = [str(swerve_binary()), "serve", "--model-store", str(store), "--host", "127.0.0.1",
            "--port", "0", "--management-host", "127.0.0.1", "--management-port", "0"] + extra
    process = SwerveProcess(args)
    process.wait_for_port()
    process.wait_until_live()
    return Server(process, process.wait_until_ready())


def management_port(server: Server) -> int:
    match = re.search(r"management_port=(\d+)", server.process.output)
    assert match, f"no management_port=N in the output:\n{server.process.output}"
    return int(match.group(1))


def management_url(server: Server) -> str:
    return f"http://127.0.0.1:{management_port(server)}"


def index(server: Server, token: str | None = None) -> list[dict]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = requests.post(management_url(server) + "/v2/repository/index", headers=headers, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


def version_state(server: Server, model: str, version: int, token: str | None = None) -> str | None:
    """The version's lifecycle state (START, LOADING, AVAILABLE, ...) in the index, or None."""
    for entry in index(server, token):
        if entry["name"] == model and entry.get("version") == str(version):
            return entry.get("lifecycle")
    return None


def wait_until(what: str, condition, server: Server, timeout: float = STEP_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        assert server.process.alive, f"swerve died while waiting for {what}:\n{server.process.output}"
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; index: {index(server)}\n"
                         f"output:\n{server.process.output[-4000:]}")


def raw_request(port: int, method: str, path: str, body: bytes = b"", headers: dict | None = None) -> tuple[int, str]:
    """Sends the path exactly as given (no client-side normalisation of `..`)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


def rss_kib(pid: int) -> int:
    """Resident set size of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc status")


def remove_version(store: Path, model: str, version: int) -> None:
    shutil.rmtree(store / model / str(version))
