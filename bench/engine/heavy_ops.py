#!/usr/bin/env python3
"""The heavy operators of the zoo, one node each at a typical size, in Swerve (`swerve bench`) and
onnxruntime in the same run, same thread count: ConvTranspose, Resize (nearest, linear, cubic), LSTM,
GRU, NonMaxSuppression, RoiAlign, ScatterND, GridSample and Attention (opset 23).

Usage (from the repo root; any Python with onnx, onnxruntime and numpy):
    PYTHON bench/engine/heavy_ops.py --swerve .build/release/swerve [--threads 1] [--rounds 3] [--only NAME ...]

Each row alternates the two engines --rounds times and prints the medians and the median of the
per-round ratios Swerve/onnxruntime (< 1: Swerve is faster) with their range; the goal is <= 1.3 now
and <= 1.0 after the engine speed work. `swerve bench` feeds uniform [0, 1) floats to every graph
input, and so does this script; integer inputs (indices, batch indices) are initializers. A row
whose operator swerve does not load says so instead of a time.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rnn import cpu_model, time_ort, time_swerve  # noqa: E402

RNG = np.random.default_rng(0)


def weights(shape, scale, name):
    return numpy_helper.from_array((RNG.standard_normal(shape) * scale).astype(np.float32), name)


def node_model(name, nodes, inputs, outputs, inits, opset):
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT if t is None else t, None)
                               for n, t in outputs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10 if opset >= 21 else 8
    return model, {n: s for n, s in inputs}


def conv_transpose():
    """A decoder's upsampling layer: 1x64x56x56 -> 32 channels, kernel 4, stride 2, pad 1 (112x112)."""
    return node_model("convtranspose", [helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], kernel_shape=[4, 4],
                                                         strides=[2, 2], pads=[1, 1, 1, 1])],
                      [("x", [1, 64, 56, 56])], [("y", None)],
                      [weights((64, 32, 4, 4), 0.05, "w"), weights((32,), 0.1, "b")], 17)


def resize(mode):
    """x2 upsampling of 1x64x80x80 (a segmentation or FPN decoder)."""
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    extra = {"coordinate_transformation_mode": "half_pixel"} if mode != "nearest" else {}
    return node_model(f"resize_{mode}", [helper.make_node("Resize", ["x", "", "scales"], ["y"], mode=mode, **extra)],
                      [("x", [1, 64, 80, 80])], [("y", None)], [scales], 19)


def recurrent(op):
    """One layer, seq 64, batch 16, input and hidden 256 (bench/engine/rnn.py has more)."""
    gates = 4 if op == "LSTM" else 3
    s = 1 / 16
    outputs = ["y", "yh"] + (["yc"] if op == "LSTM" else [])
    return node_model(op.lower(), [helper.make_node(op, ["x", "w", "r", "b"], outputs, hidden_size=256)],
                      [("x", [64, 16, 256])], [(o, None) for o in outputs],
                      [weights((1, gates * 256, 256), s, "w"), weights((1, gates * 256, 256), s, "r"),
                       weights((1, 2 * gates * 256), s, "b")], 14)


def nms():
    """80 classes x 2000 candidate boxes, IoU 0.5, score threshold 0.05, 100 per class."""
    consts = [numpy_helper.from_array(np.array([100], np.int64), "max_out"),
              numpy_helper.from_array(np.array([0.5], np.float32), "iou"),
              numpy_helper.from_array(np.array([0.05], np.float32), "score")]
    return node_model("nms", [helper.make_node("NonMaxSuppression", ["boxes", "scores", "max_out", "iou", "score"],
                                               ["selected"])],
                      [("boxes", [1, 2000, 4]), ("scores", [1, 80, 2000])], [("selected", TensorProto.INT64)],
                      consts, 11)


def roi_align():
    """Faster R-CNN's box head pooling: 512 RoIs of a 1x256x50x50 feature map to 7x7."""
    rois = numpy_helper.from_array(np.sort(RNG.random((512, 4)).astype(np.float32) * 50, axis=1)[:, [0, 1, 2, 3]], "rois")
    index = numpy_helper.from_array(np.zeros(512, np.int64), "index")
    return node_model("roialign", [helper.make_node("RoiAlign", ["x", "rois", "index"], ["y"], output_height=7,
                                                    output_width=7, sampling_ratio=2, spatial_scale=1.0)],
                      [("x", [1, 256, 50, 50])], [("y", None)], [rois, index], 16)


def scatter_nd():
    """BART/swin-style updates: 1024 rows of a 4096x256 tensor replaced."""
    indices = numpy_helper.from_array(RNG.permutation(4096)[:1024].reshape(1024, 1).astype(np.int64), "indices")
    return node_model("scatternd", [helper.make_node("ScatterND", ["data", "indices", "updates"], ["y"])],
                      [("data", [4096, 256]), ("updates", [1024, 256])], [("y", None)], [indices], 16)


def grid_sample():
    """RAFT-style bilinear sampling of 1x64x64x64 at a 64x64 grid."""
    return node_model("gridsample", [helper.make_node("GridSample", ["x", "grid"], ["y"], mode="linear",
                                                      padding_mode="zeros", align_corners=0)],
                      [("x", [1, 64, 64, 64]), ("grid", [1, 64, 64, 2])], [("y", None)], [], 20)


def attention(seq):
    """Opset-23 Attention: batch 1, 12 heads, head dim 64, causal, 4-D Q/K/V."""
    shape = [1, 12, seq, 64]
    return node_model(f"attention_{seq}", [helper.make_node("Attention", ["q", "k", "v"], ["y"], is_causal=1)],
                      [("q", shape), ("k", shape), ("v", shape)], [("y", None)], [], 23)


CASES = {
    "ConvTranspose 64->32 k4 s2 56x56": conv_transpose,
    "Resize nearest x2 64x80x80": lambda: resize("nearest"),
    "Resize linear x2 64x80x80": lambda: resize("linear"),
    "Resize cubic x2 64x80x80": lambda: resize("cubic"),
    "LSTM seq64 b16 256": lambda: recurrent("LSTM"),
    "GRU seq64 b16 256": lambda: recurrent("GRU"),
    "NonMaxSuppression 80x2000": nms,
    "RoiAlign 512 RoIs 256x50x50 -> 7x7": roi_align,
    "ScatterND 1024 of 4096x256": scatter_nd,
    "GridSample 64x64x64": grid_sample,
    "Attention causal 12x128x64": lambda: attention(128),
    "Attention causal 12x512x64": lambda: attention(512),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--swerve", default=".build/release/swerve")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--only", nargs="*", choices=sorted(CASES))
    args = parser.parse_args()
    directory = tempfile.mkdtemp()
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            flags = " ".join(sorted({w for line in f if line.startswith("flags") for w in line.split()
                                     if w.startswith(("avx", "fma", "amx"))}))
    except OSError:
        pass
    print(f"CPU: {cpu_model()} ({flags}); {os.cpu_count()} CPUs; threads {args.threads}; onnxruntime {ort.__version__}")
    print()
    print("| operator | Swerve ms | onnxruntime ms | ratio (range) |")
    print("|---|---|---|---|")
    for name in args.only or CASES:
        model, shapes = CASES[name]()
        path = os.path.join(directory, f"{model.graph.name}.onnx")
        onnx.save(model, path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        feeds = {n: np.random.default_rng(1).random(s, dtype=np.float32) for n, s in shapes.items()}
        for _ in range(args.warmup):
            session.run(None, feeds)
        mine, theirs, ratios = [], [], []
        try:
            for _ in range(args.rounds):
                m = time_swerve(args.swerve, path, args.threads, args.iterations, args.warmup)
                t = time_ort(session, feeds, args.iterations)
                mine.append(m)
                theirs.append(t)
                ratios.append(m / t)
        except subprocess.CalledProcessError as error:
            reason = (error.stderr or error.stdout or "").strip().splitlines()
            print(f"| {name} | not loaded: {reason[-1][:120] if reason else error} | | |", flush=True)
            continue
        print(f"| {name} | {statistics.median(mine):.3f} | {statistics.median(theirs):.3f} | "
              f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
