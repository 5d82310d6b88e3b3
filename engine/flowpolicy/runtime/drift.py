"""Data drift: a statistic per column of two instances of a data asset, and the level.

One implementation shared by the generated drift-monitor flows and by ``flowpolicy check`` /
``plan``; :func:`evaluate_drift` is the one function they call.

Numeric columns use the two-sample Kolmogorov–Smirnov statistic D; categorical columns (the
policy declares them with a statistic) compare frequency tables (:mod:`.categorical`).
Two modes:

- **exact** (default): :func:`ks_statistic` on all values of both sides gives the same D as
  ``scipy.stats.ks_2samp(a, b).statistic`` (:mod:`.ks` is the kernel); both sides are loaded.
- **sketch**: each side is a :class:`DriftProfile` (the reference's made when it was
  registered, see :func:`profile_data`) or data read chunk by chunk and profiled on the way,
  so memory is bounded by a chunk. D comes from two quantile sketches with a deterministic
  bound: the true D is always within ``bound`` of the reported one (:mod:`.sketch` says
  why). A column whose D - bound and D + bound reach different levels is
  :data:`INDETERMINATE`, and so is the verdict unless a settled column is at least as severe:
  the level is never a guess. Categorical statistics are exact in both modes.

Conventions, chosen so results are reproducible evidence:

- NaN (and None) values are dropped from each column before comparing (scipy's default
  propagates them and returns NaN, which no level threshold can be compared with). A column
  that is empty, or only NaN, is an error, as in scipy.
- ``±inf`` are ordinary values, larger or smaller than every finite value.
- Levels: a column's level is the *highest* threshold its statistic reaches,
  ``value >= threshold``, compared with a relative tolerance of :data:`TOLERANCE`, so that a
  value mathematically equal to a threshold (say 1/20 against 0.05) reaches it whatever the
  last bit of its floating-point rounding. A column's own thresholds (``columns: {name:
  {levels: ...}}``) replace the rule's for that column only. The verdict is the most severe
  column level, in the order of the rule's levels.
- Distributions: the result keeps a bounded summary of both sides of the
  :data:`PICTURED_COLUMNS` most drifted columns (ranked as the worst column is), which the
  drift card draws, not the data: a numeric column's quantiles at :data:`QUANTILE_POINTS`
  evenly spaced shares (:func:`quantile_summary`; in sketch mode read from the sketches, so
  within their rank error), a categorical column's shares of its
  :data:`PICTURED_CATEGORIES` most frequent values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from flowpolicy.policy.model import (
    INDETERMINATE,
    NO_LEVEL,
    DriftColumn,
    DriftLevel,
    DriftRule,
    frozen_map,
)
from flowpolicy.runtime.categorical import categorical_statistic
from flowpolicy.runtime.decisions import TOLERANCE
from flowpolicy.runtime.ks import max_gap
from flowpolicy.runtime.sketch import (
    MAX_CATEGORIES,
    FrequencyTable,
    QuantileSketch,
    sketch_gap,
)
from flowpolicy.runtime.tables import (
    CHUNK_ROWS,
    DriftDataError,
    as_numeric,
    columns,
    has_column,
    is_table,
    iter_chunks,
    numeric_columns,
    without_nan,
)

__all__ = [
    "INDETERMINATE",
    "NO_LEVEL",
    "TOLERANCE",
    "ColumnDrift",
    "ColumnProfile",
    "DriftDataError",
    "DriftProfile",
    "DriftResult",
    "drift_input",
    "drift_level",
    "evaluate_drift",
    "ks_statistic",
    "numeric_columns",
    "profile_artifact",
    "profile_data",
    "quantile_summary",
]

#: How many of the most drifted columns keep a summary of both distributions.
PICTURED_COLUMNS = 3
#: Quantiles kept per side of a pictured numeric column, at shares 0, 1/(n-1), ..., 1.
QUANTILE_POINTS = 51
#: Values kept of a pictured categorical column: the most frequent on both sides together.
PICTURED_CATEGORIES = 12


def ks_statistic(a: Any, b: Any) -> float:
    """Two-sample Kolmogorov–Smirnov statistic D = sup |F_a(x) - F_b(x)|.

    ``a`` and ``b`` are one-dimensional numeric array-likes (lists, numpy arrays), of any
    sizes. NaNs are dropped; an empty sample raises :class:`DriftDataError`. The result is
    ``scipy.stats.ks_2samp(a, b).statistic``: the same float when neither sample has more than
    10,000 values (scipy then rounds the exact ratio too), else within a few units in the last
    place (scipy subtracts two rounded CDF values).
    """
    labels = ("the first sample", "the second sample")
    statistic, _, _ = _ks(_sample(a, labels[0]), _sample(b, labels[1]), labels)
    return statistic


def drift_level(levels: Sequence[DriftLevel], value: float) -> str:
    """The name of the highest threshold ``value`` reaches (``value >= threshold``), or
    :data:`NO_LEVEL` when it reaches none. ``levels`` may be given in any order."""
    reached = NO_LEVEL
    for level in sorted(levels, key=lambda lvl: lvl.threshold):
        if _reaches(value, level.threshold):
            reached = level.name
    return reached


# -- profiles ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnProfile:
    """What sketch mode keeps of one column: a quantile sketch of its numeric values and/or
    an exact frequency table of its values (None where the column has none)."""

    rows: int
    missing: int
    sketch: QuantileSketch | None = None
    categories: FrequencyTable | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "missing": self.missing,
                "sketch": None if self.sketch is None else self.sketch.to_dict(),
                "categories": None if self.categories is None else self.categories.to_dict()}

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> ColumnProfile:
        sketch, categories = document.get("sketch"), document.get("categories")
        return cls(rows=int(document["rows"]), missing=int(document["missing"]),
                   sketch=None if sketch is None else QuantileSketch.from_dict(sketch),
                   categories=None if categories is None else FrequencyTable.from_dict(categories))


@dataclass(frozen=True)
class DriftProfile:
    """Per-column summaries of one instance of a data asset, for sketch-mode drift."""

    columns: Mapping[str, ColumnProfile]
    rows: int

    def to_dict(self) -> dict[str, Any]:
        """Plain values only (lists, dicts, numpy arrays), so a stored profile does not
        depend on this class to be read back."""
        return {"format": "flowpolicy.drift_profile/1", "rows": self.rows,
                "columns": {name: column.to_dict() for name, column in self.columns.items()}}

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> DriftProfile:
        if not isinstance(document, Mapping) or document.get("format") != (
                "flowpolicy.drift_profile/1"):
            raise DriftDataError("not a flowpolicy drift profile (flowpolicy.drift_profile/1)")
        return cls(columns=frozen_map({name: ColumnProfile.from_dict(column) for name, column
                                       in document["columns"].items()}),
                   rows=int(document["rows"]))


def profile_data(data: Any, *, numeric: Iterable[str] | None = None,
                 categorical: Iterable[str] | None = None,
                 chunk_rows: int = CHUNK_ROWS) -> DriftProfile:
    """Profile a table or chunked data (see :mod:`.tables`), one chunk at a time.

    ``numeric``: the columns that get a quantile sketch (None: every numeric column).
    ``categorical``: the columns that get a frequency table (None: every column). A table
    past :data:`~flowpolicy.runtime.sketch.MAX_CATEGORIES` distinct values is dropped (a
    continuous column), not an error.
    """
    wanted_numeric = None if numeric is None else set(numeric)
    wanted_categorical = None if categorical is None else set(categorical)
    sketches: dict[str, QuantileSketch] = {}
    tables: dict[str, FrequencyTable] = {}
    rows: dict[str, int] = {}
    missing: dict[str, int] = {}
    total = 0
    for chunk in iter_chunks(data, chunk_rows):
        found = columns(chunk)
        total += max((values.size for values in found.values()), default=0)
        for name, values in found.items():
            number = as_numeric(values)
            sketched = number is not None and (wanted_numeric is None or name in wanted_numeric)
            counted = wanted_categorical is None or name in wanted_categorical
            if not (sketched or counted):
                continue
            rows[name] = rows.get(name, 0) + values.size
            if number is not None:
                present = without_nan(number)
                missing[name] = missing.get(name, 0) + values.size - present.size
            else:
                present = values
                missing[name] = missing.get(name, 0) + sum(
                    value is None or value != value for value in values.tolist())
            if sketched:
                sketches.setdefault(name, QuantileSketch()).update(present)
            if counted:
                tables.setdefault(name, FrequencyTable()).update(present)
    return DriftProfile(
        columns=frozen_map({name: ColumnProfile(rows=rows[name], missing=missing[name],
                                                sketch=sketches.get(name),
                                                categories=tables.get(name))
                            for name in rows}),
        rows=total,
    )


# -- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnDrift:
    """One column's statistic and level. ``bound`` is 0 for exact statistics; in sketch mode
    the true value is within ``bound`` of ``value``, always, and ``level_range`` gives the
    levels of ``value - bound`` and ``value + bound`` (equal unless ``level`` is
    :data:`INDETERMINATE`)."""

    statistic: str
    value: float
    bound: float
    level_range: tuple[str, str]
    sizes: tuple[int, int]
    details: Mapping[str, float] = field(default_factory=frozen_map)

    @property
    def level(self) -> str:
        low, high = self.level_range
        return low if low == high else INDETERMINATE

    def to_dict(self) -> dict[str, Any]:
        return {"statistic": self.statistic, "value": self.value, "bound": self.bound,
                "level": self.level, "level_range": list(self.level_range),
                "sizes": list(self.sizes), **({"details": dict(self.details)}
                                              if self.details else {})}


@dataclass(frozen=True)
class DriftResult:
    """Per-column statistics between two instances of a data asset, and the level reached."""

    asset: str
    current: str
    reference: str
    statistics: Mapping[str, float]
    max_statistic: float
    worst_column: str
    level: str
    event: str | None
    #: column -> (values compared in current, in reference), after NaNs were dropped.
    sample_sizes: Mapping[str, tuple[int, int]] = field(default_factory=frozen_map)
    mode: str = "exact"
    #: column -> its statistic, bound, level and sizes.
    columns: Mapping[str, ColumnDrift] = field(default_factory=frozen_map)
    #: The verdict's levels at the low and high ends of every bound (equal unless
    #: ``level`` is INDETERMINATE).
    level_range: tuple[str, str] = (NO_LEVEL, NO_LEVEL)
    #: What each side was read from: "data", or "profile" (its stored drift profile).
    inputs: tuple[str, str] = ("data", "data")
    #: The columns from the most drifted: the most severe level first, the largest statistic
    #: among equals (``worst_column`` is the first).
    ranking: tuple[str, ...] = ()
    #: column -> what the drift card draws of both sides (see :func:`_distribution`), for the
    #: first columns of the ranking.
    distributions: Mapping[str, Mapping[str, Any]] = field(default_factory=frozen_map)

    @property
    def passed(self) -> bool:
        """A settled level that publishes no event (an indeterminate verdict never passes)."""
        return self.event is None and self.level != INDETERMINATE

    def to_dict(self) -> dict:
        return {
            "asset": self.asset,
            "current": self.current,
            "reference": self.reference,
            "statistic": "ks",
            "mode": self.mode,
            "statistics": dict(self.statistics),
            "max_statistic": self.max_statistic,
            "worst_column": self.worst_column,
            "level": self.level,
            "level_range": list(self.level_range),
            "event": self.event,
            "passed": self.passed,
            "sample_sizes": {name: list(sizes) for name, sizes in self.sample_sizes.items()},
            "columns": {name: column.to_dict() for name, column in self.columns.items()},
            "inputs": {"current": self.inputs[0], "reference": self.inputs[1]},
            "ranking": list(self.ranking),
            "distributions": {"points": QUANTILE_POINTS,
                              "columns": {name: dict(summary)
                                          for name, summary in self.distributions.items()}},
        }


# -- evaluation -------------------------------------------------------------------------------


def evaluate_drift(
    rule: DriftRule,
    current: Any,
    reference: Any,
    *,
    current_id: str,
    reference_id: str,
    levels: Sequence[DriftLevel] | None = None,
) -> DriftResult:
    """Compare ``current`` with ``reference`` column by column under ``rule``.

    Each side is a table (a mapping of column name to values, a 2-D or structured numpy
    array, a pandas DataFrame), chunked data (see :mod:`.tables`: an iterator of tables, a
    numpy memmap, a Parquet path) or, in sketch mode, a :class:`DriftProfile` (or its
    ``to_dict()``). The columns compared are ``rule.columns`` when the rule names some,
    else every numeric column the two have in common. ``levels`` replaces the rule's levels
    (run-time parameters); a column's own thresholds still replace those they name.
    """
    levels = tuple(rule.levels if levels is None else levels)
    if rule.mode == "sketch":
        current_side = _SketchSide(rule, current, f"{rule.asset} {current_id}")
        reference_side = _SketchSide(rule, reference, f"{rule.asset} {reference_id}")
    else:
        current_side = _ExactSide(rule, current, f"{rule.asset} {current_id}")
        reference_side = _ExactSide(rule, reference, f"{rule.asset} {reference_id}")
    names = _columns_to_compare(rule, current_side, reference_side)

    results: dict[str, ColumnDrift] = {}
    for name in names:
        settings = rule.column(name)
        if settings.statistic == "ks":
            value, bound, sizes, details = *current_side.ks(name, reference_side), {}
        else:
            value, sizes, details = _categorical(name, settings.statistic, current_side,
                                                 reference_side)
            bound = 0.0
        column_levels = _column_levels(levels, settings)
        low = drift_level(column_levels, max(0.0, value - bound))
        high = drift_level(column_levels, value + bound)
        results[name] = ColumnDrift(settings.statistic, value, bound, level_range=(low, high),
                                    sizes=sizes, details=frozen_map(details))

    severity = {NO_LEVEL: -1, **{lvl.name: i for i, lvl in
                                 enumerate(sorted(levels, key=lambda lvl: lvl.threshold))}}
    low = max((c.level_range[0] for c in results.values()), key=severity.__getitem__)
    high = max((c.level_range[1] for c in results.values()), key=severity.__getitem__)
    verdict = low if low == high else INDETERMINATE
    # The most severe column first, the largest statistic among equals; the first wins a
    # tie (a stable sort), so the report is stable across runs.
    ranked = sorted(names, reverse=True, key=lambda name: (
        severity[results[name].level_range[1]], severity[results[name].level_range[0]],
        results[name].value))
    worst = ranked[0]
    return DriftResult(
        asset=rule.asset,
        current=current_id,
        reference=reference_id,
        statistics=frozen_map({name: c.value for name, c in results.items()}),
        max_statistic=results[worst].value,
        worst_column=worst,
        level=verdict,
        event=rule.events.get(verdict),
        sample_sizes=frozen_map({name: c.sizes for name, c in results.items()}),
        mode=rule.mode,
        columns=frozen_map(results),
        level_range=(low, high),
        inputs=tuple("profile" if _is_profile(side) else "data" for side in (current, reference)),
        ranking=tuple(ranked),
        distributions=frozen_map({
            name: _distribution(results[name].statistic, name, current_side, reference_side)
            for name in ranked[:PICTURED_COLUMNS]}),
    )


def _distribution(statistic: str, name: str, current: _ExactSide | _SketchSide,
                  reference: _ExactSide | _SketchSide) -> dict[str, Any]:
    """Both sides of one column as the card draws them: ``{"kind": "quantiles", "current":
    [...], "reference": [...]}`` for a numeric column, ``{"kind": "categories",
    "categories": [...], "current": [shares], "reference": [shares]}`` for a categorical
    one (its most frequent values, as text; the shares of the rest are left out)."""
    if statistic == "ks":
        return {"kind": "quantiles", "current": current.quantiles(name),
                "reference": reference.quantiles(name)}
    counts = (current.table(name).counts, reference.table(name).counts)
    totals = [sum(side.values()) or 1 for side in counts]
    share = {key: sum(side.get(key, 0) / total for side, total in zip(counts, totals,
                                                                       strict=True))
             for key in {*counts[0], *counts[1]}}
    top = sorted(share, key=lambda key: (-share[key], str(key)))[:PICTURED_CATEGORIES]
    return {"kind": "categories", "categories": [str(key) for key in top],
            **{side: [counts[i].get(key, 0) / totals[i] for key in top]
               for i, side in enumerate(("current", "reference"))}}


def _quantile_ranks(total: int) -> list[int]:
    """The 1-based ranks of the quantiles :func:`quantile_summary` keeps of ``total`` values:
    for the share k / (QUANTILE_POINTS - 1), the smallest rank whose ECDF reaches it, counted
    in integers so no share is missed by a rounding."""
    steps = QUANTILE_POINTS - 1
    return [max(1, -(-k * total // steps)) for k in range(QUANTILE_POINTS)]


def quantile_summary(values: Any) -> list[float]:
    """The empirical quantiles of the finite values of a numeric column at the
    :data:`QUANTILE_POINTS` shares ``k / (QUANTILE_POINTS - 1)``: for each share, the smallest
    value whose ECDF reaches it, a value of the sample itself, so a column of 0s and 1s keeps
    its two steps. Empty when the column has no finite value."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return []
    ranks = [rank - 1 for rank in _quantile_ranks(finite.size)]
    ordered = np.partition(finite, ranks)
    return [float(ordered[rank]) for rank in ranks]


def _sketch_quantiles(sketch: QuantileSketch) -> list[float]:
    """:func:`quantile_summary` read from a quantile sketch: each within its rank error."""
    values, below = sketch.sorted_with_counts()
    weights = np.diff(below, prepend=0)
    finite = np.isfinite(values)
    values, at_or_below = values[finite], np.cumsum(weights[finite])
    if values.size == 0:
        return []
    positions = np.searchsorted(at_or_below, _quantile_ranks(int(at_or_below[-1])))
    return [float(values[position]) for position in positions]


def profile_artifact(rule: DriftRule, annotations: Mapping[str, Any]) -> str | None:
    """The artifact a comparison under ``rule`` reads for an instance with ``annotations``
    instead of its data: in sketch mode the drift profile stored when it was registered (the
    ``drift_profile`` annotation names it), else None (its data). The drift flow
    (:func:`drift_input`) and ``plan`` both choose by this."""
    from flowpolicy.runtime.project import DRIFT_PROFILE_ANNOTATION

    return annotations.get(DRIFT_PROFILE_ANNOTATION) if rule.mode == "sketch" else None


def drift_input(prj: Any, rule: DriftRule, instance: str) -> Any:
    """What a drift flow compares for one instance (``prj`` is the flow's ``self.prj``): its
    stored drift profile when :func:`profile_artifact` names one, else its data. Either way
    the instance is consumed (lineage is recorded)."""
    if rule.mode == "sketch":  # only sketch mode reads profiles: exact mode skips the peek
        annotations = prj.asset.peek_data_asset(rule.asset, instance=instance)[
            "data_properties"]["annotations"]
        if profile_artifact(rule, annotations) is not None:
            return prj.get_data_profile(rule.asset, instance=instance)
    return prj.get_data(rule.asset, instance=instance)


def _column_levels(levels: Sequence[DriftLevel], settings: DriftColumn) -> list[DriftLevel]:
    return [DriftLevel(lvl.name, settings.levels.get(lvl.name, lvl.threshold)) for lvl in levels]


class _ExactSide:
    """One side of an exact comparison: all values of every column, in memory."""

    def __init__(self, rule: DriftRule, data: Any, label: str):
        if _is_profile(data):
            raise DriftDataError(f"drift of {label}: a drift profile holds sketches, not the "
                                 "values that exact mode compares; set mode: sketch, or give "
                                 "the data")
        self.label = label
        self.data = data
        if not is_table(data):
            self.data = _concatenate(iter_chunks(data))
        self.numeric = numeric_columns(self.data)
        self._columns: dict[str, np.ndarray] | None = None

    def numeric_names(self) -> list[str]:
        return list(self.numeric)

    def has(self, name: str, statistic: str) -> str | None:
        """None when the column can be compared with ``statistic``, else why not."""
        if statistic == "ks":
            if name in self.numeric:
                return None
            return "not numeric" if has_column(self.data, name) else "missing"
        return None if name in self._all() else "missing"

    def _all(self) -> dict[str, np.ndarray]:
        if self._columns is None:
            self._columns = columns(self.data)
        return self._columns

    def ks(self, name: str, other: _ExactSide) -> tuple[float, float, tuple[int, int]]:
        labels = (f"column {name!r} of {self.label}", f"column {name!r} of {other.label}")
        value, n1, n2 = _ks(self.numeric[name], other.numeric[name], labels)
        return value, 0.0, (n1, n2)

    def quantiles(self, name: str) -> list[float]:
        return quantile_summary(self.numeric[name])

    def table(self, name: str) -> FrequencyTable:
        table = FrequencyTable()
        values = self._all()[name]
        number = as_numeric(values) if values.dtype.kind == "O" else None
        table.update(values if number is None else number)
        if table.overflowed:
            raise DriftDataError(f"column {name!r} of {self.label} has more than "
                                 f"{MAX_CATEGORIES} distinct values: it is not categorical")
        return table


class _SketchSide:
    """One side of a sketch comparison: a profile, given or made from the data chunk by
    chunk (only the columns the rule needs)."""

    def __init__(self, rule: DriftRule, data: Any, label: str):
        self.label = label
        if isinstance(data, DriftProfile):
            self.profile = data
        elif isinstance(data, Mapping) and _is_profile(data):
            self.profile = DriftProfile.from_dict(data)
        else:
            # Only what the rule compares: its declared numeric columns (else every numeric
            # column) and its categorical ones.
            numeric = [n for n in rule.columns if rule.column(n).statistic == "ks"]
            categorical = [n for n, c in rule.column_settings.items() if c.statistic != "ks"]
            self.profile = profile_data(data, numeric=numeric or None, categorical=categorical)

    def numeric_names(self) -> list[str]:
        return [name for name, c in self.profile.columns.items() if c.sketch is not None]

    def has(self, name: str, statistic: str) -> str | None:
        column = self.profile.columns.get(name)
        if column is None:
            return "missing"
        if statistic == "ks":
            return None if column.sketch is not None else "not numeric"
        if column.categories is None:
            return "not profiled as categorical"
        if column.categories.overflowed:
            return f"profiled with more than {MAX_CATEGORIES} distinct values"
        return None

    def ks(self, name: str, other: _SketchSide) -> tuple[float, float, tuple[int, int]]:
        first, second = self.profile.columns[name].sketch, other.profile.columns[name].sketch
        for label, sketch in ((self.label, first), (other.label, second)):
            if sketch.count == 0:
                raise DriftDataError(f"column {name!r} of {label} is empty (after dropping "
                                     "NaN values)")
        gap, error = sketch_gap(first, second)
        scale = first.count * second.count
        return gap / scale, error / scale, (first.count, second.count)

    def quantiles(self, name: str) -> list[float]:
        return _sketch_quantiles(self.profile.columns[name].sketch)

    def table(self, name: str) -> FrequencyTable:
        return self.profile.columns[name].categories


def _categorical(name: str, statistic: str, current: _ExactSide | _SketchSide,
                 reference: _ExactSide | _SketchSide
                 ) -> tuple[float, tuple[int, int], dict[str, float]]:
    tables = (current.table(name), reference.table(name))
    for side, table in zip((current, reference), tables, strict=True):
        if table.total == 0:
            raise DriftDataError(f"column {name!r} of {side.label} is empty (after dropping "
                                 "missing values)")
    value, details = categorical_statistic(statistic, tables[0].counts, tables[1].counts)
    return value, (tables[0].total, tables[1].total), details


def _is_profile(data: Any) -> bool:
    return isinstance(data, DriftProfile) or (
        isinstance(data, Mapping) and str(data.get("format", "")).startswith(
            "flowpolicy.drift_profile/"))


def _concatenate(chunks: Iterable[Any]) -> dict[str, np.ndarray]:
    parts: dict[str, list[np.ndarray]] = {}
    for chunk in chunks:
        for name, values in columns(chunk).items():
            parts.setdefault(name, []).append(values)
    return {name: np.concatenate(values) for name, values in parts.items()}


def _columns_to_compare(rule: DriftRule, current: _ExactSide | _SketchSide,
                        reference: _ExactSide | _SketchSide) -> list[str]:
    theirs = set(reference.numeric_names())
    names = rule.compared_columns([] if rule.columns else
                                  [n for n in current.numeric_names() if n in theirs])
    if not names:
        raise DriftDataError(
            f"drift of {rule.asset}: the current and reference data have no numeric column in "
            f"common (current: {sorted(current.numeric_names()) or 'none'}, reference: "
            f"{sorted(reference.numeric_names()) or 'none'})"
        )
    problems = []
    for name in names:
        statistic = rule.column(name).statistic
        for side, data in (("current", current), ("reference", reference)):
            why = data.has(name, statistic)
            if why is not None:
                problems.append(f"column {name!r} is {why} in the {side} data")
    if problems:
        raise DriftDataError(f"drift of {rule.asset}: " + "; ".join(problems))
    return names


def _sample(values: Any, label: str) -> np.ndarray:
    array = as_numeric(values)
    if array is None:
        raise DriftDataError(f"{label} is not a one-dimensional numeric sample")
    return array


def _ks(a: np.ndarray, b: np.ndarray, labels: tuple[str, str]) -> tuple[float, int, int]:
    """KS statistic of two numeric 1-D arrays (NaNs still in them) and the number of values
    compared from each; ``labels`` name the samples in errors."""
    a, b = without_nan(a), without_nan(b)
    for label, sample in zip(labels, (a, b), strict=True):
        if sample.size == 0:
            raise DriftDataError(f"{label} is empty (after dropping NaN values)")
    n1, n2 = a.size, b.size
    if n1 * n2 >= 2**62:
        raise DriftDataError(f"samples of {n1} and {n2} values are too large to count exactly")
    # One division of exact integers: D is the float nearest to the true ratio.
    return max_gap(a, b) / (n1 * n2), n1, n2


def _reaches(value: float, threshold: float) -> bool:
    return value >= threshold - TOLERANCE * max(abs(value), abs(threshold))
