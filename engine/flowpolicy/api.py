"""flowpolicy's public Python API: one function per command, one request object in
(:mod:`flowpolicy.request`), one typed result out.

::

    from flowpolicy import api

    report = api.check(api.CheckRequest(policies=("policies/fraud.yaml",)))
    report.exit_code            # 0 all hold, 1 a check failed, 2 invalid input
    report.diagnostics          # every result, a flowpolicy.diagnostics.Diagnostic
    report.to_dict()            # the command's documented JSON

Every result has ``exit_code``, ``format_text()`` and ``to_dict()`` (what ``--format text``
and ``json`` print, :mod:`flowpolicy.formats`); those of ``validate``, ``lint`` and
``check`` also have ``diagnostics`` and ``codes`` (``--format sarif`` and ``github``).
Invalid input raises :class:`~flowpolicy.errors.FlowpolicyError` (exit 2); findings,
failed checks and stale files are results, never exceptions. The command line
(:mod:`flowpolicy.commands`) only turns arguments into these requests and prints the results.

Each function imports the code that serves it when called: importing all of flowpolicy
costs ~0.25 s of CPU against ~0.06 s for ``flowpolicy --help`` and ~0.13 s for ``lint``
(measured with ``/usr/bin/time``), so a command loads only what it runs.
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
    EventsRequest,
    GraphRequest,
    LintRequest,
    PlanRequest,
    PromoteRequest,
    ReportRequest,
    RollbackRequest,
    ServeRequest,
    ValidateRequest,
)

if TYPE_CHECKING:
    from flowpolicy.check import CheckReport, PlanReport
    from flowpolicy.compile import CompileReport
    from flowpolicy.diagnostics import CodeDoc
    from flowpolicy.graph import GraphResult
    from flowpolicy.inventory import InventoryReport
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
    "EventsRequest",
    "GraphRequest",
    "LintRequest",
    "PlanRequest",
    "PromoteRequest",
    "ReportRequest",
    "RollbackRequest",
    "ServeRequest",
    "ValidateRequest",
    "alias",
    "assets",
    "check",
    "compile",
    "demo",
    "events",
    "graph",
    "lint",
    "lint_rules",
    "plan",
    "promote",
    "report",
    "rollback",
    "schema_file",
    "serve",
    "validate",
]


def validate(request: ValidateRequest) -> ValidateReport:
    """Load every policy file named: each valid, or its located diagnostics (exit 1)."""
    from flowpolicy.policy.validation import validate as run  # on call: see above

    return run(request)


def compile(request: CompileRequest) -> CompileReport:
    """Compile the policies and write their flows, or with ``check`` compare them with the
    files on disk (exit 1 when one is stale); two policies writing one file is an error."""
    from flowpolicy.compile import compile_policies  # on call: see above

    return compile_policies(request)


def lint(request: LintRequest) -> LintReport:
    """Asset-name findings in the files and policies named (:mod:`flowpolicy.lint`)."""
    from flowpolicy.lint import lint as run  # on call: see above

    return run(request)


def lint_rules() -> tuple[CodeDoc, ...]:
    """Every lint rule: code, name, summary and documentation, in code order."""
    from flowpolicy.lint import rule_docs  # on call: see above

    return tuple(rule_docs().values())


def check(request: CheckRequest) -> CheckReport:
    """Static and live checks of the policies (:mod:`flowpolicy.check`)."""
    from flowpolicy.check import run_check  # on call: see above

    return run_check(request)


def plan(request: PlanRequest) -> PlanReport:
    """What each generated flow would decide now; reads only (:mod:`flowpolicy.check.plan`)."""
    from flowpolicy.check import run_plan  # on call: see above

    return run_plan(request)


def assets(request: AssetsRequest) -> InventoryReport:
    """What the registry holds (:mod:`flowpolicy.inventory`); it is opened read-only."""
    from flowpolicy.inventory import list_assets  # on call: see above

    return list_assets(request)


def events(request: EventsRequest) -> InventoryReport:
    """The project events published to the registry, oldest first."""
    from flowpolicy.inventory import list_events  # on call: see above

    return list_events(request)


def report(request: ReportRequest) -> ReportResult:
    """Write the HTML page of the registry's history (:mod:`flowpolicy.report`)."""
    from dataclasses import replace

    from flowpolicy.inventory import default_project  # on call: see above
    from flowpolicy.report import write_report
    from flowpolicy.runtime.branch import sanitize_branch

    return write_report(replace(
        request, project=default_project(request.project, all_projects=True),
        branch=sanitize_branch(request.branch) if request.branch else None))


def promote(request: PromoteRequest) -> MoveOutcome:
    """Promote an instance along a declared edge, refused exactly when the promotion flow
    would refuse it (exit 1); :mod:`flowpolicy.runtime.moves`."""
    from flowpolicy.runtime.moves import perform  # on call: see above

    return perform(request)


def rollback(request: RollbackRequest) -> MoveOutcome:
    """Return an alias to its previous holder (or ``to``), refused (exit 1) when that
    instance fails the alias's gates now unless forced with a reason."""
    from flowpolicy.runtime.moves import perform  # on call: see above

    return perform(request)


def alias(request: AliasRequest) -> MoveOutcome:
    """Set or unset an alias by hand, with the reason in its history."""
    from flowpolicy.runtime.moves import perform  # on call: see above

    return perform(request)


def serve(request: ServeRequest, started: Callable[[str, str], None]) -> None:
    """Serve the model an alias points at until SIGINT / SIGTERM, following the alias
    (:mod:`flowpolicy.serve`); ``started(serving, following)`` once it listens."""
    from flowpolicy.serve import serve as run  # on call: FastAPI and uvicorn load only here

    run(request, started)


def graph(request: GraphRequest) -> GraphResult:
    """The promotion graph of one policy, drawn (:mod:`flowpolicy.graph`)."""
    from flowpolicy.graph import draw  # on call: see above

    return draw(request)


def demo(request: DemoRequest) -> Path:
    """Run the fraud example end to end (:mod:`flowpolicy.demo`); returns the scratch
    project. A flow whose outcome is not what the policy demands is an error (exit 1)."""
    from flowpolicy.demo import run_demo  # on call: see above

    return run_demo(request.directory, echo=request.echo)


def schema_file() -> Path:
    """The installed policy JSON Schema (Draft 2020-12)."""
    from flowpolicy.resources import schema_path  # on call: see above

    return schema_path("policy")
