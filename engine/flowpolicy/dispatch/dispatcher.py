"""The dispatcher loop: follow the events table, claim each triggered (event, flow) start,
hand it to a launcher.

Each pass: take over claims whose lease ran out, read the events after the cursor (a batch
at a time), claim a start for every trigger each event fires, start a launcher per claim,
then move the cursor past the event. A launcher (:mod:`flowpolicy.dispatch.launch`) makes
the start happen exactly once; see :mod:`flowpolicy.dispatch` for the crash analysis.

Every loop is bounded: by ``timeout`` seconds, by ``max_runs`` starts, by batch sizes.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from flowpolicy.dispatch.launch import EXIT_TAKEN_OVER, fork_launcher, launcher_alive
from flowpolicy.errors import EXIT_FINDINGS, FlowpolicyError
from flowpolicy.registry.base import DispatchRecord, EventRecord, Registry
from flowpolicy.triggers import Trigger, TriggerTable

#: Events read per pass, and expired claims taken over per pass.
BATCH = 200
#: A payload value longer than this is not passed to a flow (it is not an instance spec).
MAX_VALUE_CHARS = 200
#: How long a dispatcher waits for new events between passes while it has nothing running.
_IDLE_WAIT_S = 0.5
#: ... and while launchers are running or claims are pending.
_BUSY_WAIT_S = 0.02


@dataclass
class DispatchSummary:
    """What one dispatcher invocation did."""

    events_read: int = 0
    started: list[int] = field(default_factory=list)
    taken_over: list[int] = field(default_factory=list)
    finished: dict[int, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class Dispatcher:
    """Starts the flows ``table`` names (a :func:`~flowpolicy.triggers.dispatch_table`) for
    the events of ``registry``. ``cwd``: the project root the runs start in, each run's log
    in its ``.flowpolicy/dispatch/``."""

    def __init__(self, registry: Registry, table: TriggerTable, *, cwd: Path,
                 lease_seconds: float = 30.0, echo: Callable[[str], None] = print,
                 environment: Mapping[str, str] | None = None):
        self.registry = registry
        self.table = table
        self.cwd = cwd.resolve()
        self.log_dir = (self.cwd / ".flowpolicy" / "dispatch").resolve()
        self.lease_seconds = lease_seconds
        self.echo = echo
        self.environment = dict(os.environ if environment is None else environment)
        self.cursor_name = f"dispatch.{table.project}"
        self.identity = f"{socket.gethostname()}:{os.getpid()}"
        #: pid of each forked launcher -> its dispatch and when it was launched
        self._launchers: dict[int, tuple[DispatchRecord, float]] = {}

    # -- the loop -------------------------------------------------------------------------

    def run(self, *, follow: bool, timeout: float | None, max_runs: int,
            hold: Callable[[], bool] | None = None) -> DispatchSummary:
        """``follow=False`` (``--once``): until nothing is pending — no new event, no claim
        anyone holds, no run started from here or by a launcher still alive — and ``hold``
        (when given) says False. ``follow``: until ``timeout`` (None: until interrupted).
        Raises FlowpolicyError (exit 1) when ``timeout`` passes with work pending in
        ``--once`` mode, or ``max_runs`` is hit."""
        summary = DispatchSummary()
        deadline = None if timeout is None else time.monotonic() + timeout
        cursor = self.registry.cursor(self.cursor_name)
        try:
            while True:
                self._reap(summary)
                if len(summary.started) < max_runs:
                    self._take_over(summary, max_runs)
                    events = self.registry.events(after=cursor, limit=BATCH)
                else:
                    events = []
                for event in events:
                    if not self._dispatch(event, summary, max_runs):
                        break
                    cursor = self.registry.advance_cursor(self.cursor_name, event.id)
                    summary.events_read += 1
                if len(summary.started) >= max_runs and not self._launchers:
                    raise FlowpolicyError(
                        f"dispatch stopped after starting {max_runs} runs (--max-runs); the "
                        f"events after event {cursor} wait for the next dispatcher",
                        exit_code=EXIT_FINDINGS)
                if events:
                    continue
                pending = self._pending()
                if hold is not None and hold():
                    pending = pending or "more events to come"
                if not follow and not pending:
                    return summary
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    if follow:
                        return summary
                    raise FlowpolicyError(
                        f"dispatch --once gave up after {timeout:g}s with work pending: "
                        f"{pending}", exit_code=EXIT_FINDINGS)
                wait = _BUSY_WAIT_S if pending else _IDLE_WAIT_S
                self.registry.wait_for_events(cursor, wait if left is None else min(wait, left))
        finally:
            self._reap(summary)

    def _pending(self) -> str:
        """What keeps ``--once`` going, in words; empty when nothing does."""
        parts = []
        if self._launchers:
            parts.append(f"{len(self._launchers)} run(s) started here still going")
        here = str(self.cwd)
        claimed = [d for d in self.registry.dispatches(state="claimed", limit=BATCH)
                   if d.cwd == here]
        if claimed:
            parts.append(f"{len(claimed)} claimed start(s) not yet started")
        mine = {record.id for record, _ in self._launchers.values()}
        alive = [d for d in self.registry.dispatches(state="started", limit=BATCH)
                 if d.cwd == here and d.id not in mine and launcher_alive(d)]
        if alive:
            parts.append(f"{len(alive)} run(s) started by another dispatcher still going")
        return ", ".join(parts)

    # -- one event ----------------------------------------------------------------------

    def _dispatch(self, event: EventRecord, summary: DispatchSummary, max_runs: int) -> bool:
        """Claim and launch every start ``event`` triggers; False when ``max_runs`` would be
        passed (the event is then left for later, its cursor not moved)."""
        triggers = self.table.matching(event.project, event.branch, event.name)
        if len(summary.started) + len(triggers) > max_runs and triggers:
            return False
        for trigger in triggers:
            flow = self._flow_key(trigger)
            argv = self._command(trigger, flow, event, summary)
            if argv is None:
                continue
            record = self.registry.claim_dispatch(
                event.id, flow,
                flow_name=self.table.targets[trigger.flow].class_name,
                branch=event.branch, argv=argv, cwd=str(self.cwd), claimer=self.identity,
                lease_seconds=self.lease_seconds)
            if record is None:
                continue  # another dispatcher holds it, or started it already
            self._launch(record, summary)
            about = "" if event.instance is None else f" ({event.instance})"
            self.echo(f"event {event.id} {event.wire_name}{about} -> "
                      f"{record.flow_name or record.flow} on {event.branch} "
                      f"[dispatch {record.id}]")
        return True

    def _flow_key(self, trigger: Trigger) -> str:
        """The flow file, relative to the project root when inside it: what a dispatch
        record names and runs."""
        path = self.table.targets[trigger.flow].path.resolve()
        try:
            return path.relative_to(self.cwd).as_posix()
        except ValueError:
            return str(path)

    def _command(self, trigger: Trigger, flow: str, event: EventRecord,
                 summary: DispatchSummary) -> list[str] | None:
        """``python <flow> --quiet run --param=value …``: each value from the payload field
        the trigger maps, as one ``--name=value`` word (no shell, and a value can never be
        read as another option). A missing field leaves the flow's default, as an Argo
        Events sensor does; a field that is there but empty (an alias unset names no
        instance) starts nothing: None, and a note."""
        argv = [sys.executable, flow, "--quiet", "run"]
        payload = event.payload or {}
        for parameter, source in trigger.parameters.items():
            value = payload.get(source)
            if value is None and source in payload:
                summary.notes.append(f"event {event.id} ({event.name}) names no {source}: "
                                     f"{flow} not started")
                return None
            if value is None:
                summary.notes.append(f"event {event.id} has no {source!r} for --{parameter}: "
                                     f"{flow} uses its default")
                continue
            text = str(value)
            if len(text) > MAX_VALUE_CHARS or not text.isprintable():
                raise FlowpolicyError(
                    f"event {event.id} ({event.wire_name}): payload field {source!r} is not "
                    f"a plain value of at most {MAX_VALUE_CHARS} characters; it is not "
                    f"passed to {flow}")
            argv.append(f"--{parameter}={text}")
        return argv

    # -- launchers ----------------------------------------------------------------------

    def _launch(self, record: DispatchRecord, summary: DispatchSummary) -> None:
        pid = fork_launcher(self.registry.url, record.id, record.token,
                            self.log_dir / f"{record.id}.log", self.environment)
        self._launchers[pid] = (record, time.monotonic())
        summary.started.append(record.id)

    def _take_over(self, summary: DispatchSummary, max_runs: int) -> None:
        """Claims whose dispatcher died before its launcher started them: claimed again
        (a new token, so a late launcher of the old claim starts nothing) and launched."""
        for stale in self.registry.dispatches(lease_expired=True, limit=BATCH):
            if len(summary.started) >= max_runs:
                return
            if stale.cwd != str(self.cwd):
                continue  # another project's dispatcher will take it
            record = self.registry.claim_dispatch(
                stale.event_id, stale.flow, flow_name=stale.flow_name, branch=stale.branch,
                argv=stale.argv, cwd=stale.cwd, claimer=self.identity,
                lease_seconds=self.lease_seconds)
            if record is None:
                continue
            self._launch(record, summary)
            summary.taken_over.append(record.id)
            self.echo(f"dispatch {record.id} ({record.flow} for event {record.event_id}): "
                      f"taken over from {stale.claimed_by}, whose lease ran out")

    def _reap(self, summary: DispatchSummary) -> None:
        for pid, (record, began) in list(self._launchers.items()):
            done_pid, status = os.waitpid(pid, os.WNOHANG)
            if done_pid == 0:
                continue
            code = os.waitstatus_to_exitcode(status)
            del self._launchers[pid]
            if code == EXIT_TAKEN_OVER:
                summary.finished[record.id] = "taken over"
                continue
            done = self.registry.dispatch(record.id)
            summary.finished[record.id] = done.status or done.state
            why = f": {done.reason}" if done.reason else ""
            run = done.run_pathspec or record.flow
            self.echo(f"dispatch {record.id} {run} on {record.branch}: "
                      f"{done.status or done.state} ({time.monotonic() - began:.1f}s){why}")
