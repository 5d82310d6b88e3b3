"""Sketch-mode drift: the quantile sketch's deterministic bound, profiles, chunked data,
categorical statistics, per-column levels and the indeterminate verdict."""

from __future__ import annotations

import math
import tracemalloc
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chi2, chi2_contingency, ks_2samp

from flowpolicy.policy.model import (
    INDETERMINATE,
    DriftColumn,
    DriftLevel,
    DriftRule,
    frozen_map,
)
from flowpolicy.runtime import sketch as sketch_module
from flowpolicy.runtime.categorical import categorical_statistic, chi2_survival
from flowpolicy.runtime.drift import (
    DriftDataError,
    DriftProfile,
    evaluate_drift,
    profile_data,
)
from flowpolicy.runtime.ks import max_gap
from flowpolicy.runtime.sketch import FrequencyTable, QuantileSketch, sketch_gap

LEVELS = (DriftLevel("normal", 0.0), DriftLevel("elevated", 0.05), DriftLevel("high", 0.1))


def true_counts(values: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.searchsorted(np.sort(values), points, side="right")


def sketch_of(values: np.ndarray, capacity: int, pieces: int) -> QuantileSketch:
    """A sketch built from ``pieces`` updates, half of them merged in from other sketches."""
    whole = QuantileSketch(capacity)
    for index, part in enumerate(np.array_split(values, pieces)):
        if index % 2:
            other = QuantileSketch(capacity)
            other.update(part)
            whole.merge(other)
        else:
            whole.update(part)
    return whole


# Data the bound must survive: random, sorted (every compaction sees a run), reversed,
# alternating extremes, one repeated value, two values, and heavy ties.
def adversarial(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "sorted":
        return np.arange(n, dtype=float)
    if kind == "reversed":
        return np.arange(n, 0, -1, dtype=float)
    if kind == "alternating":
        return np.where(np.arange(n) % 2, 1e9, -1e9) + np.arange(n)
    if kind == "constant":
        return np.full(n, 3.0)
    if kind == "two_values":
        return np.where(rng.random(n) < 0.5, 0.0, 1.0)
    if kind == "ties":
        return rng.poisson(2, n).astype(float)
    return rng.standard_cauchy(n)


KINDS = ["random", "sorted", "reversed", "alternating", "constant", "two_values", "ties"]


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 3000),
       capacity=st.sampled_from([2, 4, 16, 64]), pieces=st.integers(1, 7))
def test_sketch_rank_error_never_exceeds_its_bound(kind, seed, n, capacity, pieces):
    rng = np.random.default_rng(seed)
    values = adversarial(kind, n, rng)
    sketch = sketch_of(values, capacity, pieces)
    assert sketch.count == n
    retained, estimated = sketch.sorted_with_counts()
    assert estimated[-1] == n  # compaction keeps the total weight
    points = np.concatenate([values, retained, [-np.inf, np.inf]])
    position = np.searchsorted(retained, points, side="right")
    estimate = np.where(position > 0, estimated[np.maximum(position - 1, 0)], 0)
    assert np.abs(estimate - true_counts(values, points)).max() <= sketch.error


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n1=st.integers(1, 2500), n2=st.integers(1, 2500),
       capacity=st.sampled_from([2, 8, 32, 128]), shift=st.floats(0, 2))
def test_sketch_d_is_within_the_stated_bound_of_exact_d(kind, seed, n1, n2, capacity, shift):
    rng = np.random.default_rng(seed)
    a = adversarial(kind, n1, rng)
    b = adversarial("random" if kind == "constant" else kind, n2, rng) + shift
    gap, bound = sketch_gap(sketch_of(a, capacity, 3), sketch_of(b, capacity, 2))
    # In exact rationals: |D_sketch - D_exact| <= bound.
    exact = max_gap(a, b)
    assert abs(Fraction(gap - exact, n1 * n2)) <= Fraction(bound, n1 * n2)


def test_sketch_bound_is_small_for_large_samples():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.05, 1, 400_000), rng.normal(0, 1, 300_000)
    first, second = QuantileSketch(), QuantileSketch()
    first.update(a)
    second.update(b)
    gap, bound = sketch_gap(first, second)
    n = a.size * b.size
    assert bound / n < 2e-3 and first.rank_error < 1e-3
    assert abs(gap - max_gap(a, b)) <= bound


def test_sketch_round_trips_through_a_plain_dict():
    sketch = QuantileSketch(8)
    sketch.update(np.arange(1000.0))
    copy = QuantileSketch.from_dict(sketch.to_dict())
    assert (copy.count, copy.error, copy.capacity) == (sketch.count, sketch.error, 8)
    assert all(np.array_equal(a, b) for a, b in zip(copy.levels, sketch.levels, strict=True))
    copy.update([5.0])  # the copy is independent
    assert sketch.count == 1000


# --- categorical statistics -----------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(current=st.dictionaries(st.sampled_from("abcdefg"), st.integers(1, 500), min_size=1),
       reference=st.dictionaries(st.sampled_from("abcdefg"), st.integers(1, 500), min_size=1))
def test_categorical_statistics_match_their_definitions(current, reference):
    categories = sorted(set(current) | set(reference))
    table = np.array([[current.get(c, 0) for c in categories],
                      [reference.get(c, 0) for c in categories]], dtype=float)
    p, q = table[0] / table[0].sum(), table[1] / table[1].sum()
    linf, _ = categorical_statistic("linf", current, reference)
    assert linf == pytest.approx(np.abs(p - q).max(), abs=1e-15)
    psi, _ = categorical_statistic("psi", current, reference)
    pf, qf = np.maximum(p, 1e-4), np.maximum(q, 1e-4)
    assert psi == pytest.approx(((pf - qf) * np.log(pf / qf)).sum(), rel=1e-12, abs=1e-15)
    value, details = categorical_statistic("chi2", current, reference)
    if len(categories) == 1:
        assert (value, details["p_value"]) == (0.0, 1.0)
    else:
        expected = chi2_contingency(table, correction=False)
        assert details["chi2"] == pytest.approx(expected.statistic, rel=1e-9)
        assert details["dof"] == expected.dof
        assert details["p_value"] == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
        assert value == 1 - details["p_value"]


@pytest.mark.parametrize("dof", [1, 2, 5, 30, 999])
@pytest.mark.parametrize("fraction", [0.01, 0.5, 1.0, 1.7, 4.0])
def test_chi2_survival_matches_scipy(dof, fraction):
    x = dof * fraction
    assert chi2_survival(x, dof) == pytest.approx(chi2.sf(x, dof), rel=1e-10, abs=1e-300)


def test_frequency_table_drops_missing_values_and_overflows(monkeypatch):
    table = FrequencyTable()
    table.update(np.array(["a", None, "b", "a", math.nan], dtype=object))
    assert dict(table.counts) == {"a": 2, "b": 1}
    table.update(np.array([1.0, math.nan, 1.0]))
    assert table.counts[1.0] == 2
    monkeypatch.setattr(sketch_module, "MAX_CATEGORIES", 3)
    table.update(np.array([7, 8, 9]))
    assert table.overflowed and table.total == 0


# --- evaluate_drift in both modes --------------------------------------------------------


def features(rng: np.random.Generator, n: int, shift: float = 0.0) -> dict:
    merchants = np.array(["grocery", "travel", "online", "fuel"])
    share = [0.4, 0.1, 0.3, 0.2] if shift == 0 else [0.3, 0.2, 0.3, 0.2]
    return {
        "amount": rng.lognormal(3 + shift, 1, n),
        "hour": rng.integers(0, 24, n),
        "merchant": rng.choice(merchants, n, p=share),
        "foreign": rng.random(n) < 0.1 + shift / 10,
    }


SETTINGS = frozen_map({
    "merchant": DriftColumn("merchant", "psi", frozen_map({"elevated": 0.05, "high": 0.25})),
    "hour": DriftColumn("hour", "chi2", frozen_map({"elevated": 0.95, "high": 0.99})),
    "amount": DriftColumn("amount", levels=frozen_map({"high": 0.5})),
})


def rule(mode: str = "exact", **extra) -> DriftRule:
    return DriftRule(asset="transactions", levels=LEVELS, mode=mode, column_settings=SETTINGS,
                     events=frozen_map({"high": "retrain", INDETERMINATE: "drift_unclear"}),
                     **extra)


def test_categorical_columns_and_per_column_levels():
    rng = np.random.default_rng(5)
    reference, current = features(rng, 20_000), features(rng, 20_000, shift=0.3)
    result = evaluate_drift(rule(), current, reference, current_id="v2", reference_id="v1")
    # Every numeric column is compared (foreign, a boolean, too), plus the categorical one.
    assert list(result.statistics) == ["amount", "hour", "foreign", "merchant"]
    columns = result.columns
    d = ks_2samp(current["amount"], reference["amount"]).statistic
    assert columns["amount"].value == pytest.approx(d, abs=1e-12)
    # amount's own high threshold is 0.5: its D of about 0.12 is elevated, not high.
    assert 0.1 < d < 0.5 and columns["amount"].level == "elevated"
    # foreign keeps the rule's levels (its D of about 0.03 is normal).
    assert columns["foreign"].level == "normal"
    merchant_psi, _ = categorical_statistic(
        "psi", dict(zip(*np.unique(current["merchant"], return_counts=True), strict=True)),
        dict(zip(*np.unique(reference["merchant"], return_counts=True), strict=True)))
    assert columns["merchant"].value == pytest.approx(merchant_psi)
    assert columns["merchant"].statistic == "psi" and columns["merchant"].bound == 0
    assert columns["hour"].statistic == "chi2" and "p_value" in columns["hour"].details
    # The verdict is the most severe column level, by the rule's order of levels.
    severity = ["normal", "elevated", "high"]
    assert result.level == max((c.level for c in columns.values()), key=severity.index)
    assert result.worst_column in columns and result.inputs == ("data", "data")
    document = result.to_dict()
    assert document["columns"]["merchant"]["statistic"] == "psi"


def test_runtime_levels_still_give_way_to_a_column_own_thresholds():
    rng = np.random.default_rng(6)
    reference, current = features(rng, 5000), features(rng, 5000, shift=0.3)
    levels = (DriftLevel("normal", 0.0), DriftLevel("elevated", 0.9), DriftLevel("high", 0.95))
    result = evaluate_drift(rule(), current, reference, current_id="v2", reference_id="v1",
                            levels=levels)
    assert result.columns["foreign"].level == "normal"  # the run's 0.9 for everyone else
    assert result.columns["merchant"].level == "elevated"  # its own 0.05


def test_sketch_mode_never_contradicts_exact_mode():
    rng = np.random.default_rng(7)
    for shift in (0.0, 0.05, 0.3):
        reference, current = features(rng, 50_000), features(rng, 50_000, shift=shift)
        exact = evaluate_drift(rule(), current, reference, current_id="v2", reference_id="v1")
        sketched = evaluate_drift(rule("sketch"), current, profile_data(reference),
                                  current_id="v2", reference_id="v1")
        assert sketched.inputs == ("data", "profile")
        for name, column in sketched.columns.items():
            truth = exact.columns[name]
            assert abs(column.value - truth.value) <= column.bound + 1e-15
            if column.level != INDETERMINATE:
                assert column.level == truth.level
        if sketched.level != INDETERMINATE:
            assert sketched.level == exact.level


def test_indeterminate_when_the_bound_straddles_a_threshold(monkeypatch):
    # A small sketch capacity makes the bound wide (0.006); D (0.101) sits on the high
    # threshold (0.1).
    monkeypatch.setattr(sketch_module, "CAPACITY", 256)
    rng = np.random.default_rng(8)
    reference = {"amount": rng.normal(0, 1, 20_000)}
    current = {"amount": rng.normal(0.25, 1, 20_000)}
    plain = DriftRule(asset="transactions", levels=LEVELS, mode="sketch",
                      events=frozen_map({"high": "retrain", INDETERMINATE: "drift_unclear"}))
    result = evaluate_drift(plain, current, reference, current_id="v2", reference_id="v1")
    column = result.columns["amount"]
    assert 0.002 < column.bound < 0.04
    assert column.level == result.level == INDETERMINATE
    assert column.level_range == result.level_range == ("elevated", "high")
    assert result.event == "drift_unclear"
    exact = ks_2samp(current["amount"], reference["amount"]).statistic
    assert abs(column.value - exact) <= column.bound


def test_a_settled_severe_column_decides_despite_an_open_one():
    rng = np.random.default_rng(9)
    reference = {"a": rng.normal(0, 1, 5000), "b": rng.normal(0, 1, 5000)}
    current = {"a": rng.normal(2, 1, 5000), "b": rng.normal(0, 1, 5000)}
    loose = DriftRule(asset="t", levels=LEVELS, mode="sketch")
    result = evaluate_drift(loose, current, reference, current_id="v2", reference_id="v1")
    assert result.columns["a"].level == "high" and result.level == "high"


# --- profiles and chunked data ------------------------------------------------------------


def test_profile_round_trips_and_is_plain_data(monkeypatch):
    monkeypatch.setattr(sketch_module, "MAX_CATEGORIES", 100)
    rng = np.random.default_rng(10)
    profile = profile_data(features(rng, 3000))
    document = profile.to_dict()
    assert set(document["columns"]) == {"amount", "hour", "merchant", "foreign"}
    # A continuous column's table overflows and is dropped; strings get no sketch.
    assert document["columns"]["amount"]["categories"] == {"overflowed": True, "counts": []}
    assert document["columns"]["merchant"]["sketch"] is None
    again = DriftProfile.from_dict(document)
    assert again.rows == 3000
    assert again.columns["hour"].categories.counts == profile.columns["hour"].categories.counts
    with pytest.raises(DriftDataError, match="not a flowpolicy drift profile"):
        DriftProfile.from_dict({"columns": {}})


def test_chunked_data_gives_the_same_profile_as_the_whole():
    rng = np.random.default_rng(11)
    table = features(rng, 10_000)
    chunks = ({name: values[i:i + 777] for name, values in table.items()}
              for i in range(0, 10_000, 777))
    whole, chunked = profile_data(table), profile_data(chunks)
    assert chunked.rows == whole.rows == 10_000
    for name in table:
        a, b = whole.columns[name], chunked.columns[name]
        assert a.rows == b.rows
        if a.categories is not None:
            assert a.categories.counts == b.categories.counts
        if a.sketch is not None:
            assert a.sketch.count == b.sketch.count


def test_exact_mode_reads_chunked_data_whole():
    rng = np.random.default_rng(12)
    reference, current = features(rng, 4000), features(rng, 4000, shift=0.3)
    chunks = [{name: values[i:i + 1000] for name, values in current.items()}
              for i in range(0, 4000, 1000)]
    plain = DriftRule(asset="t", levels=LEVELS)
    whole = evaluate_drift(plain, current, reference, current_id="v2", reference_id="v1")
    chunked = evaluate_drift(plain, iter(chunks), reference, current_id="v2",
                             reference_id="v1")
    assert dict(chunked.statistics) == dict(whole.statistics)


def test_sketch_mode_memory_is_bounded_by_the_chunk():
    rows, chunk = 2_000_000, 50_000

    def generated():
        rng = np.random.default_rng(13)
        for _ in range(rows // chunk):
            yield {"x": rng.normal(size=chunk), "y": rng.normal(size=chunk),
                   "z": rng.normal(size=chunk)}

    tracemalloc.start()
    try:
        profile = profile_data(generated())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert profile.columns["x"].sketch.count == rows
    data_bytes = rows * 3 * 8  # 48 MB if it were held whole
    assert peak < data_bytes / 4, f"peak {peak / 1e6:.1f} MB"


def test_memmap_and_parquet_are_read_in_chunks(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")  # the parquet extra (in dev)
    import pyarrow as pa

    rng = np.random.default_rng(14)
    reference = features(rng, 30_000)
    plain = DriftRule(asset="t", levels=LEVELS, mode="sketch", columns=("amount",))
    expected = evaluate_drift(plain, reference, reference, current_id="v2", reference_id="v1")
    assert expected.statistics["amount"] == 0

    memmap = np.lib.format.open_memmap(tmp_path / "amount.npy", mode="w+", dtype=float,
                                       shape=(30_000, 1))
    memmap[:, 0] = reference["amount"]
    memmap.flush()
    from_memmap = evaluate_drift(DriftRule(asset="t", levels=LEVELS, mode="sketch"),
                                 np.load(tmp_path / "amount.npy", mmap_mode="r"),
                                 {"0": reference["amount"]}, current_id="v2",
                                 reference_id="v1")
    assert from_memmap.statistics["0"] == 0

    folder = tmp_path / "parts"
    folder.mkdir()
    for i in range(3):
        part = {k: v[i * 10_000:(i + 1) * 10_000] for k, v in reference.items()}
        pq.write_table(pa.table(part), folder / f"part-{i}.parquet")
    from_parquet = evaluate_drift(rule("sketch"), folder, profile_data(reference),
                                  current_id="v2", reference_id="v1")
    assert from_parquet.statistics["amount"] == 0 and from_parquet.level == "normal"
    assert from_parquet.columns["merchant"].value == 0


MERCHANT = frozen_map({"merchant": DriftColumn("merchant", "linf")})


@pytest.mark.parametrize(("mode", "settings", "current", "reference", "message"), [
    ("exact", frozen_map(), {"amount": [1.0]}, profile_data({"amount": [1.0, 2.0]}),
     "a drift profile holds sketches"),
    ("sketch", MERCHANT, {"merchant": ["a"]}, profile_data({"amount": [1.0, 2.0]}).to_dict(),
     "'merchant' is missing in the reference"),
    ("sketch", MERCHANT, {"merchant": ["a"]}, profile_data({"merchant": [1.5]}, categorical=()),
     "'merchant' is not profiled as categorical in the reference"),
    ("sketch", frozen_map(), "/nonexistent/data.parquet", {"amount": [1.0]}, "no such Parquet"),
    ("sketch", frozen_map(), [{"amount": [1.0]}, 5], {"amount": [1.0]}, "not a table"),
    ("sketch", frozen_map(), {"amount": [math.nan]}, {"amount": [1.0]}, "is empty"),
])
def test_drift_input_errors(mode, settings, current, reference, message):
    pytest.importorskip("pyarrow")
    checked = DriftRule(asset="t", levels=LEVELS, mode=mode, column_settings=settings)
    with pytest.raises(DriftDataError, match=message):
        evaluate_drift(checked, current, reference, current_id="v2", reference_id="v1")
