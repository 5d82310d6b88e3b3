"""The exact two-sample Kolmogorov–Smirnov kernel, and the simple reference it is tested against.

Both functions return, in exact integers, the largest CDF gap scaled by both sample sizes,

    n1 * n2 * D = max over every value v of either sample of |k1(v) * n2 - k2(v) * n1|

where k1(v), k2(v) count the values <= v in the first (size n1) and second (size n2)
sample. Counting "<= v" is what makes ties right: equal values enter together. The caller
divides once, so D is the float nearest to the true ratio.

:func:`reference_max_gap` is the definition written plainly: sort both, look every value up
in both. :func:`max_gap` gives the same integer at about the cost of sorting the two samples,
or less (``bench/drift.py`` measures it against ``np.sort``):

- **Buckets** (large samples of spread-out values): both samples are counted into fine
  equal-width buckets over their central range. The gap is then exact at every bucket end
  from the counts alone; only the buckets where it could exceed the largest bucket-end gap
  are counted again into finer slots, and only the values of the slots where it still could
  are sorted. Each pass goes over the data in cache-sized chunks with reused buffers.
  (Whole-sample temporaries, an index and a mask per value, cost more in memory traffic and
  first-touch page faults than the arithmetic: at 16M values an elementwise numpy step ran
  4-6x slower than on a cache-resident chunk, which is why the cost once grew faster than
  sorting. Heavy tails made it worse: the suspect values, up to a fifth of a Cauchy sample,
  were each looked up by binary search, 30-40 ns apiece.)
- **Sorted** (smaller samples, few distinct values, or data the buckets cannot spread):
  both samples are sorted; the gap is exact at every 64th value of one by binary search,
  and only the stretches between those where it could be larger, and that hold more than
  one distinct value, are merged and walked.
"""

from __future__ import annotations

import math

import numpy as np

#: Samples with at least this many values in total try the bucketed path first: below,
#: sorting is cheap enough (cache-resident) that passes over unsorted data do not pay.
BUCKETS_FROM = 1 << 19
#: Heavy-tailed samples (see max_gap) try the buckets from this many values in total.
HEAVY_BUCKETS_FROM = 1 << 22
#: Samples whose central 98% is this many times wider than their central 50% are heavy-tailed
#: (normal: 3.4, lognormal: 7, Cauchy: 32).
HEAVY_TAILS = 16
#: A subsample with at most this share of distinct values sends the samples to be sorted.
DISTINCT_SHARE = 0.125
#: Sorted samples are checked exactly at every EDGE_STEP-th value of the larger one.
EDGE_STEP = 1 << 6
#: Values per chunk of a bucketing pass: the chunk and its index stay in the L2 cache.
CHUNK = 1 << 16
#: At most this many buckets: the count arrays stay cache-resident.
MAX_BUCKETS = 1 << 17
#: Values per bucket (about): fewer buckets cost less per bucket, but more values need the
#: second, finer level.
VALUES_PER_BUCKET = 1 << 3


def reference_max_gap(x: np.ndarray, y: np.ndarray) -> int:
    """n1 * n2 * D straight from the definition, for two non-empty NaN-free samples."""
    xs, ys = np.sort(x), np.sort(y)
    return _max_gap_at(np.concatenate([xs, ys]), xs, ys)


def max_gap(x: np.ndarray, y: np.ndarray) -> int:
    """n1 * n2 * D for two non-empty NaN-free numeric samples (neither is modified)."""
    n1, n2 = x.size, y.size
    if n1 + n2 >= BUCKETS_FROM:
        # A strided subsample tells the shape of the data: spread out, heavy-tailed (the
        # central 98% far wider than the central 50%: the buckets then need their second
        # level much more, which pays only for larger samples), or few distinct values.
        subsample = np.sort(np.concatenate([x[:: max(1, n1 // 2048)],
                                            y[:: max(1, n2 // 2048)]]))
        q01, q25, q75, q99 = subsample[(np.array([1, 25, 75, 99]) * subsample.size) // 100]
        heavy_tails = q99 - q01 > HEAVY_TAILS * (q75 - q25)
        spread = _distinct(subsample).size > DISTINCT_SHARE * subsample.size
        if spread and (not heavy_tails or n1 + n2 >= HEAVY_BUCKETS_FROM):
            gap = _max_gap_by_buckets(x, y, subsample)
            if gap is not None:
                return gap
    return _max_gap_of_sorted(np.sort(x), np.sort(y))


def _distinct(sorted_values: np.ndarray) -> np.ndarray:
    """The distinct values of a sorted array (the last of each run of equal values)."""
    if sorted_values.size == 0:
        return sorted_values
    return sorted_values[np.append(sorted_values[1:] != sorted_values[:-1], True)]


def _max_gap_at(values: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> int:
    """The largest gap at ``values``, counting in the sorted samples ``xs`` and ``ys``."""
    k1 = np.searchsorted(xs, values, side="right")
    k2 = np.searchsorted(ys, values, side="right")
    return int(np.abs(k1 * ys.size - k2 * xs.size).max())


def _max_gap_of_sorted(xs: np.ndarray, ys: np.ndarray) -> int:
    """The largest gap of two sorted samples, merging only where it could be the largest.

    Every EDGE_STEP-th value of the larger sample is an edge; binary search in the other
    gives the exact gap at each edge, and the gap between two edges stays within the same
    bound as inside a bucket. Only the stretches whose bound reaches beyond the largest edge
    gap, and that hold more than one distinct value, are merged: few values, whatever the
    shape.
    """
    if xs.size < ys.size:
        xs, ys = ys, xs  # the gap is symmetric; take the edges from the larger sample
    n1, n2 = xs.size, ys.size
    if n1 < 2 * EDGE_STEP:
        return _max_gap_of_merge(xs, ys, n1, n2)
    # The edges are every EDGE_STEP-th value of xs (the last copy where it repeats): each
    # count in xs is its position + 1 unless the next value is equal, so only ys, and the
    # repeated edges of xs, need a binary search.
    position = np.arange(EDGE_STEP - 1, n1, EDGE_STEP)
    edges = xs[position]
    last = np.append(edges[1:] != edges[:-1], True)
    edges, position = edges[last], position[last]
    x_end = position + 1
    repeated = xs[np.minimum(x_end, n1 - 1)] == edges
    x_end[repeated] = np.searchsorted(xs, edges[repeated], side="right")
    # Stretch j holds the values in (edge j-1, edge j]; the last one those above every edge.
    x_end = np.append(x_end, n1)
    y_end = np.append(np.searchsorted(ys, edges, side="right"), n2)
    x_start, y_start = np.append(0, x_end[:-1]), np.append(0, y_end[:-1])
    gap_after = x_end * n2 - y_end * n1
    seen = int(np.abs(gap_after).max())
    gap_before = np.append(0, gap_after[:-1])
    x_count, y_count = x_end - x_start, y_end - y_start
    suspect = (gap_before + x_count * n2 > seen) | (gap_before - y_count * n1 < -seen)
    # A stretch whose first values already equal its edge holds that value only: its gap
    # is the one at the edge.
    right = np.append(edges, np.inf)
    one_value = ((x_count == 0) | (xs[np.minimum(x_start, n1 - 1)] == right)) & (
        (y_count == 0) | (ys[np.minimum(y_start, n2 - 1)] == right))
    suspect &= ~one_value
    if not suspect.any():
        return seen
    chosen = np.flatnonzero(suspect)
    x_picked = np.concatenate([xs[x_start[j] : x_end[j]] for j in chosen])
    y_picked = np.concatenate([ys[y_start[j] : y_end[j]] for j in chosen])
    # The gap below each picked value of the values not picked: the gap before its stretch,
    # less what the picked stretches before it contributed.
    step = x_count[chosen] * n2 - y_count[chosen] * n1
    below = gap_before[chosen] - (np.cumsum(step) - step)
    picked_below = np.concatenate([np.repeat(below, x_count[chosen]),
                                   np.repeat(below, y_count[chosen])])
    return max(seen, _max_gap_of_merge(x_picked, y_picked, n1, n2, picked_below))


def _max_gap_of_merge(xs: np.ndarray, ys: np.ndarray, n1: int, n2: int,
                      below: np.ndarray | None = None) -> int:
    """The largest gap over the values of the sorted ``xs`` and ``ys``, merged in linear time.

    ``xs`` and ``ys`` are the two samples (sizes ``n1`` and ``n2``), or values picked from
    them; then ``below`` gives, per value of ``xs`` followed by ``ys``, the gap of the values
    below it that were not picked.
    """
    merged = np.concatenate([xs, ys])
    # A stable argsort of two concatenated sorted runs is a timsort merge: linear time, and
    # it puts the first sample's copies of a value before the second's.
    order = np.argsort(merged, kind="stable")
    values = merged[order]
    # Walking the merged order, the gap rises by n2 at each value of sample 1 and falls by
    # n1 at each value of sample 2.
    gap = np.where(order < xs.size, n2, -n1).astype(np.int64)
    np.cumsum(gap, out=gap)
    if below is not None:
        gap += below[order]
    # The gap counts only after the last of a run of equal values.
    run_end = np.append(values[1:] != values[:-1], True)
    return int(np.abs(gap[run_end]).max())


class _Buckets:
    """``buckets`` equal-width buckets over ``[low, high)`` and one open-ended bucket at each
    side: bucket ``floor(position(v))``.

    Each step rounds monotonically, so v <= w gives bucket(v) <= bucket(w), and equal values
    share a bucket: every bucket holds one interval of values.
    """

    def __init__(self, low: float, high: float, buckets: int):
        self.size = buckets + 2
        self.scale = buckets / (high - low)
        self.origin = low - 1 / self.scale
        self._position = np.empty(CHUNK, np.float64)
        self._index = np.empty(CHUNK, np.intp)

    def position(self, chunk: np.ndarray) -> np.ndarray:
        """Positions of at most :data:`CHUNK` values in [0, size - 1], in a reused buffer."""
        position = np.subtract(chunk, self.origin, out=self._position[: chunk.size],
                               dtype=np.float64)
        position *= self.scale
        return np.clip(position, 0, self.size - 1, out=position)

    def index(self, chunk: np.ndarray) -> np.ndarray:
        """Buckets of at most :data:`CHUNK` values, in a buffer reused by the next call
        (clipped as floats, then truncated: clipping into an integer view is three times
        slower in numpy)."""
        return self.bucket_of(self.position(chunk))

    def bucket_of(self, position: np.ndarray) -> np.ndarray:
        """Buckets of positions, in the reused buffer."""
        index = self._index[: position.size]
        np.copyto(index, position, casting="unsafe")
        return index


class _Slots:
    """Each suspect bucket of ``buckets`` cut into ``parts`` equal slots (``parts`` a power of
    two), numbered in value order: slot ``rank(bucket) * parts + floor(fraction * parts)``.

    The fraction of a position past its bucket's start is exact, and so is its product with
    a power of two, so the slots keep the buckets' order and never cross a bucket's end.
    """

    def __init__(self, buckets: _Buckets, suspect: np.ndarray, parts: int):
        self.buckets = buckets
        self.parts = parts
        count = int(suspect.sum())
        self.size = count * parts
        self.rank_start = np.zeros(suspect.size, np.intp)
        self.rank_start[suspect] = np.arange(0, self.size, parts)
        self._part = np.empty(CHUNK, np.intp)

    def index(self, chunk: np.ndarray) -> np.ndarray:
        position = self.buckets.position(chunk)
        bucket = self.buckets.bucket_of(position)
        position -= bucket
        position *= self.parts
        part = self._part[: chunk.size]
        np.copyto(part, position, casting="unsafe")
        part += self.rank_start[bucket]
        return part


def _chunks(values: np.ndarray):
    return (values[start : start + CHUNK] for start in range(0, values.size, CHUNK))


def _count(values: np.ndarray, buckets: _Buckets | _Slots) -> np.ndarray:
    counts = np.zeros(buckets.size, np.int64)
    for chunk in _chunks(values):
        np.add.at(counts, buckets.index(chunk), 1)
    return counts


def _pick(values: np.ndarray, buckets: _Buckets | _Slots, wanted: np.ndarray) -> np.ndarray:
    """A copy of the values whose bucket is ``wanted`` (a mask over buckets)."""
    parts = [chunk[wanted[buckets.index(chunk)]] for chunk in _chunks(values)]
    return np.concatenate(parts) if parts else values[:0].copy()


def _max_gap_by_buckets(x: np.ndarray, y: np.ndarray, subsample: np.ndarray) -> int | None:
    """The largest gap without sorting most values, or None when the data do not suit it.

    The gap at every bucket end is exact from the counts. Inside bucket j it stays within
    [gap_before_j - n1 * count2_j, gap_before_j + n2 * count1_j], so only buckets whose range
    reaches beyond the largest gap seen at bucket ends can hold a larger one ("suspect").
    The suspects' values are counted again into finer slots, the same test runs on the slots,
    and only the values of suspect slots are sorted and merged exactly. None when the
    subsample has no spread to bucket.
    """
    n1, n2 = x.size, y.size
    # The buckets span the central 98% of the subsample, so heavy tails do not stretch them.
    # The range only decides how evenly values spread over buckets (time), never the result.
    low = float(subsample[int(subsample.size * 0.01)])
    high = float(subsample[int(subsample.size * 0.99)])
    if not (math.isfinite(low) and math.isfinite(high) and high > low):
        return None
    # About VALUES_PER_BUCKET values per bucket, up to MAX_BUCKETS.
    buckets = _Buckets(low, high, 1 << min(MAX_BUCKETS.bit_length() - 1, max(
        8, (n1 + n2).bit_length() - VALUES_PER_BUCKET.bit_length())))
    if not (math.isfinite(buckets.scale) and math.isfinite(buckets.origin)):
        return None

    # Level 1 resolves every value; level 2 the values of the suspect buckets. ``below`` is
    # the gap of the values below each bucket that this level does not count.
    level: _Buckets | _Slots = buckets
    x_part, y_part, below = x, y, np.zeros(buckets.size, np.int64)
    seen = 0
    for depth in (1, 2):
        x_count, y_count = _count(x_part, level), _count(y_part, level)
        rise, fall = x_count * n2, y_count * n1
        step = rise - fall
        gap_after = below + np.cumsum(step)
        seen = max(seen, int(gap_after.max()), -int(gap_after.min()))
        gap_before = gap_after - step
        suspect = (gap_before + rise > seen) | (gap_before - fall < -seen)
        if not suspect.any():
            return seen
        # The values of suspect buckets are counted on; those of the others join ``below``:
        # the gap before a suspect bucket, less what the suspects before it contributed.
        suspect_step = step[suspect]
        below = gap_before[suspect] - (np.cumsum(suspect_step) - suspect_step)
        x_part, y_part = _pick(x_part, level, suspect), _pick(y_part, level, suspect)
        if depth == 1:
            # About 8 values per slot.
            picked = x_part.size + y_part.size
            parts = 1 << max(1, (picked // (8 * below.size)).bit_length())
            level = _Slots(buckets, suspect, parts)
            below = np.repeat(below, parts)

    # ``below`` is now per suspect slot: look each picked value's slot up, then merge.
    slot_below = np.zeros(level.size, np.int64)
    slot_below[suspect] = below
    x_part.sort()
    y_part.sort()
    picked_below = np.concatenate([slot_below[level.index(chunk)] for chunk in
                                   _chunks(np.concatenate([x_part, y_part]))])
    return max(seen, _max_gap_of_merge(x_part, y_part, n1, n2, picked_below))
