"""``flowpolicy alias set ASSET ALIAS --branch B --to SPEC --reason TEXT`` and
``flowpolicy alias unset ASSET ALIAS --branch B --reason TEXT``: move an alias by hand, with
the reason kept in its history. ``set`` is refused when the instance fails the alias's gates
now, unless ``--force``. Exit 0 moved (or nothing to do), 1 refused, 2 invalid input."""

from __future__ import annotations

import argparse

from flowpolicy import api
from flowpolicy.commands import add_lifecycle, emit_move, lifecycle_options

HELP = "set or unset an alias by hand (recorded with who and why)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("set", "unset"))
    parser.add_argument("asset", metavar="ASSET", help="asset name, e.g. fraud_model")
    parser.add_argument("alias", metavar="ALIAS", help="alias, e.g. production")
    parser.add_argument("--branch", required=True, help="the alias's branch")
    parser.add_argument("--to", metavar="SPEC", help="instance to point at (set)")
    parser.add_argument("--force", action="store_true",
                        help="set even to an instance failing its gates")
    add_lifecycle(parser)


def run(args: argparse.Namespace) -> int:
    return emit_move(api.alias(api.AliasRequest(
        **lifecycle_options(args), action=args.action, alias=args.alias, branch=args.branch,
        to=args.to, force=args.force)), args.format)
