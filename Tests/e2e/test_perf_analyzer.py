"""Triton's perf_analyzer runs against Swerve without errors, with JSON and with binary tensors.

perf_analyzer comes from the tritonclient 2.51.0 wheel (the newest whose bundled binary runs on
Debian 12); `make test` installs it into `.venv-perf` and sets PERF_ANALYZER. Throughput numbers
are not checked here (benchmarks live in bench/); only that the tool completes cleanly.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from swerve_e2e import finish_server, make_store, start_server


@pytest.fixture(scope="module")
def perf_analyzer() -> str:
    path = os.environ.get("PERF_ANALYZER")
    if not path:
        if os.environ.get("CI"):
            pytest.fail("PERF_ANALYZER is not set: run the tests through `make test`, which installs it")
        pytest.skip("PERF_ANALYZER is not set (run through `make test`)")
    return path


@pytest.fixture(scope="module")
def batching_server(tmp_path_factory):
    srv = start_server(make_store(tmp_path_factory.mktemp("perf") / "models"), ["--max-batch-size", "8"])
    yield srv
    finish_server(srv)


@pytest.mark.parametrize("tensor_format", ["json", "binary"])
def test_perf_analyzer_runs_cleanly(perf_analyzer, batching_server, tensor_format):
    cmd = [perf_analyzer, "-m", "mlp", "-u", batching_server.host_port, "-i", "http", "-b", "2",
           "--concurrency-range", "1:4:3", "--input-tensor-format", tensor_format,
           "--output-tensor-format", tensor_format, "--measurement-mode", "count_windows",
           "--measurement-request-count", "100", "-s", "1000"]
    # The bundled binary needs the CUDA runtime library from the same virtualenv (not a GPU).
    venv = Path(perf_analyzer).resolve().parent.parent
    libs = [str(p) for p in venv.glob("lib/python3*/site-packages/nvidia/cuda_runtime/lib")]
    env = dict(os.environ, LD_LIBRARY_PATH=":".join(libs + [os.environ.get("LD_LIBRARY_PATH", "")]))
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    output = run.stdout + run.stderr
    assert run.returncode == 0, f"perf_analyzer failed ({run.returncode}):\n{output[-3000:]}"
    throughputs = re.findall(r"Concurrency: (\d+), throughput: ([\d.]+) infer/sec", output)
    assert [c for c, _ in throughputs] == ["1", "4"], output[-3000:]
    assert all(float(t) > 0 for _, t in throughputs)
    assert "error" not in output.lower(), output[-3000:]
