"""Evidence records turned into typed rows for the report's tables and charts.

Evidence ``details`` are whatever the deciding flow stored (``GateVerdict.to_dict()``,
``ChampionDecision.to_dict()``, ``PromotionVerdict.to_dict()``, ``DriftResult.to_dict()``),
possibly written by an older or newer flowpolicy, or by hand. They are read defensively: a
field that is missing or of the wrong type becomes None (shown as "–"), never an error, and
fields added later (``under_policy``, ``thresholds``) are picked up when present. The verdict
itself comes from the record's own ``passed`` and the instance from its ``version``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flowpolicy.registry.base import EvidenceRecord
from flowpolicy.runtime.decisions import as_number


def finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _text(raw: Any) -> str | None:
    return None if raw is None else str(raw)


def _texts(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, (list, tuple)):
        return tuple(str(item) for item in raw)
    return () if raw is None else (str(raw),)


def _flag(raw: Any) -> bool | None:
    return raw if isinstance(raw, bool) else None


def _mapping(raw: Any) -> Mapping[str, Any]:
    return raw if isinstance(raw, Mapping) else {}


@dataclass(frozen=True)
class Row:
    """What every decision row has: when, on which instance, under which rule and policy."""

    at: str
    instance: str
    rule: str
    passed: bool
    policy_hash: str | None
    #: False when the run overrode the policy's thresholds; None when not recorded.
    under_policy: bool | None


def _row_fields(record: EvidenceRecord) -> dict[str, Any]:
    return {"at": record.created_at, "instance": f"v{record.version}", "rule": record.rule,
            "passed": record.passed, "policy_hash": record.policy_hash,
            "under_policy": _flag(_mapping(record.details).get("under_policy"))}


@dataclass(frozen=True)
class CheckRow:
    metric: str
    value: float | None
    low: float | None
    high: float | None
    passed: bool | None


@dataclass(frozen=True)
class GateRow(Row):
    checks: tuple[CheckRow, ...] = ()
    reason: str | None = None


@dataclass(frozen=True)
class ChampionRow(Row):
    metric: str | None = None
    candidate_value: float | None = None
    champion: str | None = None
    champion_value: float | None = None
    champion_after: str | None = None
    promoted: bool | None = None
    margin: float | None = None
    min_improvement: float | None = None
    reason: str | None = None

    @property
    def champion_after_value(self) -> float | None:
        """The metric of whichever instance is champion after the decision."""
        if self.champion_after is not None and self.champion_after == self.instance:
            return self.candidate_value
        if self.champion_after is not None and self.champion_after == self.champion:
            return self.champion_value
        return None


@dataclass(frozen=True)
class PromotionRow(Row):
    source: str | None = None
    target: str | None = None
    reasons: tuple[str, ...] = ()
    satisfied: tuple[str, ...] = ()


@dataclass(frozen=True)
class DriftRow(Row):
    reference: str | None = None
    level: str | None = None
    max_statistic: float | None = None
    worst_column: str | None = None
    #: (column, D), largest first.
    statistics: tuple[tuple[str, float], ...] = ()
    #: (level, threshold), lowest first, when the record carries its thresholds.
    thresholds: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Decisions:
    """The evidence of one asset scope by kind, oldest first; gates by gate name."""

    gates: Mapping[str, tuple[GateRow, ...]] = field(default_factory=dict)
    champions: tuple[ChampionRow, ...] = ()
    promotions: tuple[PromotionRow, ...] = ()
    drift: tuple[DriftRow, ...] = ()
    #: Records of a kind this report does not know.
    other: tuple[EvidenceRecord, ...] = ()


def decisions(evidence: Sequence[EvidenceRecord]) -> Decisions:
    gates: dict[str, list[GateRow]] = {}
    # record kind -> its row reader, in the order of Decisions' fields (then "other")
    readers = {"champion": _champion, "promotion": _promotion, "drift": _drift}
    rows: dict[str, list] = {kind: [] for kind in (*readers, "other")}
    for record in evidence:
        if record.kind == "gate":
            gates.setdefault(record.rule, []).append(_gate(record))
        elif record.kind in readers:
            rows[record.kind].append(readers[record.kind](record))
        else:
            rows["other"].append(record)
    return Decisions({rule: tuple(found) for rule, found in gates.items()},
                     *(tuple(rows[kind]) for kind in (*readers, "other")))


def _gate(record: EvidenceRecord) -> GateRow:
    details = _mapping(record.details)
    checks = tuple(
        CheckRow(metric=str(check.get("metric", "?")), value=as_number(check.get("value")),
                 low=as_number(check.get("min")), high=as_number(check.get("max")),
                 passed=_flag(check.get("passed")))
        for check in details.get("checks") or () if isinstance(check, Mapping))
    return GateRow(**_row_fields(record), checks=checks, reason=_text(details.get("reason")))


def _champion(record: EvidenceRecord) -> ChampionRow:
    details = _mapping(record.details)
    return ChampionRow(
        **_row_fields(record), metric=_text(details.get("metric")),
        candidate_value=as_number(details.get("candidate_value")),
        champion=_text(details.get("champion")),
        champion_value=as_number(details.get("champion_value")),
        champion_after=_text(details.get("champion_after")),
        promoted=_flag(details.get("promote")), margin=as_number(details.get("margin")),
        min_improvement=as_number(details.get("min_improvement")),
        reason=_text(details.get("reason")))


def _promotion(record: EvidenceRecord) -> PromotionRow:
    details = _mapping(record.details)
    return PromotionRow(
        **_row_fields(record), source=_text(details.get("source")),
        target=_text(details.get("target")), reasons=_texts(details.get("reasons")),
        satisfied=_texts(details.get("satisfied")))


def _drift(record: EvidenceRecord) -> DriftRow:
    details = _mapping(record.details)
    statistics = [(str(column), value) for column, raw in
                  _mapping(details.get("statistics")).items()
                  if finite(value := as_number(raw))]
    statistics.sort(key=lambda item: -item[1])
    return DriftRow(
        **_row_fields(record), reference=_text(details.get("reference")),
        level=_text(details.get("level")), max_statistic=as_number(details.get("max_statistic")),
        worst_column=_text(details.get("worst_column")), statistics=tuple(statistics),
        thresholds=_thresholds(details.get("thresholds")))


def _thresholds(raw: Any) -> tuple[tuple[str, float], ...]:
    """Level thresholds as a record may carry them: ``{"levels": {name: t}}``,
    ``{name: t}`` or ``[{"name": n, "threshold": t}]``."""
    if isinstance(raw, Mapping) and isinstance(raw.get("levels"), Mapping):
        raw = raw["levels"]
    if isinstance(raw, Mapping):
        pairs = [(str(name), as_number(value)) for name, value in raw.items()]
    elif isinstance(raw, (list, tuple)):
        pairs = [(str(item.get("name")), as_number(item.get("threshold")))
                 for item in raw if isinstance(item, Mapping)]
    else:
        pairs = []
    return tuple(sorted(((n, t) for n, t in pairs if finite(t)), key=lambda p: p[1]))
