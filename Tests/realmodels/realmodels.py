"""Shared helpers of the real-model tests: where the exports are and their manifest."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
# The end-to-end helpers (server start/stop, V2 encoding) live in Tests/e2e/swerve_e2e.py.
sys.path.insert(0, str(REPO_ROOT / "Tests" / "e2e"))


def store_path() -> Path:
    """$SWERVE_REALMODELS, or `.realmodels/` under the repository root."""
    configured = os.environ.get("SWERVE_REALMODELS")
    return Path(configured).resolve() if configured else REPO_ROOT / ".realmodels"


def load_manifest() -> dict:
    """The exports' manifest; {} when the exports have not been made."""
    path = store_path() / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else {}
