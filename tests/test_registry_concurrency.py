"""Concurrent writers and crashed writers, with real processes on one real SQLite file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from flowpolicy.registry import EntityRef, Scope
from flowpolicy.registry.sqlite import SQLiteRegistry

SCOPE = Scope("fraud", "dev", "model", "fraud_model")

_PRELUDE = textwrap.dedent("""
    import os, sys, time
    from flowpolicy.registry import EntityRef, Scope
    from flowpolicy.registry.sqlite import SQLiteRegistry
    path, worker, go = sys.argv[1], sys.argv[2], sys.argv[3]
    SCOPE = Scope("fraud", "dev", "model", "fraud_model")
    reg = SQLiteRegistry(path)
    me = EntityRef("task", f"Writer/{worker}/start/1")
    while not os.path.exists(go):  # start together, to collide as much as possible
        time.sleep(0.001)
""")

_REGISTER = _PRELUDE + textwrap.dedent("""
    for i in range(int(sys.argv[4])):
        reg.register(SCOPE, kind="artifact", created_by=me,
                     annotations={"writer": worker, "i": i})
""")

_MOVE_ALIAS = _PRELUDE + textwrap.dedent("""
    import random
    rng = random.Random(worker)
    for i in range(int(sys.argv[4])):
        reg.set_alias(SCOPE, "champion", f"v{rng.randint(1, 8)}", by=me,
                      reason=f"{worker}:{i}")
""")


def _run_together(script: str, path, workers: int, *args: str) -> None:
    go = path.parent / "go"
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path), str(w), str(go), *args],
                              stderr=subprocess.PIPE, text=True)
             for w in range(workers)]
    time.sleep(0.3)  # let every process import and open the file before the start signal
    go.touch()
    failures = [(p.args[3], p.communicate()[1]) for p in procs if p.wait() != 0]
    assert not failures, failures


def test_concurrent_writers_never_lose_or_duplicate_versions(tmp_path):
    path = tmp_path / "registry.db"
    SQLiteRegistry(path).close()
    _run_together(_REGISTER, path, 8, "100")

    reg = SQLiteRegistry(path)
    records = reg.instances(SCOPE, limit=None)
    assert sorted(r.version for r in records) == list(range(1, 801))
    pairs = {(r.annotations["writer"], r.annotations["i"]) for r in records}
    assert pairs == {(str(w), str(i)) for w in range(8) for i in range(100)}
    assert all(r.created_by.entity_id == f"Writer/{r.annotations['writer']}/start/1"
               for r in records)
    assert reg.resolve(SCOPE, "latest").version == 800
    assert reg.integrity_problems() == []


def test_concurrent_alias_moves_are_serialised_and_all_recorded(tmp_path):
    path = tmp_path / "registry.db"
    reg = SQLiteRegistry(path)
    for _ in range(8):
        reg.register(SCOPE, kind="artifact", created_by=EntityRef("user", "setup"))
    _run_together(_MOVE_ALIAS, path, 8, "40")

    history = reg.alias_history(SCOPE, "champion")
    assert len(history) == 8 * 40
    assert {m.reason for m in history} == {f"{w}:{i}" for w in range(8) for i in range(40)}
    # serialisable: every move starts where the previous one (in commit order) left the alias
    assert history[0].from_version is None
    assert all(later.from_version == earlier.to_version
               for earlier, later in zip(history, history[1:], strict=False))
    rows = reg._conn.execute("SELECT version FROM aliases WHERE alias = 'champion'").fetchall()
    assert rows == [(history[-1].to_version,)]
    assert reg.resolve(SCOPE, "@champion").version == history[-1].to_version


_STALL_BEFORE_COMMIT = textwrap.dedent("""
    import sys, time
    from contextlib import contextmanager
    from flowpolicy.registry import EntityRef, Scope
    from flowpolicy.registry.sqlite import SQLiteRegistry
    scope = Scope("fraud", "dev", "model", "fraud_model")
    reg = SQLiteRegistry(sys.argv[1])
    me = EntityRef("user", "doomed")
    committed = SQLiteRegistry._write

    @contextmanager
    def stall_before_commit(self):
        with committed(self) as conn:
            yield conn
            print("IN-TRANSACTION", flush=True)  # every statement ran; COMMIT has not
            time.sleep(120)

    SQLiteRegistry._write = stall_before_commit
    if sys.argv[2] == "register":
        reg.register(scope, kind="artifact", created_by=me, annotations={"doomed": 1})
    else:
        reg.set_alias(scope, "production", "v1", by=me, reason="doomed")
""")


@pytest.mark.parametrize("operation", ["register", "set_alias"])
def test_writer_killed_mid_transaction_leaves_a_consistent_registry(tmp_path, operation):
    path = tmp_path / "registry.db"
    reg = SQLiteRegistry(path)
    for _ in range(5):
        reg.register(SCOPE, kind="artifact", created_by=EntityRef("user", "setup"))
    reg.set_alias(SCOPE, "production", "v5", by=EntityRef("user", "setup"))
    reg.close()

    child = subprocess.Popen([sys.executable, "-c", _STALL_BEFORE_COMMIT, str(path), operation],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
        assert line.strip() == "IN-TRANSACTION", child.stderr.read()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL

    after = SQLiteRegistry(path)  # a fresh connection, as the next process would open
    assert after.integrity_problems() == []
    assert [r.version for r in after.instances(SCOPE)] == [5, 4, 3, 2, 1]
    assert after.resolve(SCOPE, "@production").version == 5
    assert len(after.alias_history(SCOPE, "production")) == 1
    assert after.register(SCOPE, kind="artifact", created_by=EntityRef("user", "next")).id == "v6"
    after.set_alias(SCOPE, "production", "v6", by=EntityRef("user", "next"), expected="v5")


_STORM = textwrap.dedent("""
    import sys
    from flowpolicy.registry import EntityRef, Scope
    from flowpolicy.registry.sqlite import SQLiteRegistry
    scope = Scope("fraud", "dev", "model", "fraud_model")
    reg = SQLiteRegistry(sys.argv[1])
    me = EntityRef("user", "storm")
    i = 0
    while True:
        record = reg.register(scope, kind="artifact", created_by=me, annotations={"i": i})
        reg.set_alias(scope, "latest_seen", record.id, by=me)
        i += 1
        if i == 50:
            print("BUSY", flush=True)
""")


def test_writer_killed_at_an_arbitrary_point_leaves_a_consistent_registry(tmp_path):
    path = tmp_path / "registry.db"
    SQLiteRegistry(path).close()
    child = subprocess.Popen([sys.executable, "-c", _STORM, str(path)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "BUSY", child.stderr.read()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()

    after = SQLiteRegistry(path)
    assert after.integrity_problems() == []
    latest = after.resolve(SCOPE, "latest").version
    assert latest >= 50
    assert [r.version for r in after.instances(SCOPE, limit=None)] == list(range(latest, 0, -1))
    # the alias trails the newest instance by at most the one move the kill interrupted
    assert after.get_alias(SCOPE, "latest_seen") in (latest, latest - 1)
