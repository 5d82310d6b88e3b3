"""``flowpolicy lint [PATH ...]``: asset-name problems in Python source (see flowpolicy.lint)."""

from __future__ import annotations

import argparse
import sys
from contextlib import nullcontext

from flowpolicy import api
from flowpolicy.commands import add_format, add_switches, emit
from flowpolicy.errors import EXIT_OK, FlowpolicyError
from flowpolicy.fileio import atomic_writer
from flowpolicy.formats import DIAGNOSTIC_FORMATS

HELP = "find asset names in Python code that break the naming policy (text/json/sarif/github)"


def _codes(value: str) -> list[str]:
    return [code for code in value.replace(" ", ",").split(",") if code]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", default=["."], metavar="PATH",
                        help="files and folders to lint (default: the current folder)")
    parser.add_argument("--policy", action="append", default=[], metavar="PATH",
                        help="policy file(s) to lint against, or a stock preset such as "
                             "flowpolicy:naming (default: policy files in the repository's "
                             "policies/ folders, else the stock naming preset)")
    add_format(parser, DIAGNOSTIC_FORMATS)
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="write the report to FILE instead of standard output (FILE is "
                             "replaced once the report is complete)")
    parser.add_argument("--select", action="append", type=_codes, default=[], metavar="CODES",
                        help="only these codes or code prefixes (comma-separated)")
    parser.add_argument("--ignore", action="append", type=_codes, default=[], metavar="CODES",
                        help="skip these codes or code prefixes (comma-separated)")
    parser.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                        help="skip files and folders matching GLOB (name or relative path)")
    parser.add_argument("--report-unused-noqa", action="store_true",
                        help="report '# noqa: FPL...' codes that suppress nothing (FPL901)")
    parser.add_argument("-j", "--jobs", type=int, default=None, metavar="N",
                        help="worker processes (default: all cores; 1 = no pool)")
    add_switches(parser, {
        "--no-policy-names": "do not lint the asset names declared in the policy files",
        "--list-rules": "print the rule codes and summaries, then exit"})


def run(args: argparse.Namespace) -> int:
    if args.jobs is not None and args.jobs < 1:
        raise FlowpolicyError("--jobs must be at least 1")
    if args.list_rules:
        for rule in api.lint_rules():
            print(f"{rule.code}  {rule.name:<24} {rule.summary}")
        return EXIT_OK
    request = api.LintRequest(
        paths=tuple(args.paths),
        policies=tuple(args.policy),
        select=tuple(code for group in args.select for code in group),
        ignore=tuple(code for group in args.ignore for code in group),
        exclude=tuple(args.exclude),
        report_unused_noqa=args.report_unused_noqa,
        jobs=args.jobs,
        lint_policy_files=not args.no_policy_names,
    )
    # The report file is checked before any work and replaced only once it is complete (a
    # failed run keeps the old one).
    with atomic_writer(args.output) if args.output else nullcontext(sys.stdout) as out:
        report = api.lint(request)
        exit_code = emit(report, args.format, out)
    if args.format == "text" or args.output:
        print(report.summary, file=sys.stderr)
    return exit_code
