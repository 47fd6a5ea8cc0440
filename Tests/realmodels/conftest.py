"""Fixtures for the real-model tests: the real `swerve` binary serving the exports of
`tools/export_real_models.py` (default store `.realmodels/`, or $SWERVE_REALMODELS)."""

from __future__ import annotations

from pathlib import Path

import pytest

from realmodels import store_path
from swerve_e2e import Server, finish_server, start_server


@pytest.fixture(scope="session")
def store() -> Path:
    path = store_path()
    if not (path / "manifest.json").exists():
        pytest.fail(f"no exports in {path}: run `make realmodels` (or "
                    f"`.venv-realmodels/bin/python tools/export_real_models.py`) first", pytrace=False)
    return path


@pytest.fixture(scope="session")
def real_server(store) -> Server:
    """One server over the whole export store (models that fail to load are FAILED, not fatal)."""
    srv = start_server(store)
    yield srv
    finish_server(srv)


@pytest.fixture(autouse=True)
def _server_survives(request):
    """Fails a test during which the shared server died (a crash on a model must not pass unseen)."""
    yield
    if "real_server" in request.fixturenames:
        srv = request.getfixturevalue("real_server")
        if not srv.process.alive:
            pytest.fail(f"swerve died during this test (exit status {srv.process.proc.returncode})."
                        f"\noutput:\n{srv.process.output[-5000:]}", pytrace=False)
