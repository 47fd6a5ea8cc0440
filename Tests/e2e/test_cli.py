"""Command-line behaviour of `swerve serve` around devices."""

from __future__ import annotations

import ctypes
import subprocess

import numpy as np
import pytest

from swerve_e2e import assert_ok, assert_v2_output, reference, swerve_binary, v2_input


def cuda_driver_present() -> bool:
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


@pytest.mark.skipif(cuda_driver_present(), reason="a CUDA driver is present on this machine")
def test_device_cuda_without_gpu_fails_fast(tmp_path):
    store = tmp_path / "models"
    store.mkdir()
    args = [str(swerve_binary()), "serve", "--model-store", str(store), "--device", "cuda",
            "--host", "127.0.0.1", "--port", "0",
            "--management-host", "127.0.0.1", "--management-port", "0", "--poll-interval", "0"]
    try:
        done = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              errors="replace", timeout=20)
    except subprocess.TimeoutExpired as expired:
        pytest.fail(f"`swerve serve --device cuda` kept running without a GPU (20 s); "
                    f"output: {expired.stdout!r} {expired.stderr!r}")
    output = done.stdout + done.stderr
    assert done.returncode != 0, f"exit status 0 with --device cuda and no GPU; output:\n{output}"
    assert "CUDA not available" in output, output


def test_device_auto_serves_on_cpu(server_factory):
    srv = server_factory(["--device", "auto"])
    x = np.random.default_rng(600).standard_normal((3, 8)).astype(np.float32)
    body = assert_ok(srv.post("/v2/models/mlp/infer", json={"inputs": [v2_input("input", x)]}))
    assert_v2_output(body["outputs"][0], "output", "FP32", reference("mlp", 2, {"input": x})["output"])
