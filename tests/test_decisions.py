"""Gate evaluation, the champion decision and promotion legality (flowpolicy.runtime.decisions)."""

from __future__ import annotations

import json
import math
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowpolicy.errors import FlowpolicyError
from flowpolicy.policy.model import (
    AssetDecl,
    ChampionRule,
    Check,
    Gate,
    Policy,
    PromotionEdge,
    frozen_map,
)
from flowpolicy.runtime.decisions import (
    MetricValueError,
    check_promotion,
    decide_champion,
    evaluate_gate,
    metric_value,
    missing_annotations,
    promotion_path,
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


def record(kind, rule, passed, at, instance="v3"):
    return {
        "kind": kind,
        "rule": rule,
        "passed": passed,
        "policy_hash": "abc",
        "details": {},
        "created_at": at,
        "created_by": {"entity_kind": "task", "entity_id": "F/1/s/2"},
        "instance": instance,
    }


GATE_PASS = record("gate", "quality", True, "2026-11-26T10:00:00Z")
GATE_FAIL = record("gate", "quality", False, "2026-11-26T09:00:00Z")
GATE_FAIL_LATER = record("gate", "quality", False, "2026-11-26T11:00:00Z")
CHAMPION = record("champion", "fraud_model", True, "2026-11-26T10:30:00Z")
NOT_CHAMPION = record("champion", "fraud_model", False, "2026-11-26T10:30:00Z")


@pytest.mark.parametrize(
    ("source", "target", "evidence", "allowed", "reasons"),
    [
        ("dev", "staging", [GATE_PASS], True, []),
        ("dev", "staging", [GATE_FAIL, GATE_PASS], True, []),  # the latest record wins
        ("dev", "staging", [GATE_PASS, GATE_FAIL_LATER], False, ["gate quality failed"]),
        ("dev", "staging", [GATE_FAIL], False, ["gate quality failed on fraud_model v3"]),
        ("dev", "staging", [], False, ["gate quality has no recorded result"]),
        ("dev", "staging", [{**GATE_PASS, "instance": "v2"}], False, ["no recorded result"]),
        ("dev", "staging", [{**GATE_PASS, "passed": "yes"}], False, ["gate quality failed"]),
        ("staging", "prod", [GATE_PASS, CHAMPION], True, []),
        ("staging", "prod", [GATE_PASS], False, ["no champion decision is recorded"]),
        ("staging", "prod", [GATE_PASS, NOT_CHAMPION], False, ["is not the champion"]),
        (
            "staging",
            "prod",
            [NOT_CHAMPION, GATE_FAIL],
            False,
            ["gate quality failed", "is not the champion"],
        ),
        ("dev", "prod", [GATE_PASS, CHAMPION], False, ["no promotion edge dev -> prod"]),
        ("prod", "qa", [], False, ["branch 'qa' is not declared", "no promotion edge"]),
    ],
)
def test_check_promotion(source, target, evidence, allowed, reasons):
    verdict = check_promotion(
        POLICY,
        asset="fraud_model",
        source=source,
        target=target,
        instance="v3",
        evidence=evidence,
    )
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


def test_promotion_of_an_asset_not_on_the_edge():
    verdict = check_promotion(
        POLICY,
        asset="fraud_features",
        source="dev",
        target="staging",
        instance="v1",
        evidence=[],
    )
    assert not verdict.allowed and verdict.edge is None
    assert verdict.reasons == (
        "fraud_features may not be promoted along dev -> staging (assets allowed: fraud_model)",
    )


def test_promotion_of_an_undeclared_asset():
    verdict = check_promotion(
        POLICY, asset="other", source="dev", target="staging", instance="v1", evidence=[]
    )
    assert verdict.reasons[0] == "asset 'other' is not declared in the policy"


def test_champion_requirement_checks_the_current_champion_when_known():
    kwargs = dict(asset="fraud_model", source="staging", target="prod", instance="v3")
    evidence = [GATE_PASS, CHAMPION]
    assert check_promotion(POLICY, **kwargs, evidence=evidence, current_champion="v3").allowed
    verdict = check_promotion(POLICY, **kwargs, evidence=evidence, current_champion="v4")
    assert verdict.reasons == (
        "fraud_model v3 was champion at 2026-11-26T10:30:00Z but the champion is now v4",
    )


def test_promotion_path():
    edges = POLICY.promotion
    assert promotion_path(POLICY, "fraud_model", "dev", "prod") == edges
    assert promotion_path(POLICY, "fraud_model", "staging", "prod") == edges[1:]
    assert promotion_path(POLICY, "fraud_model", "dev", "dev") == ()
    assert promotion_path(POLICY, "fraud_model", "prod", "dev") is None
    assert promotion_path(POLICY, "fraud_features", "dev", "staging") is None


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
