"""Shared test set-up: a Metaflow user (it refuses root) and an isolated Metaflow datastore
and registry per test session, so tests never touch the developer's own ``.metaflow/``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

os.environ.setdefault("METAFLOW_USER", "tester")


@pytest.fixture(scope="session")
def metaflow_home(tmp_path_factory) -> Path:
    """A private Metaflow local datastore/metadata root for this session."""
    root = tmp_path_factory.mktemp("metaflow")
    os.environ["METAFLOW_DATASTORE_SYSROOT_LOCAL"] = str(root)
    return root


@pytest.fixture
def registry_url(tmp_path, monkeypatch) -> str:
    """A fresh SQLite registry file for one test, exported as FLOWPOLICY_REGISTRY."""
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    monkeypatch.setenv("FLOWPOLICY_REGISTRY", url)
    return url


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """The one ``flowpolicy demo`` of this test run (:func:`shared_runs.shared_demo`):
    its output and the registry it leaves; read it, never change it."""
    from shared_runs import shared_demo

    return shared_demo(tmp_path_factory)


@pytest.fixture(scope="session")
def healthy(tmp_path_factory):
    """The healthy fraud project and registry the check and plan tests start from (built once
    per test run by :func:`test_check_support.shared_healthy`); copy it before breaking it."""
    from test_check_support import shared_healthy

    return shared_healthy(tmp_path_factory)
