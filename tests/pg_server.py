"""A throwaway PostgreSQL 15 server for the tests: one per test session (per pytest-xdist
worker), listening only on 127.0.0.1 on a free port, its data in a temporary folder, stopped
and removed at the end. ``initdb`` and ``pg_ctl`` refuse root, so as root they run as the
unprivileged ``postgres`` user (``runuser``); the tests connect as the server's superuser,
named after the user running them, with trust authentication, except ``secret_user``,
whose password is checked (scram-sha-256).

Where the server binaries (or psycopg) are missing, the fixtures skip with the reason;
``FLOWPOLICY_TEST_POSTGRES=require`` (set by ``.ci/run``) makes that a failure instead.
This module holds helpers only; it has no tests of its own (``bench/registry.py`` starts its
server with it too).
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

PG_BIN = Path(os.environ.get("FLOWPOLICY_PG_BIN", "/usr/lib/postgresql/15/bin"))
REQUIRE = os.environ.get("FLOWPOLICY_TEST_POSTGRES") == "require"
SECRET_USER, SECRET_PASSWORD = "secret_user", "right-horse-battery"


def unavailable() -> str | None:
    """Why no test server can be started here, or None."""
    if not (PG_BIN / "initdb").is_file():
        return f"no PostgreSQL server binaries in {PG_BIN} (set FLOWPOLICY_PG_BIN)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install -e '.[dev]')"
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run initdb/pg_ctl as"
    return None


def skip_or_fail() -> None:
    import pytest  # here, so benchmarks can start a server without pytest installed

    reason = unavailable()
    if reason is None:
        return
    if REQUIRE:
        pytest.fail(f"FLOWPOLICY_TEST_POSTGRES=require but {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL tests skipped: {reason}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """The running test server."""

    def __init__(self, *, durable: bool = False) -> None:
        #: durable: PostgreSQL's default fsync and commit settings (benchmarks); otherwise
        #: tests trade durability for speed (a crashed test server is thrown away anyway)
        self.durable = durable
        self.root = Path(tempfile.mkdtemp(prefix="flowpolicy-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.superuser = getpass.getuser()
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            shutil.chown(self.root, "postgres")
        self.port = 0

    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [*(["runuser", "-u", "postgres", "--"] if self.as_postgres else []), *argv]
        done = subprocess.run(command, cwd="/", capture_output=True, text=True, timeout=120)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}\n"
                               f"{self.log.read_text() if self.log.exists() else ''}")
        return done

    def start_new(self) -> None:
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U",
                  self.superuser, "-E", "UTF8", "--no-sync", "--no-instructions")
        (self.data / "pg_hba.conf").write_text(
            f"host all {SECRET_USER} 127.0.0.1/32 scram-sha-256\n"
            "host all all 127.0.0.1/32 trust\n"
            "local all all trust\n")
        for attempt in range(3):
            self.port = _free_port()
            try:
                self.start()
                break
            except RuntimeError:
                if attempt == 2:
                    raise
        admin = self.connect("postgres")
        admin.execute(f"CREATE ROLE {SECRET_USER} LOGIN PASSWORD '{SECRET_PASSWORD}'")
        admin.close()

    def start(self) -> None:
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                   f"-c unix_socket_directories={self.data} -c max_connections=200")
        if not self.durable:
            options += (" -c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                        "-c shared_buffers=32MB")
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o",
                  options, "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop",
                  check=False)

    def restart(self) -> None:
        self.stop()
        self.start()

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str, user: str | None = None, password: str | None = None) -> str:
        who = user or self.superuser
        if password is not None:
            who += f":{password}"
        return f"postgresql://{who}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str):
        import psycopg

        return psycopg.connect(self.url(database), autocommit=True)

    def create_database(self, prefix: str = "t") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        admin = self.connect("postgres")
        try:
            admin.execute(f"CREATE DATABASE {name} STRATEGY FILE_COPY")
            admin.execute(f"GRANT ALL ON DATABASE {name} TO {SECRET_USER}")
        finally:
            admin.close()
        return name

    def drop_database(self, name: str) -> None:
        admin = self.connect("postgres")
        try:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            admin.close()


def start_server(*, durable: bool = False) -> Server:
    server = Server(durable=durable)
    try:
        server.start_new()
    except BaseException:
        server.remove()
        raise
    return server
