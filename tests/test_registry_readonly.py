"""The registry opened read-only (as ``flowpolicy check`` and ``plan`` open it): real SQLite
files (and, where the test says so, PostgreSQL databases) written by real writers, never
created, migrated or modified by a reader; every write through a read-only handle raises."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from test_registry import ME, MODEL, v1_registry

from flowpolicy.errors import RegistryError
from flowpolicy.registry import ReadOnlyRegistry, open_registry
from flowpolicy.registry.sqlite import SCHEMA_VERSION, SQLiteRegistry

WRITES = {
    "register": lambda r: r.register(MODEL, kind="artifact", created_by=ME),
    "set_alias": lambda r: r.set_alias(MODEL, "champion", "v1", by=ME),
    "record_consumption": lambda r: r.record_consumption(MODEL, 1, ME),
    "add_evidence": lambda r: r.add_evidence(MODEL, "v1", kind="gate", rule="quality",
                                             passed=True, policy_hash="h", details={},
                                             created_by=ME),
    "publish_event": lambda r: r.publish_event("fraud", "dev", "x", None, ME),
}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def user_version(path: Path) -> int:
    conn = sqlite3.connect(path.as_uri() + "?mode=ro", uri=True)
    try:
        return conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()


def test_older_schema_is_read_as_it_is_and_never_migrated(tmp_path):
    path = v1_registry(tmp_path / "old.db")
    before = digest(path)
    reg = SQLiteRegistry(path, read_only=True)
    assert reg.schema_version == 1
    assert reg.resolve(MODEL, "@production").annotations["f1_score"] == "0.9"
    assert [r.id for r in reg.instances(MODEL)] == ["v2", "v1"]
    assert reg.aliases(MODEL) == {"production": 2}
    assert reg.evidence(MODEL, "v2") == []  # schema 1 had no evidence table
    with pytest.raises(RegistryError, match="v9 of .* does not exist"):
        reg.evidence(MODEL, "v9")
    reg.close()
    assert digest(path) == before and user_version(path) == 1
    # side files SQLite needs to read a WAL database: created empty, never written
    assert {p.name: p.stat().st_size for p in tmp_path.iterdir() if p.name.endswith("-wal")} \
        in ({}, {"old.db-wal": 0})

    writer = SQLiteRegistry(path)  # a write-mode handle migrates with its first write
    assert writer.schema_version == 1
    writer.register(MODEL, kind="artifact", created_by=ME)
    assert writer.schema_version == SCHEMA_VERSION
    writer.close()


@pytest.mark.parametrize("write", sorted(WRITES))
def test_every_write_through_a_read_only_handle_raises(backend, write):
    writer = backend.open()
    writer.register(MODEL, kind="artifact", created_by=ME)
    content = writer.digest()
    writer.close()
    before = digest(backend.path) if backend.path else None
    reader = backend.open(read_only=True)
    with pytest.raises(RegistryError, match="opened read-only"):
        WRITES[write](reader)
    assert reader.resolve(MODEL).id == "v1"
    assert reader.digest() == content
    reader.close()
    if backend.path:
        assert digest(backend.path) == before

    wrapped = ReadOnlyRegistry(backend.open())  # what a backend without ro mode gets
    with pytest.raises(RegistryError, match=f"opened read-only: {write} is refused"):
        WRITES[write](wrapped)
    assert wrapped.resolve(MODEL).id == "v1"


def test_reader_sees_commits_of_a_writer_that_is_still_open(backend):
    url = backend.url
    writer = open_registry(url)
    writer.register(MODEL, kind="artifact", created_by=ME)
    reader = open_registry(url, read_only=True)
    assert reader is not writer and reader is open_registry(url, read_only=True)
    assert reader.resolve(MODEL).id == "v1"
    writer.register(MODEL, kind="artifact", created_by=ME)
    assert reader.resolve(MODEL).id == "v2"
    with pytest.raises(RegistryError, match="opened read-only"):
        reader.set_alias(MODEL, "champion", "v2", by=ME)


@pytest.mark.parametrize(("setup", "message"), [
    ("missing", "no registry at .*registry.db; nothing to read .*never creates a registry"),
    ("empty", "is an empty file, not yet a flowpolicy registry"),
    ("empty database", "is an empty SQLite database, not yet a flowpolicy registry"),
    ("newer", "newer than this flowpolicy understands"),
])
def test_unreadable_files_are_refused_and_left_alone(tmp_path, setup, message):
    path = tmp_path / "sub" / "registry.db"
    if setup != "missing":
        path.parent.mkdir()
        path.write_bytes(b"")
    if setup == "empty database":  # what sqlite3.connect() and any first statement leave
        sqlite3.connect(path).execute("PRAGMA journal_mode = WAL").connection.close()
    if setup == "newer":
        writer = SQLiteRegistry(path)
        writer.register(MODEL, kind="artifact", created_by=ME)
        writer.close()
        conn = sqlite3.connect(path)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        conn.commit()
        conn.close()
    before = path.read_bytes() if path.exists() else None
    with pytest.raises(RegistryError, match=message) as raised:
        SQLiteRegistry(path, read_only=True)
    assert raised.value.exit_code == 2
    assert (path.read_bytes() if path.exists() else None) == before
    assert path.parent.exists() is (setup != "missing")
    # at most the side files SQLite needs to read a WAL database (the -wal one empty)
    assert {p.name for p in path.parent.glob("*")} <= {
        "registry.db", "registry.db-wal", "registry.db-shm"}
    assert not path.with_name("registry.db-wal").exists() or \
        path.with_name("registry.db-wal").stat().st_size == 0
