"""Hot swap under load: versions appear, a broken one appears, one is removed, a label moves,
while clients send continuously. Zero failed requests; every answer comes from a version that was
AVAILABLE at the time; the broken versions never serve. Also: a slowly copied version is not
loaded early, and 50 load/unload cycles do not grow memory."""

from __future__ import annotations

import base64
import threading
import time

import pytest
import requests

from store_e2e import (management_url, publish, remove_version, rss_kib, stamped_model, start, unsupported_model,
                       version_state, wait_until, write_config)
from swerve_e2e import finish_server

POLL = "0.1"
X = [[0.0, 0.0, 0.0, 0.0]]


class Client(threading.Thread):
    """Sends one kind of request in a loop; records (start, end, status, version, detail)."""

    def __init__(self, url: str, body: dict, version_of) -> None:
        super().__init__(daemon=True)
        self.url, self.body, self.version_of = url, body, version_of
        self.stop = threading.Event()
        self.records: list[tuple[float, float, int, int | None, str]] = []

    def run(self) -> None:
        session = requests.Session()
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                resp = session.post(self.url, json=self.body, timeout=10)
                status, text = resp.status_code, resp.text
                version = self.version_of(resp.json()) if status == 200 else None
            except Exception as error:  # noqa: BLE001 - any failure counts as a failed request
                status, text, version = -1, repr(error), None
            self.records.append((t0, time.monotonic(), status, version, text[:300]))


def v2_version(body: dict) -> int:
    served = int(body["model_version"])
    computed = int(round(body["outputs"][0]["data"][0]))
    assert served == computed, f"answer says version {served} but was computed by version {computed}"
    return served


def v1_version(body: dict) -> int:
    return int(round(body["predictions"][0][0]))


def versions_between(records, start: float, end: float) -> set:
    """Versions of the requests that started after `start` and ended before `end`."""
    return {r[3] for r in records if r[0] >= start and r[1] <= end}


def test_swap_under_load(tmp_path):
    store = tmp_path / "models"
    publish(store, "swap", 1, stamped_model(1))
    write_config(store, "swap", '{"version_policy": {"latest": 2}, "version_labels": {"stable": 1}}')
    server = start(store, ["--poll-interval", POLL])
    try:
        assert server.ready_at_start
        default = Client(server.base_url + "/v2/models/swap/infer",
                         {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": X[0]}]}, v2_version)
        labelled = Client(server.base_url + "/v1/models/swap/labels/stable:predict", {"instances": X}, v1_version)
        clients = [default, labelled]
        for c in clients:
            c.start()
        marks: dict[str, float] = {}

        def state(v):
            return version_state(server, "swap", v)

        time.sleep(0.3)
        marks["v2_published"] = time.monotonic()
        publish(store, "swap", 2, stamped_model(2))
        wait_until("version 2 AVAILABLE", lambda: state(2) == "AVAILABLE", server)
        marks["v2_ready"] = time.monotonic()
        time.sleep(0.3)

        marks["label_moving"] = time.monotonic()
        write_config(store, "swap", '{"version_policy": {"latest": 2}, "version_labels": {"stable": 2}}')
        wait_until("label stable -> 2", lambda: requests.get(
            server.base_url + "/v1/models/swap/labels/stable").json()["model_version_status"][0]["version"] == "2", server)
        marks["label_moved"] = time.monotonic()
        time.sleep(0.3)

        marks["v3_published"] = time.monotonic()
        publish(store, "swap", 3, stamped_model(3))
        wait_until("version 3 AVAILABLE, version 1 unloaded",
                   lambda: state(3) == "AVAILABLE" and state(1) in ("END", None), server)
        marks["v3_ready"] = time.monotonic()
        time.sleep(0.3)

        truncated = stamped_model(4, padding_floats=4096)
        publish(store, "swap", 4, truncated[: len(truncated) // 2])
        wait_until("truncated version 4 FAILED", lambda: state(4) == "FAILED", server)
        publish(store, "swap", 5, unsupported_model())
        wait_until("unsupported version 5 FAILED", lambda: state(5) == "FAILED", server)
        assert state(3) == "AVAILABLE" and state(2) == "AVAILABLE", "a failed load must leave what served serving"
        time.sleep(0.3)
        remove_version(store, "swap", 4)
        remove_version(store, "swap", 5)
        wait_until("broken versions forgotten", lambda: state(4) is None and state(5) is None, server)

        marks["v3_removing"] = time.monotonic()
        remove_version(store, "swap", 3)
        wait_until("version 3 gone, version 1 back", lambda: state(3) is None and state(1) == "AVAILABLE", server)
        marks["v3_removed"] = time.monotonic()
        time.sleep(0.3)
        marks["end"] = time.monotonic()
        for c in clients:
            c.stop.set()
        for c in clients:
            c.join(timeout=15)

        for c in clients:
            failed = [r for r in c.records if r[2] != 200]
            assert not failed, f"{len(failed)} of {len(c.records)} requests to {c.url} failed, first: {failed[:3]}"
            assert {r[3] for r in c.records} <= {1, 2, 3}, "a broken version answered"
        # Every answer came from a version that was AVAILABLE (and the default) at that time.
        d, l = default.records, labelled.records
        assert versions_between(d, 0, marks["v2_published"]) == {1}
        assert versions_between(d, marks["v2_ready"], marks["v3_published"]) == {2}
        assert versions_between(d, marks["v3_ready"], marks["v3_removing"]) == {3}
        assert versions_between(d, marks["v3_removed"], marks["end"]) == {2}
        assert versions_between(l, 0, marks["label_moving"]) == {1}
        assert versions_between(l, marks["label_moved"], marks["end"]) == {2}
        assert "model_failed" in server.process.output and "version=4" in server.process.output
    finally:
        finish_server(server)


def test_slow_copy_is_not_loaded_before_it_is_complete(tmp_path):
    store = tmp_path / "models"
    publish(store, "slow", 1, stamped_model(1))
    server = start(store, ["--poll-interval", "0.2"])
    try:
        data = stamped_model(2, padding_floats=1 << 16)
        (store / "slow" / "2").mkdir()
        seen: set = set()
        pieces = 30
        step = len(data) // pieces + 1
        with open(store / "slow" / "2" / "model.onnx", "wb") as f:
            for i in range(0, len(data), step):  # about 1.5 s, every poll sees the file grow
                f.write(data[i:i + step])
                f.flush()
                seen.add(version_state(server, "slow", 2))
                time.sleep(0.05)
        assert seen <= {None, "START"}, f"version 2 was loaded while being copied: states {seen}"
        wait_until("version 2 AVAILABLE", lambda: version_state(server, "slow", 2) == "AVAILABLE", server)
        assert "model_failed" not in server.process.output, "a partial file was parsed"
        resp = server.post("/v2/models/slow/infer",
                           json={"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": X[0]}]})
        assert resp.status_code == 200 and resp.json()["model_version"] == "2"
    finally:
        finish_server(server)


def test_load_unload_cycles_do_not_grow_memory(tmp_path):
    store = tmp_path / "models"
    publish(store, "big", 1, stamped_model(1, padding_floats=4 << 20))  # 16 MiB + 4 MiB of weights
    (store / "keep").mkdir()
    publish(store, "keep", 1, stamped_model(1))
    server = start(store, ["--poll-interval", "0"])
    try:
        url = management_url(server)
        pid = server.process.proc.pid
        body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": X[0]}]}
        samples = []
        for cycle in range(50):
            assert requests.post(f"{url}/v2/repository/models/big/load", timeout=30).status_code == 200
            assert server.post("/v2/models/big/infer", json=body).status_code == 200
            assert requests.post(f"{url}/v2/repository/models/big/unload", timeout=30).status_code == 200
            wait_until("version 1 END", lambda: version_state(server, "big", 1) == "END", server)
            samples.append(rss_kib(pid))
        first, last = samples[0], samples[-1]
        assert last <= first * 1.10, f"RSS grew from {first} KiB after cycle 1 to {last} KiB after 50: {samples}"
    finally:
        finish_server(server)
