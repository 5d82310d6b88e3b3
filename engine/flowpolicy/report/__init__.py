"""``flowpolicy report``: one self-contained HTML page of a registry's history.

Per project, branch and asset: a timeline of instances and alias moves, gate verdicts with
each metric against its bounds, champion decisions with the metric over time, promotion
decisions, drift level and max D over time with D per column, the instances and alias moves
themselves, and each branch's events. The page needs no server and no network: inline CSS
and SVG, no script. It stays small for a registry of any size (tables show the newest rows,
charts thin long series; see :mod:`flowpolicy.report.page`).

The registry is read through its Protocol, opened read-only: the report never creates,
migrates or writes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flowpolicy.errors import EXIT_FINDINGS, FlowpolicyError
from flowpolicy.fileio import atomic_write
from flowpolicy.inventory import open_to_read
from flowpolicy.registry.base import Registry, utc_now
from flowpolicy.report.history import RegistryHistory, read_history
from flowpolicy.report.page import render_page
from flowpolicy.request import ReportRequest

__all__ = ["ReportRequest", "ReportResult", "build_report", "read_history", "render_page",
           "write_report"]


@dataclass(frozen=True)
class ReportResult:
    path: Path
    size: int
    history: RegistryHistory


def build_report(registry: Registry, project: str | None = None,
                 branch: str | None = None) -> tuple[RegistryHistory, str]:
    """The history read from ``registry`` and the page showing it. A registry with nothing
    to show (for these filters) is an error (exit 1): an empty page would look like a
    report."""
    history = read_history(registry, project, branch)
    if not history.branches:
        where = ", ".join(f"{label} {value}" for label, value in
                          (("project", project), ("branch", branch)) if value)
        raise FlowpolicyError(
            f"registry {registry.url} holds no assets and no events"
            f"{' for ' + where if where else ''}: nothing to report, no file written",
            exit_code=EXIT_FINDINGS)
    return history, render_page(history, utc_now())


def write_report(request: ReportRequest) -> ReportResult:
    """Read the registry (read-only) and write the report to ``request.output`` (a temporary
    file renamed over it: a reader sees the old page or the new one). ``project`` /
    ``branch`` None: every one."""
    registry = open_to_read(request.registry, "nothing to report")
    history, page = build_report(registry, request.project, request.branch)
    atomic_write(request.output, page)
    return ReportResult(request.output, len(page.encode("utf-8")), history)

