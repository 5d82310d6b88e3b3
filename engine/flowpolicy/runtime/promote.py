"""``promote_assets``: obproject's branch-to-branch promotion on a flowpolicy registry.

Promotion re-registers a source instance on the target branch: metadata only (blobs and the
producing task's ``created_by`` are kept, so ``get_model`` still loads the same artifact),
plus annotations ``promoted_from_branch``, ``promoted_from_instance`` and ``promoted_by``
(``obproject/promote``, the entity obproject promotes as), and then points an alias (default
``candidate``) at the new instance. Who really promoted is kept too: the alias history's
``by`` and the annotation ``promoted_by_entity`` (``task Flow/run/step/task`` or
``user <name>``). The alias must be one of obproject.toml's ``[promotion] aliases``, else of
obproject's defaults ``candidate``, ``validated``, ``production`` (a ValueError otherwise).

Promotion is idempotent. An instance is *already promoted* when the target branch holds an
instance whose ``promoted_from_branch`` and ``promoted_from_instance`` name the source
branch and instance (whoever promoted it), or when source and target are the same branch:
then that instance is returned (``already_promoted: True``) instead of a copy, and the
aliases are still pointed at it. The look-up and the registration are one registry
transaction (:meth:`Registry.register_once`), so two promotions of the same instance at the
same moment give one instance; an alias already in place is left alone, so repeating a
promotion adds nothing to the alias history.

Deliberately unlike obproject, ``with_aliases`` copies only the aliases that point at the
promoted source instance (obproject re-points every alias of the asset, so a copied
``@production`` could land on a model that never earned it).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from flowpolicy.errors import FlowpolicyError, RegistryError
from flowpolicy.registry import open_registry
from flowpolicy.registry.base import (
    ASSET_TYPE_OF,
    WIRE_KIND,
    AliasConflict,
    CompareAndSetUnsupported,
    EntityRef,
    InstanceRecord,
    Registry,
    Scope,
    validate_alias,
)
from flowpolicy.runtime.branch import read_project_file, sanitize_branch
from flowpolicy.runtime.identity import current_entity

#: The lineage annotations a promoted instance carries (what ``check``, ``plan`` and
#: ``serve`` read).
PROMOTED_FROM_BRANCH = "promoted_from_branch"
PROMOTED_FROM_INSTANCE = "promoted_from_instance"
PROMOTED_BY = "promoted_by"
PROMOTED_BY_ENTITY = "promoted_by_entity"
#: The aliases obproject allows without a ``[promotion] aliases`` list in obproject.toml.
DEFAULT_PROMOTION_ALIASES = ["candidate", "validated", "production"]
#: The entity obproject promotes as; its ``promoted_by`` annotation names it.
PROMOTER_ID = "obproject/promote"


def promote_assets(
    project: str,
    source: str,
    target: str,
    kinds: Sequence[str] | None = None,
    asset: str | None = None,
    instance: str = "latest",
    with_aliases: bool | None = None,
    alias: str | None = "candidate",
    *,
    reason: str | None = None,
    registry: Registry | str | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Promote ``instance`` of ``asset`` (every asset if None) from ``source`` to ``target``.

    Returns ``{"promoted": [{kind, name, alias, instance, source_instance,
    already_promoted}], "errors": [{kind, name, error}]}``; one asset failing does not stop
    the others.
    """
    source, target = sanitize_branch(source), sanitize_branch(target)
    kinds_defaulted = kinds is None
    kinds = list(kinds or ("data", "models"))
    for kind in kinds:
        if kind not in ASSET_TYPE_OF:
            raise RegistryError(f"kinds takes 'data' and/or 'models', not {kind!r}")
    if with_aliases is None:
        with_aliases = source != target
    if alias is not None:
        validate_alias(alias)
        allowed = ((read_project_file().get("promotion") or {}).get("aliases")
                   or DEFAULT_PROMOTION_ALIASES)
        if alias not in allowed:
            raise ValueError(
                f"Alias '{alias}' is not in the allowed promotion aliases: {allowed}. "
                "Configure [promotion] aliases in obproject.toml to customize.")
    reg = registry if registry is not None and not isinstance(registry, str) \
        else open_registry(registry)
    promoter = current_entity()
    promoted: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for kind in kinds:
        asset_type = ASSET_TYPE_OF[kind]
        wire = WIRE_KIND[asset_type]
        on_source = [s.scope.name for s in reg.assets(project, source, asset_type)]
        if asset is not None:
            # with default kinds an asset usually exists as one kind only: skip the other
            if kinds_defaulted and asset not in on_source:
                continue
            names = [asset]
        else:
            names = on_source
        for name in names:
            try:
                promoted.append(_promote_one(
                    reg, Scope(project, source, asset_type, name),
                    Scope(project, target, asset_type, name),
                    instance, with_aliases, alias, promoter, reason))
            except FlowpolicyError as exc:
                errors.append({"kind": wire, "name": name, "error": str(exc)})
    if asset is not None and kinds_defaulted and not promoted and not errors:
        errors.append({"kind": None, "name": asset,
                       "error": f"asset {asset!r} not found on source branch {source!r} "
                                f"(checked: {', '.join(kinds)})"})
    if asset is None and not promoted and not errors:
        warnings.warn(f"No assets found on source branch '{source}'. Was teardown-branch "
                      "already run? Promotion must happen before teardown.", stacklevel=2)
    return {"promoted": promoted, "errors": errors}


def _promote_one(reg: Registry, src_scope: Scope, dst_scope: Scope, instance: str,
                 with_aliases: bool, alias: str | None, promoter: EntityRef,
                 reason: str | None) -> dict[str, Any]:
    src = reg.resolve(src_scope, instance)
    if src_scope == dst_scope:
        target, created = src, False  # already on the target branch: nothing to copy
    else:
        lineage = {PROMOTED_FROM_BRANCH: src_scope.branch, PROMOTED_FROM_INSTANCE: src.id}
        target, created = reg.register_once(
            dst_scope, lineage, kind=src.kind, created_by=src.created_by,
            description=src.description,
            annotations={**src.annotations, **lineage, PROMOTED_BY: PROMOTER_ID,
                         PROMOTED_BY_ENTITY: f"{promoter.entity_kind} {promoter.entity_id}"},
            tags=src.tags, blobs=src.blobs, actor=promoter)
    why = reason or f"promoted from {src_scope.branch} {src.id}"
    wanted = []
    if with_aliases:
        wanted = [name for name, version in reg.aliases(src_scope).items()
                  if version == src.version and name != alias]
    if alias:
        wanted.append(alias)
    for name in wanted:
        _point_alias(reg, dst_scope, name, target, promoter, why)
    return {"kind": WIRE_KIND[src_scope.asset_type], "name": src_scope.name, "alias": alias,
            "instance": target.id, "source_instance": src.id, "already_promoted": not created}


def _point_alias(reg: Registry, scope: Scope, alias: str, target: InstanceRecord,
                 by: EntityRef, reason: str) -> None:
    """Point ``@alias`` at ``target`` unless it is there already (so a repeated promotion
    adds no history). Compare-and-set, so a concurrent promotion of the same instance that
    moved it first is not moved again; a move to another instance meanwhile is overtaken,
    as a plain move would, which is also what a backend without compare-and-set gets."""
    current = reg.get_alias(scope, alias)
    if current == target.version:
        return
    try:
        reg.set_alias(scope, alias, target.id, by=by, reason=reason,
                      expected=None if current is None else f"v{current}")
    except CompareAndSetUnsupported:
        reg.set_alias(scope, alias, target.id, by=by, reason=reason)
    except AliasConflict as conflict:
        if conflict.current != target.id:
            reg.set_alias(scope, alias, target.id, by=by, reason=reason)
