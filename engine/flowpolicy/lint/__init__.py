"""``flowpolicy lint``: find asset-name problems in Python source without importing it.

Public API::

    report = lint(LintRequest(paths=("src",)))   # every finding, then the totals
    for finding in report.findings:              # Diagnostic records in file order
        print(finding.format())
    report.stats                                 # files, parsed, bytes, findings, by code

``prepare(request)`` resolves policies and files without linting (configuration errors
surface before any output), and its ``findings()`` streams them. Rules live one per module
in :mod:`flowpolicy.lint.rules` (see :data:`RULES`); report formats in
:data:`flowpolicy.formats.FORMATS`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from flowpolicy.diagnostics import CodeDoc, Diagnostic
from flowpolicy.errors import EXIT_FINDINGS, EXIT_OK
from flowpolicy.lint.discovery import (
    PolicySet,
    context_for_policy,
    policy_set_of,
    resolve_policies,
    shown_path,
)
from flowpolicy.lint.engine import (
    LintConfig,
    LintStats,
    counted,
    ensure_codes,
    iter_python_files,
    lint_declared_names,
    lint_files,
)
from flowpolicy.lint.rules import RULES, RULES_BY_CODE
from flowpolicy.policy.model import Policy
from flowpolicy.policy.source import child_path
from flowpolicy.request import LintRequest

__all__ = [
    "RULES",
    "RULES_BY_CODE",
    "LintReport",
    "LintRequest",
    "LintRun",
    "lint",
    "lint_policy_names",
    "prepare",
    "rule_docs",
]


@dataclass
class LintRun:
    request: LintRequest
    policy_set: PolicySet
    config: LintConfig
    files: list[str]
    stats: LintStats = field(default_factory=LintStats)

    def findings(self) -> Iterator[Diagnostic]:
        """Findings of the policy files' declared names, then of the Python files."""
        if self.request.lint_policy_files:
            for policy in self.policy_set.policies:
                yield from counted(lint_policy_names(policy, self.config), self.stats)
        yield from lint_files(self.files, self.config, jobs=self.request.jobs, stats=self.stats)


def prepare(request: LintRequest, loaded: Sequence[Policy] | None = None) -> LintRun:
    """Resolve policies and files up front, so configuration errors (exit 2) surface before
    any output is written. ``loaded``: the policies of ``request.policies`` when the caller
    has loaded them already."""
    select = ensure_codes(request.select)
    ignore = ensure_codes(request.ignore)
    policy_set = policy_set_of(loaded) if loaded is not None else \
        resolve_policies(request.policies, exclude=request.exclude)
    config = LintConfig(
        scopes=policy_set.scopes,
        select=select,
        ignore=ignore,
        report_unused_noqa=request.report_unused_noqa,
    )
    files = list(iter_python_files(request.paths, request.exclude))
    return LintRun(request=request, policy_set=policy_set, config=config, files=files)


@dataclass(frozen=True)
class LintReport:
    """Every finding of one lint run, in file order, and the run's totals."""

    findings: tuple[Diagnostic, ...]
    stats: LintStats

    @property
    def diagnostics(self) -> tuple[Diagnostic, ...]:
        return self.findings

    @property
    def codes(self) -> Mapping[str, CodeDoc]:
        return rule_docs()

    @property
    def exit_code(self) -> int:
        return EXIT_FINDINGS if self.findings else EXIT_OK

    @property
    def summary(self) -> str:
        stats = self.stats
        plural = "" if stats.findings == 1 else "s"
        return (f"flowpolicy lint: {stats.findings} finding{plural} in {stats.files} files "
                f"({stats.parsed} parsed, {stats.bytes / 1e6:.1f} MB)")

    def format_text(self) -> str:
        return "".join(f"{finding.format()}\n" for finding in self.findings)

    def to_dict(self) -> dict[str, Any]:
        stats = self.stats
        return {"version": 1, "findings": [f.to_dict() for f in self.findings],
                "summary": {"files": stats.files, "parsed": stats.parsed, "bytes": stats.bytes,
                            "findings": stats.findings,
                            "by_code": dict(sorted(stats.counts.items()))}}


def lint(request: LintRequest) -> LintReport:
    """Lint what ``request`` names; raises FlowpolicyError for a bad request (exit 2)."""
    run = prepare(request)
    findings = tuple(run.findings())
    return LintReport(findings, run.stats)


def rule_docs() -> dict[str, CodeDoc]:
    """Every rule's code, summary, name and documentation, in code order."""
    return {rule.code: CodeDoc(rule.code, rule.summary, rule.name, rule.doc) for rule in RULES}


def lint_policy_names(policy: Policy, config: LintConfig) -> list[Diagnostic]:
    """Findings for the asset names a policy file declares, at their YAML lines."""

    @cache
    def lines_of(source: str) -> list[str]:
        try:
            return Path(source).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            return []

    names = []
    for name, decl in policy.assets.items():
        where = policy.locate(child_path("$.assets", name))
        names.append((name, decl.type, shown_path(where.file), where.line, where.col))
    return lint_declared_names(names, context_for_policy(policy), config, lines_of)

