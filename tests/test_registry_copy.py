"""``flowpolicy registry copy`` and ``info``: a whole registry moved from the embedded file to
PostgreSQL and back with numbers, ids, timestamps and history intact, verified; a destination
that holds anything refused unless ``--replace``; a copy that does not verify writes nothing.
One subprocess per command form proves the wiring; the rest runs in-process."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest
from test_registry import ME, MODEL, V1_SCHEMA, v1_registry

from flowpolicy import Asset
from flowpolicy.cli import main
from flowpolicy.errors import RegistryError
from flowpolicy.registry import open_registry
from flowpolicy.registry.postgres import PostgresRegistry
from flowpolicy.registry.sql import copy_registry
from flowpolicy.registry.sqlite import SCHEMA_VERSION, SQLiteRegistry

USER = {"entity_kind": "user", "entity_id": "tester"}


def populate(url: str) -> None:
    dev = Asset(project="fraud", branch="dev", entity_ref=USER, registry=url)
    for score in (0.8, 0.9, 0.95):
        dev.register_model_asset("fraud_model", kind="artifact", annotations={"f1": score},
                                 tags={"team": "risk"}, blobs=["s3://b/m"])
    dev.register_data_asset("fraud_features", kind="parquet", description="features")
    dev.set_alias("fraud_model", "champion", "v1", reason="first")
    dev.set_alias("fraud_model", "champion", "v3", reason="better")
    dev.record_evidence("fraud_model", "v3", asset_type="model", kind="gate", rule="quality",
                        passed=True, policy_hash="abc", details={"f1": 0.95, "ok": [1, 2]})
    dev.record_evidence("fraud_model", "v1", asset_type="model", kind="gate", rule="quality",
                        passed=False, policy_hash="abc", details={})
    dev.consume_model_asset("fraud_model", "@champion")
    dev.publish_event("model_promoted", {"to": "v3"})
    dev.publish_event("no_payload")
    dev.register_data_asset("scratch_table", kind="parquet")
    dev.delete_data_asset("scratch_table")
    # what flowpolicy dispatch keeps: a started dispatch of the last event, and its cursor
    reg = open_registry(url)
    event = reg.events()[-1]
    claim = reg.claim_dispatch(event.id, "flows/quality_gate.py", flow_name="QualityGateFlow",
                               branch="dev", argv=["python", "flows/quality_gate.py"],
                               cwd="/project", claimer="host:1", lease_seconds=30)
    reg.start_dispatch(claim.id, claim.token, pid=1, log_path=None)
    reg.advance_cursor("dispatch.fraud", event.id)


def snapshot(reg) -> dict:
    """Everything a user can read, through the Protocol."""
    from flowpolicy.registry import Scope

    out = {}
    for summary in reg.assets():
        scope = summary.scope
        out[str(scope)] = {
            "summary": (summary.description, summary.latest_version, summary.updated_at),
            "instances": reg.instances(scope, None),
            "aliases": reg.aliases(scope),
            "history": reg.alias_history(scope),
            "consumers": reg.consumers(scope),
            "evidence": [reg.evidence(scope, f"v{v}") for v in
                         range(1, summary.latest_version + 1)],
        }
        assert isinstance(scope, Scope)
    out["events"] = reg.events()
    out["dispatches"] = reg.dispatches()
    out["cursor"] = reg.cursor("dispatch.fraud")
    return out


def test_copy_sqlite_to_postgresql_and_back_keeps_everything(tmp_path, postgres_url, capsys):
    source = f"sqlite:///{tmp_path / 'registry.db'}"
    populate(source)
    capsys.readouterr()
    original = SQLiteRegistry(tmp_path / "registry.db", read_only=True)

    done = subprocess.run([sys.executable, "-m", "flowpolicy", "registry", "copy", source,
                           postgres_url], capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items()
                               if k != "FLOWPOLICY_REGISTRY"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == f"copied {source} → {postgres_url}"
    assert "assets 3, instances 5, aliases 1, alias_history 2, consumptions 1, events 9, " \
           "evidence 2, asset_deletions 1, dispatches 1, cursors 1" in done.stdout
    shared = PostgresRegistry(postgres_url)
    assert snapshot(shared) == snapshot(original)
    assert shared.digest() == original.digest()

    # the copy goes on where the original left off: numbers and ids continue
    assert shared.register(MODEL, kind="artifact", created_by=ME).id == "v4"
    # (the registration published its own event first)
    assert shared.publish_event("fraud", "dev", "next", None, ME).id == \
        original.events()[-1].id + 2
    shared.set_alias(MODEL, "champion", "v4", by=ME, expected="v3")
    assert [m.to_version for m in shared.alias_history(MODEL, "champion")] == [1, 3, 4]

    back = tmp_path / "back.db"
    code = main(["registry", "copy", postgres_url, f"sqlite:///{back}", "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["rows"]["instances"] == 6 and not report["replaced"]
    assert SQLiteRegistry(back).digest() == shared.digest()
    assert SQLiteRegistry(back).integrity_problems() == []


def test_non_empty_destination_is_refused_unless_replace(tmp_path, postgres_url, capsys):
    source = f"sqlite:///{tmp_path / 'registry.db'}"
    populate(source)
    other = PostgresRegistry(postgres_url)
    other.register(MODEL, kind="artifact", created_by=ME, annotations={"mine": 1})
    before = other.digest()
    code = main(["registry", "copy", source, postgres_url])
    assert code == 1
    assert "is not empty (3 rows); copy into an empty registry, or pass --replace" in \
        capsys.readouterr().err
    assert other.digest() == before

    code = main(["registry", "copy", source, postgres_url, "--replace"])
    assert code == 0 and "its previous contents discarded" in capsys.readouterr().out
    assert other.digest() == SQLiteRegistry(tmp_path / "registry.db").digest()


def test_copy_that_does_not_verify_writes_nothing(tmp_path, postgres_url):
    """A source timestamp in another spelling reads back from PostgreSQL normalised: the
    digests differ, so the copy is rolled back and the database holds no registry."""
    path = tmp_path / "odd.db"
    conn = sqlite3.connect(path)
    conn.executescript(V1_SCHEMA.replace("'2026-01-02T00:00:00.000000Z'",
                                         "'2026-01-02 00:00:00'", 1))
    conn.execute("PRAGMA application_id = 0x666C706F")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    with pytest.raises(RegistryError, match="did not verify .*nothing was written") as raised:
        copy_registry(SQLiteRegistry(path, read_only=True), PostgresRegistry(postgres_url))
    assert raised.value.exit_code == 1
    with pytest.raises(RegistryError, match="has no 'flowpolicy' schema"):
        PostgresRegistry(postgres_url, read_only=True)


def test_copy_of_an_older_schema_file(tmp_path, postgres_url):
    source = SQLiteRegistry(v1_registry(tmp_path / "old.db"), read_only=True)
    report = copy_registry(source, PostgresRegistry(postgres_url))
    assert report.digest.counts["instances"] == 2 and report.digest.counts["evidence"] == 0
    assert PostgresRegistry(postgres_url).resolve(MODEL, "@production").id == "v2"


@pytest.mark.parametrize("argv, code, message", [
    (["registry", "copy", "sqlite:////nonexistent/r.db", "sqlite:////tmp/x.db"], 2,
     "no registry at /nonexistent/r.db"),
    (["registry", "copy", "SRC", "outerbounds+http://127.0.0.1:9/p"], 2,
     "copy works between SQL registries"),
    (["registry", "copy", "SRC", "SRC"], 2, "source and destination are the same registry"),
    (["registry", "copy", "EMPTY", "sqlite:////tmp/never.db"], 1, "nothing to copy"),
])
def test_copy_refusals(tmp_path, capsys, argv, code, message):
    source = tmp_path / "registry.db"
    populate(f"sqlite:///{source}")
    empty = tmp_path / "empty.db"  # a registry whose tables are there, all empty
    SQLiteRegistry(empty).publish_event("p", "b", "n", None, ME)
    with sqlite3.connect(empty) as conn:
        conn.execute("DELETE FROM events")
    argv = [a.replace("SRC", f"sqlite:///{source}").replace("EMPTY", f"sqlite:///{empty}")
            for a in argv]
    assert main(argv) == code
    assert message in capsys.readouterr().err
    assert not os.path.exists("/tmp/never.db")


def test_info_on_both_backends(backend, capsys):
    populate(backend.url)
    capsys.readouterr()
    code = main(["registry", "info", "--registry", backend.url])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0] == f"registry {backend.url}"
    assert out[1].split()[:2] == ["backend", backend.name]
    assert out[3] == (f"  schema    version {SCHEMA_VERSION} (this flowpolicy writes "
                      f"{SCHEMA_VERSION})")
    assert out[5] == ("  rows      assets 3, instances 5, aliases 1, alias_history 2, "
                      "consumptions 1, events 9, evidence 2, asset_deletions 1, "
                      "dispatches 1, cursors 1")
    code = main(["registry", "info", "--registry", backend.url, "--format", "json"])
    info = json.loads(capsys.readouterr().out)
    assert info["bytes"] > 0 and info["rows"]["instances"] == 5


def test_info_where_there_is_no_registry(postgres_url, capsys):
    assert main(["registry", "info", "--registry", postgres_url]) == 2
    assert "has no 'flowpolicy' schema yet" in capsys.readouterr().err
