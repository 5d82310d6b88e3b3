"""A registry file whose data pages are damaged (real SQLite files, the pages overwritten as a
failing disk or a bad copy would): every backend call, ``flowpolicy assets``, ``events``,
``check`` and ``plan`` (the CLI as users call it) and ``Asset.peek_model_asset`` give one
clear "registry … is damaged" error, exit 2 at the CLI, and the file keeps its bytes."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from test_check_support import PROJECT
from test_registry import ME, MODEL

from flowpolicy import Asset
from flowpolicy.registry import RegistryDamaged
from flowpolicy.registry.sqlite import SQLiteRegistry


def damage_data_pages(path: Path) -> None:
    """Overwrite the root page of every table and index with garbage. Page 1 (the header
    and the schema) is left whole, so the file still opens as a flowpolicy registry and the
    damage is met by the queries themselves."""
    assert not path.with_name(path.name + "-wal").exists(), "commits still in the WAL"
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        roots = [r for (r,) in conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE rootpage > 1")]
    finally:
        conn.close()
    garbage = bytes((i * 37 + 11) % 256 for i in range(page_size))
    with path.open("r+b") as handle:
        for page in roots:
            handle.seek((page - 1) * page_size)
            handle.write(garbage)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def damaged(tmp_path) -> Path:
    path = tmp_path / "registry.db"
    reg = SQLiteRegistry(path)
    for score in (0.8, 0.9):
        reg.register(MODEL, kind="artifact", created_by=ME, annotations={"f1_score": score})
    reg.set_alias(MODEL, "champion", "v2", by=ME)
    reg.add_evidence(MODEL, "v2", kind="gate", rule="quality", passed=True, policy_hash="h",
                     details={}, created_by=ME)
    reg.record_consumption(MODEL, 2, ME)
    reg.publish_event("fraud", "dev", "model_promoted", {"to": "v2"}, ME)
    reg.close()
    damage_data_pages(path)
    return path


READS = {
    "resolve latest": lambda r: r.resolve(MODEL),
    "resolve vN": lambda r: r.resolve(MODEL, "v1"),
    "resolve @alias": lambda r: r.resolve(MODEL, "@champion"),
    "instances": lambda r: r.instances(MODEL),
    "assets": lambda r: r.assets(),
    "get_alias": lambda r: r.get_alias(MODEL, "champion"),
    "aliases": lambda r: r.aliases(MODEL),
    "alias_history": lambda r: r.alias_history(MODEL),
    "evidence": lambda r: r.evidence(MODEL, "v2"),
    "consumers": lambda r: r.consumers(MODEL),
    "events": lambda r: r.events(),
}
WRITES = {
    "register": lambda r: r.register(MODEL, kind="artifact", created_by=ME),
    "register_once": lambda r: r.register_once(MODEL, {"k": "1"}, kind="artifact",
                                               created_by=ME, annotations={"k": 1}),
    "set_alias": lambda r: r.set_alias(MODEL, "champion", "v1", by=ME),
    "record_consumption": lambda r: r.record_consumption(MODEL, 1, ME),
    "add_evidence": lambda r: r.add_evidence(MODEL, "v1", kind="gate", rule="quality",
                                             passed=True, policy_hash=None, details=None,
                                             created_by=ME),
    "publish_event": lambda r: r.publish_event("fraud", "dev", "x", None, ME),
}


@pytest.mark.parametrize(("call", "read_only"), [
    *((name, mode) for name in sorted(READS) for mode in (False, True)),
    *((name, False) for name in sorted(WRITES)),
])
def test_every_call_on_a_damaged_file_is_one_clear_error(damaged, call, read_only):
    before = digest(damaged)
    reg = SQLiteRegistry(damaged, read_only=read_only)  # page 1 is whole: it opens
    with pytest.raises(RegistryDamaged) as raised:
        {**READS, **WRITES}[call](reg)
    assert str(raised.value).startswith(
        f"registry {damaged} is damaged (database disk image is malformed); it was left "
        "untouched — restore it from a backup")
    assert raised.value.exit_code == 2
    reg.close()
    assert digest(damaged) == before


@pytest.mark.flows
def test_damaged_registry_through_the_cli_and_the_asset_client(healthy, tmp_path):
    project = healthy.copy(tmp_path)
    damage_data_pages(project.registry_file)
    before = digest(project.registry_file)
    for argv in (["assets", "list"], ["events"], ["check"], ["plan"]):
        done = project.cli(*argv)
        assert done.returncode == 2, (argv, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, done.stderr
        assert f"registry {project.registry_file} is damaged" in done.stderr, done.stderr
    for read_only in (True, False):
        client = Asset(project=PROJECT, branch="prod", read_only=read_only,
                       registry=project.registry)
        with pytest.raises(RegistryDamaged, match="is damaged"):
            client.peek_model_asset("fraud_model", "@production")
        client.registry.close()
    assert digest(project.registry_file) == before
