"""Report formats, selected from :data:`FORMATS` by every command's ``--format``.

A command's API result is a :class:`Report`: ``text`` prints its ``format_text()``, ``json``
serialises its ``to_dict()`` (each command's documented shape). Reports made of
:class:`~flowpolicy.diagnostics.Diagnostic` records (:class:`DiagnosticReport`: ``validate``,
``lint``, ``check``) also print as ``sarif`` (SARIF 2.1.0, for code scanning) and ``github``
(workflow commands, which annotate the pull request). JSON and SARIF are built as data and
serialised once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TextIO
from urllib.parse import quote

from flowpolicy import __version__
from flowpolicy.diagnostics import CodeDoc, Diagnostic

SARIF_SCHEMA = ("https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/"
                "sarif-schema-2.1.0.json")


class Report(Protocol):
    """What every command's API call returns."""

    @property
    def exit_code(self) -> int: ...

    def to_dict(self) -> dict[str, Any]: ...

    def format_text(self) -> str: ...


class DiagnosticReport(Report, Protocol):
    """A report of located statements, printable as SARIF and GitHub annotations."""

    @property
    def diagnostics(self) -> Sequence[Diagnostic]: ...

    @property
    def codes(self) -> Mapping[str, CodeDoc]:
        """Every code the command can report (SARIF lists them all as its rules)."""
        ...


def write_text(report: Report, out: TextIO) -> None:
    out.write(report.format_text())


def write_json(report: Report, out: TextIO) -> None:
    json.dump(report.to_dict(), out, indent=2)
    out.write("\n")


def write_sarif(report: DiagnosticReport, out: TextIO) -> None:
    json.dump(sarif_log(report), out)
    out.write("\n")


def write_github(report: DiagnosticReport, out: TextIO) -> None:
    for diagnostic in report.diagnostics:
        command = _GITHUB_COMMAND.get(diagnostic.severity)
        if command is not None:
            out.write(github_annotation(diagnostic, command) + "\n")


#: Format name → writer. A command offers the names its report supports: ``text`` and
#: ``json`` always, ``sarif`` and ``github`` for a :class:`DiagnosticReport`.
FORMATS: dict[str, Callable[[Any, TextIO], None]] = {
    "text": write_text,
    "json": write_json,
    "sarif": write_sarif,
    "github": write_github,
}
DATA_FORMATS = ("text", "json")
DIAGNOSTIC_FORMATS = tuple(FORMATS)


# -- SARIF -------------------------------------------------------------------------------------

_SARIF_LEVEL = {"error": "error", "warning": "warning", "note": "note", "pass": "none"}


def sarif_log(report: DiagnosticReport) -> dict[str, Any]:
    """One SARIF 2.1.0 run: every code as a rule, every diagnostic as a result (a check that
    holds as ``kind: pass``)."""
    index = {code: i for i, code in enumerate(report.codes)}
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "flowpolicy", "version": __version__, "semanticVersion": __version__,
                "rules": [_sarif_rule(doc) for doc in report.codes.values()],
            }},
            "originalUriBaseIds": {"%SRCROOT%": {"uri": Path.cwd().as_uri() + "/"}},
            "columnKind": "unicodeCodePoints",
            "results": [_sarif_result(d, index) for d in report.diagnostics],
            "invocations": [{"executionSuccessful": True}],
        }],
    }


def _sarif_rule(doc: CodeDoc) -> dict[str, Any]:
    text = doc.doc or doc.summary
    rule: dict[str, Any] = {"id": doc.code}
    if doc.name:
        rule["name"] = doc.name
    rule.update({
        "shortDescription": {"text": doc.summary},
        "fullDescription": {"text": text.partition("\n")[2].strip() or text},
        "help": {"text": text, "markdown": text},
        "defaultConfiguration": {"level": "error"},
        "properties": {"tags": ["flowpolicy"]},
    })
    return rule


def _sarif_result(diagnostic: Diagnostic, index: Mapping[str, int]) -> dict[str, Any]:
    result: dict[str, Any] = {"ruleId": diagnostic.code}
    if diagnostic.code in index:
        result["ruleIndex"] = index[diagnostic.code]
    if diagnostic.severity == "pass":
        result["kind"] = "pass"
    result["level"] = _SARIF_LEVEL[diagnostic.severity]
    result["message"] = {"text": diagnostic.text}
    if diagnostic.path is not None:
        location: dict[str, Any] = {"artifactLocation": sarif_uri(diagnostic.path)}
        if diagnostic.line is not None:
            region = {"startLine": diagnostic.line}
            for key, value in (("startColumn", diagnostic.col), ("endLine", diagnostic.end_line),
                               ("endColumn", diagnostic.end_col)):
                if value is not None:
                    region[key] = value
            location["region"] = region
        result["locations"] = [{"physicalLocation": location}]
    return result


def sarif_uri(path: str) -> dict[str, str]:
    """A SARIF artifactLocation: repository-relative when possible (what code scanning
    wants), else an absolute file URI."""
    relative = _relative(path)
    if relative is None:
        return {"uri": Path(path).as_uri()}
    return {"uri": quote(relative), "uriBaseId": "%SRCROOT%"}


def _relative(path: str) -> str | None:
    """``path`` relative to the current folder (the checkout CI runs in), or None when it
    is outside it."""
    candidate = Path(path)
    if not candidate.is_absolute():
        return candidate.as_posix()
    try:
        return candidate.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return None


# -- GitHub workflow commands ----------------------------------------------------------------

#: A check that holds is not annotated.
_GITHUB_COMMAND = {"error": "error", "warning": "warning", "note": "notice"}


def github_annotation(diagnostic: Diagnostic, command: str) -> str:
    """``::error file=…,line=…,col=…,title=CODE::message``: an annotation on the PR."""
    props: dict[str, object] = {}
    if diagnostic.path is not None:
        props["file"] = _relative(diagnostic.path) or diagnostic.path.replace(os.sep, "/")
        for key, value in (("line", diagnostic.line), ("col", diagnostic.col),
                           ("endLine", diagnostic.end_line)):
            if value is not None:
                props[key] = value
        if diagnostic.end_col is not None and diagnostic.end_line == diagnostic.line:
            props["endColumn"] = diagnostic.end_col
    props["title"] = diagnostic.code
    joined = ",".join(f"{k}={_escape_property(str(v))}" for k, v in props.items())
    return f"::{command} {joined}::{_escape_data(diagnostic.text)}"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")
