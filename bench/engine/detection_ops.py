#!/usr/bin/env python3
"""Detection and indexing operators (NonMaxSuppression, RoiAlign, GridSample, Unique) in Swerve and
onnxruntime: the p10 latency of the same small model in both, and their ratio.

Usage (from the repo root, with a release build and a Python that has numpy, onnx, onnxruntime):
    python bench/engine/detection_ops.py --swerve .build/release/swerve [--threads 1] [--only nms]

Each model takes uniform [0, 1) inputs, as `swerve bench` generates them (onnxruntime gets numpy's
uniform values of the same shapes), and shapes them inside the graph into realistic values:
- NMS: boxes [1, N, 4] in centre format over a 640x640 image (sizes up to 64), scores [1, 80, N] as
  u^16 (about 8 % above 0.25, like a detector's sigmoid outputs) or plain u (no score threshold);
- RoiAlign: an FPN level [1, 256, 50, 68] at stride 16, regions of 2-22 feature pixels, 7x7 bins;
- GridSample: [1, 64, 128, 128] sampled at a random grid of 128x128 positions (worst locality);
- Unique: 1M values with 1000 distinct ones.
The graph's extra steps (Mul, Add, MatMul on the inputs) are cheap next to the operator measured.
The models are written to a temporary directory.
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

F = TensorProto.FLOAT


def model(nodes, inputs, outputs, inits, opset):
    graph = helper.make_graph(
        nodes, "bench", [helper.make_tensor_value_info(n, F, s) for n, s in inputs],
        [helper.make_tensor_value_info(o, t, None) for o, t in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8), dict(inputs)


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
    return model(nodes, [("ub", [1, n, 4]), ("us", [1, 80, n])], [("sel", TensorProto.INT64)], inits, 11)


def roi_align(regions, mode, ratio):
    corners = np.array([[60, 0, 60, 0], [0, 45, 0, 45], [0, 0, 20, 0], [0, 0, 0, 20]], np.float32) * 16
    nodes = [helper.make_node("MatMul", ["u", "corners"], ["r0"]), helper.make_node("Add", ["r0", "minimum"], ["rois"]),
             helper.make_node("RoiAlign", ["x", "rois", "bi"], ["y"], mode=mode, output_height=7, output_width=7,
                              sampling_ratio=ratio, spatial_scale=1 / 16)]
    inits = {"corners": corners, "minimum": np.array([0, 0, 32, 32], np.float32), "bi": np.zeros(regions, np.int64)}
    return model(nodes, [("x", [1, 256, 50, 68]), ("u", [regions, 4])], [("y", F)], inits, 16)


def grid_sample(mode, padding, align):
    nodes = [helper.make_node("Mul", ["u", "two"], ["g0"]), helper.make_node("Sub", ["g0", "one"], ["grid"]),
             helper.make_node("GridSample", ["x", "grid"], ["y"], mode=mode, padding_mode=padding, align_corners=align)]
    inits = {"two": np.array(2.2, np.float32), "one": np.array(1.1, np.float32)}
    return model(nodes, [("x", [1, 64, 128, 128]), ("u", [1, 128, 128, 2])], [("y", F)], inits, 16)


def unique(sorted_):
    nodes = [helper.make_node("Mul", ["u", "k"], ["a"]), helper.make_node("Floor", ["a"], ["b"]),
             helper.make_node("Unique", ["b"], ["y", "i", "inv", "c"], sorted=sorted_)]
    outputs = [("y", F), ("i", TensorProto.INT64), ("inv", TensorProto.INT64), ("c", TensorProto.INT64)]
    return model(nodes, [("u", [1000, 1000])], outputs, {"k": np.array(1000, np.float32)}, 11)


CASES = {
    "nms_yolo_8400": lambda: nms(8400, 0.25, 100, 0.45, 4),
    "nms_2000": lambda: nms(2000, 0.25, 100, 0.5, 4),
    "nms_1000_no_threshold": lambda: nms(1000, None, 100, 0.5, 0),
    "nms_5000_threshold_0.05": lambda: nms(5000, 0.05, 200, 0.5, 4),
    "roialign_avg_ratio2": lambda: roi_align(1000, "avg", 2),
    "roialign_avg_adaptive": lambda: roi_align(300, "avg", 0),
    "roialign_max_ratio2": lambda: roi_align(1000, "max", 2),
    "gridsample_bilinear_zeros": lambda: grid_sample("bilinear", "zeros", 0),
    "gridsample_bilinear_border_aligned": lambda: grid_sample("bilinear", "border", 1),
    "gridsample_nearest": lambda: grid_sample("nearest", "zeros", 0),
    "gridsample_bicubic": lambda: grid_sample("bicubic", "zeros", 0),
    "unique_1M_sorted": lambda: unique(1),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--swerve", required=True, help="the release swerve binary")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--only", default="", help="run the cases whose name contains this")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name, build in CASES.items():
            if args.only not in name:
                continue
            m, shapes = build()
            path = os.path.join(tmp, name + ".onnx")
            onnx.save(m, path)
            options = ort.SessionOptions()
            options.intra_op_num_threads = args.threads
            options.inter_op_num_threads = 1
            session = ort.InferenceSession(m.SerializeToString(), options, providers=["CPUExecutionProvider"])
            rng = np.random.default_rng(0)
            feeds = {k: rng.random(s, dtype=np.float32) for k, s in shapes.items()}
            ort_ms, swerve_ms = [], []
            # Three alternating rounds; the best p10 of each, so that load on the machine counts less.
            for _ in range(3):
                for _ in range(3):
                    session.run(None, feeds)
                times = []
                for _ in range(args.iterations):
                    t = time.perf_counter()
                    session.run(None, feeds)
                    times.append(time.perf_counter() - t)
                ort_ms.append(np.percentile(times, 10) * 1000)
                out = subprocess.run(
                    [args.swerve, "bench", path, "--threads", str(args.threads), "--iterations", str(args.iterations)],
                    capture_output=True, text=True, check=True).stdout
                swerve_ms.append(json.loads(out)["p10_ms"])
            o, s = min(ort_ms), min(swerve_ms)
            print(f"{name:36s} threads={args.threads} onnxruntime {o:8.3f} ms  swerve {s:8.3f} ms  ratio {s / o:5.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
