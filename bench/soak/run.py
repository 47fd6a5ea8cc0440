"""Soak: mixed good and bad traffic with hot swaps for a set time; good requests must never fail
and resident memory must not grow.

Usage (from the repo root, release build):
    .venv/bin/python bench/soak/run.py [--bin .build/release/swerve] [--seconds 600]

What runs at once, against one daemon over its own temporary store (`--poll-interval 0.5`):
- good traffic, two closed-loop clients: V2 JSON and V2 binary on `swap` (the model being hot
  swapped), TF Serving `:predict` on `steady`, V2 JSON on `outer` (a broadcasting Add). Every one
  must answer 200 with the right numbers (`swap` answers x + its version).
- bad traffic, one client: malformed JSON, unknown models and versions, wrong shapes and types, a
  request to `outer` whose output would need 64 GiB (413), bodies over `--max-body-size` (413),
  garbage and smuggling attempts on raw sockets. None may get a 5xx, and none may hurt the rest.
- hot swaps every 3 s: a new version of `swap` is renamed in (latest 1: the old one unloads);
  every fourth swap first publishes a truncated version, which fails and is then replaced; versions
  three behind are deleted.

Reported: good requests and failures, bad requests by status, swaps, and the resident set size
(VmRSS) growth from the median of the first minute after warm-up to the median of the last
minute. Pass: zero failed good requests, no 5xx for bad ones, RSS growth < 5 %.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import requests
from onnx import TensorProto, helper

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "Tests" / "e2e"))
from store_e2e import publish, remove_version, rss_kib, stamped_model, start  # noqa: E402
from swerve_e2e import finish_server, raw_post  # noqa: E402

X = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}


def outer_sum_model() -> bytes:
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["y"])], "outer",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["n", 1]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, "m"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "m"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


class Soak:
    def __init__(self, server, store: Path, seconds: float):
        self.server, self.store = server, store
        self.deadline = time.monotonic() + seconds
        self.lock = threading.Lock()
        self.good = 0
        self.good_failures: list[str] = []
        self.bad = Counter()
        self.bad_5xx: list[str] = []
        self.swaps = 0
        self.broken_swaps = 0
        self.version = 1
        self.rss: list[tuple[float, int]] = []

    def running(self) -> bool:
        return time.monotonic() < self.deadline

    def fail(self, what: str) -> None:
        with self.lock:
            self.good_failures.append(what)

    def good_client(self, seed: int) -> None:
        rng = random.Random(seed)
        session = requests.Session()
        url = self.server.base_url
        header = json.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                                          "parameters": {"binary_data_size": 16}}]}).encode()
        binary = header + np.array([1, 2, 3, 4], dtype=np.float32).tobytes()
        while self.running():
            kind = rng.randrange(4)
            try:
                if kind == 0:
                    resp = session.post(url + "/v2/models/swap/infer", json=X, timeout=10)
                    ok = resp.status_code == 200
                    if ok:
                        body = resp.json()
                        v = int(body["model_version"])
                        ok = body["outputs"][0]["data"] == [1 + v, 2 + v, 3 + v, 4 + v]
                elif kind == 1:
                    resp = session.post(url + "/v2/models/swap/infer", data=binary, timeout=10,
                                        headers={"Inference-Header-Content-Length": str(len(header))})
                    ok = resp.status_code == 200
                elif kind == 2:
                    resp = session.post(url + "/v1/models/steady:predict", json={"instances": [[1, 2, 3, 4]]}, timeout=10)
                    ok = resp.status_code == 200 and resp.json()["predictions"] == [[8, 9, 10, 11]]
                else:
                    body = {"inputs": [{"name": "a", "shape": [2, 1], "datatype": "FP32", "data": [1, 2]},
                                       {"name": "b", "shape": [1, 2], "datatype": "FP32", "data": [10, 20]}]}
                    resp = session.post(url + "/v2/models/outer/infer", json=body, timeout=10)
                    ok = resp.status_code == 200 and resp.json()["outputs"][0]["data"] == [11, 21, 12, 22]
                if ok:
                    with self.lock:
                        self.good += 1
                else:
                    self.fail(f"kind {kind}: {resp.status_code} {resp.text[:200]}")
            except requests.RequestException as error:
                self.fail(f"kind {kind}: {error!r}")

    def raw(self, data: bytes) -> int:
        """Sends raw bytes; returns the status of the first answer, or 0 when the server closed."""
        port = int(self.server.base_url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(data)
            answer = b""
            try:
                while b"\r\n\r\n" not in answer:
                    piece = sock.recv(65536)
                    if not piece:
                        break
                    answer += piece
            except (ConnectionResetError, socket.timeout):
                pass
        status = re.match(rb"HTTP/1\.[01] (\d{3})", answer)
        return int(status.group(1)) if status else 0

    def bad_client(self) -> None:
        session = requests.Session()
        url = self.server.base_url
        port = int(url.rsplit(":", 1)[1])
        n = 131072
        huge = {"inputs": [{"name": "a", "shape": [n, 1], "datatype": "FP32", "data": [0] * n},
                           {"name": "b", "shape": [1, n], "datatype": "FP32", "data": [0] * n}]}
        cases = [
            ("malformed json", lambda: session.post(url + "/v2/models/swap/infer", data=b"{\"inputs\": [", timeout=10).status_code),
            ("unknown model", lambda: session.post(url + "/v2/models/nope/infer", json=X, timeout=10).status_code),
            ("unknown version", lambda: session.post(url + "/v2/models/swap/versions/999999/infer", json=X, timeout=10).status_code),
            ("wrong shape", lambda: session.post(url + "/v2/models/swap/infer", json={"inputs": [
                {"name": "x", "shape": [1, 5], "datatype": "FP32", "data": [0] * 5}]}, timeout=10).status_code),
            ("wrong type", lambda: session.post(url + "/v2/models/swap/infer", json={"inputs": [
                {"name": "x", "shape": [1, 4], "datatype": "INT64", "data": [0] * 4}]}, timeout=10).status_code),
            ("absurd shape", lambda: session.post(url + "/v2/models/swap/infer", json={"inputs": [
                {"name": "x", "shape": [1 << 40, 1 << 40], "datatype": "FP32", "data": [0]}]}, timeout=10).status_code),
            ("64 GiB output", lambda: session.post(url + "/v2/models/outer/infer", json=huge, timeout=30).status_code),
            ("body over the cap", lambda: raw_post(port, "/v2/models/swap/infer", 3 << 20)[0]),
            ("garbage", lambda: self.raw(b"\x16\x03\x01\x02\x00GARBAGE\r\n\r\n")),
            ("CL and TE", lambda: self.raw(
                b"POST /v2/models/swap/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")),
            ("bad content-length", lambda: self.raw(
                b"POST /v2/models/swap/infer HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n")),
        ]
        weights = [10, 10, 5, 10, 5, 5, 1, 1, 3, 3, 3]
        rng = random.Random(7)
        while self.running():
            name, call = rng.choices(cases, weights)[0]
            try:
                status = call()
            except (requests.RequestException, OSError, AssertionError) as error:
                status = f"error {type(error).__name__}"
            with self.lock:
                self.bad[(name, status)] += 1
                if isinstance(status, int) and status >= 500:
                    self.bad_5xx.append(f"{name}: {status}")
            time.sleep(0.01)

    def swapper(self) -> None:
        while self.running():
            time.sleep(3)
            if not self.running():
                break
            self.version += 1
            if self.version % 4 == 0:
                good = stamped_model(self.version)
                publish(self.store, "swap", self.version, good[: len(good) // 2])
                time.sleep(1.5)
                remove_version(self.store, "swap", self.version)
                self.version += 1
                self.broken_swaps += 1
            publish(self.store, "swap", self.version, stamped_model(self.version, padding_floats=1 << 18))
            self.swaps += 1
            for old in sorted(int(p.name) for p in (self.store / "swap").iterdir() if p.name.isdigit()):
                if old < self.version - 3:
                    remove_version(self.store, "swap", old)

    def sampler(self) -> None:
        start = time.monotonic()
        while self.running():
            self.rss.append((time.monotonic() - start, rss_kib(self.server.process.proc.pid)))
            time.sleep(1)


def cpu_description() -> str:
    model, flags = platform.processor(), ""
    try:
        text = Path("/proc/cpuinfo").read_text()
        model = re.search(r"model name\s*:\s*(.*)", text).group(1)
        flags = " ".join(f for f in re.search(r"flags\s*:\s*(.*)", text).group(1).split()
                         if f.startswith(("avx", "fma", "f16c", "amx")))
    except (OSError, AttributeError):
        pass
    return f"{model} ({os.cpu_count()} vCPUs; {flags})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", default=".build/release/swerve")
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--warmup", type=float, default=30, help="seconds before the RSS baseline starts")
    args = parser.parse_args()
    os.environ["SWERVE_BIN"] = args.bin
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "models"
        publish(store, "swap", 1, stamped_model(1, padding_floats=1 << 18))
        publish(store, "steady", 1, stamped_model(7))
        publish(store, "outer", 1, outer_sum_model())
        server = start(store, ["--poll-interval", "0.5", "--max-body-size", str(1 << 20)])
        soak = Soak(server, store, args.seconds)
        threads = [threading.Thread(target=soak.good_client, args=(s,)) for s in (1, 2)]
        threads += [threading.Thread(target=soak.bad_client), threading.Thread(target=soak.swapper),
                    threading.Thread(target=soak.sampler)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        alive = server.process.alive
        finish_server(server)

    window = 60 if args.seconds >= 180 else args.seconds / 4
    first = [kib for t, kib in soak.rss if args.warmup <= t < args.warmup + window]
    last = [kib for t, kib in soak.rss if t >= soak.rss[-1][0] - window]
    base, end = statistics.median(first), statistics.median(last)
    growth = end / base - 1
    print(f"CPU: {cpu_description()}")
    print(f"duration {args.seconds:.0f} s; daemon alive at the end: {alive}")
    print(f"good requests: {soak.good}, failed: {len(soak.good_failures)}")
    for failure in soak.good_failures[:10]:
        print(f"  failed: {failure}")
    print(f"hot swaps: {soak.swaps} (of which {soak.broken_swaps} after a truncated version that failed)")
    print(f"bad requests: {sum(soak.bad.values())}, 5xx among them: {len(soak.bad_5xx)}")
    for (name, status), count in sorted(soak.bad.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        print(f"  {name:20} {status!s:>24}: {count}")
    minutes = [kib for t, kib in soak.rss if int(t) % 60 == 0]
    print("RSS each minute (MiB): " + " ".join(f"{kib / 1024:.1f}" for kib in minutes))
    print(f"RSS: median {base / 1024:.1f} MiB in [{args.warmup:.0f}, {args.warmup + window:.0f}) s, "
          f"{end / 1024:.1f} MiB in the last {window:.0f} s: growth {growth * 100:+.2f} %")
    passed = alive and not soak.good_failures and not soak.bad_5xx and growth < 0.05
    print("PASS" if passed else "FAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
