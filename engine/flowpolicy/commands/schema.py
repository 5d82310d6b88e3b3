"""``flowpolicy schema``: print the policy JSON Schema (for editors and other tools)."""

from __future__ import annotations

import argparse
import sys

from flowpolicy import api
from flowpolicy.errors import EXIT_OK

HELP = "print the policy JSON Schema (Draft 2020-12), or with --path where it is installed"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--path", action="store_true",
                        help="print the schema file's path instead of its content")


def run(args: argparse.Namespace) -> int:
    path = api.schema_file()
    sys.stdout.write(f"{path}\n" if args.path else path.read_text(encoding="utf-8"))
    return EXIT_OK
