"""Where the zoo's exports are (tools/export_zoo.py) and their manifest."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
# The end-to-end helpers (server start/stop, V2 types) live in Tests/e2e/swerve_e2e.py; the inputs
# each export is checked with come from the exporter itself (tools/export_zoo.py's `feeds_for`).
sys.path.insert(0, str(REPO_ROOT / "Tests" / "e2e"))
sys.path.insert(0, str(REPO_ROOT / "tools"))

from export_zoo import feeds_for  # noqa: E402, F401 - re-exported for the tests


def zoo_path() -> Path:
    """$SWERVE_ZOO, or `.zoo/` under the repository root."""
    configured = os.environ.get("SWERVE_ZOO")
    return Path(configured).resolve() if configured else REPO_ROOT / ".zoo"


def zoo_manifest() -> dict:
    """The exports' manifest; {} when none have been made."""
    path = zoo_path() / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else {}
