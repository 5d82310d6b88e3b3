"""The registry's own lifecycle events, and the dispatch records and cursors ``flowpolicy
dispatch`` keeps in it, on both SQL backends (a real SQLite file, a real PostgreSQL server;
in-process)."""

from __future__ import annotations

import sqlite3
import time

import pytest

from flowpolicy.errors import RegistryError
from flowpolicy.registry import AliasConflict, EntityRef, Scope
from flowpolicy.registry.base import parse_wire_name
from flowpolicy.registry.sqlite import SQLiteRegistry
from flowpolicy.runtime.promote import promote_assets

TRAINER = EntityRef("task", "TrainFlow/1/train/2")
PROMOTER = EntityRef("task", "PromotionFlow/7/end/3")
MODEL = Scope("fraud", "dev", "model", "fraud_model")


@pytest.fixture
def reg(backend):
    registry = backend.open()
    yield registry
    registry.close()


def _refuse_inserts_into(backend, table: str) -> None:
    """Break the next insert into ``table`` (as a full disk would), past flowpolicy."""
    if backend.name == "sqlite":
        backend.execute_raw(f"CREATE TRIGGER no_more BEFORE INSERT ON {table} "
                            "BEGIN SELECT RAISE(ABORT, 'disk full, say'); END")
        return
    backend.execute_raw("CREATE FUNCTION no_more() RETURNS trigger LANGUAGE plpgsql AS $$ "
                        "BEGIN RAISE EXCEPTION 'disk full, say'; END $$")
    backend.execute_raw(f"CREATE TRIGGER no_more BEFORE INSERT ON {table} FOR EACH ROW "
                        "EXECUTE FUNCTION no_more()")


def test_a_registration_publishes_its_new_instance_in_the_same_transaction(reg, backend):
    record = reg.register(MODEL, kind="artifact", created_by=TRAINER,
                          annotations={"f1_score": 0.9})
    [event] = reg.events()
    assert event.wire_name == "prj.fraud.dev.model.fraud_model.new_instance"
    assert event.producer == TRAINER
    assert event.payload == {"asset": "fraud_model", "asset_type": "model", "instance": "v1",
                             "kind": "artifact", "created_by": TRAINER.entity_id,
                             "actor": TRAINER.entity_id}
    assert event.created_at == record.created_at  # one transaction, one clock reading
    # an event that cannot be written takes its registration with it: one transaction
    _refuse_inserts_into(backend, "events")
    with pytest.raises(Exception, match="disk full"):
        reg.register(MODEL, kind="artifact", created_by=TRAINER)
    assert len(reg.events()) == 1 and [r.version for r in reg.instances(MODEL)] == [1]


def test_an_alias_unset_publishes_its_move_to_nothing(reg):
    reg.register(MODEL, kind="artifact", created_by=TRAINER)
    reg.set_alias(MODEL, "candidate", "v1", by=PROMOTER)
    reg.unset_alias(MODEL, "candidate", by=PROMOTER, reason="withdrawn")
    last = reg.events(name="model.fraud_model.alias.candidate")[-1]
    assert (last.payload["from"], last.payload["to"], last.payload["instance"],
            last.payload["reason"]) == ("v1", None, None, "withdrawn")


def test_an_alias_move_publishes_from_and_to_and_a_refused_move_publishes_nothing(reg):
    for _ in range(2):
        reg.register(MODEL, kind="artifact", created_by=TRAINER)
    reg.set_alias(MODEL, "champion", "v1", by=PROMOTER, reason="first")
    reg.set_alias(MODEL, "champion", "v2", by=PROMOTER, reason="better", expected="v1")
    with pytest.raises(AliasConflict):
        reg.set_alias(MODEL, "champion", "v1", by=PROMOTER, expected="v1")
    moves = reg.events(name="model.fraud_model.alias.champion")
    assert [(e.payload["from"], e.payload["to"], e.payload["instance"], e.payload["reason"])
            for e in moves] == [(None, "v1", "v1", "first"), ("v1", "v2", "v2", "better")]
    assert {e.producer for e in moves} == {PROMOTER}
    assert moves[1].payload["actor"] == PROMOTER.entity_id


def test_a_promotion_announces_its_copy_on_the_target_branch_as_the_promoter(reg, monkeypatch):
    monkeypatch.setattr("flowpolicy.runtime.promote.current_entity", lambda: PROMOTER)
    reg.register(MODEL, kind="artifact", created_by=TRAINER)
    promote_assets("fraud", "dev", "staging", asset="fraud_model", instance="v1",
                   registry=reg)
    promote_assets("fraud", "dev", "staging", asset="fraud_model", instance="v1",
                   registry=reg)  # idempotent: the second one registers nothing
    staging = reg.events(branch="staging")
    assert [e.name for e in staging] == ["model.fraud_model.new_instance",
                                         "model.fraud_model.alias.candidate"]
    created = staging[0]
    # the copy keeps the training task as its producer, but the promotion made the event
    assert created.producer == PROMOTER
    assert created.payload["created_by"] == TRAINER.entity_id
    assert (created.payload["promoted_from_branch"], created.payload["promoted_from_instance"]
            ) == ("dev", "v1")


def test_wire_names_parse_back_with_dots_in_the_event_name():
    assert parse_wire_name("prj.fraud.dev.model.fraud_model.alias.champion") == (
        "fraud", "dev", "model.fraud_model.alias.champion")
    for bad in ("fraud.dev.x", "prj.fraud.dev", "prj..dev.x", "", "prj.fraud.dev."):
        with pytest.raises(RegistryError, match="not a project event"):
            parse_wire_name(bad)


def test_following_events_after_a_cursor(reg):
    reg.register(MODEL, kind="artifact", created_by=TRAINER)  # event 1
    for index in range(5):
        reg.publish_event("fraud", "dev", f"e{index}", None, TRAINER)
    assert [e.name for e in reg.events(after=3)] == ["e2", "e3", "e4"]
    assert [e.name for e in reg.events(after=2, limit=2)] == ["e1", "e2"]
    assert reg.newest_event_id() == 6
    began = time.monotonic()
    assert reg.wait_for_events(6, 0.05) is False and time.monotonic() - began >= 0.05
    assert reg.wait_for_events(5, 5.0) is True


def _claim(reg, event_id: int, flow: str = "flows/quality_gate.py", lease: float = 30.0,
           claimer: str = "host:1"):
    return reg.claim_dispatch(event_id, flow, flow_name="QualityGateFlow", branch="dev",
                              argv=["python", flow, "--quiet", "run", "--instance=v1"],
                              cwd="/project", claimer=claimer, lease_seconds=lease)


def test_a_dispatch_is_claimed_once_started_once_and_only_moves_forward(reg, backend):
    event = reg.publish_event("fraud", "dev", "promote_model", {"instance": "v1"}, TRAINER)
    first = _claim(reg, event.id)
    assert (first.state, first.attempts, first.argv[-1]) == ("claimed", 1, "--instance=v1")
    assert _claim(reg, event.id, claimer="host:2") is None  # a live claim is someone's
    assert _claim(reg, event.id, flow="flows/other.py") is not None  # another flow: its own
    started = reg.start_dispatch(first.id, first.token, pid=123, log_path="/logs/1.log")
    assert (started.state, started.pid) == ("started", 123)
    assert reg.start_dispatch(first.id, first.token, pid=124, log_path=None) is None
    assert _claim(reg, event.id) is None  # started: never claimed again
    reg.note_dispatch_run(first.id, "QualityGateFlow/17")
    reg.finish_dispatch(first.id, status="refused", returncode=1, reason="gate failed")
    done = reg.dispatch(first.id)
    assert (done.state, done.status, done.run_pathspec, done.reason) == (
        "finished", "refused", "QualityGateFlow/17", "gate failed")
    with pytest.raises(RegistryError, match="not started"):
        reg.finish_dispatch(first.id, status="succeeded", returncode=0, reason=None)
    with pytest.raises(backend.IntegrityError, match="only moves forward"):
        backend.execute_raw(f"UPDATE dispatches SET state = 'claimed' WHERE id = {first.id}")
    with pytest.raises(backend.IntegrityError, match="kept"):
        backend.execute_raw("DELETE FROM dispatches")
    with pytest.raises(RegistryError, match="no event 99"):
        _claim(reg, 99)
    with pytest.raises(RegistryError, match="no dispatch 42"):
        reg.dispatch(42)


def test_an_expired_claim_is_taken_over_with_a_new_token(reg):
    event = reg.publish_event("fraud", "dev", "promote_model", {"instance": "v1"}, TRAINER)
    stale = _claim(reg, event.id, lease=0.01)
    time.sleep(0.02)
    assert [d.id for d in reg.dispatches(lease_expired=True)] == [stale.id]
    taken = reg.claim_dispatch(event.id, stale.flow, flow_name=None, branch="staging",
                               argv=["something", "else"], cwd="/elsewhere",
                               claimer="host:2", lease_seconds=30)
    # the original decision is kept: same command, branch and folder; a new token
    assert (taken.id, taken.attempts, taken.claimed_by) == (stale.id, 2, "host:2")
    assert (taken.argv, taken.branch, taken.cwd) == (stale.argv, "dev", "/project")
    assert taken.token != stale.token
    assert reg.start_dispatch(stale.id, stale.token, pid=1, log_path=None) is None
    assert reg.start_dispatch(taken.id, taken.token, pid=2, log_path=None).pid == 2
    assert reg.dispatches(lease_expired=True) == []


def test_cursors_only_move_forward_and_reading_one_creates_nothing(reg, backend):
    writer = reg
    writer.publish_event("fraud", "dev", "e", None, TRAINER)
    assert writer.cursor("dispatch.fraud") == 0
    assert writer.advance_cursor("dispatch.fraud", 7) == 7
    assert writer.advance_cursor("dispatch.fraud", 3) == 7
    assert writer.cursor("dispatch.fraud") == 7 and writer.cursor("other") == 0
    reader = backend.open(read_only=True)
    assert reader.cursor("dispatch.fraud") == 7
    with pytest.raises(RegistryError, match="read-only"):
        reader.advance_cursor("dispatch.fraud", 9)
    with pytest.raises(RegistryError, match="read-only"):
        reader.claim_dispatch(1, "f", flow_name=None, branch="dev", argv=[], cwd="/",
                              claimer="x", lease_seconds=1)
    reader.close()


def test_a_schema_from_before_dispatch_reads_as_having_none(tmp_path):
    """A version-4 file (before dispatch records), opened read-only, is read as it is."""
    from flowpolicy.registry import sqlite as backend

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA application_id = {backend.APPLICATION_ID}")
    for migration in backend.MIGRATIONS[:4]:
        for statement in migration:
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 4")
    conn.commit()
    conn.close()
    reader = SQLiteRegistry(path, read_only=True)
    assert reader.dispatches() == [] and reader.cursor("dispatch.fraud") == 0
    reader.close()
    writer = SQLiteRegistry(path)  # the first write migrates it
    writer.publish_event("fraud", "dev", "e", None, TRAINER)
    assert writer.schema_version == backend.SCHEMA_VERSION
    assert _claim(writer, 1) is not None
    writer.close()
