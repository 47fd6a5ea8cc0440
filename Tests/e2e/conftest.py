"""Fixtures for the end-to-end tests (see swerve_e2e.py for what they start and how)."""

from __future__ import annotations

import pytest

from swerve_e2e import Server, finish_server, make_store, start_server


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Server:
    """The shared server over the full test store."""
    store = make_store(tmp_path_factory.mktemp("swerve") / "models")
    srv = start_server(store)
    yield srv
    finish_server(srv)


@pytest.fixture(scope="session")
def server_factory(tmp_path_factory):
    """Starts extra servers with extra flags (each over its own copy of the store)."""
    started: list[Server] = []

    def start(extra_args: list[str]) -> Server:
        store = make_store(tmp_path_factory.mktemp("swerve-extra") / "models")
        srv = start_server(store, extra_args)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        finish_server(srv)


@pytest.fixture(autouse=True)
def _server_survives(request):
    """Fails a test that uses the shared server if the server is gone, before or after it."""
    if "server" in request.fixturenames:
        srv = request.getfixturevalue("server")
        if not srv.process.alive:
            pytest.fail(f"swerve is no longer running (exit status {srv.process.proc.returncode}); "
                        f"it died in an earlier test, see the first failure", pytrace=False)
    yield
    if "server" in request.fixturenames:
        srv = request.getfixturevalue("server")
        if not srv.process.alive:
            pytest.fail(f"swerve died during this test (exit status {srv.process.proc.returncode})."
                        f"\noutput:\n{srv.process.output}", pytrace=False)
