"""What the two SQL backends (the embedded SQLite file, a PostgreSQL server) share: the shape
of the schema, the queries that are the same in both dialects, and the Registry Protocol
implemented once on top of them.

Each backend module keeps its own SQL: its numbered migrations (which tables, with its
column types in the CREATE TABLE statements written here once, its triggers and indexes),
the statements its dialect spells differently (annotation look-up, row locks), connections,
transactions and error mapping. The queries here are written once, with the backend's
parameter placeholder (SQLite ``?``, psycopg ``%s``): :func:`build_statements` renders the
hot ones, the rest are f-strings on ``_sql.param``.

Both backends keep the same tables with the same columns (:data:`TABLES`) at the same
schema version, so a registry moves from one to the other row for row
(:func:`copy_registry`): instance numbers, ids, timestamps and history are kept.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NoReturn

from flowpolicy.errors import RegistryError
from flowpolicy.registry.base import (
    ANY,
    AliasConflict,
    AliasMove,
    AssetDeletion,
    AssetNotFound,
    AssetSummary,
    Consumption,
    DispatchRecord,
    EntityRef,
    EventRecord,
    EvidenceRecord,
    InstanceRecord,
    InstanceSpec,
    Registry,
    Scope,
    alias_event,
    alias_payload,
    encode_json,
    new_instance_event,
    new_instance_payload,
    once_key,
    parse_spec,
    stringify,
    utc_now,
    validate_alias,
    version_range,
)

#: Every table of the current schema and its columns, in the order copies and digests use.
#: Both backends' migrations must arrive at exactly these columns (a test compares them).
TABLES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "assets": ("id", "project", "branch", "asset_type", "name", "description",
               "latest_version", "created_at", "updated_at"),
    "instances": ("asset_id", "version", "kind", "description", "annotations", "tags", "blobs",
                  "created_at", "created_by_kind", "created_by_id"),
    "aliases": ("asset_id", "alias", "version", "updated_at"),
    "alias_history": ("id", "asset_id", "alias", "from_version", "to_version", "by_kind",
                      "by_id", "at", "reason"),
    "consumptions": ("id", "asset_id", "version", "consumer_kind", "consumer_id", "at"),
    "events": ("id", "project", "branch", "name", "payload", "created_at", "producer_kind",
               "producer_id"),
    "evidence": ("id", "asset_id", "version", "kind", "rule", "passed", "policy_hash",
                 "details", "created_at", "created_by_kind", "created_by_id"),
    "asset_deletions": ("id", "asset_id", "through_version", "aliases", "by_kind", "by_id",
                        "at", "reason"),
    "dispatches": ("id", "event_id", "flow", "flow_name", "branch", "argv", "cwd", "state",
                   "token", "claimed_by", "lease_until", "attempts", "claimed_at",
                   "started_at", "pid", "run_pathspec", "log_path", "finished_at", "status",
                   "returncode", "reason"),
    "cursors": ("name", "position", "updated_at"),
})
#: Tables whose ``id`` the database assigns (copies set it explicitly, then move the counter on).
ID_TABLES: tuple[str, ...] = ("assets", "alias_history", "consumptions", "events", "evidence",
                              "asset_deletions", "dispatches")
#: The key each table's rows are ordered by, in copies and digests.
TABLE_KEYS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "instances": ("asset_id", "version"), "aliases": ("asset_id", "alias"),
    "cursors": ("name",), **{table: ("id",) for table in ID_TABLES},
})
#: The oldest schema a read-only handle reads without migrating. Raise it when a migration
#: changes a table or column readers rely on (adding a table or an index does not).
OLDEST_READABLE_VERSION = 1
#: The newest version an asset's latest deletion took away (0: never deleted); instances up to
#: it are no longer read. The table exists from migration 3 on.
_FLOOR = ("coalesce((SELECT max(d.through_version) FROM asset_deletions d "
          "WHERE d.asset_id = a.id), 0)")

_DISPATCH_COLUMNS = ", ".join(TABLES["dispatches"])

_INSTANCE_COLUMNS = (
    "i.version, i.kind, i.description, i.annotations, i.tags, i.blobs, i.created_at, "
    "i.created_by_kind, i.created_by_id"
)


#: The CREATE TABLE statements of both backends' migrations, written once: ``{int}``,
#: ``{text}`` … are the dialect's column types (each backend's ``_TYPES``). An applied
#: migration's text must never change (SQLite keeps it in every file it built): a new column
#: or table is a new migration, and a new statement here.
_CREATE_TABLE: Mapping[str, str] = MappingProxyType({
    "assets": """CREATE TABLE assets (
        id             {key},
        project        {text} NOT NULL,
        branch         {text} NOT NULL,
        asset_type     {text} NOT NULL CHECK (asset_type IN ('data', 'model')),
        name           {text} NOT NULL,
        description    {text} NOT NULL DEFAULT '',
        latest_version {int} NOT NULL,
        created_at     {time} NOT NULL,
        updated_at     {time} NOT NULL,
        UNIQUE (project, branch, asset_type, name)
    )""",
    "instances": """CREATE TABLE instances (
        asset_id        {bigint} NOT NULL REFERENCES assets (id),
        version         {int} NOT NULL CHECK (version >= 1),
        kind            {text} NOT NULL,
        description     {text} NOT NULL DEFAULT '',
        annotations     {json} NOT NULL,
        tags            {json} NOT NULL,
        blobs           {json} NOT NULL,
        created_at      {time} NOT NULL,
        created_by_kind {text} NOT NULL,
        created_by_id   {text} NOT NULL,
        PRIMARY KEY (asset_id, version)
    ){without_rowid}""",
    "aliases": """CREATE TABLE aliases (
        asset_id   {bigint} NOT NULL REFERENCES assets (id),
        alias      {text} NOT NULL,
        version    {int} NOT NULL,
        updated_at {time} NOT NULL,
        PRIMARY KEY (asset_id, alias)
    ){without_rowid}""",
    "alias_history": """CREATE TABLE alias_history (
        id           {key},
        asset_id     {bigint} NOT NULL REFERENCES assets (id),
        alias        {text} NOT NULL,
        from_version {int},
        to_version   {int} NOT NULL,
        by_kind      {text} NOT NULL,
        by_id        {text} NOT NULL,
        at           {time} NOT NULL,
        reason       {text}
    )""",
    "consumptions": """CREATE TABLE consumptions (
        id            {key},
        asset_id      {bigint} NOT NULL REFERENCES assets (id),
        version       {int} NOT NULL,
        consumer_kind {text} NOT NULL,
        consumer_id   {text} NOT NULL,
        at            {time} NOT NULL
    )""",
    "events": """CREATE TABLE events (
        id            {key},
        project       {text} NOT NULL,
        branch        {text} NOT NULL,
        name          {text} NOT NULL,
        payload       {json},
        created_at    {time} NOT NULL,
        producer_kind {text} NOT NULL,
        producer_id   {text} NOT NULL
    )""",
    "evidence": """CREATE TABLE evidence (
        id              {key},
        asset_id        {bigint} NOT NULL REFERENCES assets (id),
        version         {int} NOT NULL,
        kind            {text} NOT NULL,
        rule            {text} NOT NULL,
        passed          {bool} NOT NULL{passed_check},
        policy_hash     {text},
        details         {json} NOT NULL,
        created_at      {time} NOT NULL,
        created_by_kind {text} NOT NULL,
        created_by_id   {text} NOT NULL
    )""",
    "asset_deletions": """CREATE TABLE asset_deletions (
        id              {key},
        asset_id        {bigint} NOT NULL REFERENCES assets (id),
        through_version {int} NOT NULL,
        aliases         {json} NOT NULL,
        by_kind         {text} NOT NULL,
        by_id           {text} NOT NULL,
        at              {time} NOT NULL,
        reason          {text}
    )""",
    "dispatches": """CREATE TABLE dispatches (
        id           {key},
        event_id     {bigint} NOT NULL REFERENCES events (id),
        flow         {text} NOT NULL,
        flow_name    {text},
        branch       {text} NOT NULL,
        argv         {json} NOT NULL,
        cwd          {text} NOT NULL,
        state        {text} NOT NULL CHECK (state IN ('claimed', 'started', 'finished')),
        token        {text} NOT NULL,
        claimed_by   {text} NOT NULL,
        lease_until  {real} NOT NULL,
        attempts     {int} NOT NULL,
        claimed_at   {time} NOT NULL,
        started_at   {time},
        pid          {int},
        run_pathspec {text},
        log_path     {text},
        finished_at  {time},
        status       {text} CHECK (status IN ('succeeded', 'refused', 'failed')),
        returncode   {int},
        reason       {text},
        UNIQUE (event_id, flow)
    )""",
    "cursors": """CREATE TABLE cursors (
        name       {text} PRIMARY KEY,
        position   {bigint} NOT NULL,
        updated_at {time} NOT NULL
    ){without_rowid}""",
})


def create_table(table: str, types: Mapping[str, str]) -> str:
    """The CREATE TABLE statement of ``table`` with the dialect's column ``types``."""
    return _CREATE_TABLE[table].format_map(types)


@dataclass(frozen=True)
class Statements:
    """The most used DML of one backend, in its parameter style."""

    param: str
    by_back: str
    by_version: str
    by_alias: str
    asset: str
    #: ``asset`` with a row lock for writes that must serialise on the asset (alias moves).
    lock_asset: str
    #: take (and create if need be) the asset row's lock before register_once looks for its key;
    #: None where every write transaction already excludes the others (SQLite)
    claim_asset: str | None
    alias_version: str
    bump: str
    #: one more condition on an instance: its annotations hold key {p} with value {p}
    has_annotation: str
    insert_instance: str
    #: run before an event is inserted so event ids are in commit order; None where writes
    #: are serial anyway (SQLite)
    serialise_events: str | None


def build_statements(param: str, *, has_annotation: str, lock_suffix: str = "",
                     claim_asset: str | None = None, serialise_events: str | None = None
                     ) -> Statements:
    """The shared statements for parameter style ``param``, with what the dialect spells its
    own way (``has_annotation``; ``lock_suffix`` such as `` FOR UPDATE``)."""
    p = param
    scope_where = _scope_where(p)
    asset = f"SELECT a.id, a.latest_version FROM assets a WHERE {scope_where}"
    return Statements(
        param=p,
        by_back=(f"SELECT {_INSTANCE_COLUMNS} FROM assets a JOIN instances i "
                 f"ON i.asset_id = a.id AND i.version = a.latest_version - {p} "
                 f"WHERE {scope_where}"),
        by_version=(f"SELECT {_INSTANCE_COLUMNS} FROM assets a JOIN instances i "
                    f"ON i.asset_id = a.id AND i.version = {p} WHERE {scope_where}"),
        by_alias=(f"SELECT {_INSTANCE_COLUMNS} FROM assets a "
                  f"JOIN aliases al ON al.asset_id = a.id AND al.alias = {p} "
                  f"JOIN instances i ON i.asset_id = a.id AND i.version = al.version "
                  f"WHERE {scope_where}"),
        asset=asset,
        lock_asset=asset + lock_suffix,
        claim_asset=claim_asset,
        alias_version=f"SELECT version FROM aliases WHERE asset_id = {p} AND alias = {p}",
        bump=("INSERT INTO assets (project, branch, asset_type, name, description, "
              f"latest_version, created_at, updated_at) VALUES ({p}, {p}, {p}, {p}, {p}, 1, "
              f"{p}, {p}) ON CONFLICT (project, branch, asset_type, name) DO UPDATE SET "
              "latest_version = assets.latest_version + 1, updated_at = excluded.updated_at, "
              "description = CASE WHEN excluded.description = '' THEN assets.description "
              "ELSE excluded.description END RETURNING id, latest_version"),
        has_annotation=has_annotation,
        insert_instance=(
            "INSERT INTO instances (asset_id, version, kind, description, annotations, tags, "
            "blobs, created_at, created_by_kind, created_by_id) "
            f"VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})"),
        serialise_events=serialise_events,
    )


def scope_key(scope: Scope) -> tuple[str, str, str, str]:
    return (scope.project, scope.branch, scope.asset_type, scope.name)


def _instance(scope: Scope, row: Sequence[Any]) -> InstanceRecord:
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


class SQLRegistry(Registry):
    """The Registry Protocol over SQL; a backend provides the connection handling.

    A backend sets ``_sql`` (its :class:`Statements`) and ``_location`` (what messages call the
    registry: a path, a URL without password), ``_lock`` (held around each use of the connection)
    and ``_driver_error`` (the base class of its driver's errors), and implements
    ``_read_connection()`` (the connection for a read, once the registry is known to be there),
    ``_raise_failure(exc)`` (the RegistryError a user sees for a driver error),
    ``_write(creates=)`` (one write transaction; only a write that ``creates`` may bring the
    registry into being) and ``close()``. Connections must answer ``execute(sql, params)``
    with a cursor that has ``fetchone``/``fetchall`` and iterates rows as tuples, as
    sqlite3's and psycopg's do.
    """

    _sql: Statements
    _location: str
    url: str
    read_only: bool
    #: whether the schema read has the deletion marker (migration 3); backends keep it
    _has_deletions: bool = False
    #: whether the schema read is known to have evidence (migration 2) and dispatch records
    #: (migration 5); False: look again (see :meth:`_evidence_readable`)
    _has_evidence: bool = False
    _has_dispatch: bool = False
    #: the schema is current and this handle claimed it: writes just write
    _writes_ready: bool = False
    #: a registry this flowpolicy reads as it is
    _readable: bool = False
    #: the schema version; None: no registry there (yet)
    _schema: int | None = None
    _lock: AbstractContextManager[Any]
    _driver_error: type[Exception]

    def _reading(self) -> _Reading:
        return _Reading(self)

    def _read_connection(self) -> Any:
        raise NotImplementedError

    def _raise_failure(self, exc: Exception) -> NoReturn:
        raise NotImplementedError

    def _write(self, *, creates: bool = False) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _connect_existing(self) -> None:
        """Connect where there is storage and learn what it holds (``_schema``,
        ``_readable``, which tables are there); creates nothing."""
        raise NotImplementedError

    def _first_look(self) -> None:
        """At opening: learn what is there (a read-only handle needs a registry now); the
        connection is closed again on any failure."""
        with self._lock:
            try:
                self._connect_existing()
                if self.read_only and not self._readable:
                    raise self._unreadable()
            except self._driver_error as exc:
                self.close()
                self._raise_failure(exc)
            except BaseException:
                self.close()
                raise

    def _registry_exists(self) -> bool:
        """Whether a registry is there now (looked at again; creates nothing)."""
        with self._lock:
            try:
                self._connect_existing()
            except self._driver_error as exc:
                self._raise_failure(exc)
            return self._schema is not None

    def _too_new(self, version: int, current: int) -> RegistryError:
        return RegistryError(
            f"registry {self._location} has schema version {version}, newer than this "
            f"flowpolicy understands ({current}); upgrade flowpolicy")

    def _unreadable(self) -> RegistryError:
        """Why there is nothing to read; a backend says where it looked when there is no
        registry at all."""
        return RegistryError(
            f"registry {self._location} has schema version {self._schema}, too old to read "
            f"without migrating it (oldest readable: {OLDEST_READABLE_VERSION}); the next "
            "write (a flow registering an asset) migrates it")

    @property
    def schema_version(self) -> int:
        with self._reading() as conn:
            return self._schema_version(conn)

    def _schema_version(self, conn: Any) -> int:
        raise NotImplementedError

    def info(self) -> dict[str, Any]:
        with self._reading() as conn:
            present = self._tables_present(conn)
            rows = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                    for t in TABLES if t in present}
            return {**self._describe(conn), "rows": rows}

    def _describe(self, conn: Any) -> dict[str, Any]:
        """``info()`` but the rows: backend, location, server, schema versions, bytes."""
        raise NotImplementedError

    def _wait_for_events(self, after: int, timeout: float,
                         pause: Callable[[float], None]) -> bool:
        """``wait_for_events``, with ``pause(left)`` waiting at most ``left`` seconds for news
        between looks at the newest event id."""
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            if self.newest_event_id() > after:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            pause(left)

    def _live(self) -> str:
        """The condition that leaves out deleted instances (none before migration 3)."""
        return f" AND i.version > {_FLOOR}" if self._has_deletions else ""

    def _floor(self, conn: Any, asset_id: int) -> int:
        """The newest version deleted from ``asset_id`` (0: none)."""
        if not self._has_deletions:
            return 0
        return conn.execute("SELECT coalesce(max(through_version), 0) FROM asset_deletions "
                            f"WHERE asset_id = {self._sql.param}", (asset_id,)).fetchone()[0]

    def _evidence_readable(self, conn: Any) -> bool:
        """Whether the schema read has an evidence table (a read-only handle reads older
        schemas as they are)."""
        if not self._has_evidence:
            # a schema older than evidence is read as it is, until some writer migrates it
            self._has_evidence = "evidence" in self._tables_present(conn)
        return self._has_evidence

    def _dispatch_readable(self, conn: Any) -> bool:
        """Whether the schema read has the dispatch records and cursors (migration 5)."""
        if not self._has_dispatch:
            self._has_dispatch = "dispatches" in self._tables_present(conn)
        return self._has_dispatch

    def _first_write_committed(self, schema_version: int) -> None:
        """After the first write through this handle committed: it migrated the schema to
        the backend's current ``schema_version`` and claimed it, so every table is there and
        later writes skip the checks."""
        self._writes_ready = self._readable = self._has_evidence = True
        self._has_deletions = self._has_dispatch = True
        self._schema = schema_version

    # -- instances ----------------------------------------------------------------------

    def _register(
        self, scope: Scope, key: Mapping[str, str] | None, kind: str, created_by: EntityRef,
        description: str | None, annotations: Mapping[str, Any] | None,
        tags: Mapping[str, Any] | None, blobs: Sequence[str] | None,
        actor: EntityRef | None,
    ) -> tuple[InstanceRecord, bool]:
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
        actor = created_by if actor is None else EntityRef.from_any(actor)
        match = None if key is None else once_key(scope, key, ann)
        sql = self._sql
        with self._write(creates=True) as conn:
            if match:
                if sql.claim_asset is not None:
                    conn.execute(sql.claim_asset, (*scope_key(scope), desc, now, now))
                query = (f"SELECT {_INSTANCE_COLUMNS} FROM assets a JOIN instances i "
                         f"ON i.asset_id = a.id WHERE {_scope_where(sql.param)}{self._live()}"
                         + sql.has_annotation * len(match) + " ORDER BY i.version DESC LIMIT 1")
                row = conn.execute(
                    query, (*scope_key(scope), *(part for item in match.items() for part in item))
                ).fetchone()
                if row is not None:
                    return _instance(scope, row), False
            asset_id, version = conn.execute(
                sql.bump, (*scope_key(scope), desc, now, now)).fetchone()
            conn.execute(
                sql.insert_instance,
                (asset_id, version, kind, desc, encode_json(ann), encode_json(tag),
                 encode_json(blob_list), now, created_by.entity_kind, created_by.entity_id),
            )
            record = InstanceRecord(
                scope=scope, version=version, kind=kind, description=desc,
                annotations=MappingProxyType(ann), tags=MappingProxyType(tag),
                blobs=tuple(blob_list), created_at=now, created_by=created_by,
            )
            self._insert_event(conn, scope.project, scope.branch,
                               new_instance_event(scope.asset_type, scope.name),
                               encode_json(new_instance_payload(record, actor)), now, actor)
        return record, True

    def resolve(self, scope: Scope, spec: str = "latest") -> InstanceRecord:
        parsed = parse_spec(spec)
        key = scope_key(scope)
        sql = self._sql
        with self._reading() as conn:
            live = self._live()
            if parsed.back is not None:
                row = conn.execute(sql.by_back + live, (parsed.back, *key)).fetchone()
            elif parsed.version is not None:
                row = conn.execute(sql.by_version + live, (parsed.version, *key)).fetchone()
            else:
                row = conn.execute(sql.by_alias + live, (parsed.alias, *key)).fetchone()
            if row is None:
                raise self._miss(conn, scope, parsed)
            return _instance(scope, row)

    def _resolve_version(self, conn: Any, scope: Scope, spec: str, *, lock: bool = False,
                         deleted_ok: bool = False) -> tuple[int, int]:
        """(asset_id, version) for ``spec`` inside an open transaction; ``lock``: hold the
        asset row's lock until the transaction ends; a deleted instance only with
        ``deleted_ok`` (reading the evidence that stays)."""
        parsed = parse_spec(spec)
        asset_id, latest = self._asset_row(conn, scope, lock=lock)
        if parsed.back is not None:
            version = latest - parsed.back
        elif parsed.version is not None:
            version = parsed.version
        else:
            found = conn.execute(self._sql.alias_version, (asset_id, parsed.alias)).fetchone()
            version = found[0] if found else 0
        floor = 0 if deleted_ok else self._floor(conn, asset_id)
        if not floor < version <= latest:
            raise self._miss(conn, scope, parsed)
        return asset_id, version

    def _asset_row(self, conn: Any, scope: Scope, *, lock: bool = False) -> tuple[int, int]:
        """(asset_id, latest_version) of ``scope``. An unknown asset raises a RegistryError
        naming what does exist, so queries call this when they find no rows: an unknown asset
        is an error, not an empty answer."""
        sql = self._sql.lock_asset if lock else self._sql.asset
        row = conn.execute(sql, scope_key(scope)).fetchone()
        if row is None:
            raise AssetNotFound(self._unknown_asset_message(conn, scope))
        return row

    def _miss(self, conn: Any, scope: Scope, parsed: InstanceSpec) -> RegistryError:
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

    def _deleted_message(self, conn: Any, scope: Scope) -> str:
        last = self._deletions(conn, scope)[-1]
        return (f"{scope} was deleted at {last.at} by {last.by.entity_kind} "
                f"{last.by.entity_id} (v1…v{last.through_version}); its history, evidence "
                "and lineage are kept (`flowpolicy assets history "
                f"{scope.name} --branch {scope.branch}`); registering it again starts at "
                f"v{last.through_version + 1}")

    def _unknown_asset_message(self, conn: Any, scope: Scope) -> str:
        """Which registry was asked, what its branch holds, and where the name does exist."""
        p = self._sql.param
        names = [r[0] for r in conn.execute(
            f"SELECT name FROM assets WHERE project = {p} AND branch = {p} AND asset_type = {p} "
            "ORDER BY name", (scope.project, scope.branch, scope.asset_type))]
        listed = (f"{scope.asset_type} assets there: {', '.join(names)}" if names
                  else f"no {scope.asset_type} assets are registered there")
        hints = []
        other = [r[0] for r in conn.execute(
            f"SELECT DISTINCT asset_type FROM assets WHERE project = {p} AND branch = {p} "
            f"AND name = {p}", (scope.project, scope.branch, scope.name))]
        if other:
            hints.append(f"{scope.name!r} exists there as a {other[0]} asset")
        branches = [r[0] for r in conn.execute(
            f"SELECT branch FROM assets WHERE project = {p} AND asset_type = {p} AND name = {p} "
            "ORDER BY branch", (scope.project, scope.asset_type, scope.name))]
        if branches:
            hints.append(f"{scope.name!r} exists on branch(es): {', '.join(branches)}")
        projects = [r[0] for r in conn.execute(
            f"SELECT DISTINCT project FROM assets WHERE project != {p} AND name = {p} "
            "ORDER BY project", (scope.project, scope.name))]
        if projects:
            hints.append(f"{scope.name!r} exists in project(s): {', '.join(projects)}")
        hint = f" ({'; '.join(hints)})" if hints else ""
        return (f"unknown {scope.asset_type} asset {scope.name!r} in "
                f"{scope.project}/{scope.branch} of registry {self._location}; {listed}{hint}")

    def instances(self, scope: Scope, limit: int | None = 50, *,
                  include_deleted: bool = False) -> list[InstanceRecord]:
        p = self._sql.param
        live = "" if include_deleted else self._live()
        sql = (f"SELECT {_INSTANCE_COLUMNS} FROM assets a JOIN instances i ON i.asset_id = a.id "
               f"WHERE {_scope_where(p)}{live} ORDER BY i.version DESC")
        params: tuple = scope_key(scope)
        if limit is not None:
            sql += f" LIMIT {p}"
            params += (int(limit),)
        with self._reading() as conn:
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
        where, params = self._filters(project=project, branch=branch, asset_type=asset_type)
        if self._has_deletions and not include_deleted:
            # a deleted asset is listed again once it is registered again
            where += f"{' AND' if where else ' WHERE'} a.latest_version > {_FLOOR}"
        sql = ("SELECT project, branch, asset_type, name, description, latest_version, "
               f"updated_at FROM assets a{where} ORDER BY project, branch, asset_type, name")
        with self._reading() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [AssetSummary(Scope(p, b, t, n), d, v, u) for p, b, t, n, d, v, u in rows]

    def _filters(self, **columns: str | None) -> tuple[str, list[Any]]:
        """`` WHERE a = {p} AND b = {p}`` (empty without filters) and its parameters, for the
        columns whose value is not None (None: any)."""
        given = {column: value for column, value in columns.items() if value is not None}
        if not given:
            return "", []
        p = self._sql.param
        return " WHERE " + " AND ".join(f"{c} = {p}" for c in given), list(given.values())

    # -- lineage ------------------------------------------------------------------------

    def record_consumption(self, scope: Scope, version: int, consumer: EntityRef) -> None:
        consumer = EntityRef.from_any(consumer)
        p = self._sql.param
        with self._write() as conn:
            asset_id, version = self._resolve_version(conn, scope, f"v{int(version)}")
            conn.execute(
                "INSERT INTO consumptions (asset_id, version, consumer_kind, consumer_id, at) "
                f"VALUES ({p}, {p}, {p}, {p}, {p})",
                (asset_id, version, consumer.entity_kind, consumer.entity_id, utc_now()),
            )

    def consumers(self, scope: Scope, version: int | None = None) -> list[Consumption]:
        rows = self._rows_of(scope, "consumptions", "version, consumer_kind, consumer_id, at",
                             "version", None if version is None else int(version))
        return [Consumption(scope, v, EntityRef(k, i), at) for v, k, i, at in rows]

    def _rows_of(self, scope: Scope, table: str, columns: str, column: str, value: Any, *,
                 asset_must_exist: bool = False) -> list[tuple]:
        """``columns`` of the rows of ``table`` about the asset ``scope``, oldest first; with
        ``value`` not None only those whose ``column`` holds it. No rows and
        ``asset_must_exist``: AssetNotFound when the asset is not there."""
        p = self._sql.param
        listed = ", ".join(f"t.{name.strip()}" for name in columns.split(","))
        sql = (f"SELECT {listed} FROM assets a JOIN {table} t ON t.asset_id = a.id "
               f"WHERE {_scope_where(p)}")
        params: tuple = scope_key(scope)
        if value is not None:
            sql += f" AND t.{column} = {p}"
            params += (value,)
        with self._reading() as conn:
            rows = conn.execute(sql + " ORDER BY t.id", params).fetchall()
            if not rows and asset_must_exist:
                self._asset_row(conn, scope)
        return rows

    # -- aliases ------------------------------------------------------------------------

    def _move_alias(self, scope: Scope, alias: str, spec: str | None, by: EntityRef,
                    reason: str | None, expected: Any) -> AliasMove:
        validate_alias(alias)
        want = ANY if expected is ANY else _expected_version(expected)
        by = EntityRef.from_any(by)
        now = utc_now()
        p = self._sql.param
        with self._write() as conn:
            # the asset row's lock orders concurrent moves and unsets: each reads the alias
            # the one before it (in commit order) left behind
            if spec is None:
                asset_id, _ = self._asset_row(conn, scope, lock=True)
                version = None
            else:
                asset_id, version = self._resolve_version(conn, scope, spec, lock=True)
            row = conn.execute(self._sql.alias_version, (asset_id, alias)).fetchone()
            current = row[0] if row else None
            if want is not ANY and current != want:
                raise AliasConflict.moved(alias, scope, current, want)
            if version is not None:
                conn.execute(
                    f"INSERT INTO aliases (asset_id, alias, version, updated_at) VALUES ({p}, "
                    f"{p}, {p}, {p}) ON CONFLICT (asset_id, alias) DO UPDATE SET "
                    "version = excluded.version, updated_at = excluded.updated_at",
                    (asset_id, alias, version, now),
                )
            elif current is None:
                raise RegistryError(f"alias @{alias} is not set on {scope}; nothing to unset")
            else:
                conn.execute(f"DELETE FROM aliases WHERE asset_id = {p} AND alias = {p}",
                             (asset_id, alias))
            move = AliasMove(scope, alias, current, version, by, now, reason)
            self._record_alias_move(conn, asset_id, move)
        return move

    def _record_alias_move(self, conn: Any, asset_id: int, move: AliasMove) -> None:
        """Append ``move`` to the alias history and publish its alias event, in ``conn``'s
        transaction (``to_version`` None records an unset)."""
        p = self._sql.param
        scope = move.scope
        conn.execute(
            "INSERT INTO alias_history (asset_id, alias, from_version, to_version, by_kind, "
            f"by_id, at, reason) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})",
            (asset_id, move.alias, move.from_version, move.to_version, move.by.entity_kind,
             move.by.entity_id, move.at, move.reason),
        )
        self._insert_event(conn, scope.project, scope.branch,
                           alias_event(scope.asset_type, scope.name, move.alias),
                           encode_json(alias_payload(move)), move.at, move.by)

    def get_alias(self, scope: Scope, alias: str) -> int | None:
        validate_alias(alias)
        p = self._sql.param
        with self._reading() as conn:
            row = conn.execute(
                "SELECT al.version FROM assets a JOIN aliases al ON al.asset_id = a.id "
                f"AND al.alias = {p} WHERE {_scope_where(p)}", (alias, *scope_key(scope))
            ).fetchone()
            if row is None:
                self._asset_row(conn, scope)
        return row[0] if row else None

    def aliases(self, scope: Scope) -> dict[str, int]:
        with self._reading() as conn:
            asset_id, _ = self._asset_row(conn, scope)
            return self._aliases_of(conn, asset_id)

    def _aliases_of(self, conn: Any, asset_id: int) -> dict[str, int]:
        return dict(conn.execute(
            f"SELECT alias, version FROM aliases WHERE asset_id = {self._sql.param} "
            "ORDER BY alias", (asset_id,)))

    def alias_history(self, scope: Scope, alias: str | None = None) -> list[AliasMove]:
        rows = self._rows_of(scope, "alias_history",
                             "alias, from_version, to_version, by_kind, by_id, at, reason",
                             "alias", None if alias is None else validate_alias(alias),
                             asset_must_exist=True)
        return [AliasMove(scope, a, f, t, EntityRef(k, i), at, r)
                for a, f, t, k, i, at, r in rows]

    # -- evidence -----------------------------------------------------------------------

    def _add_evidence(self, scope: Scope, spec: str, kind: str, rule: str, passed: bool,
                      policy_hash: str | None, details_json: str, created_by: EntityRef
                      ) -> EvidenceRecord:
        now = utc_now()
        p = self._sql.param
        with self._write() as conn:
            asset_id, version = self._resolve_version(conn, scope, spec)
            conn.execute(
                "INSERT INTO evidence (asset_id, version, kind, rule, passed, policy_hash, "
                "details, created_at, created_by_kind, created_by_id) "
                f"VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})",
                (asset_id, version, kind, rule, passed, policy_hash, details_json, now,
                 created_by.entity_kind, created_by.entity_id),
            )
        return EvidenceRecord(scope, version, kind, rule, passed, policy_hash,
                              MappingProxyType(json.loads(details_json)), now, created_by)

    def evidence(
        self, scope: Scope, spec: str = "latest", kind: str | None = None
    ) -> list[EvidenceRecord]:
        p = self._sql.param
        with self._reading() as conn:
            asset_id, version = self._resolve_version(conn, scope, spec, deleted_ok=True)
            if not self._evidence_readable(conn):
                return []  # a schema older than evidence, read as it is
            sql = ("SELECT kind, rule, passed, policy_hash, details, created_at, "
                   "created_by_kind, created_by_id FROM evidence "
                   f"WHERE asset_id = {p} AND version = {p}")
            params: tuple = (asset_id, version)
            if kind is not None:
                sql += f" AND kind = {p}"
                params += (kind,)
            rows = conn.execute(sql + " ORDER BY id", params).fetchall()
            return [EvidenceRecord(scope, version, k, r, bool(ok), h,
                                   MappingProxyType(json.loads(d)), at, EntityRef(bk, bi))
                    for k, r, ok, h, d, at, bk, bi in rows]

    # -- deletion -----------------------------------------------------------------------

    def delete_asset(self, scope: Scope, *, by: EntityRef, reason: str | None = None
                     ) -> AssetDeletion | None:
        by = EntityRef.from_any(by)
        if not self._registry_exists():
            return None  # no registry there: nothing to delete, and nothing is created
        now = utc_now()
        p = self._sql.param
        with self._write() as conn:
            row = conn.execute(self._sql.lock_asset, scope_key(scope)).fetchone()
            if row is None or row[1] <= self._floor(conn, row[0]):
                return None
            asset_id, latest = row
            aliases = self._aliases_of(conn, asset_id)
            conn.execute(f"DELETE FROM aliases WHERE asset_id = {p}", (asset_id,))
            conn.execute(
                "INSERT INTO asset_deletions (asset_id, through_version, aliases, by_kind, "
                f"by_id, at, reason) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p})",
                (asset_id, latest, encode_json(aliases), by.entity_kind, by.entity_id, now,
                 reason))
        return AssetDeletion(scope, latest, MappingProxyType(aliases), by, now, reason)

    def deletions(self, scope: Scope) -> list[AssetDeletion]:
        with self._reading() as conn:
            self._asset_row(conn, scope)
            return self._deletions(conn, scope)

    def _deletions(self, conn: Any, scope: Scope) -> list[AssetDeletion]:
        if not self._has_deletions:
            return []
        p = self._sql.param
        rows = conn.execute(
            "SELECT d.through_version, d.aliases, d.by_kind, d.by_id, d.at, d.reason "
            f"FROM assets a JOIN asset_deletions d ON d.asset_id = a.id WHERE {_scope_where(p)} "
            "ORDER BY d.id", scope_key(scope))
        return [AssetDeletion(scope, v, MappingProxyType(json.loads(al)), EntityRef(k, i), at, r)
                for v, al, k, i, at, r in rows]

    # -- events -------------------------------------------------------------------------

    def _publish_event(self, project: str, branch: str, name: str,
                       payload: Mapping[str, Any] | None, producer: EntityRef) -> EventRecord:
        if not name or not isinstance(name, str):
            raise RegistryError(f"event name must be a non-empty string, not {name!r}")
        try:
            payload_json = None if payload is None else encode_json(payload)
        except TypeError as exc:
            raise RegistryError(f"payload of event {name!r} is not JSON: {exc}") from exc
        producer = EntityRef.from_any(producer)
        now = utc_now()
        with self._write(creates=True) as conn:
            event_id = self._insert_event(conn, project, branch, name, payload_json, now,
                                          producer)
        return EventRecord(event_id, project, branch, name,
                           None if payload_json is None else json.loads(payload_json),
                           now, producer)

    def _insert_event(self, conn: Any, project: str, branch: str, name: str,
                      payload_json: str | None, at: str, producer: EntityRef) -> int:
        """Append one event inside the caller's write transaction (after every other lock
        it takes, so the event lock is always the last one held); its id."""
        p = self._sql.param
        if self._sql.serialise_events is not None:
            conn.execute(self._sql.serialise_events)
        return conn.execute(
            "INSERT INTO events (project, branch, name, payload, created_at, producer_kind, "
            f"producer_id) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}) RETURNING id",
            (project, branch, name, payload_json, at, producer.entity_kind,
             producer.entity_id),
        ).fetchone()[0]

    def events(
        self, project: str | None = None, branch: str | None = None, name: str | None = None,
        *, after: int | None = None, limit: int | None = None,
    ) -> list[EventRecord]:
        where, params = self._filters(project=project, branch=branch, name=name)
        if after is not None:
            where += f"{' AND' if where else ' WHERE'} id > {self._sql.param}"
            params.append(int(after))
        sql = ("SELECT id, project, branch, name, payload, created_at, producer_kind, "
               f"producer_id FROM events{where} ORDER BY id")
        if limit is not None:
            sql += f" LIMIT {self._sql.param}"
            params.append(int(limit))
        with self._reading() as conn:
            rows = conn.execute(sql, params).fetchall()
            return [EventRecord(i, p, b, n, None if pl is None else json.loads(pl), at,
                                EntityRef(pk, pi)) for i, p, b, n, pl, at, pk, pi in rows]

    def newest_event_id(self) -> int:
        with self._reading() as conn:
            return conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]

    # -- dispatch -----------------------------------------------------------------------

    def claim_dispatch(
        self, event_id: int, flow: str, *, flow_name: str | None, branch: str,
        argv: Sequence[str], cwd: str, claimer: str, lease_seconds: float,
    ) -> DispatchRecord | None:
        token = secrets.token_hex(8)
        now, at = time.time(), utc_now()
        p = self._sql.param
        with self._write() as conn:
            if conn.execute(f"SELECT id FROM events WHERE id = {p}",
                            (int(event_id),)).fetchone() is None:
                raise RegistryError(f"no event {event_id} in registry {self._location}")
            # one statement decides a new claim (a concurrent one waits on the unique key,
            # then inserts nothing), a second the take-over of an expired one
            new = conn.execute(
                "INSERT INTO dispatches (event_id, flow, flow_name, branch, argv, cwd, state, "
                "token, claimed_by, lease_until, attempts, claimed_at) "
                f"VALUES ({p}, {p}, {p}, {p}, {p}, {p}, 'claimed', {p}, {p}, {p}, 1, {p}) "
                "ON CONFLICT (event_id, flow) DO NOTHING RETURNING id",
                (int(event_id), flow, flow_name, branch, encode_json(list(argv)), cwd, token,
                 claimer, now + lease_seconds, at)).fetchone()
            if new is None and not conn.execute(
                    f"UPDATE dispatches SET token = {p}, claimed_by = {p}, lease_until = {p}, "
                    f"attempts = attempts + 1, claimed_at = {p} WHERE event_id = {p} "
                    f"AND flow = {p} AND state = 'claimed' AND lease_until < {p}",
                    (token, claimer, now + lease_seconds, at, int(event_id), flow, now)
                    ).rowcount:
                return None
            return self._dispatch_rows(conn, f"WHERE event_id = {p} AND flow = {p}",
                                       (int(event_id), flow))[0]

    def start_dispatch(self, dispatch_id: int, token: str, *, pid: int, log_path: str | None
                       ) -> DispatchRecord | None:
        p = self._sql.param
        with self._write() as conn:
            changed = conn.execute(
                f"UPDATE dispatches SET state = 'started', started_at = {p}, pid = {p}, "
                f"log_path = {p} WHERE id = {p} AND token = {p} AND state = 'claimed'",
                (utc_now(), int(pid), log_path, int(dispatch_id), token)).rowcount
            if not changed:
                return None
            return self._dispatch_rows(conn, f"WHERE id = {p}", (int(dispatch_id),))[0]

    def note_dispatch_run(self, dispatch_id: int, run_pathspec: str) -> None:
        p = self._sql.param
        with self._write() as conn:
            conn.execute(f"UPDATE dispatches SET run_pathspec = {p} WHERE id = {p} "
                         "AND state = 'started'", (run_pathspec, int(dispatch_id)))

    def finish_dispatch(self, dispatch_id: int, *, status: str, returncode: int | None,
                        reason: str | None) -> None:
        p = self._sql.param
        with self._write() as conn:
            changed = conn.execute(
                f"UPDATE dispatches SET state = 'finished', finished_at = {p}, status = {p}, "
                f"returncode = {p}, reason = {p} WHERE id = {p} AND state = 'started'",
                (utc_now(), status, returncode, reason, int(dispatch_id))).rowcount
            if not changed:
                raise RegistryError(f"dispatch {dispatch_id} is not started; cannot finish it")

    def dispatch(self, dispatch_id: int) -> DispatchRecord:
        with self._reading() as conn:
            found = (self._dispatch_rows(conn, f"WHERE id = {self._sql.param}",
                                         (int(dispatch_id),))
                     if self._dispatch_readable(conn) else [])
        if not found:
            raise RegistryError(f"no dispatch {dispatch_id} in registry {self._location}")
        return found[0]

    def dispatches(self, *, event_id: int | None = None, state: str | None = None,
                   lease_expired: bool = False, limit: int | None = None
                   ) -> list[DispatchRecord]:
        p = self._sql.param
        where, params = self._filters(event_id=event_id, state=state)
        if lease_expired:
            where += f"{' AND' if where else ' WHERE'} state = 'claimed' AND lease_until < {p}"
            params.append(time.time())
        tail = " ORDER BY id" + (f" LIMIT {p}" if limit is not None else "")
        if limit is not None:
            params.append(int(limit))
        with self._reading() as conn:
            if not self._dispatch_readable(conn):
                return []
            return self._dispatch_rows(conn, where + tail, params)

    @staticmethod
    def _dispatch_rows(conn: Any, where: str, params: Sequence[Any]) -> list[DispatchRecord]:
        rows = conn.execute(f"SELECT {_DISPATCH_COLUMNS} FROM dispatches {where}", params)
        return [DispatchRecord(*row[:5], tuple(json.loads(row[5])), *row[6:])
                for row in rows]

    def cursor(self, name: str) -> int:
        with self._reading() as conn:
            if not self._dispatch_readable(conn):  # cursors came with dispatches
                return 0
            row = conn.execute(f"SELECT position FROM cursors WHERE name = {self._sql.param}",
                               (name,)).fetchone()
        return row[0] if row else 0

    def advance_cursor(self, name: str, event_id: int) -> int:
        p = self._sql.param
        with self._write() as conn:
            return conn.execute(
                f"INSERT INTO cursors (name, position, updated_at) VALUES ({p}, {p}, {p}) "
                "ON CONFLICT (name) DO UPDATE SET position = CASE WHEN excluded.position > "
                "cursors.position THEN excluded.position ELSE cursors.position END, "
                "updated_at = excluded.updated_at RETURNING position",
                (name, int(event_id), utc_now())).fetchone()[0]

    # -- maintenance --------------------------------------------------------------------

    def integrity_problems(self) -> list[str]:
        """flowpolicy's own invariants (a backend adds its storage's checks); empty: healthy."""
        problems = []
        with self._reading() as conn:
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

    # -- whole-registry copies ----------------------------------------------------------

    def _snapshot(self) -> AbstractContextManager[Any]:
        """A connection inside one read transaction: every table as of one moment."""
        raise NotImplementedError

    def _tables_present(self, conn: Any) -> set[str]:
        """The tables the schema read holds now (asked of the database)."""
        raise NotImplementedError

    def _replace_everything(self, conn: Any) -> None:
        """Inside the copy's write transaction: drop every table and set the current schema up
        again (append-only triggers guard rows, not the tables)."""
        raise NotImplementedError

    def _after_rows_copied(self, conn: Any) -> None:
        """Inside the copy's write transaction: e.g. move id counters past the copied ids."""

    def _table_rows(self, conn: Any, table: str, present: set[str]
                    ) -> Iterator[tuple[Any, ...]]:
        """Every row of ``table`` in key order, normalised (``passed`` as bool) so that both
        backends give equal rows for equal content; none for a table an older schema lacks."""
        if table not in present:
            return
        columns = TABLES[table]
        cursor = conn.execute(f"SELECT {', '.join(columns)} FROM {table} "
                              f"ORDER BY {', '.join(TABLE_KEYS[table])}")
        passed = columns.index("passed") if table == "evidence" else None
        while True:
            rows = cursor.fetchmany(2000)
            if not rows:
                return
            for row in rows:
                if passed is not None:
                    row = (*row[:passed], bool(row[passed]), *row[passed + 1:])
                yield tuple(row)

    def digest(self) -> RegistryDigest:
        """Row counts and a content hash of every table, read in one snapshot."""
        with self._snapshot() as conn:
            present = self._tables_present(conn)
            return RegistryDigest.of({t: self._table_rows(conn, t, present) for t in TABLES})


class _Reading:
    """``with registry._reading() as conn``: the backend's lock held, its connection for a
    read, and what the driver (or decoding a stored value) raises for a damaged or
    unreadable registry turned into RegistryError. A plain class, not @contextmanager: every
    lookup goes through it, and this costs a fraction of a generator's set-up."""

    __slots__ = ("_registry",)

    def __init__(self, registry: SQLRegistry):
        self._registry = registry

    def __enter__(self) -> Any:
        registry = self._registry
        registry._lock.acquire()
        try:
            return registry._read_connection()
        except BaseException as exc:
            registry._lock.release()
            if isinstance(exc, registry._driver_error):
                registry._raise_failure(exc)
            raise

    def __exit__(self, kind, exc, traceback) -> None:
        self._registry._lock.release()
        if isinstance(exc, (self._registry._driver_error, json.JSONDecodeError)):
            self._registry._raise_failure(exc)


def _scope_where(p: str) -> str:
    return f"a.project = {p} AND a.branch = {p} AND a.asset_type = {p} AND a.name = {p}"


@dataclass(frozen=True)
class RegistryDigest:
    """Row counts per table and a SHA-256 of the rows' content (JSON of each row, in key
    order), equal for equal registries whichever backend holds them."""

    counts: Mapping[str, int]
    sha256: str

    @classmethod
    def of(cls, tables: Mapping[str, Iterator[tuple[Any, ...]]],
           each_row: Callable[[str, tuple[Any, ...]], None] | None = None) -> RegistryDigest:
        total = hashlib.sha256()
        counts = {}
        for table, rows in tables.items():
            total.update(f"\x00{table}\x00".encode())
            count = 0
            for row in rows:
                total.update(json.dumps(row, separators=(",", ":")).encode())
                total.update(b"\n")
                count += 1
                if each_row is not None:
                    each_row(table, row)
            counts[table] = count
        return cls(MappingProxyType(counts), total.hexdigest())

    def to_dict(self) -> dict[str, Any]:
        return {"rows": dict(self.counts), "sha256": self.sha256}


@dataclass(frozen=True)
class CopyReport:
    source: str
    destination: str
    digest: RegistryDigest
    replaced: bool

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "destination": self.destination,
                "replaced": self.replaced, **self.digest.to_dict()}


def copy_registry(source: SQLRegistry, destination: SQLRegistry, *, replace: bool = False
                  ) -> CopyReport:
    """Copy every row of ``source`` (one snapshot) into ``destination`` in one write
    transaction, keeping instance numbers, ids and timestamps; then read the destination back
    inside that transaction and commit only if its counts and content hash equal the
    source's. A destination that holds anything is refused unless ``replace``, which discards
    what it held (in the same transaction, so a failed copy leaves it as it was)."""
    if destination.read_only:
        raise RegistryError(f"registry {destination.url} was opened read-only: cannot copy "
                            "into it")
    if source._location == destination._location:
        raise RegistryError(f"source and destination are the same registry ({source.url})")
    p = destination._sql.param
    with source._snapshot() as reading, destination._write(creates=True) as writing:
        held = sum(writing.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES)
        if held and not replace:
            raise RegistryError(
                f"destination {destination.url} is not empty ({held} rows); copy into an empty "
                "registry, or pass --replace to discard what it holds", exit_code=1)
        if held:
            destination._replace_everything(writing)
        present = source._tables_present(reading)
        cursor = writing.cursor()
        batch: dict[str, list[tuple[Any, ...]]] = {t: [] for t in TABLES}
        inserts = {t: f"INSERT INTO {t} ({', '.join(c)}) VALUES ({', '.join([p] * len(c))})"
                   for t, c in TABLES.items()}

        def insert(table: str, row: tuple[Any, ...]) -> None:
            rows = batch[table]
            rows.append(row)
            if len(rows) >= 1000:
                cursor.executemany(inserts[table], rows)
                rows.clear()

        def flush(table: str) -> Iterator[tuple[Any, ...]]:
            yield from source._table_rows(reading, table, present)
            if batch[table]:
                cursor.executemany(inserts[table], batch[table])
                batch[table].clear()

        copied = RegistryDigest.of({t: flush(t) for t in TABLES}, insert)
        destination._after_rows_copied(writing)
        landed = RegistryDigest.of(
            {t: destination._table_rows(writing, t, set(TABLES)) for t in TABLES})
        if landed != copied:
            raise RegistryError(
                f"copy into {destination.url} did not verify (source {copied.to_dict()}, "
                f"destination {landed.to_dict()}); nothing was written", exit_code=1)
    return CopyReport(source.url, destination.url, copied, bool(held))

