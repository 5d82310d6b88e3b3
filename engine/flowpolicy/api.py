"""flowpolicy's public Python API: one function per command, one request object in
(:mod:`flowpolicy.request`), one typed report out::

    from flowpolicy import api

    report = api.check(api.CheckRequest(policies=("policies/fraud.yaml",)))
    report.exit_code            # 0 all hold, 1 a check failed, 2 invalid input
    report.diagnostics          # every result, a flowpolicy.diagnostics.Diagnostic
    report.to_dict()            # the command's documented JSON

A report has ``exit_code``, ``format_text()`` and ``to_dict()`` (``--format text`` / ``json``,
:mod:`flowpolicy.formats`); those of ``validate``, ``lint`` and ``check`` also ``diagnostics``
and ``codes`` (``sarif`` / ``github``). Invalid input raises
:class:`~flowpolicy.errors.FlowpolicyError` (exit 2); findings, failed checks and lifecycle
refusals are reports (a registry copy's refusals are errors with exit 1). The command line
only turns arguments into requests and prints the reports.

Each function imports the code that serves it when called: all of flowpolicy takes ~0.25 s
of CPU to import, ``flowpolicy --help`` ~0.06 s (``/usr/bin/time``), so a command loads only
what it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from flowpolicy.request import (
    AliasRequest,
    AssetsRequest,
    CheckRequest,
    CompileRequest,
    DemoRequest,
    DispatchRequest,
    EventRunsRequest,
    EventsRequest,
    GraphRequest,
    LintRequest,
    PlanRequest,
    PromoteRequest,
    RegistryCopyRequest,
    RegistryInfoRequest,
    ReportRequest,
    RollbackRequest,
    ServeRequest,
    ValidateRequest,
)

if TYPE_CHECKING:
    from flowpolicy.check import CheckReport, PlanReport
    from flowpolicy.compile import CompileReport
    from flowpolicy.diagnostics import CodeDoc
    from flowpolicy.dispatch.chain import EventRunsReport
    from flowpolicy.dispatch.service import DispatchReport, TriggerListing
    from flowpolicy.graph import GraphResult
    from flowpolicy.inventory import (
        EventFollow,
        InventoryReport,
        RegistryCopyReport,
        RegistryInfoReport,
    )
    from flowpolicy.lint import LintReport
    from flowpolicy.policy.validation import ValidateReport
    from flowpolicy.report import ReportResult
    from flowpolicy.runtime.moves import MoveOutcome

__all__ = [
    "AliasRequest",
    "AssetsRequest",
    "CheckRequest",
    "CompileRequest",
    "DemoRequest",
    "DispatchRequest",
    "EventRunsRequest",
    "EventsRequest",
    "GraphRequest",
    "LintRequest",
    "PlanRequest",
    "PromoteRequest",
    "RegistryCopyRequest",
    "RegistryInfoRequest",
    "ReportRequest",
    "RollbackRequest",
    "ServeRequest",
    "ValidateRequest",
    "alias",
    "assets",
    "check",
    "compile",
    "demo",
    "dispatch",
    "event_runs",
    "events",
    "follow_events",
    "graph",
    "lint",
    "lint_rules",
    "plan",
    "promote",
    "registry_copy",
    "registry_info",
    "report",
    "rollback",
    "schema_file",
    "serve",
    "validate",
]


def validate(request: ValidateRequest) -> ValidateReport:
    """Every policy file named: valid, or its located diagnostics (exit 1)."""
    from flowpolicy.policy.validation import validate
    return validate(request)


def compile(request: CompileRequest) -> CompileReport:
    """Write the policies' flows, or with ``check`` report the stale ones (exit 1)."""
    from flowpolicy.compile import compile_policies
    return compile_policies(request)


def lint(request: LintRequest) -> LintReport:
    """Asset-name findings in the files and policies named (:mod:`flowpolicy.lint`)."""
    from flowpolicy.lint import lint
    return lint(request)


def lint_rules() -> tuple[CodeDoc, ...]:
    """Every lint rule: code, name, summary and documentation, in code order."""
    from flowpolicy.lint import rule_docs
    return tuple(rule_docs().values())


def check(request: CheckRequest) -> CheckReport:
    """Static and live checks of the policies (:mod:`flowpolicy.check`)."""
    from flowpolicy.check import run_check
    return run_check(request)


def plan(request: PlanRequest) -> PlanReport:
    """What each generated flow would decide now; reads only (:mod:`flowpolicy.check.plan`)."""
    from flowpolicy.check import run_plan
    return run_plan(request)


def assets(request: AssetsRequest) -> InventoryReport:
    """What the registry holds, read-only (:mod:`flowpolicy.inventory`)."""
    from flowpolicy.inventory import list_assets
    return list_assets(request)


def events(request: EventsRequest) -> InventoryReport:
    """The project events published to the registry, oldest first."""
    from flowpolicy.inventory import list_events
    return list_events(request)


def follow_events(request: EventsRequest) -> EventFollow:
    """The events so far, then each new one as it is published, until ``follow_for``
    seconds pass (default: forever); the registry is opened, and its errors raised, here."""
    from flowpolicy.inventory import follow_events
    return follow_events(request)


def event_runs(request: EventRunsRequest) -> EventRunsReport:
    """Event -> run -> event: the runs each event started (``flowpolicy dispatch``) and how
    they ended, read-only (:mod:`flowpolicy.dispatch.chain`)."""
    from flowpolicy.dispatch.chain import event_runs
    return event_runs(request)


def dispatch(request: DispatchRequest) -> DispatchReport | TriggerListing:
    """Start the flows the policy's triggers name for the registry's new events, as Argo
    Events starts them when deployed; ``mode="list"``: the trigger table, nothing started
    (:mod:`flowpolicy.dispatch`)."""
    from flowpolicy.dispatch.service import dispatch
    return dispatch(request)


def registry_info(request: RegistryInfoRequest) -> RegistryInfoReport:
    """The registry's backend, location, schema version and sizes, read-only."""
    from flowpolicy.inventory import registry_info
    return registry_info(request)


def registry_copy(request: RegistryCopyRequest) -> RegistryCopyReport:
    """Copy a whole SQL registry into another, verified; refusals raise RegistryError
    (exit 1): nothing to copy, a destination not empty without ``replace``, no verify."""
    from flowpolicy.inventory import registry_copy
    return registry_copy(request)


def report(request: ReportRequest) -> ReportResult:
    """Write the HTML page of the registry's history (:mod:`flowpolicy.report`); without a
    project, the one FLOWPOLICY_PROJECT / obproject.toml names, else every project."""
    from dataclasses import replace

    from flowpolicy.inventory import default_project
    from flowpolicy.report import write_report
    from flowpolicy.runtime.branch import sanitize_branch
    return write_report(replace(
        request, project=default_project(request.project, all_projects=True),
        branch=sanitize_branch(request.branch) if request.branch else None))


def graph(request: GraphRequest) -> GraphResult:
    """The promotion graph of one policy, drawn (:mod:`flowpolicy.graph`)."""
    from flowpolicy.graph import draw
    return draw(request)


def promote(request: PromoteRequest) -> MoveOutcome:
    """Promote along a declared edge, refused (exit 1) exactly when the promotion flow would
    refuse (:mod:`flowpolicy.runtime.moves`)."""
    from flowpolicy.runtime.moves import perform
    return perform(request)


def rollback(request: RollbackRequest) -> MoveOutcome:
    """Return an alias to its previous holder (or ``to``); refused (exit 1) when that instance
    fails the alias's gates now, unless forced with a reason."""
    from flowpolicy.runtime.moves import perform
    return perform(request)


def alias(request: AliasRequest) -> MoveOutcome:
    """Set or unset an alias by hand, with the reason in its history."""
    from flowpolicy.runtime.moves import perform
    return perform(request)


def serve(request: ServeRequest, started: Callable[[str, str], None]) -> None:
    """Serve the model an alias points at until SIGINT / SIGTERM, following the alias;
    ``started(serving, following)`` once it listens (:mod:`flowpolicy.serve`)."""
    from flowpolicy.serve import serve  # FastAPI and uvicorn load only here
    serve(request, started)


def demo(request: DemoRequest) -> Path:
    """Run the fraud example end to end and return its scratch project; a flow whose outcome
    is not what the policy demands is an error (exit 1; :mod:`flowpolicy.demo`)."""
    from flowpolicy.demo import run_demo
    return run_demo(request.directory, echo=request.echo, registry=request.registry)


def schema_file() -> Path:
    """The installed policy JSON Schema (Draft 2020-12)."""
    from flowpolicy.resources import schema_path
    return schema_path("policy")
