"""Inline SVG charts for the report: values over time, and horizontal bars.

Plain SVG markup built from numbers and escaped text (no script, no external reference), so a
chart renders in any browser from a file on disk. A series longer than :data:`MAX_POINTS` is
thinned to evenly spaced points (its first and last kept): a page about 10,000 instances
stays small, and the caller says in the caption that it was thinned.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from html import escape

#: Points drawn per series at most.
MAX_POINTS = 300

WIDTH = 760
_LEFT, _RIGHT, _TOP, _BOTTOM = 58, 20, 12, 30
_PLOT_HEIGHT = 150


@dataclass(frozen=True)
class Series:
    """Points ``(time in epoch seconds, y, tooltip)`` drawn as dots, or as a step line (the
    value holds until the next point, and after the last one until the chart's end)."""

    name: str
    color: str
    points: tuple[tuple[float, float, str], ...]
    step: bool = False


@dataclass(frozen=True)
class Level:
    """A horizontal threshold line (a gate bound, a drift level)."""

    name: str
    value: float
    color: str = "#8d8d8d"


def epoch_seconds(timestamp: str) -> float | None:
    """An ISO-8601 registry time (``2024-05-01T10:00:00.123456Z``) as epoch seconds, or None
    when it does not parse."""
    try:
        moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def thin(points: Sequence, limit: int = MAX_POINTS) -> list:
    """At most ``limit`` evenly spaced items of ``points``, first and last kept."""
    if len(points) <= limit:
        return list(points)
    last = len(points) - 1
    return [points[round(i * last / (limit - 1))] for i in range(limit)]


def time_chart(series: Sequence[Series], levels: Sequence[Level] = (), *, y_label: str,
               end: float | None = None, whole_numbers: bool = False) -> str:
    """Series over a shared time axis, with threshold lines; ``end`` is the time step lines
    run to (default: the last point)."""
    drawn = [Series(s.name, s.color, tuple(thin(s.points)), s.step) for s in series]
    xs = [x for s in drawn for x, _, _ in s.points] + ([end] if end is not None else [])
    ys = [y for s in drawn for _, y, _ in s.points] + [lvl.value for lvl in levels]
    if not xs or not ys:
        return ""
    # one moment gets a minute around it; a burst of work within a second keeps its shape
    x_low, x_high = _padded(min(xs), max(xs), 60.0 if min(xs) == max(xs) else 1.0)
    y_low, y_high = _padded(min(ys), max(ys), 2.0 if whole_numbers else 0.1)
    height = _TOP + _PLOT_HEIGHT + _BOTTOM
    plot_width = WIDTH - _LEFT - _RIGHT

    def px(x: float) -> float:
        return _LEFT + (x - x_low) / (x_high - x_low) * plot_width

    def py(y: float) -> float:
        return _TOP + (y_high - y) / (y_high - y_low) * _PLOT_HEIGHT

    out = [_open(WIDTH, height, y_label)]
    for tick in _ticks(y_low, y_high, whole_numbers):
        out.append(f'<line class="grid" x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{py(tick):.1f}" '
                   f'y2="{py(tick):.1f}"/><text class="tick" x="{_LEFT - 6}" '
                   f'y="{py(tick) + 4:.1f}" text-anchor="end">{_number(tick)}</text>')
    ticks = _time_ticks(x_low, x_high)
    for i, (x, label) in enumerate(ticks):
        anchor = "start" if i == 0 else "end" if i == len(ticks) - 1 else "middle"
        out.append(f'<text class="tick" x="{px(x):.1f}" y="{height - 10}" '
                   f'text-anchor="{anchor}">{escape(label)}</text>')
    out.append(f'<text class="axis" x="12" y="{_TOP + _PLOT_HEIGHT / 2:.1f}" '
               f'transform="rotate(-90 12 {_TOP + _PLOT_HEIGHT / 2:.1f})" '
               f'text-anchor="middle">{escape(y_label)}</text>')
    for level in levels:
        out.append(f'<line class="level" x1="{_LEFT}" x2="{WIDTH - _RIGHT}" '
                   f'y1="{py(level.value):.1f}" y2="{py(level.value):.1f}" '
                   f'stroke="{level.color}"><title>{escape(level.name)} '
                   f'{_number(level.value)}</title></line>'
                   f'<text class="tick" x="{WIDTH - _RIGHT - 2}" y="{py(level.value) - 3:.1f}" '
                   f'text-anchor="end" fill="{level.color}">{escape(level.name)}</text>')
    for s in drawn:
        points = sorted(s.points, key=lambda p: p[0])
        if s.step and points:
            path = [f"M{px(points[0][0]):.1f},{py(points[0][1]):.1f}"]
            for x, y, _ in points[1:]:
                path.append(f"H{px(x):.1f}V{py(y):.1f}")
            path.append(f"H{px(max(points[-1][0], end or points[-1][0])):.1f}")
            out.append(f'<path d="{"".join(path)}" fill="none" stroke="{s.color}" '
                       'stroke-width="2"/>')
        radius = 2.5 if len(points) > 60 else 4
        for x, y, tip in points:
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="{radius}" '
                       f'fill="{s.color}"><title>{escape(tip)}</title></circle>')
    out.append("</svg>")
    return "".join(out)


def bar_chart(bars: Sequence[tuple[str, float]], levels: Sequence[Level] = (), *,
              label: str, color: str = "#5c6bc0") -> str:
    """Horizontal bars ``(name, value)`` from zero, top to bottom, with threshold lines."""
    if not bars:
        return ""
    row = 20
    height = _TOP + row * len(bars) + _BOTTOM
    left = 170
    plot_width = WIDTH - left - _RIGHT
    high = max([value for _, value in bars] + [lvl.value for lvl in levels] + [0.0]) or 1.0
    high *= 1.05

    def px(value: float) -> float:
        return left + max(value, 0.0) / high * plot_width

    out = [_open(WIDTH, height, label)]
    for i, (name, value) in enumerate(bars):
        y = _TOP + i * row
        shown = name if len(name) <= 24 else name[:23] + "…"
        out.append(f'<text class="tick" x="{left - 6}" y="{y + 14}" text-anchor="end">'
                   f'{escape(shown)}</text><rect x="{left}" y="{y + 3}" '
                   f'width="{px(value) - left:.1f}" height="{row - 6}" fill="{color}">'
                   f'<title>{escape(name)}: {_number(value)}</title></rect>'
                   f'<text class="tick" x="{px(value) + 4:.1f}" y="{y + 14}">'
                   f'{_number(value)}</text>')
    bottom = _TOP + row * len(bars)
    for level in levels:
        out.append(f'<line class="level" x1="{px(level.value):.1f}" x2="{px(level.value):.1f}" '
                   f'y1="{_TOP}" y2="{bottom}" stroke="{level.color}"/><text class="tick" '
                   f'x="{px(level.value):.1f}" y="{bottom + 14}" text-anchor="middle" '
                   f'fill="{level.color}">{escape(level.name)} {_number(level.value)}</text>')
    out.append(f'<text class="axis" x="{left}" y="{height - 4}">{escape(label)}</text></svg>')
    return "".join(out)


def _open(width: int, height: int, label: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(label)}" '
            f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">')


def _padded(low: float, high: float, minimum_span: float) -> tuple[float, float]:
    """``low``..``high`` widened by 6% on each side, and to at least ``minimum_span``."""
    pad = max((high - low) * 0.06, (minimum_span - (high - low)) / 2)
    return low - pad, high + pad


def _ticks(low: float, high: float, whole_numbers: bool) -> list[float]:
    raw = (high - low) / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    if whole_numbers:
        step = max(1.0, math.ceil(step))
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step) + 1)]


def _time_ticks(low: float, high: float) -> list[tuple[float, str]]:
    span = high - low
    form = "%H:%M:%S" if span < 600 else "%H:%M" if span < 86400 else "%Y-%m-%d"
    cut = -3 if span < 20 else None  # milliseconds when ticks are seconds apart or less
    if cut:
        form += ".%f"
    return [(x, datetime.fromtimestamp(x, timezone.utc).strftime(form)[:cut])
            for x in (low + span * i / 4 for i in range(5))]


def _number(value: float) -> str:
    return f"{value:.4g}"
