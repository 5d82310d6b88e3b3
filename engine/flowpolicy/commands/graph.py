"""``flowpolicy graph [POLICY] [--format mermaid|dot] [--registry [URL]]``: the promotion
graph of a policy on stdout. Branches are nodes; arrows are the promotion edges with the
gates they require and the alias they set. ``--registry`` adds the current holder of each
alias on each branch (the registry is opened read-only and never created)."""

from __future__ import annotations

import argparse
import sys

from flowpolicy.errors import EXIT_FINDINGS, EXIT_OK, FlowpolicyError

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
    from flowpolicy.check.inputs import find_policies
    from flowpolicy.compile.flows import source_label
    from flowpolicy.graph import FORMATS, build_graph
    from flowpolicy.policy.loader import load_policy

    if args.registry and args.registry.endswith((".yaml", ".yml")):
        raise FlowpolicyError(f"--registry {args.registry!r} looks like a policy file; "
                              "write it first: flowpolicy graph POLICY --registry [URL]")
    paths = find_policies([args.policy] if args.policy else [])
    if len(paths) > 1:
        raise FlowpolicyError(
            f"found {len(paths)} policies ({', '.join(map(str, paths))}); name the one to "
            "draw: flowpolicy graph POLICY")
    policy = load_policy(paths[0])
    if not policy.branches:  # and so no promotion edges either
        raise FlowpolicyError(f"{paths[0]} declares no branches: nothing to draw",
                              exit_code=EXIT_FINDINGS)
    registry = None
    if args.registry is not None:
        from flowpolicy.registry import open_existing_registry

        registry = open_existing_registry(
            args.registry or None, read_only=True,
            missing="no alias holders to show (run the flows first, or point --registry / "
                    "FLOWPOLICY_REGISTRY at the right file)")
    graph = build_graph(policy, source_label(policy), registry)
    sys.stdout.write(FORMATS[args.format](graph))
    if not policy.promotion:
        print(f"note: {paths[0]} declares no promotion edges; the graph shows its branches "
              "only", file=sys.stderr)
    if registry is not None and not registry.assets(policy.project):
        print(f"note: registry {registry.url} holds no assets of project {policy.project}",
              file=sys.stderr)
    return EXIT_OK
