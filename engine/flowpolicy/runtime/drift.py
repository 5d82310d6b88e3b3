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
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flowpolicy.errors import FlowpolicyError
from flowpolicy.policy.model import DriftLevel, DriftRule, frozen_map
from flowpolicy.runtime.ks import max_gap

if TYPE_CHECKING:
    import numpy as np

#: Relative tolerance for comparing a computed statistic with a threshold.
TOLERANCE = 1e-12

#: The level reported when D stays below every declared threshold.
NO_LEVEL = "none"


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
    )


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
    return max_gap(a, b) / (n1 * n2), n1, n2


def _without_nan(values: np.ndarray) -> np.ndarray:
    import numpy as np

    # min() propagates NaN: one cheap pass tells whether a copy is needed at all.
    if values.dtype.kind == "f" and values.size and np.isnan(values.min()):
        return values[~np.isnan(values)]
    return values


def _reaches(value: float, threshold: float) -> bool:
    return value >= threshold - TOLERANCE * max(abs(value), abs(threshold))
