"""Which flows a policy compiles to, and the validated values each template receives.

One flow per gate, per champion rule, per promoted asset and per drift rule. Everything a
template prints as code comes from here: names checked by :mod:`flowpolicy.compile.names`,
numbers, and IR objects that the ``py`` filter writes as literals.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from flowpolicy.compile import names
from flowpolicy.errors import CompileError
from flowpolicy.policy.model import (
    CHAMPION_REQUIREMENT,
    ChampionRule,
    DriftRule,
    Gate,
    Policy,
    PromotionEdge,
)
from flowpolicy.project_root import project_root
from flowpolicy.runtime.decisions import bounds_text, promotion_rules
from flowpolicy.triggers import trigger_table


@dataclass(frozen=True)
class FlowPlan:
    """One generated file: its flow class, template and the template's values."""

    kind: str
    rule: str
    class_name: str
    file_name: str
    template: str
    context: Mapping[str, object]


#: Artifact and parameter names each template uses itself; policy-derived parameters must
#: not take them.
_TEMPLATE_NAMES = {
    "gate": {"instance", "policy_hash", "judged", "verdict"},
    "drift": {"current", "reference", "policy_hash", "pair", "drift_report"},
}


def plan_flows(policy: Policy) -> list[FlowPlan]:
    """Every flow the policy compiles to, in a stable order (gates, champions, promotions,
    drift; each in policy order). Raises CompileError for names that cannot be used."""
    header = _header(policy)
    plans = [
        *(_gate_flow(policy, gate, header) for gate in policy.gates.values()),
        *(_champion_flow(policy, rule, header) for rule in policy.champions.values()),
        *(_promotion_flow(policy, asset, edges, header)
          for asset, edges in _edges_by_asset(policy).items()),
        *(_drift_flow(policy, rule, header) for rule in policy.drift.values()),
    ]
    seen: dict[str, FlowPlan] = {}
    for plan in plans:
        for key in (plan.class_name, plan.file_name):
            if key in seen:
                other = seen[key]
                raise CompileError(
                    f"{policy.source}: {plan.kind} {plan.rule!r} and {other.kind} "
                    f"{other.rule!r} would both generate {key}; rename one of them"
                )
            seen[key] = plan
    return _with_triggers(policy, plans)


def _with_triggers(policy: Policy, plans: list[FlowPlan]) -> list[FlowPlan]:
    """Each plan with the ``@project_trigger`` decorators of its flow: one per triggering
    event, limited to its branches (see :mod:`flowpolicy.triggers`)."""
    by_flow: dict[tuple[str, str], list[dict[str, object]]] = {}
    for trigger in trigger_table(policy).triggers:
        if trigger.kind == "flow":
            continue  # a hand-written flow carries its own decorator
        names.check_trigger_event(policy, trigger.event, trigger.json_path)
        by_flow.setdefault(trigger.flow, []).append({
            "event": trigger.event,
            "branches": list(trigger.branches),
            "parameters": dict(trigger.parameters),
        })
    return [replace(plan, context={**plan.context,
                                   "triggers": by_flow.get((plan.kind, plan.rule), [])})
            for plan in plans]


def source_label(policy: Policy) -> str:
    """How generated headers name the policy file: relative to its project root
    (:mod:`flowpolicy.project_root`; with no root, just the file name), never absolute, so
    output does not depend on where the repository is checked out."""
    if policy.source.startswith("<"):
        return policy.source
    path = Path(policy.source)
    folder = path.parent.resolve()  # the folder, not the file: a linked policy keeps its name
    return (folder / path.name).relative_to(project_root(folder)).as_posix()


def _header(policy: Policy) -> dict[str, object]:
    return {
        "source": source_label(policy),
        "project": names.check_project(policy),
        "policy_hash": policy.hash,
    }


def _asset_type(policy: Policy, asset: str, json_path: str) -> str:
    decl = policy.assets.get(asset)
    if decl is None or decl.type not in ("data", "model"):
        raise names.error_at(policy, json_path, f"asset {asset!r} is not declared")
    return decl.type


def _finish(kind: str, rule: str, class_name: str, template: str,
            context: dict[str, object], header: dict[str, object]) -> FlowPlan:
    file_name = f"{rule}_{kind}.py"  # the rule's own name: `quality` gate -> quality_gate.py
    return FlowPlan(
        kind=kind,
        rule=rule,
        class_name=class_name,
        file_name=file_name,
        template=template,
        context={**header, **context, "class_name": class_name, "file_name": file_name},
    )


def _gate_flow(policy: Policy, gate: Gate, header: dict[str, object]) -> FlowPlan:
    path = f"$.gates.{gate.name}"
    names.check_name(policy, gate.name, path, "gate name")
    names.check_name(policy, gate.asset, f"{path}.asset", "asset name")
    asset_type = _asset_type(policy, gate.asset, f"{path}.asset")
    taken = set(_TEMPLATE_NAMES["gate"])
    parameters, checks, lines = [], [], []
    for index, check in enumerate(gate.checks):
        check_path = f"{path}.checks[{index}]"
        metric = names.check_name(policy, check.metric, f"{check_path}.metric", "metric name")
        bounds = {}
        for bound, value in (("min", check.min), ("max", check.max)):
            if value is None:
                continue
            word = "lower" if bound == "min" else "upper"
            parameter = _float_parameter(policy, taken, f"{bound}_{metric.lower()}",
                                         f"{check_path}.{bound}", value,
                                         f"{word} bound for {metric}")
            parameters.append(parameter)
            bounds[bound] = parameter["name"]
        checks.append({
            "metric": metric,
            "min_parameter": bounds.get("min"),
            "max_parameter": bounds.get("max"),
        })
        lines.append(bounds_text(metric, check.min, check.max))
    on_pass = _event(policy, gate.on_pass, f"{path}.on_pass")
    on_fail = _event(policy, gate.on_fail, f"{path}.on_fail")
    passing = f"A pass publishes `{on_pass}`; " if on_pass else ""
    failing = f"publishes `{on_fail}`, then ends the run" if on_fail else "ends the run"
    context = {
        "gate": gate,
        "gate_name": gate.name,
        "asset": gate.asset,
        "asset_type": asset_type,
        "parameters": parameters,
        "checks": checks,
        "check_lines": lines,
        "outcome_text": f"{passing}{'a' if passing else 'A'} failure {failing}.",
    }
    class_name = names.flow_class_name(policy, gate.name, "Gate", path)
    return _finish("gate", gate.name, class_name, "quality_gate.py.j2", context, header)


def _float_parameter(policy: Policy, taken: set[str], name: str, json_path: str,
                     default: float, help_text: str) -> dict[str, object]:
    """A float Parameter of the flow (a threshold the policy sets), named apart from the
    flow's other names."""
    parameter = names.parameter_name(policy, name, json_path, taken)
    taken.add(parameter)
    return {"name": parameter, "default": float(default), "help": help_text}


def _event(policy: Policy, event: str | None, json_path: str) -> str | None:
    if event is None:
        return None
    return names.check_event(policy, event, json_path, "event name")


def _champion_flow(policy: Policy, rule: ChampionRule, header: dict[str, object]) -> FlowPlan:
    path = f"$.champion.{rule.asset}"
    names.check_name(policy, rule.asset, path, "asset name")
    names.check_name(policy, rule.metric, f"{path}.metric", "metric name")
    events = []
    for event, json_key, outcome in ((rule.on_promote, "on_promote", "A new champion"),
                                     (rule.on_keep, "on_keep", "A kept champion")):
        if event is not None:
            events.append(f"{outcome} publishes `{_event(policy, event, f'{path}.{json_key}')}`.")
    context = {
        "rule": rule,
        "asset": rule.asset,
        "asset_type": _asset_type(policy, rule.asset, path),
        "metric": rule.metric,
        "comparison": "above" if rule.direction == "maximize" else "below",
        "min_improvement": float(rule.min_improvement),
        "event_text": " ".join(events),
    }
    class_name = names.flow_class_name(policy, rule.asset, "Champion", path)
    return _finish("champion", rule.asset, class_name, "champion.py.j2", context, header)


def _edges_by_asset(policy: Policy) -> dict[str, list[tuple[int, PromotionEdge]]]:
    """Promoted asset -> the edges (with their index) that name it, both in policy order."""
    found: dict[str, list[tuple[int, PromotionEdge]]] = {}
    for index, edge in enumerate(policy.promotion):
        for asset in dict.fromkeys(edge.assets):
            found.setdefault(asset, []).append((index, edge))
    return found


def _promotion_flow(policy: Policy, asset: str, asset_edges: list[tuple[int, PromotionEdge]],
                    header: dict[str, object]) -> FlowPlan:
    path = "$.promotion"
    names.check_name(policy, asset, path, "asset name")
    asset_type = _asset_type(policy, asset, path)
    for index, edge in asset_edges:
        edge_path = f"{path}[{index}]"
        names.check_branch(policy, edge.source, f"{edge_path}.from", "branch name")
        names.check_branch(policy, edge.target, f"{edge_path}.to", "branch name")
        for required in edge.require:
            if required != CHAMPION_REQUIREMENT:
                names.check_name(policy, required, f"{edge_path}.require", "gate name")
    rules = promotion_rules(policy, asset, [edge for _, edge in asset_edges])
    gates = {name: gate.checks for name, gate in rules.gates.items()}
    ir_imports = (["ChampionRule"] if rules.champion is not None else []) + (
        ["Check"] if any(gates.values()) else [])
    context = {
        "asset": asset,
        "asset_type": asset_type,
        # the literal PromotionRules.of() reads: (from, to, requirements, alias) per edge
        "edges": tuple((e.source, e.target, e.require, e.alias) for e in rules.edges),
        "gates": gates,
        "champion": rules.champion,
        "default_source": rules.edges[0].source,
        "default_target": rules.edges[0].target,
        "ir_imports": ir_imports,
    }
    class_name = names.flow_class_name(policy, asset, "Promotion", path)
    return _finish("promotion", asset, class_name, "promotion.py.j2", context, header)


def _drift_flow(policy: Policy, rule: DriftRule, header: dict[str, object]) -> FlowPlan:
    path = f"$.drift.{rule.asset}"
    names.check_name(policy, rule.asset, path, "asset name")
    if _asset_type(policy, rule.asset, path) != "data":
        raise names.error_at(policy, path, "drift needs a data asset")
    if rule.report_asset is not None:
        names.check_name(policy, rule.report_asset, f"{path}.report_asset", "asset name")
    taken = set(_TEMPLATE_NAMES["drift"])
    parameters, levels = [], []
    for level in rule.levels:
        level_path = f"{path}.levels.{level.name}"
        names.check_name(policy, level.name, level_path, "level name")
        parameter = _float_parameter(policy, taken, f"{level.name.lower()}_threshold", level_path,
                                     level.threshold, f"level {level.name} from this max D on")
        parameters.append(parameter)
        levels.append({"name": level.name, "parameter": parameter["name"]})
    event_lines = []
    for level_name, event in rule.events.items():
        names.check_name(policy, level_name, f"{path}.events", "level name")
        names.check_event(policy, event, f"{path}.events.{level_name}", "event name")
        event_lines.append(f"Level {level_name} publishes `{event}`.")
    context = {
        "rule": rule,
        "asset": rule.asset,
        "report_asset": rule.report_asset,
        "columns": list(rule.columns),
        "column_settings": len(rule.column_settings),
        "sketch": rule.mode == "sketch",
        "current": rule.current,
        "reference": rule.reference,
        "levels": levels,
        "parameters": parameters,
        "event_text": " ".join(event_lines),
    }
    class_name = names.flow_class_name(policy, rule.asset, "Drift", path)
    return _finish("drift", rule.asset, class_name, "drift.py.j2", context, header)
