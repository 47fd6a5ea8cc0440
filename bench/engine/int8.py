#!/usr/bin/env python3
"""Quantized (int8) models against their float32 originals, in Swerve and onnxruntime: latency and agreement.

Quantizes two models of the broad set (bench/engine/export_broad.py, `.bench-models`) with
onnxruntime's own quantizer, as a user would, if not already done:

  resnet50_int8    quantize_static, QDQ format, per-channel int8 weights, uint8 activations,
                   calibrated (MinMax) on 16 generated images (Swerve fuses the QDQ pairs into
                   QLinearConv at load, as onnxruntime does)
  bert_base_int8   quantize_dynamic (int8 weights, activations quantized at run time:
                   DynamicQuantizeLinear + MatMulInteger)

then, for each pair, batch and thread count, alternates --rounds times (default 3)

    swerve bench FP32 ; swerve bench INT8 ; onnxruntime FP32 ; onnxruntime INT8

and reports the medians, Swerve's int8/fp32 ratio (the quantization goal: at most 0.5) and Swerve
int8 / onnxruntime int8 (at most 1.0), each the median of per-round ratios with their range.

Agreement (--agreement N, default 64 inputs): the same generated inputs through Swerve over HTTP
(`swerve serve`, KServe V2 JSON) and through onnxruntime, for the int8 model and its fp32 original:
for resnet50 the share of inputs whose top-1 class matches (Swerve int8 vs Swerve fp32, onnxruntime
int8 vs onnxruntime fp32, Swerve int8 vs onnxruntime int8); for BERT the worst relative L2 error
of the hidden states against the fp32 output. The weights are random (no downloads here), so the
int8-vs-fp32 figures show the quantizer's loss on these weights and inputs; the figure that
judges Swerve is Swerve int8 against onnxruntime int8 on the same file.

    .venv-realmodels/bin/python bench/engine/int8.py --swerve .build/release/swerve --store .bench-models
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import OrtRunner, cpu_line, feeds_for, swerve_bench  # noqa: E402

PAIRS = [("resnet50", "resnet50_int8"), ("bert_base", "bert_base_int8")]


def model_path(store: Path, name: str) -> Path:
    return store / f"{name}_torchscript" / "1" / "model.onnx"


class Images:
    """The calibration reader: 16 generated images, one per call."""

    def __init__(self, name: str, shape: list[int]):
        rng = np.random.default_rng(1)
        self.items = iter([{name: rng.standard_normal([1] + shape[1:]).astype(np.float32)} for _ in range(16)])

    def get_next(self):
        return next(self.items, None)


def quantize(store: Path) -> None:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    target = model_path(store, "resnet50_int8")
    if not target.exists():
        source = model_path(store, "resnet50")
        session = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"])
        first = session.get_inputs()[0]
        target.parent.mkdir(parents=True, exist_ok=True)
        print(f"quantizing {source} -> {target} (static QDQ, per channel)", file=sys.stderr)
        quantize_static(str(source), str(target), Images(first.name, [1, 3, 224, 224]),
                        quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8)
    target = model_path(store, "bert_base_int8")
    if not target.exists():
        source = model_path(store, "bert_base")
        target.parent.mkdir(parents=True, exist_ok=True)
        print(f"quantizing {source} -> {target} (dynamic)", file=sys.stderr)
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)


def ratio(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def timing(args, fp32: str, int8: str, batch: int, threads: int) -> dict:
    paths = {"fp32": model_path(args.store, fp32), "int8": model_path(args.store, int8)}
    ort_runs = {k: OrtRunner(p, batch, threads, args.warmup, args.min_iterations) for k, p in paths.items()}
    rounds = []
    for _ in range(args.rounds):
        figures = {}
        for kind, path in paths.items():
            runner = ort_runs[kind]
            result = swerve_bench(args.swerve, path, batch, threads, runner.iterations, args.warmup, runner.dims)
            if "error" in result:
                return {"error": f"swerve {kind}: {result['error']}"}
            figures[f"swerve_{kind}"] = result["median_ms"]
        for kind in paths:
            figures[f"ort_{kind}"] = ort_runs[kind].median_ms()
        rounds.append(figures)
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    return {
        "medians_ms": med,
        "rounds": rounds,
        "swerve_int8_over_fp32": [r["swerve_int8"] / r["swerve_fp32"] for r in rounds],
        "swerve_int8_over_ort_int8": [r["swerve_int8"] / r["ort_int8"] for r in rounds],
        "ort_int8_over_fp32": [r["ort_int8"] / r["ort_fp32"] for r in rounds],
    }


class Server:
    """`swerve serve` on a store of the given models (symbolic links), on a free port."""

    def __init__(self, swerve: Path, store: Path, names: list[str], threads: int):
        self.dir = tempfile.TemporaryDirectory()
        for name in names:
            (Path(self.dir.name) / name / "1").mkdir(parents=True)
            (Path(self.dir.name) / name / "1" / "model.onnx").symlink_to(model_path(store, name).resolve())
        self.port, management = free_port(), free_port()
        self.process = subprocess.Popen(
            [str(swerve), "serve", "--model-store", self.dir.name, "--host", "127.0.0.1", "--port", str(self.port),
             "--management-port", str(management), "--threads", str(threads), "--max-body-size", str(1 << 30)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 600
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v2/health/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise SystemExit("swerve serve did not become ready in 10 minutes")

    def infer(self, name: str, feeds: dict) -> np.ndarray:
        inputs = []
        for key, value in feeds.items():
            datatype = "FP32" if value.dtype == np.float32 else "INT64"
            inputs.append({"name": key, "shape": list(value.shape), "datatype": datatype, "data": value.ravel().tolist()})
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/v2/models/{name}/infer",
                                         data=json.dumps({"inputs": inputs}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=600) as r:
            out = json.loads(r.read())["outputs"][0]
        return np.array(out["data"], dtype=np.float32).reshape(out["shape"])

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)
        self.dir.cleanup()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def agreement(args, fp32: str, int8: str) -> dict:
    sessions = {n: ort.InferenceSession(str(model_path(args.store, n)), providers=["CPUExecutionProvider"])
                for n in (fp32, int8)}
    server = Server(args.swerve, args.store, [fp32, int8], threads=2)
    rng = np.random.default_rng(7)
    outputs = {k: [] for k in ("swerve_fp32", "swerve_int8", "ort_fp32", "ort_int8")}
    try:
        for _ in range(args.agreement):
            feeds, _ = feeds_for(sessions[fp32], 1)
            for key, value in feeds.items():
                if value.dtype == np.float32:
                    feeds[key] = rng.standard_normal(value.shape).astype(np.float32)
                else:  # token ids over a small vocabulary slice; mask all ones
                    feeds[key] = rng.integers(0, 1000, value.shape) if "ids" in key else np.ones_like(value)
            outputs["swerve_fp32"].append(server.infer(fp32, feeds))
            outputs["swerve_int8"].append(server.infer(int8, feeds))
            outputs["ort_fp32"].append(sessions[fp32].run(None, feeds)[0])
            outputs["ort_int8"].append(sessions[int8].run(None, feeds)[0])
    finally:
        server.close()
    if outputs["ort_fp32"][0].ndim == 2:  # class scores
        def top1(a, b):
            return float(np.mean([np.argmax(x) == np.argmax(y) for x, y in zip(outputs[a], outputs[b])]))
        return {"top1_swerve_int8_vs_swerve_fp32": top1("swerve_int8", "swerve_fp32"),
                "top1_ort_int8_vs_ort_fp32": top1("ort_int8", "ort_fp32"),
                "top1_swerve_int8_vs_ort_int8": top1("swerve_int8", "ort_int8"),
                "max_abs_swerve_int8_vs_ort_int8": float(max(np.max(np.abs(x - y)) for x, y in
                                                             zip(outputs["swerve_int8"], outputs["ort_int8"])))}

    def rel(a, b):
        return float(max(np.linalg.norm(x - y) / np.linalg.norm(y) for x, y in zip(outputs[a], outputs[b])))
    return {"rel_l2_swerve_int8_vs_swerve_fp32": rel("swerve_int8", "swerve_fp32"),
            "rel_l2_ort_int8_vs_ort_fp32": rel("ort_int8", "ort_fp32"),
            "rel_l2_swerve_int8_vs_ort_int8": rel("swerve_int8", "ort_int8")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--swerve", type=Path, default=Path(".build/release/swerve"))
    parser.add_argument("--store", type=Path, default=Path(".bench-models"))
    parser.add_argument("--pairs", nargs="*", default=[p[0] for p in PAIRS], help="fp32 models of PAIRS to run")
    parser.add_argument("--batches", nargs="*", type=int, default=[1, 8])
    parser.add_argument("--threads", nargs="*", type=int, default=[1, 2])
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--min-iterations", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--agreement", type=int, default=64, help="inputs compared per pair (0: none)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    quantize(args.store)
    print(f"CPU: {cpu_line()}")
    results = []
    print("| model | batch | threads | Swerve fp32 ms | Swerve int8 ms | onnxruntime int8 ms | Swerve int8/fp32 | "
          "Swerve int8/onnxruntime int8 | onnxruntime int8/fp32 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for fp32, int8 in PAIRS:
        if fp32 not in args.pairs:
            continue
        for batch in args.batches:
            for threads in args.threads:
                t = timing(args, fp32, int8, batch, threads)
                results.append({"model": int8, "batch": batch, "threads": threads, **t})
                if "error" in t:
                    print(f"| {int8} | {batch} | {threads} | {t['error']} |||||||")
                    continue
                m = t["medians_ms"]
                print(f"| {int8} | {batch} | {threads} | {m['swerve_fp32']:.1f} | {m['swerve_int8']:.1f} | "
                      f"{m['ort_int8']:.1f} | {ratio(t['swerve_int8_over_fp32'])} | "
                      f"{ratio(t['swerve_int8_over_ort_int8'])} | {ratio(t['ort_int8_over_fp32'])} |", flush=True)
        if args.agreement:
            a = agreement(args, fp32, int8)
            results.append({"model": int8, "agreement": a, "inputs": args.agreement})
            print(f"\n{int8}, {args.agreement} generated inputs: " + ", ".join(f"{k} {v:.4g}" for k, v in a.items()) + "\n",
                  flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
