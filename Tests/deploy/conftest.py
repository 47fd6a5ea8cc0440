"""Fixtures for the deployment tests (helpers in deploy_support.py)."""

from __future__ import annotations

import shutil

import pytest

from deploy_support import BUNDLED_STORE, KUSTOMIZATIONS, render


@pytest.fixture
def store(tmp_path):
    """A private copy of the bundled model store (models/digits), as the image ships it."""
    destination = tmp_path / "models"
    shutil.copytree(BUNDLED_STORE, destination)
    return destination


@pytest.fixture(scope="session")
def rendered():
    """kustomization dir (relative to deploy/kubernetes) -> its rendered objects."""
    cache: dict[str, list[dict]] = {}

    def get(name: str) -> list[dict]:
        if name not in cache:
            cache[name] = render(name)
        return cache[name]

    return get


def pytest_generate_tests(metafunc):
    if "kustomization" in metafunc.fixturenames:
        metafunc.parametrize("kustomization", KUSTOMIZATIONS)
