"""Fixtures of the zoo tests: the real `swerve` binary serving the exports of `tools/export_zoo.py`
(store $SWERVE_ZOO, default `.zoo/`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from zoostore import zoo_path
from swerve_e2e import Server, finish_server, start_server


@pytest.fixture(scope="session")
def zoo_store() -> Path:
    path = zoo_path()
    if not (path / "manifest.json").exists():
        pytest.fail(f"no exports in {path}: run `make zoo` (or `.venv-realmodels/bin/python tools/export_zoo.py`)",
                    pytrace=False)
    return path


@pytest.fixture(scope="session")
def zoo_server(zoo_store) -> Server:
    """One server over the whole zoo; a model that fails to load is FAILED there, not fatal."""
    srv = start_server(zoo_store)
    yield srv
    finish_server(srv)


@pytest.fixture(autouse=True)
def _server_survives(request):
    """Fails a test during which the shared server died (a crash on a model must not pass unseen)."""
    yield
    if "zoo_server" in request.fixturenames:
        srv = request.getfixturevalue("zoo_server")
        if not srv.process.alive:
            pytest.fail(f"swerve died during this test (exit status {srv.process.proc.returncode})."
                        f"\noutput:\n{srv.process.output[-5000:]}", pytrace=False)
