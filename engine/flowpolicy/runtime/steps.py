"""The work of the generated flows' steps, one small function per step.

A generated flow declares its Parameters and its steps, and hands each helper the rule it
enforces; the helpers pin instances, call the decision functions of
:mod:`flowpolicy.runtime.decisions`, record evidence, move the champion alias, promote and
publish. They are plain functions of an :class:`~flowpolicy.runtime.assets.Asset` (or a flow's
``self.prj``) and plain data, so they are tested without running a flow; the flow keeps what
they return as its artifacts.

**Refusals.** An expected refusal (a failed gate, a refused promotion, a missing instance,
nothing to compare, a decision that cannot be made) raises :class:`Refused`, a
``MetaflowException``: Metaflow prints its headline and the one-line reason without a
traceback, and the run exits 1. A run's output then reads (log prefixes left out)::

    <flow QualityGateFlow step end> failed:
    Gate failed:
    gate quality failed for fraud_model v1: f1_score = 0.6985 is below the minimum 0.8

and :func:`refusal_reason` reads that reason back.

**What-if runs.** A run whose threshold Parameters differ from the policy's decides as asked
and records its evidence with both sets of thresholds and ``under_policy: false``, but acts on
nothing: it publishes no event, moves no champion alias and registers no drift report, and
says so. Promotion, ``check`` and ``plan`` never count its evidence.

**Cards.** Each helper that decides ends by drawing the decision on the step's Metaflow card
(:mod:`flowpolicy.runtime.cards`), after its evidence is recorded; a card that cannot be built
never fails the decision.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from metaflow.exception import MetaflowException

from flowpolicy.errors import FlowpolicyError
from flowpolicy.policy.model import ChampionRule, Check, DriftLevel, DriftRule, Gate
from flowpolicy.registry.base import WIRE_KIND, AliasConflict
from flowpolicy.runtime import cards, decisions
from flowpolicy.runtime.assets import Asset
from flowpolicy.runtime.branch import sanitize_branch
from flowpolicy.runtime.decisions import PromotionRules
from flowpolicy.runtime.drift import drift_input, evaluate_drift
from flowpolicy.runtime.lifecycle import promotion_verdict
from flowpolicy.runtime.promote import promote_assets
from flowpolicy.runtime.tags import mirror_champion

#: The Metaflow tag naming the policy a run enforces: ``flowpolicy_policy:<12 hex>``.
POLICY_TAG = "flowpolicy_policy:"

#: Times the champion decision is made again when another run moved the alias in between.
MAX_ATTEMPTS = 32

#: Headlines of refusals, as Metaflow prints them above the reason.
GATE_FAILED = "Gate failed"
PROMOTION_REFUSED = "Promotion refused"
PROMOTION_FAILED = "Promotion failed"
NO_SUCH_INSTANCE = "No such instance"
NOTHING_TO_COMPARE = "Nothing to compare"
CANNOT_DECIDE = "Cannot decide"
HEADLINES = (GATE_FAILED, PROMOTION_REFUSED, PROMOTION_FAILED, NO_SUCH_INSTANCE,
             NOTHING_TO_COMPARE, CANNOT_DECIDE)


class Refused(MetaflowException):
    """An expected refusal: Metaflow prints ``headline:`` and the reason, no traceback."""

    def __init__(self, reason: str, headline: str):
        super().__init__(reason)
        self.headline = headline
        # Metaflow interleaves a task's stdout and stderr line by line as it reads them, and
        # a piped stdout is block-buffered: flushed now, what the step printed comes before
        # the headline and reason instead of between them.
        sys.stdout.flush()


@contextlib.contextmanager
def _refusing(headline: str) -> Iterator[None]:
    """flowpolicy's own errors (a bad spec, a broken metric, drift data that cannot be
    compared) are user errors: they end the run as a refusal, not with a traceback."""
    try:
        yield
    except FlowpolicyError as exc:
        raise Refused(str(exc), headline) from None


_LOG_PREFIX = re.compile(r"^(?:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ )?(?:\[[^\]]*\] )?")


def refusal_reason(output: str) -> str | None:
    """The reason a refused run printed under one of :data:`HEADLINES` (the last one, with
    Metaflow's timestamp and task prefix removed), or None when the run was not refused.

    Metaflow reads a task's stdout and stderr one line of each at a time, so a line the step
    printed may land between the step's ``failed:`` line and the headline; the headline and
    the reason stay together as long as the step prints at most one line before refusing,
    which the helpers keep to (a refusal says everything in its reason)."""
    lines = [_LOG_PREFIX.sub("", line).strip() for line in output.splitlines()]
    for index in range(len(lines) - 2, -1, -1):
        if lines[index].endswith(":") and lines[index][:-1] in HEADLINES:
            return lines[index + 1]
    return None


# --- every flow ------------------------------------------------------------------------


def record_policy(policy_hash: str) -> str:
    """Tag the running flow's run with the policy it enforces (``flowpolicy_policy:<12
    hex>``) and return the hash, which the flow keeps as its ``policy_hash`` artifact."""
    from metaflow import current

    current.run.add_tag(POLICY_TAG + policy_hash[:12])
    return policy_hash


def pin(asset: Any, name: str, asset_type: str, spec: str) -> dict[str, Any]:
    """The instance of ``name`` that ``spec`` names on ``asset``'s branch, peeked (judging is
    not consuming: no lineage), as the flow keeps it: project, branch, asset, asset_type, id
    and annotations. A spec that names no instance refuses the run."""
    peek = asset.peek_model_asset if asset_type == "model" else asset.peek_data_asset
    with _refusing(NO_SUCH_INSTANCE):
        ref = peek(name, instance=spec)
    return {"project": asset.project, "branch": asset.branch, "asset": name,
            "asset_type": asset_type, "id": ref["id"],
            "annotations": ref[f"{asset_type}_properties"]["annotations"]}


def _publish(prj: Any, details: Mapping[str, Any], payload: Mapping[str, Any]) -> str:
    """Publish the event the policy names for this outcome, unless the run was a what-if;
    returns what to tell about an event left unpublished ('' when there is nothing to say)."""
    event = details.get("event")
    if event is None:
        return ""
    if not details["under_policy"]:
        return f"what-if run: event {event} not published"
    prj.publish_event(event, {**payload, "policy_hash": details["policy_hash"]})
    return ""


def _record(asset: Any, kind: str, name: str, instance: str, asset_type: str, rule: str,
            passed: bool, details: dict[str, Any], card: Callable[[Mapping[str, Any]], list]
            ) -> dict[str, Any]:
    """Record a decision's ``details`` as ``kind`` evidence on the instance it judged, then
    draw them on the step's card; they are what the flow keeps as its artifact."""
    asset.record_evidence(name, instance, asset_type=asset_type, kind=kind, rule=rule,
                          passed=passed, policy_hash=details["policy_hash"], details=details)
    cards.show(card, details)
    return details


def _say(*lines: str) -> None:
    for line in lines:
        if line:
            print(line)


def _what_if(kind: str, details: Mapping[str, Any]) -> str:
    """`` (what-if run under ..., the policy's ...: recorded, never accepted)``, or ''."""
    if details["under_policy"]:
        return ""
    used = decisions.describe_thresholds(kind, details["thresholds"])
    policy = decisions.describe_thresholds(kind, details["policy_thresholds"])
    return f" (what-if run under {used}, the policy's {policy}: recorded, never accepted)"


# --- quality gate ------------------------------------------------------------------------


def judge_gate(asset: Any, gate: Gate, checks: Sequence[Check], judged: Mapping[str, Any],
               policy_hash: str) -> dict[str, Any]:
    """Evaluate ``checks`` (the run's thresholds) on the pinned instance, record the verdict
    as gate evidence on it and return it (the flow's ``verdict`` artifact)."""
    with _refusing(CANNOT_DECIDE):
        verdict = decisions.evaluate_gate(gate, judged["annotations"], instance=judged["id"],
                                          checks=checks)
    details = decisions.judged_details(
        verdict.to_dict(), thresholds=decisions.gate_thresholds(checks),
        policy_thresholds=decisions.gate_thresholds(gate.checks), policy_hash=policy_hash)
    return _record(asset, "gate", gate.asset, judged["id"], judged["asset_type"], gate.name,
                   verdict.passed, details, cards.gate_card)


def conclude_gate(prj: Any, gate: Gate, verdict: Mapping[str, Any]) -> None:
    """Publish the gate's event for the outcome; a failed gate then refuses the run (its
    reason then says all, what-if included: nothing else is printed before it)."""
    unpublished = _publish(prj, verdict, {"gate": gate.name, "asset": gate.asset,
                                          "instance": verdict["instance"],
                                          "passed": verdict["passed"]})
    outcome = "passed" if verdict["passed"] else "failed"
    said = (f"gate {gate.name} {outcome} for {gate.asset} {verdict['instance']}"
            f"{_what_if('gate', verdict)}")
    if not verdict["passed"]:
        raise Refused(f"{said}: {verdict['reason']}", GATE_FAILED)
    _say(unpublished, said)


# --- champion / challenger ---------------------------------------------------------------


def elect_champion(asset: Any, rule: ChampionRule, challenger: Mapping[str, Any],
                   min_improvement: float, policy_hash: str) -> dict[str, Any]:
    """Decide whether the pinned challenger replaces the champion and record the decision as
    champion evidence on it; return it (the flow's ``decision`` artifact).

    Under the policy's ``min_improvement`` a win moves the champion alias by compare-and-set:
    when another run moved it between this run's read and write, the decision is made again
    against the new champion, so concurrent evaluations never lose an update. A what-if
    decision moves nothing.
    """
    asset_type = challenger["asset_type"]
    peek = asset.peek_model_asset if asset_type == "model" else asset.peek_data_asset
    thresholds = decisions.champion_thresholds(rule, min_improvement)
    under_policy = decisions.same_thresholds(thresholds, decisions.champion_thresholds(rule))
    for _ in range(MAX_ATTEMPTS):
        champion = asset.get_alias(rule.asset, rule.alias, asset_type=asset_type)
        annotations = None
        if champion is not None and champion != challenger["id"]:
            annotations = peek(rule.asset, instance=champion)[f"{asset_type}_properties"][
                "annotations"]
        with _refusing(CANNOT_DECIDE):
            decision = decisions.decide_champion(
                rule, candidate=challenger["id"], candidate_annotations=challenger["annotations"],
                champion=champion, champion_annotations=annotations,
                min_improvement=min_improvement)
        if not (decision.promote and under_policy):
            break
        try:
            asset.set_alias(rule.asset, rule.alias, instance=challenger["id"],
                            asset_type=asset_type, reason=decision.reason, expected=champion)
            break
        except AliasConflict:
            continue
    else:
        raise Refused(f"the {rule.alias} alias of {rule.asset} moved {MAX_ATTEMPTS} times while "
                      "this run decided; run it again", CANNOT_DECIDE)
    details = decisions.judged_details(
        {**decision.to_dict(), "asset_type": asset_type, "alias": rule.alias},
        thresholds=thresholds,
        policy_thresholds=decisions.champion_thresholds(rule), policy_hash=policy_hash)
    return _record(asset, "champion", rule.asset, challenger["id"], asset_type, rule.alias,
                   decision.candidate_is_champion, details, cards.champion_card)


def conclude_champion(prj: Any, rule: ChampionRule, decision: Mapping[str, Any]) -> str | None:
    """Mirror a new champion onto its training run's Metaflow tags and publish the outcome;
    returns the tagged run (the flow's ``champion_run`` artifact), or None."""

    champion_run = None
    if decision["promote"] and decision["under_policy"]:
        champion_run = mirror_champion(prj.asset, rule.asset, rule.alias,
                                       asset_type=decision["asset_type"])
    unpublished = _publish(prj, decision, {"asset": rule.asset,
                                           "candidate": decision["candidate"],
                                           "champion": decision["champion_after"]})
    _say(unpublished, decision["reason"] + _what_if("champion", decision))
    return champion_run


# --- promotion ---------------------------------------------------------------------------


def promotion_route(rules: PromotionRules, run_branch: str, source: str, target: str
                    ) -> dict[str, str]:
    """Where to promote from and to: ``source`` (default: the branch the run works on, as a
    triggered run on that branch needs) and ``target`` (default: the one declared edge
    leaving the source). With no edge, or several, leaving it and no ``target``, the run is
    refused and says which to pass."""
    source = sanitize_branch(source) if source else run_branch
    if target:
        return {"source": source, "target": sanitize_branch(target)}
    leaving = [edge.target for edge in rules.edges if edge.source == source]
    if len(leaving) == 1:
        return {"source": source, "target": leaving[0]}
    declared = ", ".join(f"{e.source} -> {e.target}" for e in rules.edges)
    if not leaving:
        raise Refused(f"no promotion edge of {rules.asset} leaves {source} (declared: "
                      f"{declared}); pass --source and --target", PROMOTION_REFUSED)
    raise Refused(f"{len(leaving)} promotion edges of {rules.asset} leave {source} (to "
                  f"{', '.join(leaving)}); pass --target", PROMOTION_REFUSED)


def judge_promotion(rules: PromotionRules, promoted: Mapping[str, Any], target: str,
                    policy_hash: str) -> dict[str, Any]:
    """Check the edge from the pinned instance's branch to ``target`` and its requirements
    against the evidence recorded on that instance, record the verdict there and return it
    (the flow's ``verdict`` artifact). A refused move is a decision too, drawn on the card;
    :func:`promote` then refuses the run."""

    source = Asset(project=promoted["project"], branch=promoted["branch"])
    verdict = promotion_verdict(source.registry, rules,
                                source.scope(rules.asset, rules.asset_type), target,
                                promoted["id"])
    details = {**verdict.to_dict(), "project": source.project, "policy_hash": policy_hash}
    return _record(source, "promotion", rules.asset, promoted["id"], rules.asset_type,
                   f"{source.branch}->{target}", verdict.allowed, details, cards.promotion_card)


def promote(rules: PromotionRules, verdict: Mapping[str, Any]) -> dict[str, Any]:
    """Re-register the allowed instance on the target branch (metadata only) and point the
    edge's alias, and only that one, at it; returns ``promote_assets``' result. A refused
    verdict refuses the run, every reason on one line."""

    if not verdict["allowed"]:
        raise Refused(f"promotion of {rules.asset} {verdict['instance']} from "
                      f"{verdict['source']} to {verdict['target']} refused: "
                      + "; ".join(verdict["reasons"]), PROMOTION_REFUSED)

    with _refusing(PROMOTION_FAILED):
        result = promote_assets(verdict["project"], verdict["source"], verdict["target"],
                                kinds=[WIRE_KIND[rules.asset_type]], asset=rules.asset,
                                instance=verdict["instance"], with_aliases=False,
                                alias=verdict["edge"]["alias"])
    if result["errors"] or not result["promoted"]:
        raise Refused(f"promotion of {rules.asset} {verdict['instance']} failed: "
                      f"{result['errors'] or 'nothing was promoted'}", PROMOTION_FAILED)
    print(f"{rules.asset} {verdict['instance']} promoted from {verdict['source']} to "
          f"{verdict['target']}")
    return result


# --- drift -------------------------------------------------------------------------------


def pin_pair(asset: Any, rule: DriftRule, current: str, reference: str) -> dict[str, str]:
    """The two instances of ``rule.asset`` to compare, pinned to ids so every step compares
    the same data (a ``latest-K`` reference counts back from a ``current`` given as ``vN``:
    :func:`~flowpolicy.runtime.decisions.relative_reference`); when the specs do not name two
    different instances there is nothing to compare and the run is refused."""
    def resolve(spec: str) -> str:
        return asset.peek_data_asset(rule.asset, instance=spec)["id"]

    with _refusing(NOTHING_TO_COMPARE):
        reference = decisions.relative_reference(rule, current, reference)
        current_id, reference_id = decisions.drift_pair(resolve, rule.asset, current, reference)
    return {"asset": rule.asset, "current": current_id, "reference": reference_id}


def measure_drift(prj: Any, rule: DriftRule, levels: Sequence[DriftLevel],
                  pair: Mapping[str, str], policy_hash: str) -> dict[str, Any]:
    """Load both pinned instances (in sketch mode their stored drift profiles where they have
    one, :func:`~flowpolicy.runtime.drift.drift_input`), compute each column's statistic and
    the level under ``levels`` (the run's thresholds; a column's own still replace those they
    name), record the report as drift evidence on the current instance and return it (the
    flow's ``drift_report`` artifact). An indeterminate verdict is recorded as not passed."""

    with _refusing(CANNOT_DECIDE):
        result = evaluate_drift(
            rule, drift_input(prj, rule, pair["current"]),
            drift_input(prj, rule, pair["reference"]),
            current_id=pair["current"], reference_id=pair["reference"], levels=levels)
    details = decisions.judged_details(
        result.to_dict(), thresholds=decisions.drift_thresholds(rule, levels),
        policy_thresholds=decisions.drift_thresholds(rule), policy_hash=policy_hash)
    return _record(prj.asset, "drift", rule.asset, pair["current"], "data", rule.statistic,
                   result.passed, details, cards.drift_card)


def conclude_drift(prj: Any, rule: DriftRule, report: Mapping[str, Any]) -> None:
    """Register the report as the rule's report asset (from the flow's ``drift_report``
    artifact), with one annotation per column named by its statistic (``ks_amount``,
    ``psi_hour``), and publish the level's event; a what-if run does neither."""
    if rule.report_asset is not None and report["under_policy"]:
        annotations = {key: report[key] for key in ("level", "max_statistic", "worst_column",
                                                    "statistic", "mode", "policy_hash")}
        annotations.update({"current_instance": report["current"],
                            "reference_instance": report["reference"]})
        annotations.update({f"{column['statistic']}_{name}": column["value"]
                            for name, column in report["columns"].items()})
        prj.register_data(rule.report_asset, "drift_report", annotations=annotations)
    unpublished = _publish(prj, report, {"asset": rule.asset, "level": report["level"],
                                         "current": report["current"],
                                         "reference": report["reference"]})
    _say(unpublished, f"{rule.asset} {report['current']} vs {report['reference']}: "
                      f"{report['level']}{_what_if('drift', report)}")
