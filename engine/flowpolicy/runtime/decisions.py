"""The decisions a policy makes: quality gates, champion/challenger, promotion legality.

Plain functions over the frozen :class:`~flowpolicy.policy.model.Policy` IR and the
annotations / evidence records the registry returns; the generated flows and
``flowpolicy check`` / ``plan`` call the same functions, so each rule has one implementation.
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
- **Promotion** from ``source`` to ``target`` is legal when an edge ``source -> target`` is
  declared, lists the asset, and each requirement holds on the very instance being promoted,
  from recorded evidence: for a gate, the latest ``gate`` record of that gate says passed; for
  ``champion``, the latest ``champion`` record says the instance is (became or stayed) the
  champion. Every failing reason is reported, not just the first.
- **Asset contract**: an instance of a declared asset carries every key of the declaration's
  ``required_annotations`` with a non-empty value (:func:`missing_annotations`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flowpolicy.errors import FlowpolicyError
from flowpolicy.policy.model import (
    CHAMPION_REQUIREMENT,
    AssetDecl,
    ChampionRule,
    Check,
    Gate,
    Policy,
    PromotionEdge,
)

#: Relative tolerance for comparisons of computed (not recorded) numbers, such as margins.
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
    raw = annotations[key]
    if isinstance(raw, bool):
        raise MetricValueError(asset=asset, instance=instance, key=key, value=raw)
    if isinstance(raw, (int, float)):
        return float(raw)
    if isinstance(raw, str):
        try:
            return float(raw)
        except ValueError:
            pass
    raise MetricValueError(asset=asset, instance=instance, key=key, value=raw)


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
        return {
            "metric": self.metric,
            "value": _json_number(self.value),
            "min": self.min,
            "max": self.max,
            "passed": self.passed,
            "reason": self.reason,
        }


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
    shown = f"{check.metric} = {_show(value)}"
    if check.min is not None and value < check.min:
        return verdict(False, f"{shown} is below the minimum {_show(check.min)}")
    if check.max is not None and value > check.max:
        return verdict(False, f"{shown} is above the maximum {_show(check.max)}")
    return verdict(True, f"{shown} is within {_bounds(check)}")


def _bounds(check: Check) -> str:
    low = "-inf" if check.min is None else _show(check.min)
    high = "+inf" if check.max is None else _show(check.max)
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
            f"candidate {candidate} ({metric} = {_show(cand)}) replaces it",
        )

    margin = cand - champ if rule.direction == "maximize" else champ - cand
    slack = TOLERANCE * max(
        (abs(x) for x in (cand, champ, required) if math.isfinite(x)), default=0.0
    )
    compared = (
        f"{metric} {_show(cand)} vs {_show(champ)} ({rule.direction}), "
        f"margin {_show_margin(margin)}, min_improvement {_show(required)}"
    )
    if margin > slack and margin >= required - slack:
        return decision(True, f"{candidate} beats champion {champion}: {compared}", margin)
    return decision(
        False, f"{candidate} does not beat champion {champion} by enough: {compared}", margin
    )


# --- promotion -----------------------------------------------------------------------------


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
        }


def check_promotion(
    policy: Policy,
    *,
    asset: str,
    source: str,
    target: str,
    instance: str,
    evidence: Sequence[Mapping[str, Any]],
    current_champion: str | None = None,
) -> PromotionVerdict:
    """Is promoting ``instance`` of ``asset`` from ``source`` to ``target`` legal?

    ``instance`` is a resolved instance id (``"v3"``, not ``"latest"``) and ``evidence`` the
    records stored on it (``Asset.evidence(asset, instance)``); records naming another
    instance are ignored. ``current_champion``, when given (the instance the champion alias
    points at now), must also be ``instance`` for a ``champion`` requirement: evidence says the
    instance *became* champion, the alias says it still is.
    """
    reasons: list[str] = []
    satisfied: list[str] = []
    if asset not in policy.assets:
        reasons.append(f"asset {asset!r} is not declared in the policy")
    for branch in dict.fromkeys((source, target)):
        if policy.branches and branch not in policy.branches:
            reasons.append(
                f"branch {branch!r} is not declared (branches: {', '.join(policy.branches)})"
            )

    edges = [e for e in policy.promotion if e.source == source and e.target == target]
    edge = next((e for e in edges if asset in e.assets), None)
    if not edges:
        declared = ", ".join(f"{e.source} -> {e.target}" for e in policy.promotion) or "none"
        reasons.append(f"no promotion edge {source} -> {target} is declared (edges: {declared})")
    elif edge is None:
        allowed = sorted({a for e in edges for a in e.assets})
        reasons.append(
            f"{asset} may not be promoted along {source} -> {target} "
            f"(assets allowed: {', '.join(allowed) or 'none'})"
        )

    records = [r for r in evidence if r.get("instance") in (None, instance)]
    for requirement in edge.require if edge is not None else ():
        if requirement == CHAMPION_REQUIREMENT:
            problem, proof = _champion_requirement(
                policy, asset, instance, records, current_champion
            )
        else:
            problem, proof = _gate_requirement(policy, requirement, asset, instance, records)
        if problem:
            reasons.append(problem)
        else:
            satisfied.append(proof)

    return PromotionVerdict(
        asset=asset,
        instance=instance,
        source=source,
        target=target,
        allowed=not reasons,
        reasons=tuple(reasons),
        edge=edge,
        satisfied=tuple(satisfied),
    )


def _gate_requirement(
    policy: Policy, name: str, asset: str, instance: str, records: Sequence[Mapping[str, Any]]
) -> tuple[str | None, str]:
    gate = policy.gates.get(name)
    if gate is None:
        return f"required gate {name!r} is not declared in the policy", ""
    if gate.asset != asset:
        return f"required gate {name} judges {gate.asset}, not {asset}", ""
    record = _latest(r for r in records if r.get("kind") == "gate" and r.get("rule") == name)
    if record is None:
        return f"gate {name} has no recorded result on {asset} {instance}", ""
    when = _when(record)
    if not _passed(record):
        return f"gate {name} failed on {asset} {instance} (latest result{when})", ""
    return None, f"gate {name} passed on {asset} {instance}{when}"


def _champion_requirement(
    policy: Policy,
    asset: str,
    instance: str,
    records: Sequence[Mapping[str, Any]],
    current_champion: str | None,
) -> tuple[str | None, str]:
    if asset not in policy.champions:
        return f"champion is required but the policy has no champion rule for {asset}", ""
    record = _latest(r for r in records if r.get("kind") == "champion")
    if record is None:
        return f"no champion decision is recorded on {asset} {instance}", ""
    when = _when(record)
    if not _passed(record):
        return f"{asset} {instance} is not the champion (latest decision{when})", ""
    if current_champion is not None and current_champion != instance:
        return (
            f"{asset} {instance} was champion{when} but the champion is now {current_champion}",
            "",
        )
    return None, f"{asset} {instance} is the champion (decision{when})"


def _latest(records: Any) -> Mapping[str, Any] | None:
    """The most recent record: latest ``created_at``, later position on a tie."""
    best = None
    best_key: tuple[str, int] | None = None
    for position, record in enumerate(records):
        key = (str(record.get("created_at") or ""), position)
        if best_key is None or key >= best_key:
            best, best_key = record, key
    return best


def _passed(record: Mapping[str, Any]) -> bool:
    # Accept the booleans a JSON or SQLite round trip may give back (True / 1), nothing else.
    value = record.get("passed")
    return value is True or (type(value) is int and value == 1)


def _when(record: Mapping[str, Any]) -> str:
    created = record.get("created_at")
    return f" at {created}" if created else ""


def promotion_path(
    policy: Policy, asset: str, source: str, target: str
) -> tuple[PromotionEdge, ...] | None:
    """The shortest chain of declared edges that carries ``asset`` from ``source`` to
    ``target`` (``()`` when they are the same branch), or None when there is none."""
    if source == target:
        return ()
    came_by: dict[str, PromotionEdge] = {}
    queue = deque([source])
    seen = {source}
    while queue:
        branch = queue.popleft()
        for edge in policy.promotion:
            if edge.source != branch or asset not in edge.assets or edge.target in seen:
                continue
            came_by[edge.target] = edge
            if edge.target == target:
                path = [edge]
                while path[-1].source != source:
                    path.append(came_by[path[-1].source])
                return tuple(reversed(path))
            seen.add(edge.target)
            queue.append(edge.target)
    return None


# --- formatting ----------------------------------------------------------------------------


def _show(value: float) -> str:
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
