"""The registry on both SQL backends (the ``backend`` fixture: a SQLite file, a PostgreSQL
database): specs, versions, aliases, lineage, events, evidence; then SQLite's files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from flowpolicy.errors import RegistryError
from flowpolicy.registry import (
    AliasConflict,
    EntityRef,
    Scope,
    open_registry,
    parse_spec,
    project_root,
)
from flowpolicy.registry.sqlite import APPLICATION_ID, SCHEMA_VERSION, SQLiteRegistry

ME = EntityRef("user", "tester")
MODEL = Scope("fraud", "dev", "model", "fraud_model")
DATA = Scope("fraud", "dev", "data", "fraud_features")


@pytest.fixture
def reg(backend):
    registry = backend.open()
    yield registry
    registry.close()


def register_n(reg, scope, n, **kwargs):
    return [reg.register(scope, kind="artifact", created_by=ME,
                         annotations={"i": i + 1}, **kwargs) for i in range(n)]


@pytest.mark.parametrize("spec, back, version, alias", [
    ("latest", 0, None, None),
    ("latest-0", 0, None, None),
    ("latest-1", 1, None, None),
    ("latest-250", 250, None, None),
    ("v1", None, 1, None),
    ("v42", None, 42, None),
    ("@production", None, None, "production"),
    ("@candidate.2-b", None, None, "candidate.2-b"),
])
def test_parse_spec_accepts(spec, back, version, alias):
    parsed = parse_spec(spec)
    assert (parsed.back, parsed.version, parsed.alias) == (back, version, alias)


@pytest.mark.parametrize("spec, message", [
    ("latest-x", "after 'latest-' comes a whole number"),
    ("latest-", "after 'latest-' comes a whole number"),
    ("latest--1", "after 'latest-' comes a whole number"),
    ("v0", "versions start at v1"),
    ("v01", "malformed instance spec 'v01'"),
    ("v", "malformed instance spec 'v'"),
    ("v1.5", "malformed instance spec"),
    ("@", "an alias name must follow '@'"),
    ("@-x", "invalid alias name"),
    ("@a b", "invalid alias name"),
    ("@a\n", "invalid alias name"),
    ("", "malformed instance spec ''"),
    ("LATEST", "malformed instance spec"),
    ("3", "malformed instance spec '3'"),
])
def test_parse_spec_rejects_with_clear_message(spec, message):
    with pytest.raises(RegistryError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse_spec(spec)


def test_versions_are_numbered_per_scope_and_immutable(reg, backend):
    models = register_n(reg, MODEL, 3)
    other_branch = reg.register(Scope("fraud", "prod", "model", "fraud_model"),
                                kind="artifact", created_by=ME)
    data = reg.register(DATA, kind="artifact", created_by=ME)
    assert [m.id for m in models] == ["v1", "v2", "v3"]
    assert other_branch.id == "v1" and data.id == "v1"
    assert [r.id for r in reg.instances(MODEL)] == ["v3", "v2", "v1"]
    assert [r.id for r in reg.instances(MODEL, limit=2)] == ["v3", "v2"]
    with pytest.raises(backend.IntegrityError, match="immutable"):
        backend.execute_raw("UPDATE instances SET kind = 'x'")
    with pytest.raises(backend.IntegrityError, match="immutable"):
        backend.execute_raw("DELETE FROM instances")


def test_instance_fields_round_trip_as_strings(reg):
    created = reg.register(
        MODEL, kind="checkpoint_dir", created_by=EntityRef("task", "Train/1/start/2"),
        description="first", annotations={"f1_score": 0.91, "n": 3, "ok": True, "none": None},
        tags={"framework": "sklearn", "rev": 2}, blobs=["s3://b/k", "file:///x"],
    )
    got = reg.resolve(MODEL, "v1")
    assert got == created
    assert dict(got.annotations) == {"f1_score": "0.91", "n": "3", "ok": "True", "none": "None"}
    assert dict(got.tags) == {"framework": "sklearn", "rev": "2"}
    assert got.blobs == ("s3://b/k", "file:///x")
    assert got.kind == "checkpoint_dir" and got.description == "first"
    assert got.created_by == EntityRef("task", "Train/1/start/2")
    assert got.created_at.endswith("Z") and "T" in got.created_at


@pytest.mark.parametrize("spec, version", [
    ("latest", 3), ("latest-0", 3), ("latest-1", 2), ("latest-2", 1), ("v1", 1), ("v3", 3),
])
def test_resolve_specs(reg, spec, version):
    register_n(reg, MODEL, 3)
    assert reg.resolve(MODEL, spec).version == version


@pytest.mark.parametrize("scope, spec, message", [
    (MODEL, "v9", "v9 of model asset 'fraud_model' in fraud/dev does not exist: "
                  "fraud_model has v1…v3"),
    (MODEL, "latest-3", "goes back past v1: fraud_model has v1…v3, so at most latest-2"),
    (MODEL, "@production", r"alias @production is not set .*aliases: @candidate→v2"),
    (Scope("fraud", "dev", "model", "nope"), "latest",
     "unknown model asset 'nope' in fraud/dev of registry (/|postgresql://).*; "
     "model assets there: fraud_model"),
    (Scope("fraud", "dev", "data", "fraud_model"), "latest",
     "no data assets are registered there .*exists there as a model asset"),
    (Scope("fraud", "qa", "model", "fraud_model"), "latest",
     "exists on branch\\(es\\): dev"),
    (Scope("other", "dev", "model", "fraud_model"), "latest",
     "in other/dev of registry .*exists in project\\(s\\): fraud"),
])
def test_resolve_misses_name_what_exists(reg, scope, spec, message):
    register_n(reg, MODEL, 3)
    reg.set_alias(MODEL, "candidate", "v2", by=ME)
    with pytest.raises(RegistryError, match=message):
        reg.resolve(scope, spec)


def test_alias_moves_are_atomic_recorded_and_compare_and_set(reg, backend):
    register_n(reg, MODEL, 3)
    first = reg.set_alias(MODEL, "production", "v1", by=ME, reason="first", expected=None)
    assert (first.from_version, first.to_version) == (None, 1)
    with pytest.raises(AliasConflict, match="is v1, expected unset") as info:
        reg.set_alias(MODEL, "production", "v2", by=ME, expected=None)
    assert (info.value.current, info.value.expected) == ("v1", None)
    with pytest.raises(AliasConflict, match="is v1, expected v3"):
        reg.set_alias(MODEL, "production", "v2", by=ME, expected="v3")
    reg.set_alias(MODEL, "production", "latest", by=EntityRef("task", "F/1/s/1"),
                  reason="champion", expected="v1")
    reg.set_alias(MODEL, "candidate", "latest-1", by=ME)
    assert reg.get_alias(MODEL, "production") == 3
    assert reg.get_alias(MODEL, "missing") is None
    assert reg.aliases(MODEL) == {"candidate": 2, "production": 3}
    assert reg.resolve(MODEL, "@production").version == 3
    history = [m.to_dict() for m in reg.alias_history(MODEL, "production")]
    assert [(h["from"], h["to"], h["reason"]) for h in history] == [
        (None, "v1", "first"), ("v1", "v3", "champion")]
    assert history[1]["by"] == {"entity_kind": "task", "entity_id": "F/1/s/1"}
    assert len(reg.alias_history(MODEL)) == 3
    with pytest.raises(RegistryError, match="v7 of .* does not exist"):
        reg.set_alias(MODEL, "production", "v7", by=ME)
    with pytest.raises(RegistryError, match="expected= takes an instance id"):
        reg.set_alias(MODEL, "production", "v1", by=ME, expected="latest")
    for statement in ("DELETE FROM alias_history", "UPDATE alias_history SET reason = 'x'"):
        with pytest.raises(backend.IntegrityError, match="append-only"):
            backend.execute_raw(statement)


def test_lineage_events_and_evidence(reg, backend):
    register_n(reg, MODEL, 2)
    reg.record_consumption(MODEL, 1, EntityRef("task", "Use/5/start/1"))
    reg.record_consumption(MODEL, 2, EntityRef("task", "Use/6/start/1"))
    assert [(c.version, c.consumer.entity_id) for c in reg.consumers(MODEL)] == [
        (1, "Use/5/start/1"), (2, "Use/6/start/1")]
    assert [c.version for c in reg.consumers(MODEL, 2)] == [2]

    event = reg.publish_event("fraud", "dev", "model_promoted", {"to": "v2"}, ME)
    reg.publish_event("fraud", "prod", "retrain_required", None, ME)
    assert event.wire_name == "prj.fraud.dev.model_promoted"
    # the two registrations published their own lifecycle events first
    assert [e.name for e in reg.events("fraud", "dev")] == [
        "model.fraud_model.new_instance", "model.fraud_model.new_instance", "model_promoted"]
    assert [e.to_dict()["event"] for e in reg.events(name="model_promoted")] + [
        e.to_dict()["event"] for e in reg.events(branch="prod")] == [
        "prj.fraud.dev.model_promoted", "prj.fraud.prod.retrain_required"]

    import numpy as np

    reg.add_evidence(MODEL, "v2", kind="gate", rule="quality", passed=False, policy_hash="h1",
                     details={"f1_score": np.float64(0.7)}, created_by=ME)
    reg.add_evidence(MODEL, "latest", kind="gate", rule="quality", passed=True,
                     policy_hash="h1", details={"f1_score": 0.85}, created_by=ME)
    reg.add_evidence(MODEL, "latest", kind="champion", rule="fraud_model", passed=True,
                     policy_hash="h1", details={}, created_by=ME)
    records = [r.to_dict() for r in reg.evidence(MODEL, "v2")]
    assert [(r["kind"], r["passed"], r["instance"]) for r in records] == [
        ("gate", False, "v2"), ("gate", True, "v2"), ("champion", True, "v2")]
    assert records[0]["details"] == {"f1_score": 0.7}
    assert [r.kind for r in reg.evidence(MODEL, "v2", kind="champion")] == ["champion"]
    assert reg.evidence(MODEL, "v1") == []
    with pytest.raises(RegistryError, match="evidence kind must be one of"):
        reg.add_evidence(MODEL, "v1", kind="vibes", rule="x", passed=True, policy_hash=None,
                         details=None, created_by=ME)
    with pytest.raises(RegistryError, match="not JSON"):
        reg.add_evidence(MODEL, "v1", kind="gate", rule="x", passed=True, policy_hash=None,
                         details={"x": object()}, created_by=ME)
    for statement in ("DELETE FROM evidence", "UPDATE evidence SET rule = 'x'"):
        with pytest.raises(backend.IntegrityError, match="append-only"):
            backend.execute_raw(statement)
    # events after an id (what a follower reads) and the newest id
    newest = reg.newest_event_id()
    assert [e.id for e in reg.events()][-2:] == [event.id, newest]
    assert [e.name for e in reg.events(after=event.id)] == ["retrain_required"]
    assert reg.events("fraud", after=newest) == []
    assert reg.wait_for_events(event.id, timeout=0) is True
    assert reg.wait_for_events(newest, timeout=0.05) is False


def test_register_once_returns_the_instance_holding_the_key(reg):
    key = {"promoted_from_branch": "dev", "promoted_from_instance": "v2"}
    first, created = reg.register_once(MODEL, key, kind="artifact", created_by=ME,
                                       annotations={**key, "f1_score": 0.9})
    assert (first.id, created) == ("v1", True)
    reg.register(MODEL, kind="artifact", created_by=ME, annotations={"f1_score": 0.7})
    again, created = reg.register_once(MODEL, key, kind="artifact", created_by=ME,
                                       annotations={**key, "f1_score": 0.95})
    assert (again, created) == (first, False)
    other, created = reg.register_once(MODEL, {**key, "promoted_from_instance": "v3"},
                                       kind="artifact", created_by=ME,
                                       annotations={**key, "promoted_from_instance": "v3"})
    assert (other.id, created) == ("v3", True)
    assert [r.id for r in reg.instances(MODEL)] == ["v3", "v2", "v1"]
    for bad in ({}, {"promoted_from_branch": "prod"}):
        with pytest.raises(RegistryError, match="key that is part of the annotations"):
            reg.register_once(MODEL, bad, kind="artifact", created_by=ME, annotations=key)
    # keys and values are compared as stored (strings), whatever characters they hold
    odd = {'we"ird.key': "a'b\\c"}
    made, _ = reg.register_once(DATA, odd, kind="artifact", created_by=ME, annotations=odd)
    assert reg.register_once(DATA, odd, kind="artifact", created_by=ME,
                             annotations=odd) == (made, False)


def test_assets_listing(reg):
    register_n(reg, MODEL, 2, description="the model")
    reg.register(DATA, kind="artifact", created_by=ME)
    reg.register(Scope("other", "dev", "data", "x"), kind="artifact", created_by=ME)
    listed = [(s.scope.asset_type, s.scope.name, s.latest_version, s.description)
              for s in reg.assets("fraud", "dev")]
    assert listed == [("data", "fraud_features", 1, ""), ("model", "fraud_model", 2, "the model")]
    assert [s.scope.name for s in reg.assets("fraud", "dev", "model")] == ["fraud_model"]
    assert len(reg.assets()) == 3


# -- files: corrupt, foreign, older, newer -------------------------------------------------

# The schema exactly as flowpolicy's first release wrote it (user_version 1): frozen here so
# that editing migration 1 in place, instead of appending a migration, fails this test.
V1_SCHEMA = """
CREATE TABLE assets (id INTEGER PRIMARY KEY, project TEXT NOT NULL, branch TEXT NOT NULL,
  asset_type TEXT NOT NULL CHECK (asset_type IN ('data', 'model')), name TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '', latest_version INTEGER NOT NULL,
  created_at TEXT NOT NULL, updated_at TEXT NOT NULL, UNIQUE (project, branch, asset_type, name));
CREATE TABLE instances (asset_id INTEGER NOT NULL REFERENCES assets (id),
  version INTEGER NOT NULL CHECK (version >= 1), kind TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '', annotations TEXT NOT NULL, tags TEXT NOT NULL,
  blobs TEXT NOT NULL, created_at TEXT NOT NULL, created_by_kind TEXT NOT NULL,
  created_by_id TEXT NOT NULL, PRIMARY KEY (asset_id, version)) WITHOUT ROWID;
CREATE TABLE aliases (asset_id INTEGER NOT NULL REFERENCES assets (id), alias TEXT NOT NULL,
  version INTEGER NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (asset_id, alias)) WITHOUT ROWID;
CREATE TABLE alias_history (id INTEGER PRIMARY KEY, asset_id INTEGER NOT NULL
  REFERENCES assets (id), alias TEXT NOT NULL, from_version INTEGER, to_version INTEGER NOT NULL,
  by_kind TEXT NOT NULL, by_id TEXT NOT NULL, at TEXT NOT NULL, reason TEXT);
CREATE INDEX alias_history_by_alias ON alias_history (asset_id, alias, id);
CREATE TABLE consumptions (id INTEGER PRIMARY KEY, asset_id INTEGER NOT NULL
  REFERENCES assets (id), version INTEGER NOT NULL, consumer_kind TEXT NOT NULL,
  consumer_id TEXT NOT NULL, at TEXT NOT NULL);
CREATE INDEX consumptions_by_instance ON consumptions (asset_id, version);
CREATE TABLE events (id INTEGER PRIMARY KEY, project TEXT NOT NULL, branch TEXT NOT NULL,
  name TEXT NOT NULL, payload TEXT, created_at TEXT NOT NULL, producer_kind TEXT NOT NULL,
  producer_id TEXT NOT NULL);
CREATE TRIGGER instances_immutable_update BEFORE UPDATE ON instances
  BEGIN SELECT RAISE(ABORT, 'asset instances are immutable'); END;
CREATE TRIGGER instances_immutable_delete BEFORE DELETE ON instances
  BEGIN SELECT RAISE(ABORT, 'asset instances are immutable'); END;
CREATE TRIGGER alias_history_append_only BEFORE UPDATE ON alias_history
  BEGIN SELECT RAISE(ABORT, 'alias history is append-only'); END;
INSERT INTO assets VALUES (1, 'fraud', 'dev', 'model', 'fraud_model', '', 2,
  '2026-01-01T00:00:00.000000Z', '2026-01-02T00:00:00.000000Z');
INSERT INTO instances VALUES (1, 1, 'artifact', '', '{"f1_score":"0.8"}', '{}', '[]',
  '2026-01-01T00:00:00.000000Z', 'task', 'Train/1/start/1');
INSERT INTO instances VALUES (1, 2, 'artifact', '', '{"f1_score":"0.9"}', '{}', '[]',
  '2026-01-02T00:00:00.000000Z', 'task', 'Train/2/start/1');
INSERT INTO aliases VALUES (1, 'production', 2, '2026-01-02T00:00:00.000000Z');
"""


def v1_registry(path: Path) -> Path:
    """A schema-1 file as the first release wrote it: WAL journal, then the writer closed
    (its checkpoint removed -wal and -shm)."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript(V1_SCHEMA)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    return path


def test_older_schema_is_migrated_in_place_by_the_first_write(tmp_path):
    path = v1_registry(tmp_path / "old.db")
    before = path.read_bytes()
    reg = SQLiteRegistry(path)
    assert reg.schema_version == 1  # opening and reading migrate nothing
    assert reg.resolve(MODEL, "@production").annotations["f1_score"] == "0.9"
    assert reg.resolve(MODEL, "latest-1").created_by.entity_id == "Train/1/start/1"
    assert reg.evidence(MODEL, "@production") == []
    assert path.read_bytes() == before
    reg.add_evidence(MODEL, "@production", kind="gate", rule="quality", passed=True,
                     policy_hash="h", details={}, created_by=ME)
    assert reg.schema_version == SCHEMA_VERSION
    assert [e.rule for e in reg.evidence(MODEL, "@production")] == ["quality"]
    assert reg.register(MODEL, kind="artifact", created_by=ME).id == "v3"
    assert reg.integrity_problems() == []


@pytest.mark.parametrize("content, message", [
    (b"this is my thesis, not a database\n" * 100, "is not a SQLite database"),
    (b"SQLite format 3\x00" + b"\xff" * 4000, "is damaged .*left untouched"),
])
def test_corrupt_file_is_refused_and_left_untouched(tmp_path, content, message):
    path = tmp_path / "registry.db"
    path.write_bytes(content)
    with pytest.raises(RegistryError, match=message):
        SQLiteRegistry(path)
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["registry.db"]


def test_foreign_sqlite_database_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO customers VALUES (1, 'ada')")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(RegistryError, match="not a flowpolicy registry .*tables: customers"):
        SQLiteRegistry(path)
    assert path.read_bytes() == before


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "new.db"
    SQLiteRegistry(path).register(MODEL, kind="artifact", created_by=ME)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(RegistryError, match="newer than this flowpolicy understands"):
        SQLiteRegistry(path)


def test_directory_path_is_refused(tmp_path):
    with pytest.raises(RegistryError, match="is a directory"):
        SQLiteRegistry(tmp_path)


@pytest.mark.parametrize("read", [
    lambda r: r.resolve(MODEL), lambda r: r.instances(MODEL), lambda r: r.assets(),
    lambda r: r.get_alias(MODEL, "champion"), lambda r: r.aliases(MODEL),
    lambda r: r.alias_history(MODEL), lambda r: r.evidence(MODEL), lambda r: r.events(),
    lambda r: r.consumers(MODEL), lambda r: r.schema_version,
    # writes that need an existing asset create nothing either
    lambda r: r.set_alias(MODEL, "champion", by=ME),
    lambda r: r.record_consumption(MODEL, 1, ME),
    lambda r: r.add_evidence(MODEL, "v1", kind="gate", rule="q", passed=True,
                             policy_hash=None, details=None, created_by=ME),
])
@pytest.mark.parametrize("setup", ["missing", "zero bytes"])
def test_reads_never_create_a_registry(tmp_path, read, setup):
    path = tmp_path / "sub" / "registry.db"
    if setup == "zero bytes":
        path.parent.mkdir()
        path.touch()
    reg = SQLiteRegistry(path, origin="named by a test")
    message = ("no registry at .*registry.db \\(named by a test\\)" if setup == "missing"
               else "registry.db \\(named by a test\\) is an empty file, not yet a flowpolicy")
    with pytest.raises(RegistryError, match=message + ".*a read never creates a registry"):
        read(reg)
    if setup == "missing":
        assert not path.parent.exists()
    else:
        assert [(p.name, p.stat().st_size) for p in path.parent.iterdir()] == [
            ("registry.db", 0)]


def test_first_registration_or_event_creates_the_registry_in_wal_mode(tmp_path):
    zero = tmp_path / "zero.db"
    zero.touch()
    reg = SQLiteRegistry(zero)
    reg.register(MODEL, kind="artifact", created_by=ME)
    assert reg._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert reg._conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert reg.schema_version == SCHEMA_VERSION

    path = tmp_path / "new" / "registry.db"
    reader = SQLiteRegistry(path)  # opened before the file exists, like a long-lived process
    with pytest.raises(RegistryError, match="no registry at"):
        reader.events()
    SQLiteRegistry(path).publish_event("fraud", "dev", "hello", None, ME)
    assert [e.name for e in reader.events()] == ["hello"]  # looked at again, now it is there


# -- open_registry ---------------------------------------------------------------------------


def test_open_registry_urls_and_reuse(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    absolute = open_registry(f"sqlite:///{tmp_path / 'a.db'}")
    assert absolute is open_registry(f"sqlite:///{tmp_path / 'a.db'}")
    assert absolute is open_registry(str(tmp_path / "a.db"))
    relative = open_registry("sqlite:///rel.db")
    assert Path(relative.path) == tmp_path / "rel.db"
    monkeypatch.setenv("FLOWPOLICY_REGISTRY", f"sqlite:///{tmp_path / 'env.db'}")
    assert Path(open_registry().path) == tmp_path / "env.db"
    for bad, message in [("mysql://x/y", "unsupported registry URL"),
                         ("sqlite://host/x.db", "use sqlite:///relative"),
                         ("sqlite:///:memory:", "names no file")]:
        with pytest.raises(RegistryError, match=message):
            open_registry(bad)


def test_default_registry_lives_at_the_project_root(tmp_path, monkeypatch):
    (tmp_path / "obproject.toml").write_text('project = "x"\n')
    (tmp_path / "src" / "deep").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "src" / "deep")
    monkeypatch.delenv("FLOWPOLICY_REGISTRY", raising=False)
    assert project_root() == tmp_path
    reg = open_registry()
    assert Path(reg.path) == tmp_path / ".flowpolicy" / "registry.db"
    with pytest.raises(RegistryError, match=(
            f"no registry at {tmp_path}/.flowpolicy/registry.db \\(the default "
            f".flowpolicy/registry.db under the project root {tmp_path}: the nearest folder "
            "holding obproject.toml\\)")):
        reg.assets()
    assert not (tmp_path / ".flowpolicy").exists()
    reg.register(MODEL, kind="artifact", created_by=ME)
    assert reg.path.is_file()


def test_every_resolution_is_an_index_lookup(tmp_path):
    """Resolution cost must not grow with history: no query plan may scan a table."""
    from flowpolicy.registry import sqlite as backend

    reg = SQLiteRegistry(tmp_path / "registry.db")
    register_n(reg, MODEL, 3)
    key = ("fraud", "dev", "model", "fraud_model")
    statements = backend._SQL
    for sql, params in [(statements.by_back, (1, *key)), (statements.by_version, (2, *key)),
                        (statements.by_alias, ("production", *key)), (statements.asset, key)]:
        plan = [row[-1] for row in reg._conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
        assert plan and all(step.startswith("SEARCH") for step in plan), plan


def test_write_lock_held_too_long_is_a_registry_error(tmp_path):
    path = tmp_path / "registry.db"
    SQLiteRegistry(path).register(DATA, kind="artifact", created_by=ME)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process sitting on the write lock
    try:
        impatient = SQLiteRegistry(path, busy_timeout=0.05)
        with pytest.raises(RegistryError, match="is not writable now: database is locked"):
            impatient.register(MODEL, kind="artifact", created_by=ME)
        assert len(impatient.assets()) == 1  # WAL: reading never waits for the writer
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert impatient.register(MODEL, kind="artifact", created_by=ME).id == "v1"


@pytest.mark.parametrize("url, shown", [
    ("sqlite:////abs/registry.db", "sqlite:////abs/registry.db"),
    ("postgresql://ml:s3cret@db:5432/flowpolicy", "postgresql://ml@db:5432/flowpolicy"),
    ("postgresql://ml@db/flowpolicy?password=s3cret&sslmode=require",
     "postgresql://ml@db/flowpolicy?sslmode=require"),
    ("postgresql:///flowpolicy", "postgresql:///flowpolicy"),
])
def test_registry_urls_are_shown_without_passwords(url, shown):
    from flowpolicy.registry.base import redact_url

    assert redact_url(url) == shown
