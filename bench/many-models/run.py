"""Many models under a memory budget: 40 models of about 20 MB each under a 250 MB budget, so
about a dozen fit; Zipf-like traffic (model k with weight 1/k) from 8 closed-loop clients for
60 s, every model loading on demand. Reports throughput, p50/p99 of warm answers and of cold
ones (answers that waited for a load: the server's Swerve-Load-Wait-Ms header), the load time
of a cold answer against the same model's load with nothing else running, evictions, failed
requests, and peak RSS against the budget.

Usage (from the repo root, release build):
    .venv/bin/python bench/many-models/run.py [--bin .build/release/swerve] [--seconds 60]
        [--models 40] [--budget-mb 250] [--clients 8]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "Tests" / "e2e"))
from store_e2e import index, management_url, publish, rss_kib, start  # noqa: E402
from swerve_e2e import finish_server  # noqa: E402

WIDTH = 64          # input and output width
HIDDEN = 40960      # 64 x 40960 + 40960 x 64 floats = 20 MiB of weights
BODY = {"inputs": [{"name": "x", "shape": [1, WIDTH], "datatype": "FP32", "data": [0.5] * WIDTH}]}


def mlp(seed: int) -> bytes:
    """y = relu(x @ W1) @ W2: two 10 MiB weights, both packed by the engine (no padding)."""
    rng = np.random.default_rng(seed)
    w1 = (rng.standard_normal([WIDTH, HIDDEN]) * 0.05).astype(np.float32)
    w2 = (rng.standard_normal([HIDDEN, WIDTH]) * 0.05).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("MatMul", ["r", "w2"], ["y"])], "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", WIDTH])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", WIDTH])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def pct(values, p):
    return float(np.percentile(np.array(values), p)) if values else float("nan")


def vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def metric_sum(text: str, name: str) -> float:
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(name))


def load_alone(store: Path, binary_args: list[str], names: list[str]) -> tuple[list[float], list[float]]:
    """Each model's first answer and its load_ms on a server with nothing else to do."""
    server = start(store, ["--poll-interval", "0", "--load-on-demand"] + binary_args)
    firsts, loads = [], []
    try:
        session = requests.Session()
        for name in names:
            t0 = time.monotonic()
            resp = session.post(f"{server.base_url}/v2/models/{name}/infer", json=BODY, timeout=60)
            firsts.append(time.monotonic() - t0)
            assert resp.status_code == 200, resp.text
            loads.append(next(e["load_ms"] for e in index(server) if e["name"] == name and e.get("version") == "1") / 1000)
    finally:
        finish_server(server)
    return firsts, loads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=".build/release/swerve")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--models", type=int, default=40)
    parser.add_argument("--budget-mb", type=int, default=250)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--zipf", type=float, default=1.0, help="model k is asked with weight 1 / k^s")
    args = parser.parse_args()
    os.environ["SWERVE_BIN"] = str(Path(args.bin).resolve())

    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "models"
        names = [f"m{i:02d}" for i in range(args.models)]
        for i, name in enumerate(names):
            publish(store, name, 1, mlp(i))
        size_mb = (store / names[0] / "1" / "model.onnx").stat().st_size / (1 << 20)
        print(f"{args.models} models of {size_mb:.1f} MiB, budget {args.budget_mb} MiB, {args.clients} clients, "
              f"{args.seconds:.0f} s, Zipf s={args.zipf}", flush=True)

        alone_first, alone_load = load_alone(store, [], names[:5])

        budget = args.budget_mb << 20
        server = start(store, ["--poll-interval", "0", "--load-on-demand", "--memory-budget", str(budget)])
        pid = server.process.proc.pid
        rss_start = rss_kib(pid)
        weights = np.array([1 / (k + 1) ** args.zipf for k in range(args.models)])
        weights /= weights.sum()
        records: list[tuple[float, bool, int]] = []  # (latency, cold, status)
        lock = threading.Lock()
        stop = threading.Event()
        peak_accounted = [0.0]

        def client(seed: int) -> None:
            rng = random.Random(seed)
            session = requests.Session()
            local = []
            while not stop.is_set():
                name = names[rng.choices(range(args.models), weights=weights)[0]]
                t0 = time.monotonic()
                try:
                    resp = session.post(f"{server.base_url}/v2/models/{name}/infer", json=BODY, timeout=60)
                    local.append((time.monotonic() - t0, "Swerve-Load-Wait-Ms" in resp.headers, resp.status_code))
                except Exception:  # noqa: BLE001 - counted as failed
                    local.append((time.monotonic() - t0, False, -1))
            with lock:
                records.extend(local)

        def monitor() -> None:
            while not stop.is_set():
                text = requests.get(f"{server.base_url}/metrics", timeout=10).text
                peak_accounted[0] = max(peak_accounted[0], metric_sum(text, "swerve_models_memory_bytes"))
                time.sleep(0.25)

        threads = [threading.Thread(target=client, args=(s,)) for s in range(args.clients)]
        threads.append(threading.Thread(target=monitor))
        t_start = time.monotonic()
        for t in threads:
            t.start()
        time.sleep(args.seconds)
        stop.set()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t_start
        text = requests.get(f"{server.base_url}/metrics", timeout=10).text
        evictions = metric_sum(text, "swerve_model_evictions_total")
        loads = metric_sum(text, 'swerve_model_loads_total')
        entries = index(server)
        load_ms = [e["load_ms"] / 1000 for e in entries if "load_ms" in e]
        hwm = vm_hwm_kib(pid)
        finish_server(server)

    warm = [r[0] for r in records if r[2] == 200 and not r[1]]
    cold = [r[0] for r in records if r[2] == 200 and r[1]]
    failed = sum(1 for r in records if r[2] != 200)
    ms = lambda v: f"{v * 1000:.1f} ms"  # noqa: E731
    print(f"requests: {len(records)} in {elapsed:.1f} s = {len(records) / elapsed:.0f} req/s; failed: {failed}")
    print(f"warm answers: {len(warm)}, p50 {ms(pct(warm, 50))}, p99 {ms(pct(warm, 99))}")
    print(f"cold answers (waited for a load): {len(cold)}, p50 {ms(pct(cold, 50))}, p99 {ms(pct(cold, 99))}")
    print(f"loads: {loads:.0f}, evictions: {evictions:.0f}; server load time of loaded versions: "
          f"median {ms(pct(load_ms, 50))}")
    print(f"load alone (nothing else running, 5 models): first answer median {ms(pct(alone_first, 50))}, "
          f"load_ms median {ms(pct(alone_load, 50))}")
    print(f"accounted model memory peak: {peak_accounted[0] / (1 << 20):.0f} MiB of the {args.budget_mb} MiB budget")
    print(f"RSS: {rss_start / 1024:.0f} MiB at start (no model loaded), peak (VmHWM) {hwm / 1024:.0f} MiB: "
          f"{(hwm - rss_start) / 1024:.0f} MiB above the start, budget {args.budget_mb} MiB")
    print("cpu:", re.sub(r"\s+", " ", next((l.split(":", 1)[1] for l in Path("/proc/cpuinfo").read_text().splitlines()
                                          if l.startswith("model name")), "?")).strip(), f"x {os.cpu_count()}")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
