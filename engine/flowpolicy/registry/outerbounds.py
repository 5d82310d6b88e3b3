"""The Outerbounds backend: the same Registry Protocol on Outerbounds' asset service.

It speaks the asset service's HTTP API exactly as ``obproject`` (the optional
``outerbounds`` extra, ``ob-project-utils``) does — same endpoints, methods and payloads —
so flows move from the embedded registry to the platform by changing
``FLOWPOLICY_REGISTRY`` to ``outerbounds://``. The server and perimeter come from the
user's Outerbounds configuration (the ``OBP_API_SERVER``/``OBP_PERIMETER`` keys that
Outerbounds' Metaflow extension loads, or ``OBP_INTEGRATIONS_URL``/``OBP_PERIMETER`` in the
environment); ``outerbounds+http://host:port/<perimeter>`` names a server explicitly.

What it keeps, and what it cannot (the service has no transactions and no
compare-and-set; :data:`GUARANTEES`, shown by ``flowpolicy registry info``):

- Instances are numbered and kept immutable by the service. ``register`` returns the
  instance it registered, found among the asset's recent instances by what was sent, not
  whatever is newest when it looks.
- Evidence is kept on the service as instances of a companion data asset
  ``flowpolicy_evidence__<type>__<name>`` beside the asset (one instance per record, its
  annotations hold the record): append-only because the service's instances are immutable.
  Listings (``assets``) do not show these companions.
- Compare-and-set alias moves (``set_alias(expected=...)``, what champion rules use) raise
  :class:`CompareAndSetUnsupported` at the call, because a read-then-write would silently
  overwrite a move made in between. ``outerbounds://?alias_moves=read-then-write`` accepts
  that weaker mode knowingly: the alias is read, compared and then written, and a move made
  between the read and the write is lost. A plain move (no ``expected``) is one request.
- ``register_once`` (idempotent promotion) looks, then registers: two promotions of the same
  instance at the same moment may both register it.
- Alias history, event listing, waiting for events and dispatch records raise
  :class:`RegistryError`; events go to the platform's event bus through Metaflow's
  ``ArgoEvent``, as ``obproject.ProjectEvent`` sends them. The lifecycle events (a new
  instance, an alias move) are sent right after the change succeeded, not in one
  transaction with it: a process killed in between leaves the change without its event.
  Flows there are started by Argo Events, so ``flowpolicy dispatch`` refuses.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from flowpolicy.errors import RegistryError
from flowpolicy.registry.base import (
    ANY,
    WIRE_KIND,
    AliasConflict,
    AliasMove,
    AssetNotFound,
    AssetSummary,
    CompareAndSetUnsupported,
    Consumption,
    EntityRef,
    EventRecord,
    EvidenceRecord,
    InstanceRecord,
    Registry,
    Scope,
    alias_event,
    alias_payload,
    new_instance_event,
    new_instance_payload,
    once_key,
    parse_spec,
    stringify,
    utc_now,
    validate_alias,
)

#: Companion data assets holding evidence records: ``<prefix><type>__<name>``.
EVIDENCE_PREFIX = "flowpolicy_evidence__"
READ_THEN_WRITE = "read-then-write"

#: What this backend keeps of the Registry guarantees, as ``flowpolicy registry info`` says.
GUARANTEES: tuple[str, ...] = (
    "kept: instances numbered and immutable (by the service); register returns its own",
    "kept: evidence, append-only, as instances of companion data assets "
    f"{EVIDENCE_PREFIX}<type>__<name>",
    "refused: compare-and-set alias moves (champion rules) raise, unless the URL says "
    f"?alias_moves={READ_THEN_WRITE} (a move made in between is then lost)",
    "weaker: register_once (idempotent promotion) looks then registers; simultaneous "
    "promotions of one instance may both register it",
    "refused: alias history, event listing, waiting for events and dispatch records raise",
    "weaker: lifecycle events are sent after the change, not in its transaction",
)


def _refused(message: str) -> Callable[..., Any]:
    """A Registry method the service cannot provide: it raises RegistryError(``message``)."""
    def refuse(*_: Any, **__: Any) -> Any:
        raise RegistryError(message)
    return refuse


class OuterboundsRegistry(Registry):
    """Registry Protocol over the Outerbounds asset service's HTTP API."""

    def __init__(self, base_url: str, perimeter: str,
                 headers: Mapping[str, str] | None = None, timeout: float = 30.0, *,
                 read_then_write_alias_moves: bool = False):
        self.base_url = base_url.rstrip("/")
        self.perimeter = perimeter
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.read_then_write_alias_moves = read_then_write_alias_moves
        mode = f"?alias_moves={READ_THEN_WRITE}" if read_then_write_alias_moves else ""
        self.url = f"outerbounds+{self.base_url}/{perimeter}{mode}"

    @classmethod
    def from_url(cls, url: str) -> OuterboundsRegistry:
        """``outerbounds://`` (the user's Outerbounds config) or
        ``outerbounds+http(s)://host[:port]/<perimeter>``, either with
        ``?alias_moves=read-then-write`` to accept unguarded compare-and-set moves."""
        base, _, query = url.partition("?")
        options = urllib.parse.parse_qs(query, keep_blank_values=True)
        moves = options.pop("alias_moves", [None])[-1]
        if options or moves not in (None, READ_THEN_WRITE):
            raise RegistryError(f"registry URL {url!r}: the only option is "
                                f"?alias_moves={READ_THEN_WRITE}")
        if base.startswith("outerbounds+"):
            parsed = urllib.parse.urlsplit(base[len("outerbounds+"):])
            perimeter = parsed.path.strip("/")
            if parsed.scheme not in ("http", "https") or not parsed.netloc or not perimeter:
                raise RegistryError(
                    f"registry URL {url!r}: expected outerbounds+https://HOST/PERIMETER")
            registry = cls(f"{parsed.scheme}://{parsed.netloc}", perimeter)
        elif base.rstrip("/") in ("outerbounds:", "outerbounds:/", "outerbounds://"):
            registry = cls.from_config()
        else:
            raise RegistryError(f"registry URL {url!r}: use outerbounds:// or "
                                "outerbounds+https://HOST/PERIMETER")
        if moves:
            registry.read_then_write_alias_moves = True
            registry.url += f"?alias_moves={READ_THEN_WRITE}"
        return registry

    @classmethod
    def from_config(cls) -> OuterboundsRegistry:
        """Server, perimeter and auth headers from the user's Outerbounds configuration."""
        conf: dict[str, Any] = {}
        headers: dict[str, str] = {}
        try:
            import metaflow.metaflow_config as mf_config
            from metaflow_extensions.outerbounds.remote_config import init_config

            conf = dict(init_config() or {})
            headers = dict(getattr(mf_config, "SERVICE_HEADERS", None) or {})
        except ImportError:
            pass  # no Outerbounds extension: the environment may still name the service
        perimeter = conf.get("OBP_PERIMETER") or os.environ.get("OBP_PERIMETER")
        if conf.get("OBP_API_SERVER"):
            base = f"https://{conf['OBP_API_SERVER']}"
        elif os.environ.get("OBP_INTEGRATIONS_URL"):
            base = os.path.dirname(os.environ["OBP_INTEGRATIONS_URL"].rstrip("/"))
        else:
            base = None
        if not base or not perimeter:
            raise RegistryError(
                "FLOWPOLICY_REGISTRY=outerbounds:// needs an Outerbounds configuration "
                "(run `outerbounds configure`, install flowpolicy[outerbounds]) or "
                "OBP_INTEGRATIONS_URL and OBP_PERIMETER in the environment")
        return cls(base, perimeter, headers)

    @staticmethod
    def config_present() -> bool:
        """Whether an Outerbounds configuration is available to :meth:`from_config`."""
        try:
            OuterboundsRegistry.from_config()
        except RegistryError:
            return False
        return True

    # -- HTTP -----------------------------------------------------------------------------

    def _asset_path(self, scope: Scope, *rest: str) -> str:
        return self._branch_path(scope.project, scope.branch, scope.asset_type, scope.name, *rest)

    def _branch_path(self, project: str, branch: str, asset_type: str, *rest: str) -> str:
        parts = [project, "branches", branch, WIRE_KIND[asset_type], *rest]
        quoted = "/".join(urllib.parse.quote(p, safe="@") for p in parts)
        return f"/v1/perimeters/{urllib.parse.quote(self.perimeter)}/projects/{quoted}"

    def _request(self, method: str, path: str, body: Mapping[str, Any] | None = None,
                 *, missing: str | None = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base_url + path, data=data, method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json",
                     **self.headers})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            if exc.code == 404 and missing:
                raise AssetNotFound(f"{missing} (Outerbounds asset service: {detail})") from exc
            raise RegistryError(f"Outerbounds asset service: {method} {path} → HTTP "
                                f"{exc.code}: {detail}", status_code=exc.code) from exc
        except urllib.error.URLError as exc:
            raise RegistryError(f"cannot reach the Outerbounds asset service at "
                                f"{self.base_url}: {exc.reason}", status_code=503) from exc
        return json.loads(raw) if raw else {}

    # -- instances ------------------------------------------------------------------------

    def _register(self, scope: Scope, key: Mapping[str, str] | None, kind: str,
                  created_by: EntityRef, description: str | None,
                  annotations: Mapping[str, Any] | None, tags: Mapping[str, Any] | None,
                  blobs: Sequence[str] | None, actor: EntityRef | None
                  ) -> tuple[InstanceRecord, bool]:
        """With ``key``: read-then-write, not one transaction (the service has none): two
        callers at the same moment may both register, and only the instances the service
        lists as recent are looked through."""
        if key is not None:
            match = once_key(scope, key, stringify(annotations))
            listed = self.assets(scope.project, scope.branch, scope.asset_type)
            if any(summary.scope == scope for summary in listed):
                for record in self.instances(scope, None):
                    if all(record.annotations.get(k) == v for k, v in match.items()):
                        return record, False
        payload: dict[str, Any] = {"entity_ref": EntityRef.from_any(created_by).to_dict()}
        if description:
            payload["description"] = description
        payload[f"{'model' if scope.asset_type == 'model' else 'data'}_asset_kind"] = kind
        if tags is not None:
            payload["tags"] = [{"key": k, "value": v} for k, v in stringify(tags, "tags").items()]
        if blobs is not None:
            payload["blobs"] = [str(b) for b in blobs]
        if annotations is not None:
            payload["annotations"] = stringify(annotations)
        self._request("PATCH", self._asset_path(scope), payload)
        # the service answers without the new id: read it back, and make sure it is ours (a
        # registration by someone else may have landed in between)
        record = self._registered(scope, payload, kind)
        actor = EntityRef.from_any(actor if actor is not None else created_by)
        self.publish_event(scope.project, scope.branch,
                           new_instance_event(scope.asset_type, scope.name),
                           new_instance_payload(record, actor), actor)
        return record, True

    def _registered(self, scope: Scope, payload: dict[str, Any], kind: str) -> InstanceRecord:
        latest = self.resolve(scope, "latest")
        if _is_what_was_sent(latest, payload, kind):
            return latest
        for record in self.instances(scope, None):
            if _is_what_was_sent(record, payload, kind):
                return record
        raise RegistryError(
            f"{scope}: registered, but the service's recent instances do not show it (many "
            "registrations at once?); its instance id is unknown")

    def resolve(self, scope: Scope, spec: str = "latest") -> InstanceRecord:
        parse_spec(spec)
        raw = self._request("GET", self._asset_path(scope, "instances", spec),
                            missing=f"{spec} of {scope} not found")
        return _record(scope, raw)

    def _summary(self, scope: Scope) -> dict[str, Any]:
        return self._request("GET", self._asset_path(scope), missing=f"unknown {scope}")

    def instances(self, scope: Scope, limit: int | None = 50, *,
                  include_deleted: bool = False) -> list[InstanceRecord]:
        """``include_deleted`` changes nothing: the service keeps no deleted instances."""
        records = [_record(scope, raw) for raw in self._summary(scope).get("recent_instances", [])]
        return records if limit is None else records[:limit]

    def assets(self, project: str | None = None, branch: str | None = None,
               asset_type: str | None = None, *, include_deleted: bool = False,
               ) -> list[AssetSummary]:
        """The assets of a project branch, without the companions holding evidence."""
        if not project or not branch:
            raise RegistryError("listing Outerbounds assets needs a project and a branch")
        found = []
        for atype in ([asset_type] if asset_type else ["data", "model"]):
            items, continuation, seen = [], None, set()
            while True:
                path = self._branch_path(project, branch, atype)
                if continuation:
                    path += "?" + urllib.parse.urlencode({"continuation": continuation})
                page = self._request("GET", path)
                items += page.get("items", [])
                continuation = page.get("continuation")
                if not continuation or continuation in seen:
                    break
                seen.add(continuation)
            for item in items:
                info = item.get("asset", item)
                name = info.get("name") or info.get("id")
                if name.startswith(EVIDENCE_PREFIX):
                    continue
                latest = item.get("latest_instance") or {}
                version = _version_number(latest.get("id", "v0"))
                found.append(AssetSummary(Scope(project, branch, atype, name),
                                          info.get("description") or "", version,
                                          latest.get("created_at", "")))
        return sorted(found, key=lambda s: (s.scope.asset_type, s.scope.name))

    # -- lineage --------------------------------------------------------------------------

    def record_consumption(self, scope: Scope, version: int, consumer: EntityRef) -> None:
        self._request("PUT", self._asset_path(scope, "instances", f"v{int(version)}"),
                      {"entity_ref": EntityRef.from_any(consumer).to_dict()},
                      missing=f"v{version} of {scope} not found")

    def consumers(self, scope: Scope, version: int | None = None) -> list[Consumption]:
        found = []
        for entry in self._summary(scope).get("recently_consumed_by", []):
            ref = entry.get("entity_ref", entry)
            used = _version_number(entry.get("instance_id", "v0"))
            if version is None or used == version:
                found.append(Consumption(scope, used, EntityRef.from_any(ref),
                                         entry.get("consumed_at", "")))
        return found

    # -- aliases --------------------------------------------------------------------------

    def aliases(self, scope: Scope) -> dict[str, int]:
        listed = self._request("GET", self._asset_path(scope, "aliases"),
                               missing=f"unknown {scope}")
        return {a["name"]: _version_number(a.get("instance_id", "v0"))
                for a in listed.get("aliases", [])}

    def get_alias(self, scope: Scope, alias: str) -> int | None:
        return self.aliases(scope).get(validate_alias(alias))

    def _move_alias(self, scope: Scope, alias: str, spec: str | None, by: EntityRef,
                    reason: str | None, expected: Any) -> AliasMove:
        """One PUT; with ``expected`` a read, a compare and a PUT, only where the URL accepts
        that (see the module notes), else :class:`CompareAndSetUnsupported`."""
        if spec is None:
            raise RegistryError("the Outerbounds asset service has no way to unset an alias "
                                "from here; point it at another instance with set_alias")
        validate_alias(alias)
        if expected is not ANY and not self.read_then_write_alias_moves:
            raise CompareAndSetUnsupported(
                f"cannot move @{alias} on {scope} only if it is still "
                f"{expected or 'unset'}: the Outerbounds asset service has no compare-and-set, "
                "so a move made by someone else meanwhile would be overwritten silently. Use a "
                "registry with transactions (sqlite:///… or postgresql://…) for this rule, or "
                f"accept that weaker mode with FLOWPOLICY_REGISTRY=outerbounds://"
                f"?alias_moves={READ_THEN_WRITE}")
        target = self.resolve(scope, spec)
        current = self.get_alias(scope, alias)
        if expected is not ANY:
            want = None if expected is None else _version_number(str(expected))
            if current != want:
                raise AliasConflict.moved(alias, scope, current, want)
        by = EntityRef.from_any(by)
        self._request("PUT", self._asset_path(scope, "aliases", alias),
                      {"instance_id": target.id, "entity_ref": by.to_dict()})
        move = AliasMove(scope, alias, current, target.version, by, utc_now(), reason)
        self.publish_event(scope.project, scope.branch,
                           alias_event(scope.asset_type, scope.name, alias),
                           alias_payload(move), by)
        return move

    alias_history = _refused("the Outerbounds asset service keeps no alias history")

    # -- deletion -------------------------------------------------------------------------

    delete_asset = _refused(
        "the Outerbounds asset service deletes an asset with all its instances and "
        "lineage; flowpolicy's deletion keeps them, so it needs the embedded registry "
        "(obproject's Asset.delete_*_asset does the hard delete)")
    deletions = _refused("the Outerbounds asset service keeps no record of deletions")

    # -- evidence and events --------------------------------------------------------------

    @staticmethod
    def _evidence_scope(scope: Scope) -> Scope:
        return Scope(scope.project, scope.branch, "data",
                     f"{EVIDENCE_PREFIX}{scope.asset_type}__{scope.name}")

    def _add_evidence(self, scope: Scope, spec: str, kind: str, rule: str, passed: bool,
                      policy_hash: str | None, details_json: str, created_by: EntityRef
                      ) -> EvidenceRecord:
        """One new instance of the companion evidence asset (see the module notes)."""
        target = self.resolve(scope, spec)
        annotations = {"instance": target.id, "kind": kind, "rule": rule,
                       "passed": "true" if passed else "false", "details": details_json}
        if policy_hash is not None:
            annotations["policy_hash"] = policy_hash
        stored = self.register(self._evidence_scope(scope), kind="flowpolicy_evidence",
                               created_by=created_by, annotations=annotations,
                               description=f"evidence records of {scope}")
        return _evidence(scope, stored)

    def evidence(self, scope: Scope, spec: str = "latest", kind: str | None = None
                 ) -> list[EvidenceRecord]:
        target = self.resolve(scope, spec)
        companion = self._evidence_scope(scope)
        try:
            recent = self.instances(companion, None)
        except AssetNotFound:
            return []  # no evidence recorded on this asset yet
        # the service lists recent instances only: fetch the older ones one by one
        older = range((recent[-1].version if recent else 1) - 1, 0, -1)
        stored = [*recent, *(self.resolve(companion, f"v{v}") for v in older)]
        records = [_evidence(scope, r) for r in reversed(stored)
                   if r.annotations.get("instance") == target.id]
        return [r for r in records if kind is None or r.kind == kind]

    def info(self) -> dict[str, Any]:
        return {"backend": "outerbounds", "location": self.base_url,
                "server": f"Outerbounds asset service, perimeter {self.perimeter}",
                "guarantees": GUARANTEES}

    def _publish_event(self, project: str, branch: str, name: str,
                       payload: Mapping[str, Any] | None, producer: EntityRef) -> EventRecord:
        from metaflow.integrations import ArgoEvent

        record = EventRecord(0, project, branch, name, payload, utc_now(),
                             EntityRef.from_any(producer))
        ArgoEvent(record.wire_name).publish(payload=dict(payload or {}))
        return record

    events = newest_event_id = _refused("the Outerbounds event bus cannot be listed from here")
    wait_for_events = _refused("the Outerbounds event bus cannot be followed from here; "
                               "deployed flows are triggered by Argo Events")
    _no_dispatch = _refused(
        "flowpolicy dispatch needs a registry with an events table (SQLite or "
        "PostgreSQL); on Outerbounds the platform's Argo Events starts the triggered flows")
    claim_dispatch = start_dispatch = note_dispatch_run = finish_dispatch = _no_dispatch
    dispatch = dispatches = cursor = advance_cursor = _no_dispatch

    def close(self) -> None:
        """Nothing to release: every call is one HTTP request."""


def _version_number(instance_id: str) -> int:
    try:
        return int(instance_id.lstrip("v"))
    except ValueError:
        return 0


def _is_what_was_sent(record: InstanceRecord, payload: Mapping[str, Any], kind: str) -> bool:
    return (record.created_by.to_dict() == payload["entity_ref"] and record.kind == kind
            and dict(record.annotations) == payload.get("annotations", {})
            and dict(record.tags) == {t["key"]: t["value"] for t in payload.get("tags", [])}
            and list(record.blobs) == payload.get("blobs", []))


def _evidence(scope: Scope, stored: InstanceRecord) -> EvidenceRecord:
    """The evidence record an instance of a companion evidence asset holds."""
    notes = stored.annotations
    try:
        details = json.loads(notes.get("details", "{}"))
    except json.JSONDecodeError as exc:
        raise RegistryError(f"evidence record {stored.id} of {scope} holds details that are "
                            f"not JSON: {exc}") from exc
    return EvidenceRecord(scope, _version_number(notes.get("instance", "v0")),
                          notes.get("kind", ""), notes.get("rule", ""),
                          notes.get("passed") == "true", notes.get("policy_hash"),
                          MappingProxyType(details), stored.created_at, stored.created_by)


def _record(scope: Scope, raw: Mapping[str, Any]) -> InstanceRecord:
    props = raw.get("model_properties") or raw.get("data_properties") or {}
    kind_on_wire = (raw.get("asset") or {}).get("kind")
    if kind_on_wire and kind_on_wire != WIRE_KIND[scope.asset_type]:
        raise RegistryError(f"asset service answered a {kind_on_wire} instance for {scope}")
    return InstanceRecord(
        scope=scope,
        version=_version_number(str(raw.get("id", "v0"))),
        kind=props.get("model_kind") or props.get("data_kind") or "",
        description=(raw.get("asset") or {}).get("description") or "",
        annotations=MappingProxyType(dict(props.get("annotations") or {})),
        tags=MappingProxyType({t["key"]: t["value"] for t in raw.get("tags") or []}),
        blobs=tuple(props.get("blobs") or ()),
        created_at=raw.get("created_at", ""),
        created_by=EntityRef.from_any(raw.get("created_by")),
    )
