"""The generated flows' step helpers (flowpolicy.runtime.steps), called in-process on a real
SQLite registry file. The flows themselves run for real in test_flows.py; here each helper is
driven into the cases a flow run rarely reaches (a lost compare-and-set race, an alias that
never stops moving) and the no-bypass law is checked over many thresholds."""

from __future__ import annotations

import itertools
import tempfile
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
from flowpolicy.registry.base import AliasConflict, EntityRef, EvidenceRecord, Scope
from flowpolicy.runtime import decisions, steps
from flowpolicy.runtime.decisions import PromotionRules

PROJECT = "fraud_detection"
QUALITY = Gate("quality", "fraud_model", (Check("f1_score", min=0.8),),
               on_pass="promote_model", on_fail="quality_gate_failed")
CHAMPION = ChampionRule("fraud_model", "f1_score", min_improvement=0.02,
                        on_promote="model_promoted")
RULES = PromotionRules.of(
    "fraud_model", "model",
    edges=[("dev", "staging", ("quality",), "candidate"),
           ("staging", "prod", ("quality", "champion"), "production")],
    gates={"quality": QUALITY.checks}, champion=CHAMPION)
HASH = "f" * 64


@pytest.fixture
def assets(registry_url):
    """A fresh branch of a fresh registry file."""
    return Asset(project=PROJECT, branch="dev", registry=registry_url)


def model(asset: Asset, f1: float | str) -> dict:
    ref = asset.register_model_asset("fraud_model", annotations={"f1_score": f1})
    return steps.pin(asset, "fraud_model", "model", ref["id"])


# --- refusals ------------------------------------------------------------------------------

#: What Metaflow 2.19 printed for a failed gate run (tests/test_flows.py checks it live).
TASK = "2026-12-01 21:23:49.366 [1796160227334839/end/3 (pid 31690)] "
REFUSED_RUN = (
    f"{TASK}<flow QualityGateFlow step end> failed:\n"
    f"{TASK}Gate failed:\n"
    f"{TASK}gate quality failed for fraud_model v1: f1_score = 0.6985 is below the minimum 0.8\n"
    f"{TASK}\n"
    f"{TASK}Task failed.\n"
    "2026-12-01 21:23:49.467 Workflow failed.\n"
    "    Step failure:\n"
    "    Step end (task-id 3) failed.\n"
)
CRASHED_RUN = (
    f"{TASK}Internal error\n"
    f"{TASK}Traceback (most recent call last):\n"
    f"{TASK}ValueError: boom\n"
)


def test_refusal_reason_reads_the_line_under_a_headline():
    assert steps.refusal_reason(REFUSED_RUN) == (
        "gate quality failed for fraud_model v1: f1_score = 0.6985 is below the minimum 0.8")
    assert steps.refusal_reason(CRASHED_RUN) is None
    assert steps.refusal_reason("") is None


def test_pin_refuses_a_spec_that_names_nothing(assets):
    model(assets, 0.9)
    with pytest.raises(steps.Refused) as caught:
        steps.pin(assets, "fraud_model", "model", "v9")
    assert caught.value.headline == steps.NO_SUCH_INSTANCE
    assert "v9 of model asset 'fraud_model'" in caught.value.message
    assert "Traceback" not in str(caught.value)


@pytest.mark.parametrize(("registered", "message"), [
    (1, "nothing to compare: latest-1 of data asset 'fraud_features'"),
    (0, "nothing to compare: unknown data asset 'fraud_features'"),
])
def test_pin_pair_refuses_when_there_is_nothing_to_compare(assets, registered, message):
    assets.register_model_asset("fraud_model")  # the registry file exists either way
    for _ in range(registered):
        assets.register_data_asset("fraud_features")
    rule = DriftRule("fraud_features", (DriftLevel("high", 0.1),))
    with pytest.raises(steps.Refused) as caught:
        steps.pin_pair(assets, rule, "latest", "latest-1")
    assert caught.value.headline == steps.NOTHING_TO_COMPARE
    assert caught.value.message.startswith(message)


# --- gate ----------------------------------------------------------------------------------


def test_judge_gate_records_the_thresholds_it_used(assets):
    judged = model(assets, 0.9)
    verdict = steps.judge_gate(assets, QUALITY, QUALITY.checks, judged, HASH)
    assert verdict["passed"] and verdict["under_policy"] is True
    what_if = steps.judge_gate(assets, QUALITY, (Check("f1_score", min=0.95),), judged, HASH)
    assert not what_if["passed"] and what_if["under_policy"] is False
    records = assets.registry.evidence(assets.scope("fraud_model"), judged["id"])
    assert [r.details["thresholds"][0]["min"] for r in records] == [0.8, 0.95]
    assert all(r.details["policy_thresholds"][0]["min"] == 0.8 for r in records)
    assert [r.details["under_policy"] for r in records] == [True, False]


def test_conclude_gate_publishes_only_under_the_policy_and_refuses_a_failure(assets, capsys):
    passing = model(assets, 0.9)
    steps.conclude_gate(assets, QUALITY, steps.judge_gate(
        assets, QUALITY, (Check("f1_score", min=0.5),), passing, HASH))
    assert rule_events(assets) == []
    assert "what-if run under f1_score >= 0.5, the policy's f1_score >= 0.8" in (
        capsys.readouterr().out)
    steps.conclude_gate(assets, QUALITY, steps.judge_gate(
        assets, QUALITY, QUALITY.checks, passing, HASH))
    [event] = rule_events(assets)
    assert event["name"] == "promote_model" and event["payload"]["policy_hash"] == HASH

    failing = model(assets, 0.5)
    with pytest.raises(steps.Refused) as caught:
        steps.conclude_gate(assets, QUALITY, steps.judge_gate(
            assets, QUALITY, QUALITY.checks, failing, HASH))
    assert caught.value.headline == steps.GATE_FAILED
    assert caught.value.message == (
        f"gate quality failed for fraud_model {failing['id']}: f1_score = 0.5 is below the "
        "minimum 0.8")
    assert [e["name"] for e in rule_events(assets)] == ["promote_model", "quality_gate_failed"]


def rule_events(assets) -> list[dict]:
    """The events rules publish; the registry's own lifecycle events (a registration, an
    alias move: dotted names) left out."""
    return [e for e in assets.list_events() if "." not in e["name"]]


def test_a_metric_that_is_not_a_number_refuses_instead_of_crashing(assets):
    broken = model(assets, "n/a")
    with pytest.raises(steps.Refused) as caught:
        steps.judge_gate(assets, QUALITY, QUALITY.checks, broken, HASH)
    assert caught.value.headline == steps.CANNOT_DECIDE
    assert "annotation 'f1_score' is not a number: 'n/a'" in caught.value.message


# --- champion ------------------------------------------------------------------------------


class RacingAsset(Asset):
    """An Asset whose first ``set_alias`` finds that another run has just moved the alias
    (the race the compare-and-set exists for), played on the real registry."""

    def __init__(self, *args, rival: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.rival = rival
        self.calls = 0

    def set_alias(self, name, alias, instance="latest", **kwargs):
        self.calls += 1
        if self.calls == 1:
            Asset(project=self.project, branch=self.branch, registry=self.registry,
                  entity_ref={"entity_kind": "user", "entity_id": "rival"}).set_alias(
                name, alias, self.rival, reason="another evaluation won first")
        return super().set_alias(name, alias, instance, **kwargs)


@pytest.mark.parametrize(("challenger_f1", "rival_f1", "champion_after"), [
    (0.90, 0.95, "rival"),       # decided again against the rival: not better by enough
    (0.99, 0.95, "challenger"),  # decided again: still the better one, moved from the rival
])
def test_elect_champion_decides_again_when_another_run_moved_the_alias(
        registry_url, challenger_f1, rival_f1, champion_after):
    plain = Asset(project=PROJECT, branch="dev", registry=registry_url)
    first = model(plain, 0.85)
    plain.set_alias("fraud_model", "champion", first["id"])
    rival = model(plain, rival_f1)
    challenger = model(plain, challenger_f1)
    racing = RacingAsset(project=PROJECT, branch="dev", registry=registry_url, rival=rival["id"])

    decision = steps.elect_champion(racing, CHAMPION, challenger, 0.02, HASH)
    expected = {"rival": rival["id"], "challenger": challenger["id"]}[champion_after]
    assert plain.get_alias("fraud_model", "champion") == expected
    assert decision["champion"] == rival["id"]  # the decision that counted saw the rival
    history = plain.alias_history("fraud_model", "champion")
    for before, after in itertools.pairwise(history):
        assert after["from"] == before["to"]  # no move was based on a stale read
    [record] = plain.evidence("fraud_model", challenger["id"], kind="champion")
    assert record["passed"] is (champion_after == "challenger")


def test_elect_champion_what_if_decides_but_moves_nothing(assets):
    champion = model(assets, 0.85)
    assets.set_alias("fraud_model", "champion", champion["id"])
    close = model(assets, 0.86)
    decision = steps.elect_champion(assets, CHAMPION, close, 0.0, HASH)
    assert decision["promote"] is True and decision["under_policy"] is False
    assert assets.get_alias("fraud_model", "champion") == champion["id"]
    [record] = assets.registry.evidence(assets.scope("fraud_model"), close["id"], "champion")
    assert record.details["thresholds"]["min_improvement"] == 0.0
    assert record.details["policy_thresholds"]["min_improvement"] == 0.02


def test_elect_champion_gives_up_on_an_alias_that_never_stops_moving(assets, monkeypatch):
    candidate = model(assets, 0.9)

    def always_moved(*args, **kwargs):
        raise AliasConflict("moved", current="v9", expected=None)

    monkeypatch.setattr(assets, "set_alias", always_moved)
    with pytest.raises(steps.Refused) as caught:
        steps.elect_champion(assets, CHAMPION, candidate, 0.02, HASH)
    assert caught.value.headline == steps.CANNOT_DECIDE
    assert f"moved {steps.MAX_ATTEMPTS} times" in caught.value.message
    assert assets.evidence("fraud_model", candidate["id"]) == []


# --- promotion -----------------------------------------------------------------------------


def test_judge_promotion_refuses_what_if_evidence_and_allows_the_policys(assets):
    judged = model(assets, 0.5)
    steps.judge_gate(assets, QUALITY, (Check("f1_score", min=0.1),), judged, HASH)
    refused = steps.judge_promotion(RULES, judged, "staging", HASH)
    assert not refused["allowed"] and refused["held"] == []
    assert [r["passed"] for r in assets.evidence("fraud_model", judged["id"],
                                                  kind="promotion")] == [False]
    with pytest.raises(steps.Refused) as caught:
        steps.promote(RULES, refused)
    assert caught.value.headline == steps.PROMOTION_REFUSED
    assert caught.value.message.startswith(
        f"promotion of fraud_model {judged['id']} from dev to staging refused: gate quality "
        "has no result")
    assert "in a what-if run" in caught.value.message

    good = model(assets, 0.9)
    steps.judge_gate(assets, QUALITY, QUALITY.checks, good, HASH)
    verdict = steps.judge_promotion(RULES, good, "staging", HASH)
    assert verdict["allowed"] and verdict["project"] == PROJECT
    assert verdict["held"] == ["quality"] and verdict["rests_on"]["quality"]["passed"] is True
    assert [r["passed"] for r in assets.evidence("fraud_model", good["id"], kind="promotion")
            ] == [True]


# --- the law: no override can produce evidence that counts ---------------------------------


def _threshold(policy: float) -> st.SearchStrategy[float]:
    """Overrides a run could pass: the policy's own value, values a bit off it, anything."""
    return st.one_of(st.just(policy), st.floats(policy - 0.01, policy + 0.01),
                     st.floats(allow_nan=True, allow_infinity=True))


@pytest.fixture(scope="module")
def law_registry():
    with tempfile.TemporaryDirectory() as folder:
        yield f"sqlite:///{Path(folder) / 'registry.db'}"


@settings(max_examples=60, deadline=None)
@given(min_f1=_threshold(0.8), f1=st.floats(0.0, 1.0))
def test_no_gate_override_produces_evidence_a_promotion_accepts(law_registry, min_f1, f1):
    assets = Asset(project=PROJECT, branch=f"b{uuid.uuid4().hex[:12]}", registry=law_registry)
    judged = model(assets, f1)
    steps.judge_gate(assets, QUALITY, (Check("f1_score", min=min_f1),), judged, HASH)
    rules = PromotionRules.of("fraud_model", "model", edges=[(assets.branch, "staging",
                                                              ("quality",), "candidate")],
                              gates={"quality": QUALITY.checks})
    verdict = decisions.check_promotion(
        rules, source=assets.branch, target="staging", instance=judged["id"],
        evidence=assets.registry.evidence(assets.scope("fraud_model"), judged["id"]))
    assert verdict.allowed is (min_f1 == 0.8 and f1 >= 0.8)


@settings(max_examples=40, deadline=None)
@given(min_improvement=_threshold(0.02))
def test_no_min_improvement_override_produces_a_champion_a_promotion_accepts(
        law_registry, min_improvement):
    assets = Asset(project=PROJECT, branch=f"b{uuid.uuid4().hex[:12]}", registry=law_registry)
    first = model(assets, 0.5)
    steps.judge_gate(assets, QUALITY, QUALITY.checks, first, HASH)
    try:
        steps.elect_champion(assets, CHAMPION, first, min_improvement, HASH)
    except steps.Refused:
        assert not min_improvement >= 0  # negative or NaN: refused outright, nothing recorded
        assert assets.evidence("fraud_model", first["id"], kind="champion") == []
        return
    rules = PromotionRules.of("fraud_model", "model", edges=[(assets.branch, "prod",
                                                              ("champion",), "production")],
                              champion=CHAMPION)
    verdict = decisions.check_promotion(
        rules, source=assets.branch, target="prod", instance=first["id"],
        evidence=assets.registry.evidence(assets.scope("fraud_model"), first["id"]),
        current_champion=assets.get_alias("fraud_model", "champion"))
    # the first candidate always wins; only under the policy's min_improvement does it count
    assert verdict.allowed is (min_improvement == 0.02)
    moved = assets.get_alias("fraud_model", "champion")
    assert moved == (first["id"] if min_improvement == 0.02 else None)


#: A drift rule with a column of its own: amount reaches high only from 0.9.
DRIFT = DriftRule("fraud_features", (DriftLevel("elevated", 0.05), DriftLevel("high", 0.1)),
                  column_settings=frozen_map({"amount": DriftColumn(
                      "amount", levels=frozen_map({"high": 0.9}))}))


def drift_record(details: dict) -> EvidenceRecord:
    return EvidenceRecord(Scope(PROJECT, "dev", "data", "fraud_features"), 2, "drift", "ks",
                          True, HASH, details, "2026-01-01T00:00:00Z", EntityRef("task", "x"))


@settings(max_examples=60, deadline=None)
@given(levels=st.tuples(_threshold(0.05), _threshold(0.1)))
def test_no_drift_level_override_produces_a_report_check_counts(levels):
    used = (DriftLevel("elevated", levels[0]), DriftLevel("high", levels[1]))
    details = decisions.judged_details(
        {"level": "high"}, thresholds=decisions.drift_thresholds(DRIFT, used),
        policy_thresholds=decisions.drift_thresholds(DRIFT), policy_hash=HASH)
    record = drift_record(details)
    counts = decisions.threshold_mismatch(record, decisions.drift_thresholds(DRIFT)) is None
    assert counts is (levels == (0.05, 0.1)) is details["under_policy"]
    # a run's levels never replace a column's own: amount's high stays the policy's
    assert details["thresholds"]["columns"] == details["policy_thresholds"]["columns"]


LEVELS_TEXT = "elevated >= 0.05, high >= 0.1"


@pytest.mark.parametrize(("changed", "described"), [
    (replace(DRIFT, column_settings=frozen_map({"amount": DriftColumn(
        "amount", levels=frozen_map({"high": 0.5}))})), "column amount: ks, high >= 0.5"),
    (replace(DRIFT, column_settings=frozen_map({"amount": DriftColumn(
        "amount", "psi", frozen_map({"high": 0.9}))})), "column amount: psi, high >= 0.9"),
    (replace(DRIFT, mode="sketch"), "sketch mode; column amount: ks, high >= 0.9"),
    (replace(DRIFT, column_settings=frozen_map()), ""),
])
def test_a_changed_drift_column_setting_or_mode_makes_earlier_evidence_not_count(
        changed, described):
    """Evidence of a run under the policy stops counting once the policy changes a column's
    levels or statistic, or the mode: each changes the verdict."""
    record = drift_record(decisions.judged_details(
        {"level": "high"}, thresholds=decisions.drift_thresholds(DRIFT),
        policy_thresholds=decisions.drift_thresholds(DRIFT), policy_hash=HASH))
    assert record.details["under_policy"] is True
    assert decisions.threshold_mismatch(record, decisions.drift_thresholds(DRIFT)) is None
    policy = "; ".join(filter(None, (LEVELS_TEXT, described)))
    assert decisions.threshold_mismatch(record, decisions.drift_thresholds(changed)) == (
        f"it was judged under {LEVELS_TEXT}; column amount: ks, high >= 0.9, the policy's are "
        f"{policy}")


def test_drift_evidence_that_named_its_levels_alone_counts_while_the_rule_has_no_more():
    """Drift evidence written before rules had a mode and column settings recorded level
    name -> threshold: judged in exact mode with no column settings, so it counts for a rule
    that has none, and not for one that has."""
    record = drift_record({"level": "high", "thresholds": {"elevated": 0.05, "high": 0.1}})
    plain = replace(DRIFT, column_settings=frozen_map())
    assert decisions.threshold_mismatch(record, decisions.drift_thresholds(plain)) is None
    assert decisions.threshold_mismatch(record, decisions.drift_thresholds(DRIFT)) == (
        "it was judged under elevated >= 0.05, high >= 0.1, the policy's are elevated >= 0.05, "
        "high >= 0.1; column amount: ks, high >= 0.9")
    sketch = replace(plain, mode="sketch")
    assert decisions.threshold_mismatch(record, decisions.drift_thresholds(sketch)) is not None
