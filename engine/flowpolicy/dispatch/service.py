"""``flowpolicy dispatch`` as one call: the request checked, the policy's trigger table built,
and either listed (``mode="list"``) or run by a :class:`~flowpolicy.dispatch.dispatcher.Dispatcher`
over the registry, with the Argo Events webhook when asked for. Progress lines go to the
request's ``echo`` as they happen; the report says what was read and started, and how the
runs ended."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowpolicy.errors import EXIT_FINDINGS, EXIT_OK, FlowpolicyError
from flowpolicy.request import DispatchRequest
from flowpolicy.triggers import TriggerTable, dispatch_table, flow_label


@dataclass(frozen=True)
class TriggerListing:
    """``dispatch --list``: which event starts which flow on which branch; exit 1 when no
    event starts any flow."""

    table: TriggerTable
    root: Path

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.table.triggers else EXIT_FINDINGS

    def to_dict(self) -> dict[str, Any]:
        return {"project": self.table.project,
                "triggers": [{"event": t.event, "branches": list(t.branches),
                              "flow": self._where(t.flow), "parameters": dict(t.parameters),
                              "why": t.why} for t in self.table.triggers],
                "untriggered": [{"flow": f"{m.kind} {m.rule}", "branch": m.branch,
                                 "reason": m.reason} for m in self.table.untriggered]}

    def _where(self, flow) -> str:
        path = self.table.targets[flow].path
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def format_text(self) -> str:
        lines = [f"triggers of project {self.table.project}:"]
        for trigger in self.table.triggers:
            target = self.table.targets[trigger.flow]
            branches = ", ".join(trigger.branches) or "any branch"
            mapping = ", ".join(f"--{p} from {f}" for p, f in trigger.parameters.items())
            lines.append(f"  {trigger.event} on {branches} -> {self._where(trigger.flow)}"
                         + (f" ({target.class_name})" if target.class_name else "")
                         + (f"; {mapping}" if mapping else ""))
            lines.append(f"      {trigger.why}")
        for missing in self.table.untriggered:
            branch = "any branch" if missing.branch == "*" else missing.branch
            lines.append(f"  nothing starts {flow_label(missing.kind, missing.rule)} on "
                         f"{branch}: {missing.reason}")
        if not self.table.triggers:
            lines.append("  none: no event starts any flow")
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class DispatchReport:
    """What one dispatcher did: events read, runs started (dispatch ids), how each ended,
    claims taken over, and the cursor before and after."""

    registry: str
    events_read: int
    started: tuple[int, ...]
    finished: dict[int, str] = field(default_factory=dict)
    taken_over: tuple[int, ...] = ()
    notes: tuple[str, ...] = ()
    cursor_before: int = 0
    cursor_after: int = 0

    @property
    def exit_code(self) -> int:
        """1 when there was nothing to dispatch (as ``graph`` with nothing to draw): a
        dispatcher that read no event and started nothing does not report success."""
        return EXIT_OK if self.started or self.events_read else EXIT_FINDINGS

    def to_dict(self) -> dict[str, Any]:
        return {"registry": self.registry, "events_read": self.events_read,
                "started": list(self.started),
                "finished": {str(k): v for k, v in self.finished.items()},
                "taken_over": list(self.taken_over), "notes": list(self.notes),
                "cursor": {"before": self.cursor_before, "after": self.cursor_after}}

    def format_text(self) -> str:
        lines = [f"note: {note}" for note in self.notes]
        if not self.started and not self.events_read:
            lines.append(f"nothing to dispatch: no events after event {self.cursor_before}")
        else:
            outcomes = list(self.finished.values())
            lines.append(
                f"dispatch: read {self.events_read} events, started {len(self.started)} runs "
                f"({outcomes.count('succeeded')} succeeded, {outcomes.count('refused')} "
                f"refused, {outcomes.count('failed')} failed"
                + (f", {len(self.taken_over)} taken over" if self.taken_over else "")
                + f"); cursor at event {self.cursor_after}")
        return "\n".join(lines) + "\n"


def dispatch(request: DispatchRequest) -> DispatchReport | TriggerListing:
    from flowpolicy.compile import output_dir_for
    from flowpolicy.policy.loader import load_policy, require_one_policy_file
    from flowpolicy.project_root import project_root

    for flag, value in (("--timeout", request.timeout), ("--lease", request.lease),
                        ("--for", request.follow_for)):
        if value is not None and not value > 0:
            raise FlowpolicyError(f"{flag} takes a positive number of seconds, not {value:g}")
    if request.max_runs < 1:
        raise FlowpolicyError(f"--max-runs takes a positive number, not {request.max_runs}")
    if request.follow_for is not None and request.mode != "follow":
        raise FlowpolicyError("--for goes with --follow")
    path = require_one_policy_file(request.policy, "dispatch", "dispatch for")
    policy = load_policy(path)
    root = project_root(path.resolve().parent)
    table = dispatch_table(policy, root, output_dir_for(policy))
    if request.mode == "list":
        return TriggerListing(table, root)
    if not table.triggers:
        raise FlowpolicyError(f"{path}: no event starts any flow (no triggers)",
                              exit_code=EXIT_FINDINGS)
    missing = sorted({str(t.path) for t in table.targets.values() if not t.path.is_file()})
    if missing:
        raise FlowpolicyError(f"the flows {', '.join(missing)} do not exist: run flowpolicy "
                              f"compile {path} first (or fix the triggers' flow: paths)")
    return _run(request, table, root)


def _run(request: DispatchRequest, table: TriggerTable, root: Path) -> DispatchReport:
    from flowpolicy.dispatch.dispatcher import Dispatcher
    from flowpolicy.dispatch.webhook import WebhookServer
    from flowpolicy.registry import open_existing_registry

    registry = open_existing_registry(
        request.registry, missing="no events to dispatch yet (run a flow first, or point "
                                  "--registry / FLOWPOLICY_REGISTRY at the file the flows write)")
    request.echo(f"registry {registry.url}")
    dispatcher = Dispatcher(registry, table, cwd=root, lease_seconds=request.lease,
                            echo=request.echo)
    webhook = WebhookServer(registry, request.webhook) if request.webhook is not None else None
    with webhook or nullcontext():
        if webhook is not None:
            request.echo(f"webhook: export METAFLOW_ARGO_EVENTS_WEBHOOK_URL={webhook.url}")
        before = registry.cursor(dispatcher.cursor_name)
        follow = request.mode == "follow"
        summary = dispatcher.run(follow=follow,
                                 timeout=request.follow_for if follow else request.timeout,
                                 max_runs=request.max_runs)
    return DispatchReport(registry.url, summary.events_read, tuple(summary.started),
                          dict(summary.finished), tuple(summary.taken_over),
                          tuple(summary.notes), before,
                          registry.cursor(dispatcher.cursor_name))
