"""The embedded registry: one SQLite file. This module holds the SQL that is SQLite's own
(numbered migrations, triggers, pragmas, the annotation look-up); the queries both SQL
backends share, and the Registry Protocol over them, are in :mod:`flowpolicy.registry.sql`.

Design notes (why, not what):

- WAL journal + ``synchronous=NORMAL``: readers never block the writer and a commit costs no
  fsync; a process killed at any point (even SIGKILL mid-transaction) leaves the last
  committed state, because SQLite rolls back an unfinished WAL transaction on next open.
  (A power cut may lose the last few commits, never consistency.)
- Every write is one ``BEGIN IMMEDIATE`` transaction: the write lock is taken up front, so the
  version number read from ``assets.latest_version`` and the instance inserted with it cannot
  interleave with another process; ``busy_timeout`` makes concurrent writers queue instead of
  failing.
- Each asset row carries its newest version number, and instances are keyed by
  ``(asset_id, version)``, aliases by ``(asset_id, alias)``: ``latest``, ``latest-N``, ``vN``
  and ``@alias`` are each one primary-key lookup, whatever the length of the history.
- Instances, alias history and evidence are append-only; triggers refuse UPDATE/DELETE.
- Migrations are numbered; ``PRAGMA user_version`` says which ran. ``PRAGMA application_id``
  marks the file as ours so a foreign database is refused, never altered.
- Opening only reads. The registry comes into being with the first registration or event
  (an alias move, evidence or consumption needs an asset, so a registry must exist), and an
  older schema is migrated by the first write. Reads never create or set up anything: a
  missing, zero-byte or empty file is a RegistryError naming the path (and how it was
  chosen), looked at again on each read, since another process may create it meanwhile.
- Race-free creation: what the file holds is read in one read transaction (one snapshot,
  never half of another process's set-up), and checked again under the write lock of the
  transaction that sets the schema up, together with the first write.
- Damage: every query runs through one guard that turns SQLite's "malformed" / "not a
  database" (and a stored JSON value that no longer parses) into RegistryDamaged, so no
  caller sees a raw sqlite3 traceback; a write that meets damage is rolled back, so the file
  is left as it was.
- ``read_only=True`` (``flowpolicy check`` / ``plan``) opens ``file:…?mode=ro``: no file or
  folder is created, nothing is migrated, no journal mode is set, and every write raises
  RegistryError. Older schema versions are read as they are (a table a later migration adds
  reads as empty: a version-1 file has no evidence). Limits: the database file is never
  written, but SQLite needs the ``-shm`` index to read a WAL database, so when ``-wal`` /
  ``-shm`` are missing it creates them next to the file (``-wal`` empty); they stay behind
  and the next writer uses and removes them as usual. In a folder the reader cannot write,
  reading works while those files exist (even read-only ones, SQLite >= 3.22) and fails
  with a RegistryError saying so when they are missing.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn

from flowpolicy.errors import RegistryError
from flowpolicy.registry.base import AssetNotFound, RegistryDamaged
from flowpolicy.registry.sql import (
    OLDEST_READABLE_VERSION,
    TABLES,
    SQLRegistry,
    build_statements,
    create_table,
)

#: "flpo": marks a SQLite file as a flowpolicy registry.
APPLICATION_ID = 0x666C706F
_SQLITE_MAGIC = b"SQLite format 3\x00"
_BUSY_TIMEOUT_S = 60.0
_CACHE_KIB = 32 * 1024
_MMAP_BYTES = 256 * 1024 * 1024
#: How often a follower looks at the file for new events (SQLite cannot notify another
#: process): each look is one max(id) probe of the events' primary key, and a dispatcher
#: waiting on it should start a flow well within 100 ms of its event.
_EVENT_POLL_S = 0.01

#: SQLite's column types in the CREATE TABLE statements both backends share (no boolean:
#: ``passed`` is an INTEGER held to 0 or 1).
_TYPES: Mapping[str, str] = MappingProxyType({
    "key": "INTEGER PRIMARY KEY", "bigint": "INTEGER", "int": "INTEGER", "real": "REAL",
    "text": "TEXT", "json": "TEXT", "time": "TEXT", "bool": "INTEGER",
    "passed_check": " CHECK (passed IN (0, 1))", "without_rowid": " WITHOUT ROWID",
})


def _refuse(name: str, table: str, event: str, message: str) -> str:
    return (f"CREATE TRIGGER {name} BEFORE {event} ON {table}\n"
            f"       BEGIN SELECT RAISE(ABORT, '{message}'); END")


#: Alias history's index and triggers: created by migrations 1 and 2, again by 4's rebuild.
_ALIAS_HISTORY_INDEX = "CREATE INDEX alias_history_by_alias ON alias_history (asset_id, alias, id)"
_ALIAS_HISTORY_NO_UPDATE = _refuse("alias_history_append_only", "alias_history", "UPDATE",
                                   "alias history is append-only")
_ALIAS_HISTORY_NO_DELETE = _refuse("alias_history_no_delete", "alias_history", "DELETE",
                                   "alias history is append-only")

_V1 = (
    create_table("assets", _TYPES),
    create_table("instances", _TYPES),
    create_table("aliases", _TYPES),
    create_table("alias_history", _TYPES),
    _ALIAS_HISTORY_INDEX,
    create_table("consumptions", _TYPES),
    "CREATE INDEX consumptions_by_instance ON consumptions (asset_id, version)",
    create_table("events", _TYPES),
    _refuse("instances_immutable_update", "instances", "UPDATE",
            "asset instances are immutable"),
    _refuse("instances_immutable_delete", "instances", "DELETE",
            "asset instances are immutable"),
    _ALIAS_HISTORY_NO_UPDATE,
)

_V2 = (
    create_table("evidence", _TYPES),
    "CREATE INDEX evidence_by_instance ON evidence (asset_id, version, kind, id)",
    _refuse("evidence_append_only_update", "evidence", "UPDATE", "evidence is append-only"),
    _refuse("evidence_append_only_delete", "evidence", "DELETE", "evidence is append-only"),
    _ALIAS_HISTORY_NO_DELETE,
    "CREATE INDEX events_by_scope ON events (project, branch, name, id)",
)

_V3 = (
    create_table("asset_deletions", _TYPES),
    "CREATE INDEX asset_deletions_by_asset ON asset_deletions (asset_id, through_version)",
    _refuse("asset_deletions_append_only_update", "asset_deletions", "UPDATE",
            "asset deletions are append-only"),
    _refuse("asset_deletions_append_only_delete", "asset_deletions", "DELETE",
            "asset deletions are append-only"),
)

#: Alias history records unsets too (``to_version`` NULL). SQLite cannot drop a NOT NULL
#: constraint in place, so the table is rebuilt with its rows (ids kept), index and triggers;
#: dropping the old table fires no trigger.
_V4 = (
    """CREATE TABLE alias_history_rebuilt (
        id           INTEGER PRIMARY KEY,
        asset_id     INTEGER NOT NULL REFERENCES assets (id),
        alias        TEXT NOT NULL,
        from_version INTEGER,
        to_version   INTEGER,
        by_kind      TEXT NOT NULL,
        by_id        TEXT NOT NULL,
        at           TEXT NOT NULL,
        reason       TEXT
    )""",
    "INSERT INTO alias_history_rebuilt SELECT id, asset_id, alias, from_version, to_version, "
    "by_kind, by_id, at, reason FROM alias_history",
    "DROP TABLE alias_history",
    "ALTER TABLE alias_history_rebuilt RENAME TO alias_history",
    _ALIAS_HISTORY_INDEX,
    _ALIAS_HISTORY_NO_UPDATE,
    _ALIAS_HISTORY_NO_DELETE,
)

#: Migration 5: what ``flowpolicy dispatch`` decided. One row per (event, flow), so a start
#: is claimed once however many dispatchers race; the state only moves forward.
_V5 = (
    create_table("dispatches", _TYPES),
    "CREATE INDEX dispatches_by_state ON dispatches (state, lease_until)",
    """CREATE TRIGGER dispatches_forward_only BEFORE UPDATE ON dispatches
       WHEN OLD.state = 'finished' OR (OLD.state = 'started' AND NEW.state = 'claimed')
            OR NEW.event_id != OLD.event_id OR NEW.flow != OLD.flow
       BEGIN SELECT RAISE(ABORT, 'a dispatch only moves forward'); END""",
    _refuse("dispatches_kept", "dispatches", "DELETE", "dispatch records are kept"),
    create_table("cursors", _TYPES),
)

#: Numbered schema migrations; ``MIGRATIONS[n]`` takes a file from version n to n+1.
#: Never edit a released migration: append a new one (in both SQL backends).
MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _V2, _V3, _V4, _V5)
SCHEMA_VERSION = len(MIGRATIONS)

_SQL = build_statements(
    "?",
    has_annotation=(
        " AND EXISTS (SELECT 1 FROM json_each(i.annotations) WHERE key = ? AND value = ?)"),
)


#: SQLite's primary result codes for a damaged file: SQLITE_CORRUPT, SQLITE_NOTADB.
_DAMAGE_CODES = frozenset({11, 26})
_DAMAGE_MESSAGES = ("database disk image is malformed", "file is not a database")


class SQLiteRegistry(SQLRegistry):
    """A registry in one SQLite file; one instance (one connection) per process suffices.

    Opening only reads: a missing or zero-byte file is left as it is (reads raise
    RegistryError naming the path) until the first ``register``, ``register_once`` or
    ``publish_event`` creates the registry, and an older schema is migrated by the first
    write. A file holding anything else is refused at once and never written.

    With ``read_only=True`` the file is opened with SQLite's ``mode=ro`` and must already be
    a registry: never created, migrated or written (see the module notes for the ``-shm``
    limit). ``origin`` says how the path was chosen (e.g. ``named by FLOWPOLICY_REGISTRY``),
    for the message when no registry is there.
    """

    def __init__(self, path: str | os.PathLike, *, busy_timeout: float = _BUSY_TIMEOUT_S,
                 read_only: bool = False, origin: str | None = None):
        self.path = Path(path).expanduser().resolve()
        self.url = f"sqlite:///{self.path}"
        self._location = str(self.path)
        self.read_only = read_only
        self.origin = origin
        self._busy_timeout = busy_timeout
        self._lock = threading.RLock()
        self._forget_connection()
        self._first_look()

    _sql = _SQL
    _driver_error = sqlite3.Error

    def _forget_connection(self) -> None:
        self._conn: sqlite3.Connection | None = None
        self._schema: int | None = None
        self._readable = False
        #: WAL on and the schema current, checked under the write lock: writes just write
        self._writes_ready = False
        self._has_evidence = False
        self._has_deletions = False
        self._has_dispatch = False

    # -- opening ------------------------------------------------------------------------

    def _connect(self, mode: str) -> sqlite3.Connection:
        """A connection with ``mode`` ``ro``, ``rw`` (never creates the file) or ``rwc``
        (only for the write that creates the registry)."""
        try:
            # a URI, percent-encoded by as_uri(), so a '?' or '#' in the path stays a path
            conn = sqlite3.connect(
                f"{self.path.as_uri()}?mode={mode}",
                uri=True,
                timeout=self._busy_timeout,
                isolation_level=None,  # we issue BEGIN IMMEDIATE / COMMIT ourselves
                check_same_thread=False,
                cached_statements=128,
            )
        except sqlite3.Error as exc:
            raise RegistryError(f"cannot open registry {self.path}: {exc}") from exc
        if mode != "ro":
            conn.execute("PRAGMA synchronous = NORMAL")
        # reads of a large history served from memory, not one pread() per page miss
        conn.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
        conn.execute(f"PRAGMA mmap_size = {_MMAP_BYTES}")
        _opened(self.path, +1)
        return conn

    def _connect_existing(self) -> None:
        """Connect to the file if it holds SQLite data and learn what it holds; a missing or
        zero-byte file is left alone (only a write may create a registry)."""
        if self._conn is None:
            if not _holds_sqlite_data(self.path):
                return
            self._conn = self._connect("ro" if self.read_only else "rw")
        conn = self._conn
        # one read transaction, so one consistent snapshot: another process may be setting
        # the file up at this very moment, and separate reads could see half of that
        conn.execute("BEGIN")
        try:
            self._schema = self._identify(conn)
            tables = self._tables_present(conn)
        finally:
            conn.execute("ROLLBACK")
        self._readable = self._schema is not None and self._schema >= OLDEST_READABLE_VERSION
        self._has_evidence = "evidence" in tables  # added by migration 2
        self._has_deletions = "asset_deletions" in tables  # added by migration 3
        self._has_dispatch = "dispatches" in tables  # added by migration 5

    def _identify(self, conn: sqlite3.Connection) -> int | None:
        """Inside a transaction: the schema version of our registry, None for an empty
        database (ours to set up); raises for a foreign or newer database."""
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        user_version = conn.execute("PRAGMA user_version").fetchone()[0]
        if app_id == APPLICATION_ID:
            if user_version > SCHEMA_VERSION:
                raise self._too_new(user_version, SCHEMA_VERSION)
            return user_version
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') ORDER BY name")]
        if app_id == 0 and user_version == 0 and not tables:
            return None
        shown = ", ".join(tables[:8]) or "none"
        raise RegistryError(
            f"{self.path} is a SQLite database but not a flowpolicy registry "
            f"(application_id={app_id:#x}, user_version={user_version}, tables: {shown}); "
            "it was left untouched — point FLOWPOLICY_REGISTRY elsewhere"
        )

    def _read_connection(self) -> sqlite3.Connection:
        """The connection for a read. Until the file holds a readable registry it is looked
        at again on every read (another process may have created it since)."""
        if not self._readable:
            self._connect_existing()
            if not self._readable:
                raise self._unreadable()
        return self._conn

    def _unreadable(self) -> RegistryError:
        """Why there is nothing to read: no file, an empty one, or a schema too old."""
        if self._schema is not None:
            return super()._unreadable()
        where = f" ({self.origin})" if self.origin else ""
        if self._conn is not None:
            what = f"{self.path}{where} is an empty SQLite database, not yet a flowpolicy registry"
        elif self.path.exists():
            what = f"{self.path}{where} is an empty file, not yet a flowpolicy registry"
        else:
            what = f"no registry at {self.path}{where}"
        return AssetNotFound(
            f"{what}; nothing to read (a read never creates a registry: the first "
            "registration or event does). If assets were expected, point FLOWPOLICY_REGISTRY "
            "(or --registry) at the file the flows write to, or run from the project folder")

    def _raise_failure(self, exc: Exception) -> NoReturn:
        """Raise what a user should see for ``exc`` from SQLite (or from decoding a stored
        value): RegistryDamaged for a damaged file, RegistryError for one that cannot be
        read or written now; anything else (a flowpolicy bug) as it is."""
        if _is_damage(exc):
            raise RegistryDamaged(
                f"registry {self.path} is damaged ({exc}); it was left untouched — restore it "
                f"from a backup, or salvage what is readable with `sqlite3 {self.path} .recover "
                "| sqlite3 recovered.db`") from exc
        if isinstance(exc, sqlite3.OperationalError):
            hint = ""
            if self.read_only and "readonly" in str(exc):
                hint = (f"; reading a WAL database needs {self.path.name}-shm and "
                        f"{self.path.name}-wal next to it, and the folder does not let SQLite "
                        "create them: run it as a user who may write that folder, or on a copy")
            raise RegistryError(f"registry {self.path}: {exc}{hint}", status_code=503) from exc
        raise exc

    # -- writing ------------------------------------------------------------------------

    def _prepare_writes(self, creates: bool) -> sqlite3.Connection:
        """Connect for the first write and turn WAL on; :meth:`_claim` then sets the schema
        up inside the write transaction. Only a write that ``creates`` (a registration or an
        event) may bring a registry into being; the others need an asset that exists."""
        self._connect_existing()
        if self._schema is None and not creates:
            raise self._unreadable()
        if self._conn is None:  # missing or zero bytes: this write creates the registry
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = self._connect("rwc")
        self._enable_wal(self._conn)
        return self._conn

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
            return
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                # switching journal mode needs a moment alone with a brand-new file
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _claim(self, conn: sqlite3.Connection) -> None:
        """Under the write lock, before the first write: look at the file again (another
        process may have set it up, or written something foreign into it, since we did),
        then set the schema up or migrate it, in the same transaction as the write."""
        version = self._identify(conn)
        if version is None:
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            version = 0
        for number in range(version, SCHEMA_VERSION):
            for statement in MIGRATIONS[number]:
                conn.execute(statement)
        if version != SCHEMA_VERSION:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _schema_version(self, conn: sqlite3.Connection) -> int:
        return conn.execute("PRAGMA user_version").fetchone()[0]

    @contextmanager
    def _write(self, *, creates: bool = False) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction; ``creates``: see :meth:`_prepare_writes`."""
        if self.read_only:
            raise RegistryError(
                f"registry {self.path} was opened read-only (as flowpolicy check and plan "
                "open it): writes are refused", status_code=403)
        with self._lock:
            try:
                conn = self._conn if self._writes_ready else self._prepare_writes(creates)
                try:
                    conn.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError as exc:
                    raise RegistryError(
                        f"registry {self.path} is not writable now: {exc}",
                        status_code=503) from exc
                try:
                    if not self._writes_ready:
                        self._claim(conn)
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                self._raise_failure(exc)
            if not self._writes_ready:
                self._first_write_committed(SCHEMA_VERSION)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                _opened(self.path, -1)
            self._forget_connection()

    def wait_for_events(self, after: int, timeout: float) -> bool:
        """SQLite cannot notify another process: this looks every 10 ms."""
        return self._wait_for_events(after, timeout,
                                     lambda left: time.sleep(min(_EVENT_POLL_S, left)))

    # -- maintenance --------------------------------------------------------------------

    def integrity_problems(self) -> list[str]:
        """SQLite's integrity check plus flowpolicy's own invariants; empty means healthy."""
        with self._reading() as conn:
            problems = [r[0] for r in conn.execute("PRAGMA integrity_check") if r[0] != "ok"]
        return problems + super().integrity_problems()

    def _describe(self, conn: sqlite3.Connection) -> dict[str, Any]:
        files = [self.path, self.path.with_name(self.path.name + "-wal")]
        return {"backend": "sqlite", "location": str(self.path),
                "server": f"SQLite {sqlite3.sqlite_version}",
                "schema_version": self._schema_version(conn),
                "current_schema_version": SCHEMA_VERSION,
                "bytes": sum(f.stat().st_size for f in files if f.exists())}

    # -- whole-registry copies ----------------------------------------------------------

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        with self._reading() as conn:
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("ROLLBACK")

    def _tables_present(self, conn: sqlite3.Connection) -> set[str]:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def _replace_everything(self, conn: sqlite3.Connection) -> None:
        for table in self._tables_present(conn) & set(TABLES):
            conn.execute(f"DROP TABLE {table}")  # its indexes and triggers go with it
        conn.execute("PRAGMA user_version = 0")
        self._claim(conn)

    def change_probe(self) -> DataVersionProbe:
        """A :class:`~flowpolicy.registry.base.ChangeProbe` on a read-only connection of its
        own (so this handle's own writes count too)."""
        return DataVersionProbe(self.path)


class DataVersionProbe:
    """SQLite's ``PRAGMA data_version`` on a private read-only connection: it changes when
    any other connection commits, and costs no table read, so a follower can call it every
    few milliseconds. Not thread-safe: one follower thread calls it."""

    def __init__(self, path: Path):
        self._path = path
        try:
            self._conn = sqlite3.connect(path.as_uri() + "?mode=ro", uri=True,
                                         timeout=_BUSY_TIMEOUT_S, isolation_level=None,
                                         check_same_thread=False)
            self._conn.execute("PRAGMA data_version").fetchone()
        except sqlite3.Error as exc:
            raise RegistryError(f"cannot follow registry {path}: {exc}") from exc
        _opened(path, +1)

    def __call__(self) -> int:
        try:
            return self._conn.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error as exc:
            raise RegistryError(f"cannot follow registry {self._path}: {exc}") from exc

    def close(self) -> None:
        self._conn.close()
        _opened(self._path, -1)


#: SQLite connections this process has open, per database file. POSIX drops every lock a
#: process holds on a file when it closes *any* descriptor of it, so reading a file's head
#: with open()/close() while SQLite has it open here would cancel SQLite's locks: another
#: process could then checkpoint and reset the WAL under this one's feet, and its reads
#: return pages of the wrong table (seen: a second handle on one registry in one process).
_open_connections: dict[Path, int] = {}
_open_connections_lock = threading.Lock()


def _opened(path: Path, change: int) -> None:
    with _open_connections_lock:
        count = _open_connections.get(path, 0) + change
        if count > 0:
            _open_connections[path] = count
        else:
            _open_connections.pop(path, None)


def _is_damage(exc: Exception) -> bool:
    """Whether ``exc`` says the file's contents are damaged (not busy, not unwritable)."""
    if isinstance(exc, json.JSONDecodeError):
        return True  # a stored value that flowpolicy wrote as JSON no longer parses
    if not isinstance(exc, sqlite3.DatabaseError) or isinstance(exc, sqlite3.IntegrityError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)  # Python >= 3.11
    if code is not None:
        return code & 0xFF in _DAMAGE_CODES
    return str(exc) in _DAMAGE_MESSAGES


def _holds_sqlite_data(path: Path) -> bool:
    """Whether ``path`` holds data for SQLite to read; False when it is missing or empty
    (nothing to read yet). Raises, without opening it through SQLite, for a directory or a
    file that is something else.

    A head of zero bytes is left to SQLite: another process may be writing the first page
    of a new registry this very instant (a read without SQLite's locks can see the file
    grown before its bytes arrive), and SQLite, reading under its locks, then sees the whole
    page, or refuses a file that really is all zeros as "not a database"."""
    with _open_connections_lock:
        if path in _open_connections:  # SQLite reads it here already: no open()/close()
            return True
    try:
        with path.open("rb") as handle:
            head = handle.read(len(_SQLITE_MAGIC))
    except FileNotFoundError:
        return False
    except IsADirectoryError as exc:
        raise RegistryError(f"registry path {path} is a directory, not a file") from exc
    except OSError as exc:
        raise RegistryError(f"cannot read registry {path}: {exc}") from exc
    if head != _SQLITE_MAGIC and head.strip(b"\0"):
        raise RegistryError(
            f"{path} exists but is not a SQLite database (corrupt or foreign file); "
            "it was left untouched — move it away or point FLOWPOLICY_REGISTRY elsewhere"
        )
    return bool(head)
