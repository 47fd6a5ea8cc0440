#!/usr/bin/env python3
"""The heavy operators of the zoo, one model each at typical sizes, in Swerve (`swerve bench`) and
onnxruntime in the same run, same thread count: ConvTranspose (decoder layers, groups, 3-D), DeformConv, Resize
(nearest, linear, cubic), LSTM, GRU, ScatterND, NonMaxSuppression, RoiAlign, GridSample, Unique and
Attention (opset 23).

Usage (from the repo root; any Python with onnx, onnxruntime and numpy):
    PYTHON bench/engine/heavy_ops.py --swerve .build/release/swerve [--threads 1] [--rounds 3] [--only SUBSTRING ...]

Each row alternates the two engines --rounds times (bench/engine/peer.py) and prints the medians and
the median of the per-round ratios Swerve/onnxruntime (< 1: Swerve is faster) with their range; the
goal is <= 1.3 now and <= 1.0 after the engine speed work. `swerve bench` feeds uniform [0, 1)
floats to every graph input, and so does this script; the detection models shape those inside the
graph into realistic values:
- NMS: boxes [1, N, 4] in centre format over a 640x640 image (sizes up to 64), scores [1, 80, N] as
  u^16 (about 8 % above 0.25, like a detector's sigmoid outputs) or plain u (no score threshold);
- RoiAlign: an FPN level [1, 256, 50, 68] at stride 16, regions of 2-22 feature pixels, 7x7 bins;
- GridSample: [1, 64, 128, 128] sampled at a random grid of 128x128 positions (worst locality);
- Unique: 1M values with 1000 distinct ones.
Their extra graph steps (Mul, Add, MatMul on the inputs) are cheap next to the operator measured.
Integer inputs (indices, batch indices) are initializers. A row whose operator swerve does not load
says so instead of a time.
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


def scatter_nd():
    """BART/swin-style updates: 1024 rows of a 4096x256 tensor replaced."""
    indices = numpy_helper.from_array(RNG.permutation(4096)[:1024].reshape(1024, 1).astype(np.int64), "indices")
    return node_model("scatternd", [helper.make_node("ScatterND", ["data", "indices", "updates"], ["y"])],
                      [("data", [4096, 256]), ("updates", [1024, 256])], [("y", None)], [indices], 16)


def conv_transpose(x_shape, m, kernel, attributes):
    """One ConvTranspose layer, constant weights and bias."""
    group = attributes.get("group", 1)
    c = x_shape[1]
    w = (RNG.standard_normal([c, m // group] + kernel) / np.sqrt(c * np.prod(kernel))).astype(np.float32)
    return node_model("convtranspose", [helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], **attributes)],
                      [("x", x_shape)], [("y", None)],
                      [numpy_helper.from_array(w, "w"), weights((m,), 1.0, "b")], 17)


def attention(seq, causal):
    """Opset-23 Attention: batch 1, 12 heads, head dim 64, 4-D Q/K/V."""
    shape = [1, 12, seq, 64]
    return node_model(f"attention_{seq}", [helper.make_node("Attention", ["q", "k", "v"], ["y"], is_causal=int(causal))],
                      [("q", shape), ("k", shape), ("v", shape)], [("y", None)], [], 23)


F = TensorProto.FLOAT


def detection_model(nodes, inputs, outputs, inits, opset):
    """`node_model` with initializers given as {name: array}."""
    return node_model("bench", nodes, inputs, outputs,
                      [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()], opset)


def nms(n, threshold, limit, iou, squarings):
    nodes = [helper.make_node("Mul", ["ub", "scale"], ["boxes"])]
    scores = "us"
    for i in range(squarings):
        nodes.append(helper.make_node("Mul", [scores, scores], [f"sq{i}"]))
        scores = f"sq{i}"
    inits = {"scale": np.array([640, 640, 64, 64], np.float32), "m": np.array([limit], np.int64),
             "iou": np.array([iou], np.float32)}
    names = ["boxes", scores, "m", "iou"]
    if threshold is not None:
        inits["st"] = np.array([threshold], np.float32)
        names.append("st")
    nodes.append(helper.make_node("NonMaxSuppression", names, ["sel"], center_point_box=1))
    return detection_model(nodes, [("ub", [1, n, 4]), ("us", [1, 80, n])], [("sel", TensorProto.INT64)], inits, 11)


def roi_align(regions, mode, ratio):
    corners = np.array([[60, 0, 60, 0], [0, 45, 0, 45], [0, 0, 20, 0], [0, 0, 0, 20]], np.float32) * 16
    nodes = [helper.make_node("MatMul", ["u", "corners"], ["r0"]), helper.make_node("Add", ["r0", "minimum"], ["rois"]),
             helper.make_node("RoiAlign", ["x", "rois", "bi"], ["y"], mode=mode, output_height=7, output_width=7,
                              sampling_ratio=ratio, spatial_scale=1 / 16)]
    inits = {"corners": corners, "minimum": np.array([0, 0, 32, 32], np.float32), "bi": np.zeros(regions, np.int64)}
    return detection_model(nodes, [("x", [1, 256, 50, 68]), ("u", [regions, 4])], [("y", F)], inits, 16)


def grid_sample(mode, padding, align):
    nodes = [helper.make_node("Mul", ["u", "two"], ["g0"]), helper.make_node("Sub", ["g0", "one"], ["grid"]),
             helper.make_node("GridSample", ["x", "grid"], ["y"], mode=mode, padding_mode=padding, align_corners=align)]
    inits = {"two": np.array(2.2, np.float32), "one": np.array(1.1, np.float32)}
    return detection_model(nodes, [("x", [1, 64, 128, 128]), ("u", [1, 128, 128, 2])], [("y", F)], inits, 16)


def unique(sorted_):
    nodes = [helper.make_node("Mul", ["u", "k"], ["a"]), helper.make_node("Floor", ["a"], ["b"]),
             helper.make_node("Unique", ["b"], ["y", "i", "inv", "c"], sorted=sorted_)]
    outputs = [("y", F), ("i", TensorProto.INT64), ("inv", TensorProto.INT64), ("c", TensorProto.INT64)]
    return detection_model(nodes, [("u", [1000, 1000])], outputs, {"k": np.array(1000, np.float32)}, 11)


def deform_conv(x_shape, m, offset_groups, mask, attributes):
    """A deformable 3x3 convolution (DCN detectors and segmenters), offsets of about a pixel."""
    n, c, h, w = x_shape
    pads, strides = attributes.get("pads", [0, 0, 0, 0]), attributes.get("strides", [1, 1])
    oh, ow = (h + pads[0] + pads[2] - 3) // strides[0] + 1, (w + pads[1] + pads[3] - 3) // strides[1] + 1
    inputs = [("x", x_shape), ("offset", [n, offset_groups * 18, oh, ow])]
    if mask:
        inputs.append(("mask", [n, offset_groups * 9, oh, ow]))
    node = helper.make_node("DeformConv", ["x", "w", "offset", "", "mask"] if mask else ["x", "w", "offset"], ["y"],
                            offset_group=offset_groups, **attributes)
    return node_model("deform_conv", [node], inputs, [("y", None)], [weights([m, c, 3, 3], 0.05, "w")], 19)


CASES = {
    "ConvTranspose 64->32 k4 s2 p1 56x56": lambda: conv_transpose([1, 64, 56, 56], 32, [4, 4], {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
    "ConvTranspose same, batch 4": lambda: conv_transpose([4, 64, 56, 56], 32, [4, 4], {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
    "ConvTranspose 128->64 k2 s2 28x28": lambda: conv_transpose([1, 128, 28, 28], 64, [2, 2], {"strides": [2, 2]}),
    "ConvTranspose 64->64 k3 s2 op1 group 4": lambda: conv_transpose(
        [1, 64, 32, 32], 64, [3, 3], {"strides": [2, 2], "pads": [1, 1, 1, 1], "output_padding": [1, 1], "group": 4}),
    "ConvTranspose 3-D 32->16 k2 s2 16^3": lambda: conv_transpose([1, 32, 16, 16, 16], 16, [2, 2, 2], {"strides": [2, 2, 2]}),
    "DeformConv 64->64 k3 p1 56x56": lambda: deform_conv([1, 64, 56, 56], 64, 1, False, {"pads": [1, 1, 1, 1]}),
    "DeformConv same, mask, 4 offset groups, batch 2": lambda: deform_conv(
        [2, 64, 56, 56], 64, 4, True, {"pads": [1, 1, 1, 1]}),
    "DeformConv 256->256 k3 p1 28x28": lambda: deform_conv([1, 256, 28, 28], 256, 1, False, {"pads": [1, 1, 1, 1]}),
    "Resize nearest x2 64x80x80": lambda: resize("nearest"),
    "Resize linear x2 64x80x80": lambda: resize("linear"),
    "Resize cubic x2 64x80x80": lambda: resize("cubic"),
    "LSTM seq64 b16 256": lambda: recurrent("LSTM"),
    "GRU seq64 b16 256": lambda: recurrent("GRU"),
    "ScatterND 1024 of 4096x256": scatter_nd,
    "NMS yolo 8400 boxes, 0.25": lambda: nms(8400, 0.25, 100, 0.45, 4),
    "NMS 2000 boxes, 0.25": lambda: nms(2000, 0.25, 100, 0.5, 4),
    "NMS 1000 boxes, no threshold": lambda: nms(1000, None, 100, 0.5, 0),
    "NMS 5000 boxes, 0.05": lambda: nms(5000, 0.05, 200, 0.5, 4),
    "RoiAlign avg ratio 2, 1000 RoIs": lambda: roi_align(1000, "avg", 2),
    "RoiAlign avg adaptive, 300 RoIs": lambda: roi_align(300, "avg", 0),
    "RoiAlign max ratio 2, 1000 RoIs": lambda: roi_align(1000, "max", 2),
    "GridSample bilinear zeros": lambda: grid_sample("bilinear", "zeros", 0),
    "GridSample bilinear border aligned": lambda: grid_sample("bilinear", "border", 1),
    "GridSample nearest": lambda: grid_sample("nearest", "zeros", 0),
    "GridSample bicubic": lambda: grid_sample("bicubic", "zeros", 0),
    "Unique 1M sorted": lambda: unique(1),
    "Attention 12x128x64": lambda: attention(128, False),
    "Attention causal 12x128x64": lambda: attention(128, True),
    "Attention 12x512x64": lambda: attention(512, False),
    "Attention causal 12x512x64": lambda: attention(512, True),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--swerve", default=".build/release/swerve")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=[], help="run the cases whose name contains one of these")
    args = parser.parse_args()
    directory = tempfile.mkdtemp()
    print(f"CPU: {cpu_model()} ({isa_flags()}); {os.cpu_count()} CPUs; threads {args.threads}; onnxruntime {ort.__version__}")
    print()
    print("| operator | Swerve ms | onnxruntime ms | ratio (range) |")
    print("|---|---|---|---|")
    for index, (name, build) in enumerate(CASES.items()):
        if args.only and not any(o in name for o in args.only):
            continue
        model, shapes = build()
        path = os.path.join(directory, f"case{index}.onnx")
        onnx.save(model, path)
        feeds = {n: np.random.default_rng(1).random(s, dtype=np.float32) for n, s in shapes.items()}
        print(f"| {name} | {compare(args.swerve, path, feeds, args.threads, args.rounds, args.iterations, args.warmup)} |",
              flush=True)


if __name__ == "__main__":
    sys.exit(main())
