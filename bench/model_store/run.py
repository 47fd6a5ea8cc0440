"""Model-store benchmark: time from a new version's files on disk to serving it, and p99 latency
during hot swaps against steady state under the same load.

Usage (from the repo root, release build):
    .venv/bin/python bench/model_store/run.py [--bin .build/release/swerve] [--seconds 6] [--rounds 2]

Peers in the same run: onnxruntime's session creation + first inference on the same file (for the
load time); the steady phase of the same server under the same closed-loop load (for p99).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "Tests" / "e2e"))
from store_e2e import management_url, publish, stamped_model, start  # noqa: E402
from swerve_e2e import finish_server  # noqa: E402

PADDING = 2 << 20  # 2 Mi floats = 8 MiB of weights: a load that takes measurable time
BODY = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [0, 0, 0, 0]}]}


def percentile(values, p):
    return float(np.percentile(np.array(values), p)) if values else float("nan")


def disk_to_serving(store: Path, server, versions) -> list[float]:
    """Rename a version into the store, then time until a request is answered by it."""
    session = requests.Session()
    out = []
    for v in versions:
        t0 = time.monotonic()
        publish(store, "swap", v, stamped_model(v, PADDING))
        while session.post(server.base_url + "/v2/models/swap/infer", json=BODY).json().get("model_version") != str(v):
            time.sleep(0.002)
        out.append(time.monotonic() - t0)
    return out


def explicit_load(store: Path, server, versions) -> list[float]:
    """Files already in place (poller off): time of the management `load` (parse, plan, warm-up)."""
    out = []
    for v in versions:
        publish(store, "swap", v, stamped_model(v, PADDING))
        t0 = time.monotonic()
        assert requests.post(management_url(server) + "/v2/repository/models/swap/load", timeout=60).status_code == 200
        out.append(time.monotonic() - t0)
    return out


def ort_load(path: Path, n: int) -> list[float]:
    ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])  # first use: library set-up, not timed
    out = []
    for _ in range(n):
        t0 = time.monotonic()
        s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        s.run(None, {"x": np.zeros((1, 4), np.float32)})
        out.append(time.monotonic() - t0)
    return out


def load_phase(server, seconds: float, clients: int, during=None):
    """Closed-loop clients for `seconds`; `during(stop_event)` runs meanwhile. Returns (latencies, errors)."""
    stop = threading.Event()
    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def client():
        s = requests.Session()
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                ok = s.post(server.base_url + "/v2/models/swap/infer", json=BODY, timeout=30).status_code == 200
            except requests.RequestException:
                ok = False
            dt = time.monotonic() - t0
            with lock:
                lat.append(dt)
                errors[0] += 0 if ok else 1

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    helper = threading.Thread(target=during, args=(stop,), daemon=True) if during else None
    if helper:
        helper.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    if helper:
        helper.join()
    return lat, errors[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default=".build/release/swerve")
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--poll", default="0.1")
    args = parser.parse_args()
    os.environ["SWERVE_BIN"] = str(Path(args.bin).resolve())

    root = Path(tempfile.mkdtemp(prefix="swerve-bench-"))
    # 1. Disk to serving (poller) and explicit load, with onnxruntime's load as the peer.
    store = root / "a" / "models"
    publish(store, "swap", 1, stamped_model(1, PADDING))
    server = start(store, ["--poll-interval", args.poll])
    try:
        d2s = disk_to_serving(store, server, range(2, 12))
    finally:
        finish_server(server)
    store = root / "b" / "models"
    publish(store, "swap", 1, stamped_model(1, PADDING))
    server = start(store, ["--poll-interval", "0"])
    try:
        explicit = explicit_load(store, server, range(2, 12))
    finally:
        finish_server(server)
    peer = ort_load(store / "swap" / "1" / "model.onnx", 10)
    print(f"model: y = x + v with {PADDING * 4 >> 20} MiB of weights; poll interval {args.poll} s")
    print(f"disk -> serving (poller):   median {statistics.median(d2s) * 1000:.0f} ms, max {max(d2s) * 1000:.0f} ms")
    print(f"management load (no wait):  median {statistics.median(explicit) * 1000:.1f} ms")
    print(f"onnxruntime session+1 run:  median {statistics.median(peer) * 1000:.1f} ms")
    print(f"ratio load / onnxruntime:   {statistics.median(explicit) / statistics.median(peer):.2f}")

    # 2. p99 steady vs during swaps, alternating phases on one server.
    store = root / "c" / "models"
    publish(store, "swap", 1, stamped_model(1, PADDING))
    server = start(store, ["--poll-interval", args.poll])
    next_version = [2]

    def swapper(stop):
        while not stop.is_set():
            publish(store, "swap", next_version[0], stamped_model(next_version[0], PADDING))
            next_version[0] += 1
            stop.wait(0.5)

    try:
        steady, swap, errs, swaps = [], [], 0, 0
        load_phase(server, 1.0, args.clients)  # warm-up
        for _ in range(args.rounds):
            lat, e = load_phase(server, args.seconds, args.clients)
            steady += lat
            errs += e
            before = next_version[0]
            lat, e = load_phase(server, args.seconds, args.clients, swapper)
            swap += lat
            errs += e
            swaps += next_version[0] - before
    finally:
        finish_server(server)
    s99, w99 = percentile(steady, 99), percentile(swap, 99)
    print(f"{args.clients} closed-loop clients, {args.rounds} x {args.seconds:.0f} s per phase, {swaps} versions swapped in")
    print(f"steady: {len(steady)} requests, p50 {percentile(steady, 50) * 1000:.2f} ms, p99 {s99 * 1000:.2f} ms")
    print(f"swap:   {len(swap)} requests, p50 {percentile(swap, 50) * 1000:.2f} ms, p99 {w99 * 1000:.2f} ms")
    print(f"ratio p99 swap / steady: {w99 / s99:.2f}; errors: {errs}")


if __name__ == "__main__":
    main()
