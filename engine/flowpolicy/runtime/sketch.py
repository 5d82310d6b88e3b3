"""Summaries of a column for drift beyond memory: a mergeable quantile sketch whose rank error
has a deterministic bound, and an exact frequency table.

:class:`QuantileSketch` is a compactor hierarchy (Manku–Rajagopalan–Lindsay, the
deterministic ancestor of KLL). Level h holds values that each stand for 2**h input values.
When a level holds at least ``2 * capacity`` values it is sorted and every other value moves
up one level with twice the weight. For any query point v, that compaction changes the
weighted count of values <= v by at most the weight of one value before it (2**h), whatever
the data: of r sorted values <= v, either floor(r/2) or ceil(r/2) are kept at twice the
weight. The sketch adds up those weights in :attr:`QuantileSketch.error`, so for every v

    |estimated count(<= v) - true count(<= v)| <= error

always, not with some probability (KLL's randomised compaction gives a smaller expected
error for its size, but only with high probability). Merging two sketches adds their errors
and those of the compactions the merge makes, so the bound survives chunking and merging.

The bound holds for the float64 values given: integers above 2**53 are rounded first.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np

#: Values a level holds before it is compacted is twice this; the normalized rank error of
#: n values is at most about log2(n / capacity) / (2 * capacity), 0.04% for 10^8 values.
CAPACITY = 1 << 14
#: Values added to level 0 at a time, so one huge update never sorts the whole input.
UPDATE_CHUNK = 1 << 17
#: A frequency table stops counting (and is dropped) past this many distinct values.
MAX_CATEGORIES = 10_000


class QuantileSketch:
    """A mergeable quantile summary of float64 values with a deterministic rank-error bound."""

    def __init__(self, capacity: int | None = None):
        self.capacity = capacity or CAPACITY
        self.count = 0
        #: Bound on |estimated - true| count of values <= v, for every v.
        self.error = 0
        self.levels: list[np.ndarray] = [np.empty(0)]
        # Which half a level keeps next; alternating keeps the errors from adding one way.
        self._offsets: list[int] = [0]

    @property
    def rank_error(self) -> float:
        """The bound on |estimated CDF - true CDF| at every point: error / count."""
        return self.error / self.count if self.count else 0.0

    def update(self, values: Any) -> None:
        """Add NaN-free numeric values."""
        values = np.asarray(values, dtype=np.float64).ravel()
        for start in range(0, values.size, UPDATE_CHUNK):
            part = values[start : start + UPDATE_CHUNK]
            self.count += part.size
            self._add(0, part)

    def merge(self, other: QuantileSketch) -> None:
        """Add everything ``other`` summarises (``other`` is left unchanged)."""
        self.count += other.count
        self.error += other.error
        for height, level in enumerate(other.levels):
            if level.size:
                self._add(height, level)

    def _add(self, height: int, values: np.ndarray) -> None:
        while True:
            if height == len(self.levels):
                self.levels.append(np.empty(0))
                self._offsets.append(0)
            level = np.concatenate([self.levels[height], values])
            if level.size < 2 * self.capacity:
                self.levels[height] = level
                return
            level.sort()
            even = level.size - level.size % 2
            offset = self._offsets[height]
            self._offsets[height] = 1 - offset
            self.levels[height] = level[even:]  # an odd value out stays at its weight
            self.error += 1 << height
            values, height = level[offset:even:2], height + 1

    def sorted_with_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """The retained values, sorted, and the estimated count of values <= each."""
        values = np.concatenate(self.levels)
        weights = np.concatenate([np.full(level.size, 1 << height, dtype=np.int64)
                                  for height, level in enumerate(self.levels)])
        order = np.argsort(values, kind="stable")
        return values[order], np.cumsum(weights[order])

    def to_dict(self) -> dict[str, Any]:
        return {"capacity": self.capacity, "count": self.count, "error": self.error,
                "levels": [level.copy() for level in self.levels],
                "offsets": list(self._offsets)}

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> QuantileSketch:
        sketch = cls(int(document["capacity"]))
        sketch.count = int(document["count"])
        sketch.error = int(document["error"])
        sketch.levels = [np.asarray(level, dtype=np.float64) for level in document["levels"]]
        sketch._offsets = [int(offset) for offset in document["offsets"]]
        return sketch


def sketch_gap(first: QuantileSketch, second: QuantileSketch) -> tuple[int, int]:
    """(estimated n1 * n2 * D, bound on its error in the same units) of two sketches.

    The estimated CDFs are step functions that move only at retained values, so their
    largest gap is found at those; each estimate is within ``error`` of the true count at
    every point, so the true n1 * n2 * D is within ``error1 * n2 + error2 * n1``.
    """
    values1, counts1 = first.sorted_with_counts()
    values2, counts2 = second.sorted_with_counts()
    n1, n2 = first.count, second.count
    points = np.concatenate([values1, values2])

    def count_at(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
        position = np.searchsorted(values, points, side="right")
        return np.where(position > 0, counts[np.maximum(position - 1, 0)], 0)

    gap = count_at(values1, counts1) * n2 - count_at(values2, counts2) * n1
    return int(np.abs(gap).max()), first.error * n2 + second.error * n1


class FrequencyTable:
    """Exact counts of each distinct value, dropped (``overflowed``) past
    :data:`MAX_CATEGORIES` distinct values, since the table then is no summary."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.overflowed = False

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def update(self, values: np.ndarray) -> None:
        """Count non-missing values (None and NaN are missing)."""
        if self.overflowed:
            return
        if values.dtype.kind in "iubf":
            present = values[~np.isnan(values)] if values.dtype.kind == "f" else values
            keys, numbers = np.unique(present, return_counts=True)
            if keys.size > MAX_CATEGORIES:  # a continuous column: stop before counting
                self._overflow()
                return
            self.counts.update(dict(zip(keys.tolist(), numbers.tolist(), strict=True)))
        else:
            self.counts.update(value for value in values.tolist() if not _is_missing(value))
        if len(self.counts) > MAX_CATEGORIES:
            self._overflow()

    def _overflow(self) -> None:
        self.overflowed = True
        self.counts = Counter()

    def to_dict(self) -> dict[str, Any]:
        return {"overflowed": self.overflowed, "counts": [[key, count] for key, count in
                                                          self.counts.items()]}

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> FrequencyTable:
        table = cls()
        table.overflowed = bool(document["overflowed"])
        table.counts = Counter({_key(key): int(count) for key, count in document["counts"]})
        return table


def _key(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)
