"""``flowpolicy promote ASSET --from B1 --to B2 [--instance SPEC]``: promote one instance
along a declared edge, refused exactly when the generated promotion flow would refuse it
(see :mod:`flowpolicy.runtime.moves`). Exit 0 promoted (or already promoted), 1 refused,
2 invalid input."""

from __future__ import annotations

import argparse

from flowpolicy import api
from flowpolicy.commands import add_lifecycle, emit_move, lifecycle_options

HELP = "promote an instance from one branch to another, as the promotion flow would"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("asset", metavar="ASSET", help="asset name, e.g. fraud_model")
    parser.add_argument("--from", dest="source", required=True, metavar="B1",
                        help="branch to promote from")
    parser.add_argument("--to", dest="target", required=True, metavar="B2",
                        help="branch to promote to")
    parser.add_argument("--instance", default="latest", metavar="SPEC",
                        help="instance on the source branch (default: latest)")
    add_lifecycle(parser)


def run(args: argparse.Namespace) -> int:
    return emit_move(api.promote(api.PromoteRequest(
        **lifecycle_options(args), source=args.source, target=args.target,
        instance=args.instance)), args.format)
