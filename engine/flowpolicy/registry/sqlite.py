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
from typing import Any

from flowpolicy.errors import RegistryError
from flowpolicy.registry.base import (
    ANY,
    EVIDENCE_KINDS,
    AliasConflict,
    AliasMove,
    AssetSummary,
    Consumption,
    EntityRef,
    EventRecord,
    EvidenceRecord,
    InstanceRecord,
    InstanceSpec,
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

#: Alias history records unsets too (``to_version`` NULL). SQLite cannot drop a NOT NULL
#: constraint in place, so the table is rebuilt with its rows (ids kept), index and triggers;
#: dropping the old table fires no trigger.
_V3 = (
    """CREATE TABLE alias_history_v3 (
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
    "INSERT INTO alias_history_v3 SELECT id, asset_id, alias, from_version, to_version, "
    "by_kind, by_id, at, reason FROM alias_history",
    "DROP TABLE alias_history",
    "ALTER TABLE alias_history_v3 RENAME TO alias_history",
    "CREATE INDEX alias_history_by_alias ON alias_history (asset_id, alias, id)",
    """CREATE TRIGGER alias_history_append_only BEFORE UPDATE ON alias_history
       BEGIN SELECT RAISE(ABORT, 'alias history is append-only'); END""",
    """CREATE TRIGGER alias_history_no_delete BEFORE DELETE ON alias_history
       BEGIN SELECT RAISE(ABORT, 'alias history is append-only'); END""",
)

#: Numbered schema migrations; ``MIGRATIONS[n]`` takes a file from version n to n+1.
#: Never edit a released migration: append a new one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _V2, _V3)
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


class SQLiteRegistry:
    """A registry in one SQLite file; one instance (one connection) per process suffices.

    With ``read_only=True`` the file must exist and is opened with SQLite's ``mode=ro``:
    never created, migrated or written (see the module notes for the ``-shm`` limit).
    """

    def __init__(self, path: str | os.PathLike, *, busy_timeout: float = _BUSY_TIMEOUT_S,
                 read_only: bool = False):
        self.path = Path(path).expanduser().resolve()
        self.url = f"sqlite:///{self.path}"
        self.read_only = read_only
        self._lock = threading.RLock()
        self._has_evidence = True
        _refuse_non_sqlite(self.path)
        if read_only:
            if not self.path.exists():
                raise RegistryError(
                    f"no registry at {self.path} (opened read-only, so it is not created); "
                    "run the flows first, or point FLOWPOLICY_REGISTRY at the right file")
            # a URI, percent-encoded by as_uri(), so a '?' or '#' in the path stays a path
            target, uri = self.path.as_uri() + "?mode=ro", True
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            target, uri = str(self.path), False
        try:
            self._conn = sqlite3.connect(
                target,
                timeout=busy_timeout,
                isolation_level=None,  # we issue BEGIN IMMEDIATE / COMMIT ourselves
                check_same_thread=False,
                cached_statements=128,
                uri=uri,
            )
        except sqlite3.Error as exc:
            raise RegistryError(f"cannot open registry {self.path}: {exc}") from exc
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            fresh = self._check_identity()
            if read_only:
                self._check_readable(fresh)
            else:
                self._enable_wal()
                self._conn.execute("PRAGMA synchronous = NORMAL")
            # reads of a large history served from memory, not one pread() per page miss
            self._conn.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
            self._conn.execute(f"PRAGMA mmap_size = {_MMAP_BYTES}")
            if not read_only:
                self._migrate(fresh)
        except sqlite3.OperationalError as exc:  # locked, read-only, disk full: not corrupt
            self._conn.close()
            hint = ""
            if read_only and "readonly" in str(exc):
                hint = (f"; reading a WAL database needs {self.path.name}-shm and "
                        f"{self.path.name}-wal next to it, and the folder does not let SQLite "
                        "create them: run it as a user who may write that folder, or on a copy")
            raise RegistryError(f"cannot open registry {self.path}: {exc}{hint}") from exc
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise RegistryError(
                f"{self.path} is not a readable flowpolicy registry ({exc}); "
                "it was left untouched — move it away or point FLOWPOLICY_REGISTRY elsewhere"
            ) from exc
        except BaseException:
            self._conn.close()
            raise

    # -- opening ------------------------------------------------------------------------

    def _check_identity(self) -> bool:
        """True for an empty database we may initialise; raise for a foreign or newer one."""
        conn = self._conn
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        user_version = conn.execute("PRAGMA user_version").fetchone()[0]
        if app_id == APPLICATION_ID:
            if user_version > SCHEMA_VERSION:
                raise RegistryError(
                    f"registry {self.path} has schema version {user_version}, newer than this "
                    f"flowpolicy understands ({SCHEMA_VERSION}); upgrade flowpolicy"
                )
            return False
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') ORDER BY name")]
        if app_id == 0 and user_version == 0 and not tables:
            return True
        shown = ", ".join(tables[:8]) or "none"
        raise RegistryError(
            f"{self.path} is a SQLite database but not a flowpolicy registry "
            f"(application_id={app_id:#x}, user_version={user_version}, tables: {shown}); "
            "it was left untouched — point FLOWPOLICY_REGISTRY elsewhere"
        )

    def _check_readable(self, fresh: bool) -> None:
        """Refuse, for a read-only handle, a file it cannot read without writing it first."""
        if fresh:
            raise RegistryError(
                f"{self.path} is an empty database, not yet a flowpolicy registry; nothing to "
                "read (a flow or any write command such as `flowpolicy assets list` sets it up)")
        version = self._user_version()
        if version < OLDEST_READABLE_VERSION:
            raise RegistryError(
                f"registry {self.path} has schema version {version}, too old to read without "
                f"migrating it (oldest readable: {OLDEST_READABLE_VERSION}); run any command "
                "that opens it for writing first, such as `flowpolicy assets list` or a flow")
        tables = {r[0] for r in self._conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        self._has_evidence = "evidence" in tables  # added by migration 2

    def _enable_wal(self) -> None:
        conn = self._conn
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
            return
        deadline = time.monotonic() + _BUSY_TIMEOUT_S
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                # switching journal mode needs a moment alone with a brand-new file
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _migrate(self, fresh: bool) -> None:
        if not fresh and self._user_version() == SCHEMA_VERSION:
            return
        with self._write() as conn:
            current = self._user_version()  # another process may have migrated meanwhile
            if current == 0:
                # the empty file may have been claimed by a foreign writer since we looked
                if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                    self._check_identity()
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            for number in range(current, SCHEMA_VERSION):
                for statement in MIGRATIONS[number]:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _user_version(self) -> int:
        return self._conn.execute("PRAGMA user_version").fetchone()[0]

    @property
    def schema_version(self) -> int:
        return self._user_version()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        if self.read_only:
            raise RegistryError(
                f"registry {self.path} was opened read-only (as flowpolicy check and plan "
                "open it): writes are refused")
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise RegistryError(f"registry {self.path} is not writable now: {exc}") from exc
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.OperationalError):
                    raise RegistryError(f"registry {self.path}: {exc}") from exc
                raise

    def close(self) -> None:
        with self._lock:
            self._conn.close()

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
        with self._write() as conn:
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
        )

    def resolve(self, scope: Scope, spec: str = "latest") -> InstanceRecord:
        parsed = parse_spec(spec)
        key = _key(scope)
        with self._lock:
            if parsed.back is not None:
                row = self._conn.execute(_SQL_BY_BACK, (parsed.back, *key)).fetchone()
            elif parsed.version is not None:
                row = self._conn.execute(_SQL_BY_VERSION, (parsed.version, *key)).fetchone()
            else:
                row = self._conn.execute(_SQL_BY_ALIAS, (parsed.alias, *key)).fetchone()
            if row is None:
                raise self._miss(scope, parsed)
        return _instance(scope, row)

    def _resolve_version(
        self, conn: sqlite3.Connection, scope: Scope, spec: str
    ) -> tuple[int, int]:
        """(asset_id, version) for ``spec`` inside an open transaction."""
        parsed = parse_spec(spec)
        asset_id, latest = self._asset_row(conn, scope)
        if parsed.back is not None:
            version = latest - parsed.back
        elif parsed.version is not None:
            version = parsed.version
        else:
            found = conn.execute(_SQL_ALIAS_VERSION, (asset_id, parsed.alias)).fetchone()
            version = found[0] if found else 0
        if not 1 <= version <= latest:
            raise self._miss(scope, parsed)
        return asset_id, version

    def _asset_row(self, conn: sqlite3.Connection, scope: Scope) -> tuple[int, int]:
        """(asset_id, latest_version) of ``scope``. An unknown asset raises a RegistryError
        naming what does exist, so queries call this when they find no rows: an unknown asset
        is an error, not an empty answer."""
        row = conn.execute(_SQL_ASSET, _key(scope)).fetchone()
        if row is None:
            raise RegistryError(self._unknown_asset_message(scope))
        return row

    def _miss(self, scope: Scope, parsed: InstanceSpec) -> RegistryError:
        """Explain why ``parsed`` found nothing, naming what does exist (raises at once when
        the asset itself is unknown)."""
        asset_id, latest = self._asset_row(self._conn, scope)
        spec = parsed.text
        have = f"{scope.name} has {version_range(latest)}"
        if parsed.alias is not None:
            current = self._aliases_of(asset_id)
            known = ", ".join(f"@{a}→v{v}" for a, v in sorted(current.items())) or "none"
            return RegistryError(
                f"alias @{parsed.alias} is not set on {scope}; aliases: {known} ({have})"
            )
        if parsed.back is not None:
            return RegistryError(
                f"{spec} of {scope} goes back past v1: {have}, so at most latest-{latest - 1}"
            )
        return RegistryError(f"{spec} of {scope} does not exist: {have}")

    def _unknown_asset_message(self, scope: Scope) -> str:
        names = [r[0] for r in self._conn.execute(
            "SELECT name FROM assets WHERE project = ? AND branch = ? AND asset_type = ? "
            "ORDER BY name", (scope.project, scope.branch, scope.asset_type))]
        listed = (f"{scope.asset_type} assets there: {', '.join(names)}" if names
                  else f"no {scope.asset_type} assets are registered there")
        hints = []
        other = [r[0] for r in self._conn.execute(
            "SELECT DISTINCT asset_type FROM assets WHERE project = ? AND branch = ? AND name = ?",
            (scope.project, scope.branch, scope.name))]
        if other:
            hints.append(f"{scope.name!r} exists there as a {other[0]} asset")
        branches = [r[0] for r in self._conn.execute(
            "SELECT branch FROM assets WHERE project = ? AND asset_type = ? AND name = ? "
            "ORDER BY branch", (scope.project, scope.asset_type, scope.name))]
        if branches:
            hints.append(f"{scope.name!r} exists on branch(es): {', '.join(branches)}")
        hint = f" ({'; '.join(hints)})" if hints else ""
        return (f"unknown {scope.asset_type} asset {scope.name!r} in "
                f"{scope.project}/{scope.branch}; {listed}{hint}")

    def instances(self, scope: Scope, limit: int | None = 50) -> list[InstanceRecord]:
        sql = (f"SELECT {_INSTANCE_COLUMNS} FROM assets a JOIN instances i ON i.asset_id = a.id "
               f"WHERE {_SCOPE_WHERE} ORDER BY i.version DESC")
        params: tuple = _key(scope)
        if limit is not None:
            sql += " LIMIT ?"
            params += (int(limit),)
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
            if not rows:
                self._asset_row(self._conn, scope)
        return [_instance(scope, row) for row in rows]

    def assets(
        self,
        project: str | None = None,
        branch: str | None = None,
        asset_type: str | None = None,
    ) -> list[AssetSummary]:
        where, params = _filters(project=project, branch=branch, asset_type=asset_type)
        sql = ("SELECT project, branch, asset_type, name, description, latest_version, "
               f"updated_at FROM assets{where} ORDER BY project, branch, asset_type, name")
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
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
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY c.id", params).fetchall()
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
        with self._lock:
            row = self._conn.execute(
                "SELECT al.version FROM assets a JOIN aliases al ON al.asset_id = a.id "
                f"AND al.alias = ? WHERE {_SCOPE_WHERE}", (alias, *_key(scope))
            ).fetchone()
            if row is None:
                self._asset_row(self._conn, scope)
        return row[0] if row else None

    def aliases(self, scope: Scope) -> dict[str, int]:
        with self._lock:
            asset_id, _ = self._asset_row(self._conn, scope)
            return self._aliases_of(asset_id)

    def _aliases_of(self, asset_id: int) -> dict[str, int]:
        return dict(self._conn.execute(
            "SELECT alias, version FROM aliases WHERE asset_id = ? ORDER BY alias", (asset_id,)))

    def alias_history(self, scope: Scope, alias: str | None = None) -> list[AliasMove]:
        sql = ("SELECT h.alias, h.from_version, h.to_version, h.by_kind, h.by_id, h.at, h.reason "
               f"FROM assets a JOIN alias_history h ON h.asset_id = a.id WHERE {_SCOPE_WHERE}")
        params: tuple = _key(scope)
        if alias is not None:
            sql += " AND h.alias = ?"
            params += (validate_alias(alias),)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY h.id", params).fetchall()
            if not rows:
                self._asset_row(self._conn, scope)
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
        with self._lock:
            asset_id, version = self._resolve_version(self._conn, scope, spec)
            if not self._has_evidence:  # a schema older than evidence, read as it is
                return []
            sql = ("SELECT kind, rule, passed, policy_hash, details, created_at, "
                   "created_by_kind, created_by_id FROM evidence "
                   "WHERE asset_id = ? AND version = ?")
            params: tuple = (asset_id, version)
            if kind is not None:
                sql += " AND kind = ?"
                params += (kind,)
            rows = self._conn.execute(sql + " ORDER BY id", params).fetchall()
        return [EvidenceRecord(scope, version, k, r, bool(p), h, MappingProxyType(json.loads(d)),
                               at, EntityRef(bk, bi)) for k, r, p, h, d, at, bk, bi in rows]

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
        with self._write() as conn:
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
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        return [EventRecord(i, p, b, n, None if pl is None else json.loads(pl), at,
                            EntityRef(pk, pi)) for i, p, b, n, pl, at, pk, pi in rows]

    # -- maintenance --------------------------------------------------------------------

    def integrity_problems(self) -> list[str]:
        """SQLite's integrity check plus flowpolicy's own invariants; empty means healthy."""
        with self._lock:
            conn = self._conn
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


class DataVersionProbe:
    """SQLite's ``PRAGMA data_version`` on a private read-only connection: it changes when
    any other connection commits, and costs no table read, so a follower can call it every
    few milliseconds. Not thread-safe: one follower thread calls it."""

    def __init__(self, path: Path):
        try:
            self._conn = sqlite3.connect(path.as_uri() + "?mode=ro", uri=True,
                                         isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA data_version").fetchone()
        except sqlite3.Error as exc:
            raise RegistryError(f"cannot follow registry {path}: {exc}") from exc

    def __call__(self) -> int:
        return self._conn.execute("PRAGMA data_version").fetchone()[0]

    def close(self) -> None:
        self._conn.close()


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


def _refuse_non_sqlite(path: Path) -> None:
    """Refuse (without opening it through SQLite) a non-empty file that is not SQLite."""
    try:
        with path.open("rb") as handle:
            head = handle.read(len(_SQLITE_MAGIC))
    except FileNotFoundError:
        return
    except IsADirectoryError as exc:
        raise RegistryError(f"registry path {path} is a directory, not a file") from exc
    except OSError as exc:
        raise RegistryError(f"cannot read registry {path}: {exc}") from exc
    if head and head != _SQLITE_MAGIC:
        raise RegistryError(
            f"{path} exists but is not a SQLite database (corrupt or foreign file); "
            "it was left untouched — move it away or point FLOWPOLICY_REGISTRY elsewhere"
        )
