"""Unsetting an alias (recorded in its history with to = None), the schema migration that
lets the history hold it, and the change probe a model server follows."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest
from test_registry import ME, MODEL, register_n, v1_registry

from flowpolicy import Asset
from flowpolicy.errors import RegistryError
from flowpolicy.registry import AliasConflict, open_registry
from flowpolicy.registry.sqlite import SCHEMA_VERSION, SQLiteRegistry


@pytest.fixture
def reg(tmp_path):
    registry = SQLiteRegistry(tmp_path / "registry.db")
    yield registry
    registry.close()


def test_unset_removes_the_alias_and_records_the_move(reg):
    register_n(reg, MODEL, 2)
    reg.set_alias(MODEL, "production", "v2", by=ME, reason="release")
    move = reg.unset_alias(MODEL, "production", by=ME, reason="bad model in prod")
    assert (move.from_version, move.to_version, move.reason) == (2, None, "bad model in prod")
    assert move.to_dict()["to"] is None
    assert reg.get_alias(MODEL, "production") is None
    assert "production" not in reg.aliases(MODEL)
    with pytest.raises(RegistryError, match="alias @production is not set"):
        reg.resolve(MODEL, "@production")
    history = [(m.from_version, m.to_version) for m in reg.alias_history(MODEL, "production")]
    assert history == [(None, 2), (2, None)]
    reg.set_alias(MODEL, "production", "v1", by=ME)  # set again after an unset: from None
    assert reg.alias_history(MODEL, "production")[-1].from_version is None


def test_unset_refuses_what_is_not_set_and_honours_expected(reg):
    register_n(reg, MODEL, 2)
    with pytest.raises(RegistryError, match="not set on model asset 'fraud_model'.*nothing to "
                                            "unset"):
        reg.unset_alias(MODEL, "production", by=ME)
    reg.set_alias(MODEL, "production", "v2", by=ME)
    with pytest.raises(AliasConflict, match="is v2, expected v1"):
        reg.unset_alias(MODEL, "production", by=ME, expected="v1")
    assert reg.get_alias(MODEL, "production") == 2
    reg.unset_alias(MODEL, "production", by=ME, expected="v2")
    assert len(reg.alias_history(MODEL)) == 2  # the refusals wrote nothing


def test_unset_is_refused_read_only_and_through_a_read_only_asset(tmp_path):
    path = tmp_path / "registry.db"
    writer = SQLiteRegistry(path)
    register_n(writer, MODEL, 1)
    writer.set_alias(MODEL, "production", "v1", by=ME)
    with pytest.raises(RegistryError, match="read-only"):
        SQLiteRegistry(path, read_only=True).unset_alias(MODEL, "production", by=ME)
    asset = Asset(project="fraud", branch="dev", read_only=True, registry=writer)
    with pytest.raises(RegistryError, match="read_only"):
        asset.unset_alias("fraud_model", "production")
    assert Asset(project="fraud", branch="dev", registry=writer).unset_alias(
        "fraud_model", "production", reason="why")["to"] is None


def test_history_stays_append_only_after_the_migration(reg):
    register_n(reg, MODEL, 1)
    reg.set_alias(MODEL, "production", "v1", by=ME)
    reg.unset_alias(MODEL, "production", by=ME)
    conn = sqlite3.connect(reg.path)
    for statement in ("UPDATE alias_history SET reason = 'x'", "DELETE FROM alias_history"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(statement)
    conn.close()


def test_an_older_file_keeps_its_alias_history_through_the_migration(tmp_path):
    path = v1_registry(tmp_path / "old.db")
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO alias_history VALUES (7, 1, 'production', 1, 2, 'user', 'ada', "
                 "'2026-01-02T00:00:00.000000Z', 'better f1')")
    conn.commit()
    conn.close()
    old = SQLiteRegistry(path, read_only=True)  # read as it is, before any migration
    assert [m.to_version for m in old.alias_history(MODEL)] == [2]
    reg = SQLiteRegistry(path)
    reg.unset_alias(MODEL, "production", by=ME)  # the first write migrates
    assert reg.schema_version == SCHEMA_VERSION
    kept, unset = reg.alias_history(MODEL)
    assert (kept.from_version, kept.to_version, kept.by.entity_id, kept.reason) == (
        1, 2, "ada", "better f1")
    assert (unset.from_version, unset.to_version) == (2, None)
    assert reg.integrity_problems() == []


def test_change_probe_moves_on_every_commit_from_any_connection(tmp_path):
    path = tmp_path / "registry.db"
    reg = open_registry(f"sqlite:///{path}")
    register_n(reg, MODEL, 1)
    probe = open_registry(f"sqlite:///{path}", read_only=True).change_probe()
    try:
        first = probe()
        assert probe() == first  # nothing committed: no change
        reg.set_alias(MODEL, "production", "v1", by=ME)  # this process's writer
        second = probe()
        assert second != first
        subprocess.run([sys.executable, "-c", (
            "from flowpolicy.registry import open_registry, EntityRef, Scope\n"
            f"r = open_registry('sqlite:///{path}')\n"
            "r.publish_event('fraud', 'dev', 'other_process', None, EntityRef('user', 'x'))\n"
        )], check=True, timeout=60)
        assert probe() != second
    finally:
        probe.close()
