"""The decision cards (flowpolicy.runtime.cards) built in-process from real decisions on a
real SQLite registry, rendered by Metaflow's own components; the drift report's bounded
distribution summary. tests/test_flows.py reads the cards of real flow runs back through
``metaflow.cards.get_cards``."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from metaflow import current

from flowpolicy import Asset
from flowpolicy.policy.model import (
    ChampionRule,
    Check,
    DriftColumn,
    DriftLevel,
    DriftRule,
    Gate,
    frozen_map,
)
from flowpolicy.runtime import cards, decisions, drift, steps
from flowpolicy.runtime.decisions import PromotionRules
from flowpolicy.runtime.sketch import QuantileSketch

PROJECT = "fraud_detection"
QUALITY = Gate("quality", "fraud_model", (Check("f1_score", min=0.8),),
               on_pass="promote_model", on_fail="quality_gate_failed")
CHAMPION = ChampionRule("fraud_model", "f1_score", min_improvement=0.02)
RULES = PromotionRules.of("fraud_model", "model",
                          edges=[("dev", "staging", ("quality",), "candidate")],
                          gates={"quality": QUALITY.checks})
LEVELS = (DriftLevel("normal", 0.0), DriftLevel("elevated", 0.05), DriftLevel("high", 0.1))
DRIFT = DriftRule("fraud_features", LEVELS, events=frozen_map({"high": "retrain_required"}))
HASH = "ab" * 32


@pytest.fixture
def assets(registry_url):
    return Asset(project=PROJECT, branch="dev", registry=registry_url)


def model(asset: Asset, f1: float) -> dict:
    ref = asset.register_model_asset("fraud_model", annotations={"f1_score": f1})
    return steps.pin(asset, "fraud_model", "model", ref["id"])


def rendered(components: list) -> list[dict]:
    """The components as Metaflow serialises them into the card."""
    return [component.render() for component in components]


def tables(components: list) -> list[tuple[list, list]]:
    return [(c["columns"], c["data"]) for c in rendered(components) if c["type"] == "table"]


def text(components: list) -> str:
    return "\n".join(c["source"] for c in rendered(components) if c["type"] == "markdown")


def identity(components: list) -> dict[str, str]:
    (rows,) = [data for columns, data in tables(components) if columns == ["recorded", ""]]
    return dict(rows)


# --- every card ------------------------------------------------------------------------------


def test_gate_card_shows_each_check_as_the_verdict_recorded_it(assets):
    judged = model(assets, 0.8125)
    verdict = steps.judge_gate(assets, QUALITY, QUALITY.checks, judged, HASH)
    card = cards.gate_card(verdict)
    assert ("## Quality gate `quality` on `fraud_model` " f"{judged['id']}: passed") in text(card)
    assert "Judged under the policy's thresholds: f1_score >= 0.8." in text(card)
    checks = tables(card)[0]
    assert checks == (["metric", "value", "bound", "verdict"],
                      [["f1_score", "0.8125", "≥ 0.8", "passed"]])
    assert identity(card) == {"policy": f"sha256:{HASH}", "instance": judged["id"],
                              "event": "promote_model"}


def test_what_if_gate_card_says_so_and_shows_the_policys_bound(assets):
    judged = model(assets, 0.5)
    verdict = steps.judge_gate(assets, QUALITY, (Check("f1_score", min=0.4, max=0.6),), judged,
                               HASH)
    card = cards.gate_card(verdict)
    assert ("**What-if run** under 0.4 <= f1_score <= 0.6; the policy's are f1_score >= 0.8"
            in text(card))
    assert tables(card)[0] == (["metric", "value", "bound", "policy's bound", "verdict"],
                               [["f1_score", "0.5", "0.4 ≤ value ≤ 0.6", "≥ 0.8", "passed"]])
    assert identity(card)["event"] == "promote_model (not published: what-if)"


def test_champion_card_shows_both_values_the_margin_and_the_alias(assets):
    first = model(assets, 0.85)
    steps.elect_champion(assets, CHAMPION, first, 0.02, HASH)
    better = model(assets, 0.9)
    decision = steps.elect_champion(assets, CHAMPION, better, 0.02, HASH)
    card = cards.champion_card(decision)
    assert "becomes the champion" in text(card)
    values, margin, aliases = tables(card)[:3]
    assert values[1] == [["candidate", better["id"], "0.9"], ["champion", first["id"], "0.85"]]
    assert margin[1] == [[repr(0.9 - 0.85), "0.02", "replace"]]
    assert aliases[1] == [["champion", first["id"], better["id"], "moved"]]
    assert identity(card)["champion before"] == first["id"]


def test_what_if_champion_card_moves_nothing(assets):
    first = model(assets, 0.85)
    steps.elect_champion(assets, CHAMPION, first, 0.02, HASH)
    close = model(assets, 0.86)
    card = cards.champion_card(steps.elect_champion(assets, CHAMPION, close, 0.0, HASH))
    assert "would become the champion (what-if: nothing moved)" in text(card)
    assert "**What-if run** under min_improvement 0; the policy's are min_improvement 0.02" in (
        text(card))
    assert tables(card)[2][1] == [["champion", first["id"], first["id"], "not moved"]]


def test_promotion_card_shows_the_edge_and_the_evidence_each_requirement_rests_on(assets):
    good = model(assets, 0.9)
    steps.judge_gate(assets, QUALITY, QUALITY.checks, good, HASH)
    (gate_record,) = assets.evidence("fraud_model", good["id"], kind="gate")
    card = cards.promotion_card(steps.judge_promotion(RULES, good, "staging", HASH))
    assert f"`fraud_model` {good['id']} from dev to staging: allowed" in text(card)
    edge, requirements = tables(card)[:2]
    assert edge[1] == [["dev → staging", "quality", "candidate"]]
    assert requirements[1] == [["quality", "holds", (
        f"passed at {gate_record['created_at']} in {gate_record['created_by']['entity_id']} "
        f"(policy {HASH[:12]})")]]

    ungated = model(assets, 0.95)
    refused = steps.judge_promotion(RULES, ungated, "staging", HASH)
    card = cards.promotion_card(refused)
    assert "staging: refused" in text(card)
    assert tables(card)[1][1] == [["quality", "does not hold", "no recorded result that counts"]]
    assert f"- {refused['reasons'][0]}" in text(card)


def drift_report(current: dict, reference: dict, levels=LEVELS, rule=DRIFT) -> dict:
    result = drift.evaluate_drift(rule, current, reference, current_id="v2",
                                  reference_id="v1", levels=levels)
    return decisions.judged_details(
        result.to_dict(), thresholds=decisions.drift_thresholds(rule, levels),
        policy_thresholds=decisions.drift_thresholds(rule), policy_hash=HASH)


def charts(components: list) -> list[dict]:
    return [c["spec"] for c in rendered(components) if c["type"] == "vegaChart"]


def test_drift_card_draws_each_column_against_its_thresholds_and_the_worst_ecdfs():
    rng = np.random.default_rng(3)
    names = ("a", "b", "c", "d")
    reference = {name: rng.normal(size=500) for name in names}
    current = {name: rng.normal(shift, size=400)
               for name, shift in zip(names, (0.0, 1.0, 0.3, 0.1), strict=True)}
    rule = DriftRule("fraud_features", LEVELS,
                     column_settings=frozen_map({"c": DriftColumn("c", levels={"high": 0.5})}))
    report = drift_report(current, reference, rule=rule)
    card = cards.drift_card(report)
    assert f"## Drift of `fraud_features` v2 against v1: {report['level']}" in text(card)
    (statistics_table, *_rest) = tables(card)
    columns = report["columns"]
    ranked = report["ranking"]
    # the most severe level first, the largest statistic among equals
    severity = ["none", "normal", "elevated", "high"]
    keys = [(severity.index(columns[name]["level"]), columns[name]["value"]) for name in ranked]
    assert keys == sorted(keys, reverse=True) and ranked[0] == report["worst_column"]
    assert columns["c"]["level"] == "elevated"  # above the rule's high, below its own
    assert statistics_table[0] == ["column", "statistic", "value", "level", "values in v2",
                                   "values in v1"]
    assert [row[0] for row in statistics_table[1]] == ranked
    for name, statistic, value, level, n_current, n_reference in statistics_table[1]:
        assert (statistic, float(value), level) == (
            "ks", columns[name]["value"], columns[name]["level"])
        assert (int(n_current), int(n_reference)) == (400, 500)

    bars, *ecdfs = charts(card)
    drawn = {v["column"]: (v["value"], v["level"]) for v in bars["layer"][0]["data"]["values"]}
    assert drawn == {name: (c["value"], c["level"]) for name, c in columns.items()}
    ticks = {(v["column"], v["level"]): v["threshold"] for v in bars["layer"][2]["data"]["values"]}
    assert ticks[("c", "high")] == 0.5 and ticks[("a", "high")] == 0.1  # c's own threshold
    assert ticks[("c", "elevated")] == 0.05 and ("a", "normal") not in ticks  # 0 is the axis
    pictured = report["distributions"]["columns"]
    assert list(pictured) == ranked[:drift.PICTURED_COLUMNS] and len(ecdfs) == len(pictured)
    for spec, (name, sides) in zip(ecdfs, pictured.items(), strict=True):
        assert spec["encoding"]["x"]["title"] == name and sides["kind"] == "quantiles"
        for side, instance in (("current", "v2"), ("reference", "v1")):
            drawn = [v["value"] for v in spec["data"]["values"]
                     if v["instance"] == f"{side} {instance}"]
            assert drawn == sides[side] == drift.quantile_summary(
                (current if side == "current" else reference)[name])


def test_drift_card_of_a_categorical_column_draws_the_shares_of_its_values():
    rule = DriftRule("fraud_features", LEVELS, column_settings=frozen_map(
        {"country": DriftColumn("country", statistic="psi")}))
    current = {"country": ["fr"] * 6 + ["de"] * 3 + ["it"], "x": [0.0] * 10}
    reference = {"country": ["fr"] * 2 + ["de"] * 8, "x": [0.0] * 10}
    report = drift_report(current, reference, rule=rule)
    summary = report["distributions"]["columns"]["country"]
    assert summary == {"kind": "categories", "categories": ["de", "fr", "it"],
                       "current": [0.3, 0.6, 0.1], "reference": [0.8, 0.2, 0.0]}
    card = cards.drift_card(report)
    (shares,) = [spec for spec in charts(card) if spec.get("mark") == "bar"]
    assert {(v["instance"], v["value"]): v["share"] for v in shares["data"]["values"]} == {
        ("current v2", "de"): 0.3, ("current v2", "fr"): 0.6, ("current v2", "it"): 0.1,
        ("reference v1", "de"): 0.8, ("reference v1", "fr"): 0.2, ("reference v1", "it"): 0.0}
    assert "### `country`: psi = " in text(card)


def test_sketch_mode_drift_card_shows_the_bounds():
    rule = DriftRule("fraud_features", LEVELS, mode="sketch")
    rng = np.random.default_rng(8)
    report = drift_report({"a": rng.normal(size=1000)}, {"a": rng.normal(0.5, size=1000)},
                          rule=rule)
    card = cards.drift_card(report)
    assert "Sketch mode (current v2 from its data, reference v1 from its data)" in text(card)
    (row,) = tables(card)[0][1]
    assert row[3] == f"± {report['columns']['a']['bound']!r}"


def test_what_if_drift_card_says_so():
    report = drift_report({"a": [0.0, 1.0]}, {"a": [0.0, 2.0]},
                          levels=(DriftLevel("normal", 0.0), DriftLevel("elevated", 0.05),
                                  DriftLevel("high", 0.9)))
    card = cards.drift_card(report)
    assert "**What-if run** under normal >= 0, elevated >= 0.05, high >= 0.9" in text(card)
    assert identity(card) == {"policy": f"sha256:{HASH}", "current": "v2", "reference": "v1"}


# --- a card failure never fails the decision ----------------------------------------------


class Collector:
    """Stands in for Metaflow's ``current.card`` of a step with ``@card(id="decision")``."""

    def __init__(self, broken: bool = False):
        self.broken = broken
        self.components: list = []

    def __getitem__(self, card_id: str):
        assert card_id == cards.CARD_ID
        if self.broken:
            raise RuntimeError("the card store is gone")
        return self.components


@pytest.fixture
def card_collector():
    collector = Collector()
    current._update_env({"card": collector})
    yield collector
    current._update_env({"card": None})


def test_show_does_nothing_outside_a_step_with_a_card():
    def build(decision):
        raise AssertionError("no card to build")

    assert current.get("card") is None
    cards.show(build, {})


def test_show_appends_the_built_components(card_collector):
    cards.show(lambda decision: ["a", decision["b"]], {"b": "c"})
    assert card_collector.components == ["a", "c"]


def test_show_swallows_a_builder_that_raises_and_leaves_a_note(card_collector, capsys):
    def build(decision):
        raise KeyError("thresholds")

    cards.show(build, {})
    assert "the decision card could not be built (KeyError: 'thresholds')" in (
        capsys.readouterr().err)
    assert "could not be built" in text(card_collector.components)


def test_show_swallows_a_card_store_that_raises(card_collector, capsys):
    card_collector.broken = True
    cards.show(lambda decision: [], {})
    assert "the decision card could not be filled (RuntimeError" in capsys.readouterr().err


# --- the distributions the drift card draws -------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=0,
                max_size=300))
def test_quantile_summary_is_the_empirical_quantile_of_the_finite_values(values):
    summary = drift.quantile_summary(values)
    finite = sorted(float(v) for v in values if math.isfinite(v))
    if not finite:
        assert summary == []
        return
    assert len(summary) == drift.QUANTILE_POINTS
    for index, quantile in enumerate(summary):
        share = Fraction(index, drift.QUANTILE_POINTS - 1)
        # the smallest sample value whose ECDF reaches the share: it has ceil(share * n) values
        # at or below it
        assert quantile == finite[max(1, math.ceil(share * len(finite))) - 1]


def test_quantile_summary_keeps_the_steps_of_a_binary_column():
    summary = drift.quantile_summary([0] * 90 + [1] * 10)
    assert set(summary) == {0.0, 1.0}
    assert summary.index(1.0) == 46  # the first share above 0.9 is 46/50


@pytest.mark.parametrize("size", [100, 3000, 200_000])
def test_sketch_quantiles_are_within_the_sketchs_rank_error(size):
    values = np.random.default_rng(size).lognormal(size=size)
    sketch = QuantileSketch(capacity=256)
    sketch.update(values)
    summary = drift._sketch_quantiles(sketch)
    exact = drift.quantile_summary(values)
    assert (sketch.error == 0) is (size < 2 * 256)  # past that, it keeps a part of them
    if sketch.error == 0:
        assert summary == exact  # everything kept: the sketch is the sample
    ordered = np.sort(values)
    for index, quantile in enumerate(summary):
        wanted = max(1, math.ceil(Fraction(index, drift.QUANTILE_POINTS - 1) * size))
        below = np.searchsorted(ordered, quantile, side="left")
        at_or_below = np.searchsorted(ordered, quantile, side="right")
        assert below - sketch.error <= wanted <= at_or_below + sketch.error


def test_drift_result_pictures_the_most_drifted_columns_with_a_bounded_summary():
    rng = np.random.default_rng(5)
    small = drift.evaluate_drift(DRIFT, {"a": rng.normal(size=50), "b": rng.normal(2, size=50)},
                                 {"a": rng.normal(size=50), "b": rng.normal(size=50)},
                                 current_id="v2", reference_id="v1")
    size = 200_000
    names = [f"c{k}" for k in range(6)]
    large = drift.evaluate_drift(
        DRIFT, {name: rng.normal(k / 10, size=size) for k, name in enumerate(names)},
        {name: rng.normal(size=size) for name in names}, current_id="v2", reference_id="v1")
    assert list(large.distributions) == ["c5", "c4", "c3"]
    assert list(small.distributions) == ["b", "a"]
    summary = json.loads(json.dumps(large.to_dict()["distributions"]))
    assert summary["points"] == drift.QUANTILE_POINTS
    # what the report keeps does not grow with the data
    assert {len(sides[side]) for sides in summary["columns"].values()
            for side in ("current", "reference")} == {drift.QUANTILE_POINTS}
