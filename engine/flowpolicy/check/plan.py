"""``flowpolicy plan``: what each generated flow would decide if it ran now, with its default
parameters (the policy's thresholds), against the current registry.

Nothing runs and nothing is written: instances are peeked (no lineage), aliases and
evidence only read, drift inputs loaded through the Metaflow client. Each decision comes
from the same runtime function the flow calls (``evaluate_gate``, ``decide_champion``,
``check_promotion`` on the registry's typed evidence, ``drift_pair``, ``evaluate_drift``), so
a flow and its plan entry agree, down to the words of a refusal: an entry whose status is
``nothing`` is a flow that would find nothing to act on and end with that message.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flowpolicy.check.live import RegistryView, check_branches
from flowpolicy.check.metaflow_runs import MetaflowReadError, MetaflowRuns
from flowpolicy.compile.flows import plan_flows
from flowpolicy.diagnostics import Diagnostic, Severity, plain
from flowpolicy.errors import EXIT_OK, FlowpolicyError
from flowpolicy.inventory import open_to_read
from flowpolicy.policy.loader import load_policies
from flowpolicy.policy.model import Policy
from flowpolicy.registry.base import InstanceRecord, Scope
from flowpolicy.request import PlanRequest
from flowpolicy.runtime.decisions import (
    NothingToCompare,
    check_promotion,
    decide_champion,
    drift_pair,
    evaluate_gate,
    promotion_rules,
)
from flowpolicy.runtime.drift import INDETERMINATE, evaluate_drift, profile_artifact
from flowpolicy.runtime.promote import PROMOTED_FROM_BRANCH, PROMOTED_FROM_INSTANCE

#: An entry's status in the report, by its severity: ``decided`` (a note of what the flow
#: would decide), ``nothing`` (no instance to decide on: the flow would end with the
#: entry's message) or ``error`` (cannot decide).
STATUS: Mapping[str, str] = {"note": "decided", "warning": "nothing", "error": "error"}
_SEVERITY: Mapping[str, Severity] = {status: severity for severity, status in STATUS.items()}


@dataclass(frozen=True)
class PlanReport:
    """One entry per generated flow and branch (or edge): a ``plan.<kind>`` Diagnostic whose
    message is the summary, ``outcome`` the decision (pass/fail, promote/keep,
    allowed/refused, the drift level), ``evidence`` the runtime's decision record and
    ``path`` the generated file."""

    policies: tuple[dict[str, Any], ...]
    registry: str
    entries: tuple[Diagnostic, ...]
    #: (policy, generated file name) -> flow class name.
    flows: Mapping[tuple[str, str], str]

    #: A plan only tells what the flows would decide: a refusal in it is not a failure.
    exit_code = EXIT_OK

    def entry_dict(self, entry: Diagnostic) -> dict[str, Any]:
        """One entry as ``schemas/plan-report.schema.json`` documents it."""
        return {"flow": self.flows[(entry.policy, entry.path)], "file": entry.path,
                "kind": entry.code.removeprefix("plan."), "rule": entry.rule,
                "branch": entry.branch, "status": STATUS[entry.severity],
                "outcome": entry.outcome, "summary": entry.message,
                "decision": plain(entry.evidence), "policy": entry.policy}

    def to_dict(self) -> dict[str, Any]:
        return {"version": 1, "registry": self.registry, "policies": list(self.policies),
                "entries": [self.entry_dict(e) for e in self.entries]}

    def format_text(self) -> str:
        lines = []
        for info in self.policies:
            lines.append(f"policy {info['file']} (project {info['project']}, "
                         f"policy {info['hash'][:12]})")
        lines.append(f"registry {self.registry} (read only)")
        current = None
        for entry in self.entries:
            flow = self.flows[(entry.policy, entry.path)]
            if flow != current:
                current = flow
                lines.append("")
                lines.append(f"{flow} ({entry.path})")
            shown = entry.outcome or STATUS[entry.severity]
            if entry.outcome in ("fail", "refused"):
                shown = shown.upper()
            lines.append(f"  {entry.branch:<16} {shown:<9} {entry.message}")
            for line in _detail_lines(entry):
                lines.append(f"  {'':<16} {'':<9} {line}")
        lines.append("")
        lines.append("flowpolicy plan: nothing was run and nothing was written")
        return "\n".join(lines) + "\n"


def _detail_lines(entry: Diagnostic) -> list[str]:
    decision = entry.evidence
    if entry.code == "plan.gate":
        return [c["reason"] for c in decision.get("checks", ())]
    if entry.code == "plan.promotion":
        return [f"- {r}" for r in decision.get("reasons", ())] + [
            f"+ {s}" for s in decision.get("satisfied", ())]
    if entry.code == "plan.drift" and decision.get("columns"):
        return [", ".join(f"{column['statistic']} {name}={_figure(column)}"
                          for name, column in decision["columns"].items())]
    return []


def _figure(column: Mapping[str, Any]) -> str:
    """A column's statistic, with its bound when sketch mode left one."""
    bound = f" ±{column['bound']:.4f}" if column["bound"] else ""
    return f"{column['value']:.4f}{bound}"


def run_plan(request: PlanRequest) -> PlanReport:
    """Plan every generated flow of every policy; raises only for invalid input."""
    policies = load_policies(request.policies)
    registry = open_to_read(request.registry, "nothing to check")
    runs = MetaflowRuns(request.metaflow_root)
    entries: list[Diagnostic] = []
    flows: dict[tuple[str, str], str] = {}
    infos = []
    for policy in policies:
        infos.append({"file": policy.source, "project": policy.project, "hash": policy.hash})
        view = RegistryView(registry, policy.project)
        branches = check_branches(policy, request.branches) or view.branches
        for flow in plan_flows(policy):
            flows[(policy.source, flow.file_name)] = flow.class_name
            for entry in _PLANNERS[flow.kind](policy, view, branches, flow.rule, runs):
                entries.append(Diagnostic(
                    f"plan.{flow.kind}", _SEVERITY[entry.pop("status")], entry.pop("summary"),
                    path=flow.file_name, policy=policy.source, rule=flow.rule, **entry))
    return PlanReport(tuple(infos), registry.url, tuple(entries), flows)


def _plan_gate(policy: Policy, view: RegistryView, branches: Sequence[str], rule: str,
               runs: MetaflowRuns) -> list[dict[str, Any]]:
    gate = policy.gates[rule]

    def decide(scope: Scope, latest: InstanceRecord) -> dict[str, Any]:
        verdict = evaluate_gate(gate, latest.annotations, instance=latest.id)
        outcome = "pass" if verdict.passed else "fail"
        event = f"; publishes {verdict.event}" if verdict.event else ""
        return _decided(outcome, f"{gate.asset} {latest.id} would {outcome} gate "
                                 f"{gate.name}{event}", verdict.to_dict())

    return _on_latest(policy, view, branches, gate.asset, f"no {gate.asset} instance to judge",
                      decide)


def _plan_champion(policy: Policy, view: RegistryView, branches: Sequence[str], rule: str,
                   runs: MetaflowRuns) -> list[dict[str, Any]]:
    champion_rule = policy.champions[rule]

    def decide(scope: Scope, latest: InstanceRecord) -> dict[str, Any]:
        champion = view.alias(scope, champion_rule.alias)
        record = view.instance(scope, champion) if champion else None
        decision = decide_champion(
            champion_rule, candidate=latest.id, candidate_annotations=latest.annotations,
            champion=champion, champion_annotations=dict(record.annotations) if record else None)
        return _decided("promote" if decision.promote else "keep", decision.reason,
                        decision.to_dict())

    return _on_latest(policy, view, branches, champion_rule.asset,
                      f"no {champion_rule.asset} candidate", decide)


def _on_latest(policy: Policy, view: RegistryView, branches: Sequence[str], asset: str,
               nothing: str, decide: Callable[[Scope, InstanceRecord], dict[str, Any]]
               ) -> list[dict[str, Any]]:
    """``decide`` on the newest instance of ``asset`` on each branch: a branch without one
    is ``nothing``, a decision that cannot be made an ``error``."""
    out = []
    for branch in branches:
        scope = view.scope(branch, policy.assets[asset].type, asset)
        latest = next(iter(view.instances(scope)), None)
        if latest is None:
            out.append(_undecided("nothing", branch, nothing))
            continue
        try:
            out.append({"branch": branch, **decide(scope, latest)})
        except FlowpolicyError as exc:
            out.append(_undecided("error", branch, str(exc)))
    return out


def _plan_promotion(policy: Policy, view: RegistryView, branches: Sequence[str], rule: str,
                    runs: MetaflowRuns) -> list[dict[str, Any]]:
    rules = promotion_rules(policy, rule)
    asset, asset_type = rules.asset, rules.asset_type
    out = []
    for edge in rules.edges:
        if edge.source not in branches and edge.target not in branches:
            continue
        where = f"{edge.source} -> {edge.target}"
        scope = view.scope(edge.source, asset_type, asset)
        latest = next(iter(view.instances(scope)), None)
        if latest is None:
            out.append(_undecided("nothing", where,
                                  f"no {asset} instance on {edge.source} to promote"))
            continue
        champion = view.alias(scope, rules.champion.alias) if rules.champion else None
        verdict = check_promotion(rules, source=edge.source, target=edge.target,
                                  instance=latest.id, evidence=view.evidence(scope, latest.id),
                                  current_champion=champion)
        outcome = "allowed" if verdict.allowed else "refused"
        then = f", then @{edge.alias} on {edge.target}" if verdict.allowed else ""
        already = [r.id for r in view.instances(view.scope(edge.target, asset_type, asset))
                   if r.annotations.get(PROMOTED_FROM_BRANCH) == edge.source
                   and r.annotations.get(PROMOTED_FROM_INSTANCE) == latest.id]
        if already:
            then += f" (already there as {', '.join(already)})"
        out.append({"branch": where, **_decided(
            outcome, f"{asset} {latest.id} would be {outcome}{then}", verdict.to_dict())})
    return out


def _plan_drift(policy: Policy, view: RegistryView, branches: Sequence[str], rule: str,
                runs: MetaflowRuns) -> list[dict[str, Any]]:
    drift_rule = policy.drift[rule]
    asset = drift_rule.asset
    out = []
    for branch in branches:
        scope = view.scope(branch, "data", asset)
        try:  # the specs resolved as the flow's peeks resolve them
            current_id, reference_id = drift_pair(
                lambda spec, scope=scope: view.registry.resolve(scope, spec).id, asset,
                drift_rule.current, drift_rule.reference)
        except NothingToCompare as exc:
            out.append(_undecided("nothing", branch, str(exc)))
            continue
        current, reference = view.instance(scope, current_id), view.instance(scope, reference_id)
        try:  # what the flow reads: in sketch mode a stored drift profile, else the data
            result = evaluate_drift(
                drift_rule,
                _load(runs, current, profile_artifact(drift_rule, current.annotations)),
                _load(runs, reference, profile_artifact(drift_rule, reference.annotations)),
                current_id=current.id, reference_id=reference.id)
        except (FlowpolicyError, MetaflowReadError) as exc:
            out.append(_undecided("error", branch, str(exc)))
            continue
        worst = result.columns[result.worst_column]
        event = f"; publishes {result.event}" if result.event else ""
        unsettled = (f" (between {result.level_range[0]} and {result.level_range[1]} within "
                     "the sketch bound; never passes)") if result.level == INDETERMINATE else ""
        out.append({"branch": branch, **_decided(
            result.level,
            f"{asset} {current.id} vs {reference.id}: level {result.level}{unsettled} "
            f"(max {worst.statistic} {_figure(worst.to_dict())} in {result.worst_column})"
            f"{event}",
            _json_safe(result.to_dict()))})
    return out


_PLANNERS = {"gate": _plan_gate, "champion": _plan_champion, "promotion": _plan_promotion,
             "drift": _plan_drift}


def _decided(outcome: str, summary: str, decision: Mapping[str, Any]) -> dict[str, Any]:
    return {"status": "decided", "outcome": outcome, "summary": summary, "evidence": decision}


def _undecided(status: str, branch: str, summary: str) -> dict[str, Any]:
    """A ``nothing`` (no instance to decide on) or ``error`` (cannot decide) entry."""
    return {"branch": branch, "status": status, "summary": summary}


def _load(runs: MetaflowRuns, record, artifact: str | None = None) -> Any:
    """The data behind an artifact-kind instance (or ``artifact``, another artifact of the
    same task, such as its drift profile), read from its producing task (as ``get_data`` /
    ``get_data_profile`` do, but without recording lineage)."""
    if record.kind != "artifact" or "artifact" not in record.annotations:
        raise MetaflowReadError(
            f"{record.scope.name} {record.id} is a {record.kind!r} asset, not a flow artifact; "
            "plan can only load artifact-kind data")
    return runs.artifact(record.created_by.entity_id, artifact or record.annotations["artifact"])


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: v.tolist() if hasattr(v, "tolist")
                                 else str(v)))
