"""``flowpolicy validate [PATH...] [--format text|json|sarif|github]``: check policy files.

Exit 0 when every file is valid, 1 when any is invalid, 2 on usage errors (a missing path,
a bad flag, no policy file found).
"""

from __future__ import annotations

import argparse
import sys

from flowpolicy import api
from flowpolicy.commands import POLICIES_HELP, add_format, emit
from flowpolicy.formats import DIAGNOSTIC_FORMATS

HELP = "validate policy files: schema, references, naming; every error with file:line:col"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", metavar="PATH", help=POLICIES_HELP)
    add_format(parser, DIAGNOSTIC_FORMATS)


def run(args: argparse.Namespace) -> int:
    report = api.validate(api.ValidateRequest(paths=tuple(args.paths)))
    exit_code = emit(report, args.format)
    if args.format == "text":
        print(report.summary, file=sys.stderr)
    return exit_code
