#!/usr/bin/env python3
"""One Conv layer alone (optionally followed by Clip 0..6), in Swerve and onnxruntime, at 1 thread:
to tell a layer's own speed from what the whole model does to it (docs/benchmarks.md compares
these figures with the per-step times of `bench/engine/profile.py`).

Usage (from the repo root, after `make realmodels`):
    .venv-realmodels/bin/python bench/engine/one_conv.py CIN COUT HW [--kernel K] [--stride S] [--clip]
e.g. mobilenet_v2's last 1x1 convolution: `... one_conv.py 320 1280 7`; its first: `... one_conv.py 3 32 224
--kernel 3 --stride 2 --clip`. Writes the model to a temporary directory; random weights.
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
from onnx import TensorProto, helper, numpy_helper


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("cin", type=int)
    parser.add_argument("cout", type=int)
    parser.add_argument("hw", type=int, help="input height and width")
    parser.add_argument("--kernel", type=int, default=1)
    parser.add_argument("--stride", type=int, default=1)
    parser.add_argument("--clip", action="store_true", help="a Clip(0, 6) after the Conv (fused by both)")
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--swerve", default=".build/release/swerve")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    k, pad = args.kernel, args.kernel // 2
    inits = [numpy_helper.from_array((rng.standard_normal((args.cout, args.cin, k, k)) * 0.05).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal(args.cout).astype(np.float32), "b")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c" if args.clip else "y"], pads=[pad] * 4,
                              strides=[args.stride] * 2)]
    if args.clip:
        inits += [numpy_helper.from_array(np.array(0, np.float32), "lo"), numpy_helper.from_array(np.array(6, np.float32), "hi")]
        nodes.append(helper.make_node("Clip", ["c", "lo", "hi"], ["y"]))
    graph = helper.make_graph(nodes, "one_conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", args.cin, args.hw, args.hw])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = os.path.join(tempfile.mkdtemp(), "model.onnx")
    onnx.save(model, path)

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    x = {"x": rng.random((1, args.cin, args.hw, args.hw), dtype=np.float32)}
    for _ in range(20):
        session.run(None, x)
    times = []
    for _ in range(args.iterations):
        t = time.perf_counter()
        session.run(None, x)
        times.append(time.perf_counter() - t)
    theirs = statistics.median(times) * 1000
    out = subprocess.run([args.swerve, "bench", path, "--threads", "1", "--iterations", str(args.iterations),
                          "--warmup", "20"], check=True, capture_output=True, text=True).stdout
    mine = json.loads(out)["median_ms"]
    print(f"Conv {args.cin} -> {args.cout}, {k}x{k} stride {args.stride} on {args.hw}x{args.hw}"
          f"{' + Clip' if args.clip else ''}: Swerve {mine:.3f} ms, onnxruntime {theirs:.3f} ms, ratio {mine / theirs:.2f}")


if __name__ == "__main__":
    sys.exit(main())
