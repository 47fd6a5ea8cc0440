#!/usr/bin/env python3
"""One Attention node (opset 23) alone, in Swerve and onnxruntime, at the same thread count.

Usage (from the repo root, after `swift build -c release`):
    .venv/bin/python bench/engine/one_attention.py [--batch 1] [--heads 12] [--seq 128] [--head-size 64]
        [--causal] [--threads 1] [--swerve .build/release/swerve]
4-D Q, K, V of shape (batch, heads, seq, head size), random values; the model is written to a
temporary directory. Prints the median time of each and their ratio (Swerve / onnxruntime).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--head-size", type=int, default=64)
    parser.add_argument("--causal", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--swerve", default=".build/release/swerve")
    args = parser.parse_args()
    shape = [args.batch, args.heads, args.seq, args.head_size]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in "QKV"]
    node = helper.make_node("Attention", ["Q", "K", "V"], ["Y"], is_causal=int(args.causal))
    graph = helper.make_graph([node], "one_attention", inputs, [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)])
    model.ir_version = 10
    path = os.path.join(tempfile.mkdtemp(), "model.onnx")
    onnx.save(model, path)

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {n: rng.standard_normal(shape, dtype=np.float32) for n in "QKV"}
    for _ in range(10):
        session.run(None, feeds)
    times = []
    for _ in range(args.iterations):
        t = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - t)
    theirs = statistics.median(times) * 1000
    out = subprocess.run([args.swerve, "bench", path, "--threads", str(args.threads), "--iterations",
                          str(args.iterations), "--warmup", "10"], check=True, capture_output=True, text=True).stdout
    mine = json.loads(out)["median_ms"]
    print(f"Attention {shape}{' causal' if args.causal else ''}, {args.threads} thread(s): "
          f"Swerve {mine:.3f} ms, onnxruntime {theirs:.3f} ms, ratio {mine / theirs:.2f}")


if __name__ == "__main__":
    sys.exit(main())
