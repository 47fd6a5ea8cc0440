"""Strict HTTP/1.1 framing of the real daemon, on both ports (docs/operations.md, "HTTP framing").

Requests whose body a proxy and the server could delimit differently get a JSON 400 and their
connection is closed, so bytes after them are never served as a second request (request
smuggling). Bodies over the limits are refused while they arrive, and a client that writes its
whole body before reading (Python requests) still reads the answer.
"""

from __future__ import annotations

import http.client
import json
import re
import os
import socket
import subprocess
import time

import pytest
import requests

from swerve_e2e import REQUEST_TIMEOUT_S, assert_error, swerve_binary

SMUGGLED = b"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def head(*lines: str, target: str = "/v2/models/mlp/infer") -> bytes:
    return (f"POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + "".join(line + "\r\n" for line in lines) + "\r\n").encode()


SMUGGLING = {
    "cl_and_te": head("Content-Length: 5", "Transfer-Encoding: chunked") + b"0\r\n\r\n",
    "te_and_cl": head("Transfer-Encoding: chunked", "Content-Length: 5") + b"0\r\n\r\n",
    "two_content_lengths": head("Content-Length: 0", "Content-Length: 5"),
    "folded_te": head("Transfer-Encoding:", " chunked") + b"0\r\n\r\n",
    "space_before_colon_te": head("Transfer-Encoding : chunked") + b"0\r\n\r\n",
    "te_xchunked": head("Transfer-Encoding: xchunked") + b"0\r\n\r\n",
    "te_chunked_identity": head("Transfer-Encoding: chunked, identity") + b"0\r\n\r\n",
}


def exchange(port: int, data: bytes) -> bytes:
    """Sends `data` and reads until the server closes; fails if it keeps the connection open."""
    with socket.create_connection(("127.0.0.1", port), timeout=REQUEST_TIMEOUT_S) as sock:
        sock.sendall(data)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except socket.timeout:
            pytest.fail(f"the server kept the connection open after answering: {received[:300]!r}")
        return received


def management_port(server) -> int:
    match = re.search(r"management_port\W+(\d+)", server.process.output)
    assert match, f"no management port in the log:\n{server.process.output}"
    return int(match.group(1))


@pytest.mark.parametrize("case", sorted(SMUGGLING))
def test_ambiguous_framing_is_400_and_closes(server, case):
    for port in (server.process.port, management_port(server)):
        received = exchange(port, SMUGGLING[case] + SMUGGLED)
        head_bytes, _, body = received.partition(b"\r\n\r\n")
        assert head_bytes.startswith(b"HTTP/1.1 400 "), f"port {port}: {received[:300]!r}"
        assert re.search(rb"(?im)^connection: close", head_bytes)
        assert re.search(rb"(?im)^content-type: application/json", head_bytes)
        message = json.loads(body)["error"]
        assert "framing" in message
        # One answer only: the smuggled request after it was not served.
        assert received.count(b"HTTP/1.1 ") == 1, f"port {port}: a second answer came: {received!r}"


def test_chunked_body_over_the_limit_is_413_before_it_ends(server_factory):
    small = server_factory(["--max-body-size", "1024"])
    with socket.create_connection(("127.0.0.1", small.process.port), timeout=REQUEST_TIMEOUT_S) as sock:
        # 2000 bytes of a chunked body that never ends: the answer must not wait for its end.
        sock.sendall(head("Transfer-Encoding: chunked") + b"7d0\r\n" + b" " * 2000 + b"\r\n")
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head_bytes, _, body = received.partition(b"\r\n\r\n")
    assert head_bytes.startswith(b"HTTP/1.1 413 "), received[:300]
    assert "--max-body-size" in json.loads(body)["error"]


def test_refusals_keep_the_json_log_json(server_factory):
    """libmicrohttpd's own messages (a bad Content-Length it refuses, a connection swerve tells it
    to drop) go through swerve's logger, so that every line stays JSON with --log-format json."""
    logged = server_factory(["--max-body-size", "1024", "--log-format", "json", "--log-level", "debug"])
    port = logged.process.port
    exchange(port, head("Transfer-Encoding: chunked") + b"7d0\r\n" + b" " * 2000 + b"\r\n")
    exchange(port, head("Content-Length: 3, 3") + b"abc")
    assert requests.get(logged.base_url + "/v2/health/live", timeout=REQUEST_TIMEOUT_S).status_code == 200
    for _ in range(100):  # the log reaches us through a pipe and a reader thread
        lines = [line for line in logged.process.output.splitlines() if line.strip()]
        if any('"http_library"' in line for line in lines):
            break
        time.sleep(0.05)
    for line in lines:
        json.loads(line)  # raises on a raw line
    assert any(json.loads(line).get("event") == "http_library" for line in lines), lines


def test_requests_posting_80_mib_reads_the_413(server):
    """Python requests writes the whole body before reading: it must get the 413, not a reset."""
    body = b" " * (80 << 20)
    resp = requests.post(server.base_url + "/v2/models/mlp/infer", data=body,
                         headers={"Content-Type": "application/json"}, timeout=REQUEST_TIMEOUT_S)
    message = assert_error(resp, 413)
    assert "--max-body-size" in message
    assert resp.headers.get("Connection", "").lower() == "close"


def test_http_client_posting_80_mib_reads_the_413(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.process.port, timeout=REQUEST_TIMEOUT_S)
    try:
        conn.request("POST", "/v1/models/mlp:predict", body=b"[" * (80 << 20),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 413
        assert "error" in json.loads(resp.read())
    finally:
        conn.close()


def test_long_target_and_large_headers_are_json(server):
    assert_error(requests.get(server.base_url + "/v2/models/" + "m" * 20_000, timeout=REQUEST_TIMEOUT_S), 414)
    assert_error(requests.get(server.base_url + "/v2/health/live", headers={"X-Big": "b" * 40_000},
                              timeout=REQUEST_TIMEOUT_S), 431)
    # Ordinary requests are still served.
    assert requests.get(server.base_url + "/v2/health/live", timeout=REQUEST_TIMEOUT_S).status_code == 200


def test_buffered_bodies_are_bounded(server_factory):
    limited = server_factory(["--max-body-size", "1024", "--max-buffered-body-bytes", "2048"])
    port = limited.process.port
    holders = []
    try:
        # Two requests that have sent their heads and part of their bodies hold 2 x 1024 bytes.
        for _ in range(2):
            sock = socket.create_connection(("127.0.0.1", port), timeout=REQUEST_TIMEOUT_S)
            sock.sendall(head("Content-Length: 1024") + b" " * 10)
            holders.append(sock)
        resp = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # until the server has read both heads (a busy machine is slow)
            resp = requests.post(limited.base_url + "/v2/models/mlp/infer", data=b" " * 1024,
                                 headers={"Content-Type": "application/json"}, timeout=REQUEST_TIMEOUT_S)
            if resp.status_code == 503:
                break
        message = assert_error(resp, 503)
        assert "--max-buffered-body-bytes" in message
        assert resp.headers.get("Retry-After") == "1"
    finally:
        for sock in holders:
            sock.close()


def test_max_buffered_body_bytes_below_max_body_size_is_refused(tmp_path):
    store = tmp_path / "models"
    store.mkdir()
    args = [str(swerve_binary()), "serve", "--model-store", str(store), "--port", "0", "--management-port", "0",
            "--max-body-size", "4096"]
    for extra, env in ((["--max-buffered-body-bytes", "1000"], {}), ([], {"SWERVE_MAX_BUFFERED_BODY_BYTES": "1000"})):
        done = subprocess.run(args + extra, capture_output=True, text=True, timeout=30,
                              env={**os.environ, **env})
        output = done.stdout + done.stderr
        assert done.returncode != 0, output
        assert "--max-buffered-body-bytes 1000 is smaller than --max-body-size 4096" in output, output
    help_text = subprocess.run([str(swerve_binary()), "serve", "--help"], capture_output=True, text=True,
                               timeout=30).stdout
    assert "--max-buffered-body-bytes" in help_text and "SWERVE_MAX_BUFFERED_BODY_BYTES" in help_text
