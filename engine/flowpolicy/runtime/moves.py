"""Lifecycle operations outside flows: promote an instance, roll an alias back, set or unset
an alias — what ``flowpolicy promote``, ``rollback`` and ``alias`` do.

Each decides with the functions the flows use (:func:`~flowpolicy.runtime.decisions.
check_promotion` on recorded evidence, as the promotion flow does; the gates of the alias
judged on the instance now, :func:`~flowpolicy.runtime.lifecycle.judge_standing`, as
``flowpolicy check`` and ``flowpolicy serve`` do), records who and why in the alias history,
and publishes :data:`ALIAS_MOVED` on the alias's branch when an alias moved, which is what a
running ``flowpolicy serve`` (or a dispatcher) can follow. A dry run decides and writes
nothing. Moves are compare-and-set against the holder that was judged: an alias that moved
meanwhile is an :class:`~flowpolicy.registry.base.AliasConflict`, never overwritten.

Refusals (exit 1): a promotion the flow would refuse (its reasons, word for word); a
rollback or alias move to an instance that fails the alias's gates now, unless forced with a
reason; a rollback with no previous holder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flowpolicy.errors import EXIT_FINDINGS, EXIT_OK, FlowpolicyError
from flowpolicy.policy.model import Policy
from flowpolicy.registry import open_existing_registry
from flowpolicy.registry.base import (
    WIRE_KIND,
    AliasMove,
    EntityRef,
    InstanceRecord,
    Registry,
    Scope,
    instance_id,
)
from flowpolicy.request import AliasRequest, PromoteRequest, RollbackRequest
from flowpolicy.runtime.branch import resolve_project, sanitize_branch
from flowpolicy.runtime.decisions import asset_type, promotion_rules
from flowpolicy.runtime.identity import current_entity
from flowpolicy.runtime.lifecycle import (
    branch_alias,
    judge_standing,
    promotion_verdict,
    select_policy,
)
from flowpolicy.runtime.promote import promote_assets

#: The lifecycle event published on the alias's branch after every move.
ALIAS_MOVED = "alias_moved"


@dataclass(frozen=True)
class MoveRequest:
    """One lifecycle operation. ``branch`` is the alias's branch (for a promotion, the
    target); ``actor`` who moves it (default: the caller)."""

    asset: str
    project: str
    branch: str
    actor: EntityRef = field(default_factory=current_entity)
    reason: str | None = None
    dry_run: bool = False
    #: A promotion: the branch it promotes from and the instance spec there.
    source: str | None = None
    instance: str = "latest"
    #: A rollback or alias move: the alias (None: the one the policy's promotions set on the
    #: branch), the instance spec to point it at, and whether to move it past failing gates.
    alias: str | None = None
    to: str | None = None
    force: bool = False


@dataclass(frozen=True)
class MoveOutcome:
    """What an operation did (or, in a dry run, would do), and why."""

    action: str
    asset: str
    branch: str
    alias: str | None
    from_instance: str | None
    to_instance: str | None
    message: str
    refused: bool = False
    moved: bool = False
    dry_run: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return EXIT_FINDINGS if self.refused else EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "asset": self.asset, "branch": self.branch,
                "alias": self.alias, "from": self.from_instance, "to": self.to_instance,
                "refused": self.refused, "moved": self.moved, "dry_run": self.dry_run,
                "message": self.message, **self.details}

    def format_text(self) -> str:
        return f"{self.message}\n"


def _scope(policy: Policy, request: MoveRequest, branch: str) -> Scope:
    return Scope(request.project, branch, asset_type(policy, request.asset), request.asset)


def _held(policy: Policy, registry: Registry, request: MoveRequest
          ) -> tuple[Scope, str, int | None]:
    """The alias a rollback or alias move is about: its scope, its name, its holder now."""
    scope = _scope(policy, request, request.branch)
    alias = request.alias or branch_alias(policy, request.asset, request.branch)
    return scope, alias, registry.get_alias(scope, alias)


# -- promote --------------------------------------------------------------------------------


def promote(policy: Policy, registry: Registry, request: MoveRequest) -> MoveOutcome:
    """Promote ``request.instance`` of the asset from ``request.source`` to
    ``request.branch`` exactly when the promotion flow would: along a declared edge, with
    the edge's requirements recorded as passed on that instance. Records the verdict as
    promotion evidence on the source instance (as the flow does); an instance already
    promoted is returned, not copied again (:func:`~flowpolicy.runtime.promote.promote_assets`
    is idempotent)."""
    if not request.source:
        raise FlowpolicyError("promote needs the branch to promote from (--from)")
    source = _scope(policy, request, request.source)
    target = _scope(policy, request, request.branch)
    record = registry.resolve(source, request.instance)
    rules = promotion_rules(policy, request.asset)  # what the generated flow is compiled with
    verdict = promotion_verdict(registry, rules, source, target.branch, record.id)
    alias = verdict.edge.alias if verdict.edge is not None else None
    before = _alias_of(registry, target, alias)
    details = {"source": source.branch, "source_instance": record.id, "policy": policy.hash,
               "verdict": {**verdict.to_dict(), "project": request.project,
                           "policy_hash": policy.hash}}
    what = f"{request.asset} {record.id} from {source.branch} to {target.branch}"
    if not request.dry_run:
        registry.add_evidence(source, record.id, kind="promotion",
                              rule=f"{source.branch}->{target.branch}", passed=verdict.allowed,
                              policy_hash=policy.hash, details=details["verdict"],
                              created_by=request.actor)
    if not verdict.allowed:
        return MoveOutcome("promote", request.asset, target.branch, alias, before, None,
                           f"promotion of {what} refused: " + "; ".join(verdict.reasons),
                           refused=True, dry_run=request.dry_run, details=details)
    if request.dry_run:
        return MoveOutcome("promote", request.asset, target.branch, alias, before, None,
                           f"would promote {what} and point @{alias} there (dry run: nothing "
                           "was written)", dry_run=True, details=details)
    result = promote_assets(
        request.project, source.branch, target.branch, kinds=[WIRE_KIND[source.asset_type]],
        asset=request.asset, instance=record.id, with_aliases=False, alias=alias,
        reason=request.reason or f"promoted from {source.branch} {record.id} "
                                 f"({', '.join(verdict.satisfied) or 'no requirements'})",
        registry=registry)
    if result["errors"] or not result["promoted"]:
        raise FlowpolicyError(f"promotion of {what} failed: "
                              f"{result['errors'] or 'nothing was promoted'}")
    promoted = result["promoted"][0]
    new_id = promoted["instance"]
    details["promotion"] = promoted
    moved = before != new_id
    if moved:
        details["event"] = _publish(registry, target, alias, before, new_id, request,
                                    "promote")
    if promoted["already_promoted"]:
        message = (f"{request.asset} {record.id} on {source.branch} was already promoted to "
                   f"{target.branch} as {new_id}; "
                   + (f"@{alias} {before or '(unset)'} → {new_id}" if moved
                      else f"@{alias} already points at it: nothing changed"))
    else:
        message = (f"promoted {what} as {target.branch} {new_id}; @{alias} "
                   f"{before or '(unset)'} → {new_id}")
    return MoveOutcome("promote", request.asset, target.branch, alias, before, new_id, message,
                       moved=moved, details=details)


# -- rollback and alias moves ---------------------------------------------------------------


def rollback(policy: Policy, registry: Registry, request: MoveRequest) -> MoveOutcome:
    """Return the alias to its previous holder (the ``from`` of its latest move in the
    history), or to ``request.to``; refused when that instance fails the alias's gates now,
    unless ``force`` (with a reason)."""
    scope, alias, current = _held(policy, registry, request)
    if request.to is not None:
        record = registry.resolve(scope, request.to)
    else:
        history = registry.alias_history(scope, alias)
        previous = history[-1].from_version if history else None
        if previous is None:
            return MoveOutcome(
                "rollback", request.asset, scope.branch, alias, instance_id(current), None,
                f"nothing to roll back to: @{alias} of {scope} has no previous holder in its "
                f"history ({_moves(history)})", refused=True, dry_run=request.dry_run)
        record = registry.resolve(scope, f"v{previous}")
    return _move_to(policy, registry, request, "rollback", scope, alias, current, record)


def set_alias(policy: Policy, registry: Registry, request: MoveRequest) -> MoveOutcome:
    """Point the alias at ``request.to``; refused when that instance fails the alias's gates
    now, unless ``force`` (with a reason)."""
    if not request.to:
        raise FlowpolicyError("alias set needs the instance to point at (--to SPEC)")
    scope, alias, current = _held(policy, registry, request)
    return _move_to(policy, registry, request, "alias set", scope, alias, current,
                    registry.resolve(scope, request.to))


def unset_alias(policy: Policy, registry: Registry, request: MoveRequest) -> MoveOutcome:
    """Remove the alias (its history keeps the move, to = None)."""
    scope, alias, current = _held(policy, registry, request)
    if current is None:
        return MoveOutcome("alias unset", request.asset, scope.branch, alias, None, None,
                           f"@{alias} of {scope} is not set: nothing to unset", refused=True,
                           dry_run=request.dry_run)
    held = f"v{current}"
    if request.dry_run:
        return MoveOutcome("alias unset", request.asset, scope.branch, alias, held, None,
                           f"would unset @{alias} (now {held}) on {scope.branch} (dry run: "
                           "nothing was written)", dry_run=True)
    move = registry.unset_alias(scope, alias, by=request.actor, reason=request.reason,
                                expected=held)
    event = _publish(registry, scope, alias, held, None, request, "alias unset")
    return MoveOutcome("alias unset", request.asset, scope.branch, alias, held, None,
                       f"@{alias} unset on {scope.branch} (was {held})", moved=True,
                       details={"history": move.to_dict(), "event": event})


def _move_to(policy: Policy, registry: Registry, request: MoveRequest, action: str,
             scope: Scope, alias: str, current: int | None, record: InstanceRecord
             ) -> MoveOutcome:
    held = instance_id(current)
    standing = judge_standing(policy, record, alias)
    details: dict[str, Any] = {"gates": standing.to_dict(), "forced": False}

    def outcome(message: str, **flags: Any) -> MoveOutcome:
        return MoveOutcome(action, request.asset, scope.branch, alias, held, record.id,
                           message, dry_run=request.dry_run, details=details, **flags)

    if record.version == current:
        return outcome(f"@{alias} on {scope.branch} already points at {record.id}: nothing "
                       "to do")
    if not standing.passed:
        if not request.force:
            return outcome(f"{action} of @{alias} on {scope.branch} to {record.id} refused: "
                           f"{standing.reason} (--force --reason TEXT moves it anyway)",
                           refused=True)
        details["forced"] = True
    if request.dry_run:
        return outcome(f"would move @{alias} on {scope.branch} {held or '(unset)'} → "
                       f"{record.id} (dry run: nothing was written)")
    why = request.reason or f"{action} by {request.actor.entity_id}"
    if details["forced"]:
        why = f"forced past failing gates: {why}"
    move: AliasMove = registry.set_alias(scope, alias, record.id, by=request.actor, reason=why,
                                         expected=held)
    details["history"] = move.to_dict()
    details["event"] = _publish(registry, scope, alias, held, record.id, request, action)
    return outcome(f"@{alias} on {scope.branch} {held or '(unset)'} → {record.id}"
                   + (" (forced: it fails its gates)" if details["forced"] else ""),
                   moved=True)


def _alias_of(registry: Registry, scope: Scope, alias: str | None) -> str | None:
    if alias is None:
        return None
    try:
        return instance_id(registry.get_alias(scope, alias))
    except FlowpolicyError:  # nothing on the branch yet
        return None


def _moves(history: list[AliasMove]) -> str:
    if not history:
        return "it was never set"
    return ", ".join(f"{instance_id(m.from_version) or '(unset)'} → "
                     f"{instance_id(m.to_version) or '(unset)'}" for m in history[-3:])


def _publish(registry: Registry, scope: Scope, alias: str | None, before: str | None,
             after: str | None, request: MoveRequest, action: str) -> dict[str, Any]:
    payload = {"asset": scope.name, "asset_type": scope.asset_type, "alias": alias,
               "from": before, "to": after, "action": action,
               "by": request.actor.entity_id, "reason": request.reason}
    return registry.publish_event(scope.project, scope.branch, ALIAS_MOVED, payload,
                                  request.actor).to_dict()


# -- the API's requests -----------------------------------------------------------------------


def perform(request: PromoteRequest | RollbackRequest | AliasRequest) -> MoveOutcome:
    """Run one ``flowpolicy promote``, ``rollback`` or ``alias`` request: the project's policy
    (the one under ``request.policies`` for it), the registry (read-only for a dry run;
    never created) and the caller as the actor. A request that cannot be carried out as
    asked (a forced move or a move by hand without a reason, ``set`` without an instance)
    is a FlowpolicyError (exit 2)."""
    reason = (request.reason or "").strip()
    if isinstance(request, AliasRequest):
        if not reason:
            raise FlowpolicyError(f"alias {request.action} needs --reason TEXT: the alias "
                                  "history keeps why")
        if request.action == "set" and not request.to:
            raise FlowpolicyError("alias set needs --to SPEC (the instance to point at)")
        if request.action == "unset" and request.to:
            raise FlowpolicyError("alias unset takes no --to")
    if getattr(request, "force", False) and not reason:
        raise FlowpolicyError("--force needs --reason TEXT: the alias history keeps why")
    project = resolve_project(request.project)
    policy = select_policy(request.policies, project)
    registry = open_existing_registry(
        request.registry, read_only=request.dry_run,
        missing="nothing registered yet, or point --registry / FLOWPOLICY_REGISTRY at the "
                "right file")
    common = {"asset": request.asset, "project": project, "reason": request.reason,
              "dry_run": request.dry_run}
    if isinstance(request, PromoteRequest):
        return promote(policy, registry, MoveRequest(
            **common, branch=sanitize_branch(request.target),
            source=sanitize_branch(request.source), instance=request.instance))
    move = MoveRequest(**common, branch=sanitize_branch(request.branch), alias=request.alias,
                       to=request.to, force=request.force)
    if isinstance(request, RollbackRequest):
        return rollback(policy, registry, move)
    return (set_alias if request.action == "set" else unset_alias)(policy, registry, move)
