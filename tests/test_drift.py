"""The KS drift statistic against scipy's reference, drift levels, and column handling."""

from __future__ import annotations

import json
import math
import warnings
from contextlib import contextmanager
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.stats import ks_2samp

from flowpolicy.errors import FlowpolicyError
from flowpolicy.policy.model import DriftLevel, DriftRule, frozen_map
from flowpolicy.runtime import ks
from flowpolicy.runtime.drift import (
    NO_LEVEL,
    DriftDataError,
    drift_level,
    evaluate_drift,
    ks_statistic,
    numeric_columns,
)

LEVELS = (DriftLevel("normal", 0.0), DriftLevel("elevated", 0.05), DriftLevel("high", 0.1))
RULE = DriftRule(
    asset="fraud_features",
    levels=LEVELS,
    report_asset="drift_reports",
    events=frozen_map({"high": "retrain_required"}),
)


def scipy_d(a, b) -> float:
    # The reference; its p-value (unused here) may fall back from the exact method, warning.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(ks_2samp(a, b).statistic)


# --- the statistic against scipy ---------------------------------------------------------

# ks_statistic picks its exact method by sample size and shape; each test of the law runs
# every method on small samples by moving the thresholds that choose between them.
METHODS = {
    "auto": {},
    "buckets": {"BUCKETS_FROM": 0, "HEAVY_BUCKETS_FROM": 0, "DISTINCT_SHARE": 0.0},
    "sorted": {"BUCKETS_FROM": math.inf, "EDGE_STEP": 2},
    "merge": {"BUCKETS_FROM": math.inf, "EDGE_STEP": 10**9},
}


@contextmanager
def method(name: str):
    with pytest.MonkeyPatch.context() as patch:
        for attribute, value in METHODS[name].items():
            patch.setattr(ks, attribute, value)
        yield


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
few_values = st.integers(min_value=-3, max_value=3).map(float)  # many ties
any_value = st.one_of(finite, few_values, st.sampled_from([0.0, -0.0, math.inf, -math.inf]))


@pytest.mark.parametrize("name", METHODS)
@settings(max_examples=30, deadline=None)
@given(
    a=st.lists(any_value, min_size=1, max_size=60), b=st.lists(any_value, min_size=1, max_size=60)
)
def test_ks_matches_scipy(name, a, b):
    with method(name):
        assert ks_statistic(a, b) == pytest.approx(scipy_d(a, b), abs=1e-12)


@pytest.mark.parametrize("name", METHODS)
@settings(max_examples=25, deadline=None)
@given(
    a=st.lists(few_values, min_size=1, max_size=8),
    b=st.lists(few_values, min_size=1, max_size=200),
)
def test_ks_matches_scipy_with_ties_and_unequal_sizes(name, a, b):
    with method(name):
        assert ks_statistic(a, b) == pytest.approx(scipy_d(a, b), abs=1e-12)
        # D is symmetric in its samples.
        assert ks_statistic(b, a) == ks_statistic(a, b)


def exact_d(a, b) -> Fraction:
    """D in rational arithmetic, straight from the definition."""
    return max(
        abs(Fraction(sum(x <= v for x in a), len(a)) - Fraction(sum(x <= v for x in b), len(b)))
        for v in set(a) | set(b)
    )


@pytest.mark.parametrize("name", METHODS)
@settings(max_examples=30, deadline=None)
@given(
    a=st.lists(
        st.one_of(st.integers(-2, 2), st.integers(-(2**40), 2**40)), min_size=1, max_size=15
    ),
    b=st.lists(
        st.one_of(st.integers(-2, 2), st.integers(-(2**40), 2**40)), min_size=1, max_size=15
    ),
)
def test_ks_is_the_exact_ratio_correctly_rounded(name, a, b):
    with method(name):
        assert ks_statistic(a, b) == float(exact_d(a, b))


@pytest.mark.parametrize("name", ["auto", "buckets"])
@pytest.mark.parametrize("shape", ["normal", "cauchy", "integers", "rounded", "spike", "infinite"])
@settings(max_examples=4, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n1=st.integers(16_384, 24_000),
    n2=st.integers(16_384, 24_000),
)
def test_ks_matches_scipy_on_larger_samples(name, shape, seed, n1, n2):
    # Above 10,000 values scipy takes its asymptotic path, whose D carries float rounding:
    # the two agree to far better than the 1e-12 the contract asks for. The shapes take
    # every branch of the sorted path, and of the bucketed one (both levels) when forced.
    rng = np.random.default_rng(seed)
    shift = rng.uniform(0, 0.1)
    if shape == "normal":
        a, b = rng.normal(0, 1, n1), rng.normal(shift, 1, n2)
    elif shape == "cauchy":
        a, b = rng.standard_cauchy(n1), rng.standard_cauchy(n2) + shift
    elif shape == "integers":
        a, b = rng.poisson(3, n1), rng.poisson(3 + shift, n2)
    elif shape == "rounded":
        a, b = rng.normal(0, 1, n1).round(2), rng.normal(shift, 1, n2).round(2)
    elif shape == "spike":  # one value repeated very often, next to continuous values
        a = np.where(rng.random(n1) < 0.6, 0.0, rng.normal(0, 1, n1))
        b = np.where(rng.random(n2) < 0.6 - shift, 0.0, rng.normal(0, 1, n2))
    else:
        a, b = rng.normal(0, 1, n1), rng.normal(shift, 1, n2)
        a[rng.random(n1) < 0.02] = np.inf
        b[rng.random(n2) < 0.03] = -np.inf
    with method(name):
        assert ks_statistic(a, b) == pytest.approx(scipy_d(a, b), abs=1e-12)
        assert ks.max_gap(a, b) == ks.reference_max_gap(a, b)


@settings(max_examples=40, deadline=None)
@given(
    a=st.lists(st.one_of(finite, st.just(math.nan)), min_size=1, max_size=40),
    b=st.lists(st.one_of(few_values, st.just(math.nan)), min_size=1, max_size=40),
)
def test_nan_values_are_dropped(a, b):
    clean_a = [x for x in a if not math.isnan(x)]
    clean_b = [x for x in b if not math.isnan(x)]
    if not clean_a or not clean_b:
        with pytest.raises(DriftDataError, match="empty"):
            ks_statistic(a, b)
    else:
        assert ks_statistic(a, b) == pytest.approx(scipy_d(clean_a, clean_b), abs=1e-12)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([1.0], [1.0], 0.0),
        ([1.0], [2.0], 1.0),
        ([0.0], [-0.0], 0.0),  # equal values, whatever the sign bit
        ([1, 2, 3], [1, 2, 3], 0.0),
        ([1, 2, 3, 4], [3, 4, 5, 6], 0.5),
        ([True, False, True], [False, False, True], 1 / 3),
        (np.array([1, 2], dtype=np.int8), np.array([2.5, 3.5], dtype=np.float32), 1.0),
        (np.arange(20), np.arange(1, 21), 0.05),  # exactly 1/20, correctly rounded
        ([-math.inf, 0.0, math.inf], [math.inf, math.inf], 2 / 3),
        ([1, None, 2], [2, 3], 0.5),  # None in a list is a missing value, like NaN
    ],
)
def test_ks_known_values(a, b, expected):
    assert ks_statistic(a, b) == expected


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        ([], [1.0], "first sample is empty"),
        ([1.0], [math.nan, math.nan], "second sample is empty"),
        (["a", "b"], [1.0], "not a one-dimensional numeric sample"),
        ([[1.0, 2.0]], [1.0], "not a one-dimensional numeric sample"),
        ([1 + 2j], [1.0], "not a one-dimensional numeric sample"),
    ],
)
def test_ks_bad_samples(a, b, message):
    with pytest.raises(DriftDataError, match=message) as caught:
        ks_statistic(a, b)
    assert isinstance(caught.value, FlowpolicyError)


def test_ks_does_not_modify_its_inputs():
    a = np.array([3.0, math.nan, 1.0, 2.0])
    b = np.array([5.0, 4.0])
    ks_statistic(a, b)
    assert a[0] == 3.0 and math.isnan(a[1]) and b.tolist() == [5.0, 4.0]


# --- levels ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "level"),
    [
        (0.0, "normal"),
        (0.0499999, "normal"),
        (0.05, "elevated"),
        (0.05 - 1e-15, "elevated"),  # rounding noise below a threshold still reaches it
        (0.0999, "elevated"),
        (0.1, "high"),
        (1.0, "high"),
    ],
)
def test_drift_level(value, level):
    assert drift_level(LEVELS, value) == level
    assert drift_level(tuple(reversed(LEVELS)), value) == level


def test_drift_level_below_every_threshold():
    assert drift_level((DriftLevel("elevated", 0.05),), 0.01) == NO_LEVEL


@settings(max_examples=50, deadline=None)
@given(
    thresholds=st.lists(st.floats(0, 1), min_size=1, max_size=5, unique=True),
    value=st.floats(0, 1),
)
def test_drift_level_is_the_highest_threshold_reached(thresholds, value):
    # within a relative 1e-12 of a threshold counts as reaching it (rounding of computed D);
    # test_drift_level covers the boundaries themselves
    assume(all(abs(value - t) > 1e-9 for t in thresholds))
    levels = [DriftLevel(f"l{i}", t) for i, t in enumerate(thresholds)]
    reached = [lvl for lvl in levels if value >= lvl.threshold]
    expected = max(reached, key=lambda lvl: lvl.threshold).name if reached else NO_LEVEL
    assert drift_level(levels, value) == expected


# --- whole tables --------------------------------------------------------------------------


def _table(shift: float, n: int = 400, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "amount": rng.normal(100 + shift, 10, n),
        "n_items": rng.integers(0, 5, n),
        "merchant": np.array(["a", "b"] * (n // 2)),
    }


def test_evaluate_drift_on_column_mapping():
    reference, current = _table(0.0, seed=1), _table(30.0, seed=2)
    result = evaluate_drift(RULE, current, reference, current_id="v2", reference_id="v1")
    assert set(result.statistics) == {"amount", "n_items"}  # text columns are not compared
    for name, d in result.statistics.items():
        assert d == pytest.approx(scipy_d(current[name], reference[name]), abs=1e-12)
    assert result.worst_column == "amount"
    assert result.max_statistic == result.statistics["amount"] > 0.1
    assert (result.level, result.event) == ("high", "retrain_required")
    assert result.sample_sizes["amount"] == (400, 400)
    document = result.to_dict()
    json.dumps(document, allow_nan=False)
    assert document["current"] == "v2" and document["reference"] == "v1"
    assert document["statistics"] == dict(result.statistics)


def test_evaluate_drift_normal_level_has_no_event():
    table = _table(0.0)
    result = evaluate_drift(RULE, table, table, current_id="v2", reference_id="v1")
    assert result.max_statistic == 0.0
    assert (result.level, result.event) == ("normal", None)


def test_evaluate_drift_levels_override():
    reference, current = _table(0.0, seed=1), _table(30.0, seed=2)
    levels = (DriftLevel("normal", 0.0), DriftLevel("high", 0.99))
    result = evaluate_drift(
        RULE, current, reference, current_id="v2", reference_id="v1", levels=levels
    )
    assert (result.level, result.event) == ("normal", None)


def test_evaluate_drift_on_2d_and_structured_arrays():
    rng = np.random.default_rng(3)
    current, reference = rng.normal(size=(300, 3)), rng.normal(0.2, 1, size=(250, 3))
    result = evaluate_drift(RULE, current, reference, current_id="v2", reference_id="v1")
    assert list(result.statistics) == ["0", "1", "2"]
    assert result.statistics["1"] == pytest.approx(scipy_d(current[:, 1], reference[:, 1]))

    dtype = [("x", "f8"), ("k", "i4"), ("label", "U3")]
    cur = np.array([(1.0, 1, "a"), (2.0, 2, "b"), (3.0, 2, "c")], dtype=dtype)
    ref = np.array([(2.0, 1, "a"), (4.0, 1, "b")], dtype=dtype)
    result = evaluate_drift(RULE, cur, ref, current_id="v2", reference_id="v1")
    assert dict(result.statistics) == {"x": scipy_d(cur["x"], ref["x"]), "k": 2 / 3}


def test_evaluate_drift_drops_nan_per_column():
    current = {"x": [1.0, math.nan, 2.0, 3.0], "y": [1.0, 2.0, 3.0, 4.0]}
    reference = {"x": [math.nan, 2.0, 3.0], "y": [1.0, 2.0, 3.0, 4.0]}
    result = evaluate_drift(RULE, current, reference, current_id="v2", reference_id="v1")
    assert dict(result.sample_sizes) == {"x": (3, 2), "y": (4, 4)}
    assert result.statistics["x"] == pytest.approx(scipy_d([1, 2, 3], [2, 3]))


def test_evaluate_drift_declared_columns():
    rule = DriftRule(asset="fraud_features", levels=LEVELS, columns=("n_items",))
    reference, current = _table(0.0, seed=1), _table(30.0, seed=2)
    result = evaluate_drift(rule, current, reference, current_id="v2", reference_id="v1")
    assert list(result.statistics) == ["n_items"]


@pytest.mark.parametrize(
    ("columns", "current", "reference", "message"),
    [
        (("amount",), {"x": [1.0]}, {"amount": [1.0]}, "'amount' is missing in the current"),
        (("label",), {"label": ["a"]}, {"label": [1.0]}, "'label' is not numeric in the current"),
        ((), {"x": [1.0]}, {"y": [1.0]}, "no numeric column in common"),
        ((), {"x": [math.nan]}, {"x": [1.0]}, "column 'x' of fraud_features v2 is empty"),
        ((), np.zeros((2, 2, 2)), {"x": [1.0]}, "3-dimensional"),
    ],
)
def test_evaluate_drift_errors(columns, current, reference, message):
    rule = DriftRule(asset="fraud_features", levels=LEVELS, columns=columns)
    with pytest.raises(DriftDataError, match=message):
        evaluate_drift(rule, current, reference, current_id="v2", reference_id="v1")


def test_numeric_columns_reads_lists_with_missing_values():
    columns = numeric_columns({"a": [1, None, 2.5], "b": ["1", "2"], "c": [True, False]})
    assert set(columns) == {"a", "c"}
    assert np.isnan(columns["a"][1]) and columns["c"].tolist() == [1, 0]


def test_evaluate_drift_on_pandas_dataframe():
    pd = pytest.importorskip("pandas")  # optional for users; the dev extra installs it
    current = pd.DataFrame(
        {
            "amount": [1.0, 2.0, None, 4.0],
            "count": pd.array([1, None, 3, 3], dtype="Int64"),
            "flag": [True, False, True, True],
            "label": ["a", "b", "c", "d"],
        }
    )
    reference = pd.DataFrame(
        {"amount": [2.0, 3.0], "count": [3, 3], "flag": [False, False], "label": ["a", "b"]}
    )
    result = evaluate_drift(RULE, current, reference, current_id="v2", reference_id="v1")
    assert set(result.statistics) == {"amount", "count", "flag"}
    assert result.statistics["amount"] == pytest.approx(scipy_d([1, 2, 4], [2, 3]))
    assert result.statistics["count"] == pytest.approx(scipy_d([1, 3, 3], [3, 3]))
    assert result.statistics["flag"] == pytest.approx(0.75)
    assert result.sample_sizes["count"] == (3, 2)
