#!/usr/bin/env python3
"""Regenerate docs/status-page.png: serve the test store, drive traffic, screenshot the status page.

Starts `swerve serve` (binary from --bin) over a copy of Tests/e2e/models plus models/digits,
sends varying traffic for --seconds (digits with a rising rate, mlp versions 1 and 2 with batches
of 1-16 rows, a few bad requests), then takes a headless Chromium screenshot of `GET /` while
the traffic still runs. Needs Debian's `chromium` and the test venv (requests, numpy).

    .venv/bin/python tools/status_screenshot.py --bin .build/release/swerve --out docs/status-page.png
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def chromium_command(url: str, *extra: str) -> list[str]:
    """Headless Chromium flags that work as root in a container, without a GPU or D-Bus."""
    return ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--disable-dev-shm-usage", "--no-first-run", *extra, url]


def start(binary: str, store: Path) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        [binary, "serve", "--model-store", str(store), "--host", "127.0.0.1", "--port", "0",
         "--management-port", "0", "--poll-interval", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    for line in proc.stderr:
        match = re.search(r"http_port=(\d+)", line)
        if match:
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return proc, int(match.group(1))
        if time.monotonic() > deadline:
            break
    proc.kill()
    sys.exit("swerve did not print its port; run it by hand to see why")


def drive(base: str, stop: threading.Event, started: float, seconds: float) -> None:
    """One client thread: picks a model by weight, paces itself to a time-varying rate."""
    session = requests.Session()
    digit = json.loads((ROOT / "docs/examples/digit.json").read_text())
    rng = random.Random()
    while not stop.is_set():
        t = (time.monotonic() - started) / seconds
        choice = rng.random()
        if choice < 0.55:
            session.post(base + "/v2/models/digits/infer", json=digit)
            time.sleep(max(0.0, 0.02 * (1.2 - t) + 0.004 * math.sin(t * 12)))
            continue
        version = 1 if choice < 0.8 else 2
        rows = rng.choice([1, 1, 2, 4, 8, 16]) if version == 1 else rng.choice([1, 2, 4])
        body = {"inputs": [{"name": "input", "shape": [rows, 8], "datatype": "FP32",
                            "data": [rng.random() for _ in range(rows * 8)]}]}
        if rng.random() < 0.03:
            body["inputs"][0]["shape"] = [rows, 7]  # a bad request now and then
        session.post(f"{base}/v2/models/mlp/versions/{version}/infer", json=body)
        time.sleep(0.01 + 0.01 * rng.random())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", default=str(ROOT / ".build/release/swerve"))
    parser.add_argument("--out", default=str(ROOT / "docs/status-page.png"))
    parser.add_argument("--seconds", type=float, default=40)
    parser.add_argument("--size", default="1280,1040")
    args = parser.parse_args()
    if not shutil.which("chromium"):
        sys.exit("chromium is not installed; apt-get install -y chromium")
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "models"
        shutil.copytree(ROOT / "Tests/e2e/models", store)
        shutil.copytree(ROOT / "models/digits", store / "digits")
        proc, port = start(args.bin, store)
        base = f"http://127.0.0.1:{port}"
        stop = threading.Event()
        started = time.monotonic()
        clients = [threading.Thread(target=drive, args=(base, stop, started, args.seconds), daemon=True)
                   for _ in range(4)]
        try:
            for c in clients:
                c.start()
            time.sleep(args.seconds)
            subprocess.run(chromium_command(base + "/", f"--screenshot={args.out}", f"--window-size={args.size}",
                                            "--virtual-time-budget=3000"),
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        finally:
            stop.set()
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
