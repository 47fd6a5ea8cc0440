#!/usr/bin/env python3
"""Alternates Swerve and onnxruntime on one model at 2 threads, once a second or so, for a while,
printing each median and each side's CPU time over wall time. It shows the project VM's "slow
periods" (docs/benchmarks.md): both sides slow down at the same moment while both keep about two
CPUs busy, so the second vCPU is running, just on less of a core.

Usage (from the repo root, after `make realmodels`):
    .venv-realmodels/bin/python bench/engine/vcpu_watch.py [--swerve BIN] [--model mobilenet_v2] [--seconds 240]
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import onnxruntime as ort


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--swerve", default=".build/release/swerve")
    parser.add_argument("--store", default=".realmodels")
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--seconds", type=float, default=240)
    parser.add_argument("--iterations", type=int, default=100)
    args = parser.parse_args()
    path = os.path.join(args.store, f"{args.model}_torchscript", "1", "model.onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feed = {i.name: np.random.rand(*[1 if not isinstance(d, int) else d for d in i.shape]).astype(np.float32)
            for i in session.get_inputs()}
    for _ in range(10):
        session.run(None, feed)
    end = time.time() + args.seconds
    while time.time() < end:
        before, start = os.times(), time.time()
        out = subprocess.run([args.swerve, "bench", path, "--threads", "2", "--iterations", str(args.iterations),
                              "--warmup", "5"], check=True, capture_output=True, text=True).stdout
        after, stop = os.times(), time.time()
        swerve_cpu = (after.children_user + after.children_system - before.children_user - before.children_system)
        times = []
        cpu0 = time.process_time()
        for _ in range(args.iterations):
            t = time.perf_counter()
            session.run(None, feed)
            times.append(time.perf_counter() - t)
        cpu1 = time.process_time()
        print(f"{time.strftime('%H:%M:%S')} swerve {json.loads(out)['median_ms']:.2f} ms "
              f"(cpu/wall {swerve_cpu / (stop - start):.2f})  onnxruntime {np.median(times) * 1e3:.2f} ms "
              f"(cpu/wall {(cpu1 - cpu0) / sum(times):.2f})", flush=True)


if __name__ == "__main__":
    sys.exit(main())
