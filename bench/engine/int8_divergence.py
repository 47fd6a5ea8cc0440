#!/usr/bin/env python3
"""Where a dynamically quantized model's outputs in Swerve and onnxruntime part: every
DynamicQuantizeLinear's scale and uint8 output, in graph order, compared between the two on the
same input (Swerve over HTTP, onnxruntime's default session on the same file).

Dynamic quantization rounds each activation to one of 256 steps whose size depends on the
activation's own range, so a value within float32 rounding of a half step can land on either side
when the float work before it (LayerNorm, Softmax, Gelu, the float MatMuls of attention) rounds
differently; one step at one layer then moves the next layer's range and values. This prints, per
quantization point, the share of values that differ and by how many steps, and the scale's relative
difference, so the first point of divergence and its growth are visible.

    .venv-realmodels/bin/python bench/engine/int8_divergence.py --swerve .build/release/swerve \
        --model .bench-models/bert_base_int8_torchscript/1/model.onnx
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
from int8 import Server  # noqa: E402
from run import feeds_for  # noqa: E402


def infer_all(server: Server, name: str, feeds: dict) -> dict[str, np.ndarray]:
    inputs = [{"name": k, "shape": list(v.shape), "datatype": "FP32" if v.dtype == np.float32 else "INT64",
               "data": v.ravel().tolist()} for k, v in feeds.items()]
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}/v2/models/{name}/infer",
                                     data=json.dumps({"inputs": inputs}).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=600) as r:
            outputs = json.loads(r.read())["outputs"]
    except urllib.error.HTTPError as e:
        raise SystemExit(f"swerve answered {e.code}: {e.read().decode()[:500]}")
    types = {"FP32": np.float32, "UINT8": np.uint8}
    return {o["name"]: np.array(o["data"], dtype=types.get(o["datatype"], np.float64)).reshape(o["shape"]) for o in outputs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--swerve", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    model = onnx.load(str(args.model))
    points = [(n.output[0], n.output[1]) for n in model.graph.node if n.op_type == "DynamicQuantizeLinear"]
    existing = {o.name for o in model.graph.output}
    for q, s in points:
        for name in (q, s):
            if name not in existing:
                model.graph.output.append(onnx.ValueInfoProto(name=name))
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        path = store / "probe_torchscript" / "1" / "model.onnx"  # int8.Server's layout
        path.parent.mkdir(parents=True)
        onnx.save(model, str(path))
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feeds, _ = feeds_for(session, 1)
        rng = np.random.default_rng(args.seed)
        for key, value in feeds.items():
            if value.dtype == np.float32:
                feeds[key] = rng.standard_normal(value.shape).astype(np.float32)
            else:
                feeds[key] = rng.integers(0, 1000, value.shape) if "ids" in key else np.ones_like(value)
        names = [o.name for o in session.get_outputs()]
        reference = dict(zip(names, session.run(None, feeds)))
        server = Server(args.swerve, store, ["probe"], threads=2)
        try:
            ours = infer_all(server, "probe", feeds)
        finally:
            server.close()
    print("| # | quantized value | values | differing | largest difference (steps) | scale relative difference |")
    print("|---:|---|---:|---:|---:|---:|")
    for i, (q, s) in enumerate(points):
        a, b = ours[q].astype(np.int32), reference[q].astype(np.int32)
        differ = int(np.count_nonzero(a != b))
        scale = abs(float(ours[s].ravel()[0]) - float(reference[s].ravel()[0])) / float(reference[s].ravel()[0])
        print(f"| {i} | {q[:60]} | {a.size} | {differ} ({differ / a.size:.2e}) | {int(np.max(np.abs(a - b))) if a.size else 0} "
              f"| {scale:.1e} |")
    out = model.graph.output[0].name
    diff = np.linalg.norm(ours[out] - reference[out]) / np.linalg.norm(reference[out])
    print(f"\nfirst output '{out}': relative L2 difference {diff:.3g}")


if __name__ == "__main__":
    main()
