#!/usr/bin/env python3
"""Per-step time of one model in Swerve (`swerve bench --profile`) and onnxruntime (its session
profiler), side by side, to see which operators a ratio in docs/benchmarks.md comes from.

Usage (from the repo root, after `make realmodels`):
    .venv-realmodels/bin/python bench/engine/profile.py MODEL [--batch N] [--threads T] [--iterations K]
MODEL is a directory of .realmodels without the exporter suffix (mlp, resnet18, mobilenet_v2,
bert_tiny; bert_tiny at sequence 128). Both profilers add a clock read per step, so their totals
run a little above the plain medians of bench/engine/run.py.
"""
import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnxruntime as ort


def swerve_steps(binary, path, batch, threads, iterations, dims):
    cmd = [binary, "bench", path, "--batch", str(batch), "--threads", str(threads), "--iterations", str(iterations),
           "--warmup", "5", "--profile"] + [a for d in dims for a in ("--dim", d)]
    out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    return {s["node"]: (s["op"], s["ms"]) for s in out["steps"]}, out["median_ms"]


def ort_steps(path, feeds, threads, iterations):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.enable_profiling = True
    options.profile_file_prefix = os.path.join(tempfile.mkdtemp(), "ort")
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    for _ in range(5):
        session.run(None, feeds)
    # The profile covers the warm-up runs too; they are few against `iterations`.
    for _ in range(iterations):
        session.run(None, feeds)
    events = json.load(open(session.end_profiling()))
    total = collections.defaultdict(float)
    ops = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            name = e["name"][: -len("_kernel_time")]
            total[name] += e["dur"] / 1000
            ops[name] = e["args"].get("op_name", "?")
    return {k: (ops[k], v / (iterations + 5)) for k, v in total.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--swerve", default=".build/release/swerve")
    parser.add_argument("--store", default=".realmodels")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    path = os.path.join(args.store, f"{args.model}_torchscript", "1", "model.onnx")
    dims = ["sequence=128"] if args.model == "bert_tiny" else []
    ours, median = swerve_steps(args.swerve, path, args.batch, args.threads, args.iterations, dims)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    feeds = {}
    for i in session.get_inputs():
        shape = [args.batch if idx == 0 else (128 if not isinstance(d, int) else d) for idx, d in enumerate(i.shape)]
        if "int64" in i.type:
            feeds[i.name] = (np.random.randint(0, 1000, shape) if "ids" in i.name else np.ones(shape)).astype(np.int64)
        else:
            feeds[i.name] = np.random.rand(*shape).astype(np.float32)
    theirs = ort_steps(path, feeds, args.threads, args.iterations)
    print(f"# {args.model} batch {args.batch} threads {args.threads}: Swerve median {median:.3f} ms, "
          f"steps {sum(v for _, v in ours.values()):.3f} ms; onnxruntime steps {sum(v for _, v in theirs.values()):.3f} ms")
    print("Swerve (ms per run, slowest first):")
    for node, (op, ms) in sorted(ours.items(), key=lambda kv: -kv[1][1])[: args.top]:
        print(f"  {ms:8.3f}  {op:<12} {node}")
    print("onnxruntime (its fused nodes keep only the name of one of their outputs):")
    for node, (op, ms) in sorted(theirs.items(), key=lambda kv: -kv[1][1])[: args.top]:
        print(f"  {ms:8.3f}  {op:<12} {node}")


if __name__ == "__main__":
    sys.exit(main())
