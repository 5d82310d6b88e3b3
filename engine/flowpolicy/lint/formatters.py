"""Report formats, selected from :data:`FORMATTERS`. Every formatter streams: ``begin``
before the first finding, ``write`` per finding as it arrives, ``end`` with the totals, so
a large report never sits in memory."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TextIO
from urllib.parse import quote

from flowpolicy import __version__
from flowpolicy.lint.engine import LintStats
from flowpolicy.lint.finding import Finding
from flowpolicy.lint.rules import RULES, RULES_BY_CODE

SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"


class Formatter:
    def __init__(self, out: TextIO):
        self.out = out

    def begin(self) -> None:
        """Called once before the first finding."""

    def write(self, finding: Finding) -> None:
        raise NotImplementedError

    def end(self, stats: LintStats) -> None:
        """Called once after the last finding."""


class TextFormatter(Formatter):
    """``path:line:col: CODE message``, one per line (flake8's default)."""

    def write(self, finding: Finding) -> None:
        self.out.write(finding.format() + "\n")


class GithubFormatter(Formatter):
    """GitHub Actions workflow commands: each finding becomes an annotation on the PR."""

    def write(self, finding: Finding) -> None:
        props = {
            "file": finding.path.replace(os.sep, "/"),
            "line": finding.line,
            "col": finding.col,
        }
        if finding.end_line is not None:
            props["endLine"] = finding.end_line
        if finding.end_col is not None and finding.end_line == finding.line:
            props["endColumn"] = finding.end_col
        props["title"] = finding.code
        joined = ",".join(f"{k}={_escape_property(str(v))}" for k, v in props.items())
        self.out.write(f"::error {joined}::{_escape_data(finding.message)}\n")


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


class JsonFormatter(Formatter):
    """``{"version": 1, "findings": [...], "summary": {...}}``, written incrementally; each
    finding is :meth:`Finding.to_dict` plus the rule's name."""

    def begin(self) -> None:
        self.out.write('{"version": 1, "findings": [')
        self._first = True

    def write(self, finding: Finding) -> None:
        record = {**finding.to_dict(), "rule": RULES_BY_CODE[finding.code].name}
        self.out.write(("\n  " if self._first else ",\n  ") + json.dumps(record))
        self._first = False

    def end(self, stats: LintStats) -> None:
        summary = {
            "files": stats.files,
            "parsed": stats.parsed,
            "bytes": stats.bytes,
            "findings": stats.findings,
            "by_code": dict(sorted(stats.counts.items())),
        }
        self.out.write(("\n" if not self._first else "") + '], "summary": ')
        self.out.write(json.dumps(summary) + "}\n")


def sarif_rules() -> list[dict]:
    """``tool.driver.rules``: every rule's id, name, descriptions and help."""
    rules = []
    for rule in RULES:
        doc = rule.doc
        first, _, body = doc.partition("\n")
        rules.append(
            {
                "id": rule.code,
                "name": rule.name,
                "shortDescription": {"text": rule.summary},
                "fullDescription": {"text": body.strip() or first},
                "help": {"text": doc, "markdown": doc},
                "defaultConfiguration": {"level": "error"},
                "properties": {"tags": ["flowpolicy", "naming"]},
            }
        )
    return rules


def sarif_uri(path: str) -> dict:
    """A SARIF artifactLocation: repository-relative when possible (what code scanning
    wants), else an absolute file URI."""
    candidate = Path(path)
    if not candidate.is_absolute():
        return {"uri": quote(candidate.as_posix()), "uriBaseId": "%SRCROOT%"}
    try:
        relative = candidate.relative_to(Path.cwd())
    except ValueError:
        return {"uri": candidate.as_uri()}
    return {"uri": quote(relative.as_posix()), "uriBaseId": "%SRCROOT%"}


class SarifFormatter(Formatter):
    """SARIF 2.1.0, one run, rules in ``tool.driver.rules``; accepted by GitHub code scanning."""

    def begin(self) -> None:
        self._index = {rule.code: i for i, rule in enumerate(RULES)}
        head = {
            "$schema": SARIF_SCHEMA,
            "version": "2.1.0",
        }
        tool = {
            "driver": {
                "name": "flowpolicy",
                "version": __version__,
                "semanticVersion": __version__,
                "rules": sarif_rules(),
            }
        }
        root = Path.cwd().as_uri() + "/"
        self.out.write(json.dumps(head)[:-1] + ', "runs": [{"tool": ' + json.dumps(tool))
        self.out.write(', "originalUriBaseIds": ' + json.dumps({"%SRCROOT%": {"uri": root}}))
        self.out.write(', "columnKind": "unicodeCodePoints", "results": [')
        self._first = True

    def write(self, finding: Finding) -> None:
        region = {"startLine": finding.line, "startColumn": finding.col}
        if finding.end_line is not None:
            region["endLine"] = finding.end_line
        if finding.end_col is not None:
            region["endColumn"] = finding.end_col
        result = {
            "ruleId": finding.code,
            "ruleIndex": self._index[finding.code],
            "level": "error",
            "message": {"text": finding.message},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": sarif_uri(finding.path),
                        "region": region,
                    }
                }
            ],
        }
        self.out.write(("\n" if self._first else ",\n") + json.dumps(result))
        self._first = False

    def end(self, stats: LintStats) -> None:
        invocation = {"executionSuccessful": True}
        self.out.write('], "invocations": ' + json.dumps([invocation]) + "}]}\n")


FORMATTERS: dict[str, type[Formatter]] = {
    "text": TextFormatter,
    "json": JsonFormatter,
    "sarif": SarifFormatter,
    "github": GithubFormatter,
}
