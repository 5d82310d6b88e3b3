"""``flowpolicy check`` and ``flowpolicy plan`` (:func:`run_check`, :func:`run_plan`, also as
:func:`flowpolicy.api.check` / :func:`flowpolicy.api.plan`): do the policies hold, and what
would the generated flows decide now? ``schemas/check-report.schema.json`` and
``schemas/plan-report.schema.json`` document their reports' ``to_dict()``.

Both only read the registry (peeks, never consumption; no aliases, evidence or events are
written) and never create a registry file: a missing one is invalid input. Every decision
is the runtime's (:mod:`flowpolicy.runtime.decisions`, :mod:`flowpolicy.runtime.drift`), the
compiler's (``output_results``) or the linter's.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import tomllib

from flowpolicy.check.live import RegistryView, check_branches, live_results
from flowpolicy.check.metaflow_runs import MetaflowRuns
from flowpolicy.check.plan import PlanReport, run_plan
from flowpolicy.check.report import CHECK_IDS, CheckReport, PolicyInfo, SectionReport
from flowpolicy.check.static import lint_results
from flowpolicy.compile import compile_policy, output_results
from flowpolicy.diagnostics import Diagnostic
from flowpolicy.errors import PolicyError
from flowpolicy.inventory import open_to_read
from flowpolicy.policy.loader import load_policy, require_policy_files
from flowpolicy.policy.model import Policy
from flowpolicy.project_root import PROJECT_FILE
from flowpolicy.request import CheckRequest, PlanRequest

__all__ = [
    "CHECK_IDS",
    "CheckReport",
    "CheckRequest",
    "PlanReport",
    "PlanRequest",
    "run_check",
    "run_plan",
]


def run_check(request: CheckRequest) -> CheckReport:
    """Run the static and live checks; never raises for a failing check (those are results),
    only for invalid input (a missing path, an unreadable registry, an unknown branch)."""
    now = request.now or datetime.now(timezone.utc)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    files = require_policy_files(request.policies)
    policies: list[Policy] = []
    infos: list[PolicyInfo] = []
    policy_results: list[Diagnostic] = []
    for path in files:
        try:
            policy = load_policy(path)
        except PolicyError as exc:
            infos.append(PolicyInfo(str(path), None, None))
            policy_results += [
                Diagnostic("policy.valid", "error", d.format(), path=d.path, line=d.line,
                           col=d.col, policy=str(path), rule=d.code, evidence=d.to_dict())
                for d in exc.diagnostics]
            continue
        policies.append(policy)
        infos.append(PolicyInfo(str(path), policy.project, policy.hash))
        policy_results.append(Diagnostic(
            "policy.valid", "pass",
            f"{path} is valid (project {policy.project}, {len(policy.assets)} assets, "
            f"{len(policy.gates)} gates, {len(policy.promotion)} promotion edges)",
            path=str(path), policy=str(path)))
        policy_results += _project_results(policy, path)
    sections = [SectionReport("policy", True, tuple(policy_results))]
    if len(policies) < len(files):
        skipped = "not run: a policy is invalid"
        sections += [SectionReport(name, False, note=skipped)
                     for name in ("compile", "lint", "live")]
        return CheckReport(tuple(infos), request.registry, tuple(request.branches),
                           tuple(sections), stamp, invalid_input=True)

    if request.static:
        outputs = [compile_policy(p) for p in policies]
        compiled = [r for p, out in zip(policies, outputs, strict=True)
                    for r in output_results(p, outputs=out)]
        sections.append(SectionReport("compile", True, tuple(compiled)))
        sections.append(SectionReport(
            "lint", True, tuple(lint_results(policies, request.src, outputs))))
    else:
        sections += [SectionReport(n, False, note="not run (--no-static)")
                     for n in ("compile", "lint")]

    registry_url = None
    branches: tuple[str, ...] = ()
    if request.live:
        registry = open_to_read(request.registry, "nothing to check")
        registry_url = registry.url
        runs = MetaflowRuns(request.metaflow_root)
        live: list[Diagnostic] = []
        for policy in policies:
            view = RegistryView(registry, policy.project)
            policy_branches = check_branches(policy, request.branches) or view.branches
            branches += tuple(b for b in policy_branches if b not in branches)
            live += live_results(policy, view, policy_branches, now=now, runs=runs,
                                 all_branches=not request.branches)
        sections.append(SectionReport("live", True, tuple(live)))
    else:
        sections.append(SectionReport("live", False, note="not run (--no-live)"))
    return CheckReport(tuple(infos), registry_url, branches, tuple(sections), stamp)


def _project_results(policy: Policy, path: Path) -> list[Diagnostic]:
    """``policy.project``: the project's obproject.toml (the nearest one above the policy,
    within its repository) names the policy's project. When it names another, a hand-written
    ProjectFlow registers under that name while the generated flows use the policy's, and
    neither sees the other's assets."""
    for folder in Path(path).resolve().parents:
        toml = folder / PROJECT_FILE
        if toml.is_file():
            break
        if (folder / ".git").exists():
            return []
    else:
        return []
    about = {"path": str(toml), "policy": str(path), "rule": "project"}
    try:
        named = tomllib.loads(toml.read_text(encoding="utf-8")).get("project")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return [Diagnostic("policy.project", "error", f"{toml} cannot be read: {exc}", **about)]
    if named == policy.project:
        return [Diagnostic("policy.project", "pass",
                           f"{toml} names the policy's project {policy.project}", **about)]
    return [Diagnostic(
        "policy.project", "error",
        f"{toml} names project {named!r} but the policy is for {policy.project!r}: flows "
        f"that take the project from {PROJECT_FILE} register under {named!r}, the generated "
        f"flows under {policy.project!r}, and neither sees the other's assets",
        **about, evidence={"obproject_toml": str(toml), "named": named})]
