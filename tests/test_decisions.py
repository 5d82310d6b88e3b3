"""Gate evaluation, the champion decision and promotion legality (flowpolicy.runtime.decisions)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowpolicy.errors import FlowpolicyError, RegistryError
from flowpolicy.policy.model import (
    AssetDecl,
    ChampionRule,
    Check,
    Gate,
    Policy,
    PromotionEdge,
    frozen_map,
)
from flowpolicy.registry.base import EntityRef, EvidenceRecord, Scope
from flowpolicy.runtime.decisions import (
    MetricValueError,
    NothingToCompare,
    PromotionRules,
    champion_thresholds,
    check_promotion,
    decide_champion,
    drift_pair,
    evaluate_gate,
    gate_thresholds,
    gates_on_path,
    latest_evidence,
    metric_value,
    missing_annotations,
    promotion_rules,
    same_thresholds,
)

QUALITY = Gate(
    name="quality",
    asset="fraud_model",
    checks=(Check("f1_score", min=0.8), Check("latency_ms", max=50)),
    on_pass="promote_model",
    on_fail="quality_gate_failed",
)
F1_CHAMPION = ChampionRule(
    asset="fraud_model",
    metric="f1_score",
    direction="maximize",
    min_improvement=0.02,
    on_promote="model_promoted",
    on_keep="champion_kept",
)


def dumps(document: dict) -> str:
    return json.dumps(document, allow_nan=False)


# --- metric values ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("0.8", 0.8), (" 1e-3 ", 0.001), ("50", 50.0), (7, 7.0), (0.25, 0.25), ("-inf", -math.inf)],
)
def test_metric_value_parses_numbers(raw, expected):
    assert metric_value({"m": raw}, "m", asset="a", instance="v1") == expected


@pytest.mark.parametrize("raw", ["n/a", "", "0.8.1", True, None, [0.8]])
def test_metric_value_rejects_non_numbers(raw):
    with pytest.raises(MetricValueError) as caught:
        metric_value({"f1_score": raw}, "f1_score", asset="fraud_model", instance="v3")
    error = caught.value
    assert isinstance(error, FlowpolicyError)
    assert (error.asset, error.instance, error.key) == ("fraud_model", "v3", "f1_score")
    assert "fraud_model v3" in str(error) and "'f1_score'" in str(error)


def test_metric_value_missing_is_none():
    assert metric_value({}, "f1_score", asset="fraud_model", instance="v3") is None


# --- gates -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotations", "verdicts", "reason"),
    [
        ({"f1_score": "0.9", "latency_ms": "10"}, [True, True], "within"),
        ({"f1_score": "0.8", "latency_ms": "50"}, [True, True], "within"),  # bounds inclusive
        ({"f1_score": "0.7999", "latency_ms": "50"}, [False, True], "below the minimum 0.8"),
        ({"f1_score": "0.85", "latency_ms": "50.01"}, [True, False], "above the maximum 50"),
        ({"latency_ms": "1"}, [False, True], "f1_score is missing"),
        ({"f1_score": "nan", "latency_ms": "1"}, [False, True], "f1_score is NaN"),
        ({}, [False, False], "latency_ms is missing"),
    ],
)
def test_evaluate_gate(annotations, verdicts, reason):
    verdict = evaluate_gate(QUALITY, annotations, instance="v3")
    assert [c.passed for c in verdict.checks] == verdicts
    assert verdict.passed is all(verdicts)
    assert verdict.event == ("promote_model" if all(verdicts) else "quality_gate_failed")
    assert (verdict.gate, verdict.asset, verdict.instance) == ("quality", "fraud_model", "v3")
    assert reason in " | ".join(c.reason for c in verdict.checks)
    document = verdict.to_dict()
    dumps(document)
    assert document["checks"][0]["min"] == 0.8 and document["checks"][1]["max"] == 50
    assert document["reason"] == verdict.reason


def test_gate_failure_reason_lists_every_failed_check():
    verdict = evaluate_gate(QUALITY, {"f1_score": "0.5", "latency_ms": "99"}, instance="v3")
    assert (
        verdict.reason
        == "f1_score = 0.5 is below the minimum 0.8; latency_ms = 99 is above the maximum 50"
    )
    assert [c.metric for c in verdict.failures] == ["f1_score", "latency_ms"]


def test_gate_non_numeric_metric_is_an_error():
    with pytest.raises(MetricValueError, match="fraud_model v3: annotation 'latency_ms'"):
        evaluate_gate(QUALITY, {"f1_score": "0.9", "latency_ms": "fast"}, instance="v3")


def test_gate_checks_override_the_policy_thresholds():
    stricter = (Check("f1_score", min=0.95),)
    verdict = evaluate_gate(QUALITY, {"f1_score": "0.9"}, instance="v3", checks=stricter)
    assert not verdict.passed and [c.min for c in verdict.checks] == [0.95]


def test_gate_nan_value_is_json_safe():
    verdict = evaluate_gate(QUALITY, {"f1_score": "nan", "latency_ms": "inf"}, instance="v1")
    document = verdict.to_dict()
    dumps(document)
    assert [c["value"] for c in document["checks"]] == ["nan", "inf"]


bound = st.one_of(st.none(), st.floats(-1e6, 1e6))


@settings(max_examples=200, deadline=None)
@given(value=st.floats(-1e6, 1e6), low=bound, high=bound)
def test_gate_check_law(value, low, high):
    gate = Gate(name="g", asset="m", checks=(Check("x", min=low, max=high),))
    # The value travels as obproject stores it: a string annotation.
    verdict = evaluate_gate(gate, {"x": repr(value)}, instance="v1")
    expected = (low is None or low <= value) and (high is None or value <= high)
    assert verdict.passed is expected
    assert verdict.checks[0].value == value


# --- champion ----------------------------------------------------------------------------


def decide(candidate_f1, champion_f1, *, champion="v1", rule=F1_CHAMPION, **kwargs):
    cand = {} if candidate_f1 is None else {"f1_score": candidate_f1}
    champ = None if champion_f1 is None else {"f1_score": champion_f1}
    if champion is not None and champ is None:
        champ = {}
    return decide_champion(
        rule,
        candidate="v2",
        candidate_annotations=cand,
        champion=champion,
        champion_annotations=champ,
        **kwargs,
    )


@pytest.mark.parametrize(
    ("candidate_f1", "champion_f1", "champion", "promote", "reason"),
    [
        ("0.85", None, None, True, "first champion"),
        ("0.90", "0.85", "v1", True, "beats champion v1"),
        ("0.82", "0.80", "v1", True, "beats"),  # exactly min_improvement: 0.82 - 0.80 != 0.02
        ("0.8199", "0.80", "v1", False, "does not beat"),
        ("0.85", "0.85", "v1", False, "does not beat"),
        ("0.70", "0.85", "v1", False, "does not beat"),
        (None, "0.85", "v1", False, "has no f1_score annotation; champion v1 stays"),
        (None, None, None, False, "no champion is chosen"),
        ("nan", "0.85", "v1", False, "NaN; champion v1 stays"),
        ("0.70", None, "v1", True, "champion v1 has no f1_score to compare with"),
        ("0.70", "nan", "v1", True, "has a NaN f1_score"),
        ("inf", "0.9", "v1", True, "beats"),
        ("inf", "inf", "v1", False, "does not beat"),
    ],
)
def test_decide_champion(candidate_f1, champion_f1, champion, promote, reason):
    decision = decide(candidate_f1, champion_f1, champion=champion)
    assert decision.promote is promote
    assert reason in decision.reason
    assert decision.champion_after == ("v2" if promote else champion)
    assert decision.candidate_is_champion is promote
    assert decision.event == ("model_promoted" if promote else "champion_kept")
    document = decision.to_dict()
    dumps(document)
    assert (document["candidate"], document["champion"]) == ("v2", champion)
    assert document["min_improvement"] == 0.02


def test_champion_decision_records_values_and_margin():
    decision = decide("0.90", "0.85")
    assert (decision.candidate_value, decision.champion_value) == (0.90, 0.85)
    assert decision.margin == pytest.approx(0.05)
    assert (decision.metric, decision.direction, decision.asset) == (
        "f1_score",
        "maximize",
        "fraud_model",
    )


def test_same_instance_as_champion_is_kept():
    decision = decide_champion(
        F1_CHAMPION,
        candidate="v1",
        candidate_annotations={"f1_score": "0.9"},
        champion="v1",
        champion_annotations=None,
    )
    assert not decision.promote and decision.candidate_is_champion
    assert decision.champion_after == "v1" and "already the champion" in decision.reason


@pytest.mark.parametrize(
    ("candidate", "champion", "promote"),
    [("40", "50", True), ("48", "50", True), ("49", "50", False), ("60", "50", False)],
)
def test_minimize(candidate, champion, promote):
    rule = ChampionRule(asset="m", metric="latency_ms", direction="minimize", min_improvement=2)
    decision = decide_champion(
        rule,
        candidate="v2",
        candidate_annotations={"latency_ms": candidate},
        champion="v1",
        champion_annotations={"latency_ms": champion},
    )
    assert decision.promote is promote
    assert decision.margin == float(champion) - float(candidate)


def test_min_improvement_override_and_validation():
    assert decide("0.86", "0.85", min_improvement=0.0).promote
    assert not decide("0.86", "0.85").promote
    for bad in (-0.1, math.nan):
        with pytest.raises(FlowpolicyError, match="min_improvement"):
            decide("0.86", "0.85", min_improvement=bad)


def test_champion_annotations_are_required_to_compare():
    with pytest.raises(FlowpolicyError, match="annotations of champion v1"):
        decide_champion(
            F1_CHAMPION,
            candidate="v2",
            candidate_annotations={"f1_score": "0.9"},
            champion="v1",
            champion_annotations=None,
        )


def test_champion_non_numeric_metric_is_an_error():
    with pytest.raises(MetricValueError, match="fraud_model v1: annotation 'f1_score'"):
        decide("0.9", "high")


decimals = st.integers(min_value=0, max_value=10**6)


@settings(max_examples=300, deadline=None)
@given(
    champion_units=decimals,
    improvement_units=st.integers(min_value=1, max_value=10**5),
    places=st.integers(min_value=1, max_value=6),
    direction=st.sampled_from(["maximize", "minimize"]),
)
def test_champion_boundary_law(champion_units, improvement_units, places, direction):
    """A candidate exactly min_improvement better is promoted, one unit in the last decimal
    place less is not, whatever the floating-point rounding of the subtraction."""
    scale = Decimal(10) ** -places
    champion = champion_units * scale
    improvement = improvement_units * scale
    sign = 1 if direction == "maximize" else -1
    rule = ChampionRule(asset="m", metric="x", direction=direction)

    def promoted(candidate: Decimal) -> bool:
        return decide_champion(
            rule,
            candidate="v2",
            candidate_annotations={"x": str(candidate)},
            champion="v1",
            champion_annotations={"x": str(champion)},
            min_improvement=float(improvement),
        ).promote

    assert promoted(champion + sign * improvement)
    assert not promoted(champion + sign * (improvement - scale))


# --- promotion ---------------------------------------------------------------------------

POLICY = Policy(
    project="fraud_detection",
    assets=frozen_map(
        {
            "fraud_features": AssetDecl("fraud_features", "data"),
            "fraud_model": AssetDecl("fraud_model", "model"),
        }
    ),
    branches=("dev", "staging", "prod"),
    gates=frozen_map({"quality": QUALITY}),
    champions=frozen_map({"fraud_model": F1_CHAMPION}),
    promotion=(
        PromotionEdge("dev", "staging", ("fraud_model",), ("quality",)),
        PromotionEdge("staging", "prod", ("fraud_model",), ("quality", "champion"), "production"),
    ),
)
RULES = promotion_rules(POLICY, "fraud_model")
SCOPE = Scope("fraud_detection", "dev", "model", "fraud_model")
UNDER_POLICY = {
    "gate": gate_thresholds(QUALITY.checks),
    "champion": champion_thresholds(F1_CHAMPION),
}


def record(kind, rule, passed, at, instance="v3", thresholds=None, asset="fraud_model"):
    """An evidence record as the registry returns it, judged under the policy's thresholds
    unless ``thresholds`` says otherwise."""
    used = UNDER_POLICY[kind] if thresholds is None else thresholds
    return EvidenceRecord(
        scope=replace(SCOPE, name=asset), version=int(instance[1:]), kind=kind, rule=rule,
        passed=passed, policy_hash="abc",
        details={"thresholds": used, "policy_thresholds": UNDER_POLICY[kind],
                 "under_policy": same_thresholds(used, UNDER_POLICY[kind])},
        created_at=at, created_by=EntityRef("task", "F/1/s/2"))


GATE_PASS = record("gate", "quality", True, "2026-11-26T10:00:00Z")
GATE_FAIL = record("gate", "quality", False, "2026-11-26T09:00:00Z")
GATE_FAIL_LATER = record("gate", "quality", False, "2026-11-26T11:00:00Z")
WHAT_IF_PASS = record("gate", "quality", True, "2026-11-26T12:00:00Z",
                      thresholds=gate_thresholds((Check("f1_score", min=0.1),
                                                  Check("latency_ms", max=50))))
CHAMPION = record("champion", "champion", True, "2026-11-26T10:30:00Z")
NOT_CHAMPION = record("champion", "champion", False, "2026-11-26T10:30:00Z")
WHAT_IF_CHAMPION = record("champion", "champion", True, "2026-11-26T10:40:00Z",
                          thresholds=champion_thresholds(F1_CHAMPION, 0.0))


@pytest.mark.parametrize(
    ("source", "target", "evidence", "allowed", "reasons"),
    [
        ("dev", "staging", [GATE_PASS], True, []),
        ("dev", "staging", [GATE_FAIL, GATE_PASS], True, []),  # the latest record wins
        ("dev", "staging", [GATE_PASS, GATE_FAIL_LATER], False, ["gate quality failed"]),
        ("dev", "staging", [GATE_FAIL], False, ["gate quality failed on fraud_model v3"]),
        ("dev", "staging", [], False, ["gate quality has no recorded result"]),
        ("dev", "staging", [replace(GATE_PASS, version=2)], False, ["no recorded result"]),
        ("dev", "staging", [record("gate", "quality", True, "x", asset="other")], False,
         ["no recorded result"]),
        # a what-if pass never counts, and never hides the result that does
        ("dev", "staging", [WHAT_IF_PASS], False,
         ["gate quality has no result on fraud_model v3 judged under the policy's thresholds: "
          "the latest at 2026-11-26T12:00:00Z it was judged under f1_score >= 0.1, "
          "latency_ms <= 50 in a what-if run, the policy's are f1_score >= 0.8, "
          "latency_ms <= 50"]),
        ("dev", "staging", [GATE_FAIL, WHAT_IF_PASS], False, ["gate quality failed"]),
        ("dev", "staging", [GATE_PASS, WHAT_IF_PASS], True, []),
        ("staging", "prod", [GATE_PASS, CHAMPION], True, []),
        ("staging", "prod", [GATE_PASS], False, ["no champion decision is recorded"]),
        ("staging", "prod", [GATE_PASS, NOT_CHAMPION], False, ["is not the champion"]),
        ("staging", "prod", [GATE_PASS, WHAT_IF_CHAMPION], False,
         ["judged under min_improvement 0 in a what-if run, the policy's are "
          "min_improvement 0.02"]),
        ("staging", "prod", [GATE_PASS, NOT_CHAMPION, WHAT_IF_CHAMPION], False,
         ["is not the champion"]),
        (
            "staging",
            "prod",
            [NOT_CHAMPION, GATE_FAIL],
            False,
            ["gate quality failed", "is not the champion"],
        ),
        ("dev", "prod", [GATE_PASS, CHAMPION], False,
         ["no promotion edge dev -> prod is declared for fraud_model (its edges: "
          "dev -> staging, staging -> prod)"]),
    ],
)
def test_check_promotion(source, target, evidence, allowed, reasons):
    verdict = check_promotion(RULES, source=source, target=target, instance="v3",
                              evidence=evidence)
    assert verdict.allowed is allowed
    assert len(verdict.reasons) == len(reasons)
    for expected, actual in zip(reasons, verdict.reasons, strict=True):
        assert expected in actual
    document = verdict.to_dict()
    dumps(document)
    assert document["allowed"] is allowed
    if allowed:
        assert verdict.edge is not None and len(verdict.satisfied) == len(verdict.edge.require)
        assert document["edge"]["from"] == source and document["edge"]["to"] == target
        assert set(document["rests_on"]) == set(verdict.edge.require)


@pytest.mark.parametrize(("min_f1", "counts"), [(0.8, True), (0.1, False)])
def test_records_written_before_evidence_named_its_thresholds(min_f1, counts):
    """Gate and champion records of earlier flows carry the values the run used in the
    decision itself: those are its thresholds (a lowered one still does not count)."""
    checks = (Check("f1_score", min=min_f1), Check("latency_ms", max=50))
    gate = replace(GATE_PASS, details=evaluate_gate(
        QUALITY, {"f1_score": "0.9", "latency_ms": "1"}, instance="v3", checks=checks).to_dict())
    champion = replace(CHAMPION, details=decide_champion(
        F1_CHAMPION, candidate="v3", candidate_annotations={"f1_score": "0.9"}, champion=None,
        champion_annotations=None, min_improvement=min_f1 / 40).to_dict())
    verdict = check_promotion(RULES, source="staging", target="prod", instance="v3",
                              evidence=[gate, champion])
    assert verdict.allowed is counts
    if not counts:
        assert len(verdict.reasons) == 2 and "f1_score >= 0.1" in verdict.reasons[0]


def test_evidence_without_any_thresholds_does_not_count():
    bare = replace(GATE_PASS, details={"passed": True})
    verdict = check_promotion(RULES, source="dev", target="staging", instance="v3",
                              evidence=[bare])
    assert not verdict.allowed and "records no thresholds" in verdict.reasons[0]


def test_latest_evidence_takes_the_later_record_on_a_timestamp_tie():
    first, second = (replace(GATE_PASS, passed=p) for p in (True, False))
    assert latest_evidence([first, second]) is second
    assert latest_evidence([second, first]) is first
    assert latest_evidence([GATE_FAIL_LATER, GATE_PASS]) is GATE_FAIL_LATER
    assert latest_evidence([]) is None


def test_check_rejudges_a_gate_on_the_instance_annotations_when_asked():
    """What check's lineage does for a gate whose result was judged under other thresholds:
    judge the immutable annotations again with the policy's checks."""
    kwargs = dict(source="dev", target="staging", instance="v3", evidence=[WHAT_IF_PASS])
    good = check_promotion(RULES, **kwargs, annotations={"f1_score": "0.9", "latency_ms": "9"})
    assert good.allowed and "judged again under the policy's thresholds" in good.satisfied[0]
    weak = check_promotion(RULES, **kwargs, annotations={"f1_score": "0.5", "latency_ms": "9"})
    assert not weak.allowed
    assert "f1_score = 0.5 is below the minimum 0.8" in weak.reasons[0]
    assert "in a what-if run" in weak.reasons[0]
    # with no gate result recorded at all there is nothing to judge again
    none = check_promotion(RULES, **{**kwargs, "evidence": []},
                           annotations={"f1_score": "0.9", "latency_ms": "9"})
    assert none.reasons == ("gate quality has no recorded result on fraud_model v3",)


def test_promotion_rules_keep_only_what_decides_the_asset():
    assert RULES.edges == POLICY.promotion
    assert RULES.gates["quality"].checks == QUALITY.checks
    assert RULES.gates["quality"].on_pass is None and RULES.champion.on_promote is None
    features = promotion_rules(POLICY, "fraud_features")
    assert features.edges == () and not features.gates and features.champion is None
    built = PromotionRules.of(
        "fraud_model", "model",
        edges=[(e.source, e.target, e.require, e.alias) for e in POLICY.promotion],
        gates={"quality": QUALITY.checks}, champion=RULES.champion)
    assert built == RULES


def test_promotion_of_an_asset_without_edges():
    verdict = check_promotion(promotion_rules(POLICY, "fraud_features"), source="dev",
                              target="staging", instance="v1", evidence=[])
    assert not verdict.allowed and verdict.edge is None
    assert verdict.reasons == (
        "no promotion edge dev -> staging is declared for fraud_features (its edges: none)",
    )


def test_required_gate_judging_another_asset_never_holds():
    policy = replace(POLICY, promotion=(
        PromotionEdge("dev", "staging", ("fraud_model", "fraud_features"), ("quality",)),))
    verdict = check_promotion(promotion_rules(policy, "fraud_features"), source="dev",
                              target="staging", instance="v1", evidence=[])
    assert verdict.reasons == (
        "required gate 'quality' is not a gate that judges fraud_features",)


def test_champion_requirement_checks_the_current_champion_when_known():
    kwargs = dict(source="staging", target="prod", instance="v3")
    evidence = [GATE_PASS, CHAMPION]
    assert check_promotion(RULES, **kwargs, evidence=evidence, current_champion="v3").allowed
    verdict = check_promotion(RULES, **kwargs, evidence=evidence, current_champion="v4")
    assert verdict.reasons == (
        "fraud_model v3 was champion at 2026-11-26T10:30:00Z but the champion is now v4",
    )


def test_gates_on_path_collects_every_way_into_the_source():
    policy = replace(POLICY, gates=frozen_map({
        "quality": QUALITY, "latency": Gate("latency", "fraud_model", (Check("p99", max=9),)),
        "fairness": Gate("fairness", "fraud_model", (Check("gap", max=0.1),))}),
        promotion=(
            PromotionEdge("dev", "staging", ("fraud_model",), ("quality",)),
            PromotionEdge("qa", "staging", ("fraud_model",), ("latency",)),
            PromotionEdge("staging", "prod", ("fraud_model",), ("fairness", "champion")),
        ))
    prod = policy.promotion[2]
    assert [g.name for g in gates_on_path(policy, "fraud_model", prod)] == [
        "fairness", "quality", "latency"]
    assert [g.name for g in gates_on_path(policy, "fraud_model", policy.promotion[0])] == [
        "quality"]


@pytest.mark.parametrize(("ids", "current", "reference", "message"), [
    ({"latest": "v1"}, "latest", "latest-1", "nothing to compare: no latest-1"),
    ({"latest": "v2", "latest-1": "v2"}, "latest", "latest-1",
     "nothing to compare: current 'latest' and reference 'latest-1' are both fraud_features v2"),
])
def test_drift_pair_with_nothing_to_compare(ids, current, reference, message):
    def resolve(spec):
        if spec not in ids:
            raise RegistryError(f"no {spec}")
        return ids[spec]

    with pytest.raises(NothingToCompare) as caught:
        drift_pair(resolve, "fraud_features", current, reference)
    assert str(caught.value) == message and caught.value.exit_code == 1
    assert drift_pair(lambda spec: {"a": "v3", "b": "v2"}[spec], "x", "a", "b") == ("v3", "v2")


@pytest.mark.parametrize(("used", "policy", "same"), [
    ([{"metric": "m", "min": 0.8, "max": None}], [{"metric": "m", "min": 0.8, "max": None}], True),
    ([{"metric": "m", "min": 50, "max": None}], [{"metric": "m", "min": 50.0, "max": None}], True),
    ([{"metric": "m", "min": 0.8000000000000001, "max": None}],
     [{"metric": "m", "min": 0.8, "max": None}], False),
    ([{"metric": "m", "min": "nan", "max": None}], [{"metric": "m", "min": 0.8, "max": None}],
     False),
    ([{"metric": "m", "min": float("nan"), "max": None}],
     [{"metric": "m", "min": float("nan"), "max": None}], False),
    ({"normal": 0.0, "high": 0.1}, {"high": 0.1, "normal": 0.0}, True),
    ({"normal": 0.0, "high": 0.1}, {"normal": 0.0}, False),
    ({"metric": "m", "direction": "maximize", "min_improvement": True},
     {"metric": "m", "direction": "maximize", "min_improvement": 1.0}, False),
])
def test_same_thresholds(used, policy, same):
    assert same_thresholds(used, policy) is same


@pytest.mark.parametrize(
    ("required", "annotations", "missing"),
    [
        ((), {}, ()),
        (("f1_score", "training_run_id"), {"f1_score": "0.9", "training_run_id": "7"}, ()),
        (("f1_score", "training_run_id"), {"f1_score": "0.9"}, ("training_run_id",)),
        (("source", "n_rows"), {"source": " ", "n_rows": 0}, ("source",)),
        (("source", "n_rows"), {}, ("source", "n_rows")),
    ],
)
def test_missing_annotations_lists_the_unmet_contract_in_declaration_order(
    required, annotations, missing
):
    asset = AssetDecl("fraud_model", "model", required_annotations=required)
    assert missing_annotations(asset, annotations) == missing
