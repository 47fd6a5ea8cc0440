"""Command-line behaviour of `swerve serve` around devices (docs/gpu.md).

Without a GPU: `--device cuda` fails with "CUDA not available: <what failed>", `--device auto`
serves on the CPU and logs why. The probe's real dlopen/dlsym path is exercised with a fake
`libcuda.so.1`/`libnvidia-ml.so.1` (data/fake_cuda.c, compiled here) found through
SWERVE_CUDA_LIBRARY_PATH, which the search order puts first.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from swerve_e2e import assert_ok, assert_v2_output, reference, swerve_binary, v2_input

FAKE_SOURCE = Path(__file__).parent / "data" / "fake_cuda.c"


def cuda_driver_present() -> bool:
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


def run_swerve(args: list[str], env: dict[str, str] | None = None, timeout: float = 20) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([str(swerve_binary())] + args, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, errors="replace", timeout=timeout, env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired as expired:
        pytest.fail(f"`swerve {' '.join(args)}` kept running ({timeout} s); output: {expired.stdout!r} {expired.stderr!r}")


def serve_args(store: Path, device: str) -> list[str]:
    return ["serve", "--model-store", str(store), "--device", device, "--host", "127.0.0.1", "--port", "0",
            "--management-host", "127.0.0.1", "--management-port", "0", "--poll-interval", "0"]


@pytest.fixture(scope="module")
def fake_drivers(tmp_path_factory) -> dict[str, Path]:
    """Directories with libcuda.so.1 and libnvidia-ml.so.1 built from data/fake_cuda.c: `gpu` (one
    "Fake H200", with libcublas.so.12 and libnvrtc.so.12), `noblas` (the same without cuBLAS and
    NVRTC) and `nodevice` (cuInit returns 100)."""
    compiler = shutil.which("cc") or shutil.which("clang") or shutil.which("gcc")
    if compiler is None:
        pytest.fail("no C compiler (cc, clang or gcc) to build the fake CUDA driver; the Swift toolchain's clang will do")
    out: dict[str, Path] = {}
    for name, flags in (("gpu", []), ("noblas", []), ("nodevice", ["-DFAKE_NO_DEVICE"])):
        folder = tmp_path_factory.mktemp(f"fake-cuda-{name}")
        lib = folder / "libcuda.so.1"
        subprocess.run([compiler, "-shared", "-fPIC", "-O1", *flags, "-o", str(lib), str(FAKE_SOURCE)], check=True)
        (folder / "libnvidia-ml.so.1").symlink_to(lib.name)
        if name == "gpu":
            (folder / "libcublas.so.12").symlink_to(lib.name)
            (folder / "libnvrtc.so.12").symlink_to(lib.name)
        out[name] = folder
    return out


@pytest.mark.skipif(cuda_driver_present(), reason="a CUDA driver is present on this machine")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_device_cuda_without_gpu_fails_fast(tmp_path, device):
    store = tmp_path / "models"
    store.mkdir()
    done = run_swerve(serve_args(store, device), env={"SWERVE_CUDA_LIBRARY_PATH": str(tmp_path / "nothing-here")})
    output = done.stdout + done.stderr
    assert done.returncode != 0, f"exit status 0 with --device {device} and no GPU; output:\n{output}"
    assert "CUDA not available: libcuda.so.1 not found in:" in output, output
    assert str(tmp_path / "nothing-here") in output, "the message lists the SWERVE_CUDA_LIBRARY_PATH directory it found absent"
    assert "run with --device cpu" in output, output


def test_device_cuda_with_a_driver_but_no_device_names_cuinit(tmp_path, fake_drivers):
    store = tmp_path / "models"
    store.mkdir()
    done = run_swerve(serve_args(store, "cuda"), env={"SWERVE_CUDA_LIBRARY_PATH": str(fake_drivers["nodevice"])})
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "CUDA not available: cuInit returned 100 (CUDA_ERROR_NO_DEVICE" in output, output


def test_device_cuda_with_a_gpu_says_the_engine_is_missing(tmp_path, fake_drivers):
    store = tmp_path / "models"
    store.mkdir()
    done = run_swerve(serve_args(store, "cuda:0"), env={"SWERVE_CUDA_LIBRARY_PATH": str(fake_drivers["gpu"])})
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "CUDA not available: CUDA device 0 (Fake H200) found, but" in output, output
    assert "run with --device cpu" in output, output
    assert "the CUDA execution engine is not implemented yet" in output, output
    done = run_swerve(serve_args(store, "cuda"), env={"SWERVE_CUDA_LIBRARY_PATH": str(fake_drivers["noblas"])})
    assert "CUDA not available: CUDA device 0 (Fake H200) found, but libcublas.so.13, libcublas.so.12 or libcublas.so.11 not found in: " \
        in done.stdout + done.stderr, done.stdout + done.stderr
    done = run_swerve(serve_args(store, "cuda:3"), env={"SWERVE_CUDA_LIBRARY_PATH": str(fake_drivers["gpu"])})
    assert "cuda:3 does not exist; the driver sees 1 device (0: Fake H200)" in done.stdout + done.stderr


def test_devices_command_reports_the_probe(fake_drivers):
    done = run_swerve(["devices"], env={"SWERVE_CUDA_LIBRARY_PATH": str(fake_drivers["gpu"])})
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"cuda: driver 12.8 ({fake_drivers['gpu']}/libcuda.so.1)" in done.stdout
    assert "cuda:0: Fake H200, 141.0 GiB" in done.stdout
    assert f"nvrtc: {fake_drivers['gpu']}/libnvrtc.so.12 (version 12.8)" in done.stdout
    assert "nvml gpu 0:" in done.stdout and "40% busy" in done.stdout
    assert "serve --device auto: cpu (CUDA device 0 (Fake H200) found" in done.stdout
    nodevice = run_swerve(["devices"], env={"SWERVE_CUDA_LIBRARY_PATH": str(fake_drivers["nodevice"])})
    assert nodevice.returncode == 1
    assert "CUDA not available: cuInit returned 100" in nodevice.stdout


def test_device_auto_serves_on_cpu(server_factory):
    srv = server_factory(["--device", "auto"])
    x = np.random.default_rng(600).standard_normal((3, 8)).astype(np.float32)
    body = assert_ok(srv.post("/v2/models/mlp/infer", json={"inputs": [v2_input("input", x)]}))
    assert_v2_output(body["outputs"][0], "output", "FP32", reference("mlp", 2, {"input": x})["output"])
    line = next(l for l in srv.process.output.splitlines() if "event=device" in l)
    assert "device=cpu" in line and "requested=auto" in line, line
    assert 'reason="no CUDA: ' in line or "found, but the CUDA execution engine is not implemented yet" in line, line


@pytest.mark.skipif(cuda_driver_present(), reason="a real NVIDIA driver (and NVML) is present on this machine")
def test_no_gpu_metrics_without_nvml(server):
    text = server.get("/metrics").text
    assert "process_resident_memory_bytes" in text
    assert "swerve_gpu_" not in text


def test_auto_with_a_fake_gpu_uses_the_cpu_and_exports_gpu_metrics(tmp_path, fake_drivers, monkeypatch):
    from swerve_e2e import finish_server, make_store, start_server
    monkeypatch.setenv("SWERVE_CUDA_LIBRARY_PATH", str(fake_drivers["gpu"]))
    srv = start_server(make_store(tmp_path / "models"), ["--device", "auto"])
    try:
        line = next(l for l in srv.process.output.splitlines() if "event=device" in l)
        assert "device=cpu" in line, line
        assert "CUDA device 0 (Fake H200) found, but the CUDA execution engine is not implemented yet" in line, line
        text = srv.get("/metrics").text
        assert 'swerve_gpu_memory_used_bytes{gpu="0"} 250' in text, text[-800:]
        assert 'swerve_gpu_memory_total_bytes{gpu="0"} 1000' in text
        assert 'swerve_gpu_utilization_ratio{gpu="0"} 0.4' in text
        x = np.random.default_rng(601).standard_normal((2, 8)).astype(np.float32)
        body = assert_ok(srv.post("/v2/models/mlp/infer", json={"inputs": [v2_input("input", x)]}))
        assert_v2_output(body["outputs"][0], "output", "FP32", reference("mlp", 2, {"input": x})["output"])
    finally:
        finish_server(srv)
