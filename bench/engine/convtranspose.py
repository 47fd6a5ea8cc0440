#!/usr/bin/env python3
"""One ConvTranspose layer (constant weights and bias) of a few decoder shapes, in Swerve
(`swerve bench`) and onnxruntime in the same run, same thread count.

Usage (from the repo root; any Python with onnx, onnxruntime and numpy):
    PYTHON bench/engine/convtranspose.py --swerve .build/release/swerve [--threads 1] [--rounds 3]

Each row alternates the two engines --rounds times (as run.py does, so a slow period of a shared
VM hits both) and prints the medians and the median of the per-round ratios Swerve/onnxruntime
(< 1: Swerve is faster), with their range. Writes the models to a temporary directory.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

# (name, X shape, output channels, kernel, attributes)
LAYERS = [
    ("2-D 64->32, k4 s2 p1 (56x56 -> 112x112)", [1, 64, 56, 56], 32, [4, 4], {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ("same, batch 4", [4, 64, 56, 56], 32, [4, 4], {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ("2-D 128->64, k2 s2 (28x28 -> 56x56)", [1, 128, 28, 28], 64, [2, 2], {"strides": [2, 2]}),
    ("2-D 64->64, k3 s2 p1 op1, group 4", [1, 64, 32, 32], 64, [3, 3],
     {"strides": [2, 2], "pads": [1, 1, 1, 1], "output_padding": [1, 1], "group": 4}),
    ("3-D 32->16, k2 s2 (16^3 -> 32^3)", [1, 32, 16, 16, 16], 16, [2, 2, 2], {"strides": [2, 2, 2]}),
]


def make_model(x_shape, m, kernel, attributes, directory, index) -> str:
    rng = np.random.default_rng(0)
    group = attributes.get("group", 1)
    c = x_shape[1]
    w = (rng.standard_normal([c, m // group] + kernel) / np.sqrt(c * np.prod(kernel))).astype(np.float32)
    b = rng.standard_normal(m).astype(np.float32)
    node = helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], **attributes)
    graph = helper.make_graph(
        [node], "one_convtranspose", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = os.path.join(directory, f"convtranspose_{index}.onnx")
    onnx.save(model, path)
    return path


def time_ort(session, feeds, iterations: int) -> float:
    times = []
    for _ in range(iterations):
        t = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def time_swerve(swerve: str, path: str, threads: int, iterations: int, warmup: int) -> float:
    out = subprocess.run([swerve, "bench", path, "--threads", str(threads), "--iterations", str(iterations),
                          "--warmup", str(warmup)], check=True, capture_output=True, text=True).stdout
    return json.loads(out)["median_ms"]


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--swerve", default=".build/release/swerve")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    directory = tempfile.mkdtemp()
    print(f"CPU: {cpu_model()}; {os.cpu_count()} CPUs; threads {args.threads}; onnxruntime {ort.__version__}")
    print()
    print("| layer | Swerve ms | onnxruntime ms | ratio (range) |")
    print("|---|---|---|---|")
    for index, (name, x_shape, m, kernel, attributes) in enumerate(LAYERS):
        path = make_model(x_shape, m, kernel, attributes, directory, index)
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        # swerve bench feeds uniform [0, 1) values; so does this.
        feeds = {"x": np.random.default_rng(1).random(x_shape, dtype=np.float32)}
        for _ in range(args.warmup):
            session.run(None, feeds)
        mine, theirs, ratios = [], [], []
        for _ in range(args.rounds):
            s = time_swerve(args.swerve, path, args.threads, args.iterations, args.warmup)
            t = time_ort(session, feeds, args.iterations)
            mine.append(s)
            theirs.append(t)
            ratios.append(s / t)
        print(f"| {name} | {statistics.median(mine):.3f} | {statistics.median(theirs):.3f} | "
              f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
