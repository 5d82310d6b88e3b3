"""What only the PostgreSQL backend has to prove, on the session's real server: the schema is
created by the first write and never by a read, foreign, newer and older schemas, read-only
sessions, credentials and a server that is down (the CLI as users call it), faults (a server
restart between two registrations, a connection killed inside a transaction, damaged pages),
commit-ordered event ids woken by NOTIFY, and forked children."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import psycopg
import pytest
from pg_server import SECRET_PASSWORD, SECRET_USER
from test_registry import ME, MODEL

from flowpolicy.errors import RegistryError
from flowpolicy.registry import RegistryDamaged
from flowpolicy.registry import postgres as backend_module
from flowpolicy.registry.postgres import SCHEMA_VERSION, PostgresRegistry
from flowpolicy.registry.sql import TABLES


def schema_tables(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'flowpolicy' ORDER BY 1")]


def has_schema(url: str) -> bool:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT to_regnamespace('flowpolicy') IS NOT NULL").fetchone()[0]


def cli(*argv: str, url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "FLOWPOLICY_REGISTRY": url}
    return subprocess.run([sys.executable, "-m", "flowpolicy", *argv], env=env,
                          capture_output=True, text=True, timeout=120)


READS = {
    "resolve": lambda r: r.resolve(MODEL), "instances": lambda r: r.instances(MODEL),
    "assets": lambda r: r.assets(), "aliases": lambda r: r.aliases(MODEL),
    "alias_history": lambda r: r.alias_history(MODEL), "evidence": lambda r: r.evidence(MODEL),
    "events": lambda r: r.events(), "consumers": lambda r: r.consumers(MODEL),
    "set_alias": lambda r: r.set_alias(MODEL, "champion", by=ME),
    "add_evidence": lambda r: r.add_evidence(MODEL, "v1", kind="gate", rule="q", passed=True,
                                             policy_hash=None, details=None, created_by=ME),
}


@pytest.mark.parametrize("read", sorted(READS))
def test_reads_never_create_the_schema(postgres_url, read):
    reg = PostgresRegistry(postgres_url, origin="named by a test")
    with pytest.raises(RegistryError, match=(
            "no registry in postgresql://.* \\(named by a test\\): the database has no "
            "'flowpolicy' schema yet; nothing to read \\(a read never creates")):
        READS[read](reg)
    assert not has_schema(postgres_url)
    with pytest.raises(RegistryError, match="has no 'flowpolicy' schema yet"):
        PostgresRegistry(postgres_url, read_only=True)


def test_first_write_creates_the_schema_with_numbered_migrations(postgres_url):
    reader = PostgresRegistry(postgres_url)  # opened first, like a long-lived process
    PostgresRegistry(postgres_url).publish_event("fraud", "dev", "hello", None, ME)
    assert [e.name for e in reader.events()] == ["hello"]  # looked at again, now it is there
    assert schema_tables(postgres_url) == sorted([*TABLES, "flowpolicy_migrations"])
    with psycopg.connect(postgres_url) as conn:
        applied = conn.execute("SELECT version, flowpolicy_version FROM "
                               "flowpolicy.flowpolicy_migrations ORDER BY 1").fetchall()
    assert [v for v, _ in applied] == list(range(1, SCHEMA_VERSION + 1))
    assert reader.schema_version == SCHEMA_VERSION


def test_both_backends_have_the_shared_columns(backend):
    reg = backend.open()
    reg.register(MODEL, kind="artifact", created_by=ME)
    for table, columns in TABLES.items():
        if backend.name == "sqlite":
            found = [r[1] for r in backend.execute_raw(f"PRAGMA table_info({table})")]
        else:
            found = [r[0] for r in backend.execute_raw(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = "
                f"'flowpolicy' AND table_name = '{table}' ORDER BY ordinal_position")]
        assert tuple(found) == columns, table


def test_truncate_is_refused_on_append_only_tables(backend):
    reg = backend.open()
    reg.register(MODEL, kind="artifact", created_by=ME)
    reg.set_alias(MODEL, "champion", by=ME)
    reg.add_evidence(MODEL, "v1", kind="gate", rule="q", passed=True, policy_hash=None,
                     details=None, created_by=ME)
    if backend.name == "postgresql":  # SQLite has no TRUNCATE
        for table, message in [("instances", "immutable"), ("alias_history", "append-only"),
                               ("evidence", "append-only")]:
            with pytest.raises(psycopg.IntegrityError, match=message):
                backend.execute_raw(f"TRUNCATE {table} CASCADE")
    assert reg.digest().counts["evidence"] == 1


def test_foreign_schema_is_refused_and_left_untouched(postgres_url):
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA flowpolicy")
        conn.execute("CREATE TABLE flowpolicy.customers (id int)")
    for read_only in (False, True):
        with pytest.raises(RegistryError, match="holds tables but is not a flowpolicy registry "
                                                "\\(tables: customers\\)"):
            PostgresRegistry(postgres_url, read_only=read_only)
    assert schema_tables(postgres_url) == ["customers"]


def test_empty_schema_made_by_an_administrator_is_set_up_by_the_first_write(postgres_url):
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA flowpolicy")
    reg = PostgresRegistry(postgres_url)
    with pytest.raises(RegistryError, match="nothing to read"):
        reg.assets()
    assert reg.register(MODEL, kind="artifact", created_by=ME).id == "v1"


def test_newer_schema_is_refused(postgres_url):
    PostgresRegistry(postgres_url).register(MODEL, kind="artifact", created_by=ME)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("INSERT INTO flowpolicy.flowpolicy_migrations VALUES "
                     f"({SCHEMA_VERSION + 1}, now(), '9.9')")
    with pytest.raises(RegistryError, match="newer than this flowpolicy understands"):
        PostgresRegistry(postgres_url)


def test_older_schema_is_read_as_it_is_and_migrated_by_the_first_write(postgres_url):
    """A database as the first release left it (migration 1 only): read as it is, evidence
    empty; the first write applies migration 2 and records it."""
    with psycopg.connect(postgres_url, autocommit=True,
                         options="-c search_path=flowpolicy") as conn:
        conn.execute("CREATE SCHEMA flowpolicy")
        conn.execute(backend_module._VERSION_TABLE)
        for statement in backend_module.MIGRATIONS[0]:
            conn.execute(statement)
        conn.execute("INSERT INTO flowpolicy_migrations (version, flowpolicy_version) "
                     "VALUES (1, '0.1.0')")
        conn.execute("INSERT INTO assets VALUES (1, 'fraud', 'dev', 'model', 'fraud_model', '', "
                     "1, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')")
        conn.execute("INSERT INTO instances VALUES (1, 1, 'artifact', '', '{\"f1\":\"0.9\"}', "
                     "'{}', '[]', '2026-01-01T00:00:00Z', 'task', 'Train/1/start/1')")
    reader = PostgresRegistry(postgres_url, read_only=True)
    assert reader.schema_version == 1
    assert reader.resolve(MODEL).annotations["f1"] == "0.9"
    assert reader.resolve(MODEL).created_at == "2026-01-01T00:00:00.000000Z"
    assert reader.evidence(MODEL) == []
    assert "evidence" not in schema_tables(postgres_url)

    writer = PostgresRegistry(postgres_url)
    writer.add_evidence(MODEL, "v1", kind="gate", rule="quality", passed=True, policy_hash="h",
                        details={}, created_by=ME)
    assert writer.schema_version == SCHEMA_VERSION
    assert [e.rule for e in reader.evidence(MODEL)] == ["quality"]
    # ids the database assigns continue after those already there
    assert writer.register(MODEL, kind="artifact", created_by=ME).id == "v2"
    assert writer.integrity_problems() == []


def test_read_only_session_is_refused_writes_by_the_server_too(postgres_url):
    PostgresRegistry(postgres_url).register(MODEL, kind="artifact", created_by=ME)
    reader = PostgresRegistry(postgres_url, read_only=True)
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        reader._conn.execute("INSERT INTO events (project, branch, name, created_at, "
                             "producer_kind, producer_id) VALUES ('p','b','n',now(),'u','x')")
    # only the registration's own event is there
    assert [e.name for e in reader.events()] == ["model.fraud_model.new_instance"]


def test_password_is_never_shown_and_wrong_one_is_one_clear_error(postgres_server):
    database = postgres_server.create_database()
    good = postgres_server.url(database, SECRET_USER, SECRET_PASSWORD)
    reg = PostgresRegistry(good)
    reg.register(MODEL, kind="artifact", created_by=ME)
    assert SECRET_PASSWORD not in reg.url and reg.url.startswith(f"postgresql://{SECRET_USER}@")
    done = cli("assets", "list", url=good)
    assert done.returncode == 0, done.stderr
    assert SECRET_PASSWORD not in done.stdout + done.stderr

    failures_before = postgres_server.log.read_text().count("password authentication failed")
    bad = postgres_server.url(database, SECRET_USER, "wrong")
    done = cli("assets", "list", url=bad)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "wrong" not in done.stderr
    assert done.stderr.startswith(
        f"flowpolicy: error: cannot connect to the registry server postgresql://{SECRET_USER}@")
    assert "password authentication failed" in done.stderr
    assert done.stderr.count("\n") == 1
    time.sleep(0.2)  # the server writes its log asynchronously
    # no retry storm: the server saw one attempt
    failures = postgres_server.log.read_text().count("password authentication failed")
    assert failures - failures_before == 1


def test_server_that_is_down_is_one_clear_error(tmp_path):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = cli("events", url=f"postgresql://nobody@127.0.0.1:{port}/registry")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1
    assert f"cannot connect to the registry server postgresql://nobody@127.0.0.1:{port}/" \
           "registry" in done.stderr
    assert "Connection refused" in done.stderr


# -- faults ------------------------------------------------------------------------------


def test_server_restart_between_two_registrations(postgres_server, postgres_url):
    reg = PostgresRegistry(postgres_url)
    assert reg.register(MODEL, kind="artifact", created_by=ME).id == "v1"
    first_backend = reg._conn.info.backend_pid
    postgres_server.restart()
    assert reg.register(MODEL, kind="artifact", created_by=ME).id == "v2"
    assert reg._conn.info.backend_pid != first_backend  # a new connection, made quietly
    assert [r.id for r in reg.instances(MODEL)] == ["v2", "v1"]
    postgres_server.restart()
    assert reg.resolve(MODEL).id == "v2"  # reads too


def _terminate(conn: psycopg.Connection, admin_url: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)",
                             (conn.info.backend_pid,)).fetchone()[0]
    deadline = time.monotonic() + 10
    while not backend_module._dropped(conn) and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.mark.parametrize("when, message", [
    ("inside", "in the middle of a write; the server rolled it back, nothing of it was written"),
    ("at commit", "while committing a write .*it may or may not have been applied"),
])
def test_connection_killed_inside_a_transaction(postgres_url, monkeypatch, when, message):
    reg = PostgresRegistry(postgres_url)
    for _ in range(5):
        reg.register(MODEL, kind="artifact", created_by=ME)
    reg.set_alias(MODEL, "production", "v5", by=ME)
    original = PostgresRegistry._write

    @contextmanager
    def killed(self, **kwargs):
        with original(self, **kwargs) as conn:
            if when == "inside":  # BEGIN sent, no statement of the write yet
                _terminate(conn, postgres_url)
            yield conn
            if when == "at commit":  # every statement ran; COMMIT comes next
                _terminate(conn, postgres_url)

    monkeypatch.setattr(PostgresRegistry, "_write", killed)
    for write in (lambda: reg.register(MODEL, kind="artifact", created_by=ME),
                  lambda: reg.set_alias(MODEL, "production", "v1", by=ME)):
        with pytest.raises(RegistryError, match=message) as raised:
            write()
        assert raised.value.exit_code == 2
    monkeypatch.setattr(PostgresRegistry, "_write", original)

    after = PostgresRegistry(postgres_url)
    assert after.integrity_problems() == []
    assert [r.version for r in after.instances(MODEL)] == [5, 4, 3, 2, 1]
    assert after.resolve(MODEL, "@production").version == 5
    assert len(after.alias_history(MODEL)) == 1
    # the same object goes on with a new connection
    assert reg.register(MODEL, kind="artifact", created_by=ME).id == "v6"
    reg.set_alias(MODEL, "production", "v6", by=ME, expected="v5")


def test_connection_killed_between_operations_is_replaced(postgres_url):
    reg = PostgresRegistry(postgres_url)
    reg.register(MODEL, kind="artifact", created_by=ME)
    _terminate(reg._conn, postgres_url)
    assert reg.resolve(MODEL).id == "v1"
    assert reg.register(MODEL, kind="artifact", created_by=ME).id == "v2"


def test_damaged_pages_are_a_registry_damaged_error(postgres_server, postgres_url):
    reg = PostgresRegistry(postgres_url)
    for _ in range(3):
        reg.register(MODEL, kind="artifact", created_by=ME)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        relation = conn.execute(
            "SELECT pg_relation_filepath('flowpolicy.instances')").fetchone()[0]
    reg.close()
    postgres_server.stop()
    with (postgres_server.data / relation).open("r+b") as handle:
        handle.write(bytes((i * 37 + 11) % 256 for i in range(8192)))
    postgres_server.start()
    damaged = PostgresRegistry(postgres_url, read_only=True)
    for call in (lambda r: r.resolve(MODEL), lambda r: r.instances(MODEL)):
        with pytest.raises(RegistryDamaged, match=(
                "registry postgresql://.* is damaged \\(invalid page in block 0 of relation "
                ".*\\); it was left untouched")):
            call(damaged)
    done = cli("assets", "show", "fraud_model", "--project", "fraud", url=postgres_url)
    assert done.returncode == 2 and "is damaged" in done.stderr
    assert "Traceback" not in done.stderr


# -- events ------------------------------------------------------------------------------


def test_follower_is_woken_by_notify_not_by_polling(postgres_url, monkeypatch):
    publisher = PostgresRegistry(postgres_url)
    first = publisher.publish_event("fraud", "dev", "first", None, ME)
    follower = PostgresRegistry(postgres_url, read_only=True)
    looks = []
    newest = PostgresRegistry.newest_event_id
    monkeypatch.setattr(PostgresRegistry, "newest_event_id",
                        lambda self: looks.append(1) or newest(self))
    publishing = threading.Timer(0.5, publisher.publish_event,
                                 ("fraud", "dev", "second", {"n": 2}, ME))
    publishing.start()
    try:
        assert follower.wait_for_events(first.id, timeout=60) is True
    finally:
        publishing.join()
    assert [e.name for e in follower.events(after=first.id)] == ["second"]
    assert len(looks) <= 3  # once before waiting, once per notification: no polling loop
    looks.clear()
    assert follower.wait_for_events(first.id + 1, timeout=0.3) is False


def test_event_ids_appear_in_commit_order(postgres_url):
    """A publisher whose transaction is slow to commit holds the next id back: when a later
    publisher's event is visible, every event with a smaller id is visible too, so a follower
    reading ``id > cursor`` never skips one."""
    slow, fast = PostgresRegistry(postgres_url), PostgresRegistry(postgres_url)
    slow.publish_event("fraud", "dev", "setup", None, ME)
    original = slow._write
    stalled = threading.Event()

    @contextmanager
    def slow_commit(**kwargs):
        with original(**kwargs) as conn:
            yield conn
            stalled.set()
            time.sleep(1.0)

    slow._write = slow_commit
    thread = threading.Thread(target=slow.publish_event, args=("fraud", "dev", "slow", None, ME))
    thread.start()
    assert stalled.wait(30)
    fast_event = fast.publish_event("fraud", "dev", "fast", None, ME)
    seen = {e.name: e.id for e in fast.events()}
    thread.join()
    assert "slow" in seen and seen["slow"] < fast_event.id


def test_forked_child_leaves_the_parents_connection_alone(postgres_url):
    reg = PostgresRegistry(postgres_url)
    reg.register(MODEL, kind="artifact", created_by=ME)
    pid = reg._conn.info.backend_pid
    child = os.fork()
    if child == 0:  # the child registers through the same object, then exits
        code = 1
        try:
            code = 0 if reg.register(MODEL, kind="artifact", created_by=ME).id == "v2" else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert reg.register(MODEL, kind="artifact", created_by=ME).id == "v3"
    assert reg._conn.info.backend_pid == pid  # still the parent's own connection
