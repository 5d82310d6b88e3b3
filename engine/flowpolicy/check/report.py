"""The check report: one :class:`~flowpolicy.diagnostics.Diagnostic` per check made (its
code the check id), grouped in four sections.

Every result names its check id (stable: ``live.gate``, ``live.champion.count``, …), its
severity (``pass``, ``error`` for a check that fails, ``warning``), the asset, branch,
instance and rule it is about, a message, and the evidence it rests on (plain JSON).
``schemas/check-report.schema.json`` documents :meth:`CheckReport.to_dict`, where the
severity is the result's ``status`` (pass, fail, warn).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from flowpolicy.diagnostics import CodeDoc, Diagnostic, plain
from flowpolicy.errors import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE

Status = Literal["pass", "fail", "warn"]

#: Every check id, with what it verifies (the documentation of the ids; the schema lists
#: the same ids).
CHECK_IDS: Mapping[str, str] = {
    "policy.valid": "the policy file loads: schema, references, naming",
    "policy.project": "the project's obproject.toml names the policy's project",
    "compile.current": "the generated flows on disk are what the policy compiles to now",
    "lint.clean": "asset names used in code obey the naming policy",
    "live.gate": "the instance behind a promotion alias passes its gates under the current "
                 "policy",
    "live.alias": "a promotion target branch holding an asset has the edge's alias set",
    "live.champion.count": "exactly one champion: the alias is set and exactly one training "
                           "run carries the champion tag",
    "live.champion.tag": "the champion alias and the training run's Metaflow tag agree",
    "live.lineage": "an instance on a promotion target branch came along a declared edge "
                    "with the edge's requirements recorded as passed on its source instance "
                    "under the policy's thresholds",
    "live.lineage.policy_hash": "the evidence a promotion rests on was judged under the "
                                "current policy (a warning when not)",
    "live.drift.report": "drift of a data asset with two or more instances has been measured "
                         "under the policy's drift thresholds and its report registered",
    "live.drift.age": "the newest drift report is not older than the rule's max_age",
    "live.drift.behind": "the newest instance of the data asset has been drift-checked "
                         "(a warning when not)",
    "live.declared": "every asset in the registry is declared in the policy, with its type "
                     "(when naming.declared_only)",
    "live.annotations": "every instance of a declared asset carries the asset's "
                        "required_annotations",
    "live.branches": "the project's assets are on branches the policy declares (a warning "
                     "naming the others, which are not checked)",
    "live.coverage": "at least one live check ran for the policy: zero checks is not a pass",
}


#: A check result's status in the report, by its severity.
STATUS: Mapping[str, Status] = {"pass": "pass", "error": "fail", "warning": "warn"}


def result_dict(result: Diagnostic) -> dict[str, Any]:
    """One check result as ``schemas/check-report.schema.json`` documents it."""
    return {
        "check": result.code,
        "status": STATUS[result.severity],
        "message": result.message,
        "asset": result.asset,
        "branch": result.branch,
        "instance": result.instance,
        "rule": result.rule,
        "policy": result.policy,
        "evidence": plain(result.evidence),
    }


@dataclass(frozen=True)
class SectionReport:
    name: str
    #: False when the section was not run (``--no-static`` / ``--no-live``, or an invalid
    #: policy stopped everything after the policy section).
    ran: bool
    results: tuple[Diagnostic, ...] = ()
    note: str = ""

    @property
    def status(self) -> str:
        if not self.ran:
            return "skipped"
        return "fail" if any(r.severity == "error" for r in self.results) else "pass"

    def count(self, status: Status) -> int:
        return sum(1 for r in self.results if STATUS[r.severity] == status)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "note": self.note,
            "counts": {s: self.count(s) for s in ("pass", "fail", "warn")},
            "results": [result_dict(r) for r in self.results],
        }


@dataclass(frozen=True)
class PolicyInfo:
    file: str
    project: str | None
    hash: str | None


@dataclass(frozen=True)
class CheckReport:
    policies: tuple[PolicyInfo, ...]
    registry: str | None
    branches: tuple[str, ...]
    sections: tuple[SectionReport, ...]
    checked_at: str
    #: True when a policy is invalid: the report is printed, the exit code is 2.
    invalid_input: bool = False

    @property
    def results(self) -> tuple[Diagnostic, ...]:
        return tuple(r for s in self.sections for r in s.results)

    diagnostics = results

    @property
    def codes(self) -> Mapping[str, CodeDoc]:
        return {check: CodeDoc(check, meaning) for check, meaning in CHECK_IDS.items()}

    @property
    def failures(self) -> tuple[Diagnostic, ...]:
        return tuple(r for r in self.results if r.severity == "error")

    @property
    def exit_code(self) -> int:
        if self.invalid_input:
            return EXIT_USAGE
        return EXIT_FINDINGS if self.failures else EXIT_OK

    @property
    def ok(self) -> bool:
        return self.exit_code == EXIT_OK

    def section(self, name: str) -> SectionReport:
        return next(s for s in self.sections if s.name == name)

    def format_text(self, *, verbose: bool = False) -> str:
        """The report for a terminal: one line per section, one per result (passing results
        only with ``verbose``), and the evidence of each failure and warning."""
        lines = []
        for policy in self.policies:
            what = (f"project {policy.project}, policy {policy.hash[:12]}" if policy.hash
                    else "invalid")
            lines.append(f"policy {policy.file} ({what})")
        if self.registry:
            lines.append(f"registry {self.registry}; branches {', '.join(self.branches)}")
        lines.append("")
        for section in self.sections:
            warned = section.count("warn")
            counts = f"{section.count('pass')} passed, {section.count('fail')} failed" + (
                f", {warned} warning{'' if warned == 1 else 's'}" if warned else "")
            shown = counts if section.ran else section.note
            status = "FAIL" if section.status == "fail" else section.status
            lines.append(f"{section.name:<8} {status:<8} {shown}")
            for result in section.results:
                if result.severity == "pass" and not verbose:
                    continue
                lines.append(f"  {_MARK[result.severity]} {result.code:<24} {_subject(result)}")
                lines.append(f"       {result.message}")
                # a lint finding or policy diagnostic is its own evidence (path:line:col)
                if result.severity != "pass" and result.evidence and result.code.startswith(
                        ("compile.", "live.")):
                    for line in _evidence_lines(result.evidence):
                        lines.append(f"       | {line}")
        failed = len(self.failures)
        warned = sum(1 for r in self.results if r.severity == "warning")
        total = len(self.results)
        verdict = "invalid input" if self.invalid_input else ("FAILED" if failed else "all hold")
        lines.append("")
        lines.append(f"flowpolicy check: {verdict} ({total} check{'' if total == 1 else 's'}, "
                     f"{failed} failed, {warned} warning{'' if warned == 1 else 's'})")
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "ok": self.ok,
            "exit_code": self.exit_code,
            "checked_at": self.checked_at,
            "policies": [asdict(p) for p in self.policies],
            "registry": self.registry,
            "branches": list(self.branches),
            "summary": {s: sum(section.count(s) for section in self.sections)
                        for s in ("pass", "fail", "warn")},
            "sections": [s.to_dict() for s in self.sections],
        }


# -- text ------------------------------------------------------------------------------------

_MARK = {"pass": "ok  ", "error": "FAIL", "warning": "warn"}


def _subject(result: Diagnostic) -> str:
    parts = []
    if result.branch:
        parts.append(result.branch)
    if result.asset:
        parts.append(result.asset + (f" {result.instance}" if result.instance else ""))
    if result.rule:
        parts.append(f"rule {result.rule}")
    if not parts and result.policy:
        parts.append(result.policy)
    return " / ".join(parts)


def _evidence_lines(evidence: Mapping[str, Any], *, diff_lines: int = 12,
                    width: int = 160) -> list[str]:
    """Evidence in a few lines: a diff's head, else one ``key: compact JSON`` line per key
    (cut at ``width``; ``--format json`` has it whole)."""
    diff = evidence.get("diff")
    if isinstance(diff, str):
        body = diff.splitlines()
        more = len(body) - diff_lines
        return body[:diff_lines] + ([f"... {more} more lines"] if more > 0 else [])
    lines = []
    for key, value in plain(evidence).items():
        text = json.dumps(value, sort_keys=True, separators=(", ", ": "), default=str)
        line = f"{key}: {text}"
        lines.append(line if len(line) <= width else line[:width - 3] + "...")
    return lines
