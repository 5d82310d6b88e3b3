"""The registry contract: records, instance specs and the backend :class:`Registry` Protocol.

Every backend (the embedded SQLite file, a PostgreSQL server, the Outerbounds asset service)
stores the same things: immutable asset *instances* ``v1, v2, …`` inside a scope
``(project, branch, asset type, asset name)``, *aliases* pointing at one instance with an
append-only history of their moves, *consumption lineage*, *events* and *evidence* (decision
records attached to an instance). The runtime (``flowpolicy.runtime``) turns these records
into obproject-shaped responses; backends never build response dicts themselves.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol, runtime_checkable

from flowpolicy.errors import RegistryError

ASSET_TYPES: tuple[str, ...] = ("data", "model")

#: obproject's wire name of an asset type (``asset.kind`` in responses, URL segment).
WIRE_KIND: Mapping[str, str] = MappingProxyType({"data": "data", "model": "models"})
#: The asset type named by either spelling obproject accepts (``model`` or ``models``).
ASSET_TYPE_OF: Mapping[str, str] = MappingProxyType(
    {"data": "data", "model": "model", "models": "model"})

EVIDENCE_KINDS: tuple[str, ...] = ("gate", "champion", "promotion", "drift")

_ALIAS_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_SPEC_FORMS = "'latest', 'latest-N' (N >= 0), 'vN' (N >= 1) or '@alias'"


class AssetNotFound(RegistryError):
    """Nothing there: an unknown or deleted asset, a version or alias that does not exist
    (the asset service's 404)."""

    status_code = 404


class AliasConflict(RegistryError):
    """A compare-and-set alias move found the alias somewhere other than expected."""

    status_code = 409

    def __init__(self, message: str, *, current: str | None, expected: str | None):
        super().__init__(message, exit_code=1)
        self.current = current
        self.expected = expected

    @classmethod
    def moved(cls, alias: str, scope: Scope, current: int | None, expected: int | None
              ) -> AliasConflict:
        """``@alias`` on ``scope`` points at version ``current``, not ``expected`` (None:
        unset)."""
        found, wanted = instance_id(current), instance_id(expected)
        return cls(f"alias @{alias} on {scope} is {found or 'unset'}, expected "
                   f"{wanted or 'unset'}; someone else moved it — re-read and retry",
                   current=found, expected=wanted)


class CompareAndSetUnsupported(RegistryError):
    """The backend cannot move an alias only if it still points where the caller saw it (the
    Outerbounds asset service has no transactions). Callers for whom a plain move is as good
    (the outcome of a lost race is the same) may fall back to one; the others must stop."""


class RegistryDamaged(RegistryError):
    """The registry's storage is damaged (a corrupt SQLite page, an unreadable stored value).
    Nothing was changed; callers that treat a RegistryError as "not found" must let this one
    through."""

    status_code = 500


class _Any:
    """Sentinel for ``set_alias(expected=ANY)``: move the alias whatever it points at now."""

    _instance: _Any | None = None

    def __new__(cls) -> _Any:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ANY"


ANY: Any = _Any()


class EntityRef(NamedTuple):
    """Who did something: ``("task", "Flow/run/step/task")`` or ``("user", "alice")``; a
    NamedTuple like obproject's, so it unpacks and indexes the same way."""

    entity_kind: str
    entity_id: str

    def to_dict(self) -> dict[str, str]:
        return {"entity_kind": self.entity_kind, "entity_id": self.entity_id}

    @classmethod
    def from_any(cls, value: EntityRef | Mapping[str, str] | tuple[str, str] | None
                 ) -> EntityRef:
        if value is None:
            return cls("user", "unknown")
        if isinstance(value, EntityRef):
            return value
        if isinstance(value, tuple):
            return cls(*map(str, value))
        return cls(str(value.get("entity_kind", "")), str(value.get("entity_id", "")))


@dataclass(frozen=True)
class Scope:
    """Where an asset lives: one project, one (sanitised) branch, one type, one name."""

    project: str
    branch: str
    asset_type: str
    name: str

    def __post_init__(self) -> None:
        if self.asset_type not in ASSET_TYPES:
            raise RegistryError(
                f"asset type must be one of {', '.join(ASSET_TYPES)}, not {self.asset_type!r}"
            )
        for label, value in (("project", self.project), ("branch", self.branch),
                             ("asset name", self.name)):
            if not isinstance(value, str) or not value:
                raise RegistryError(f"{label} must be a non-empty string, not {value!r}")

    def __str__(self) -> str:
        return f"{self.asset_type} asset {self.name!r} in {self.project}/{self.branch}"


@dataclass(frozen=True)
class InstanceRecord:
    """One immutable registered version of an asset."""

    scope: Scope
    version: int
    kind: str
    description: str
    annotations: Mapping[str, str]
    tags: Mapping[str, str]
    blobs: tuple[str, ...]
    created_at: str
    created_by: EntityRef

    @property
    def id(self) -> str:
        return f"v{self.version}"


@dataclass(frozen=True)
class AssetSummary:
    """One asset scope with its newest version number and description."""

    scope: Scope
    description: str
    latest_version: int
    updated_at: str


@dataclass(frozen=True)
class AliasMove:
    """One append-only alias history entry; ``from_version`` is None for a first set,
    ``to_version`` None when the alias was unset."""

    scope: Scope
    alias: str
    from_version: int | None
    to_version: int | None
    by: EntityRef
    at: str
    reason: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "from": instance_id(self.from_version),
            "to": instance_id(self.to_version),
            "by": self.by.to_dict(),
            "at": self.at,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Consumption:
    """Lineage: ``consumer`` read instance ``version`` of ``scope``."""

    scope: Scope
    version: int
    consumer: EntityRef
    at: str


@dataclass(frozen=True)
class AssetDeletion:
    """An asset marked deleted: its instances up to ``through_version`` are no longer
    resolved or listed, and the aliases it had are dropped; instances, alias history,
    evidence and lineage are kept. Registering the name again starts after
    ``through_version`` (an instance id never names two instances)."""

    scope: Scope
    through_version: int
    aliases: Mapping[str, int]
    by: EntityRef
    at: str
    reason: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "deleted_through": f"v{self.through_version}",
            "aliases": {a: f"v{v}" for a, v in self.aliases.items()},
            "by": self.by.to_dict(),
            "at": self.at,
            "reason": self.reason,
        }


def event_wire_name(project: str, branch: str, name: str) -> str:
    """An event's name on the wire, as obproject's ``ProjectEvent`` and ``@project_trigger``
    spell it: ``prj.<project>.<branch>.<name>``."""
    return f"prj.{project}.{branch}.{name}"


def parse_wire_name(wire_name: str) -> tuple[str, str, str]:
    """``(project, branch, name)`` of ``prj.<project>.<branch>.<name>``. Project and
    (sanitised) branch names hold no dots, so everything after the third dot is the name
    (lifecycle event names have dots of their own). Anything else is a RegistryError."""
    parts = wire_name.split(".", 3) if isinstance(wire_name, str) else []
    if len(parts) != 4 or parts[0] != "prj" or not all(parts[1:]):
        raise RegistryError(
            f"event name {wire_name!r} is not a project event: expected "
            "prj.<project>.<branch>.<name>")
    return parts[1], parts[2], parts[3]


# -- lifecycle events ---------------------------------------------------------------------
#
# The registry publishes these itself, in the transaction of the change they announce, so an
# event exists exactly when its change does. Their names carry the asset (and the alias), as
# an Argo Events sensor built by Metaflow's @trigger filters on the event name only; the dots
# keep them apart from the policy's own event names, which are plain identifiers.

def new_instance_event(asset_type: str, asset: str) -> str:
    """``<type>.<asset>.new_instance``: a new instance of ``asset`` was registered (a
    training run, a promotion into the branch, a drift report)."""
    return f"{asset_type}.{asset}.new_instance"


def alias_event(asset_type: str, asset: str, alias: str) -> str:
    """``<type>.<asset>.alias.<alias>``: ``@alias`` of ``asset`` was moved."""
    return f"{asset_type}.{asset}.alias.{alias}"


def new_instance_payload(record: InstanceRecord, actor: EntityRef) -> dict[str, Any]:
    """What a new-instance event carries; ``instance`` is what triggered flows judge."""
    payload: dict[str, Any] = {
        "asset": record.scope.name,
        "asset_type": record.scope.asset_type,
        "instance": record.id,
        "kind": record.kind,
        "created_by": record.created_by.entity_id,
        "actor": actor.entity_id,
    }
    for key in ("promoted_from_branch", "promoted_from_instance"):
        if key in record.annotations:
            payload[key] = record.annotations[key]
    return payload


def alias_payload(move: AliasMove) -> dict[str, Any]:
    """What an alias-move event carries: ``from`` / ``to`` (``instance`` repeats ``to``, so
    every lifecycle event names the instance it is about under the same key; an unset moves
    to None)."""
    return {
        "asset": move.scope.name,
        "asset_type": move.scope.asset_type,
        "alias": move.alias,
        "from": instance_id(move.from_version),
        "to": instance_id(move.to_version),
        "instance": instance_id(move.to_version),
        "actor": move.by.entity_id,
        "reason": move.reason,
    }


@dataclass(frozen=True)
class EventRecord:
    """One published project event; ``wire_name`` is ``prj.<project>.<branch>.<name>``."""

    id: int
    project: str
    branch: str
    name: str
    payload: Mapping[str, Any] | None
    created_at: str
    producer: EntityRef

    @property
    def wire_name(self) -> str:
        return event_wire_name(self.project, self.branch, self.name)

    @property
    def instance(self) -> str | None:
        """The instance the event is about: the first of its payload's ``instance``,
        ``candidate``, ``current`` that is a string."""
        payload = self.payload or {}
        for key in ("instance", "candidate", "current"):
            if isinstance(payload.get(key), str):
                return payload[key]
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event": self.wire_name,
            "name": self.name,
            "project": self.project,
            "branch": self.branch,
            "payload": None if self.payload is None else dict(self.payload),
            "created_at": self.created_at,
            "producer": self.producer.to_dict(),
        }


@dataclass(frozen=True)
class EvidenceRecord:
    """An append-only decision record (gate, champion, promotion, drift) on one instance."""

    scope: Scope
    version: int
    kind: str
    rule: str
    passed: bool
    policy_hash: str | None
    details: Mapping[str, Any] = field(default_factory=dict)
    created_at: str = ""
    created_by: EntityRef = field(default_factory=lambda: EntityRef("user", "unknown"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "rule": self.rule,
            "passed": self.passed,
            "policy_hash": self.policy_hash,
            "details": dict(self.details),
            "created_at": self.created_at,
            "created_by": self.created_by.to_dict(),
            "instance": f"v{self.version}",
        }


@dataclass(frozen=True)
class DispatchRecord:
    """One (event, flow) start decided by ``flowpolicy dispatch``.

    ``claimed``: a dispatcher holds it until ``lease_until`` (seconds since the epoch); a
    claim whose lease ran out may be taken over, which changes ``token``. ``started``: the
    launcher holding the current token committed to run ``argv`` (``pid`` is that launcher);
    nothing starts it again. ``finished``: the run ended with ``status`` (``succeeded``;
    ``refused``, an expected refusal such as a failed gate; or ``failed``) and
    ``returncode``; ``reason`` is the refusal's one line, else the last error line.
    """

    id: int
    event_id: int
    flow: str
    #: the Metaflow flow (class) name, when known: with the run id it names the run
    flow_name: str | None
    branch: str
    argv: tuple[str, ...]
    cwd: str
    state: str
    token: str
    claimed_by: str
    lease_until: float
    attempts: int
    claimed_at: str
    started_at: str | None = None
    pid: int | None = None
    run_pathspec: str | None = None
    log_path: str | None = None
    finished_at: str | None = None
    status: str | None = None
    returncode: int | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "event_id": self.event_id, "flow": self.flow,
            "flow_name": self.flow_name, "branch": self.branch,
            "argv": list(self.argv), "cwd": self.cwd, "state": self.state,
            "claimed_by": self.claimed_by, "attempts": self.attempts,
            "claimed_at": self.claimed_at, "started_at": self.started_at, "pid": self.pid,
            "run": self.run_pathspec, "log": self.log_path, "finished_at": self.finished_at,
            "status": self.status, "returncode": self.returncode, "reason": self.reason,
        }


# -- instance specs ---------------------------------------------------------------------


@dataclass(frozen=True)
class InstanceSpec:
    """A parsed instance spec. Exactly one form: ``latest-back``, ``vversion`` or ``@alias``."""

    text: str
    back: int | None = None
    version: int | None = None
    alias: str | None = None


def parse_spec(spec: str) -> InstanceSpec:
    """Parse ``latest``, ``latest-N``, ``vN`` or ``@alias``; a malformed spec is a RegistryError."""
    if not isinstance(spec, str):
        raise RegistryError(f"instance spec must be a string ({_SPEC_FORMS}), not {spec!r}")
    if spec == "latest":
        return InstanceSpec(spec, back=0)
    if spec.startswith("latest-"):
        digits = spec[len("latest-"):]
        if not _is_number(digits):
            raise RegistryError(
                f"malformed instance spec {spec!r}: after 'latest-' comes a whole number of "
                f"versions back, e.g. 'latest-1'; expected {_SPEC_FORMS}"
            )
        return InstanceSpec(spec, back=int(digits))
    if spec.startswith("@"):
        alias = spec[1:]
        if not alias:
            raise RegistryError(
                "malformed instance spec '@': an alias name must follow '@', e.g. '@production'"
            )
        validate_alias(alias)
        return InstanceSpec(spec, alias=alias)
    if spec.startswith("v"):
        digits = spec[1:]
        if _is_number(digits) and int(digits) == 0:
            raise RegistryError(
                f"malformed instance spec {spec!r}: versions start at v1; expected {_SPEC_FORMS}"
            )
        if _is_number(digits) and not digits.startswith("0"):
            return InstanceSpec(spec, version=int(digits))
    # obproject passes any other string to the service as an instance id; the ids the
    # service (and every registry here) hands out are the "id" of a response, "v<N>"
    raise RegistryError(f"malformed instance spec {spec!r}: expected {_SPEC_FORMS}; an "
                        "instance id is the 'id' of a response or listed instance, e.g. 'v3'")


def _is_number(digits: str) -> bool:
    return digits.isascii() and digits.isdigit()


def validate_alias(alias: str) -> str:
    """Alias names: letters, digits, ``_ . -``, not starting with ``.``/``-``, ≤ 128 chars."""
    if not isinstance(alias, str) or not _ALIAS_RE.fullmatch(alias):
        raise RegistryError(
            f"invalid alias name {alias!r}: use letters, digits, '_', '.', '-' "
            f"(starting with a letter, digit or '_'), at most 128 characters"
        )
    return alias


def stringify(values: Mapping[str, Any] | None, what: str = "annotations") -> dict[str, str]:
    """Keys and values as strings, as obproject sends them (``str(v)``); None stays absent."""
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise RegistryError(
            f"{what} must be a mapping of names to values, not {type(values).__name__}")
    return {str(k): str(v) for k, v in values.items()}


def once_key(scope: Scope, key: Mapping[str, Any], annotations: Mapping[str, str]
             ) -> dict[str, str]:
    """``register_once``'s ``key`` as strings, once it is checked to be a non-empty part of
    the (stringified) ``annotations``."""
    match = stringify(key, "key")
    if not match or any(annotations.get(k) != v for k, v in match.items()):
        raise RegistryError(f"{scope}: register_once needs a non-empty key that is part of "
                            f"the annotations, not {match!r}")
    return match


def encode_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=_json_default)


def evidence_details_json(kind: str, rule: str, details: Mapping[str, Any] | None) -> str:
    """The details of one evidence record as JSON, once its kind and rule are checked; every
    backend stores evidence through this."""
    if kind not in EVIDENCE_KINDS:
        raise RegistryError(
            f"evidence kind must be one of {', '.join(EVIDENCE_KINDS)}, not {kind!r}")
    if not rule or not isinstance(rule, str):
        raise RegistryError("evidence needs a rule name")
    try:
        return encode_json(dict(details or {}))
    except TypeError as exc:
        raise RegistryError(f"evidence details for {rule!r} are not JSON: {exc}") from exc


def _json_default(value: Any) -> Any:
    # numpy scalars and arrays (drift statistics, metrics) arrive in evidence details
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def instance_id(version: int | None) -> str | None:
    """The instance id of a version number (``v3``); None (an unset alias) stays None."""
    return None if version is None else f"v{version}"


def utc_now() -> str:
    """ISO-8601 UTC with microseconds and a ``Z``, as the asset service emits."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def redact_url(url: str) -> str:
    """``url`` without a password (in its user part or a ``password=`` query item), for
    messages and reports."""
    parts = urllib.parse.urlsplit(url)
    items = parts.query.split("&")
    if parts.password is None and not any(i.lower().startswith("password=") for i in items):
        return url  # as given (rebuilding would change e.g. sqlite:////abs to sqlite:///abs)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        netloc = f"{userinfo.split(':', 1)[0]}@{host}"
    query = "&".join(item for item in items if item and not item.lower().startswith("password="))
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def version_range(latest: int, first: int = 1) -> str:
    """``v1…v3`` / ``v1`` / ``no versions`` for error messages (from ``first`` on)."""
    if latest < first:
        return "no versions"
    return f"v{first}" if latest == first else f"v{first}…v{latest}"


# -- the backend contract ---------------------------------------------------------------


@runtime_checkable
class Registry(Protocol):
    """What every registry backend provides. ``spec`` arguments take ``latest``, ``latest-N``,
    ``vN`` or ``@alias`` and raise :class:`RegistryError` naming what exists when they miss.

    Reads never create storage: where nothing is stored yet they raise RegistryError naming
    the place looked at; only ``register``, ``register_once`` and ``publish_event`` bring a
    registry into being. Damaged storage raises :class:`RegistryDamaged` from any method and
    is left as it is.

    Backends subclass it. The methods with long argument lists are written here once, over the
    backend's ``_register(scope, key, kind, created_by, description, annotations, tags, blobs,
    actor)`` (``register`` and ``register_once``; ``key`` None: always register),
    ``_move_alias(scope, alias, spec, by, reason, expected)`` (``set_alias`` and
    ``unset_alias``; ``spec`` None: unset), ``_add_evidence(scope, spec, kind, rule, passed,
    policy_hash, details_json, created_by)`` (the record checked, ``created_by`` an EntityRef)
    and ``_publish_event(project, branch, name, payload, producer)``."""

    url: str

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
        actor: EntityRef | None = None,
    ) -> InstanceRecord:
        """Append a new immutable instance ``v<latest+1>`` to ``scope`` (creating the asset)
        and, in the same transaction, its :func:`new_instance_event`, published by ``actor``
        (who registered it; default ``created_by``, the producer of what it holds)."""
        record, _ = self._register(scope, None, kind, created_by, description, annotations,
                                   tags, blobs, actor)
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
        actor: EntityRef | None = None,
    ) -> tuple[InstanceRecord, bool]:
        """:meth:`register`, unless ``scope`` already holds an instance whose annotations
        carry every ``key`` item: then the newest such instance and False (True: registered
        now, with its event). ``key`` must be part of ``annotations``. Decided in the
        registering transaction, so concurrent callers with the same key get one instance."""
        return self._register(scope, key, kind, created_by, description, annotations, tags,
                              blobs, actor)

    def resolve(self, scope: Scope, spec: str = "latest") -> InstanceRecord: ...

    def instances(self, scope: Scope, limit: int | None = 50, *,
                  include_deleted: bool = False) -> list[InstanceRecord]:
        """Newest first; deleted instances (see :meth:`delete_asset`) only when asked."""
        ...

    def assets(
        self, project: str | None = None, branch: str | None = None,
        asset_type: str | None = None, *, include_deleted: bool = False,
    ) -> list[AssetSummary]:
        """Asset scopes matching the filters (None: any), sorted; deleted assets only when
        asked."""
        ...

    def record_consumption(self, scope: Scope, version: int, consumer: EntityRef) -> None: ...

    def consumers(self, scope: Scope, version: int | None = None) -> list[Consumption]: ...

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
        """Move ``@alias`` and, in the same transaction, publish its :func:`alias_event`."""
        return self._move_alias(scope, alias, spec, by, reason, expected)

    def unset_alias(
        self,
        scope: Scope,
        alias: str,
        *,
        by: EntityRef,
        reason: str | None = None,
        expected: Any = ANY,
    ) -> AliasMove:
        """Remove ``@alias`` and append the move (to None) to its history; unsetting an
        alias that is not set raises RegistryError. ``expected`` as for ``set_alias``."""
        return self._move_alias(scope, alias, None, by, reason, expected)

    def get_alias(self, scope: Scope, alias: str) -> int | None: ...

    def aliases(self, scope: Scope) -> dict[str, int]: ...

    def alias_history(self, scope: Scope, alias: str | None = None) -> list[AliasMove]:
        """Oldest first."""
        ...

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
        """Append a decision record (``details`` JSON) to the instance ``spec`` names."""
        return self._add_evidence(scope, spec, kind, rule, bool(passed), policy_hash,
                                  evidence_details_json(kind, rule, details),
                                  EntityRef.from_any(created_by))

    def evidence(
        self, scope: Scope, spec: str = "latest", kind: str | None = None
    ) -> list[EvidenceRecord]:
        """Oldest first."""
        ...

    def publish_event(
        self,
        project: str,
        branch: str,
        name: str,
        payload: Mapping[str, Any] | None,
        producer: EntityRef,
    ) -> EventRecord:
        return self._publish_event(project, branch, name, payload, producer)

    def events(
        self, project: str | None = None, branch: str | None = None, name: str | None = None,
        *, after: int | None = None, limit: int | None = None,
    ) -> list[EventRecord]:
        """Oldest first; ``after``: only events with a larger id (a follower's cursor), at
        most ``limit`` of them. Ids grow in commit order, so a cursor never skips an event
        that commits late."""
        ...

    def newest_event_id(self) -> int:
        """The largest event id so far (0: none)."""
        ...

    def wait_for_events(self, after: int, timeout: float) -> bool:
        """Block until an event with an id larger than ``after`` exists (True) or ``timeout``
        seconds pass (False)."""
        ...

    # -- dispatch: which (event, flow) starts happened, decided once (flowpolicy dispatch) --

    def claim_dispatch(
        self, event_id: int, flow: str, *, flow_name: str | None, branch: str,
        argv: Sequence[str], cwd: str, claimer: str, lease_seconds: float,
    ) -> DispatchRecord | None:
        """Claim the start of ``flow`` (a key: the flow file) for event ``event_id`` for
        ``lease_seconds``, with a new token: a new claim, or the take-over of a ``claimed``
        one whose lease ran out (then its stored ``argv``/``cwd``/``branch`` are kept, so the
        original decision runs). None when someone holds a live claim or it was started already. One
        transaction: of any number of concurrent claimers at most one gets the record."""
        ...

    def start_dispatch(self, dispatch_id: int, token: str, *, pid: int, log_path: str | None
                       ) -> DispatchRecord | None:
        """``claimed`` → ``started`` if ``token`` is still the claim's (compare-and-set);
        the record, or None when the claim was taken over or is not ``claimed``. The
        caller runs the flow only on a record: this is the decision that it runs."""
        ...

    def note_dispatch_run(self, dispatch_id: int, run_pathspec: str) -> None:
        """Record the Metaflow run a ``started`` dispatch became."""
        ...

    def finish_dispatch(self, dispatch_id: int, *, status: str, returncode: int | None,
                        reason: str | None) -> None:
        """``started`` → ``finished`` with how the run ended (``succeeded``, ``refused``,
        ``failed``)."""
        ...

    def dispatch(self, dispatch_id: int) -> DispatchRecord:
        """One dispatch record; RegistryError when there is none."""
        ...

    def dispatches(self, *, event_id: int | None = None, state: str | None = None,
                   lease_expired: bool = False, limit: int | None = None
                   ) -> list[DispatchRecord]:
        """Dispatch records, oldest first; ``lease_expired``: only claims whose lease ran out
        (what a dispatcher takes over)."""
        ...

    def cursor(self, name: str) -> int:
        """A follower's stored position: the last event id it has handled (0: none)."""
        ...

    def advance_cursor(self, name: str, event_id: int) -> int:
        """Move cursor ``name`` forward to ``event_id`` (never back); its position now."""
        ...

    def info(self) -> dict[str, Any]:
        """What ``flowpolicy registry info`` shows: backend, location, server, and (SQL
        backends) schema version, bytes and rows per table, or (others) the guarantees kept."""
        ...

    def delete_asset(self, scope: Scope, *, by: EntityRef, reason: str | None = None
                     ) -> AssetDeletion | None:
        """Mark ``scope`` deleted (see :class:`AssetDeletion`); None when there is no live
        asset to delete (unknown, or deleted already and not registered since)."""
        ...

    def deletions(self, scope: Scope) -> list[AssetDeletion]:
        """Every deletion of ``scope``, oldest first."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class ChangeProbe(Protocol):
    """What a backend that can tell cheaply that *something* was committed hands out
    (``registry.change_probe()``): each call returns a token that differs from the previous
    one once another connection has committed a write. Readers that follow an alias (the
    model server) call it often and look the alias up only when the token moved."""

    def __call__(self) -> Any: ...

    def close(self) -> None: ...
