"""Which event starts which flow: the policy's trigger table.

One table serves every consumer: the compiler writes it into the generated flows as
``@project_trigger`` decorators (so Argo Events starts them when deployed), ``flowpolicy
dispatch`` reads it to start the same flows locally, the loader refuses a table that could
loop (:func:`loop_diagnostics`), and ``graph`` draws it.

The defaults follow the rules. New instances of an asset ``A`` arrive on the branches where
work starts (the declared branches no promotion edge leads into: ``dev``), from training or
ingestion runs, and on the branches edges carrying ``A`` promote it into; on those:

- a new instance of ``A`` on ``B`` (a training run, or a promotion into ``B``) starts each
  gate on ``A``;
- the champion rule of ``A`` starts, on the branches whose edges require the champion,
  once the last gate those edges require has passed there (its ``on_pass``: a candidate that
  fails its gate never becomes champion), or on the new instance when they require no gate;
  with no edge requiring it, on a promotion of ``A`` into a branch;
- a promotion edge ``B → T`` starts on the event of its last requirement: the champion's
  ``on_promote`` (else the move of its alias) when it requires the champion, else the
  ``on_pass`` of the last gate it lists, else the new instance of ``A`` on ``B``;
- a new instance of a monitored data asset starts its drift monitor.

``triggers:`` entries change a default on the branches they name, switch it off there
(``enabled: false``), or start a hand-written flow. Each (flow, branch) has at most one
triggering event: Metaflow's ``@trigger`` with several events waits for all of them (an Argo
Events sensor joins its dependencies with AND), so "any of" cannot be deployed. A default
whose event the policy does not name (a gate without ``on_pass``) starts nothing, and
:attr:`TriggerTable.untriggered` says so.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

from flowpolicy.diagnostics import Diagnostic
from flowpolicy.errors import FlowpolicyError
from flowpolicy.policy.model import CHAMPION_REQUIREMENT, Policy, PromotionEdge, TriggerDecl
from flowpolicy.registry.base import alias_event, new_instance_event

#: The payload field naming the judged instance in the events generated flows publish (see
#: :mod:`flowpolicy.runtime.steps`): a gate's events and lifecycle events say ``instance``,
#: a champion rule's ``candidate``, a drift monitor's ``current``.
INSTANCE_FIELD = "instance"
CHAMPION_FIELD = "candidate"
DRIFT_FIELD = "current"
#: The Parameter of each generated flow that takes the instance an event names.
INSTANCE_PARAMETER = {"gate": "instance", "champion": "candidate", "promotion": "instance",
                      "drift": "current"}
#: Steps of a loop shown in its error message.
_SHOWN_STEPS = 12


@dataclass(frozen=True)
class Trigger:
    """Event ``event`` (the part after ``prj.<project>.<branch>.``) on a branch in
    ``branches`` (empty: any branch) starts flow ``kind`` ``rule`` on that branch, each
    Parameter in ``parameters`` set from the payload field it names."""

    event: str
    kind: str
    rule: str
    branches: tuple[str, ...]
    parameters: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: for people: "a new instance of fraud_model starts gate quality"
    why: str = ""
    #: where the policy says so (the rule a default comes from, or the triggers: entry)
    json_path: str = "$"
    explicit: bool = False

    @property
    def flow(self) -> tuple[str, str]:
        return (self.kind, self.rule)

    def applies_to(self, branch: str) -> bool:
        return not self.branches or branch in self.branches


@dataclass(frozen=True)
class Untriggered:
    """Flow ``kind`` ``rule`` that no event starts on ``branch`` (``*``: any), and why."""

    kind: str
    rule: str
    branch: str
    reason: str


@dataclass(frozen=True)
class FlowTarget:
    """What ``dispatch`` runs for a flow: its file and (when known) its Metaflow name."""

    path: Path
    class_name: str | None


@dataclass(frozen=True)
class TriggerTable:
    project: str
    triggers: tuple[Trigger, ...]
    untriggered: tuple[Untriggered, ...] = ()
    #: (kind, rule) -> the file to run, for ``dispatch`` (see :func:`dispatch_table`)
    targets: Mapping[tuple[str, str], FlowTarget] = field(
        default_factory=lambda: MappingProxyType({}))

    def matching(self, project: str, branch: str, event: str) -> list[Trigger]:
        """The triggers event ``prj.<project>.<branch>.<event>`` fires."""
        if project != self.project:
            return []
        return [t for t in self.triggers if t.event == event and t.applies_to(branch)]

    def for_flow(self, kind: str, rule: str) -> list[Trigger]:
        return [t for t in self.triggers if t.flow == (kind, rule)]


def flow_label(kind: str, rule: str) -> str:
    """``gate quality``, ``promotion of fraud_model``, ``flow train_flow.py``."""
    return f"{kind} {rule}" if kind in ("gate", "flow") else f"{kind} of {rule}"


# -- the table -------------------------------------------------------------------------------


def trigger_table(policy: Policy) -> TriggerTable:
    """The defaults of :mod:`this module <flowpolicy.triggers>` with the policy's
    ``triggers:`` entries applied; flow order (gates, champions, promotions, drift, flows)."""
    defaults = _Defaults(policy)
    triggers, missing = defaults.derive()
    for index, entry in enumerate(policy.triggers):
        triggers, missing = _apply(policy, entry, index, triggers, missing)
    return TriggerTable(policy.project, tuple(triggers), tuple(missing))


def dispatch_table(policy: Policy, project_root: Path, flows_dir: Path) -> TriggerTable:
    """:func:`trigger_table` with the file each flow runs from: generated flows in
    ``flows_dir`` (their class names from the compiler), hand-written ones relative to
    ``project_root`` (their class found by reading the file, never importing it)."""
    from flowpolicy.compile.flows import plan_flows

    table = trigger_table(policy)
    plans = {(plan.kind, plan.rule): plan for plan in plan_flows(policy)}
    targets: dict[tuple[str, str], FlowTarget] = {}
    for trigger in table.triggers:
        if trigger.flow in targets:
            continue
        if trigger.kind == "flow":
            path = project_root / trigger.rule
            targets[trigger.flow] = FlowTarget(path, _flow_class(path))
        else:
            plan = plans[trigger.flow]
            targets[trigger.flow] = FlowTarget(flows_dir / plan.file_name, plan.class_name)
    return replace(table, targets=MappingProxyType(targets))


def _flow_class(path: Path) -> str | None:
    """The one class in ``path`` that subclasses something named ``...Flow`` /
    ``FlowSpec`` (a hand-written Metaflow flow), read with ``ast``; None when there is not
    exactly one. The file is parsed, never run."""
    try:
        tree = ast.parse(path.read_bytes(), str(path))
    except FileNotFoundError as exc:
        raise FlowpolicyError(f"trigger flow {path} does not exist") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise FlowpolicyError(f"trigger flow {path} cannot be read as Python: {exc}") from exc
    found = [node.name for node in tree.body if isinstance(node, ast.ClassDef)
             and any(ast.unparse(base).endswith(("Flow", "FlowSpec")) for base in node.bases)]
    return found[0] if len(found) == 1 else None


def instance_field(policy: Policy, event: str) -> str:
    """The payload field that names the instance in ``event``, by who publishes it."""
    if any(event in (r.on_promote, r.on_keep) for r in policy.champions.values()):
        return CHAMPION_FIELD
    if any(event in r.events.values() for r in policy.drift.values()):
        return DRIFT_FIELD
    return INSTANCE_FIELD


def _apply(policy: Policy, entry: TriggerDecl, index: int, triggers: list[Trigger],
           missing: list[Untriggered]) -> tuple[list[Trigger], list[Untriggered]]:
    """Replace what starts the entry's flow on the entry's branches (every declared branch
    when it names none; with no declared branch, everywhere)."""
    flow = (entry.kind, entry.target)
    scope = entry.branches or policy.branches
    kept: list[Trigger] = []
    for trigger in triggers:
        if trigger.flow != flow:
            kept.append(trigger)
        elif scope and trigger.branches:
            rest = tuple(b for b in trigger.branches if b not in scope)
            if rest:
                kept.append(replace(trigger, branches=rest, explicit=False))
    missing = [m for m in missing if (m.kind, m.rule) != flow
               or (scope and m.branch not in scope)]
    path = f"$.triggers[{index}]"
    if entry.enabled and entry.event is not None:
        parameters = dict(entry.parameters)
        if not parameters and entry.kind in INSTANCE_PARAMETER:
            parameters = {INSTANCE_PARAMETER[entry.kind]: instance_field(policy, entry.event)}
        where = ", ".join(scope) if scope else "any branch"
        kept.append(Trigger(entry.event, entry.kind, entry.target, tuple(scope),
                            MappingProxyType(parameters),
                            f"triggers[{index}]: {entry.event} starts "
                            f"{flow_label(*flow)} on {where}", path, explicit=True))
    else:
        for branch in scope or ("*",):
            missing.append(Untriggered(entry.kind, entry.target, branch,
                                       f"switched off by triggers[{index}]"))
    return kept, missing


class _Defaults:
    def __init__(self, policy: Policy):
        self.policy = policy
        self.triggers: list[Trigger] = []
        self.missing: list[Untriggered] = []

    def derive(self) -> tuple[list[Trigger], list[Untriggered]]:
        for gate in self.policy.gates.values():
            self._add("gate", gate.name, self._new_instance(gate.asset),
                      self._arrivals(gate.asset), INSTANCE_FIELD,
                      f"a new instance of {gate.asset} starts gate {gate.name}",
                      f"$.gates.{gate.name}")
        for rule in self.policy.champions.values():
            self._champion(rule.asset)
        for asset in dict.fromkeys(a for edge in self.policy.promotion for a in edge.assets):
            self._promotion(asset)
        for rule in self.policy.drift.values():
            self._add("drift", rule.asset, new_instance_event("data", rule.asset),
                      self._arrivals(rule.asset), INSTANCE_FIELD,
                      f"a new instance of {rule.asset} starts its drift monitor",
                      f"$.drift.{rule.asset}")
        return self.triggers, self.missing

    def _add(self, kind: str, rule: str, event: str | None, branches: tuple[str, ...],
             field_name: str, why: str, json_path: str, missing: str | None = None) -> None:
        if event is None:
            for branch in branches or ("*",):
                self.missing.append(Untriggered(kind, rule, branch, missing or why))
            return
        parameters = MappingProxyType({INSTANCE_PARAMETER[kind]: field_name})
        self.triggers.append(Trigger(event, kind, rule, tuple(branches), parameters, why,
                                     json_path))

    def _arrivals(self, asset: str) -> tuple[str, ...]:
        """Where new instances of ``asset`` arrive: the branches no edge leads into (where
        training and ingestion register), and those edges carrying it lead into."""
        targets = {e.target for e in self.policy.promotion}
        carried = {e.target for e in self.policy.edges_for_asset(asset)}
        return tuple(b for b in self.policy.branches if b not in targets or b in carried)

    def _new_instance(self, asset: str) -> str:
        return new_instance_event(self.policy.assets[asset].type, asset)

    def _champion(self, asset: str) -> None:
        path = f"$.champion.{asset}"
        needing: dict[str, list[PromotionEdge]] = {}
        for edge in self.policy.edges_for_asset(asset):
            if CHAMPION_REQUIREMENT in edge.require:
                needing.setdefault(edge.source, []).append(edge)
        if not needing:
            targets = tuple(dict.fromkeys(e.target for e in self.policy.edges_for_asset(asset)))
            self._add("champion", asset, self._new_instance(asset), targets, INSTANCE_FIELD,
                      f"a promotion of {asset} into the branch starts its champion rule", path)
            return
        for branch, edges in needing.items():
            gates = [r for e in edges for r in e.require if r in self.policy.gates]
            if not gates:
                self._add("champion", asset, self._new_instance(asset), (branch,),
                          INSTANCE_FIELD,
                          f"a new instance of {asset} on {branch} starts its champion rule", path)
                continue
            gate = self.policy.gates[gates[-1]]
            self._add("champion", asset, gate.on_pass, (branch,), INSTANCE_FIELD,
                      f"gate {gate.name} passing on {branch} starts the champion rule of {asset}",
                      path, missing=f"gate {gate.name} names no on_pass event, so nothing "
                                    f"starts the champion rule of {asset} after it")

    def _promotion(self, asset: str) -> None:
        """One trigger per source branch: the edges leaving a branch share one flow
        deployment there, so they must end on the same requirement."""
        carrying = self.policy.edges_for_asset(asset)
        for source in dict.fromkeys(e.source for e in carrying):
            edges = [e for e in carrying if e.source == source]
            path = f"$.promotion[{self.policy.promotion.index(edges[0])}]"
            event, field_name, why, missing = self._last_requirement(asset, source, edges[0])
            if any(self._last_requirement(asset, source, e)[0] != event for e in edges[1:]):
                event, missing = None, (f"the edges of {asset} leaving {source} end on "
                                        "different requirements, and a deployed flow listens "
                                        "to one event: say which in triggers:")
            self._add("promotion", asset, event, (source,), field_name, why, path,
                      missing=missing)

    def _last_requirement(self, asset: str, source: str, edge: PromotionEdge
                          ) -> tuple[str | None, str, str, str | None]:
        """(event, payload field naming the instance, why, why there is none) of one edge."""
        route = f"{source} -> {edge.target}"
        rule = self.policy.champions.get(asset)
        if CHAMPION_REQUIREMENT in edge.require and rule is not None:
            if rule.on_promote:
                return (rule.on_promote, CHAMPION_FIELD,
                        f"a new champion of {asset} on {source} starts promotion {route}", None)
            return (alias_event(self.policy.assets[asset].type, asset, rule.alias),
                    INSTANCE_FIELD,
                    f"the move of @{rule.alias} of {asset} on {source} starts promotion "
                    f"{route}", None)
        # (a requirement naming no gate is the loader's error to report, not a trigger)
        gates = [r for r in edge.require if r in self.policy.gates]
        if gates:
            gate = self.policy.gates[gates[-1]]
            return (gate.on_pass, INSTANCE_FIELD,
                    f"gate {gate.name} passing on {source} starts promotion {route}",
                    f"gate {gate.name} names no on_pass event, so nothing starts promotion "
                    f"{route} after it")
        return (self._new_instance(asset), INSTANCE_FIELD,
                f"a new instance of {asset} on {source} starts promotion {route}", None)


# -- what flows publish, and the loop check ---------------------------------------------


def publications(policy: Policy, kind: str, rule: str, branch: str
                 ) -> Iterator[tuple[str, str, str]]:
    """(event, branch it is published on, how) for every event flow ``kind`` ``rule``
    running on ``branch`` can publish, its registry lifecycle events included."""
    if kind == "gate":
        gate = policy.gates[rule]
        for outcome, event in (("passes", gate.on_pass), ("fails", gate.on_fail)):
            if event:
                yield event, branch, f"{outcome}: {event}"
    elif kind == "champion":
        champion = policy.champions[rule]
        for outcome, event in (("new champion", champion.on_promote),
                               ("champion kept", champion.on_keep)):
            if event:
                yield event, branch, f"{outcome}: {event}"
        yield (alias_event(policy.assets[rule].type, rule, champion.alias), branch,
               f"moves @{champion.alias}")
    elif kind == "promotion":
        asset_type = policy.assets[rule].type
        for edge in policy.edges_for_asset(rule):
            if edge.source == branch:
                yield (new_instance_event(asset_type, rule), edge.target,
                       f"promotes it to {edge.target}")
                yield (alias_event(asset_type, rule, edge.alias), edge.target,
                       f"moves @{edge.alias} on {edge.target}")
    elif kind == "drift":
        drift = policy.drift[rule]
        for level, event in drift.events.items():
            yield event, branch, f"level {level}: {event}"
        if drift.report_asset:
            yield (new_instance_event("data", drift.report_asset), branch,
                   f"registers {drift.report_asset}")
    elif kind == "flow":
        entry = next(t for t in policy.triggers if t.kind == "flow" and t.target == rule)
        for asset in entry.registers:
            yield (new_instance_event(policy.assets[asset].type, asset), branch,
                   f"registers {asset}")
        for event in entry.publishes:
            yield event, branch, f"publishes {event}"


def loop_diagnostics(policy: Policy) -> list[Diagnostic]:
    """FP225 for each way the triggers could start each other forever: a flow whose events
    start, through any chain of triggers on any branches, the same flow on the same branch
    again. Located at the first ``triggers:`` entry in the loop, else at the rule of its
    first flow."""
    table = trigger_table(policy)
    by_event: dict[str, list[Trigger]] = {}
    for trigger in table.triggers:
        by_event.setdefault(trigger.event, []).append(trigger)
    branches = policy.branches or ("*",)

    def successors(node: tuple[str, str, str]) -> Iterator[tuple[tuple[str, str, str], str,
                                                                  Trigger]]:
        kind, rule, branch = node
        for event, where, how in publications(policy, kind, rule, branch):
            for trigger in by_event.get(event, ()):
                if where == "*" or trigger.applies_to(where):
                    yield (trigger.kind, trigger.rule, where), how, trigger

    starts = [(t.kind, t.rule, b) for t in table.triggers for b in (t.branches or branches)]
    found: list[Diagnostic] = []
    state: dict[tuple[str, str, str], str] = {}
    for start in starts:
        if start in state:
            continue
        # iterative depth-first search: (node, its successor iterator, how we got there)
        stack = [(start, successors(start), None, None)]
        state[start] = "open"
        while stack:
            node, children, _, _ = stack[-1]
            step = next(children, None)
            if step is None:
                state[node] = "done"
                stack.pop()
                continue
            child, how, trigger = step
            if state.get(child) == "open":
                at = next(i for i, frame in enumerate(stack) if frame[0] == child)
                loop = [(frame[0], frame[2], frame[3]) for frame in stack[at + 1:]]
                found.append(_loop_error(policy, table, child, [*loop, (child, how, trigger)]))
            elif child not in state:
                state[child] = "open"
                stack.append((child, successors(child), how, trigger))
    return found


def _loop_error(policy: Policy, table: TriggerTable, first: tuple[str, str, str],
                steps: list[tuple[tuple[str, str, str], str, Trigger]]) -> Diagnostic:
    def node_text(node: tuple[str, str, str]) -> str:
        kind, rule, branch = node
        return f"{flow_label(kind, rule)} on {branch}"

    parts = [node_text(first)]
    for node, how, _ in steps[:_SHOWN_STEPS]:
        parts.append(f"{how} -> {node_text(node)}")
    if len(steps) > _SHOWN_STEPS:
        parts.append(f"… ({len(steps) - _SHOWN_STEPS} more steps)")
    triggers = [trigger for _, _, trigger in steps]
    blamed = next((t for t in triggers if t.explicit), triggers[-1])
    location = policy.locate(blamed.json_path)
    return location.diagnostic(
        "FP225", "triggers could start each other forever: " + "; ".join(parts)
        + ". Switch one of them off (triggers: ... enabled: false) or have a flow in the loop "
          "not produce what starts the next", blamed.json_path)
