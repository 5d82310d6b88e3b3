"""``flowpolicy assets list | show NAME | history NAME``: what the registry holds, read
without ever creating, migrating or writing it (see :mod:`flowpolicy.inventory`)."""

from __future__ import annotations

import argparse

from flowpolicy import api
from flowpolicy.commands import add_scope, emit

HELP = "show assets, instances, aliases and their history from the asset registry"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("list", "show", "history"),
                        help="list assets, show one asset's instances, or its history")
    parser.add_argument("name", nargs="?", help="asset name (for show and history)")
    add_scope(parser)
    parser.add_argument("--type", dest="asset_type", choices=("data", "model"),
                        help="only data or only model assets")
    parser.add_argument("--limit", type=int, default=20,
                        help="instances to show per asset, newest first (default 20; 0 = all)")


def run(args: argparse.Namespace) -> int:
    return emit(api.assets(api.AssetsRequest(
        action=args.action, name=args.name, project=args.project, branch=args.branch,
        asset_type=args.asset_type, limit=args.limit or None, registry=args.registry,
    )), args.format)
