"""Lifecycle questions: may an instance be promoted on its recorded evidence (asked by the
promotion flow and ``flowpolicy promote``), which policy governs a project, and does an
instance standing behind an alias pass its gates *now*?

``flowpolicy serve`` asks before it serves an instance (at start and before every swap), and
``flowpolicy rollback`` before it moves an alias back. The verdicts are
:func:`flowpolicy.runtime.decisions.evaluate_gate`'s on the instance's immutable
annotations, under the policy as it is now (the same re-judging ``flowpolicy check`` does
for promoted aliases), so a threshold raised after a promotion is honoured.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flowpolicy.errors import FlowpolicyError
from flowpolicy.policy.loader import load_policies
from flowpolicy.policy.model import Gate, Policy
from flowpolicy.registry.base import InstanceRecord, Registry, Scope, instance_id
from flowpolicy.runtime.decisions import (
    MetricValueError,
    PromotionRules,
    PromotionVerdict,
    check_promotion,
    evaluate_gate,
    gates_on_path,
)


def promotion_verdict(registry: Registry, rules: PromotionRules, source: Scope, target: str,
                      instance: str) -> PromotionVerdict:
    """:func:`~flowpolicy.runtime.decisions.check_promotion` of ``instance`` on ``source``
    from the evidence recorded on it, with the champion alias as it points now (the
    promotion flow and ``flowpolicy promote`` decide by this)."""
    champion = None
    if rules.champion is not None:
        champion = instance_id(registry.get_alias(source, rules.champion.alias))
    return check_promotion(rules, source=source.branch, target=target, instance=instance,
                           evidence=registry.evidence(source, instance),
                           current_champion=champion)


def select_policy(paths: Sequence[str], project: str) -> Policy:
    """The one policy among ``paths`` (files or folders; default ./policies/, else the
    working directory) whose ``project`` is ``project``. None or several is a
    FlowpolicyError (exit 2) saying which were found; an invalid policy is a PolicyError."""
    policies = load_policies(paths)
    matching = [p for p in policies if p.project == project]
    if len(matching) == 1:
        return matching[0]
    where = ", ".join(paths) or "policies/ (or the current directory)"
    if not matching:
        found = ", ".join(sorted({p.project for p in policies}))
        raise FlowpolicyError(f"no policy for project {project!r} in {where} (policies found "
                              f"for: {found}); give it with --policy")
    sources = ", ".join(str(p.source) for p in matching)
    raise FlowpolicyError(f"{len(matching)} policies for project {project!r} ({sources}); "
                          "give the one to apply with --policy")


def alias_gates(policy: Policy, asset: str, branch: str, alias: str) -> tuple[Gate, ...]:
    """The gates an instance of ``asset`` must pass to stand behind ``@alias`` on ``branch``:
    those of the promotion path that sets that alias there (what ``flowpolicy check``
    verifies), or every gate judging the asset when no declared edge sets it."""
    edges = [e for e in policy.edges_into(branch) if asset in e.assets and e.alias == alias]
    if not edges:
        return tuple(gate for gate in policy.gates.values() if gate.asset == asset)
    gates: dict[str, Gate] = {}
    for edge in edges:
        gates.update((gate.name, gate) for gate in gates_on_path(policy, asset, edge))
    return tuple(gates.values())


@dataclass(frozen=True)
class GateStanding:
    """The gates of one alias judged on one instance now: verdicts, or why none could be
    reached (an annotation that is not a number)."""

    instance: str
    policy_hash: str
    verdicts: tuple[dict[str, Any], ...]
    errors: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.errors and all(v["passed"] for v in self.verdicts)

    @property
    def reason(self) -> str:
        if not self.verdicts and not self.errors:
            return f"the policy has no gate for {self.instance}"
        failed = [f"gate {v['gate']}: {v['reason']}" for v in self.verdicts if not v["passed"]]
        if self.passed:
            gates = ", ".join(v["gate"] for v in self.verdicts)
            return f"{self.instance} passes gate(s) {gates} under policy {self.policy_hash[:12]}"
        return f"{self.instance} fails under policy {self.policy_hash[:12]}: " + "; ".join(
            [*self.errors, *failed])

    def to_dict(self) -> dict[str, Any]:
        return {"instance": self.instance, "passed": self.passed, "reason": self.reason,
                "policy_hash": self.policy_hash, "verdicts": list(self.verdicts),
                "errors": list(self.errors)}


def judge_standing(policy: Policy, record: InstanceRecord, alias: str) -> GateStanding:
    """Judge ``record`` against the gates of ``@alias`` on its branch (:func:`alias_gates`)."""
    scope = record.scope
    verdicts, errors = [], []
    for gate in alias_gates(policy, scope.name, scope.branch, alias):
        try:
            verdicts.append(evaluate_gate(gate, record.annotations, instance=record.id).to_dict())
        except MetricValueError as exc:
            errors.append(f"gate {gate.name}: {exc}")
    return GateStanding(f"{scope.name} {record.id}", policy.hash, tuple(verdicts),
                        tuple(errors))


def branch_alias(policy: Policy | None, asset: str, branch: str) -> str:
    """The alias the policy's promotions set on ``asset`` on ``branch`` (one, or an error
    asking for it by name)."""
    if policy is None:
        raise FlowpolicyError("without a policy, name the alias with --alias")
    aliases = sorted({e.alias for e in policy.edges_into(branch) if asset in e.assets})
    if len(aliases) == 1:
        return aliases[0]
    if not aliases:
        raise FlowpolicyError(f"policy {policy.source} promotes {asset} to no alias on branch "
                              f"{branch!r}; name the alias with --alias")
    raise FlowpolicyError(f"promotions into {branch} set {', '.join('@' + a for a in aliases)} "
                          f"on {asset}; name the alias with --alias")
