"""``flowpolicy alias set ASSET ALIAS --branch B --to SPEC --reason TEXT`` and
``flowpolicy alias unset ASSET ALIAS --branch B --reason TEXT``: move an alias by hand, with
the reason kept in its history. ``set`` is refused when the instance fails the alias's gates
now, unless ``--force``. Exit 0 moved (or nothing to do), 1 refused, 2 invalid input."""

from __future__ import annotations

import argparse

from flowpolicy.commands.promote import add_common_arguments, emit, prepare
from flowpolicy.commands.rollback import require_reason_for_force
from flowpolicy.errors import FlowpolicyError

HELP = "set or unset an alias by hand (recorded with who and why)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("set", "unset"))
    parser.add_argument("asset", metavar="ASSET", help="asset name, e.g. fraud_model")
    parser.add_argument("alias", metavar="ALIAS", help="alias, e.g. production")
    parser.add_argument("--branch", required=True, help="the alias's branch")
    parser.add_argument("--to", metavar="SPEC", help="instance to point at (set)")
    parser.add_argument("--force", action="store_true",
                        help="set even to an instance failing its gates")
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from flowpolicy.runtime.moves import set_alias, unset_alias

    if not (args.reason or "").strip():
        raise FlowpolicyError(f"alias {args.action} needs --reason TEXT: the alias history "
                              "keeps why")
    if args.action == "set" and not args.to:
        raise FlowpolicyError("alias set needs --to SPEC (the instance to point at)")
    if args.action == "unset" and args.to:
        raise FlowpolicyError("alias unset takes no --to")
    require_reason_for_force(args)
    policy, registry, request = prepare(args, args.branch, alias=args.alias, to=args.to,
                                        force=args.force)
    operation = set_alias if args.action == "set" else unset_alias
    return emit(args, operation(policy, registry, request))
