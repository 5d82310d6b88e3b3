"""The Metaflow card of each generated flow's deciding step: the decision, drawn from the
very dictionary that the flow keeps as its artifact and records as evidence.

Each generated flow puts ``@card(type="flowpolicy", id="decision")`` on the step that decides
(the card template in ``metaflow_extensions/flowpolicy``: Metaflow's blank card, rendered
once), and the step helper (:mod:`flowpolicy.runtime.steps`) calls :func:`show` once the
decision and its evidence are recorded. The card is made of Metaflow's own components
(``Markdown``, ``Table``, ``VegaChart``: no other dependency); the card page inlines Metaflow's
script bundle, Vega included, so viewing it loads nothing from the network. Read one with
``python flow.py card view STEP``, ``card get``, the Metaflow UI, or
``metaflow.cards.get_cards(task, id="decision")``.

Every card names the policy hash and the instances the decision judged, and says whether
it was judged under the policy's thresholds or was a what-if run.

**A card failure never fails the decision**: :func:`show` runs after the evidence is
recorded and swallows whatever building the card raises, printing one line and leaving a
note on the card instead; Metaflow itself renders cards after the step succeeded and only
logs a rendering failure.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flowpolicy.policy.model import INDETERMINATE, NO_LEVEL
from flowpolicy.runtime import decisions

#: The ``id`` of the card on every generated flow's deciding step.
CARD_ID = "decision"


def show(build: Callable[[Mapping[str, Any]], list], decision: Mapping[str, Any]) -> None:
    """Append ``build(decision)``'s components to the running step's decision card.

    Does nothing outside a step with ``@card(id="decision")``. Never raises: a card that
    cannot be built leaves a note on the card and one line on stderr, and the decision,
    already recorded, stands."""
    from metaflow import current

    collector = current.get("card")
    if collector is None:
        return
    # The card is a picture of the decision, never a reason to fail it: nothing escapes.
    failure = None
    try:
        components = build(decision)
    except Exception as exc:
        failure = f"{type(exc).__name__}: {exc}"
        print(f"the decision card could not be built ({failure}); the decision and its "
              "evidence are recorded", file=sys.stderr)
    try:
        collector[CARD_ID].extend(components if failure is None else _failure_note(failure))
    except Exception as exc:
        print(f"the decision card could not be filled ({type(exc).__name__}: {exc})",
              file=sys.stderr)


# --- one builder per decision --------------------------------------------------------------


def gate_card(verdict: Mapping[str, Any]) -> list:
    """Quality gate: every check as metric, value, bound (and the policy's in a what-if run),
    verdict."""
    from metaflow.cards import Markdown, Table

    outcome = "passed" if verdict["passed"] else "failed"
    what_if = not verdict["under_policy"]
    headers = ["metric", "value", "bound", *(["policy's bound"] if what_if else []), "verdict"]
    rows = []
    policy_bounds = {t["metric"]: t for t in verdict["policy_thresholds"]}
    for check in verdict["checks"]:
        row = [check["metric"], _number(check["value"]), _bound(check)]
        if what_if:
            row.append(_bound(policy_bounds.get(check["metric"], {})))
        rows.append([*row, "passed" if check["passed"] else "failed"])
    return [
        Markdown(f"## Quality gate `{verdict['gate']}` on `{verdict['asset']}` "
                 f"{verdict['instance']}: {outcome}"),
        _judged_under("gate", verdict),
        Table(rows, headers=headers),
        Markdown(f"{verdict['reason']}."),
        _identity(verdict, [("instance", verdict["instance"])], _event(verdict)),
    ]


def champion_card(decision: Mapping[str, Any]) -> list:
    """Champion/challenger: both values, the margin against ``min_improvement``, and where
    the champion alias pointed before and after."""
    from metaflow.cards import Markdown, Table

    metric, alias = decision["metric"], decision["alias"]
    moved = decision["promote"] and decision["under_policy"]
    before = decision["champion"]
    after = decision["champion_after"] if moved else before
    if moved:
        outcome = f"{decision['candidate']} becomes the champion"
    elif decision["promote"]:
        outcome = f"{decision['candidate']} would become the champion (what-if: nothing moved)"
    elif before is None:
        outcome = "no champion is chosen"
    else:
        outcome = f"{before} stays the champion"
    values = Table([
        ["candidate", decision["candidate"], _number(decision["candidate_value"])],
        ["champion", _instance(before), _number(decision["champion_value"])],
    ], headers=["role", "instance", f"{metric} ({decision['direction']})"])
    margin = Table([[
        _number(decision["margin"]), _number(decision["min_improvement"]),
        "replace" if decision["promote"] else "keep",
    ]], headers=["margin", "min_improvement", "decision"])
    aliases = Table([[alias, _instance(before), _instance(after),
                      "moved" if after != before else "not moved"]],
                    headers=["alias", "before", "after", ""])
    return [
        Markdown(f"## Champion of `{decision['asset']}`: {outcome}"),
        _judged_under("champion", decision),
        values,
        margin,
        aliases,
        Markdown(f"{decision['reason']}."),
        _identity(decision, [("candidate", decision["candidate"]),
                             ("champion before", _instance(before))], _event(decision)),
    ]


def promotion_card(verdict: Mapping[str, Any]) -> list:
    """Promotion: the edge, each requirement with the evidence it rested on, and every reason
    a refused move was refused."""
    from metaflow.cards import Markdown, Table

    outcome = "allowed" if verdict["allowed"] else "refused"
    edge = verdict["edge"]
    parts = [Markdown(f"## Promotion of `{verdict['asset']}` {verdict['instance']} from "
                      f"{verdict['source']} to {verdict['target']}: {outcome}"),
             Markdown("Judged under the policy's thresholds (a promotion takes none as "
                      "parameters): evidence counts only when it was recorded under them.")]
    if edge is None:
        parts.append(Markdown(f"No edge {verdict['source']} → {verdict['target']} is declared."))
    else:
        parts.append(Table([[f"{edge['from']} → {edge['to']}", ", ".join(edge["require"]) or
                             "nothing", edge["alias"]]],
                           headers=["edge", "requires", "alias set on the target"]))
        rows = [[requirement, "holds" if requirement in verdict["held"] else "does not hold",
                 _evidence(verdict["rests_on"].get(requirement))]
                for requirement in edge["require"]]
        if rows:
            parts.append(Table(rows, headers=["requirement", "", "the evidence it rests on"]))
    if verdict["reasons"]:
        parts.append(Markdown("Refused because:\n\n" + "\n".join(
            f"- {reason}" for reason in verdict["reasons"])))
    parts.append(_identity(verdict, [("instance", f"{verdict['instance']} on "
                                                  f"{verdict['source']}")]))
    return parts


def drift_card(report: Mapping[str, Any]) -> list:
    """Drift: each column's statistic as a bar, coloured by its level, against that column's
    thresholds (and its bound in sketch mode); the table of the same; both instances'
    distributions of the most drifted columns (the report's bounded summary)."""
    from metaflow.cards import Markdown, Table, VegaChart

    columns, ranked = report["columns"], report["ranking"]
    bounded = report["mode"] == "sketch"
    rows = [[name, column["statistic"], _number(column["value"]),
             *([f"± {_number(column['bound'])}"] if bounded else []), column["level"],
             *(str(n) for n in column["sizes"])]
            for name, column in ((name, columns[name]) for name in ranked)]
    parts = [
        Markdown(f"## Drift of `{report['asset']}` {report['current']} against "
                 f"{report['reference']}: {report['level']}"),
        _judged_under("drift", report),
    ]
    if report["mode"] == "sketch":
        read = ", ".join(f"{side} {report[side]} from its {what}"
                         for side, what in report["inputs"].items())
        parts.append(Markdown(f"Sketch mode ({read}): each value is within its bound of the "
                              "exact one; a level the bound leaves open is indeterminate."))
    parts += [
        VegaChart(_statistics_chart(report, ranked)),
        Markdown("Each column's statistic, coloured by its level, against its thresholds (the "
                 "black ticks: the rule's, or the column's own)"
                 + ("; the black line is its bound." if bounded else ".")),
        Table(rows, headers=["column", "statistic", "value", *(["bound"] if bounded else []),
                             "level", f"values in {report['current']}",
                             f"values in {report['reference']}"]),
    ]
    for name, summary in report["distributions"]["columns"].items():
        column = columns[name]
        parts.append(Markdown(f"### `{name}`: {column['statistic']} = "
                              f"{_number(column['value'])}, {column['level']}"))
        if summary["kind"] == "quantiles":
            parts.append(VegaChart(_ecdf_chart(report, name, summary)))
        else:
            parts.append(VegaChart(_shares_chart(report, name, summary)))
    parts.append(_identity(report, [("current", report["current"]),
                                    ("reference", report["reference"])], _event(report)))
    return parts


# --- parts every card shares ---------------------------------------------------------------


def _judged_under(kind: str, decision: Mapping[str, Any]) -> Any:
    from metaflow.cards import Markdown

    used = decisions.describe_thresholds(kind, decision["thresholds"])
    if decision["under_policy"]:
        return Markdown(f"Judged under the policy's thresholds: {used}.")
    policy = decisions.describe_thresholds(kind, decision["policy_thresholds"])
    return Markdown(f"**What-if run** under {used}; the policy's are {policy}. Recorded, never "
                    "accepted: nothing was acted on.")


def _identity(decision: Mapping[str, Any], instances: Sequence[tuple[str, str]],
              event: Sequence[str] = ()) -> Any:
    from metaflow.cards import Table

    rows = [["policy", f"sha256:{decision['policy_hash']}"],
            *([label, value] for label, value in instances)]
    if event:
        rows.append(list(event))
    return Table(rows, headers=["recorded", ""])


def _event(decision: Mapping[str, Any]) -> tuple[str, str] | tuple[()]:
    event = decision.get("event")
    if event is None:
        return ()
    return ("event", event if decision["under_policy"] else f"{event} (not published: what-if)")


def _failure_note(why: str) -> list:
    from metaflow.cards import Markdown

    return [Markdown("The card of this decision could not be built; the decision and its "
                     f"evidence are recorded as artifacts and in the registry.\n\n`{why}`")]


def _evidence(record: Mapping[str, Any] | None) -> str:
    if record is None:
        return "no recorded result that counts"
    return (f"{'passed' if record['passed'] else 'failed'} at {record['created_at']} in "
            f"{record['created_by']} (policy {record['policy_hash'][:12]})")


def _number(value: Any) -> str:
    """A recorded number as written (``repr``: the value itself, not a rounding of it);
    ``-`` when there is none."""
    if value is None:
        return "-"
    if isinstance(value, str):  # NaN and infinities are recorded as "nan", "inf", "-inf"
        return value
    return repr(float(value))


def _instance(instance: str | None) -> str:
    return "(none)" if instance is None else instance


def _bound(check: Mapping[str, Any]) -> str:
    return decisions.bounds_text(None, check.get("min"), check.get("max"), show=_number,
                                 signs=("≤", "≥"))


# --- charts (Vega-Lite, drawn by the vega bundled in Metaflow's card page) -----------------

#: Level colours from calm to alarming (ColorBrewer RdYlGn, reversed); levels take evenly
#: spaced ones in the order of their thresholds, whatever they are called.
_LEVEL_COLOURS = ("#1a9850", "#66bd63", "#a6d96a", "#d9ef8b", "#fee08b", "#fdae61", "#f46d43",
                  "#d73027")


def _level_scale(report: Mapping[str, Any]) -> dict[str, Any]:
    levels = report["thresholds"]["levels"]
    ordered = [NO_LEVEL, *sorted(levels, key=lambda name: levels[name])]
    last = len(_LEVEL_COLOURS) - 1
    colours = [_LEVEL_COLOURS[round(i * last / max(1, len(ordered) - 1))]
               for i in range(len(ordered))]
    return {"domain": [*ordered, INDETERMINATE], "range": [*colours, "#969696"]}


def _statistics_chart(report: Mapping[str, Any], ranked: Sequence[str]) -> dict[str, Any]:
    columns, thresholds = report["columns"], report["thresholds"]
    bars = [{"column": name, "statistic": columns[name]["statistic"],
             "value": columns[name]["value"], "level": columns[name]["level"],
             "low": max(0.0, columns[name]["value"] - columns[name]["bound"]),
             "high": columns[name]["value"] + columns[name]["bound"]} for name in ranked]
    # Each column against its own thresholds: the rule's, where the column has none.
    ticks = [{"column": name, "level": level, "threshold": threshold}
             for name in ranked
             for level, threshold in {**thresholds["levels"], **thresholds["columns"].get(
                 name, {}).get("levels", {})}.items() if threshold > 0]
    y = {"field": "column", "type": "nominal", "sort": list(ranked), "title": None}
    x = {"type": "quantitative", "title": "statistic"}
    return {
        "height": {"step": 24},
        "layer": [
            {"data": {"values": bars}, "mark": "bar",
             "encoding": {"y": y, "x": {**x, "field": "value"},
                          "color": {"field": "level", "type": "nominal",
                                    "scale": _level_scale(report)},
                          "tooltip": [{"field": "column"}, {"field": "statistic"},
                                      {"field": "value"}, {"field": "level"}]}},
            {"data": {"values": bars}, "mark": {"type": "rule", "color": "black"},
             "encoding": {"y": y, "x": {**x, "field": "low"}, "x2": {"field": "high"}}},
            {"data": {"values": ticks},
             "mark": {"type": "tick", "color": "black", "thickness": 2},
             "encoding": {"y": y, "x": {**x, "field": "threshold"},
                          "tooltip": [{"field": "level"}, {"field": "threshold"}]}},
        ],
    }


def _sides(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(side, f"{side} {report[side]}") for side in ("current", "reference")]


def _ecdf_chart(report: Mapping[str, Any], column: str, summary: Mapping[str, Any]
                ) -> dict[str, Any]:
    steps = report["distributions"]["points"] - 1
    values = [{"instance": label, "value": quantile, "share": index / steps}
              for side, label in _sides(report)
              for index, quantile in enumerate(summary[side])]
    return {
        "height": 160,
        "data": {"values": values},
        "mark": {"type": "line", "interpolate": "step-after"},
        "encoding": {
            "x": {"field": "value", "type": "quantitative", "title": column,
                  "scale": {"zero": False}},
            "y": {"field": "share", "type": "quantitative", "title": "share of values ≤ x",
                  "scale": {"domain": [0, 1]}},
            "color": {"field": "instance", "type": "nominal"},
        },
    }


def _shares_chart(report: Mapping[str, Any], column: str, summary: Mapping[str, Any]
                  ) -> dict[str, Any]:
    values = [{"instance": label, "value": category, "share": share}
              for side, label in _sides(report)
              for category, share in zip(summary["categories"], summary[side], strict=True)]
    return {
        "height": {"step": 12},
        "data": {"values": values},
        "mark": "bar",
        "encoding": {
            "y": {"field": "value", "type": "nominal", "title": column,
                  "sort": list(summary["categories"])},
            "yOffset": {"field": "instance"},
            "x": {"field": "share", "type": "quantitative", "title": "share of values"},
            "color": {"field": "instance", "type": "nominal"},
        },
    }
