"""``flowpolicy rollback ASSET --branch B [--alias A] [--to SPEC]``: return an alias to its
previous holder in the alias history (or to SPEC), refused when that instance fails the
alias's gates now unless ``--force --reason TEXT``. A running ``flowpolicy serve`` follows
within a moment. Exit 0 moved (or nothing to do), 1 refused, 2 invalid input."""

from __future__ import annotations

import argparse

from flowpolicy import api
from flowpolicy.commands import add_lifecycle, emit_move, lifecycle_options

HELP = "return an alias to its previous holder (or to --to SPEC)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("asset", metavar="ASSET", help="asset name, e.g. fraud_model")
    parser.add_argument("--branch", required=True, help="the alias's branch")
    parser.add_argument("--alias", help="alias (default: the one the policy's promotions set "
                                        "on the branch)")
    parser.add_argument("--to", metavar="SPEC", help="instance to return to (default: the "
                                                     "alias's previous holder)")
    parser.add_argument("--force", action="store_true",
                        help="move even to an instance failing its gates (needs --reason)")
    add_lifecycle(parser)


def run(args: argparse.Namespace) -> int:
    return emit_move(api.rollback(api.RollbackRequest(
        **lifecycle_options(args), branch=args.branch, alias=args.alias, to=args.to,
        force=args.force)), args.format)
