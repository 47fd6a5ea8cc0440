#!/usr/bin/env python3
"""Engine latency of Swerve against onnxruntime, same thread count, same run, median of many.

For each model (exports of tools/export_real_models.py), batch and thread count, runs

    swerve bench MODEL --batch B --threads T --iterations K --warmup W [--dim NAME=VALUE ...]

(the engine alone: ONNXLoader + InferenceSession.run, no HTTP) and then onnxruntime
(`intra_op_num_threads=T`, `inter_op_num_threads=1`, sequential execution) on the same file with
inputs of the same shapes, K timed runs after W warm-ups each. Each row alternates the two
--rounds times (default 3) and reports the medians over the rounds and the median of the
per-round ratios, with their range: on a shared VM whose speed changes for minutes at a time,
a ratio then compares the two engines measured seconds apart, not one of them in a slow period
and the other out of it. Also reports load time (file to
ready session) and Swerve's resident-memory growth (load; load plus the runs, batch 1 row, which
touches the memory-mapped weights) against the weights' size.

    .venv-realmodels/bin/python bench/engine/run.py --swerve .build/release/swerve --store .realmodels
    (or: make bench-engine)

With OpenVINO installed (pip `openvino`) it is the second peer, run in the same rounds (CPU plugin,
f32 inference precision, one stream, latency hint, the same threads). `--levels avx2 avx512` runs
Swerve once per CPU level in every round (`SWERVE_CPU_LEVEL`), so one run gives the before and
after of a kernel level against the same peer figures. The first line records the CPU model, its
cpuid family/model and ISA flags.

Prints a Markdown table (ratios Swerve/onnxruntime; < 1 means Swerve is faster) and writes the raw
figures as JSON (--json). Rows whose model Swerve cannot load yet say so, with the reason.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer import cpu_model, isa_flags  # noqa: E402

try:
    import openvino as ov
except ImportError:  # the second peer is optional
    ov = None

MODELS = ["mlp", "resnet18", "mobilenet_v2", "bert_tiny"]
SEQUENCE = 128  # tiny BERT is measured at sequence 128


def feeds_for(session: ort.InferenceSession, batch: int) -> tuple[dict, dict]:
    """onnxruntime inputs of the shapes swerve bench makes, and the --dim values for swerve."""
    rng = np.random.default_rng(0)
    feeds, dims = {}, {}
    for i in session.get_inputs():
        shape = []
        for axis, d in enumerate(i.shape):
            if isinstance(d, int):
                shape.append(d)
                continue
            value = batch if axis == 0 else SEQUENCE
            if isinstance(d, str):
                dims[d] = value
            shape.append(value)
        if i.type == "tensor(float)":
            feeds[i.name] = rng.random(shape, dtype=np.float32)
        else:  # int64 ids and masks: 1, as swerve bench makes them
            feeds[i.name] = np.ones(shape, dtype=np.int64)
    return feeds, dims


class OrtRunner:
    """One onnxruntime session for a row, timed as many times as the row has rounds."""

    def __init__(self, path: Path, batch: int, threads: int, warmup: int, min_iterations: int = 10):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        start = time.perf_counter()
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.load_ms = (time.perf_counter() - start) * 1000
        self.feeds, self.dims = feeds_for(self.session, batch)
        for _ in range(max(1, warmup)):
            t0 = time.perf_counter()
            self.session.run(None, self.feeds)
            one = time.perf_counter() - t0
        # About 2 s of timed runs per round, at least `min_iterations` (10), at most 300.
        self.iterations = int(min(300, max(min_iterations, 2.0 / max(one, 1e-6))))

    def median_ms(self) -> float:
        times = []
        for _ in range(self.iterations):
            t0 = time.perf_counter()
            self.session.run(None, self.feeds)
            times.append(time.perf_counter() - t0)
        return statistics.median(times) * 1000


class OpenVINORunner:
    """OpenVINO's CPU plugin on the same file and inputs (shapes made static), f32 precision."""

    def __init__(self, path: Path, feeds: dict, threads: int, warmup: int, iterations: int):
        core = ov.Core()
        start = time.perf_counter()
        model = core.read_model(str(path))
        model.reshape({i.get_any_name(): list(feeds[i.get_any_name()].shape) for i in model.inputs})
        config = {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_PRECISION_HINT": "f32"}
        self.compiled = core.compile_model(model, "CPU", config)
        self.load_ms = (time.perf_counter() - start) * 1000
        self.request = self.compiled.create_infer_request()
        self.feeds = {i.get_any_name(): feeds[i.get_any_name()] for i in self.compiled.inputs}
        self.iterations = iterations
        for _ in range(max(1, warmup)):
            self.request.infer(self.feeds)

    def median_ms(self) -> float:
        times = []
        for _ in range(self.iterations):
            t0 = time.perf_counter()
            self.request.infer(self.feeds)
            times.append(time.perf_counter() - t0)
        return statistics.median(times) * 1000


def cpu_line() -> str:
    family = model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("cpu family") and family == "?":
                    family = line.split(":", 1)[1].strip()
                elif line.startswith("model\t") and model == "?":
                    model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"{cpu_model()} (family {family} model {model}); flags: {isa_flags()}"


def swerve_bench(swerve: Path, path: Path, batch: int, threads: int, iterations: int, warmup: int,
                 dims: dict, level: str | None = None) -> dict:
    env = dict(os.environ)
    if level:
        env["SWERVE_CPU_LEVEL"] = level
    args = [str(swerve), "bench", str(path), "--batch", str(batch), "--threads", str(threads),
            "--iterations", str(iterations), "--warmup", str(warmup)]
    for name, value in dims.items():
        args += ["--dim", f"{name}={value}"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=1800, env=env)
    if done.returncode != 0:
        reason = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:]
        return {"error": reason[0] if reason else f"exit status {done.returncode}", "command": " ".join(args)}
    result = json.loads(done.stdout)
    result["command"] = (f"SWERVE_CPU_LEVEL={level} " if level else "") + " ".join(args)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--swerve", type=Path, default=Path(".build/release/swerve"))
    parser.add_argument("--store", type=Path, default=Path(".realmodels"))
    parser.add_argument("--exporter", default="torchscript", choices=["torchscript", "dynamo"])
    parser.add_argument("--models", nargs="*", default=MODELS)
    parser.add_argument("--batches", nargs="*", type=int, default=[1, 32])
    parser.add_argument("--threads", nargs="*", type=int, default=[1, 2])
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--min-iterations", type=int, default=10,
                        help="timed runs per round at least (about 2 s of runs otherwise); 5 for the broad set's big rows")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the two engines per row")
    parser.add_argument("--json", type=Path, help="write the raw figures here")
    parser.add_argument("--levels", nargs="*", default=[None],
                        help="Swerve CPU levels to run in every round (SWERVE_CPU_LEVEL), e.g. avx2 avx512")
    parser.add_argument("--no-openvino", action="store_true", help="onnxruntime only, even if OpenVINO is installed")
    args = parser.parse_args()
    use_ov = ov is not None and not args.no_openvino

    rows = []
    peers = f"onnxruntime {ort.__version__}" + (f", OpenVINO {ov.get_version()}" if use_ov else "")
    print(f"# {platform.node()}: {os.cpu_count()} cores, {peers}, exporter {args.exporter}", flush=True)
    print(f"# cpu: {cpu_line()}", flush=True)
    ov_head = " OpenVINO ms | ratio OV | range OV |" if use_ov else ""
    print(f"| model | batch | threads | level | Swerve ms | onnxruntime ms | ratio | ratio range |{ov_head} K |")
    print("|---|---:|---:|---|---:|---:|---:|---:|" + ("---:|---:|---:|" if use_ov else "") + "---:|", flush=True)
    for model in args.models:
        path = args.store / f"{model}_{args.exporter}" / "1" / "model.onnx"
        weights = sum(p.stat().st_size for p in path.parent.iterdir())
        for threads in args.threads:
            for batch in args.batches:
                runner = OrtRunner(path, batch, threads, args.warmup, args.min_iterations)
                ov_runner = (OpenVINORunner(path, runner.feeds, threads, args.warmup, runner.iterations)
                             if use_ov else None)
                theirs, ov_theirs = [], []
                mine = {level: None for level in args.levels}
                ratios = {level: [] for level in args.levels}
                ov_ratios = {level: [] for level in args.levels}
                for _ in range(max(1, args.rounds)):
                    theirs.append(runner.median_ms())
                    if ov_runner:
                        ov_theirs.append(ov_runner.median_ms())
                    for level in args.levels:
                        if mine[level] and "error" in mine[level]:
                            continue
                        result = swerve_bench(args.swerve, path, batch, threads, runner.iterations, args.warmup,
                                              runner.dims, level)
                        if "error" in result:
                            mine[level] = result
                            continue
                        mine[level] = mine[level] or result
                        mine[level].setdefault("rounds_ms", []).append(result["median_ms"])
                        ratios[level].append(result["median_ms"] / theirs[-1])
                        if ov_runner:
                            ov_ratios[level].append(result["median_ms"] / ov_theirs[-1])
                ref = {"load_ms": runner.load_ms, "median_ms": statistics.median(theirs), "rounds_ms": theirs,
                       "iterations": runner.iterations, "dims": runner.dims}
                ov_ref = ({"load_ms": ov_runner.load_ms, "median_ms": statistics.median(ov_theirs),
                           "rounds_ms": ov_theirs} if ov_runner else None)
                for level in args.levels:
                    m = mine[level]
                    row = {"model": model, "batch": batch, "threads": threads, "level": level or "default",
                           "weights_bytes": weights, "onnxruntime": ref, "openvino": ov_ref, "swerve": m}
                    rows.append(row)
                    name = level or "default"
                    if "error" in m:
                        print(f"| {model} | {batch} | {threads} | {name} | awaits operators | {ref['median_ms']:.3f} "
                              f"| - | - |" + (f" {ov_ref['median_ms']:.3f} | - | - |" if ov_ref else "")
                              + f" {ref['iterations']} |", flush=True)
                        continue
                    m["median_ms"] = statistics.median(m["rounds_ms"])
                    r = ratios[level]
                    ov_cells = ""
                    if ov_ref:
                        o = ov_ratios[level]
                        ov_cells = (f" {ov_ref['median_ms']:.3f} | {statistics.median(o):.2f} | "
                                    f"{min(o):.2f}-{max(o):.2f} |")
                    print(f"| {model} | {batch} | {threads} | {name} | {m['median_ms']:.3f} | {ref['median_ms']:.3f} | "
                          f"{statistics.median(r):.2f} | {min(r):.2f}-{max(r):.2f} |{ov_cells} {ref['iterations']} |",
                          flush=True)
    print()
    print("| model | weights MB | Swerve load ms | onnxruntime load ms | Swerve RSS growth: load MB | after runs MB "
          "| after runs / weights |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    seen = set()
    for row in rows:
        if "error" in row["swerve"] and any(r["model"] == row["model"] and "error" not in r["swerve"] for r in rows):
            continue
        if row["model"] in seen:
            continue
        seen.add(row["model"])
        mine, ref, mb = row["swerve"], row["onnxruntime"], row["weights_bytes"] / 1e6
        if "error" in mine:
            print(f"| {row['model']} | {mb:.1f} | cannot load: {mine['error'][:120]} | {ref['load_ms']:.1f} | - | - | - |")
            continue
        growth = (mine["rss_loaded"] - mine["rss_before"]) / 1e6
        after = (mine["rss_after_run"] - mine["rss_before"]) / 1e6
        print(f"| {row['model']} | {mb:.1f} | {mine['load_ms']:.1f} | {ref['load_ms']:.1f} | {growth:.1f} | "
              f"{after:.1f} | {after / mb:.2f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
