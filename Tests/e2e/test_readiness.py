"""Server readiness (`/v2/health/ready`): not ready while a model has no AVAILABLE version yet and
one is on its way; ready again once it serves; a hot swap does not make it unready."""

from __future__ import annotations

import subprocess
import threading
import time

import requests

from store_e2e import publish, stamped_model, start, version_state, wait_until
from swerve_e2e import finish_server, swerve_binary


def test_a_new_model_is_waited_for_but_a_swap_is_not(tmp_path):
    store = tmp_path / "models"
    publish(store, "first", 1, stamped_model(1))
    server = start(store, ["--poll-interval", "0.5"])
    try:
        assert server.ready_at_start
        statuses: list[int] = []
        stop = threading.Event()

        def probe():
            session = requests.Session()
            while not stop.is_set():
                statuses.append(session.get(server.base_url + "/v2/health/ready", timeout=10).status_code)
                time.sleep(0.01)

        # A hot swap of a model that serves: readiness never drops.
        thread = threading.Thread(target=probe, daemon=True)
        thread.start()
        publish(store, "first", 2, stamped_model(2))
        wait_until("version 2 AVAILABLE", lambda: version_state(server, "first", 2) == "AVAILABLE", server)
        stop.set()
        thread.join()
        assert statuses and set(statuses) == {200}, f"readiness dropped during a hot swap: {set(statuses)}"

        # A new model: not ready while it waits for stable files / loads, ready once it serves.
        publish(store, "second", 1, stamped_model(1))
        wait_until("version START", lambda: version_state(server, "second", 1) == "START", server)
        resp = server.get("/v2/health/ready")
        assert resp.status_code == 503 and "second" in resp.json()["error"], resp.text
        assert server.get("/v2/models/first/ready").status_code == 200, "per-model ready follows the model"
        wait_until("ready again", lambda: server.get("/v2/health/ready").status_code == 200, server)
        assert version_state(server, "second", 1) == "AVAILABLE"
    finally:
        finish_server(server)


def test_ready_when_any_is_accepted_and_bad_values_are_refused(tmp_path):
    store = tmp_path / "models"
    publish(store, "m", 1, stamped_model(1))
    publish(store, "m", 2, stamped_model(2))
    (store / "m" / "config.json").write_text('{"version_policy": {"all": {}}}')
    server = start(store, ["--poll-interval", "0", "--ready-when", "any"])
    try:
        assert server.ready_at_start
        assert server.get("/v2/models/m/ready").status_code == 200
    finally:
        finish_server(server)
    done = subprocess.run([str(swerve_binary()), "serve", "--model-store", str(store), "--ready-when", "some"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode != 0 and "--ready-when" in done.stdout + done.stderr
