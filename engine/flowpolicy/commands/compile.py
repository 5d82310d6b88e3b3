"""``flowpolicy compile [POLICY...] [-o DIR] [--check]``: policies → generated Metaflow flows.

Without ``--check`` it writes one file per flow into the policy's ``compile.output_dir``
(relative to the policy file) or ``-o DIR``, and removes files it generated earlier that the
policy no longer produces. With ``--check`` it writes nothing: exit 1 and a unified diff when
a committed file is stale, missing or left over; exit 0 when everything is current.
An invalid policy, or an output folder that is a file or cannot be created, exits 2. Files
are replaced atomically (:mod:`flowpolicy.fileio`).
"""

from __future__ import annotations

import argparse
import sys

from flowpolicy import api
from flowpolicy.commands import POLICIES_HELP

HELP = "compile policies into Metaflow flows (--check: fail when committed flows are stale)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", metavar="POLICY", help=POLICIES_HELP)
    parser.add_argument("-o", "--output-dir", metavar="DIR",
                        help="write flows here instead of each policy's compile.output_dir")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 with a diff when generated files are not "
                             "current")


def run(args: argparse.Namespace) -> int:
    report = api.compile(api.CompileRequest(paths=tuple(args.paths),
                                            output_dir=args.output_dir, check=args.check))
    sys.stdout.write(report.format_text())
    print(report.summary, file=sys.stderr)
    return report.exit_code
