"""Helpers for the end-to-end tests: the real `swerve` binary on a real socket.

The binary comes from env `SWERVE_BIN` (default `.build/release/swerve` under the repo root).
The session fixture `server` copies the test model store (`Tests/e2e/models` plus the bundled
`models/digits`) into a temporary directory, starts

    SWERVE_BIN serve --model-store TMP --host 127.0.0.1 --port 0
                     --management-host 127.0.0.1 --management-port 0 --poll-interval 0

reads its output until a line with `http_port=N` appears, waits for `/v2/health/live`, and
kills it at teardown. Tests that use a server fail if the process dies under them.

Run: `.venv/bin/python -m pytest -q Tests/e2e` (needs requests, numpy, onnxruntime,
tritonclient[http]; no torch).
"""

from __future__ import annotations

import functools
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import requests

E2E_DIR = Path(__file__).resolve().parent
REPO_ROOT = E2E_DIR.parent.parent
TEST_STORE = E2E_DIR / "models"
DIGITS_MODEL_DIR = REPO_ROOT / "models" / "digits"
DATA_DIR = E2E_DIR / "data"

PORT_LINE = re.compile(r"http_port\"?[=:]\"?(\d+)")  # text or JSON logs
START_TIMEOUT_S = 30.0
READY_TIMEOUT_S = 30.0
REQUEST_TIMEOUT_S = 30.0

# Comparison tolerances for float outputs against onnxruntime.
RTOL = 1e-4
ATOL = 1e-5


def swerve_binary() -> Path:
    """The binary under test: $SWERVE_BIN, or .build/release/swerve under the repo root."""
    configured = os.environ.get("SWERVE_BIN")
    path = Path(configured) if configured else REPO_ROOT / ".build" / "release" / "swerve"
    if not path.is_absolute():
        path = (REPO_ROOT / path).resolve()
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"swerve binary not found or not executable at {path}; build it first "
            f"(`swift build -c release`) or point SWERVE_BIN at a built binary",
            pytrace=False,
        )
    return path


class SwerveProcess:
    """One running `swerve serve` process, its collected output and its HTTP port."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.args = args
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._port_found = threading.Event()
        self.port: int | None = None
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,
            env=env,
        )
        # Drain both pipes for the whole life of the process so it never blocks on a full pipe.
        self._readers = [
            threading.Thread(target=self._drain, args=(stream,), daemon=True)
            for stream in (self.proc.stdout, self.proc.stderr)
        ]
        for reader in self._readers:
            reader.start()

    def _drain(self, stream) -> None:
        for line in stream:
            with self._lock:
                self._lines.append(line)
                if self.port is None:
                    match = PORT_LINE.search(line)
                    if match:
                        self.port = int(match.group(1))
                        self._port_found.set()

    @property
    def output(self) -> str:
        with self._lock:
            return "".join(self._lines)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_for_port(self, timeout: float = START_TIMEOUT_S) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._port_found.wait(0.05):
                return self.port
            if not self.alive:
                self._join_readers()
                if self.port is not None:
                    return self.port
                pytest.fail(
                    f"swerve exited with status {self.proc.returncode} before printing "
                    f"'http_port=N'.\ncommand: {' '.join(self.args)}\noutput:\n{self.output}",
                    pytrace=False,
                )
        self.stop()
        pytest.fail(
            f"swerve printed no 'http_port=N' line within {timeout:.0f} s.\n"
            f"command: {' '.join(self.args)}\noutput seen:\n{self.output}",
            pytrace=False,
        )

    def wait_until_live(self, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if not self.alive:
                pytest.fail(f"swerve died while starting (status {self.proc.returncode}).\n"
                            f"output:\n{self.output}", pytrace=False)
            try:
                resp = requests.get(self.base_url + "/v2/health/live", timeout=2)
                if resp.status_code == 200:
                    return
                last = f"status {resp.status_code}: {resp.text[:200]}"
            except requests.RequestException as error:
                last = str(error)
            time.sleep(0.05)
        self.stop()
        pytest.fail(f"GET /v2/health/live did not answer 200 within {timeout:.0f} s "
                    f"(last: {last}).\noutput:\n{self.output}", pytrace=False)

    def wait_until_ready(self, timeout: float = READY_TIMEOUT_S) -> bool:
        """Waits for /v2/health/ready == 200 (models load in the background); False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.alive:
            try:
                if requests.get(self.base_url + "/v2/health/ready", timeout=2).status_code == 200:
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.05)
        return False

    def _join_readers(self) -> None:
        for reader in self._readers:
            reader.join(timeout=2)

    def stop(self, timeout: float = 5) -> int | None:
        """Stops the process (SIGTERM, then SIGKILL after `timeout` s); returns its exit status."""
        if self.alive:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self._join_readers()
        return self.proc.returncode


class Server:
    """A started swerve process plus a keep-alive HTTP session to its inference port."""

    def __init__(self, process: SwerveProcess, ready: bool) -> None:
        self.process = process
        self.ready_at_start = ready
        self.http = requests.Session()

    @property
    def base_url(self) -> str:
        return self.process.base_url

    @property
    def host_port(self) -> str:
        return f"127.0.0.1:{self.process.port}"

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.http.get(self.base_url + path, timeout=REQUEST_TIMEOUT_S, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        return self.http.post(self.base_url + path, timeout=REQUEST_TIMEOUT_S, **kwargs)

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.http.request(method, self.base_url + path, timeout=REQUEST_TIMEOUT_S, **kwargs)

    def close(self) -> None:
        self.http.close()


def raw_post(port: int, path: str, body_size: int, chunk: bytes = b" " * (1 << 20),
             timeout: float = REQUEST_TIMEOUT_S) -> tuple[int, bytes]:
    """POSTs `body_size` bytes of `chunk` filler over a raw socket; returns (status, body).

    Unlike `requests`, this copes with a server that answers (e.g. 413) before it has read the
    whole body and then closes: it stops sending as soon as an answer arrives.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall((f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                      f"Content-Type: application/json\r\nContent-Length: {body_size}\r\n"
                      f"Connection: close\r\n\r\n").encode())
        sent = 0
        try:
            while sent < body_size:
                if select.select([sock], [], [], 0)[0]:
                    break  # the server has answered already
                piece = chunk[:body_size - sent]
                sock.sendall(piece)
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
                head, sep, rest = answer.partition(b"\r\n\r\n")
                length = re.search(rb"(?i)content-length:\s*(\d+)", head)
                if sep and length and len(rest) >= int(length.group(1)):
                    break
        except ConnectionResetError:
            pass
    head, _, rest = answer.partition(b"\r\n\r\n")
    status = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    assert status, f"no HTTP answer after sending {sent} of {body_size} bytes: {answer[:200]!r}"
    return int(status.group(1)), rest


def make_store(destination: Path) -> Path:
    """Copies the test models and the bundled digits model into `destination`."""
    shutil.copytree(TEST_STORE, destination)
    shutil.copytree(DIGITS_MODEL_DIR, destination / "digits")
    return destination


def start_server(store: Path, extra_args: list[str] | None = None) -> Server:
    args = [
        str(swerve_binary()), "serve",
        "--model-store", str(store),
        "--host", "127.0.0.1", "--port", "0",
        "--management-host", "127.0.0.1", "--management-port", "0",
        "--poll-interval", "0",
    ] + list(extra_args or [])
    process = SwerveProcess(args)
    process.wait_for_port()
    process.wait_until_live()
    ready = process.wait_until_ready()
    return Server(process, ready)


def finish_server(server: Server) -> None:
    """Stops a server; fails if it had died before being asked to stop."""
    server.close()
    died = not server.process.alive
    status = server.process.stop()
    if died:
        pytest.fail(f"swerve died during the tests (exit status {status}).\n"
                    f"output:\n{server.process.output}", pytrace=False)


# ---------------------------------------------------------------------------------------------
# Reference computations with onnxruntime on the same model files.

@functools.lru_cache(maxsize=None)
def reference_session(model: str, version: int = 1) -> ort.InferenceSession:
    """An onnxruntime session over the same model file the server loads."""
    path = (DIGITS_MODEL_DIR if model == "digits" else TEST_STORE / model) / str(version) / "model.onnx"
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def reference(model: str, version: int, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """onnxruntime's outputs for `feeds`, by output name."""
    session = reference_session(model, version)
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))


def load_digits_sample() -> tuple[np.ndarray, np.ndarray]:
    data = json.loads((DATA_DIR / "digits_heldout.json").read_text())
    return np.array(data["pixels"], dtype=np.float32), np.array(data["labels"], dtype=np.int64)


# ---------------------------------------------------------------------------------------------
# Assertion helpers.

V2_DTYPES = {np.dtype(np.float32): "FP32", np.dtype(np.int64): "INT64",
             np.dtype(np.int32): "INT32", np.dtype(np.bool_): "BOOL"}


def v2_input(name: str, array: np.ndarray, nested: bool = False) -> dict:
    data = array.tolist() if nested else array.reshape(-1).tolist()
    return {"name": name, "shape": list(array.shape), "datatype": V2_DTYPES[array.dtype], "data": data}


def assert_ok(resp: requests.Response) -> dict:
    assert resp.status_code == 200, (
        f"{resp.request.method} {resp.request.url} -> {resp.status_code}: {resp.text[:2000]}")
    try:
        return resp.json()
    except ValueError:
        pytest.fail(f"{resp.request.method} {resp.request.url}: 200 answer is not JSON: "
                    f"{resp.text[:500]!r}")


def assert_error(resp: requests.Response, status: int | tuple[int, ...]) -> str:
    """Checks a non-2xx answer: the status (or one of several) and a JSON {"error": message}."""
    allowed = (status,) if isinstance(status, int) else status
    assert resp.status_code in allowed, (
        f"{resp.request.method} {resp.request.url}: expected status {allowed}, "
        f"got {resp.status_code}: {resp.text[:1000]}")
    content_type = resp.headers.get("Content-Type", "")
    assert content_type.startswith("application/json"), (
        f"error answer has Content-Type {content_type!r}, expected application/json")
    try:
        body = resp.json()
    except ValueError:
        pytest.fail(f"error answer is not JSON: {resp.text[:500]!r}")
    assert isinstance(body, dict) and isinstance(body.get("error"), str), (
        f"error answer is not {{\"error\": \"...\"}}: {body!r}")
    assert body["error"].strip(), "error message is empty"
    return body["error"]


def assert_v2_output(output: dict, name: str, datatype: str, expected: np.ndarray) -> None:
    """Checks one V2 output tensor against an onnxruntime result."""
    assert output["name"] == name
    assert output["datatype"] == datatype, f"output {name}: datatype {output['datatype']}"
    assert output["shape"] == list(expected.shape), f"output {name}: shape {output['shape']}"
    data = output["data"]
    assert isinstance(data, list), f"output {name}: data is not a list"
    assert len(data) == expected.size, (
        f"output {name}: data must be flat row-major with {expected.size} values, got {len(data)} "
        f"(first item {data[:1]!r})")
    assert_values(data, expected, f"output {name}")


def assert_values(data, expected: np.ndarray, what: str) -> None:
    """Compares JSON values (any nesting) to `expected`: floats with tolerance, others exactly."""
    if expected.dtype == np.bool_:
        flat = np.array(data, dtype=object).reshape(-1)
        assert all(type(v) is bool for v in flat), f"{what}: BOOL values must be JSON true/false"
        got = np.array(data, dtype=np.bool_)
        assert got.shape == expected.shape or got.size == expected.size
        assert np.array_equal(got.reshape(expected.shape), expected), f"{what}: {data} != {expected}"
    elif np.issubdtype(expected.dtype, np.integer):
        flat = np.array(data, dtype=object).reshape(-1)
        assert all(type(v) is int for v in flat), f"{what}: integer values must be JSON integers"
        got = np.array(data, dtype=expected.dtype)
        assert np.array_equal(got.reshape(expected.shape), expected), f"{what}: {data} != {expected}"
    else:
        got = np.array(data, dtype=np.float64)
        assert got.size == expected.size, f"{what}: {got.size} values, expected {expected.size}"
        np.testing.assert_allclose(got.reshape(expected.shape), expected.astype(np.float64),
                                   rtol=RTOL, atol=ATOL, err_msg=what)
