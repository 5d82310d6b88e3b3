"""``flowpolicy schema``: print the policy JSON Schema (for editors and other tools)."""

from __future__ import annotations

import argparse
import sys

HELP = "print the policy JSON Schema (Draft 2020-12), or with --path where it is installed"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--path", action="store_true",
                        help="print the schema file's path instead of its content")


def run(args: argparse.Namespace) -> int:
    from flowpolicy.resources import schema_path

    path = schema_path("policy")
    if args.path:
        print(path)
    else:
        sys.stdout.write(path.read_text(encoding="utf-8"))
    return 0
