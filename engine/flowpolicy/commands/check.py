"""``flowpolicy check [POLICY...]``: prove the policies hold, statically and against the
live registry (the sections and their checks: :mod:`flowpolicy.check`). Exit 0 when all
hold, 1 when a check fails, 2 on invalid input (an invalid policy, a missing path or
registry file, an unknown branch).
"""

from __future__ import annotations

import argparse
import sys

from flowpolicy import api
from flowpolicy.commands import POLICIES_HELP, add_format, add_registry, add_switches, emit
from flowpolicy.formats import DIAGNOSTIC_FORMATS

HELP = "check that the policies hold: valid, compiled, lint clean, and true in the registry"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("policies", nargs="*", metavar="POLICY", help=POLICIES_HELP)
    add_registry(parser)
    add_format(parser, DIAGNOSTIC_FORMATS)
    parser.add_argument("--branch", action="append", default=[], metavar="B",
                        help="check only this branch live (repeatable; default: the policy's "
                             "branches)")
    add_switches(parser, {"--no-static": "skip the compile and lint sections",
                          "--no-live": "skip the registry checks"})
    parser.add_argument("--src", action="append", default=[], metavar="PATH",
                        help="code to lint (repeatable; default: the policy's project root)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="text format: list passing checks too")


def run(args: argparse.Namespace) -> int:
    report = api.check(api.CheckRequest(
        policies=tuple(args.policies),
        registry=args.registry,
        branches=tuple(args.branch),
        static=not args.no_static,
        live=not args.no_live,
        src=tuple(args.src),
    ))
    if args.format == "text" and args.verbose:
        sys.stdout.write(report.format_text(verbose=True))
        return report.exit_code
    return emit(report, args.format)
