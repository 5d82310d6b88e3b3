"""The embedded registry: one SQLite file. All of flowpolicy's SQL lives in this module.

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
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn

from flowpolicy.errors import RegistryError
from flowpolicy.registry.base import (
    ANY,
    EVIDENCE_KINDS,
    AliasConflict,
    AliasMove,
    AssetDeletion,
    AssetNotFound,
    AssetSummary,
    Consumption,
    EntityRef,
    EventRecord,
    EvidenceRecord,
    InstanceRecord,
    InstanceSpec,
    RegistryDamaged,
    Scope,
    parse_spec,
    stringify,
    utc_now,
    validate_alias,
    version_range,
)

#: "flpo": marks a SQLite file as a flowpolicy registry.
APPLICATION_ID = 0x666C706F
_SQLITE_MAGIC = b"SQLite format 3\x00"
_BUSY_TIMEOUT_S = 60.0
_CACHE_KIB = 32 * 1024
_MMAP_BYTES = 256 * 1024 * 1024

_V1 = (
    """CREATE TABLE assets (
        id             INTEGER PRIMARY KEY,
        project        TEXT NOT NULL,
        branch         TEXT NOT NULL,
        asset_type     TEXT NOT NULL CHECK (asset_type IN ('data', 'model')),
        name           TEXT NOT NULL,
        description    TEXT NOT NULL DEFAULT '',
        latest_version INTEGER NOT NULL,
        created_at     TEXT NOT NULL,
        updated_at     TEXT NOT NULL,
        UNIQUE (project, branch, asset_type, name)
    )""",
    """CREATE TABLE instances (
        asset_id        INTEGER NOT NULL REFERENCES assets (id),
        version         INTEGER NOT NULL CHECK (version >= 1),
        kind            TEXT NOT NULL,
        description     TEXT NOT NULL DEFAULT '',
        annotations     TEXT NOT NULL,
        tags            TEXT NOT NULL,
        blobs           TEXT NOT NULL,
        created_at      TEXT NOT NULL,
        created_by_kind TEXT NOT NULL,
        created_by_id   TEXT NOT NULL,
        PRIMARY KEY (asset_id, version)
    ) WITHOUT ROWID""",
    """CREATE TABLE aliases (
        asset_id   INTEGER NOT NULL REFERENCES assets (id),
        alias      TEXT NOT NULL,
        version    INTEGER NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (asset_id, alias)
    ) WITHOUT ROWID""",
    """CREATE TABLE alias_history (
        id           INTEGER PRIMARY KEY,
        asset_id     INTEGER NOT NULL REFERENCES assets (id),
        alias        TEXT NOT NULL,
        from_version INTEGER,
        to_version   INTEGER NOT NULL,
        by_kind      TEXT NOT NULL,
        by_id        TEXT NOT NULL,
        at           TEXT NOT NULL,
        reason       TEXT
    )""",
    "CREATE INDEX alias_history_by_alias ON alias_history (asset_id, alias, id)",
    """CREATE TABLE consumptions (
        id            INTEGER PRIMARY KEY,
        asset_id      INTEGER NOT NULL REFERENCES assets (id),
        version       INTEGER NOT NULL,
        consumer_kind TEXT NOT NULL,
        consumer_id   TEXT NOT NULL,
        at            TEXT NOT NULL
    )""",
    "CREATE INDEX consumptions_by_instance ON consumptions (asset_id, version)",
    """CREATE TABLE events (
        id            INTEGER PRIMARY KEY,
        project       TEXT NOT NULL,
        branch        TEXT NOT NULL,
        name          TEXT NOT NULL,
        payload       TEXT,
        created_at    TEXT NOT NULL,
        producer_kind TEXT NOT NULL,
        producer_id   TEXT NOT NULL
    )""",
    """CREATE TRIGGER instances_immutable_update BEFORE UPDATE ON instances
       BEGIN SELECT RAISE(ABORT, 'asset instances are immutable'); END""",
    """CREATE TRIGGER instances_immutable_delete BEFORE DELETE ON instances
       BEGIN SELECT RAISE(ABORT, 'asset instances are immutable'); END""",
    """CREATE TRIGGER alias_history_append_only BEFORE UPDATE ON alias_history
       BEGIN SELECT RAISE(ABORT, 'alias history is append-only'); END""",
)

_V2 = (
    """CREATE TABLE evidence (
        id              INTEGER PRIMARY KEY,
        asset_id        INTEGER NOT NULL REFERENCES assets (id),
        version         INTEGER NOT NULL,
        kind            TEXT NOT NULL,
        rule            TEXT NOT NULL,
        passed          INTEGER NOT NULL CHECK (passed IN (0, 1)),
        policy_hash     TEXT,
        details         TEXT NOT NULL,
        created_at      TEXT NOT NULL,
        created_by_kind TEXT NOT NULL,
        created_by_id   TEXT NOT NULL
    )""",
    "CREATE INDEX evidence_by_instance ON evidence (asset_id, version, kind, id)",
    """CREATE TRIGGER evidence_append_only_update BEFORE UPDATE ON evidence
       BEGIN SELECT RAISE(ABORT, 'evidence is append-only'); END""",
    """CREATE TRIGGER evidence_append_only_delete BEFORE DELETE ON evidence
       BEGIN SELECT RAISE(ABORT, 'evidence is append-only'); END""",
    """CREATE TRIGGER alias_history_no_delete BEFORE DELETE ON alias_history
       BEGIN SELECT RAISE(ABORT, 'alias history is append-only'); END""",
    "CREATE INDEX events_by_scope ON events (project, branch, name, id)",
)

_V3 = (
    """CREATE TABLE asset_deletions (
        id              INTEGER PRIMARY KEY,
        asset_id        INTEGER NOT NULL REFERENCES assets (id),
        through_version INTEGER NOT NULL,
        aliases         TEXT NOT NULL,
        by_kind         TEXT NOT NULL,
        by_id           TEXT NOT NULL,
        at              TEXT NOT NULL,
        reason          TEXT
    )""",
    "CREATE INDEX asset_deletions_by_asset ON asset_deletions (asset_id, through_version)",
    """CREATE TRIGGER asset_deletions_append_only_update BEFORE UPDATE ON asset_deletions
       BEGIN SELECT RAISE(ABORT, 'asset deletions are append-only'); END""",
    """CREATE TRIGGER asset_deletions_append_only_delete BEFORE DELETE ON asset_deletions
       BEGIN SELECT RAISE(ABORT, 'asset deletions are append-only'); END""",
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
    "CREATE INDEX alias_history_by_alias ON alias_history (asset_id, alias, id)",
    """CREATE TRIGGER alias_history_append_only BEFORE UPDATE ON alias_history
       BEGIN SELECT RAISE(ABORT, 'alias history is append-only'); END""",
    """CREATE TRIGGER alias_history_no_delete BEFORE DELETE ON alias_history
       BEGIN SELECT RAISE(ABORT, 'alias history is append-only'); END""",
)

#: Numbered schema migrations; ``MIGRATIONS[n]`` takes a file from version n to n+1.
#: Never edit a released migration: append a new one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _V2, _V3, _V4)
SCHEMA_VERSION = len(MIGRATIONS)
#: The oldest schema a read-only handle reads without migrating. Raise it when a migration
#: changes a table or column readers rely on (adding a table or an index does not).
OLDEST_READABLE_VERSION = 1

_INSTANCE_COLUMNS = (
    "i.version, i.kind, i.description, i.annotations, i.tags, i.blobs, i.created_at, "
    "i.created_by_kind, i.created_by_id"
)
_SCOPE_WHERE = "a.project = ? AND a.branch = ? AND a.asset_type = ? AND a.name = ?"

_SQL_BY_BACK = (
    f"SELECT {_INSTANCE_COLUMNS} FROM assets a JOIN instances i "
    f"ON i.asset_id = a.id AND i.version = a.latest_version - ? WHERE {_SCOPE_WHERE}"
)
_SQL_BY_VERSION = (
    f"SELECT {_INSTANCE_COLUMNS} FROM assets a JOIN instances i "
    f"ON i.asset_id = a.id AND i.version = ? WHERE {_SCOPE_WHERE}"
)
_SQL_BY_ALIAS = (
    f"SELECT {_INSTANCE_COLUMNS} FROM assets a "
    f"JOIN aliases al ON al.asset_id = a.id AND al.alias = ? "
    f"JOIN instances i ON i.asset_id = a.id AND i.version = al.version WHERE {_SCOPE_WHERE}"
)
_SQL_ASSET = f"SELECT a.id, a.latest_version FROM assets a WHERE {_SCOPE_WHERE}"
_SQL_ALIAS_VERSION = "SELECT version FROM aliases WHERE asset_id = ? AND alias = ?"
_SQL_BUMP = (
    "INSERT INTO assets (project, branch, asset_type, name, description, latest_version, "
    "created_at, updated_at) VALUES (?, ?, ?, ?, ?, 1, ?, ?) "
    "ON CONFLICT (project, branch, asset_type, name) DO UPDATE SET "
    "latest_version = latest_version + 1, updated_at = excluded.updated_at, "
    "description = CASE WHEN excluded.description = '' THEN description "
    "ELSE excluded.description END "
    "RETURNING id, latest_version"
)
#: One more condition on an instance: its annotations hold key ? with value ? (register_once).
_SQL_HAS_ANNOTATION = (
    " AND EXISTS (SELECT 1 FROM json_each(i.annotations) WHERE key = ? AND value = ?)")
#: The newest version an asset's latest deletion took away (0: never deleted); instances up
#: to it are no longer read. The table exists from migration 3 on.
_SQL_FLOOR = ("coalesce((SELECT max(d.through_version) FROM asset_deletions d "
              "WHERE d.asset_id = a.id), 0)")
_SQL_LIVE_INSTANCE = f" AND i.version > {_SQL_FLOOR}"
_SQL_DELETIONS = (
    "SELECT d.through_version, d.aliases, d.by_kind, d.by_id, d.at, d.reason "
    f"FROM assets a JOIN asset_deletions d ON d.asset_id = a.id WHERE {_SCOPE_WHERE} "
    "ORDER BY d.id")
_SQL_INSERT_INSTANCE = (
    "INSERT INTO instances (asset_id, version, kind, description, annotations, tags, blobs, "
    "created_at, created_by_kind, created_by_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=_json_default)


def _json_default(value: Any) -> Any:
    # numpy scalars and arrays (drift statistics, metrics) arrive in evidence details
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


#: SQLite's primary result codes for a damaged file: SQLITE_CORRUPT, SQLITE_NOTADB.
_DAMAGE_CODES = frozenset({11, 26})
_DAMAGE_MESSAGES = ("database disk image is malformed", "file is not a database")


class SQLiteRegistry:
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
        self.read_only = read_only
        self.origin = origin
        self._busy_timeout = busy_timeout
        self._lock = threading.RLock()
        self._forget_connection()
        with self._lock:
            try:
                self._connect_existing()
                if read_only and not self._readable:
                    raise self._unreadable()
            except sqlite3.Error as exc:
                self.close()
                self._raise_failure(exc)
            except BaseException:
                self.close()
                raise

    def _forget_connection(self) -> None:
        self._conn: sqlite3.Connection | None = None
        #: the file's schema version; None: no registry there (yet)
        self._schema: int | None = None
        #: a registry this flowpolicy reads as it is
        self._readable = False
        #: WAL on and the schema current, checked under the write lock: writes just write
        self._writes_ready = False
        self._has_evidence = False
        self._has_deletions = False

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
            tables = {r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            conn.execute("ROLLBACK")
        self._readable = self._schema is not None and self._schema >= OLDEST_READABLE_VERSION
        self._has_evidence = "evidence" in tables  # added by migration 2
        self._has_deletions = "asset_deletions" in tables  # added by migration 3

    def _identify(self, conn: sqlite3.Connection) -> int | None:
        """Inside a transaction: the schema version of our registry, None for an empty
        database (ours to set up); raises for a foreign or newer database."""
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        user_version = conn.execute("PRAGMA user_version").fetchone()[0]
        if app_id == APPLICATION_ID:
            if user_version > SCHEMA_VERSION:
                raise RegistryError(
                    f"registry {self.path} has schema version {user_version}, newer than this "
                    f"flowpolicy understands ({SCHEMA_VERSION}); upgrade flowpolicy"
                )
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

    def _reader(self) -> sqlite3.Connection:
        """The connection for a read. Until the file holds a readable registry it is looked
        at again on every read (another process may have created it since)."""
        if not self._readable:
            self._connect_existing()
            if not self._readable:
                raise self._unreadable()
        return self._conn

    def _unreadable(self) -> RegistryError:
        """Why there is nothing to read: no file, an empty one, or a schema too old."""
        where = f" ({self.origin})" if self.origin else ""
        if self._schema is not None:
            return RegistryError(
                f"registry {self.path} has schema version {self._schema}, too old to read "
                f"without migrating it (oldest readable: {OLDEST_READABLE_VERSION}); the next "
                "write (a flow registering an asset) migrates it")
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

    @property
    def schema_version(self) -> int:
        with _Reading(self) as conn:
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
                self._writes_ready = self._readable = self._has_evidence = True
                self._has_deletions = True
                self._schema = SCHEMA_VERSION

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                _opened(self.path, -1)
            self._forget_connection()

    # -- instances ----------------------------------------------------------------------

    def register(
        self,
        scope: Scope,
        *,
        kind: str,
        created_by: EntityRef,
        description: str | None = None,
        annotations: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        blobs: Sequence[str] | None = None,
    ) -> InstanceRecord:
        record, _ = self._register(scope, None, kind, created_by, description, annotations,
                                   tags, blobs)
        return record

    def register_once(
        self,
        scope: Scope,
        key: Mapping[str, str],
        *,
        kind: str,
        created_by: EntityRef,
        description: str | None = None,
        annotations: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        blobs: Sequence[str] | None = None,
    ) -> tuple[InstanceRecord, bool]:
        return self._register(scope, key, kind, created_by, description, annotations, tags,
                              blobs)

    def _register(
        self, scope: Scope, key: Mapping[str, str] | None, kind: str, created_by: EntityRef,
        description: str | None, annotations: Mapping[str, Any] | None,
        tags: Mapping[str, Any] | None, blobs: Sequence[str] | None,
    ) -> tuple[InstanceRecord, bool]:
        """Append an instance, or (with ``key``) find the newest one whose annotations carry
        every key item, in the same write transaction; True when it was registered now."""
        if not kind or not isinstance(kind, str):
            raise RegistryError(f"{scope}: an instance needs a kind (e.g. 'artifact')")
        if isinstance(blobs, str):
            raise RegistryError(f"{scope}: blobs must be a list of URIs, not one string")
        ann = stringify(annotations, "annotations")
        tag = stringify(tags, "tags")
        blob_list = [str(b) for b in (blobs or ())]
        desc = description or ""
        now = utc_now()
        created_by = EntityRef.from_any(created_by)
        match = None
        if key is not None:
            match = stringify(key, "key")
            if not match or any(ann.get(k) != v for k, v in match.items()):
                raise RegistryError(
                    f"{scope}: register_once needs a non-empty key that is part of the "
                    f"annotations, not {match!r}")
        with self._write(creates=True) as conn:
            if match:
                sql = (f"SELECT {_INSTANCE_COLUMNS} FROM assets a JOIN instances i "
                       f"ON i.asset_id = a.id WHERE {_SCOPE_WHERE}{self._live()}"
                       + _SQL_HAS_ANNOTATION * len(match) + " ORDER BY i.version DESC LIMIT 1")
                row = conn.execute(
                    sql, (*_key(scope), *(part for item in match.items() for part in item))
                ).fetchone()
                if row is not None:
                    return _instance(scope, row), False
            asset_id, version = conn.execute(_SQL_BUMP, (*_key(scope), desc, now, now)).fetchone()
            conn.execute(
                _SQL_INSERT_INSTANCE,
                (asset_id, version, kind, desc, _json(ann), _json(tag), _json(blob_list), now,
                 created_by.entity_kind, created_by.entity_id),
            )
        return InstanceRecord(
            scope=scope, version=version, kind=kind, description=desc,
            annotations=MappingProxyType(ann), tags=MappingProxyType(tag),
            blobs=tuple(blob_list), created_at=now, created_by=created_by,
        ), True

    def resolve(self, scope: Scope, spec: str = "latest") -> InstanceRecord:
        parsed = parse_spec(spec)
        key = _key(scope)
        with _Reading(self) as conn:
            live = self._live()
            if parsed.back is not None:
                row = conn.execute(_SQL_BY_BACK + live, (parsed.back, *key)).fetchone()
            elif parsed.version is not None:
                row = conn.execute(_SQL_BY_VERSION + live, (parsed.version, *key)).fetchone()
            else:
                row = conn.execute(_SQL_BY_ALIAS + live, (parsed.alias, *key)).fetchone()
            if row is None:
                raise self._miss(conn, scope, parsed)
            return _instance(scope, row)

    def _live(self) -> str:
        """The condition that leaves out deleted instances (none before migration 3)."""
        return _SQL_LIVE_INSTANCE if self._has_deletions else ""

    def _floor(self, conn: sqlite3.Connection, asset_id: int) -> int:
        """The newest version deleted from ``asset_id`` (0: none)."""
        if not self._has_deletions:
            return 0
        return conn.execute("SELECT coalesce(max(through_version), 0) FROM asset_deletions "
                            "WHERE asset_id = ?", (asset_id,)).fetchone()[0]

    def _resolve_version(
        self, conn: sqlite3.Connection, scope: Scope, spec: str, *, deleted_ok: bool = False
    ) -> tuple[int, int]:
        """(asset_id, version) for ``spec`` inside an open transaction; a deleted instance
        only with ``deleted_ok`` (reading the evidence that stays)."""
        parsed = parse_spec(spec)
        asset_id, latest = self._asset_row(conn, scope)
        if parsed.back is not None:
            version = latest - parsed.back
        elif parsed.version is not None:
            version = parsed.version
        else:
            found = conn.execute(_SQL_ALIAS_VERSION, (asset_id, parsed.alias)).fetchone()
            version = found[0] if found else 0
        floor = 0 if deleted_ok else self._floor(conn, asset_id)
        if not floor < version <= latest:
            raise self._miss(conn, scope, parsed)
        return asset_id, version

    def _asset_row(self, conn: sqlite3.Connection, scope: Scope) -> tuple[int, int]:
        """(asset_id, latest_version) of ``scope``. An unknown asset raises a RegistryError
        naming what does exist, so queries call this when they find no rows: an unknown asset
        is an error, not an empty answer."""
        row = conn.execute(_SQL_ASSET, _key(scope)).fetchone()
        if row is None:
            raise AssetNotFound(self._unknown_asset_message(conn, scope))
        return row

    def _miss(self, conn: sqlite3.Connection, scope: Scope, parsed: InstanceSpec
              ) -> RegistryError:
        """Explain why ``parsed`` found nothing, naming what does exist (raises at once when
        the asset itself is unknown)."""
        asset_id, latest = self._asset_row(conn, scope)
        spec = parsed.text
        floor = self._floor(conn, asset_id)
        if floor >= latest:
            return AssetNotFound(self._deleted_message(conn, scope))
        first = floor + 1
        have = f"{scope.name} has {version_range(latest, first)}"
        if floor:
            have += f" (v1…v{floor} were deleted)" if floor > 1 else " (v1 was deleted)"
        if parsed.alias is not None:
            current = self._aliases_of(conn, asset_id)
            known = ", ".join(f"@{a}→v{v}" for a, v in sorted(current.items())) or "none"
            return AssetNotFound(
                f"alias @{parsed.alias} is not set on {scope}; aliases: {known} ({have})"
            )
        if parsed.back is not None:
            return AssetNotFound(
                f"{spec} of {scope} goes back past v{first}: {have}, so at most "
                f"latest-{latest - first}"
            )
        return AssetNotFound(f"{spec} of {scope} does not exist: {have}")

    def _deleted_message(self, conn: sqlite3.Connection, scope: Scope) -> str:
        last = self._deletions(conn, scope)[-1]
        return (f"{scope} was deleted at {last.at} by {last.by.entity_kind} "
                f"{last.by.entity_id} (v1…v{last.through_version}); its history, evidence "
                "and lineage are kept (`flowpolicy assets history "
                f"{scope.name} --branch {scope.branch}`); registering it again starts at "
                f"v{last.through_version + 1}")

    def _unknown_asset_message(self, conn: sqlite3.Connection, scope: Scope) -> str:
        """Which registry was asked, what its branch holds, and where the name does exist."""
        names = [r[0] for r in conn.execute(
            "SELECT name FROM assets WHERE project = ? AND branch = ? AND asset_type = ? "
            "ORDER BY name", (scope.project, scope.branch, scope.asset_type))]
        listed = (f"{scope.asset_type} assets there: {', '.join(names)}" if names
                  else f"no {scope.asset_type} assets are registered there")
        hints = []
        other = [r[0] for r in conn.execute(
            "SELECT DISTINCT asset_type FROM assets WHERE project = ? AND branch = ? AND name = ?",
            (scope.project, scope.branch, scope.name))]
        if other:
            hints.append(f"{scope.name!r} exists there as a {other[0]} asset")
        branches = [r[0] for r in conn.execute(
            "SELECT branch FROM assets WHERE project = ? AND asset_type = ? AND name = ? "
            "ORDER BY branch", (scope.project, scope.asset_type, scope.name))]
        if branches:
            hints.append(f"{scope.name!r} exists on branch(es): {', '.join(branches)}")
        projects = [r[0] for r in conn.execute(
            "SELECT DISTINCT project FROM assets WHERE project != ? AND name = ? "
            "ORDER BY project", (scope.project, scope.name))]
        if projects:
            hints.append(f"{scope.name!r} exists in project(s): {', '.join(projects)}")
        hint = f" ({'; '.join(hints)})" if hints else ""
        return (f"unknown {scope.asset_type} asset {scope.name!r} in "
                f"{scope.project}/{scope.branch} of registry {self.path}; {listed}{hint}")

    def instances(self, scope: Scope, limit: int | None = 50, *,
                  include_deleted: bool = False) -> list[InstanceRecord]:
        live = "" if include_deleted else self._live()
        sql = (f"SELECT {_INSTANCE_COLUMNS} FROM assets a JOIN instances i ON i.asset_id = a.id "
               f"WHERE {_SCOPE_WHERE}{live} ORDER BY i.version DESC")
        params: tuple = _key(scope)
        if limit is not None:
            sql += " LIMIT ?"
            params += (int(limit),)
        with _Reading(self) as conn:
            rows = conn.execute(sql, params).fetchall()
            if not rows:
                self._asset_row(conn, scope)
                raise AssetNotFound(self._deleted_message(conn, scope))
            return [_instance(scope, row) for row in rows]

    def assets(
        self,
        project: str | None = None,
        branch: str | None = None,
        asset_type: str | None = None,
        *,
        include_deleted: bool = False,
    ) -> list[AssetSummary]:
        where, params = _filters(project=project, branch=branch, asset_type=asset_type)
        if self._has_deletions and not include_deleted:
            # a deleted asset is listed again once it is registered again
            where += f"{' AND' if where else ' WHERE'} a.latest_version > {_SQL_FLOOR}"
        sql = ("SELECT project, branch, asset_type, name, description, latest_version, "
               f"updated_at FROM assets a{where} ORDER BY project, branch, asset_type, name")
        with _Reading(self) as conn:
            rows = conn.execute(sql, params).fetchall()
        return [AssetSummary(Scope(p, b, t, n), d, v, u) for p, b, t, n, d, v, u in rows]

    # -- lineage ------------------------------------------------------------------------

    def record_consumption(self, scope: Scope, version: int, consumer: EntityRef) -> None:
        consumer = EntityRef.from_any(consumer)
        with self._write() as conn:
            asset_id, version = self._resolve_version(conn, scope, f"v{int(version)}")
            conn.execute(
                "INSERT INTO consumptions (asset_id, version, consumer_kind, consumer_id, at) "
                "VALUES (?, ?, ?, ?, ?)",
                (asset_id, version, consumer.entity_kind, consumer.entity_id, utc_now()),
            )

    def consumers(self, scope: Scope, version: int | None = None) -> list[Consumption]:
        sql = ("SELECT c.version, c.consumer_kind, c.consumer_id, c.at FROM assets a "
               f"JOIN consumptions c ON c.asset_id = a.id WHERE {_SCOPE_WHERE}")
        params: tuple = _key(scope)
        if version is not None:
            sql += " AND c.version = ?"
            params += (int(version),)
        with _Reading(self) as conn:
            rows = conn.execute(sql + " ORDER BY c.id", params).fetchall()
        return [Consumption(scope, v, EntityRef(k, i), at) for v, k, i, at in rows]

    # -- aliases ------------------------------------------------------------------------

    def set_alias(
        self,
        scope: Scope,
        alias: str,
        spec: str = "latest",
        *,
        by: EntityRef,
        reason: str | None = None,
        expected: Any = ANY,
    ) -> AliasMove:
        validate_alias(alias)
        want = ANY if expected is ANY else _expected_version(expected)
        by = EntityRef.from_any(by)
        now = utc_now()
        with self._write() as conn:
            asset_id, version = self._resolve_version(conn, scope, spec)
            row = conn.execute(_SQL_ALIAS_VERSION, (asset_id, alias)).fetchone()
            current = row[0] if row else None
            if want is not ANY and current != want:
                raise AliasConflict.moved(alias, scope, current, want)
            conn.execute(
                "INSERT INTO aliases (asset_id, alias, version, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (asset_id, alias) DO UPDATE SET version = excluded.version, "
                "updated_at = excluded.updated_at",
                (asset_id, alias, version, now),
            )
            conn.execute(
                "INSERT INTO alias_history (asset_id, alias, from_version, to_version, by_kind, "
                "by_id, at, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (asset_id, alias, current, version, by.entity_kind, by.entity_id, now, reason),
            )
        return AliasMove(scope, alias, current, version, by, now, reason)

    def unset_alias(
        self,
        scope: Scope,
        alias: str,
        *,
        by: EntityRef,
        reason: str | None = None,
        expected: Any = ANY,
    ) -> AliasMove:
        validate_alias(alias)
        want = ANY if expected is ANY else _expected_version(expected)
        by = EntityRef.from_any(by)
        now = utc_now()
        with self._write() as conn:
            asset_id, _ = self._asset_row(conn, scope)
            row = conn.execute(_SQL_ALIAS_VERSION, (asset_id, alias)).fetchone()
            current = row[0] if row else None
            if want is not ANY and current != want:
                raise AliasConflict.moved(alias, scope, current, want)
            if current is None:
                raise RegistryError(f"alias @{alias} is not set on {scope}; nothing to unset")
            conn.execute("DELETE FROM aliases WHERE asset_id = ? AND alias = ?",
                         (asset_id, alias))
            conn.execute(
                "INSERT INTO alias_history (asset_id, alias, from_version, to_version, by_kind, "
                "by_id, at, reason) VALUES (?, ?, ?, NULL, ?, ?, ?, ?)",
                (asset_id, alias, current, by.entity_kind, by.entity_id, now, reason),
            )
        return AliasMove(scope, alias, current, None, by, now, reason)

    def get_alias(self, scope: Scope, alias: str) -> int | None:
        validate_alias(alias)
        with _Reading(self) as conn:
            row = conn.execute(
                "SELECT al.version FROM assets a JOIN aliases al ON al.asset_id = a.id "
                f"AND al.alias = ? WHERE {_SCOPE_WHERE}", (alias, *_key(scope))
            ).fetchone()
            if row is None:
                self._asset_row(conn, scope)
        return row[0] if row else None

    def aliases(self, scope: Scope) -> dict[str, int]:
        with _Reading(self) as conn:
            asset_id, _ = self._asset_row(conn, scope)
            return self._aliases_of(conn, asset_id)

    @staticmethod
    def _aliases_of(conn: sqlite3.Connection, asset_id: int) -> dict[str, int]:
        return dict(conn.execute(
            "SELECT alias, version FROM aliases WHERE asset_id = ? ORDER BY alias", (asset_id,)))

    def alias_history(self, scope: Scope, alias: str | None = None) -> list[AliasMove]:
        sql = ("SELECT h.alias, h.from_version, h.to_version, h.by_kind, h.by_id, h.at, h.reason "
               f"FROM assets a JOIN alias_history h ON h.asset_id = a.id WHERE {_SCOPE_WHERE}")
        params: tuple = _key(scope)
        if alias is not None:
            sql += " AND h.alias = ?"
            params += (validate_alias(alias),)
        with _Reading(self) as conn:
            rows = conn.execute(sql + " ORDER BY h.id", params).fetchall()
            if not rows:
                self._asset_row(conn, scope)
        return [AliasMove(scope, a, f, t, EntityRef(k, i), at, r)
                for a, f, t, k, i, at, r in rows]

    # -- evidence -----------------------------------------------------------------------

    def add_evidence(
        self,
        scope: Scope,
        spec: str,
        *,
        kind: str,
        rule: str,
        passed: bool,
        policy_hash: str | None,
        details: Mapping[str, Any] | None,
        created_by: EntityRef,
    ) -> EvidenceRecord:
        if kind not in EVIDENCE_KINDS:
            raise RegistryError(
                f"evidence kind must be one of {', '.join(EVIDENCE_KINDS)}, not {kind!r}")
        if not rule or not isinstance(rule, str):
            raise RegistryError("evidence needs a rule name")
        try:
            details_json = _json(dict(details or {}))
        except TypeError as exc:
            raise RegistryError(f"evidence details for {rule!r} are not JSON: {exc}") from exc
        created_by = EntityRef.from_any(created_by)
        now = utc_now()
        with self._write() as conn:
            asset_id, version = self._resolve_version(conn, scope, spec)
            conn.execute(
                "INSERT INTO evidence (asset_id, version, kind, rule, passed, policy_hash, "
                "details, created_at, created_by_kind, created_by_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (asset_id, version, kind, rule, int(bool(passed)), policy_hash, details_json, now,
                 created_by.entity_kind, created_by.entity_id),
            )
        return EvidenceRecord(scope, version, kind, rule, bool(passed), policy_hash,
                              MappingProxyType(json.loads(details_json)), now, created_by)

    def evidence(
        self, scope: Scope, spec: str = "latest", kind: str | None = None
    ) -> list[EvidenceRecord]:
        with _Reading(self) as conn:
            asset_id, version = self._resolve_version(conn, scope, spec, deleted_ok=True)
            if not self._has_evidence:
                # a schema older than evidence is read as it is, until some writer migrates it
                self._has_evidence = bool(conn.execute(
                    "SELECT count(*) FROM sqlite_master WHERE name = 'evidence'").fetchone()[0])
                if not self._has_evidence:
                    return []
            sql = ("SELECT kind, rule, passed, policy_hash, details, created_at, "
                   "created_by_kind, created_by_id FROM evidence "
                   "WHERE asset_id = ? AND version = ?")
            params: tuple = (asset_id, version)
            if kind is not None:
                sql += " AND kind = ?"
                params += (kind,)
            rows = conn.execute(sql + " ORDER BY id", params).fetchall()
            return [EvidenceRecord(scope, version, k, r, bool(p), h,
                                   MappingProxyType(json.loads(d)), at, EntityRef(bk, bi))
                    for k, r, p, h, d, at, bk, bi in rows]

    # -- deletion -----------------------------------------------------------------------

    def delete_asset(self, scope: Scope, *, by: EntityRef, reason: str | None = None
                     ) -> AssetDeletion | None:
        by = EntityRef.from_any(by)
        self._connect_existing()
        if self._schema is None:
            return None  # no registry there: nothing to delete, and nothing is created
        now = utc_now()
        with self._write() as conn:
            row = conn.execute(_SQL_ASSET, _key(scope)).fetchone()
            if row is None or row[1] <= self._floor(conn, row[0]):
                return None
            asset_id, latest = row
            aliases = self._aliases_of(conn, asset_id)
            conn.execute("DELETE FROM aliases WHERE asset_id = ?", (asset_id,))
            conn.execute(
                "INSERT INTO asset_deletions (asset_id, through_version, aliases, by_kind, "
                "by_id, at, reason) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (asset_id, latest, _json(aliases), by.entity_kind, by.entity_id, now, reason))
        return AssetDeletion(scope, latest, MappingProxyType(aliases), by, now, reason)

    def deletions(self, scope: Scope) -> list[AssetDeletion]:
        with _Reading(self) as conn:
            self._asset_row(conn, scope)
            return self._deletions(conn, scope)

    def _deletions(self, conn: sqlite3.Connection, scope: Scope) -> list[AssetDeletion]:
        if not self._has_deletions:
            return []
        return [AssetDeletion(scope, v, MappingProxyType(json.loads(al)), EntityRef(k, i), at, r)
                for v, al, k, i, at, r in conn.execute(_SQL_DELETIONS, _key(scope))]

    # -- events -------------------------------------------------------------------------

    def publish_event(
        self,
        project: str,
        branch: str,
        name: str,
        payload: Mapping[str, Any] | None,
        producer: EntityRef,
    ) -> EventRecord:
        if not name or not isinstance(name, str):
            raise RegistryError(f"event name must be a non-empty string, not {name!r}")
        try:
            payload_json = None if payload is None else _json(payload)
        except TypeError as exc:
            raise RegistryError(f"payload of event {name!r} is not JSON: {exc}") from exc
        producer = EntityRef.from_any(producer)
        now = utc_now()
        with self._write(creates=True) as conn:
            event_id = conn.execute(
                "INSERT INTO events (project, branch, name, payload, created_at, producer_kind, "
                "producer_id) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (project, branch, name, payload_json, now, producer.entity_kind,
                 producer.entity_id),
            ).fetchone()[0]
        return EventRecord(event_id, project, branch, name,
                           None if payload_json is None else json.loads(payload_json),
                           now, producer)

    def events(
        self, project: str | None = None, branch: str | None = None, name: str | None = None
    ) -> list[EventRecord]:
        where, params = _filters(project=project, branch=branch, name=name)
        sql = ("SELECT id, project, branch, name, payload, created_at, producer_kind, "
               f"producer_id FROM events{where} ORDER BY id")
        with _Reading(self) as conn:
            rows = conn.execute(sql, params).fetchall()
            return [EventRecord(i, p, b, n, None if pl is None else json.loads(pl), at,
                                EntityRef(pk, pi)) for i, p, b, n, pl, at, pk, pi in rows]

    # -- maintenance --------------------------------------------------------------------

    def integrity_problems(self) -> list[str]:
        """SQLite's integrity check plus flowpolicy's own invariants; empty means healthy."""
        with _Reading(self) as conn:
            problems = [r[0] for r in conn.execute("PRAGMA integrity_check") if r[0] != "ok"]
            for name, latest, count, top in conn.execute(
                "SELECT a.name, a.latest_version, count(i.version), max(i.version) FROM assets a "
                "LEFT JOIN instances i ON i.asset_id = a.id GROUP BY a.id"
            ):
                if count != latest or (top or 0) != latest:
                    problems.append(f"asset {name!r}: latest_version {latest} but {count} "
                                    f"instances up to v{top}")
            for alias, version in conn.execute(
                "SELECT al.alias, al.version FROM aliases al LEFT JOIN instances i "
                "ON i.asset_id = al.asset_id AND i.version = al.version WHERE i.version IS NULL"
            ):
                problems.append(f"alias @{alias} points at missing v{version}")
        return problems

    def change_probe(self) -> DataVersionProbe:
        """A :class:`~flowpolicy.registry.base.ChangeProbe` on a read-only connection of its
        own (so this handle's own writes count too)."""
        return DataVersionProbe(self.path)


class _Reading:
    """``with _Reading(registry) as conn``: the connection lock held, the file known to hold a
    registry, and what SQLite (or decoding a stored value) raises for a damaged or unreadable
    file turned into RegistryError. A plain class, not @contextmanager: every lookup goes
    through it, and this costs a fraction of a generator's set-up."""

    __slots__ = ("_registry",)

    def __init__(self, registry: SQLiteRegistry):
        self._registry = registry

    def __enter__(self) -> sqlite3.Connection:
        registry = self._registry
        registry._lock.acquire()
        try:
            return registry._conn if registry._readable else registry._reader()
        except BaseException as exc:
            registry._lock.release()
            if isinstance(exc, sqlite3.Error):
                registry._raise_failure(exc)
            raise

    def __exit__(self, kind, exc, traceback) -> None:
        self._registry._lock.release()
        if isinstance(exc, (sqlite3.Error, json.JSONDecodeError)):
            self._registry._raise_failure(exc)


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


def _key(scope: Scope) -> tuple[str, str, str, str]:
    return (scope.project, scope.branch, scope.asset_type, scope.name)


def _filters(**columns: str | None) -> tuple[str, list[str]]:
    """`` WHERE a = ? AND b = ?`` (empty without filters) and its parameters, for the
    columns whose value is not None (None: any)."""
    given = {column: value for column, value in columns.items() if value is not None}
    if not given:
        return "", []
    return " WHERE " + " AND ".join(f"{c} = ?" for c in given), list(given.values())


def _instance(scope: Scope, row: tuple) -> InstanceRecord:
    version, kind, desc, ann, tags, blobs, created_at, by_kind, by_id = row
    return InstanceRecord(
        scope=scope, version=version, kind=kind, description=desc,
        annotations=MappingProxyType(json.loads(ann)), tags=MappingProxyType(json.loads(tags)),
        blobs=tuple(json.loads(blobs)), created_at=created_at,
        created_by=EntityRef(by_kind, by_id),
    )


def _expected_version(expected: Any) -> int | None:
    if expected is None:
        return None
    if isinstance(expected, int) and not isinstance(expected, bool) and expected >= 1:
        return expected
    parsed = parse_spec(expected) if isinstance(expected, str) else None
    if parsed is None or parsed.version is None:
        raise RegistryError(
            f"expected= takes an instance id such as 'v3' (or None for 'not set yet'), "
            f"not {expected!r}")
    return parsed.version


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
