"""Concurrent writers and crashed writers, with real processes on one real registry of each
SQL backend (a SQLite file, a PostgreSQL database): the ``backend`` fixture."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from flowpolicy.registry import EntityRef, Scope

SCOPE = Scope("fraud", "dev", "model", "fraud_model")

_PRELUDE = textwrap.dedent("""
    import os, sys, time
    from flowpolicy.registry import EntityRef, Scope, open_registry
    url, worker, go = sys.argv[1], sys.argv[2], sys.argv[3]
    SCOPE = Scope("fraud", "dev", "model", "fraud_model")
    reg = open_registry(url)
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


def _run_together(script: str, url: str, folder, workers: int, *args: str) -> None:
    _run_groups(url, folder, [(script, [str(w) for w in range(workers)], args)])


def _run_groups(url: str, folder, groups: list[tuple[str, list[str], tuple[str, ...]]]
                ) -> None:
    """Start every (script, workers, args) group's processes, release them at one instant,
    and require that all succeed."""
    go = folder / "go"
    procs = [subprocess.Popen([sys.executable, "-c", script, url, worker, str(go), *args],
                              stderr=subprocess.PIPE, text=True)
             for script, workers, args in groups for worker in workers]
    time.sleep(0.3)  # let every process import and open the registry before the start signal
    go.touch()
    failures = [(p.args[3], p.communicate()[1]) for p in procs if p.wait() != 0]
    assert not failures, failures


# Many rounds in the same processes: each round starts all workers at once on something
# new (a file that does not exist yet, an instance not promoted yet), so a race that is lost
# once in a few dozen collisions shows up in one test run. A failure in a round is printed
# and the worker goes on, so the others are not left waiting at the next round's start.
_ROUNDS_PRELUDE = textwrap.dedent("""
    import json, sys, time, traceback
    from pathlib import Path
    from flowpolicy.registry import EntityRef, Scope, open_registry
    folder, worker, rounds = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    urls = json.loads(sys.argv[4])  # the registry of each round
    me = EntityRef("user", f"worker-{worker}")

    def each_round(work):
        for i in range(rounds):
            (folder / f"ready.{i}.{worker}").touch()
            while not (folder / f"go.{i}").exists():
                time.sleep(0.0002)
            try:
                work(i)
            except Exception:
                print(f"round {i}: " + traceback.format_exc().replace("\\n", " | "), flush=True)
""")

_CREATE_IN_ROUNDS = _ROUNDS_PRELUDE + textwrap.dedent("""
    SCOPE = Scope("fraud", "dev", "model", "fraud_model")

    def create(i):
        reg = open_registry(urls[i])
        reg.register(SCOPE, kind="artifact", created_by=me, annotations={"worker": worker})
        reg.close()

    each_round(create)
""")

_PROMOTE_IN_ROUNDS = _ROUNDS_PRELUDE + textwrap.dedent("""
    from flowpolicy.runtime.promote import promote_assets

    def promote(i):
        result = promote_assets("fraud", "dev", "staging", kinds=["models"],
                                asset="fraud_model", instance=f"v{i + 1}",
                                registry=urls[i])
        assert not result["errors"], result["errors"]
        print("promoted", i, result["promoted"][0]["instance"], flush=True)

    each_round(promote)
""")


def _run_in_rounds(script: str, folder, workers: int, urls: list[str]) -> list[str]:
    """Start ``workers`` processes and release them together once per registry URL of
    ``urls`` (round i uses ``urls[i]``); every line they printed, failures first."""
    rounds = len(urls)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(folder), str(w), str(rounds),
                               json.dumps(urls)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for w in range(workers)]
    try:
        for i in range(rounds):
            deadline = time.monotonic() + 120
            while len(list(folder.glob(f"ready.{i}.*"))) < workers:
                dead = [p for p in procs if p.poll() is not None]
                assert not dead and time.monotonic() < deadline, [
                    p.communicate()[1] for p in dead]
                time.sleep(0.001)
            (folder / f"go.{i}").touch()
        outputs = [p.communicate(timeout=120) for p in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert all(p.returncode == 0 for p in procs), [err for _, err in outputs]
    lines = [line for out, _ in outputs for line in out.splitlines()]
    return sorted(lines, key=lambda line: not line.startswith("round "))


@pytest.fixture
def fresh_registries(backend, request, tmp_path):
    """``make(n)``: n fresh, empty registry locations of the backend under test."""
    from conftest import Backend

    made = []

    def make(n: int) -> list[Backend]:
        for i in range(n):
            if backend.name == "sqlite":
                path = tmp_path / f"registry-{i}.db"
                made.append(Backend("sqlite", f"sqlite:///{path}", path))
            else:
                server = request.getfixturevalue("postgres_server")
                made.append(Backend("postgresql", server.url(server.create_database())))
        return made

    yield make
    if backend.name == "postgresql":
        server = request.getfixturevalue("postgres_server")
        for location in made:
            server.drop_database(location.url.rsplit("/", 1)[1])


def test_sixteen_processes_create_one_new_registry_together(backend, fresh_registries,
                                                            tmp_path):
    """The first open and write of a brand-new registry, 16 processes at the same instant, 40
    times over: none may mistake another's half-done set-up for a foreign database."""
    locations = fresh_registries(40)
    lines = _run_in_rounds(_CREATE_IN_ROUNDS, tmp_path, 16, [b.url for b in locations])
    assert [line for line in lines if line.startswith("round ")] == []
    for location in locations:
        reg = location.open(read_only=True)
        records = reg.instances(SCOPE, limit=None)
        assert sorted(r.version for r in records) == list(range(1, 17))
        assert sorted(r.annotations["worker"] for r in records) == sorted(map(str, range(16)))
        assert reg.integrity_problems() == []
        reg.close()


def test_concurrent_promotions_of_one_instance_give_one_instance(backend, tmp_path):
    """Eight processes promote the same dev instance to staging at the same instant, for 12
    instances in turn: each instance arrives on staging once, and all eight are told so."""
    reg = backend.open()
    for i in range(12):
        reg.register(SCOPE, kind="artifact", created_by=EntityRef("user", "setup"),
                     annotations={"i": i})
    lines = _run_in_rounds(_PROMOTE_IN_ROUNDS, tmp_path, 8, [backend.url] * 12)
    assert [line for line in lines if line.startswith("round ")] == []

    staging = Scope("fraud", "staging", "model", "fraud_model")
    records = reg.instances(staging, limit=None)
    assert len(records) == 12
    by_source = {r.annotations["promoted_from_instance"]: r.id for r in records}
    assert sorted(by_source) == sorted(f"v{i + 1}" for i in range(12))
    told = {}
    for line in lines:
        _, i, instance = line.split()
        told.setdefault(f"v{int(i) + 1}", set()).add(instance)
    assert told == {source: {target} for source, target in by_source.items()}
    # the candidate alias moved once per promoted instance, never twice to the same one
    moves = reg.alias_history(staging, "candidate")
    assert all(m.from_version != m.to_version for m in moves)


def test_concurrent_writers_never_lose_or_duplicate_versions(backend, tmp_path):
    _run_together(_REGISTER, backend.url, tmp_path, 8, "100")

    reg = backend.open()
    records = reg.instances(SCOPE, limit=None)
    assert sorted(r.version for r in records) == list(range(1, 801))
    pairs = {(r.annotations["writer"], r.annotations["i"]) for r in records}
    assert pairs == {(str(w), str(i)) for w in range(8) for i in range(100)}
    assert all(r.created_by.entity_id == f"Writer/{r.annotations['writer']}/start/1"
               for r in records)
    assert reg.resolve(SCOPE, "latest").version == 800
    assert reg.integrity_problems() == []


def test_concurrent_alias_moves_are_serialised_and_all_recorded(backend, tmp_path):
    reg = backend.open()
    for _ in range(8):
        reg.register(SCOPE, kind="artifact", created_by=EntityRef("user", "setup"))
    _run_together(_MOVE_ALIAS, backend.url, tmp_path, 8, "40")

    history = reg.alias_history(SCOPE, "champion")
    assert len(history) == 8 * 40
    assert {m.reason for m in history} == {f"{w}:{i}" for w in range(8) for i in range(40)}
    # serialisable: every move starts where the previous one (in commit order) left the alias
    assert history[0].from_version is None
    assert all(later.from_version == earlier.to_version
               for earlier, later in zip(history, history[1:], strict=False))
    rows = backend.execute_raw("SELECT version FROM aliases WHERE alias = 'champion'")
    assert rows == [(history[-1].to_version,)]
    assert reg.resolve(SCOPE, "@champion").version == history[-1].to_version


def test_registrations_and_alias_moves_at_once_lose_nothing(backend, tmp_path):
    """Eight processes register 100 instances each while four others move an alias 40 times
    each, all on one asset: every number once, every move recorded and chained."""
    reg = backend.open()
    for _ in range(8):
        reg.register(SCOPE, kind="artifact", created_by=EntityRef("user", "setup"),
                     annotations={"writer": "setup"})
    _run_groups(backend.url, tmp_path, [(_REGISTER, [str(w) for w in range(8)], ("100",)),
                                        (_MOVE_ALIAS, [f"mover{w}" for w in range(4)], ("40",))])

    records = reg.instances(SCOPE, limit=None)
    assert sorted(r.version for r in records) == list(range(1, 809))
    pairs = {(r.annotations["writer"], r.annotations.get("i")) for r in records[:-8]}
    assert pairs == {(str(w), str(i)) for w in range(8) for i in range(100)}
    history = reg.alias_history(SCOPE, "champion")
    assert {m.reason for m in history} == {f"mover{w}:{i}" for w in range(4) for i in range(40)}
    assert history[0].from_version is None
    assert all(later.from_version == earlier.to_version
               for earlier, later in zip(history, history[1:], strict=False))
    assert reg.get_alias(SCOPE, "champion") == history[-1].to_version
    assert reg.integrity_problems() == []


_STALL_BEFORE_COMMIT = textwrap.dedent("""
    import sys, time
    from contextlib import contextmanager
    from flowpolicy.registry import EntityRef, Scope, open_registry
    scope = Scope("fraud", "dev", "model", "fraud_model")
    reg = open_registry(sys.argv[1])
    me = EntityRef("user", "doomed")
    backend = type(reg)
    committed = backend._write

    @contextmanager
    def stall_before_commit(self, **kwargs):
        with committed(self, **kwargs) as conn:
            yield conn
            print("IN-TRANSACTION", flush=True)  # every statement ran; COMMIT has not
            time.sleep(120)

    backend._write = stall_before_commit
    if sys.argv[2] == "register":
        reg.register(scope, kind="artifact", created_by=me, annotations={"doomed": 1})
    else:
        reg.set_alias(scope, "production", "v1", by=me, reason="doomed")
""")


@pytest.mark.parametrize("operation", ["register", "set_alias"])
def test_writer_killed_mid_transaction_leaves_a_consistent_registry(backend, operation):
    reg = backend.open()
    for _ in range(5):
        reg.register(SCOPE, kind="artifact", created_by=EntityRef("user", "setup"))
    reg.set_alias(SCOPE, "production", "v5", by=EntityRef("user", "setup"))
    reg.close()

    child = subprocess.Popen([sys.executable, "-c", _STALL_BEFORE_COMMIT, backend.url, operation],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
        assert line.strip() == "IN-TRANSACTION", child.stderr.read()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL

    after = backend.open()  # a fresh connection, as the next process would open
    assert after.integrity_problems() == []
    assert [r.version for r in after.instances(SCOPE)] == [5, 4, 3, 2, 1]
    assert after.resolve(SCOPE, "@production").version == 5
    assert len(after.alias_history(SCOPE, "production")) == 1
    assert after.register(SCOPE, kind="artifact", created_by=EntityRef("user", "next")).id == "v6"
    after.set_alias(SCOPE, "production", "v6", by=EntityRef("user", "next"), expected="v5")


_STORM = textwrap.dedent("""
    import sys
    from flowpolicy.registry import EntityRef, Scope, open_registry
    scope = Scope("fraud", "dev", "model", "fraud_model")
    reg = open_registry(sys.argv[1])
    me = EntityRef("user", "storm")
    i = 0
    while True:
        record = reg.register(scope, kind="artifact", created_by=me, annotations={"i": i})
        reg.set_alias(scope, "latest_seen", record.id, by=me)
        i += 1
        if i == 50:
            print("BUSY", flush=True)
""")


def test_writer_killed_at_an_arbitrary_point_leaves_a_consistent_registry(backend):
    child = subprocess.Popen([sys.executable, "-c", _STORM, backend.url],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "BUSY", child.stderr.read()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()

    after = backend.open()
    assert after.integrity_problems() == []
    latest = after.resolve(SCOPE, "latest").version
    assert latest >= 50
    assert [r.version for r in after.instances(SCOPE, limit=None)] == list(range(latest, 0, -1))
    # the alias trails the newest instance by at most the one move the kill interrupted
    assert after.get_alias(SCOPE, "latest_seen") in (latest, latest - 1)
