#!/usr/bin/env python3
"""One LSTM and one GRU layer (seq 64, input 256, hidden 256, forward, constant weights and bias),
at batch 1 and 16, in Swerve (`swerve bench`) and onnxruntime in the same run, same thread count.

Usage (from the repo root; any Python with onnx, onnxruntime and numpy):
    PYTHON bench/engine/rnn.py --swerve .build/release/swerve [--threads 1] [--rounds 3] [--matmul]

Each row alternates the two engines --rounds times (as run.py does, so a slow period of a shared
VM hits both) and prints the medians and the median of the per-round ratios Swerve/onnxruntime
(< 1: Swerve is faster), with their range. Writes the models to a temporary directory; random
weights (scaled so the gates do not saturate).
"""
import argparse
import os
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from peer import compare, cpu_model, isa_flags

SEQ, INPUT, HIDDEN = 64, 256, 256


def make_matmul(m: int, k: int, n: int, directory: str) -> str:
    """MatMul of a fed [m, k] by a constant [k, n]: the engine's GEMM alone, for reference."""
    w = numpy_helper.from_array((np.random.default_rng(0).standard_normal((k, n)) * 0.05).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "matmul",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    path = os.path.join(directory, f"matmul_{m}x{k}x{n}.onnx")
    onnx.save(model, path)
    return path


def make_model(op: str, batch: int, directory: str, extra: dict) -> str:
    if op == "MatMul":
        return make_matmul(extra["m"], INPUT, 4 * HIDDEN, directory)
    gates = 4 if op == "LSTM" else 3
    rng = np.random.default_rng(0)
    scale = 1 / np.sqrt(HIDDEN)
    inits = [
        numpy_helper.from_array((rng.standard_normal((1, gates * HIDDEN, INPUT)) * scale).astype(np.float32), "w"),
        numpy_helper.from_array((rng.standard_normal((1, gates * HIDDEN, HIDDEN)) * scale).astype(np.float32), "r"),
        numpy_helper.from_array((rng.standard_normal((1, 2 * gates * HIDDEN)) * scale).astype(np.float32), "b"),
    ]
    outputs = ["y", "yh"] + (["yc"] if op == "LSTM" else [])
    node = helper.make_node(op, ["x", "w", "r", "b"], outputs, hidden_size=HIDDEN, **extra)
    graph = helper.make_graph(
        [node], f"one_{op.lower()}", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [SEQ, batch, INPUT])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    path = os.path.join(directory, f"{op.lower()}_b{batch}.onnx")
    onnx.save(model, path)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--swerve", default=".build/release/swerve")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--matmul", action="store_true",
                        help="also time the LSTM's GEMMs alone as MatMul nodes (projection, one step)")
    args = parser.parse_args()
    directory = tempfile.mkdtemp()
    print(f"CPU: {cpu_model()} ({isa_flags()}); {os.cpu_count()} CPUs; threads {args.threads}; onnxruntime {ort.__version__}")
    print()
    print("| layer | batch | Swerve ms | onnxruntime ms | ratio (range) |")
    print("|---|---|---|---|---|")
    rows = [(op, extra, batch) for op, extra in [("LSTM", {}), ("GRU", {"linear_before_reset": 1}), ("GRU", {})]
            for batch in (1, 16)]
    if args.matmul:
        # The GEMMs an LSTM layer is made of, alone: batch 16's input projection (all steps) and one step.
        rows += [("MatMul", {"m": SEQ * 16}, 16), ("MatMul", {"m": 16}, 16)]
    for op, extra, batch in rows:
        path = make_model(op, batch, directory, extra)
        # swerve bench feeds uniform [0, 1) values; so does this.
        shape = (extra["m"], INPUT) if op == "MatMul" else (SEQ, batch, INPUT)
        feeds = {"x": np.random.default_rng(1).random(shape, dtype=np.float32)}
        row = compare(args.swerve, path, feeds, args.threads, args.rounds, args.iterations, args.warmup)
        if op == "MatMul":
            name = f"MatMul [{extra['m']}, {INPUT}] x [{INPUT}, {4 * HIDDEN}] (constant)"
        else:
            name = op + (" (linear_before_reset 1)" if extra else "")
        print(f"| {name} | {batch} | {row} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
