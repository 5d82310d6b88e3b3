"""The report page: one self-contained HTML document (inline CSS and SVG, no script).

Every piece of registry text (names, annotations, reasons, payloads) goes through
:func:`html.escape`, and a Content-Security-Policy that allows no script and no network
request backs that up: whatever an annotation holds, the page only shows it.

Size is bounded whatever the registry holds: each table shows the newest
:data:`TABLE_ROWS` rows (saying how many there are and which command lists them all), each
chart series at most ``svg.MAX_POINTS`` points, and long texts are cut.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from html import escape

from flowpolicy.registry.base import EntityRef, EventRecord, EvidenceRecord, InstanceRecord
from flowpolicy.report import svg
from flowpolicy.report.history import BranchHistory, RegistryHistory, ScopeHistory
from flowpolicy.report.records import (
    ChampionRow,
    Decisions,
    DriftRow,
    GateRow,
    PromotionRow,
    decisions,
    finite,
)

#: Rows per table at most (the newest ones).
TABLE_ROWS = 25
#: Columns of a drift record drawn as bars at most (the largest D).
DRIFT_COLUMNS = 20
#: Characters of one annotation value, reason or payload shown at most.
TEXT_LIMIT = 160
#: Annotations shown per instance at most.
ANNOTATIONS_SHOWN = 8

PASS, FAIL, NEUTRAL = "#2e7d32", "#c62828", "#78909c"
PALETTE = ("#1565c0", "#ef6c00", "#6a1b9a", "#00838f", "#ad1457", "#558b2f", "#4e342e")
_LEVEL_COLORS = {"normal": PASS, "low": PASS, "elevated": "#f9a825", "medium": "#f9a825",
                 "high": FAIL, "critical": "#6a1b9a"}

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
color:#1d2327;margin:0;background:#f6f7f9}
header,main,nav{max-width:1100px;margin:0 auto;padding:0 20px}
header{padding-top:18px}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:18px;margin:28px 0 8px;border-bottom:2px solid #d0d7de;padding-bottom:4px}
h3{font-size:16px;margin:0 0 6px}
h3 small{font-weight:normal;color:#57606a}
h4{font-size:14px;margin:14px 0 4px}
code{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#eef1f4;
padding:1px 4px;border-radius:3px;word-break:break-all}
code.hash{white-space:nowrap;word-break:normal}
.muted,.note{color:#57606a}
.note{font-size:12px;margin:2px 0 8px}
.scope,.events{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:14px 16px;
margin:12px 0}
dl.facts{display:flex;flex-wrap:wrap;gap:4px 18px;margin:4px 0 8px}
dl.facts div{display:flex;gap:6px}
dl.facts dt{color:#57606a}
dl.facts dd{margin:0;font-weight:600}
table{border-collapse:collapse;width:100%;margin:4px 0 6px;font-size:13px}
th,td{text-align:left;padding:3px 8px;border-bottom:1px solid #e5e8eb;vertical-align:top}
th{background:#f0f2f4;font-weight:600}
td.num{font-variant-numeric:tabular-nums;white-space:nowrap}
.pass{color:#2e7d32;font-weight:600}
.fail{color:#c62828;font-weight:600}
.badge{font-size:11px;border-radius:3px;padding:0 4px;background:#fff3cd;color:#7a5a00}
figure{margin:6px 0 10px}
figcaption{font-size:12px;color:#57606a}
.legend span{margin-right:12px;white-space:nowrap}
.legend i{display:inline-block;width:10px;height:10px;border-radius:5px;margin-right:4px}
svg{max-width:100%;height:auto;background:#fff}
svg .grid{stroke:#eceff1}
svg .level{stroke-dasharray:5 4;stroke-width:1.5}
svg .tick{font-size:11px;fill:#57606a}
svg .axis{font-size:11px;fill:#37474f}
"""


def render_page(history: RegistryHistory, generated_at: str) -> str:
    """The whole report for ``history``; ``generated_at`` is shown in its header."""
    ids = {id(scope): f"s{i}" for i, scope in enumerate(history.scopes)}
    found = {id(scope): decisions(scope.evidence) for scope in history.scopes}
    body = [_header(history, generated_at), _overview(history, ids, found), "<main>"]
    for branch in history.branches:
        body.append(f"<h2>{escape(branch.project)} / branch {escape(branch.branch)}</h2>")
        body += [_scope(scope, ids[id(scope)], found[id(scope)]) for scope in branch.scopes]
        if branch.events:
            body.append(_events(branch))
    body.append("</main>")
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>flowpolicy report: {escape(history.url)}</title>"
            f"<style>{_STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


# -- header and overview --------------------------------------------------------------------


def _header(history: RegistryHistory, generated_at: str) -> str:
    where = ", ".join(f"{label} {escape(value)}" for label, value in
                      (("project", history.project), ("branch", history.branch)) if value)
    totals = (("branches", len(history.branches)), ("assets", len(history.scopes)),
              ("instances", history.instance_count),
              ("alias moves", history.alias_move_count),
              ("decisions", history.evidence_count), ("events", history.event_count))
    facts = "".join(f'<div><dt>{label}</dt><dd data-total="{label}">{count:,}</dd></div>'
                    for label, count in totals)
    return (f"<header><h1>flowpolicy report</h1><p>registry <code>{escape(history.url)}</code>"
            f"{' (' + where + ')' if where else ''} · generated {_time(generated_at)} · "
            f"times in UTC</p><dl class=\"facts\">{facts}</dl></header>")


def _overview(history: RegistryHistory, ids: dict[int, str],
              found: dict[int, Decisions]) -> str:
    rows = []
    for branch in history.branches:
        for scope in branch.scopes:
            gates = found[id(scope)].gates.values()
            gate = max((rows[-1] for rows in gates), key=lambda row: row.at, default=None)
            drift = found[id(scope)].drift[-1] if found[id(scope)].drift else None
            rows.append(
                f"<tr><td>{escape(branch.project)}</td><td>{escape(branch.branch)}</td>"
                f'<td><a href="#{ids[id(scope)]}">{escape(scope.scope.name)}</a></td>'
                f"<td>{escape(scope.scope.asset_type)}</td>"
                f'<td class="num">{len(scope.instances):,}</td>'
                f"<td>v{scope.latest_version}</td><td>{_aliases(scope)}</td>"
                f"<td>{'–' if gate is None else _gate_summary(gate)}</td>"
                f"<td>{'–' if drift is None else _level(drift)}</td></tr>")
    return ("<nav><h2>Assets</h2><table><tr><th>project</th><th>branch</th><th>asset</th>"
            "<th>type</th><th>instances</th><th>latest</th><th>aliases</th>"
            "<th>latest gate verdict</th><th>latest drift</th></tr>"
            + "".join(rows) + "</table></nav>")


def _aliases(scope: ScopeHistory) -> str:
    return ", ".join(f"@{escape(alias)} v{version}"
                     for alias, version in sorted(scope.aliases.items())) or "–"


def _gate_summary(row: GateRow) -> str:
    return f"{escape(row.rule)} on {escape(row.instance)}: {_verdict(row.passed)}"


# -- one asset ------------------------------------------------------------------------------


def _scope(scope: ScopeHistory, anchor: str, found: Decisions) -> str:
    key = "/".join((scope.scope.project, scope.scope.branch, scope.scope.asset_type,
                    scope.scope.name))
    facts = [("instances", f"{len(scope.instances):,}", "instances"),
             ("latest", f"v{scope.latest_version}", "latest"),
             ("alias moves", f"{len(scope.alias_moves):,}", "alias-moves"),
             ("decisions", f"{len(scope.evidence):,}", "decisions")]
    facts_html = "".join(f'<div><dt>{label}</dt><dd data-fact="{name}">{value}</dd></div>'
                         for label, value, name in facts)
    facts_html += "".join(
        f'<div><dt>@{escape(alias)}</dt><dd data-alias="{escape(alias)}">v{version}</dd></div>'
        for alias, version in sorted(scope.aliases.items()))
    out = [f'<section class="scope" id="{anchor}" data-scope="{escape(key)}">'
           f"<h3>{escape(scope.scope.asset_type)} {escape(scope.scope.name)} "
           f"<small>{escape(scope.scope.project)} / {escape(scope.scope.branch)}</small></h3>"]
    if scope.description:
        out.append(f'<p class="muted">{_cut(scope.description)}</p>')
    out.append(f'<dl class="facts">{facts_html}</dl>')
    out.append(_timeline(scope))
    out += [_gate(rule, rows) for rule, rows in found.gates.items()]
    for render, rows in ((_champion, found.champions), (_promotions, found.promotions),
                         (_drift, found.drift), (_other, found.other)):
        if rows:
            out.append(render(rows))
    out.append(_instances(scope))
    if scope.alias_moves:
        out.append(_alias_moves(scope))
    out.append("</section>")
    return "\n".join(out)


def _timeline(scope: ScopeHistory) -> str:
    registered = tuple(
        (t, float(i.version), f"{i.id} registered {_plain_time(i.created_at)}")
        for i in scope.instances if (t := svg.epoch_seconds(i.created_at)) is not None)
    series = [svg.Series("instances", NEUTRAL, registered)]
    by_alias: dict[str, list[tuple[float, float, str]]] = {}
    for move in scope.alias_moves:
        t = svg.epoch_seconds(move.at)
        if t is not None and move.to_version is not None:  # an unset alias has no version
            by_alias.setdefault(move.alias, []).append(
                (t, float(move.to_version), f"@{move.alias} -> v{move.to_version} "
                                            f"{_plain_time(move.at)}"))
    for i, (alias, points) in enumerate(sorted(by_alias.items())):
        series.append(svg.Series(f"@{alias}", PALETTE[i % len(PALETTE)], tuple(points),
                                 step=True))
    times = [p[0] for s in series for p in s.points]
    times += [t for r in scope.evidence if (t := svg.epoch_seconds(r.created_at)) is not None]
    chart = svg.time_chart(series, y_label="version", end=max(times, default=None),
                           whole_numbers=True)
    return _figure("Instances and alias moves: version over time; each alias is a line at "
                   "the version it points to", chart, series)


def _gate(rule: str, rows: Sequence[GateRow]) -> str:
    out = [f"<h4>Gate {escape(rule)}</h4>"]
    metrics = list(dict.fromkeys(check.metric for row in rows for check in row.checks))
    for metric in metrics:
        passed, failed = [], []
        for row in rows:
            t = svg.epoch_seconds(row.at)
            for check in row.checks:
                if check.metric == metric and t is not None and finite(check.value):
                    (passed if row.passed else failed).append(
                        (t, check.value, f"{row.instance}: {metric} = {check.value:.6g} "
                                         f"({'pass' if row.passed else 'fail'})"))
        latest = next((c for row in reversed(rows) for c in row.checks if c.metric == metric),
                      None)
        bounds = (("min", latest.low), ("max", latest.high)) if latest is not None else ()
        levels = [svg.Level(f"{name} {bound:.4g}", bound, FAIL)
                  for name, bound in bounds if finite(bound)]
        series = [svg.Series("passed", PASS, tuple(passed)), svg.Series("failed", FAIL,
                                                                        tuple(failed))]
        chart = svg.time_chart(series, levels, y_label=metric)
        out.append(_figure(f"{metric} of each judged instance against the bounds of the latest "
                           "verdict", chart, series))
    header = ["judged", "instance", "verdict", *metrics, "reason", "policy"]
    body = []
    for row in _newest(rows):
        by_metric = {check.metric: check for check in row.checks}
        cells = [_time(row.at), escape(row.instance), _verdict(row.passed, row.under_policy)]
        for metric in metrics:
            check = by_metric.get(metric)
            cells.append(_check_cell(check) if check else "–")
        cells += [_cut(row.reason), _policy(row.policy_hash)]
        body.append(_tr(cells, row.instance, numeric=range(3, 3 + len(metrics))))
    out.append(_table("gates", header, body, len(rows)))
    return "\n".join(out)


def _check_cell(check) -> str:
    bounds = (f" in [{'-inf' if check.low is None else f'{check.low:.4g}'}, "
              f"{'+inf' if check.high is None else f'{check.high:.4g}'}]")
    return f"{_value(check.value)}{bounds}"


def _champion(rows: Sequence[ChampionRow]) -> str:
    metric = next((row.metric for row in reversed(rows) if row.metric), "metric")
    champion, promoted, kept = [], [], []
    for row in rows:
        t = svg.epoch_seconds(row.at)
        if t is None:
            continue
        value = row.champion_after_value
        if finite(value):
            champion.append((t, value, f"champion {row.champion_after}: {metric} = {value:.6g}"))
        if finite(row.candidate_value):
            (promoted if row.promoted else kept).append(
                (t, row.candidate_value, f"candidate {row.instance}: {metric} = "
                                         f"{row.candidate_value:.6g} "
                                         f"({'promoted' if row.promoted else 'kept out'})"))
    series = [svg.Series("champion", PALETTE[0], tuple(champion), step=True),
              svg.Series("candidate promoted", PASS, tuple(promoted)),
              svg.Series("candidate not promoted", NEUTRAL, tuple(kept))]
    chart = svg.time_chart(series, y_label=metric)
    header = ["decided", "candidate", metric, "champion before", metric, "margin",
              "min improvement", "decision", "champion after", "reason", "policy"]
    body = [_tr([_time(r.at), escape(r.instance), _value(r.candidate_value),
                 escape(r.champion or "none"), _value(r.champion_value), _value(r.margin),
                 _value(r.min_improvement),
                 _verdict(bool(r.promoted), r.under_policy, yes="promoted", no="kept"),
                 escape(r.champion_after or "–"), _cut(r.reason), _policy(r.policy_hash)],
                r.instance, numeric=(2, 4, 5, 6))
            for r in _newest(rows)]
    return ("<h4>Champion</h4>"
            + _figure(f"{metric} of the champion over time, and of each candidate", chart,
                      series)
            + _table("champion", header, body, len(rows)))


def _promotions(rows: Sequence[PromotionRow]) -> str:
    body = [_tr([_time(r.at), escape(r.instance),
                 f"{escape(r.source or '?')} → {escape(r.target or '?')}",
                 _verdict(r.passed, r.under_policy, yes="allowed", no="refused"),
                 "<br>".join(_cut(text) for text in (r.reasons or r.satisfied)) or "–",
                 _policy(r.policy_hash)], r.instance)
            for r in _newest(rows)]
    return ("<h4>Promotion decisions</h4>"
            + _table("promotions", ["decided", "instance", "edge", "verdict",
                                    "reasons / requirements met", "policy"], body, len(rows)))


def _drift(rows: Sequence[DriftRow]) -> str:
    # the newest record that carries them (an odd newest record hides nothing older)
    thresholds = next((r.thresholds for r in reversed(rows) if r.thresholds), ())
    columns = next((r for r in reversed(rows) if r.statistics), None)
    order = [name for name, _ in thresholds]
    for row in rows:
        if row.level and row.level not in order:
            order.append(row.level)
    by_level: dict[str, list[tuple[float, float, str]]] = {name: [] for name in order}
    for row in rows:
        t = svg.epoch_seconds(row.at)
        if t is not None and finite(row.max_statistic) and row.level:
            by_level[row.level].append(
                (t, row.max_statistic, f"{row.instance} vs {row.reference}: max D "
                                       f"{row.max_statistic:.4f} in {row.worst_column} "
                                       f"({row.level})"))
    series = [svg.Series(level, _level_color(level, i), tuple(points))
              for i, (level, points) in enumerate(by_level.items())]
    levels = [svg.Level(name, value, _level_color(name, order.index(name)))
              for name, value in thresholds if value > 0]
    out = ["<h4>Drift</h4>",
           _figure("Largest KS D of each drift check over time, coloured by level"
                   + (" (lines: the newest recorded thresholds)" if levels else ""),
                   svg.time_chart(series, levels, y_label="max D"), series)]
    if columns is not None:
        bars = list(columns.statistics[:DRIFT_COLUMNS])
        note = (f"; the {DRIFT_COLUMNS} largest of {len(columns.statistics)} columns"
                if len(columns.statistics) > DRIFT_COLUMNS else "")
        out.append(_figure(f"D per column in the newest check that recorded them "
                           f"({columns.instance} vs {columns.reference or '?'}){note}",
                           svg.bar_chart(bars, levels, label="KS D"), ()))
    body = [_tr([_time(r.at), escape(r.instance), escape(r.reference or "–"), _level(r),
                 _value(r.max_statistic, 4), escape(r.worst_column or "–"),
                 f"{len(r.statistics)}", _policy(r.policy_hash)], r.instance, numeric=(4, 6))
            for r in _newest(rows)]
    out.append(_table("drift", ["checked", "current", "reference", "level", "max D",
                                "worst column", "columns", "policy"], body, len(rows)))
    return "\n".join(out)


def _other(rows: Sequence[EvidenceRecord]) -> str:
    body = [_tr([_time(r.created_at), escape(f"v{r.version}"), escape(r.kind),
                 escape(r.rule), _verdict(r.passed), _policy(r.policy_hash)], f"v{r.version}")
            for r in _newest(rows)]
    return ("<h4>Other decisions</h4>"
            + _table("other", ["recorded", "instance", "kind", "rule", "passed", "policy"],
                     body, len(rows)))


def _instances(scope: ScopeHistory) -> str:
    holders: dict[int, list[str]] = {}
    for alias, version in sorted(scope.aliases.items()):
        holders.setdefault(version, []).append(f"@{alias}")
    body = [_tr([escape(i.id), _time(i.created_at), _entity(i.created_by),
                 escape(i.kind), escape(" ".join(holders.get(i.version, []))) or "–",
                 _annotations(i)], i.id)
            for i in _newest(scope.instances)]
    return ("<h4>Instances</h4>"
            + _table("instances", ["instance", "registered", "by", "kind", "aliases",
                                   "annotations"], body, len(scope.instances),
                     f"flowpolicy assets show {scope.scope.name} --branch "
                     f"{scope.scope.branch} --limit 0"))


def _alias_moves(scope: ScopeHistory) -> str:
    body = [_tr([_time(m.at), f"@{escape(m.alias)}",
                 f"{escape(f'v{m.from_version}' if m.from_version else '(unset)')} → "
                 f"{f'v{m.to_version}' if m.to_version else '(unset)'}",
                 _entity(m.by), _cut(m.reason)],
                f"v{m.to_version}" if m.to_version else "unset")
            for m in _newest(scope.alias_moves)]
    return ("<h4>Alias moves</h4>"
            + _table("alias-moves", ["moved", "alias", "from → to", "by", "reason"], body,
                     len(scope.alias_moves),
                     f"flowpolicy assets history {scope.scope.name} --branch "
                     f"{scope.scope.branch}"))


def _events(branch: BranchHistory) -> str:
    counts = Counter(event.name for event in branch.events)
    summary = ", ".join(f'<span data-event="{escape(name)}">{escape(name)} × {count:,}</span>'
                        for name, count in sorted(counts.items()))
    body = [_tr([_time(e.created_at), f"<code>{escape(e.wire_name)}</code>", _payload(e),
                 _entity(e.producer)], str(e.id))
            for e in _newest(branch.events)]
    return (f'<section class="events" data-branch="{escape(branch.project)}/'
            f'{escape(branch.branch)}"><h3>Events on {escape(branch.branch)} '
            f'<small>{len(branch.events):,} published</small></h3><p>{summary}</p>'
            + _table("events", ["published", "event", "payload", "producer"], body,
                     len(branch.events),
                     f"flowpolicy events --project {branch.project} --branch {branch.branch}")
            + "</section>")


# -- small pieces ---------------------------------------------------------------------------


def _newest(rows: Sequence) -> list:
    return list(reversed(rows[-TABLE_ROWS:]))


def _table(kind: str, header: Sequence[str], body: Sequence[str], total: int,
           full_listing: str | None = None) -> str:
    note = ""
    if total > len(body):
        note = f'<p class="note">the newest {len(body):,} of {total:,}'
        note += (f"; <code>{escape(full_listing)}</code> lists them all</p>" if full_listing
                 else "</p>")
    heads = "".join(f"<th>{escape(h)}</th>" for h in header)
    return (f'<table class="{kind}"><tr>{heads}</tr>' + "".join(body) + "</table>" + note)


def _tr(cells: Sequence[str], instance: str, numeric: Iterable[int] = ()) -> str:
    numbered = set(numeric)
    return (f'<tr data-instance="{escape(instance)}">'
            + "".join(f'<td class="num">{c}</td>' if i in numbered else f"<td>{c}</td>"
                      for i, c in enumerate(cells)) + "</tr>")


def _figure(caption: str, chart: str, series: Sequence[svg.Series]) -> str:
    if not chart:
        return ""
    thinned = [f"{s.name}: {svg.MAX_POINTS} of {len(s.points):,} points drawn"
               for s in series if len(s.points) > svg.MAX_POINTS]
    legend = "".join(f'<span><i style="background:{s.color}"></i>{escape(s.name)} '
                     f"({len(s.points):,})</span>" for s in series if s.points)
    return (f"<figure>{chart}<figcaption>{escape(caption)}"
            + (f" ({escape('; '.join(thinned))})" if thinned else "")
            + (f'<div class="legend">{legend}</div>' if legend else "")
            + "</figcaption></figure>")


def _verdict(passed: bool, under_policy: bool | None = None, *, yes: str = "pass",
             no: str = "fail") -> str:
    text = f'<span class="pass">{yes}</span>' if passed else f'<span class="fail">{no}</span>'
    if under_policy is False:
        text += ' <span class="badge" title="the run overrode the policy\'s thresholds">' \
                "not under the policy</span>"
    return text


def _level(row: DriftRow) -> str:
    level = row.level or "?"
    return (f'<span class="{"pass" if level in ("normal", "low") else "fail"}">'
            f"{escape(level)}</span>")


def _level_color(level: str, position: int) -> str:
    return _LEVEL_COLORS.get(level, PALETTE[position % len(PALETTE)])


def _value(value: float | None, digits: int | None = None) -> str:
    if value is None:
        return "–"
    shown = f"{value:.{digits}f}" if digits is not None and finite(value) else f"{value:.4g}"
    return f'<span title="{value!r}">{shown}</span>'


def _policy(policy_hash: str | None) -> str:
    if not policy_hash:
        return "–"
    return f'<code class="hash" title="{escape(policy_hash)}">{escape(policy_hash[:12])}</code>'


def _entity(ref: EntityRef) -> str:
    return f"{escape(ref.entity_kind)} <code>{_cut(ref.entity_id)}</code>"


def _annotations(instance: InstanceRecord) -> str:
    items = list(instance.annotations.items())
    shown = [f"<code>{_cut(key, 40)}={_cut(value, 80)}</code>"
             for key, value in items[:ANNOTATIONS_SHOWN]]
    if len(items) > ANNOTATIONS_SHOWN:
        shown.append(f'<span class="muted">+{len(items) - ANNOTATIONS_SHOWN} more</span>')
    return " ".join(shown) or "–"


def _payload(event: EventRecord) -> str:
    if event.payload is None:
        return "–"
    return f"<code>{_cut(json.dumps(dict(event.payload), sort_keys=True, default=str))}</code>"


def _cut(text: str | None, limit: int = TEXT_LIMIT) -> str:
    """``text`` HTML-escaped, cut to ``limit`` characters (the whole text on hover)."""
    if not text:
        return "–"
    if len(text) <= limit:
        return escape(text)
    return f'<span title="{escape(text[:4 * limit])}">{escape(text[:limit - 1])}…</span>'


def _time(timestamp: str) -> str:
    return f'<span title="{escape(timestamp)}">{escape(_plain_time(timestamp))}</span>'


def _plain_time(timestamp: str) -> str:
    seconds = svg.epoch_seconds(timestamp)
    if seconds is None:
        return timestamp
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
