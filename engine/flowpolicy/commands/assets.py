"""``flowpolicy assets list | show NAME | history NAME``: what the registry holds.

``list`` shows every asset scope (project, branch, type, name) with its newest version and
aliases; ``show`` the instances of one asset with annotations, aliases, evidence and
consumers; ``history`` the versions and alias moves of one asset in time order. Without
``--branch``/``--type`` every branch and type holding the name is shown; without
``--project`` the project comes from FLOWPOLICY_PROJECT / obproject.toml, or (for ``list``)
every project. The registry is opened read-only: never created, migrated or written. Every
report names the registry it read (a ``registry`` line, or key in JSON).
"""

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
