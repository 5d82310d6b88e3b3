"""Event → run → event: the chains ``flowpolicy dispatch`` ran, as data and as a tree.

An event was caused by the run whose task published it (its producer is
``task Flow/run/step/id``, or the promoting task for a promotion's new instance); a run was
started by the event its dispatch record names. Runs nobody dispatched (a training started
by hand) are the roots. Built from two reads (events, dispatches) and bounded: at most
``limit`` events, and a tree never deeper than :data:`MAX_DEPTH`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from flowpolicy.dispatch.launch import launcher_alive
from flowpolicy.errors import EXIT_OK, RegistryError
from flowpolicy.inventory import NO_REGISTRY
from flowpolicy.registry import open_existing_registry
from flowpolicy.registry.base import DispatchRecord, EventRecord, Registry
from flowpolicy.request import EventRunsRequest
from flowpolicy.runtime.branch import sanitize_branch

MAX_DEPTH = 64


@dataclass
class RunNode:
    """A run: dispatched (``dispatch`` set) or a root started some other way."""

    label: str
    dispatch: DispatchRecord | None = None
    events: list[EventNode] = field(default_factory=list)


@dataclass
class EventNode:
    event: EventRecord
    runs: list[RunNode] = field(default_factory=list)


def run_of(entity_kind: str, entity_id: str) -> str | None:
    """``Flow/run`` of a task pathspec ``Flow/run/step/task``; None for anything else."""
    parts = entity_id.split("/")
    return "/".join(parts[:2]) if entity_kind == "task" and len(parts) == 4 else None


def build_chains(registry: Registry, *, project: str | None = None,
                 branch: str | None = None, limit: int = 500) -> list[RunNode]:
    """The root runs (and loose events, under a root per producer) of the newest ``limit``
    events, oldest first."""
    events = registry.events(project, branch)
    if limit:
        events = events[-limit:]
    nodes = {event.id: EventNode(event) for event in events}
    by_run: dict[str, RunNode] = {}
    for record in registry.dispatches():
        node = nodes.get(record.event_id)
        if node is None:
            continue  # its event is not shown (another scope, or older than ``limit``)
        run = RunNode(record.run_pathspec or record.flow, record)
        node.runs.append(run)
        if record.run_pathspec:
            by_run[record.run_pathspec] = run
    roots: dict[str, RunNode] = {}
    for event in events:
        run = run_of(event.producer.entity_kind, event.producer.entity_id)
        parent = by_run.get(run) if run else None
        if parent is None:
            key = run or f"{event.producer.entity_kind} {event.producer.entity_id}"
            parent = roots.setdefault(key, RunNode(key))
        parent.events.append(nodes[event.id])
    return list(roots.values())


def outcome(record: DispatchRecord) -> str:
    """How a dispatched run stands, in words."""
    if record.state == "claimed":
        return f"claimed by {record.claimed_by}, not started yet"
    if record.state == "started":
        if launcher_alive(record) is False:
            return f"started; its launcher (pid {record.pid}) is gone, the outcome unknown"
        return "running"
    if record.status == "succeeded":
        return "succeeded"
    if record.status == "refused":
        return f"refused: {record.reason}"
    return f"failed: {record.reason}" if record.reason else f"failed (exit {record.returncode})"


def render_chains(roots: Iterable[RunNode]) -> str:
    """The chains as an indented tree, one line a run or an event."""
    lines: list[str] = []
    for root in roots:
        lines.append(root.label + ("" if root.dispatch else "  (not dispatched)"))
        _render_events(root.events, "", lines, 1)
    return "\n".join(lines) + ("\n" if lines else "")


def _render_events(events: list[EventNode], indent: str, lines: list[str], depth: int) -> None:
    for index, node in enumerate(events):
        last = index == len(events) - 1
        event = node.event
        about = "" if event.instance is None else f" {event.instance}"
        lines.append(f"{indent}{'└─' if last else '├─'} event {event.id} "
                     f"{event.name} [{event.branch}]{about}")
        below = indent + ("   " if last else "│  ")
        if depth >= MAX_DEPTH:
            lines.append(f"{below}… (deeper than {MAX_DEPTH} levels)")
            continue
        for run_index, run in enumerate(node.runs):
            run_last = run_index == len(node.runs) - 1
            assert run.dispatch is not None
            lines.append(f"{below}{'└─' if run_last else '├─'} {run.label}: "
                         f"{outcome(run.dispatch)}")
            _render_events(run.events, below + ("   " if run_last else "│  "), lines,
                           depth + 1)


@dataclass(frozen=True)
class EventRunsReport:
    """``flowpolicy events --runs``: the chains of one registry."""

    registry: str
    roots: tuple[RunNode, ...]

    exit_code = EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        return {"registry": self.registry, "chains": [_run_dict(r) for r in self.roots]}

    def format_text(self) -> str:
        return (f"registry {self.registry}\n"
                + (render_chains(self.roots) if self.roots else "no events\n"))


def event_runs(request: EventRunsRequest) -> EventRunsReport:
    """The chains of the newest ``request.limit`` events; the registry is only read."""
    if request.limit < 0:
        raise RegistryError(f"--limit takes 0 (all) or a positive number, not {request.limit}")
    registry = open_existing_registry(request.registry, read_only=True, missing=NO_REGISTRY)
    branch = sanitize_branch(request.branch) if request.branch else None
    return EventRunsReport(registry.url, tuple(build_chains(
        registry, project=request.project, branch=branch, limit=request.limit)))


def _run_dict(run: RunNode) -> dict[str, Any]:
    dispatch = run.dispatch
    return {
        "run": run.label,
        "dispatch": None if dispatch is None else {**dispatch.to_dict(),
                                                   "outcome": outcome(dispatch)},
        "events": [{**node.event.to_dict(), "runs": [_run_dict(r) for r in node.runs]}
                   for node in run.events],
    }
