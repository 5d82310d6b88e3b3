"""Which event starts which generated flow: the policy's trigger table.

One table serves every consumer: the compiler writes it into the generated flows as
``@project_trigger`` decorators (so Argo Events starts them), ``flowpolicy dispatch`` reads it
to start the same flows locally, ``validate`` checks it cannot loop, and ``graph`` draws it.

The defaults follow the rules, for each asset ``A`` on each branch ``B`` the rules apply to:

- a new instance of ``A`` on ``B`` (a training run, or a promotion into ``B``) starts each
  gate on ``A``;
- the champion rule of ``A`` starts once the gate its promotion requires has passed on ``B``
  (a candidate that fails its gate never becomes champion), or on the new instance when the
  edges that require the champion require no gate;
- a promotion edge ``B → T`` starts on the event of its last requirement: the champion's
  ``on_promote`` (else the move of its alias) when it requires the champion, else the
  ``on_pass`` of the last gate it lists, else on the new instance;
- a new instance of a monitored data asset starts its drift monitor.

Each (flow, branch) has at most one triggering event: Metaflow's ``@trigger`` with several
events waits for all of them (an Argo Events sensor's dependencies are joined with AND), so
"any of" cannot be deployed. A rule whose event the policy does not name (a gate without
``on_pass``) starts nothing; :func:`untriggered` says which.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from flowpolicy.policy.model import CHAMPION_REQUIREMENT, Policy, PromotionEdge
from flowpolicy.registry.base import alias_event, new_instance_event

#: The payload field that names the judged instance in each rule event a generated flow
#: publishes (see the templates' ``publish_event`` calls).
GATE_EVENT_INSTANCE = "instance"
CHAMPION_EVENT_INSTANCE = "candidate"
#: Lifecycle events (new instance, alias move) name it ``instance``.
LIFECYCLE_INSTANCE = "instance"


@dataclass(frozen=True)
class Trigger:
    """Event ``event`` (the part after ``prj.<project>.<branch>.``) on a branch in
    ``branches`` starts generated flow ``flow`` (its file name) on that branch, each
    Parameter in ``parameters`` set from the payload field it names."""

    event: str
    flow: str
    class_name: str
    branches: tuple[str, ...]
    parameters: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: why it exists, for people: "a new instance of fraud_model starts gate quality"
    why: str = ""
    #: where the rule it comes from is written in the policy
    json_path: str = "$"

    def applies_to(self, branch: str) -> bool:
        return not self.branches or branch in self.branches


@dataclass(frozen=True)
class Untriggered:
    """A flow that no event starts on ``branch``, and why (said, never silent)."""

    flow: str
    branch: str
    reason: str


@dataclass(frozen=True)
class TriggerTable:
    project: str
    triggers: tuple[Trigger, ...]
    untriggered: tuple[Untriggered, ...] = ()

    def matching(self, project: str, branch: str, event: str) -> list[Trigger]:
        """The triggers an event ``prj.<project>.<branch>.<event>`` fires."""
        if project != self.project:
            return []
        return [t for t in self.triggers if t.event == event and t.applies_to(branch)]

    def for_flow(self, flow: str) -> list[Trigger]:
        return [t for t in self.triggers if t.flow == flow]


def trigger_table(policy: Policy) -> TriggerTable:
    """The policy's triggers, in flow order (gates, champions, promotions, drift)."""
    from flowpolicy.compile.flows import plan_flows

    plans = {(plan.kind, plan.rule): plan for plan in plan_flows(policy)}
    builder = _Builder(policy, plans)
    for gate in policy.gates.values():
        builder.gate(gate.name, gate.asset)
    for rule in policy.champions.values():
        builder.champion(rule.asset)
    for asset in dict.fromkeys(a for edge in policy.promotion for a in edge.assets):
        builder.promotion(asset)
    for rule in policy.drift.values():
        builder.drift(rule.asset)
    return TriggerTable(policy.project, tuple(builder.triggers), tuple(builder.missing))


class _Builder:
    def __init__(self, policy: Policy, plans: Mapping[tuple[str, str], object]):
        self.policy = policy
        self.plans = plans
        self.triggers: list[Trigger] = []
        self.missing: list[Untriggered] = []
        #: every branch the policy names; with none declared, rules apply on any branch
        self.all_branches: tuple[str, ...] = tuple(policy.branches)

    def _add(self, kind: str, rule: str, event: str | None, branches: tuple[str, ...],
             parameters: Mapping[str, str], why: str, json_path: str,
             missing: str | None = None) -> None:
        plan = self.plans[(kind, rule)]
        if event is None:
            for branch in branches or ("*",):
                self.missing.append(Untriggered(plan.file_name, branch, missing or why))
            return
        self.triggers.append(Trigger(event, plan.file_name, plan.class_name, branches,
                                     MappingProxyType(dict(parameters)), why, json_path))

    def _asset_type(self, asset: str) -> str:
        return self.policy.assets[asset].type

    def _edges_from(self, asset: str, branch: str) -> list[PromotionEdge]:
        return [e for e in self.policy.promotion if asset in e.assets and e.source == branch]

    def gate(self, name: str, asset: str) -> None:
        event = new_instance_event(self._asset_type(asset), asset)
        self._add("gate", name, event, self.all_branches, {"instance": LIFECYCLE_INSTANCE},
                  f"a new instance of {asset} starts gate {name}", f"$.gates.{name}")

    def champion(self, asset: str) -> None:
        """On the branches whose edges require the champion (there the decision matters):
        after the last gate those edges require; with none, when a promotion brings a new
        instance into the branch."""
        path = f"$.champion.{asset}"
        needing = [e for e in self.policy.promotion
                   if asset in e.assets and CHAMPION_REQUIREMENT in e.require]
        by_branch: dict[str, list[PromotionEdge]] = {}
        for edge in needing:
            by_branch.setdefault(edge.source, []).append(edge)
        if not by_branch:
            targets = tuple(dict.fromkeys(
                e.target for e in self.policy.promotion if asset in e.assets))
            self._add("champion", asset, new_instance_event(self._asset_type(asset), asset),
                      targets, {"candidate": LIFECYCLE_INSTANCE},
                      f"a promotion of {asset} into the branch starts its champion rule", path)
            return
        for branch, edges in by_branch.items():
            gates = [r for e in edges for r in e.require if r != CHAMPION_REQUIREMENT]
            if not gates:
                self._add("champion", asset, new_instance_event(self._asset_type(asset), asset),
                          (branch,), {"candidate": LIFECYCLE_INSTANCE},
                          f"a new instance of {asset} on {branch} starts its champion rule", path)
                continue
            gate = self.policy.gates[gates[-1]]
            self._add("champion", asset, gate.on_pass, (branch,),
                      {"candidate": GATE_EVENT_INSTANCE},
                      f"gate {gate.name} passing on {branch} starts the champion rule of "
                      f"{asset}", path,
                      missing=f"gate {gate.name} names no on_pass event, so nothing starts "
                              f"the champion rule of {asset} after it")

    def promotion(self, asset: str) -> None:
        """One trigger per source branch: the edges leaving a branch share one flow
        deployment there, so they must share its event."""
        sources = dict.fromkeys(e.source for e in self.policy.promotion if asset in e.assets)
        for source in sources:
            edges = self._edges_from(asset, source)
            index = self.policy.promotion.index(edges[0])
            path = f"$.promotion[{index}]"
            event, field_name, why, missing = self._last_requirement(asset, source, edges[0])
            for other in edges[1:]:
                if self._last_requirement(asset, source, other)[0] != event:
                    missing = (f"the edges of {asset} leaving {source} end on different "
                               "requirements, and one deployed flow listens to one event")
                    event = None
            parameters = {"instance": field_name} if field_name else {}
            self._add("promotion", asset, event, (source,), parameters, why, path,
                      missing=missing)

    def _last_requirement(self, asset: str, source: str, edge: PromotionEdge
                          ) -> tuple[str | None, str | None, str, str | None]:
        """(event, payload field of the instance, why, why nothing) for one edge."""
        target = f"{source} -> {edge.target}"
        if CHAMPION_REQUIREMENT in edge.require and asset in self.policy.champions:
            rule = self.policy.champions[asset]
            if rule.on_promote:
                return (rule.on_promote, CHAMPION_EVENT_INSTANCE,
                        f"a new champion of {asset} on {source} starts promotion {target}",
                        None)
            return (alias_event(self._asset_type(asset), asset, rule.alias), LIFECYCLE_INSTANCE,
                    f"the move of @{rule.alias} of {asset} on {source} starts promotion "
                    f"{target}", None)
        gates = [r for r in edge.require if r != CHAMPION_REQUIREMENT]
        if gates:
            gate = self.policy.gates[gates[-1]]
            return (gate.on_pass, GATE_EVENT_INSTANCE,
                    f"gate {gate.name} passing on {source} starts promotion {target}",
                    f"gate {gate.name} names no on_pass event, so nothing starts promotion "
                    f"{target} after it")
        return (new_instance_event(self._asset_type(asset), asset), LIFECYCLE_INSTANCE,
                f"a new instance of {asset} on {source} starts promotion {target}", None)

    def drift(self, asset: str) -> None:
        self._add("drift", asset, new_instance_event("data", asset), self.all_branches,
                  {"current": LIFECYCLE_INSTANCE},
                  f"a new instance of {asset} starts its drift monitor", f"$.drift.{asset}")
