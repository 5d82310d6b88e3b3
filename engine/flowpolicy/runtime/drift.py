"""Data drift: the two-sample Kolmogorov–Smirnov statistic per column, and the drift level.

One implementation shared by the generated drift-monitor flows and by ``flowpolicy check`` /
``plan``.

:func:`ks_statistic` returns the same D as ``scipy.stats.ks_2samp(a, b).statistic`` (scipy is
only the reference the tests check against, never imported here), several times faster on
large samples. scipy sorts both samples and binary-searches every value in both. Here, large
samples are first counted into fine buckets over their range: the CDF gap is then exact at
every bucket boundary, and only the few buckets where the gap could exceed the largest
boundary value have their values sorted and counted exactly, so most values are never
sorted. Data that buckets poorly (heavy tails, few distinct values) is sorted: few distinct
values are then looked up one by one, otherwise the two sorted samples are merged in linear
time (a stable argsort of their concatenation is a timsort merge of two runs) and walked
once. Every path counts in exact integers and divides once, so D is the float nearest to
the true ratio.

Conventions, chosen so results are reproducible evidence:

- NaN values are dropped from each sample before comparing (scipy's default propagates them
  and returns NaN, which no level threshold can be compared with). A sample that is empty,
  or only NaN, is an error, as in scipy.
- ``±inf`` are ordinary values, larger or smaller than every finite value.
- Levels: the level is the *highest* threshold that the largest per-column D reaches,
  ``D >= threshold``, compared with a relative tolerance of :data:`TOLERANCE`, so that a D
  that is mathematically equal to a threshold (say 1/20 against 0.05) reaches it whatever the
  last bit of its floating-point rounding.
- Distributions: the result keeps, for the :data:`PICTURED_COLUMNS` columns with the largest
  D, both sides' empirical quantiles at :data:`QUANTILE_POINTS` evenly spaced probabilities
  (finite values only): a bounded summary that draws both ECDFs on the drift card, not the
  data.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flowpolicy.errors import FlowpolicyError
from flowpolicy.policy.model import DriftLevel, DriftRule, frozen_map

if TYPE_CHECKING:
    import numpy as np

#: Relative tolerance for comparing a computed statistic with a threshold.
TOLERANCE = 1e-12

#: The level reported when D stays below every declared threshold.
NO_LEVEL = "none"

#: How many of the most drifted columns keep a summary of both distributions.
PICTURED_COLUMNS = 3
#: Quantiles kept per side of each pictured column, at probabilities 0, 1/(n-1), ..., 1.
QUANTILE_POINTS = 51

#: Samples with at least this many values in total try the bucketed KS path first.
BUCKETS_FROM = 1 << 15
#: The bucketed path gives up when more than this share of the values needs sorting.
SUSPECT_SHARE = 0.25
#: Sorted samples with at most this share of distinct values are searched, not merged.
DISTINCT_SHARE = 0.125


class DriftDataError(FlowpolicyError):
    """Drift cannot be computed from the data given: no numeric columns in common, a column
    that is empty (or only NaN), a declared column that is missing or not numeric."""


def ks_statistic(a: Any, b: Any) -> float:
    """Two-sample Kolmogorov–Smirnov statistic D = sup |F_a(x) - F_b(x)|.

    ``a`` and ``b`` are one-dimensional numeric array-likes (lists, numpy arrays), of any
    sizes. NaNs are dropped; an empty sample raises :class:`DriftDataError`. The result is
    ``scipy.stats.ks_2samp(a, b).statistic``: the same float when neither sample has more than
    10,000 values (scipy then rounds the exact ratio too), else within a few units in the last
    place (scipy subtracts two rounded CDF values).
    """
    statistic, _, _ = _ks(_sample(a, "the first sample"), _sample(b, "the second sample"))
    return statistic


def drift_level(levels: Sequence[DriftLevel], value: float) -> str:
    """The name of the highest threshold ``value`` reaches (``value >= threshold``), or
    :data:`NO_LEVEL` when it reaches none. ``levels`` may be given in any order."""
    reached = NO_LEVEL
    for level in sorted(levels, key=lambda lvl: lvl.threshold):
        if _reaches(value, level.threshold):
            reached = level.name
    return reached


@dataclass(frozen=True)
class DriftResult:
    """Per-column D between two instances of a data asset, and the level it reaches."""

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
    #: column -> (quantiles of current, of reference), for the most drifted columns.
    distributions: Mapping[str, tuple[tuple[float, ...], tuple[float, ...]]] = field(
        default_factory=frozen_map)

    def to_dict(self) -> dict:
        return {
            "asset": self.asset,
            "current": self.current,
            "reference": self.reference,
            "statistic": "ks",
            "statistics": dict(self.statistics),
            "max_statistic": self.max_statistic,
            "worst_column": self.worst_column,
            "level": self.level,
            "event": self.event,
            "sample_sizes": {name: list(sizes) for name, sizes in self.sample_sizes.items()},
            "distributions": {"points": QUANTILE_POINTS, "columns": {
                name: {"current": list(current), "reference": list(reference)}
                for name, (current, reference) in self.distributions.items()}},
        }


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

    Each of ``current`` and ``reference`` is a mapping of column name to values, a 2-D numpy
    array (columns named ``"0"``, ``"1"``, …), a structured numpy array, or a pandas
    DataFrame. The columns compared are ``rule.columns`` when the rule names some (each must
    be numeric on both sides), else every numeric column the two have in common. ``levels``
    overrides ``rule.levels`` (run-time parameters).
    """
    if rule.statistic != "ks":
        raise DriftDataError(f"drift of {rule.asset}: unknown statistic {rule.statistic!r}")
    current_columns = numeric_columns(current)
    reference_columns = numeric_columns(reference)
    names = _columns_to_compare(rule, current_columns, reference_columns, current, reference)

    statistics: dict[str, float] = {}
    sizes: dict[str, tuple[int, int]] = {}
    for name in names:
        labels = (
            f"column {name!r} of {rule.asset} {current_id}",
            f"column {name!r} of {rule.asset} {reference_id}",
        )
        # numeric_columns already gave both as 1-D numeric arrays
        statistics[name], *counts = _ks(current_columns[name], reference_columns[name], labels)
        sizes[name] = tuple(counts)

    # The first column wins a tie, so the report is stable across runs.
    worst = max(names, key=lambda name: statistics[name])
    top = statistics[worst]
    level = drift_level(rule.levels if levels is None else levels, top)
    pictured = sorted(names, key=lambda name: -statistics[name])[:PICTURED_COLUMNS]
    distributions = {
        name: (quantile_summary(current_columns[name]), quantile_summary(reference_columns[name]))
        for name in pictured}
    return DriftResult(
        asset=rule.asset,
        current=current_id,
        reference=reference_id,
        statistics=frozen_map(statistics),
        max_statistic=top,
        worst_column=worst,
        level=level,
        event=rule.events.get(level),
        sample_sizes=frozen_map(sizes),
        distributions=frozen_map(distributions),
    )


def quantile_summary(values: Any) -> tuple[float, ...]:
    """The empirical quantiles of the finite values of a numeric column at the
    :data:`QUANTILE_POINTS` shares ``k / (QUANTILE_POINTS - 1)``: for each share, the smallest
    value whose ECDF reaches it (its rank counted in integers, so a share is never missed by
    a rounding), a value of the sample itself, so a column of 0s and 1s keeps its two steps.
    Empty when the column has no finite value."""
    import numpy as np

    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return ()
    steps = QUANTILE_POINTS - 1
    ranks = [max(0, -(-k * finite.size // steps) - 1) for k in range(QUANTILE_POINTS)]
    ordered = np.partition(finite, ranks)
    return tuple(float(ordered[rank]) for rank in ranks)


def numeric_columns(data: Any) -> dict[str, np.ndarray]:
    """The numeric one-dimensional columns of a table, by name; other columns are left out.

    Accepts a mapping of name to values, a 1-D array (one column ``"0"``), a 2-D array
    (column ``"i"`` is ``data[:, i]``), a structured array (its fields) or a pandas DataFrame.
    """
    import numpy as np

    if isinstance(data, Mapping):
        items = data.items()
    elif _is_dataframe(data):
        return _dataframe_columns(data)
    else:
        array = np.asarray(data)
        if array.dtype.names:
            items = ((name, array[name]) for name in array.dtype.names)
        elif array.ndim == 1:
            items = [("0", array)]
        elif array.ndim == 2:
            items = ((str(i), array[:, i]) for i in range(array.shape[1]))
        else:
            raise DriftDataError(
                f"cannot read columns from a {array.ndim}-dimensional array; give a mapping "
                "of columns, a 2-D or structured array, or a pandas DataFrame"
            )
    columns = {}
    for name, values in items:
        column = _numeric_or_none(values)
        if column is not None:
            columns[str(name)] = column
    return columns


def _columns_to_compare(
    rule: DriftRule,
    current: Mapping[str, np.ndarray],
    reference: Mapping[str, np.ndarray],
    current_data: Any,
    reference_data: Any,
) -> list[str]:
    if rule.columns:
        problems = []
        for name in rule.columns:
            for side, columns, data in (
                ("current", current, current_data),
                ("reference", reference, reference_data),
            ):
                if name not in columns:
                    what = "not numeric" if _has_column(data, name) else "missing"
                    problems.append(f"column {name!r} is {what} in the {side} data")
        if problems:
            raise DriftDataError(f"drift of {rule.asset}: " + "; ".join(problems))
        return list(rule.columns)
    names = [name for name in current if name in reference]
    if not names:
        raise DriftDataError(
            f"drift of {rule.asset}: the current and reference data have no numeric column in "
            f"common (current: {sorted(current) or 'none'}, reference: "
            f"{sorted(reference) or 'none'})"
        )
    return names


def _has_column(data: Any, name: str) -> bool:
    if _is_dataframe(data):
        return any(str(key) == name for key in data.columns)
    if isinstance(data, Mapping):
        return any(str(key) == name for key in data)
    names = getattr(getattr(data, "dtype", None), "names", None)
    return bool(names) and name in names


def _is_dataframe(data: Any) -> bool:
    # Duck-typed so pandas is never imported unless the caller already uses it.
    module = type(data).__module__ or ""
    return module.startswith("pandas") and hasattr(data, "columns") and hasattr(data, "dtypes")


def _dataframe_columns(frame: Any) -> dict[str, np.ndarray]:
    import numpy as np
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    names = [str(name) for name in frame.columns]
    if len(set(names)) != len(names):
        raise DriftDataError(f"the DataFrame has duplicate column names: {names}")
    columns = {}
    for position, name in enumerate(names):
        series = frame.iloc[:, position]
        if is_bool_dtype(series.dtype):
            columns[name] = series.to_numpy(dtype=np.uint8, na_value=0)
        elif is_numeric_dtype(series.dtype) and series.dtype.kind != "c":
            # Nullable integer/float columns hold pd.NA: read them as NaN, which is dropped.
            columns[name] = series.to_numpy(dtype=np.float64, na_value=np.nan)
    return columns


def _numeric_or_none(values: Any) -> np.ndarray | None:
    """``values`` as a 1-D numeric array, or None when it is not a numeric column."""
    import numpy as np

    array = np.asarray(values)
    if array.ndim != 1:
        return None
    if array.dtype.kind == "O":
        # Lists with None (missing) or mixed ints and floats arrive as objects; read them as
        # floats when every element is a real number or None. Strings never count as numbers.
        if not all(x is None or _is_real(x) for x in array):
            return None
        return np.array([math.nan if x is None else float(x) for x in array], dtype=np.float64)
    if array.dtype.kind == "b":
        return array.astype(np.uint8)
    if array.dtype.kind in "iuf":
        return array
    return None


def _is_real(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _sample(values: Any, label: str) -> np.ndarray:
    array = _numeric_or_none(values)
    if array is None:
        raise DriftDataError(f"{label} is not a one-dimensional numeric sample")
    return array


def _ks(
    a: np.ndarray,
    b: np.ndarray,
    labels: tuple[str, str] = ("the first sample", "the second sample"),
) -> tuple[float, int, int]:
    """KS statistic of two numeric 1-D arrays (NaNs still in them) and the number of values
    compared from each; ``labels`` name the samples in errors."""
    a, b = _without_nan(a), _without_nan(b)
    for label, sample in zip(labels, (a, b), strict=True):
        if sample.size == 0:
            raise DriftDataError(f"{label} is empty (after dropping NaN values)")
    n1, n2 = a.size, b.size
    if n1 * n2 >= 2**62:
        raise DriftDataError(f"samples of {n1} and {n2} values are too large to count exactly")
    # One division of exact integers: D is the float nearest to the true ratio.
    return _max_gap(a, b) / (n1 * n2), n1, n2


def _without_nan(values: np.ndarray) -> np.ndarray:
    import numpy as np

    # min() propagates NaN: one cheap pass tells whether a copy is needed at all.
    if values.dtype.kind == "f" and values.size and np.isnan(values.min()):
        return values[~np.isnan(values)]
    return values


# The three ways to the largest gap below all compute, in exact integers,
#
#     max over every value v of either sample of |k1(v) * n2 - k2(v) * n1|
#
# where k1(v), k2(v) count the values <= v in the first (size n1) and second (size n2)
# sample: n1 * n2 * D. Counting "<= v" is what makes ties right: equal values enter together.


def _max_gap(x: np.ndarray, y: np.ndarray) -> int:
    """n1 * n2 * D for two non-empty NaN-free samples."""
    import numpy as np

    n1, n2 = x.size, y.size
    if n1 + n2 >= BUCKETS_FROM:
        gap = _max_gap_by_buckets(x, y)
        if gap is not None:
            return gap
    # One buffer in the common dtype; each half is sorted in place.
    merged = np.concatenate([x, y])
    xs, ys = merged[:n1], merged[n1:]
    xs.sort()
    ys.sort()
    values = np.concatenate([_distinct(xs), _distinct(ys)])
    if values.size <= DISTINCT_SHARE * (n1 + n2):
        # Few distinct values (counts, codes, rounded data): look each one up.
        return _max_gap_at(values, xs, ys, n1, n2)
    return _max_gap_of_sorted_runs(merged, n1)


def _distinct(sorted_values: np.ndarray) -> np.ndarray:
    """The distinct values of a sorted array (the last of each run of equal values)."""
    import numpy as np

    if sorted_values.size == 0:
        return sorted_values
    return sorted_values[np.append(sorted_values[1:] != sorted_values[:-1], True)]


def _max_gap_at(
    values: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    n1: int,
    n2: int,
    x_below: np.ndarray | int = 0,
    y_below: np.ndarray | int = 0,
) -> int:
    """The largest gap at ``values``, counting in the sorted ``xs`` and ``ys`` plus the
    values known to lie below each of them but left out of ``xs`` / ``ys``."""
    import numpy as np

    k1 = np.searchsorted(xs, values, side="right") + x_below
    k2 = np.searchsorted(ys, values, side="right") + y_below
    return int(np.abs(k1 * n2 - k2 * n1).max())


def _max_gap_by_buckets(x: np.ndarray, y: np.ndarray) -> int | None:
    """The largest gap without sorting most values, or None when the data do not suit it.

    Both samples are counted into equal-width buckets by a monotone map, so every value of a
    lower bucket is smaller than every value of a higher one and equal values share a bucket.
    The gap after each bucket is then exact from the counts alone, and inside bucket j it
    stays within [gap_before_j - n1 * count2_j, gap_before_j + n2 * count1_j]. Only buckets
    whose range reaches beyond the largest gap seen at bucket ends can hold a larger one;
    their values are sorted and looked up exactly. When a subsample shows few distinct values,
    or the suspect buckets hold more than :data:`SUSPECT_SHARE` of the values (one value
    repeated very often, say), this gives up and the caller sorts everything.
    """
    import numpy as np

    n1, n2 = x.size, y.size
    # The buckets span the central 98% of a strided subsample of both samples, plus one
    # open-ended bucket at each side, so heavy tails do not stretch them. The range only
    # decides how evenly values spread over buckets (time), never the result.
    subsample = np.sort(np.concatenate([x[:: max(1, n1 // 2048)], y[:: max(1, n2 // 2048)]]))
    if _distinct(subsample).size <= DISTINCT_SHARE * subsample.size:
        return None  # few distinct values: sorting and looking them up is faster
    low = float(subsample[int(subsample.size * 0.01)])
    high = float(subsample[int(subsample.size * 0.99)])
    # About 32 values per bucket: the per-bucket arrays stay small (cache-resident), and the
    # buckets that need sorting hold few values.
    buckets = 1 << min(16, max(8, (n1 + n2).bit_length() - 5))
    scale = buckets / (high - low) if high > low else math.inf
    if not (math.isfinite(low) and math.isfinite(scale) and scale > 0):
        return None
    origin = low - 1 / scale

    def bucket_of(values: np.ndarray) -> np.ndarray:
        # Each step rounds monotonically, so v <= w gives bucket_of(v) <= bucket_of(w), and
        # equal values share a bucket. Clipped as floats, in place, then truncated: clipping
        # straight into an integer view of the buffer is three times slower in numpy.
        index = np.subtract(values, origin, dtype=np.float64)
        index *= scale
        np.clip(index, 0, buckets + 1, out=index)
        return index.astype(np.intp)

    x_bucket, y_bucket = bucket_of(x), bucket_of(y)
    x_count = np.bincount(x_bucket, minlength=buckets + 2)
    y_count = np.bincount(y_bucket, minlength=buckets + 2)
    rise, fall = x_count * n2, y_count * n1
    step = rise - fall
    gap_after = np.cumsum(step)
    seen = max(int(gap_after.max()), -int(gap_after.min()))
    gap_before = gap_after - step
    suspect = (gap_before + rise > seen) | (gap_before - fall < -seen)
    if not suspect.any():
        return seen
    if int(x_count[suspect].sum() + y_count[suspect].sum()) > SUSPECT_SHARE * (n1 + n2):
        return None

    # Sort the suspect buckets' values; every other value below a bucket is counted already.
    x_pick = x[suspect[x_bucket]]
    picked = np.concatenate([x_pick, y[suspect[y_bucket]]])
    xs, ys = picked[: x_pick.size], picked[x_pick.size :]
    xs.sort()
    ys.sort()
    values = np.concatenate([_distinct(xs), _distinct(ys)])
    settled = ~suspect
    x_below = np.cumsum(x_count * settled) - x_count * settled
    y_below = np.cumsum(y_count * settled) - y_count * settled
    at = bucket_of(values)
    return max(seen, _max_gap_at(values, xs, ys, n1, n2, x_below[at], y_below[at]))


def _max_gap_of_sorted_runs(merged: np.ndarray, n1: int) -> int:
    """The largest gap for ``merged = concat(sorted sample 1 of size n1, sorted sample 2)``."""
    import numpy as np

    total = merged.size
    # A stable argsort of two concatenated sorted runs is a timsort merge: linear time.
    order = np.argsort(merged, kind="stable")

    # Walking the merged order, the gap rises by n2 at each value of sample 1 and falls by
    # n1 at each value of sample 2.
    gap = (order < n1).astype(np.int64)
    gap *= total
    gap -= n1
    np.cumsum(gap, out=gap)

    # The gap counts only after the last of a run of equal values. The stable merge puts
    # sample 1's copies of a value before sample 2's, so inside a run the gap first rises,
    # then falls: its minimum over all positions is always at the end of a run, and so is
    # its maximum unless the first maximum sits inside a run. Only then are run ends found.
    low = int(gap.min())
    peak = int(gap.argmax())
    if peak + 1 < total and merged[order[peak]] == merged[order[peak + 1]]:
        values = merged[order]
        run_end = np.append(values[1:] != values[:-1], True)
        high = int(gap.max(where=run_end, initial=0))
    else:
        high = int(gap[peak])
    return max(high, -low)


def _reaches(value: float, threshold: float) -> bool:
    return value >= threshold - TOLERANCE * max(abs(value), abs(threshold))
