"""Live checks: does what is in the registry satisfy the policy *now*?

Every rule is the runtime's (``evaluate_gate``, ``check_promotion``, ``gates_on_path``,
``threshold_mismatch``, ``latest_evidence``), applied to the registry's typed records; this
module only decides what to ask about and words the results (each check id is documented in
:data:`flowpolicy.check.report.CHECK_IDS`). Gates are judged under the *current* policy, so
a threshold raised after a promotion is caught. The champion tag is the branch's
(``<alias>:<branch>``, :func:`flowpolicy.runtime.tags.champion_tag`). For lineage, a gate
whose results were judged under other thresholds (a what-if run, a threshold changed since)
is judged again on the source instance's annotations, and ``live.lineage.policy_hash`` warns
when the evidence was judged under another policy. Assets on branches the policy does not
declare are named (``live.branches``) but not checked, and zero checks is not a pass
(``live.coverage``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

from flowpolicy.check.metaflow_runs import MetaflowReadError, MetaflowRuns
from flowpolicy.diagnostics import Diagnostic
from flowpolicy.errors import FlowpolicyError
from flowpolicy.policy.model import CHAMPION_REQUIREMENT, Policy
from flowpolicy.policy.source import child_path
from flowpolicy.registry.base import EvidenceRecord, InstanceRecord, Registry, Scope, instance_id
from flowpolicy.runtime.branch import sanitize_branch
from flowpolicy.runtime.decisions import (
    MetricValueError,
    asset_type,
    check_promotion,
    drift_thresholds,
    evaluate_gate,
    gates_on_path,
    latest_evidence,
    missing_annotations,
    promotion_rules,
    threshold_mismatch,
)
from flowpolicy.runtime.promote import PROMOTED_BY, PROMOTED_FROM_BRANCH, PROMOTED_FROM_INSTANCE
from flowpolicy.runtime.tags import champion_tag, training_run


@dataclass
class RegistryView:
    """Read-only questions to one project's part of the registry. Asks only about scopes
    that exist (the backend raises for unknown ones) and caches what it read."""

    registry: Registry
    project: str
    _present: set[tuple[str, str, str]] = field(default_factory=set)
    _instances: dict[Scope, list[InstanceRecord]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.summaries = self.registry.assets(self.project)
        self._present = {(s.scope.branch, s.scope.asset_type, s.scope.name)
                         for s in self.summaries}

    @property
    def branches(self) -> tuple[str, ...]:
        """The branches holding assets of the project (for a policy that declares none)."""
        return tuple(sorted({s.scope.branch for s in self.summaries}))

    def scope(self, branch: str, asset_type: str, name: str) -> Scope:
        return Scope(self.project, branch, asset_type, name)

    def exists(self, scope: Scope) -> bool:
        return (scope.branch, scope.asset_type, scope.name) in self._present

    def instances(self, scope: Scope) -> list[InstanceRecord]:
        """Every instance, newest first; empty for an asset the branch does not hold."""
        if not self.exists(scope):
            return []
        if scope not in self._instances:
            self._instances[scope] = self.registry.instances(scope, None)
        return self._instances[scope]

    def instance(self, scope: Scope, instance_id: str) -> InstanceRecord | None:
        return next((r for r in self.instances(scope) if r.id == instance_id), None)

    def alias(self, scope: Scope, alias: str) -> str | None:
        if not self.exists(scope):
            return None
        return instance_id(self.registry.aliases(scope).get(alias))

    def evidence(self, scope: Scope, instance_id: str, kind: str | None = None
                 ) -> list[EvidenceRecord]:
        """The records on one instance, in append order (empty for an unknown scope)."""
        if not self.exists(scope):
            return []
        return self.registry.evidence(scope, instance_id, kind)


def live_results(
    policy: Policy,
    view: RegistryView,
    branches: Sequence[str],
    *,
    now: datetime,
    runs: MetaflowRuns,
    all_branches: bool = True,
) -> list[Diagnostic]:
    """Every live check of ``policy`` on ``branches``. ``all_branches`` is False when the
    caller chose the branches (``--branch``): branches left out are then not reported."""
    results: list[Diagnostic] = []
    for branch in branches:
        results += _gate_results(policy, view, branch)
        results += _lineage_results(policy, view, branch)
        results += _champion_results(policy, view, branch, runs)
        results += _drift_results(policy, view, branch, now)
        results += _annotation_results(policy, view, branch)
    results += _declared_results(policy, view, branches)
    undeclared = _undeclared_branches(policy, view) if all_branches else {}
    results += _undeclared_results(policy, undeclared)
    if not any(r.severity in ("pass", "error") for r in results):
        results.append(_nothing_checked(policy, view, branches, undeclared))
    return [_located(policy, r) for r in results]


def _located(policy: Policy, result: Diagnostic) -> Diagnostic:
    """``result`` placed at the policy line of the rule it checks, where SARIF and GitHub
    annotations point."""
    where = policy.locate(_rule_path(policy, result))
    return replace(result, path=where.file, line=where.line, col=where.col,
                   policy=policy.source)


def _rule_path(policy: Policy, result: Diagnostic) -> str:
    """The JSON path of the policy rule a live result checks."""
    check, asset, rule = result.code, result.asset or "", result.rule or ""
    if check == "live.gate":
        return child_path("$.gates", rule)
    if check.startswith("live.champion."):
        return child_path("$.champion", asset)
    if check.startswith("live.drift."):
        return child_path("$.drift", asset)
    if check == "live.annotations":
        return child_path(child_path("$.assets", asset), "required_annotations")
    if check == "live.declared":
        return child_path("$.assets", asset) if asset in policy.assets else "$.assets"
    if check == "live.branches":
        return "$.branches"
    if check == "live.coverage":
        return "$.project"
    edges = [f"{e.source}->{e.target}" for e in policy.promotion]  # alias and lineage
    return child_path("$.promotion", edges.index(rule)) if rule in edges else "$.promotion"


# -- gates of promoted aliases ---------------------------------------------------------------


def _gate_results(policy: Policy, view: RegistryView, branch: str) -> list[Diagnostic]:
    results = []
    done: set[tuple[str, str]] = set()
    for edge in policy.edges_into(branch):
        for asset in edge.assets:
            if (asset, edge.alias) in done:
                continue
            done.add((asset, edge.alias))
            scope = view.scope(branch, asset_type(policy, asset), asset)
            if not view.instances(scope):
                continue  # nothing promoted here yet
            instance_id = view.alias(scope, edge.alias)
            if instance_id is None:
                results.append(Diagnostic(
                    "live.alias", "warning",
                    f"{asset} has {len(view.instances(scope))} instance(s) on {branch} but no "
                    f"@{edge.alias} alias (set by promotion {edge.source} -> {edge.target})",
                    asset=asset, branch=branch, rule=f"{edge.source}->{edge.target}"))
                continue
            record = view.instance(scope, instance_id)
            annotations = dict(record.annotations) if record else {}
            for gate in gates_on_path(policy, asset, edge):
                try:
                    verdict = evaluate_gate(gate, annotations, instance=instance_id)
                except MetricValueError as exc:
                    results.append(Diagnostic(
                        "live.gate", "error", f"@{edge.alias} -> {instance_id}: {exc}",
                        asset=asset, branch=branch, instance=instance_id, rule=gate.name,
                        evidence={"alias": edge.alias, "key": exc.key, "value": str(exc.value)}))
                    continue
                severity = "pass" if verdict.passed else "error"
                verb = "passes" if verdict.passed else "fails"
                results.append(Diagnostic(
                    "live.gate", severity,
                    f"@{edge.alias} -> {instance_id} {verb} gate {gate.name} under the current "
                    f"policy: {verdict.reason}",
                    asset=asset, branch=branch, instance=instance_id, rule=gate.name,
                    evidence={"alias": edge.alias, "verdict": verdict.to_dict()}))
    return results


# -- lineage ---------------------------------------------------------------------------------


def _lineage_results(policy: Policy, view: RegistryView, branch: str) -> list[Diagnostic]:
    results = []
    promoted = dict.fromkeys(a for e in policy.edges_into(branch) for a in e.assets)
    declared_edges = [f"{e.source} -> {e.target}" for e in policy.edges_into(branch)]
    for asset in promoted:
        rules = promotion_rules(policy, asset)
        asset_type = rules.asset_type
        for record in reversed(view.instances(view.scope(branch, asset_type, asset))):
            subject = {"asset": asset, "branch": branch, "instance": record.id}
            source = record.annotations.get(PROMOTED_FROM_BRANCH)
            source_id = record.annotations.get(PROMOTED_FROM_INSTANCE)
            if not source or not source_id:
                results.append(Diagnostic(
                    "live.lineage", "error",
                    f"{asset} {record.id} on {branch} was not promoted: it has no "
                    f"{PROMOTED_FROM_BRANCH}/{PROMOTED_FROM_INSTANCE} annotations; {asset} "
                    f"may reach {branch} only along {' or '.join(declared_edges)}",
                    **subject,
                    evidence={"created_at": record.created_at,
                              "created_by": record.created_by.to_dict(),
                              "annotations": dict(record.annotations)}))
                continue
            rule = f"{source}->{branch}"
            source_scope = view.scope(source, asset_type, asset)
            source_record = view.instance(source_scope, source_id)
            if source_record is None:
                results.append(Diagnostic(
                    "live.lineage", "error",
                    f"{asset} {record.id} on {branch} claims to come from {source} {source_id}, "
                    f"which the registry does not hold",
                    **subject, rule=rule,
                    evidence={"promoted_from": f"{source}/{source_id}"}))
                continue
            verdict = check_promotion(rules, source=source, target=branch, instance=source_id,
                                      evidence=view.evidence(source_scope, source_id),
                                      annotations=source_record.annotations)
            judged = {req: r.policy_hash for req, r in verdict.rests_on.items()}
            details = {"promoted_from": f"{source}/{source_id}",
                       "promoted_by": record.annotations.get(PROMOTED_BY),
                       "verdict": verdict.to_dict(), "judged_under": judged}
            if verdict.allowed:
                results.append(Diagnostic(
                    "live.lineage", "pass",
                    f"{asset} {record.id} came from {source} {source_id} along "
                    f"{source} -> {branch}: "
                    + "; ".join(verdict.satisfied or ("no requirements",)),
                    **subject, rule=rule, evidence=details))
            else:
                results.append(Diagnostic(
                    "live.lineage", "error",
                    f"{asset} {record.id} came from {source} {source_id}, but that promotion "
                    "does not hold under the current policy: " + "; ".join(verdict.reasons),
                    **subject, rule=rule, evidence=details))
            other = {req: h for req, h in judged.items() if h and h != policy.hash}
            if other:
                shown = ", ".join(f"{req} under {h[:12]}" for req, h in other.items())
                results.append(Diagnostic(
                    "live.lineage.policy_hash", "warning",
                    f"the evidence {asset} {record.id} was promoted on was judged under another "
                    f"policy ({shown}; current {policy.short_hash})",
                    **subject, rule=rule, evidence={"judged_under": judged,
                                                    "current_policy": policy.hash}))
    return results


# -- champion --------------------------------------------------------------------------------


def _champion_results(policy: Policy, view: RegistryView, branch: str,
                      runs: MetaflowRuns) -> list[Diagnostic]:
    results = []
    for rule in policy.champions.values():
        scope = view.scope(branch, asset_type(policy, rule.asset), rule.asset)
        instances = view.instances(scope)
        champion = view.alias(scope, rule.alias)
        required_here = any(
            e.source == branch and rule.asset in e.assets and CHAMPION_REQUIREMENT in e.require
            for e in policy.promotion)
        if champion is None:
            if required_here and instances:
                results.append(Diagnostic(
                    "live.champion.count", "error",
                    f"no champion: {rule.asset} has {len(instances)} instance(s) on {branch} "
                    f"but no @{rule.alias} alias, and promotion from {branch} requires one",
                    asset=rule.asset, branch=branch, rule=rule.alias))
            continue
        subject = {"asset": rule.asset, "branch": branch, "instance": champion,
                   "rule": rule.alias}
        tag = champion_tag(rule.alias, branch)
        record = view.instance(scope, champion)
        run = training_run(record.annotations, record.created_by.entity_id) if record else ""
        flow_name, _, run_id = run.partition("/")
        if not run_id:
            results.append(Diagnostic(
                "live.champion.tag", "error",
                f"champion {champion} names no training run (no run_pathspec annotation and "
                f"not created by a task)", **subject,
                evidence={"created_by": record.created_by.to_dict() if record else None}))
            continue
        try:
            known = runs.runs(flow_name)
            tagged = runs.tagged(flow_name, tag)
        except MetaflowReadError as exc:
            results.append(Diagnostic("live.champion.tag", "error", str(exc), **subject))
            continue
        evidence = {"alias": f"@{rule.alias} -> {champion}", "training_run": run, "tag": tag,
                    "tagged_runs": [f"{flow_name}/{r}" for r in tagged]}
        if run_id not in known:  # tags cannot be judged without the run
            results.append(Diagnostic(
                "live.champion.tag", "error",
                f"champion {champion} was trained by {run}, which Metaflow does not know "
                "(another datastore? set METAFLOW_DATASTORE_SYSROOT_LOCAL)",
                **subject, evidence=evidence))
            continue
        one = len(tagged) == 1
        counted = (f"one champion: @{rule.alias} -> {champion}, one {flow_name} run tagged "
                   f"{tag!r}") if one else (
            f"{len(tagged)} runs of {flow_name} carry the {tag!r} tag"
            + (f" ({', '.join(tagged)})" if tagged else "")
            + f"; exactly one must: {run} (@{rule.alias} -> {champion})")
        results.append(Diagnostic("live.champion.count", "pass" if one else "error", counted,
                                  **subject, evidence=evidence))
        if run_id in tagged:
            results.append(Diagnostic(
                "live.champion.tag", "pass",
                f"@{rule.alias} -> {champion} and its training run {run} carries the tag "
                f"{tag!r}",
                **subject, evidence=evidence))
        else:
            results.append(Diagnostic(
                "live.champion.tag", "error",
                f"@{rule.alias} -> {champion} (trained by {run}) but its training run does not "
                f"carry the {tag!r} tag"
                + (f"; tagged instead: {', '.join(evidence['tagged_runs'])}" if tagged else "")
                + _unscoped_hint(runs, flow_name, run_id, rule.alias),
                **subject, evidence=evidence))
    return results


def _unscoped_hint(runs: MetaflowRuns, flow_name: str, run_id: str, alias: str) -> str:
    """A pointer for a run still tagged the way flows compiled before tags named their
    branch (the bare alias), which a recompiled champion flow re-tags on its next win."""
    try:
        unscoped = run_id in runs.tagged(flow_name, alias)
    except MetaflowReadError:
        return ""
    return (f" (it carries the unscoped {alias!r} tag of flows compiled before champion tags "
            "named their branch: recompile, then re-run the champion flow or call "
            "flowpolicy.runtime.tags.mirror_champion_tag)") if unscoped else ""


# -- drift -----------------------------------------------------------------------------------


def _drift_results(policy: Policy, view: RegistryView, branch: str,
                   now: datetime) -> list[Diagnostic]:
    results = []
    for rule in policy.drift.values():
        scope = view.scope(branch, "data", rule.asset)
        instances = view.instances(scope)
        if len(instances) < 2:
            continue  # nothing to compare yet
        subject = {"asset": rule.asset, "branch": branch, "rule": rule.statistic}
        # oldest instance first, each instance's records in append order
        records = [r for inst in reversed(instances)
                   for r in view.evidence(scope, inst.id, "drift")]
        thresholds = drift_thresholds(rule)
        newest = latest_evidence(r for r in records if threshold_mismatch(r, thresholds) is None)
        if newest is None:
            latest = latest_evidence(records)
            why = "" if latest is None else (
                f"; the latest report, of {rule.asset} v{latest.version}, does not count: "
                + str(threshold_mismatch(latest, thresholds)))
            results.append(Diagnostic(
                "live.drift.report", "error",
                f"no drift report: {rule.asset} has {len(instances)} instances on {branch} "
                f"(latest {instances[0].id}) and none has been drift-checked under the "
                f"policy's drift thresholds{why}",
                **subject, instance=instances[0].id))
            continue
        details = newest.details
        newest_id = f"v{newest.version}"
        evidence = {"report": {k: details.get(k) for k in
                               ("current", "reference", "level", "max_statistic",
                                "worst_column", "statistics")},
                    "created_at": newest.created_at,
                    "created_by": newest.created_by.to_dict(),
                    "policy_hash": newest.policy_hash}
        subject["instance"] = newest_id
        if rule.report_asset and not view.instances(
                view.scope(branch, "data", rule.report_asset)):
            results.append(Diagnostic(
                "live.drift.report", "error",
                f"drift of {rule.asset} was measured ({newest.created_at}) but no "
                f"{rule.report_asset} report is registered on {branch}",
                **subject, evidence=evidence))
        else:
            results.append(Diagnostic(
                "live.drift.report", "pass",
                f"{rule.asset} {newest_id} drift-checked at {newest.created_at}: "
                f"level {details.get('level')}", **subject, evidence=evidence))
        if rule.max_age_seconds is not None:
            age = (now - _parse_time(newest.created_at)).total_seconds()
            evidence = {**evidence, "age_seconds": round(age, 3),
                        "max_age_seconds": rule.max_age_seconds}
            stale = age > rule.max_age_seconds
            limit = _duration(rule.max_age_seconds)
            results.append(Diagnostic(
                "live.drift.age", "error" if stale else "pass",
                f"the newest drift report of {rule.asset} on {branch} is {_duration(age)} old "
                + (f"({newest.created_at}), older than max_age {limit}" if stale
                   else f"(max_age {limit})"),
                **subject, evidence=evidence))
        if newest_id != instances[0].id:
            results.append(Diagnostic(
                "live.drift.behind", "warning",
                f"{rule.asset} {instances[0].id} on {branch} has not been drift-checked yet "
                f"(newest report is of {newest_id})", **subject, evidence=evidence))
    return results


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _duration(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


# -- declared assets -------------------------------------------------------------------------


def _annotation_results(policy: Policy, view: RegistryView, branch: str) -> list[Diagnostic]:
    results = []
    for decl in policy.assets.values():
        scope = view.scope(branch, decl.type, decl.name)
        if not decl.required_annotations or not view.exists(scope):
            continue
        instances = view.instances(scope)
        failures = []
        for record in instances:
            missing = missing_annotations(decl, record.annotations)
            if missing:
                failures.append(Diagnostic(
                    "live.annotations", "error",
                    f"{decl.name} {record.id} on {branch} lacks required annotation(s) "
                    f"{', '.join(missing)} (the policy requires "
                    f"{', '.join(decl.required_annotations)})",
                    asset=decl.name, branch=branch, instance=record.id,
                    rule="required_annotations",
                    evidence={"missing": list(missing),
                              "annotations": sorted(record.annotations),
                              "created_by": record.created_by.entity_id}))
        results += failures or [Diagnostic(
            "live.annotations", "pass",
            f"all {len(instances)} instance(s) of {decl.name} on {branch} carry "
            f"{', '.join(decl.required_annotations)}",
            asset=decl.name, branch=branch, rule="required_annotations")]
    return results


def _declared_results(policy: Policy, view: RegistryView,
                      branches: Sequence[str]) -> list[Diagnostic]:
    if not policy.naming.declared_only:
        return []
    results = []
    checked = [s for s in view.summaries if s.scope.branch in branches]
    for summary in checked:
        scope = summary.scope
        decl = policy.assets.get(scope.name)
        subject = {"asset": scope.name, "branch": scope.branch,
                   "instance": f"v{summary.latest_version}", "rule": "declared_only"}
        evidence = {"type": scope.asset_type, "instances": summary.latest_version,
                    "updated_at": summary.updated_at}
        if decl is None:
            results.append(Diagnostic(
                "live.declared", "error",
                f"{scope.asset_type} asset {scope.name} is in the registry on {scope.branch} "
                f"but not declared in the policy (declared: {', '.join(policy.assets)})",
                **subject, evidence=evidence))
        elif decl.type != scope.asset_type:
            results.append(Diagnostic(
                "live.declared", "error",
                f"{scope.name} is registered as a {scope.asset_type} asset on {scope.branch} "
                f"but the policy declares it {decl.type}", **subject, evidence=evidence))
    if checked and not results:
        results.append(Diagnostic(
            "live.declared", "pass",
            f"all {len(checked)} assets on {', '.join(branches)} are declared in the policy",
            rule="declared_only"))
    return results


def _undeclared_branches(policy: Policy, view: RegistryView) -> dict[str, list[str]]:
    """Branch -> names of the project's assets on it, for branches the policy does not
    declare (none when it declares no branches: then every branch is checked)."""
    if not policy.branches:
        return {}
    found: dict[str, list[str]] = {}
    for summary in view.summaries:
        if summary.scope.branch not in policy.branches:
            found.setdefault(summary.scope.branch, []).append(summary.scope.name)
    return found


def _undeclared_results(policy: Policy, undeclared: Mapping[str, Sequence[str]]
                        ) -> list[Diagnostic]:
    return [Diagnostic(
        "live.branches", "warning",
        f"{len(names)} asset(s) of project {policy.project} are on branch {branch} "
        f"({', '.join(sorted(set(names)))}), which the policy does not declare "
        f"(branches: {', '.join(policy.branches)}); nothing there was checked",
        branch=branch, rule="branches", evidence={"assets": sorted(set(names))})
        for branch, names in sorted(undeclared.items())]


def _nothing_checked(policy: Policy, view: RegistryView, branches: Sequence[str],
                     undeclared: Mapping[str, Sequence[str]]) -> Diagnostic:
    """Zero live checks is not a pass: say what the registry holds instead."""
    projects = sorted({s.scope.project for s in view.registry.assets()} - {policy.project})
    where = ", ".join(branches) or "any branch"
    message = (f"no live check ran: the registry holds no assets of project "
               f"{policy.project} on {where}")
    if undeclared:
        message += (f"; the project's assets are on {', '.join(sorted(undeclared))}, which "
                    "the policy does not declare")
    if projects:
        message += f"; it holds project(s) {', '.join(projects)}"
    return Diagnostic("live.coverage", "error", message, rule="coverage",
                  evidence={"project": policy.project, "branches": list(branches),
                            "other_projects": projects,
                            "undeclared_branches": sorted(undeclared)})


def check_branches(policy: Policy, requested: Sequence[str]) -> tuple[str, ...]:
    """The branches to check: those asked for (sanitised), else the policy's (empty when it
    declares none: the caller then checks the branches the registry holds)."""
    if not requested:
        return tuple(policy.branches)
    branches = tuple(dict.fromkeys(sanitize_branch(b) for b in requested))
    unknown = [b for b in branches if policy.branches and b not in policy.branches]
    if unknown:
        raise FlowpolicyError(
            f"branch {', '.join(unknown)} is not declared in {policy.source} "
            f"(branches: {', '.join(policy.branches)})")
    return branches
