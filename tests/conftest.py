"""Shared test set-up: a Metaflow user (it refuses root) and an isolated Metaflow datastore
and registry per test session, so tests never touch the developer's own ``.metaflow/``.

The registry tests run against both SQL backends through one parametrised fixture,
``backend`` (and ``registry_url``, its URL exported as FLOWPOLICY_REGISTRY): a fresh SQLite
file, or a fresh database on the session's throwaway PostgreSQL server (``pg_server.py``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

REPO_ROOT = Path(__file__).resolve().parent.parent

os.environ.setdefault("METAFLOW_USER", "tester")

# No property test has a deadline: the machines are shared, and a case that waits 2 s for a
# core is not a failure (tests never assert wall-clock times).
settings.register_profile("flowpolicy", deadline=None)
settings.load_profile("flowpolicy")


@pytest.fixture(scope="session")
def metaflow_home(tmp_path_factory) -> Path:
    """A private Metaflow local datastore/metadata root for this session."""
    root = tmp_path_factory.mktemp("metaflow")
    os.environ["METAFLOW_DATASTORE_SYSROOT_LOCAL"] = str(root)
    return root


@pytest.fixture(scope="session")
def postgres_server():
    """The session's PostgreSQL server (skips, or fails under FLOWPOLICY_TEST_POSTGRES=require,
    where none can be started)."""
    from pg_server import skip_or_fail, start_server

    skip_or_fail()
    server = start_server()
    yield server
    server.remove()


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A fresh, empty database on the session's server, dropped after the test."""
    name = postgres_server.create_database()
    yield postgres_server.url(name)
    postgres_server.drop_database(name)


class Backend:
    """One fresh registry location of one backend, and ways to open it and reach under it."""

    def __init__(self, name: str, url: str, path: Path | None = None):
        self.name = name
        self.url = url
        self.path = path
        if name == "sqlite":
            import sqlite3

            self.IntegrityError = sqlite3.IntegrityError
        else:
            import psycopg

            self.IntegrityError = psycopg.IntegrityError

    def __repr__(self) -> str:
        return self.name

    def open(self, **kwargs):
        """A new backend object (not the per-process cached one) on this location."""
        if self.name == "sqlite":
            from flowpolicy.registry.sqlite import SQLiteRegistry

            return SQLiteRegistry(self.path, **kwargs)
        from flowpolicy.registry.postgres import PostgresRegistry

        return PostgresRegistry(self.url, **kwargs)

    def execute_raw(self, sql: str) -> list[tuple]:
        """Run ``sql`` on a connection of its own, past flowpolicy (as a person with a SQL
        client would), and return its rows."""
        if self.name == "sqlite":
            import sqlite3

            conn = sqlite3.connect(self.path, isolation_level=None)
        else:
            import psycopg

            conn = psycopg.connect(self.url, autocommit=True,
                                   options="-c search_path=flowpolicy")
        try:
            cursor = conn.execute(sql)
            return list(cursor.fetchall()) if cursor.description else []
        finally:
            conn.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path) -> Backend:
    """A fresh, empty registry location on each SQL backend in turn."""
    if request.param == "sqlite":
        path = tmp_path / "registry.db"
        return Backend("sqlite", f"sqlite:///{path}", path)
    return Backend("postgresql", request.getfixturevalue("postgres_url"))


@pytest.fixture
def registry_url(backend, monkeypatch) -> str:
    """A fresh registry of each backend in turn for one test, exported as
    FLOWPOLICY_REGISTRY."""
    monkeypatch.setenv("FLOWPOLICY_REGISTRY", backend.url)
    return backend.url


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
