"""The one record every command states its findings in (flake8's ``Violation``).

A policy error at ``file:line:col``, a lint finding in a source file, a check that holds or
fails for an asset on a branch, what a generated flow would decide: each is a
:class:`Diagnostic` — a code, a message and a severity, located in a file and/or at a
registry subject (asset, branch, instance, rule), with the evidence it rests on. Every
report format in :mod:`flowpolicy.formats` prints these records.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Literal

#: ``error`` fails the command, ``warning`` does not, ``note`` states a fact (what a flow
#: would decide), ``pass`` is a check that holds.
Severity = Literal["error", "warning", "note", "pass"]


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One located statement. ``line``/``col`` are 1-based and count characters."""

    #: ``FP203`` (policy), ``FPL001`` (lint), ``live.gate`` (check), ``plan.gate`` (plan).
    code: str
    severity: Severity
    message: str
    _: KW_ONLY
    path: str | None = None
    line: int | None = None
    col: int | None = None
    end_line: int | None = None
    end_col: int | None = None
    #: Where in the policy document (``$.gates.quality.asset``), for policy diagnostics.
    json_path: str | None = None
    #: The policy file the statement is judged under.
    policy: str | None = None
    asset: str | None = None
    branch: str | None = None
    instance: str | None = None
    #: The rule it is about: a gate, a promotion edge, a lint rule's name, a policy code.
    rule: str | None = None
    #: What was decided, for a statement of a decision (plan: pass, refused, high, ...).
    outcome: str | None = None
    #: What the statement rests on, as plain JSON data.
    evidence: Mapping[str, Any] = field(default_factory=dict)

    @property
    def location(self) -> str:
        """``path:line:col`` as far as known; "" when not about a file."""
        if self.path is None:
            return ""
        parts = [self.path, *(str(n) for n in (self.line, self.col) if n is not None)]
        return ":".join(parts)

    @property
    def text(self) -> str:
        """The message, after the JSON path it is about when there is one."""
        return f"{self.json_path}: {self.message}" if self.json_path else self.message

    def format(self) -> str:
        """``path:line:col: CODE [json.path: ]message``, flake8's default line."""
        where = f"{self.location}: " if self.path else ""
        return f"{where}{self.code} {self.text}"

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON: position, code, severity and message always; the subject
        fields and evidence when set."""
        record: dict[str, Any] = {
            "path": self.path, "line": self.line, "col": self.col,
            "end_line": self.end_line, "end_col": self.end_col,
            "code": self.code, "severity": self.severity, "message": self.message,
        }
        for key in ("json_path", "policy", "asset", "branch", "instance", "rule", "outcome"):
            value = getattr(self, key)
            if value is not None:
                record[key] = value
        if self.evidence:
            record["evidence"] = plain(self.evidence)
        return record


@dataclass(frozen=True)
class CodeDoc:
    """What one code means: SARIF's ``tool.driver.rules`` entry for it."""

    code: str
    summary: str
    name: str | None = None
    #: Longer documentation (a lint rule's docstring); the summary when None.
    doc: str | None = None


def plain(value: Any) -> Any:
    """``value`` as JSON-safe data: tuples to lists, mappings to dicts, NaN to "nan"."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, float) and value != value:
        return "nan"
    return value
