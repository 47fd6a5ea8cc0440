"""What the one-operator benches share: the CPU line every figure is recorded with, an onnxruntime
session at a given thread count, and the alternating comparison of `swerve bench` with onnxruntime
on one model file (rounds alternate the two engines, so a slow period of a shared VM hits both).
"""
from __future__ import annotations

import json
import platform
import statistics
import subprocess
import time

import onnxruntime as ort


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def isa_flags() -> str:
    """The vector ISA flags that change who wins (AVX2, AVX-512 variants, FMA, AMX)."""
    try:
        with open("/proc/cpuinfo") as f:
            return " ".join(sorted({w for line in f if line.startswith("flags") for w in line.split()
                                    if w.startswith(("avx", "fma", "amx"))}))
    except OSError:
        return ""


def ort_session(path: str, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


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


def compare(swerve: str, path: str, feeds: dict, threads: int, rounds: int, iterations: int, warmup: int) -> str:
    """A markdown row tail: Swerve and onnxruntime medians and the median (range) of the per-round
    ratios Swerve/onnxruntime; "not loaded: why" when swerve refuses the model."""
    session = ort_session(path, threads)
    for _ in range(warmup):
        session.run(None, feeds)
    mine, theirs, ratios = [], [], []
    try:
        for _ in range(rounds):
            m = time_swerve(swerve, path, threads, iterations, warmup)
            t = time_ort(session, feeds, iterations)
            mine.append(m)
            theirs.append(t)
            ratios.append(m / t)
    except subprocess.CalledProcessError as error:
        reason = (error.stderr or error.stdout or "").strip().splitlines()
        return f"not loaded: {reason[-1][:120] if reason else error} | | "
    return (f"{statistics.median(mine):.3f} | {statistics.median(theirs):.3f} | "
            f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})")
