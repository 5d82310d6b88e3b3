"""``flowpolicy validate``: load every policy file named and report each one's outcome."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flowpolicy.diagnostics import CodeDoc, Diagnostic
from flowpolicy.errors import EXIT_FINDINGS, EXIT_OK, PolicyError
from flowpolicy.policy.codes import CODES
from flowpolicy.policy.loader import load_policy, require_policy_files
from flowpolicy.policy.model import Policy
from flowpolicy.request import ValidateRequest


@dataclass(frozen=True)
class PolicyFile:
    """One validated file: its policy, or the diagnostics that stopped it."""

    path: str
    policy: Policy | None
    diagnostics: tuple[Diagnostic, ...] = ()


@dataclass(frozen=True)
class ValidateReport:
    files: tuple[PolicyFile, ...]

    @property
    def diagnostics(self) -> tuple[Diagnostic, ...]:
        return tuple(d for file in self.files for d in file.diagnostics)

    @property
    def codes(self) -> Mapping[str, CodeDoc]:
        return {code: CodeDoc(code, meaning) for code, meaning in CODES.items()}

    @property
    def invalid(self) -> int:
        return sum(file.policy is None for file in self.files)

    @property
    def exit_code(self) -> int:
        return EXIT_FINDINGS if self.invalid else EXIT_OK

    @property
    def summary(self) -> str:
        if self.invalid:
            return (f"{len(self.diagnostics)} error(s) in {self.invalid} of {len(self.files)} "
                    "policy file(s)")
        return f"{len(self.files)} policy file(s) valid"

    def format_text(self) -> str:
        lines = []
        for file in self.files:
            if file.policy is not None:
                lines.append(f"{file.path}: ok (project {file.policy.project}, "
                             f"policy {file.policy.short_hash})")
            lines += [d.format() for d in file.diagnostics]
        return "".join(f"{line}\n" for line in lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "valid": not self.invalid,
            "error_count": len(self.diagnostics),
            "files": [{"path": file.path, "valid": file.policy is not None,
                       "project": file.policy.project if file.policy else None,
                       "hash": file.policy.hash if file.policy else None,
                       "diagnostics": [d.to_dict() for d in file.diagnostics]}
                      for file in self.files],
        }


def validate(request: ValidateRequest) -> ValidateReport:
    """Load every policy file named; an invalid one is a result (exit 1), a missing path or
    no policy file at all is invalid input (FlowpolicyError)."""
    files = []
    for path in require_policy_files(request.paths):
        try:
            files.append(PolicyFile(str(path), load_policy(path)))
        except PolicyError as exc:
            files.append(PolicyFile(str(path), None, exc.diagnostics))
    return ValidateReport(tuple(files))
