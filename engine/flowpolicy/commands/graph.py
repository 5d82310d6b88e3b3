"""``flowpolicy graph [POLICY] [--format mermaid|dot] [--registry [URL]]``: the promotion
graph of a policy on stdout. Branches are nodes; arrows are the promotion edges with the
gates they require and the alias they set. ``--registry`` adds the current holder of each
alias on each branch (the registry is opened read-only and never created)."""

from __future__ import annotations

import argparse
import sys

from flowpolicy import api
from flowpolicy.errors import EXIT_OK, FlowpolicyError

HELP = "draw a policy's promotion graph (branches, edges, gates, aliases) as Mermaid or DOT"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("policy", nargs="?", metavar="POLICY",
                        help="policy file (default: the one policy under ./policies/)")
    parser.add_argument("--format", choices=("mermaid", "dot"), default="mermaid",
                        help="mermaid (default; GitHub renders it) or Graphviz dot")
    parser.add_argument("--registry", nargs="?", const="", metavar="URL",
                        help="show which instance holds each alias on each branch; URL "
                             "defaults to FLOWPOLICY_REGISTRY or .flowpolicy/registry.db at "
                             "the project root (write POLICY first, or --registry=URL)")


def run(args: argparse.Namespace) -> int:
    # --registry takes an optional URL, so it swallows a policy path written after it
    if args.registry and args.registry.endswith((".yaml", ".yml")):
        raise FlowpolicyError(f"--registry {args.registry!r} looks like a policy file; "
                              "write it first: flowpolicy graph POLICY --registry [URL]")
    result = api.graph(api.GraphRequest(policy=args.policy, format=args.format,
                                        holders=args.registry is not None,
                                        registry=args.registry or None))
    sys.stdout.write(result.text)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    return EXIT_OK
