"""The decisions a policy makes: quality gates, champion/challenger, promotion legality,
and which recorded evidence counts for them.

Plain functions over the frozen :class:`~flowpolicy.policy.model.Policy` IR, annotations and
the registry's typed evidence records (:class:`~flowpolicy.registry.base.EvidenceRecord`);
the generated flows (through :mod:`flowpolicy.runtime.steps`) and ``flowpolicy check`` /
``plan`` call the same functions, so each rule has one implementation.
Every result is a frozen dataclass whose ``to_dict()`` is JSON-safe, ready to be stored as
evidence.

Semantics:

- **Metric values** are read from string annotations (as obproject stores them) with
  ``float()``; ints and floats are accepted as they are. A value that is not a number
  (``"n/a"``, ``""``, ``True``) raises :class:`MetricValueError` naming the asset, instance and
  key: it is a broken data contract, not a verdict. ``"nan"`` parses as a number that nothing
  can be compared with: it fails a gate check and never wins a champion comparison.
- **Gates**: each check passes when ``min <= value <= max``, both bounds inclusive and either
  optional, compared exactly (no arithmetic happens between the recorded value and the
  bound). A missing metric fails its check. The gate passes when every check passes.
- **Champion**: the margin is ``candidate - champion`` for ``maximize`` and
  ``champion - candidate`` for ``minimize``. The candidate is promoted when
  ``margin >= min_improvement`` and ``margin > 0`` ("beats it by at least that much": the
  boundary promotes, a tie keeps the incumbent). Because the margin is a float subtraction
  (``0.82 - 0.80`` is ``0.019999999999999907``), both comparisons allow a relative tolerance
  of :data:`TOLERANCE`. The first candidate with a value becomes champion when there is
  none; a champion without a comparable value (missing or NaN, e.g. after the policy switched
  metric) is replaced by a candidate that has one; the champion itself as candidate is kept.
- **Evidence that counts**: a flow run may override a threshold (a what-if run); its evidence
  records the thresholds it used (``thresholds``), the policy's (``policy_thresholds``) and
  ``under_policy``. A record counts for a requirement only when its recorded thresholds are
  the policy's own (:func:`threshold_mismatch`; for drift also the mode and each column's own
  statistic and thresholds, :func:`drift_thresholds`), so no override can produce evidence
  that a promotion, ``check`` or ``plan`` accepts, and a policy change makes earlier evidence
  stop counting. Of the records that count, the latest decides
  (:func:`latest_evidence`: latest ``created_at``, the later record on a tie).
- **Promotion** from ``source`` to ``target`` is legal when the asset has an edge
  ``source -> target`` (:class:`PromotionRules`) and each requirement holds on the very
  instance being promoted, from recorded evidence that counts: for a gate, the latest such
  ``gate`` record of that gate says passed; for ``champion``, the latest such ``champion``
  record says the instance is (became or stayed) the champion, and the alias still points at
  it. Every failing reason is reported, not just the first.
- **Drift inputs**: the current and reference specs must name two different existing
  instances (:func:`drift_pair`); otherwise there is nothing to compare, which the flow
  reports as its refusal and ``plan`` with the same words.
- **Asset contract**: an instance of a declared asset carries every key of the declaration's
  ``required_annotations`` with a non-empty value (:func:`missing_annotations`).
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from flowpolicy.errors import FlowpolicyError, RegistryError
from flowpolicy.policy.model import (
    CHAMPION_REQUIREMENT,
    AssetDecl,
    ChampionRule,
    Check,
    DriftLevel,
    DriftRule,
    Gate,
    Policy,
    PromotionEdge,
    frozen_map,
)
from flowpolicy.registry.base import parse_spec

if TYPE_CHECKING:
    from flowpolicy.registry.base import EvidenceRecord

#: Relative tolerance for comparisons of computed (not recorded) numbers: margins, drift
#: statistics against their thresholds.
TOLERANCE = 1e-12


class MetricValueError(FlowpolicyError):
    """An annotation a rule needs holds something that is not a number."""

    def __init__(self, *, asset: str, instance: str, key: str, value: Any):
        self.asset = asset
        self.instance = instance
        self.key = key
        self.value = value
        super().__init__(f"{asset} {instance}: annotation {key!r} is not a number: {value!r}")


def metric_value(
    annotations: Mapping[str, Any], key: str, *, asset: str, instance: str
) -> float | None:
    """The annotation ``key`` as a float, or None when it is absent.

    Raises :class:`MetricValueError` when it is present but not a number.
    """
    if key not in annotations:
        return None
    value = as_number(annotations[key])
    if value is None:
        raise MetricValueError(asset=asset, instance=instance, key=key, value=annotations[key])
    return value


def as_number(raw: Any) -> float | None:
    """A recorded number: ints, floats and numeric strings ("0.8", "nan", "inf" — JSON has
    no NaN, so flowpolicy writes those as strings); None for anything else, booleans too."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, (int, float)):
        return float(raw)
    if isinstance(raw, str):
        try:
            return float(raw)
        except ValueError:
            return None
    return None


# --- gates -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckVerdict:
    """One check of a gate against one instance: the value seen, the bounds, the verdict."""

    metric: str
    value: float | None
    min: float | None
    max: float | None
    passed: bool
    reason: str

    def to_dict(self) -> dict:
        return {**asdict(self), "value": _json_number(self.value)}


@dataclass(frozen=True)
class GateVerdict:
    """A gate evaluated on one instance of its asset."""

    gate: str
    asset: str
    instance: str
    passed: bool
    checks: tuple[CheckVerdict, ...]
    #: The event the policy publishes for this outcome (``on_pass`` / ``on_fail``), if any.
    event: str | None = None

    @property
    def failures(self) -> tuple[CheckVerdict, ...]:
        return tuple(check for check in self.checks if not check.passed)

    @property
    def reason(self) -> str:
        if self.passed:
            return f"all {len(self.checks)} checks of gate {self.gate} passed"
        return "; ".join(check.reason for check in self.failures)

    def to_dict(self) -> dict:
        return {
            "gate": self.gate,
            "asset": self.asset,
            "instance": self.instance,
            "passed": self.passed,
            "reason": self.reason,
            "event": self.event,
            "checks": [check.to_dict() for check in self.checks],
        }


def missing_annotations(asset: AssetDecl, annotations: Mapping[str, Any]) -> tuple[str, ...]:
    """The ``required_annotations`` of ``asset`` that ``annotations`` lacks or leaves empty,
    in declaration order (empty when the instance honours its asset's contract)."""
    return tuple(
        key for key in asset.required_annotations
        if annotations.get(key) is None or str(annotations.get(key)).strip() == ""
    )


def evaluate_gate(
    gate: Gate,
    annotations: Mapping[str, Any],
    *,
    instance: str,
    checks: Sequence[Check] | None = None,
) -> GateVerdict:
    """Evaluate ``gate`` on the annotations of ``instance`` of ``gate.asset``.

    ``checks`` replaces ``gate.checks`` (the thresholds a run received as parameters).
    """
    verdicts = tuple(
        _evaluate_check(check, annotations, asset=gate.asset, instance=instance)
        for check in (gate.checks if checks is None else checks)
    )
    passed = all(verdict.passed for verdict in verdicts)
    return GateVerdict(
        gate=gate.name,
        asset=gate.asset,
        instance=instance,
        passed=passed,
        checks=verdicts,
        event=gate.on_pass if passed else gate.on_fail,
    )


def _evaluate_check(
    check: Check, annotations: Mapping[str, Any], *, asset: str, instance: str
) -> CheckVerdict:
    value = metric_value(annotations, check.metric, asset=asset, instance=instance)

    def verdict(passed: bool, reason: str) -> CheckVerdict:
        return CheckVerdict(check.metric, value, check.min, check.max, passed, reason)

    if value is None:
        return verdict(
            False, f"{check.metric} is missing: {asset} {instance} has no such annotation"
        )
    if math.isnan(value):
        return verdict(False, f"{check.metric} is NaN on {asset} {instance}")
    shown = f"{check.metric} = {show_number(value)}"
    if check.min is not None and value < check.min:
        return verdict(False, f"{shown} is below the minimum {show_number(check.min)}")
    if check.max is not None and value > check.max:
        return verdict(False, f"{shown} is above the maximum {show_number(check.max)}")
    return verdict(True, f"{shown} is within {_bounds(check)}")


def _bounds(check: Check) -> str:
    low = "-inf" if check.min is None else show_number(check.min)
    high = "+inf" if check.max is None else show_number(check.max)
    return f"[{low}, {high}]"


# --- champion / challenger -----------------------------------------------------------------


@dataclass(frozen=True)
class ChampionDecision:
    """Whether ``candidate`` replaces ``champion`` under a champion rule, and why."""

    asset: str
    metric: str
    direction: str
    min_improvement: float
    candidate: str
    candidate_value: float | None
    champion: str | None
    champion_value: float | None
    #: How much better the candidate is (positive = better), None when not comparable.
    margin: float | None
    promote: bool
    reason: str
    #: The event the policy publishes for this outcome (``on_promote`` / ``on_keep``), if any.
    event: str | None = None

    @property
    def champion_after(self) -> str | None:
        """The champion once the decision is applied."""
        return self.candidate if self.promote else self.champion

    @property
    def candidate_is_champion(self) -> bool:
        """True when the candidate is the champion after the decision (promoted or kept);
        record this as the ``passed`` of the ``champion`` evidence on the candidate."""
        return self.champion_after == self.candidate

    def to_dict(self) -> dict:
        return {
            "asset": self.asset,
            "metric": self.metric,
            "direction": self.direction,
            "min_improvement": self.min_improvement,
            "candidate": self.candidate,
            "candidate_value": _json_number(self.candidate_value),
            "champion": self.champion,
            "champion_value": _json_number(self.champion_value),
            "margin": _json_number(self.margin),
            "promote": self.promote,
            "champion_after": self.champion_after,
            "candidate_is_champion": self.candidate_is_champion,
            "reason": self.reason,
            "event": self.event,
        }


def decide_champion(
    rule: ChampionRule,
    *,
    candidate: str,
    candidate_annotations: Mapping[str, Any],
    champion: str | None,
    champion_annotations: Mapping[str, Any] | None,
    min_improvement: float | None = None,
) -> ChampionDecision:
    """Decide whether ``candidate`` becomes the champion of ``rule.asset``.

    ``champion`` is the current champion instance (None when there is none yet) and
    ``champion_annotations`` its annotations. ``min_improvement`` replaces the rule's (a run's
    parameter).
    """
    required = rule.min_improvement if min_improvement is None else float(min_improvement)
    if not required >= 0:  # also rejects NaN
        raise FlowpolicyError(f"min_improvement must be a number >= 0, got {required!r}")
    if champion is not None and champion_annotations is None and champion != candidate:
        raise FlowpolicyError(
            f"decide_champion: the annotations of champion {champion} are needed to compare"
        )
    metric, asset = rule.metric, rule.asset
    cand = metric_value(candidate_annotations, metric, asset=asset, instance=candidate)
    if champion == candidate:
        champ = cand
    elif champion is None:
        champ = None
    else:
        champ = metric_value(champion_annotations, metric, asset=asset, instance=champion)

    def decision(promote: bool, reason: str, margin: float | None = None) -> ChampionDecision:
        return ChampionDecision(
            asset=asset,
            metric=metric,
            direction=rule.direction,
            min_improvement=required,
            candidate=candidate,
            candidate_value=cand,
            champion=champion,
            champion_value=champ,
            margin=margin,
            promote=promote,
            reason=reason,
            event=rule.on_promote if promote else rule.on_keep,
        )

    if champion == candidate:
        return decision(False, f"{candidate} is already the champion of {asset}; it stays", 0.0)
    stays = "no champion is chosen" if champion is None else f"champion {champion} stays"
    if cand is None:
        return decision(False, f"candidate {candidate} has no {metric} annotation; {stays}")
    if math.isnan(cand):
        return decision(False, f"candidate {candidate} has {metric} = NaN; {stays}")
    if champion is None:
        return decision(True, f"no champion yet: {candidate} becomes the first champion of {asset}")
    if champ is None or math.isnan(champ):
        what = "no" if champ is None else "a NaN"
        return decision(
            True,
            f"champion {champion} has {what} {metric} to compare with; "
            f"candidate {candidate} ({metric} = {show_number(cand)}) replaces it",
        )

    margin = cand - champ if rule.direction == "maximize" else champ - cand
    slack = TOLERANCE * max(
        (abs(x) for x in (cand, champ, required) if math.isfinite(x)), default=0.0
    )
    compared = (
        f"{metric} {show_number(cand)} vs {show_number(champ)} ({rule.direction}), "
        f"margin {_show_margin(margin)}, min_improvement {show_number(required)}"
    )
    if margin > slack and margin >= required - slack:
        return decision(True, f"{candidate} beats champion {champion}: {compared}", margin)
    return decision(
        False, f"{candidate} does not beat champion {champion} by enough: {compared}", margin
    )


# --- thresholds and the evidence that counts ------------------------------------------------
#
# A flow run may override a threshold Parameter (a what-if run). Its evidence then records
# the thresholds it used beside the policy's, and counts for nothing: a requirement holds only
# on evidence whose recorded thresholds are the policy's own, compared by the one function
# below, whoever asks (the promotion flow, `check`, `plan`).


def gate_thresholds(checks: Sequence[Check]) -> list[dict[str, Any]]:
    """The bounds of ``checks`` as evidence records them: ``[{"metric", "min", "max"}]`` in
    check order."""
    return [{"metric": c.metric, "min": _json_number(_bound(c.min)),
             "max": _json_number(_bound(c.max))} for c in checks]


def champion_thresholds(rule: ChampionRule, min_improvement: float | None = None
                        ) -> dict[str, Any]:
    """What a champion decision is judged under: the rule's metric and direction and
    ``min_improvement`` (the rule's unless a run gave another)."""
    required = rule.min_improvement if min_improvement is None else min_improvement
    return {"metric": rule.metric, "direction": rule.direction,
            "min_improvement": _json_number(float(required))}


def drift_thresholds(rule: DriftRule, levels: Sequence[DriftLevel] | None = None
                     ) -> dict[str, Any]:
    """What a drift verdict is judged under: the mode, the levels (the rule's unless a run
    gave others, as level name -> threshold) and each column's own settings (its statistic
    and the thresholds that replace the levels' for it). Changing any of them changes the
    verdict, so evidence judged under other ones does not count."""
    return {
        "mode": rule.mode,
        "levels": {level.name: _json_number(float(level.threshold))
                   for level in (rule.levels if levels is None else levels)},
        "columns": {name: {"statistic": column.statistic,
                           "levels": {level: _json_number(float(threshold))
                                      for level, threshold in column.levels.items()}}
                    for name, column in rule.column_settings.items()},
    }


def same_thresholds(used: Any, policy: Any) -> bool:
    """True when two recorded threshold sets are the same: the same names and structure, the
    same numbers (``50`` equals ``50.0``; NaN equals nothing; ``True`` is not a number)."""
    if isinstance(used, bool) or isinstance(policy, bool):
        return type(used) is type(policy) and used == policy
    if isinstance(used, (int, float)) and isinstance(policy, (int, float)):
        return float(used) == float(policy)
    if isinstance(used, Mapping) and isinstance(policy, Mapping):
        return (used.keys() == policy.keys()
                and all(same_thresholds(used[k], policy[k]) for k in used))
    if isinstance(used, (list, tuple)) and isinstance(policy, (list, tuple)):
        return len(used) == len(policy) and all(map(same_thresholds, used, policy))
    return type(used) is type(policy) and used == policy


def judged_details(decision: Mapping[str, Any], *, thresholds: Any, policy_thresholds: Any,
                   policy_hash: str) -> dict[str, Any]:
    """The evidence details of a decision: the decision itself, the thresholds the run used,
    the policy's, whether they are the same (``under_policy``; False marks a what-if run),
    and the policy hash."""
    return {**decision, "thresholds": thresholds, "policy_thresholds": policy_thresholds,
            "under_policy": same_thresholds(thresholds, policy_thresholds),
            "policy_hash": policy_hash}


def threshold_mismatch(record: EvidenceRecord, thresholds: Any) -> str | None:
    """None when ``record`` was judged under exactly ``thresholds`` (the policy's own, from
    :func:`gate_thresholds` / :func:`champion_thresholds` / :func:`drift_thresholds`), so it
    counts; otherwise why it does not."""
    used = recorded_thresholds(record)
    if used is None:
        return "it records no thresholds it was judged under; run the flow again"
    if same_thresholds(used, thresholds):
        return None
    what_if = " in a what-if run" if record.details.get("under_policy") is False else ""
    return (f"it was judged under {describe_thresholds(record.kind, used)}{what_if}, the "
            f"policy's are {describe_thresholds(record.kind, thresholds)}")


def recorded_thresholds(record: EvidenceRecord) -> Any | None:
    """The thresholds ``record`` was judged under: its ``thresholds``, or for gate and
    champion records written before evidence named them, the bounds and ``min_improvement``
    their decision recorded (the values the run used); None when it holds neither. Drift
    records that name their levels alone (level name -> threshold) were written before drift
    rules had a mode and column settings: they were judged in exact mode with none."""
    details = record.details
    if "thresholds" in details:
        thresholds = details["thresholds"]
        if record.kind == "drift" and _levels_alone(thresholds):
            return {"mode": "exact", "levels": dict(thresholds), "columns": {}}
        return thresholds
    checks = details.get("checks")
    if record.kind == "gate" and isinstance(checks, list):
        if all(isinstance(c, Mapping) for c in checks):
            return [{"metric": c.get("metric"), "min": c.get("min"), "max": c.get("max")}
                    for c in checks]
    keys = ("metric", "direction", "min_improvement")
    if record.kind == "champion" and all(key in details for key in keys):
        return {key: details[key] for key in keys}
    return None


def _levels_alone(thresholds: Any) -> bool:
    return isinstance(thresholds, Mapping) and bool(thresholds) and all(
        isinstance(value, (int, float)) and not isinstance(value, bool)
        for value in thresholds.values())


def describe_thresholds(kind: str, thresholds: Any) -> str:
    """Recorded thresholds in words: ``f1_score >= 0.8``, ``min_improvement 0.02``,
    ``elevated >= 0.05, high >= 0.1; sketch mode; column hour: psi, high >= 0.25``."""
    try:
        if kind == "gate":
            return ", ".join(bounds_text(t["metric"], t["min"], t["max"]) for t in thresholds)
        if kind == "champion":
            return f"min_improvement {_show_recorded(thresholds['min_improvement'])}"
        if kind == "drift":
            parts = [_levels_text(thresholds["levels"])]
            if thresholds["mode"] != "exact":
                parts.append(f"{thresholds['mode']} mode")
            for name, column in thresholds["columns"].items():
                own = f", {_levels_text(column['levels'])}" if column["levels"] else ""
                parts.append(f"column {name}: {column['statistic']}{own}")
            return "; ".join(parts)
    except (AttributeError, KeyError, TypeError):
        pass  # not the shape flowpolicy records: show it as it is
    return json.dumps(thresholds, sort_keys=True, default=str)


def _levels_text(levels: Mapping[str, Any]) -> str:
    return ", ".join(f"{name} >= {_show_recorded(value)}" for name, value in levels.items())


def latest_evidence(records: Iterable[EvidenceRecord]) -> EvidenceRecord | None:
    """The most recent of ``records``: the latest ``created_at``, and on a tie the later one
    in the order given (the registry returns an instance's records in append order)."""
    best = None
    for record in records:
        if best is None or record.created_at >= best.created_at:
            best = record
    return best


def _bound(value: float | None) -> float | None:
    return None if value is None else float(value)


def _show_recorded(value: Any) -> str:
    return show_number(float(value)) if isinstance(value, (int, float)) else str(value)


def bounds_text(metric: str | None, low: Any, high: Any, *,
                show: Callable[[Any], str] = _show_recorded,
                signs: tuple[str, str] = ("<=", ">=")) -> str:
    """``0.5 <= auc <= 0.9``, ``auc >= 0.8``, ``auc present``; with no metric (a card's bound
    column) ``0.5 <= value <= 0.9``, ``>= 0.8``. ``signs``: the (at most, at least) signs."""
    at_most, at_least = signs
    if low is not None and high is not None:
        return f"{show(low)} {at_most} {metric or 'value'} {at_most} {show(high)}"
    subject = f"{metric} " if metric else ""
    if low is not None:
        return f"{subject}{at_least} {show(low)}"
    if high is not None:
        return f"{subject}{at_most} {show(high)}"
    return f"{subject}present"


# --- promotion -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PromotionRules:
    """What decides the promotion of one asset: its declared edges, and the gates and
    champion rule those edges require (only what a requirement is judged by: no events)."""

    asset: str
    asset_type: str
    edges: tuple[PromotionEdge, ...]
    #: The required gates that judge this asset, by name.
    gates: Mapping[str, Gate] = field(default_factory=frozen_map)
    #: The asset's champion rule, when an edge requires the champion.
    champion: ChampionRule | None = None

    @classmethod
    def of(cls, asset: str, asset_type: str, *, edges: Sequence[Sequence[Any]],
           gates: Mapping[str, Sequence[Check]] | None = None,
           champion: ChampionRule | None = None) -> PromotionRules:
        """The rules as a generated promotion flow writes them: each edge as
        ``(from, to, requirements, alias)`` and each gate as its checks."""
        return cls(
            asset=asset,
            asset_type=asset_type,
            edges=tuple(PromotionEdge(source=source, target=target, assets=(asset,),
                                      require=tuple(require), alias=alias)
                        for source, target, require, alias in edges),
            gates=frozen_map({name: Gate(name=name, asset=asset, checks=tuple(checks))
                              for name, checks in (gates or {}).items()}),
            champion=champion,
        )


def asset_type(policy: Policy, asset: str) -> str:
    """The declared type of ``asset``; an asset the policy does not declare is a model."""
    declared = policy.assets.get(asset)
    return declared.type if declared is not None else "model"


def promotion_rules(policy: Policy, asset: str,
                    edges: Sequence[PromotionEdge] | None = None) -> PromotionRules:
    """The part of ``policy`` that decides promotions of ``asset``. ``edges`` are the
    policy's edges that list ``asset`` (in policy order), when the caller has them."""
    if edges is None:
        edges = policy.edges_for_asset(asset)
    own = tuple(replace(e, assets=(asset,)) for e in edges)
    required = dict.fromkeys(r for e in own for r in e.require)
    gates = {}
    for name in required:  # looked up by name: n assets and n gates must not cost n * n
        gate = policy.gates.get(name)
        if gate is not None and gate.asset == asset:
            gates[name] = Gate(name=gate.name, asset=asset, checks=gate.checks)
    champion = policy.champions.get(asset) if CHAMPION_REQUIREMENT in required else None
    return PromotionRules(
        asset=asset,
        asset_type=asset_type(policy, asset),
        edges=own,
        gates=frozen_map(gates),
        champion=None if champion is None else replace(champion, on_promote=None, on_keep=None),
    )


@dataclass(frozen=True)
class PromotionVerdict:
    """Whether ``instance`` of ``asset`` may move from ``source`` to ``target``."""

    asset: str
    instance: str
    source: str
    target: str
    allowed: bool
    #: Every reason the promotion is refused (empty when allowed).
    reasons: tuple[str, ...]
    #: The declared edge that applies, or None when there is none for this asset.
    edge: PromotionEdge | None
    #: The requirements that hold, each with the evidence it rests on.
    satisfied: tuple[str, ...] = ()
    #: Requirement -> the evidence record it was decided on (held or not).
    rests_on: Mapping[str, EvidenceRecord] = field(default_factory=frozen_map)
    #: The edge's requirements that hold, in the edge's order.
    held: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {
            "asset": self.asset,
            "instance": self.instance,
            "source": self.source,
            "target": self.target,
            "allowed": self.allowed,
            "reasons": list(self.reasons),
            "satisfied": list(self.satisfied),
            "edge": None if self.edge is None else self.edge.to_document(),
            "rests_on": {requirement: {"policy_hash": r.policy_hash, "created_at": r.created_at,
                                       "created_by": r.created_by.entity_id,
                                       "passed": r.passed}
                         for requirement, r in self.rests_on.items()},
            "held": list(self.held),
        }


def check_promotion(
    rules: PromotionRules,
    *,
    source: str,
    target: str,
    instance: str,
    evidence: Sequence[EvidenceRecord],
    current_champion: str | None = None,
    annotations: Mapping[str, Any] | None = None,
) -> PromotionVerdict:
    """Is promoting ``instance`` of ``rules.asset`` from ``source`` to ``target`` legal?

    ``instance`` is a resolved instance id (``"v3"``, not ``"latest"``) and ``evidence`` the
    registry's records on it, in append order (records of another asset or instance are
    ignored). A requirement holds on the latest record that was judged under the policy's
    own thresholds (:func:`threshold_mismatch`); what-if records are never counted.
    ``current_champion``, when given (where the champion alias points now), must also be
    ``instance`` for a ``champion`` requirement: evidence says the instance *became*
    champion, the alias says it still is. ``annotations``, when given, are the instance's
    own (immutable) annotations: a gate that was run on it, but whose results were judged
    under other thresholds, is then judged again on them with the policy's checks (how
    ``check`` audits instances promoted before a threshold changed); the promotion flow and
    ``plan`` do not pass them, so a new promotion rests on evidence only.
    """
    reasons: list[str] = []
    satisfied: list[str] = []
    rests_on: dict[str, EvidenceRecord] = {}
    held: list[str] = []
    edge = next((e for e in rules.edges if e.source == source and e.target == target), None)
    if edge is None:
        declared = ", ".join(f"{e.source} -> {e.target}" for e in rules.edges) or "none"
        reasons.append(f"no promotion edge {source} -> {target} is declared for {rules.asset} "
                       f"(its edges: {declared})")

    records = [r for r in evidence if r.scope.name == rules.asset and f"v{r.version}" == instance]
    for requirement in edge.require if edge is not None else ():
        if requirement == CHAMPION_REQUIREMENT:
            problem, proof, record = _champion_requirement(rules, instance, records,
                                                           current_champion)
        else:
            problem, proof, record = _gate_requirement(rules, requirement, instance, records,
                                                       annotations)
        if record is not None:
            rests_on[requirement] = record
        if problem:
            reasons.append(problem)
        else:
            satisfied.append(proof)
            held.append(requirement)

    return PromotionVerdict(
        asset=rules.asset,
        instance=instance,
        source=source,
        target=target,
        allowed=not reasons,
        reasons=tuple(reasons),
        edge=edge,
        satisfied=tuple(satisfied),
        rests_on=frozen_map(rests_on),
        held=tuple(held),
    )


def _counted(records: Sequence[EvidenceRecord], thresholds: Any, what: str, subject: str
             ) -> tuple[str | None, EvidenceRecord | None]:
    """The latest record judged under ``thresholds``, or why there is none."""
    record = latest_evidence(r for r in records if threshold_mismatch(r, thresholds) is None)
    if record is not None:
        return None, record
    latest = latest_evidence(records)
    if latest is None:
        return f"{what} has no recorded result on {subject}", None
    return (f"{what} has no result on {subject} judged under the policy's thresholds: the "
            f"latest{_when(latest)} {threshold_mismatch(latest, thresholds)}"), None


def _gate_requirement(rules: PromotionRules, name: str, instance: str,
                      records: Sequence[EvidenceRecord], annotations: Mapping[str, Any] | None
                      ) -> tuple[str | None, str, EvidenceRecord | None]:
    gate = rules.gates.get(name)
    subject = f"{rules.asset} {instance}"
    if gate is None:
        return f"required gate {name!r} is not a gate that judges {rules.asset}", "", None
    mine = [r for r in records if r.kind == "gate" and r.rule == name]
    problem, record = _counted(mine, gate_thresholds(gate.checks), f"gate {name}", subject)
    if record is None:
        if annotations is None or not mine:
            return problem, "", None
        return _rejudged(gate, subject, instance, annotations, latest_evidence(mine))
    when = _when(record)
    if not record.passed:
        return f"gate {name} failed on {subject} (latest result{when})", "", record
    return None, f"gate {name} passed on {subject}{when}", record


def _rejudged(gate: Gate, subject: str, instance: str, annotations: Mapping[str, Any],
              recorded: EvidenceRecord) -> tuple[str | None, str, EvidenceRecord]:
    why = threshold_mismatch(recorded, gate_thresholds(gate.checks))
    try:
        verdict = evaluate_gate(gate, annotations, instance=instance)
    except MetricValueError as exc:
        return f"gate {gate.name} cannot be judged again on {subject}: {exc}", "", recorded
    if not verdict.passed:
        return (f"gate {gate.name} fails on {subject} judged again under the policy's "
                f"thresholds: {verdict.reason} (its recorded result does not count: {why})",
                "", recorded)
    return None, (f"gate {gate.name} passes on {subject} judged again under the policy's "
                  f"thresholds (its recorded result does not count: {why})"), recorded


def _champion_requirement(rules: PromotionRules, instance: str,
                          records: Sequence[EvidenceRecord], current_champion: str | None
                          ) -> tuple[str | None, str, EvidenceRecord | None]:
    rule = rules.champion
    subject = f"{rules.asset} {instance}"
    if rule is None:
        return (f"champion is required but the policy has no champion rule for {rules.asset}",
                "", None)
    mine = [r for r in records if r.kind == "champion" and r.rule == rule.alias]
    if not mine:
        return f"no champion decision is recorded on {subject}", "", None
    problem, record = _counted(mine, champion_thresholds(rule), "the champion rule", subject)
    if record is None:
        return problem, "", None
    when = _when(record)
    if not record.passed:
        return f"{subject} is not the champion (latest decision{when})", "", record
    if current_champion is not None and current_champion != instance:
        return (f"{subject} was champion{when} but the champion is now {current_champion}",
                "", record)
    return None, f"{subject} is the champion (decision{when})", record


def _when(record: EvidenceRecord) -> str:
    return f" at {record.created_at}" if record.created_at else ""


def gates_on_path(policy: Policy, asset: str, edge: PromotionEdge) -> tuple[Gate, ...]:
    """The gates an instance must pass to stand behind ``edge``'s alias: those the edge
    requires and, transitively, those of every edge of ``asset`` that leads to its source."""
    names: dict[str, None] = {}
    pending, seen = deque([edge]), set()
    while pending:
        current = pending.popleft()
        if (current.source, current.target) in seen:
            continue
        seen.add((current.source, current.target))
        names.update(dict.fromkeys(r for r in current.require if r != CHAMPION_REQUIREMENT))
        pending.extend(e for e in policy.edges_for_asset(asset) if e.target == current.source)
    return tuple(policy.gates[n] for n in names if n in policy.gates)


# --- drift inputs ----------------------------------------------------------------------------


class NothingToCompare(FlowpolicyError):
    """A drift rule's two instance specs do not name two different existing instances."""


def relative_reference(rule: DriftRule, current: str, reference: str) -> str:
    """The reference spec for a run whose ``current`` names one instance (``vN``, as a
    triggered run is given the instance its event names): a ``latest-K`` reference counts
    back from that instance, as far as the rule's own specs are apart (``current: latest,
    reference: latest-1`` compares ``vN`` with ``v(N-1)``), so newer instances registered
    meanwhile do not change what is compared. Other specs are returned as they are. Raises
    :class:`NothingToCompare` when no instance is that far before ``vN``."""
    pinned, back = parse_spec(current), parse_spec(reference)
    own = parse_spec(rule.current)
    if pinned.version is None or back.back is None or own.back is None:
        return reference
    distance = back.back - own.back
    if distance <= 0:
        return reference
    if pinned.version - distance < 1:
        raise NothingToCompare(
            f"nothing to compare: {rule.asset} {current} has no instance {distance} before it "
            f"(the rule compares {rule.current!r} with {rule.reference!r})", exit_code=1)
    return f"v{pinned.version - distance}"


def drift_pair(resolve: Callable[[str], str], asset: str, current: str, reference: str
               ) -> tuple[str, str]:
    """The instance ids that ``current`` and ``reference`` name, through ``resolve`` (a spec
    to an instance id, raising RegistryError on a miss). Raises :class:`NothingToCompare`
    when either names nothing or both name the same instance: the drift flow then ends with
    that message and ``plan`` shows the same one."""
    ids = []
    for spec in (current, reference):
        try:
            ids.append(resolve(spec))
        except RegistryError as exc:
            raise NothingToCompare(f"nothing to compare: {exc}", exit_code=1) from exc
    if ids[0] == ids[1]:
        raise NothingToCompare(
            f"nothing to compare: current {current!r} and reference {reference!r} are both "
            f"{asset} {ids[0]}", exit_code=1)
    return ids[0], ids[1]


# --- formatting ----------------------------------------------------------------------------


def show_number(value: float) -> str:
    """A number as written in a policy: 0.8, 50, 1e-05."""
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _show_margin(margin: float) -> str:
    # A margin is a float subtraction: 12 significant digits hide the rounding noise.
    return format(margin, ".12g")


def _json_number(value: float | None) -> float | str | None:
    """JSON has no NaN or infinity: those are written as the strings "nan", "inf", "-inf"."""
    if value is None or math.isfinite(value):
        return value
    return repr(value)
