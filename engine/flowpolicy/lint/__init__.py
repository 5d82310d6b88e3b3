"""``flowpolicy lint``: find asset-name problems in Python source without importing it.

Public API::

    run = prepare(LintRequest(paths=("src",)))   # loads policies, lists files (may raise)
    for finding in run.findings():               # streams Finding records in file order
        print(finding.format())
    run.stats                                    # files, parsed, bytes, findings, by code

Rules live one per module in :mod:`flowpolicy.lint.rules` (see :data:`RULES`); formats in
:data:`flowpolicy.lint.formatters.FORMATTERS`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

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
from flowpolicy.lint.finding import Finding
from flowpolicy.lint.rules import RULES, RULES_BY_CODE
from flowpolicy.policy.model import Policy
from flowpolicy.policy.source import child_path

__all__ = [
    "RULES",
    "RULES_BY_CODE",
    "Finding",
    "LintRequest",
    "LintRun",
    "lint_policy_names",
    "prepare",
]


@dataclass(frozen=True)
class LintRequest:
    """What to lint and how; the one object the CLI hands to the API."""

    paths: tuple[str, ...] = (".",)
    policies: tuple[str, ...] = ()
    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    report_unused_noqa: bool = False
    jobs: int | None = None
    #: Lint the asset names declared in the policy files themselves.
    lint_policy_files: bool = True


@dataclass
class LintRun:
    request: LintRequest
    policy_set: PolicySet
    config: LintConfig
    files: list[str]
    stats: LintStats = field(default_factory=LintStats)

    def findings(self) -> Iterator[Finding]:
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


def lint_policy_names(policy: Policy, config: LintConfig) -> list[Finding]:
    """Findings for the asset names a policy file declares, at their YAML lines."""
    cache: dict[str, list[str]] = {}

    def lines_of(source: str) -> list[str]:
        if source not in cache:
            try:
                cache[source] = Path(source).read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError):
                cache[source] = []
        return cache[source]

    names = []
    for name, decl in policy.assets.items():
        where = policy.locate(child_path("$.assets", name))
        names.append((name, decl.type, shown_path(where.file), where.line, where.col))
    return lint_declared_names(names, context_for_policy(policy), config, lines_of)

