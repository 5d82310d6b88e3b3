"""The Outerbounds backend: the same Registry Protocol on Outerbounds' asset service.

It speaks the asset service's HTTP API exactly as ``obproject`` (the optional
``outerbounds`` extra, ``ob-project-utils``) does — same endpoints, methods and payloads —
so flows move from the embedded registry to the platform by changing
``FLOWPOLICY_REGISTRY`` to ``outerbounds://``. The server and perimeter come from the
user's Outerbounds configuration (the ``OBP_API_SERVER``/``OBP_PERIMETER`` keys that
Outerbounds' Metaflow extension loads, or ``OBP_INTEGRATIONS_URL``/``OBP_PERIMETER`` in the
environment); ``outerbounds+http://host:port/<perimeter>`` names a server explicitly.

What the service does not offer, this backend does not pretend to: alias history,
evidence records and event listing raise :class:`RegistryError`; a compare-and-set alias
move and ``register_once`` are each a read-then-write (the service has no CAS and no
transactions), and events go to the platform's event bus through Metaflow's ``ArgoEvent``,
as ``obproject.ProjectEvent`` sends them.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from flowpolicy.errors import RegistryError
from flowpolicy.registry.base import (
    ANY,
    WIRE_KIND,
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
    Scope,
    parse_spec,
    stringify,
    utc_now,
    validate_alias,
)

_TYPE_OF_KIND = {"models": "model", "data": "data"}


class OuterboundsRegistry:
    """Registry Protocol over the Outerbounds asset service's HTTP API."""

    def __init__(self, base_url: str, perimeter: str,
                 headers: Mapping[str, str] | None = None, timeout: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self.perimeter = perimeter
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.url = f"outerbounds+{self.base_url}/{perimeter}"

    @classmethod
    def from_url(cls, url: str) -> OuterboundsRegistry:
        """``outerbounds://`` (the user's Outerbounds config) or
        ``outerbounds+http(s)://host[:port]/<perimeter>``."""
        if url.startswith("outerbounds+"):
            parsed = urllib.parse.urlsplit(url[len("outerbounds+"):])
            perimeter = parsed.path.strip("/")
            if parsed.scheme not in ("http", "https") or not parsed.netloc or not perimeter:
                raise RegistryError(
                    f"registry URL {url!r}: expected outerbounds+https://HOST/PERIMETER")
            return cls(f"{parsed.scheme}://{parsed.netloc}", perimeter)
        if url.rstrip("/") in ("outerbounds:", "outerbounds:/", "outerbounds://"):
            return cls.from_config()
        raise RegistryError(f"registry URL {url!r}: use outerbounds:// or "
                            "outerbounds+https://HOST/PERIMETER")

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

    def register(self, scope: Scope, *, kind: str, created_by: EntityRef,
                 description: str | None = None, annotations: Mapping[str, Any] | None = None,
                 tags: Mapping[str, Any] | None = None, blobs: Sequence[str] | None = None,
                 ) -> InstanceRecord:
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
        # the service answers without the new id; read it back as obproject's promotion does
        # (a concurrent registration in between would be returned instead)
        return self.resolve(scope, "latest")

    def register_once(self, scope: Scope, key: Mapping[str, str], *, kind: str,
                      created_by: EntityRef, description: str | None = None,
                      annotations: Mapping[str, Any] | None = None,
                      tags: Mapping[str, Any] | None = None,
                      blobs: Sequence[str] | None = None) -> tuple[InstanceRecord, bool]:
        """Read-then-write, not one transaction (the service has none): two callers at the
        same moment may both register, and only the instances the service lists as recent
        are looked through."""
        match = stringify(key, "key")
        if not match or any(stringify(annotations).get(k) != v for k, v in match.items()):
            raise RegistryError(
                f"{scope}: register_once needs a non-empty key that is part of the "
                f"annotations, not {match!r}")
        listed = self.assets(scope.project, scope.branch, scope.asset_type)
        if any(summary.scope == scope for summary in listed):
            for record in self.instances(scope, None):
                if all(record.annotations.get(k) == v for k, v in match.items()):
                    return record, False
        return self.register(scope, kind=kind, created_by=created_by, description=description,
                             annotations=annotations, tags=tags, blobs=blobs), True

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

    def set_alias(self, scope: Scope, alias: str, spec: str = "latest", *, by: EntityRef,
                  reason: str | None = None, expected: Any = ANY) -> AliasMove:
        validate_alias(alias)
        target = self.resolve(scope, spec)
        current = self.get_alias(scope, alias)
        if expected is not ANY:
            want = None if expected is None else _version_number(str(expected))
            if current != want:
                raise AliasConflict.moved(alias, scope, current, want)
        by = EntityRef.from_any(by)
        self._request("PUT", self._asset_path(scope, "aliases", alias),
                      {"instance_id": target.id, "entity_ref": by.to_dict()})
        return AliasMove(scope, alias, current, target.version, by, utc_now(), reason)

    def unset_alias(self, scope: Scope, alias: str, *, by: EntityRef,
                    reason: str | None = None, expected: Any = ANY) -> AliasMove:
        raise RegistryError("the Outerbounds asset service has no way to unset an alias from "
                            "here; point it at another instance with set_alias")

    def alias_history(self, scope: Scope, alias: str | None = None) -> list[AliasMove]:
        raise RegistryError("the Outerbounds asset service keeps no alias history")

    # -- deletion -------------------------------------------------------------------------

    def delete_asset(self, scope: Scope, *, by: EntityRef, reason: str | None = None
                     ) -> AssetDeletion | None:
        raise RegistryError(
            "the Outerbounds asset service deletes an asset with all its instances and "
            "lineage; flowpolicy's deletion keeps them, so it needs the embedded registry "
            "(obproject's Asset.delete_*_asset does the hard delete)")

    def deletions(self, scope: Scope) -> list[AssetDeletion]:
        raise RegistryError("the Outerbounds asset service keeps no record of deletions")

    # -- evidence and events --------------------------------------------------------------

    def add_evidence(self, scope: Scope, spec: str, **_: Any) -> EvidenceRecord:
        raise RegistryError("evidence records need the embedded registry; the Outerbounds "
                            "asset service has no place for them")

    def evidence(self, scope: Scope, spec: str = "latest", kind: str | None = None
                 ) -> list[EvidenceRecord]:
        raise RegistryError("evidence records need the embedded registry; the Outerbounds "
                            "asset service has no place for them")

    def publish_event(self, project: str, branch: str, name: str,
                      payload: Mapping[str, Any] | None, producer: EntityRef) -> EventRecord:
        from metaflow.integrations import ArgoEvent

        record = EventRecord(0, project, branch, name, payload, utc_now(),
                             EntityRef.from_any(producer))
        ArgoEvent(record.wire_name).publish(payload=dict(payload or {}))
        return record

    def events(self, project: str | None = None, branch: str | None = None,
               name: str | None = None) -> list[EventRecord]:
        raise RegistryError("the Outerbounds event bus cannot be listed from here")

    def close(self) -> None:
        """Nothing to release: every call is one HTTP request."""


def _version_number(instance_id: str) -> int:
    try:
        return int(instance_id.lstrip("v"))
    except ValueError:
        return 0


def _record(scope: Scope, raw: Mapping[str, Any]) -> InstanceRecord:
    props = raw.get("model_properties") or raw.get("data_properties") or {}
    kind_on_wire = (raw.get("asset") or {}).get("kind")
    if kind_on_wire and _TYPE_OF_KIND.get(kind_on_wire) != scope.asset_type:
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
