"""``Asset``: obproject's asset client, backed by a flowpolicy registry.

Method names, arguments, defaults and response shapes follow ``obproject.Asset`` so code
written for Outerbounds runs unchanged; the flowpolicy additions (aliases with history,
evidence, events) are the methods after ``get_flowproject_spec``. Registry errors from the
obproject methods are also ``requests.HTTPError`` (:mod:`flowpolicy.runtime.service_errors`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from flowpolicy.errors import RegistryError
from flowpolicy.registry import open_registry
from flowpolicy.registry.base import (
    ANY,
    ASSET_TYPE_OF,
    WIRE_KIND,
    EntityRef,
    InstanceRecord,
    Registry,
    Scope,
    instance_id,
    validate_alias,
)
from flowpolicy.runtime.branch import deployment_spec, resolve_branch, resolve_project
from flowpolicy.runtime.identity import current_entity
from flowpolicy.runtime.service_errors import http_error_iter, http_errors

#: obproject lists at most this many instances, newest first.
LIST_LIMIT = 50


class AssetInstance(NamedTuple):
    """One instance as obproject's ``list_*_asset_instances`` yields it."""

    id: str
    created_at: datetime
    created_by: EntityRef
    annotations: dict[str, str]
    tags: dict[str, str]
    blobs: list[str]
    kind: str
    asset_kind: str


class DeleteResult(NamedTuple):
    """What ``delete_*_asset`` changed: the catalog (here: the registry marked the asset
    deleted) and the deployed project's metadata (flowpolicy keeps none: always False)."""

    catalog_deleted: bool
    metadata_updated: bool


def instance_response(record: InstanceRecord) -> dict[str, Any]:
    """The obproject consume/peek response for one instance."""
    model = record.scope.asset_type == "model"
    props, kind_key = ("model_properties", "model_kind") if model else (
        "data_properties", "data_kind")
    return {
        "id": record.id,
        "created_at": record.created_at,
        "created_by": record.created_by.to_dict(),
        "asset": {
            "name": record.scope.name,
            "kind": WIRE_KIND[record.scope.asset_type],
            "description": record.description,
        },
        props: {
            kind_key: record.kind,
            "annotations": dict(record.annotations),
            "blobs": list(record.blobs),
        },
        "tags": [{"key": k, "value": v} for k, v in record.tags.items()],
        "project": record.scope.project,
        "branch": record.scope.branch,
    }


def asset_instance(record: InstanceRecord) -> AssetInstance:
    return AssetInstance(
        id=record.id,
        created_at=datetime.fromisoformat(record.created_at.replace("Z", "+00:00")),
        created_by=record.created_by,
        annotations=dict(record.annotations),
        tags=dict(record.tags),
        blobs=list(record.blobs),
        kind=WIRE_KIND[record.scope.asset_type],
        asset_kind=record.kind,
    )


def _asset_type(value: str) -> str:
    if isinstance(value, str) and value in ASSET_TYPE_OF:
        return ASSET_TYPE_OF[value]
    raise RegistryError(f"asset_type must be 'model' or 'data', not {value!r}")


class Asset:
    """Register, consume and inspect the assets of one project branch.

    ``project``/``branch`` default to the running flow's (or the environment's) values;
    the branch is sanitised as obproject does. ``read_only`` turns registration into a
    no-op and consumption into a peek (no lineage), as obproject does; flowpolicy's own
    writes (aliases, evidence, events) raise instead of silently doing nothing.
    ``registry`` (a backend or URL) defaults to :func:`flowpolicy.registry.open_registry`;
    with ``read_only`` a URL is opened read-only, so a registry that is not there (a
    mistyped ``FLOWPOLICY_REGISTRY``, a run from another folder) is a RegistryError naming
    the path at once, and nothing is ever created. Reads never create a registry either way.
    """

    def __init__(
        self,
        project: str | None = None,
        branch: str | None = None,
        entity_ref: EntityRef | Mapping[str, str] | None = None,
        read_only: bool = False,
        *,
        registry: Registry | str | None = None,
    ):
        self.project = resolve_project(project)
        self.branch = resolve_branch(explicit=branch)
        self._entity = EntityRef.from_any(entity_ref) if entity_ref else current_entity()
        #: obproject's spelling: ``{"entity_kind": ..., "entity_id": ...}``
        self.entity_ref: dict[str, str] = self._entity.to_dict()
        self.read_only = read_only
        if registry is None or isinstance(registry, str):
            registry = open_registry(registry, read_only=read_only)
        self.registry: Registry = registry

    def __repr__(self) -> str:
        mode = ", read_only" if self.read_only else ""
        return f"Asset({self.project}/{self.branch}{mode})"

    @property
    def meta(self) -> dict[str, Any]:
        """Who and where, keyed as obproject's (``entity_reg`` is its spelling, which the
        readers of its evaluation logs expect)."""
        return {"project": self.project, "branch": self.branch,
                "entity_reg": dict(self.entity_ref)}

    def scope(self, name: str, asset_type: str = "model") -> Scope:
        return Scope(self.project, self.branch, _asset_type(asset_type), name)

    # -- obproject's API ----------------------------------------------------------------

    def _register(self, asset_type: str, name: str, description: str | None, kind: str | None,
                  blobs: Sequence[str] | None, annotations: Mapping[str, Any] | None,
                  tags: Mapping[str, Any] | None) -> dict[str, Any] | None:
        if self.read_only:
            return None
        record = self.registry.register(
            self.scope(name, asset_type), kind=kind or "generic", created_by=self._entity,
            description=description, annotations=annotations, tags=tags, blobs=blobs,
        )
        return instance_response(record)

    @http_errors
    def register_data_asset(self, name: str, description: str | None = None,
                            kind: str | None = None, blobs: Sequence[str] | None = None,
                            annotations: Mapping[str, Any] | None = None,
                            tags: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        """Append a new instance of data ``name``; its response (None if read_only)."""
        return self._register("data", name, description, kind, blobs, annotations, tags)

    @http_errors
    def register_model_asset(self, name: str, description: str | None = None,
                             kind: str | None = None, blobs: Sequence[str] | None = None,
                             annotations: Mapping[str, Any] | None = None,
                             tags: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        """Append a new instance of model ``name``; its response (None if read_only)."""
        return self._register("model", name, description, kind, blobs, annotations, tags)

    def _consume(self, asset_type: str, name: str, instance: str) -> dict[str, Any]:
        scope = self.scope(name, asset_type)
        record = self.registry.resolve(scope, instance)
        if not self.read_only:
            self.registry.record_consumption(scope, record.version, self._entity)
        return instance_response(record)

    @http_errors
    def consume_data_asset(self, name: str, instance: str = "latest") -> dict[str, Any]:
        """Resolve ``instance`` and record this entity as its consumer (unless read_only)."""
        return self._consume("data", name, instance)

    @http_errors
    def consume_model_asset(self, name: str, instance: str = "latest") -> dict[str, Any]:
        """Resolve ``instance`` and record this entity as its consumer (unless read_only)."""
        return self._consume("model", name, instance)

    @http_errors
    def peek_data_asset(self, name: str, instance: str = "latest") -> dict[str, Any]:
        """Resolve ``instance`` without recording lineage."""
        return instance_response(self.registry.resolve(self.scope(name, "data"), instance))

    @http_errors
    def peek_model_asset(self, name: str, instance: str = "latest") -> dict[str, Any]:
        """Resolve ``instance`` without recording lineage."""
        return instance_response(self.registry.resolve(self.scope(name, "model"), instance))

    def _list_assets(self, asset_type: str, tags: Mapping[str, str] | None) -> dict[str, Any]:
        items = []
        for summary in self.registry.assets(self.project, self.branch, asset_type):
            latest = instance_response(self.registry.resolve(summary.scope, "latest"))
            if tags:
                # compared as given, as obproject does: {"v": 2} never matches the tag "2"
                have = {t["key"]: t["value"] for t in latest["tags"]}
                if not all(have.get(k) == v for k, v in tags.items()):
                    continue
            items.append({
                "asset": {"id": summary.scope.name, "name": summary.scope.name,
                          "kind": WIRE_KIND[asset_type], "description": summary.description},
                "latest_instance": latest,
                "instance_count": summary.latest_version,
                "updated_at": summary.updated_at,
            })
        return {"items": items, "continuation": None}

    @http_errors
    def list_data_assets(self, tags: Mapping[str, str] | None = None) -> dict[str, Any]:
        """``{"items": [...], "continuation": None}``; ``tags`` filters on the latest instance."""
        return self._list_assets("data", tags)

    @http_errors
    def list_model_assets(self, tags: Mapping[str, str] | None = None) -> dict[str, Any]:
        """``{"items": [...], "continuation": None}``; ``tags`` filters on the latest instance."""
        return self._list_assets("model", tags)

    def list_data_asset_instances(self, name: str) -> Iterator[AssetInstance]:
        """Up to 50 instances, newest first (read at the first ``next``, as obproject's)."""
        return self._instances("data", name)

    def list_model_asset_instances(self, name: str) -> Iterator[AssetInstance]:
        """Up to 50 instances, newest first (read at the first ``next``, as obproject's)."""
        return self._instances("model", name)

    def _instances(self, asset_type: str, name: str) -> Iterator[AssetInstance]:
        scope = self.scope(name, asset_type)
        return http_error_iter(lambda: (
            asset_instance(r) for r in self.registry.instances(scope, LIST_LIMIT)))

    @http_errors
    def delete_data_asset(self, name: str, *, reason: str | None = None) -> DeleteResult:
        """Mark data ``name`` deleted; its instances, history and evidence stay (see
        :class:`~flowpolicy.registry.base.AssetDeletion`). Idempotent."""
        return self._delete("data", name, reason)

    @http_errors
    def delete_model_asset(self, name: str, *, reason: str | None = None) -> DeleteResult:
        """Mark model ``name`` deleted; its instances, history and evidence stay (see
        :class:`~flowpolicy.registry.base.AssetDeletion`). Idempotent."""
        return self._delete("model", name, reason)

    def _delete(self, asset_type: str, name: str, reason: str | None) -> DeleteResult:
        if self.read_only:
            raise RuntimeError(f"refusing to delete {asset_type} asset {name!r}: client is "
                               "read_only")
        deletion = self.registry.delete_asset(self.scope(name, asset_type), by=self._entity,
                                              reason=reason)
        if deletion is not None:
            print(f"Deleted {asset_type} asset: {name} (v1…v{deletion.through_version} kept "
                  "with their history)")
        return DeleteResult(catalog_deleted=deletion is not None, metadata_updated=False)

    def get_flowproject_spec(self) -> dict[str, Any] | None:
        """The deploy-time spec of the running ProjectFlow when it was deployed for this
        project and branch (its ``project_spec`` Config); None otherwise, as obproject answers
        for a branch with nothing deployed."""
        return deployment_spec(self.project, self.branch)

    # -- flowpolicy additions -----------------------------------------------------------

    def _require_writable(self, what: str) -> None:
        if self.read_only:
            raise RegistryError(f"cannot {what}: this Asset client is read_only")

    def set_alias(self, name: str, alias: str, instance: str = "latest", *,
                  asset_type: str = "model", reason: str | None = None,
                  expected: Any = ANY) -> dict[str, Any]:
        """Point ``@alias`` at ``instance`` atomically and append the move to its history.

        ``expected`` makes it compare-and-set: an instance id (``"v3"``) the alias must point
        at now, or None for "must not exist yet"; otherwise :class:`AliasConflict` is raised.
        """
        self._require_writable(f"move alias @{alias}")
        move = self.registry.set_alias(self.scope(name, asset_type), validate_alias(alias),
                                       instance, by=self._entity, reason=reason,
                                       expected=expected)
        return move.to_dict()

    def unset_alias(self, name: str, alias: str, *, asset_type: str = "model",
                    reason: str | None = None, expected: Any = ANY) -> dict[str, Any]:
        """Remove ``@alias`` and append the move (to None) to its history; ``expected`` as
        for :meth:`set_alias`."""
        self._require_writable(f"unset alias @{alias}")
        move = self.registry.unset_alias(self.scope(name, asset_type), validate_alias(alias),
                                         by=self.entity_ref, reason=reason, expected=expected)
        return move.to_dict()

    def get_alias(self, name: str, alias: str, *, asset_type: str = "model") -> str | None:
        """The instance id ``@alias`` points at, or None when it is not set."""
        return instance_id(self.registry.get_alias(self.scope(name, asset_type), alias))

    def list_aliases(self, name: str, *, asset_type: str = "model") -> dict[str, str]:
        return {a: f"v{v}" for a, v in self.registry.aliases(self.scope(name, asset_type)).items()}

    def alias_history(self, name: str, alias: str | None = None,
                      asset_type: str = "model") -> list[dict[str, Any]]:
        """Every move of ``@alias`` (all aliases if None), oldest first: alias, from, to, by,
        at, reason."""
        return [m.to_dict() for m in
                self.registry.alias_history(self.scope(name, asset_type), alias)]

    def deletions(self, name: str, *, asset_type: str = "model") -> list[dict[str, Any]]:
        """Every deletion of ``name``, oldest first: deleted_through, aliases, by, at, reason."""
        return [d.to_dict() for d in self.registry.deletions(self.scope(name, asset_type))]

    def list_consumers(self, name: str, instance: str | None = None, *,
                       asset_type: str = "model") -> list[dict[str, Any]]:
        """Lineage: who consumed ``instance`` (every instance if None), oldest first."""
        scope = self.scope(name, asset_type)
        version = None if instance is None else self.registry.resolve(scope, instance).version
        return [{"instance": f"v{c.version}", "consumer": c.consumer.to_dict(), "at": c.at}
                for c in self.registry.consumers(scope, version)]

    def record_evidence(self, name: str, instance: str, *, asset_type: str, kind: str,
                        rule: str, passed: bool, policy_hash: str | None,
                        details: Mapping[str, Any] | None) -> dict[str, Any]:
        """Append a decision record (gate, champion, promotion, drift) to one instance."""
        self._require_writable(f"record {kind} evidence")
        record = self.registry.add_evidence(
            self.scope(name, asset_type), instance, kind=kind, rule=rule, passed=passed,
            policy_hash=policy_hash, details=details, created_by=self._entity)
        return record.to_dict()

    def evidence(self, name: str, instance: str = "latest", *, asset_type: str = "model",
                 kind: str | None = None) -> list[dict[str, Any]]:
        """Decision records on one instance, oldest first."""
        return [r.to_dict() for r in
                self.registry.evidence(self.scope(name, asset_type), instance, kind)]

    def publish_event(self, name: str, payload: Mapping[str, Any] | None = None
                      ) -> dict[str, Any]:
        """Append ``prj.<project>.<branch>.<name>`` to the events table."""
        self._require_writable(f"publish event {name!r}")
        return self.registry.publish_event(self.project, self.branch, name, payload,
                                           self._entity).to_dict()

    def list_events(self, name: str | None = None) -> list[dict[str, Any]]:
        """Events of this project branch (only ``name`` if given), oldest first."""
        return [e.to_dict() for e in self.registry.events(self.project, self.branch, name)]
