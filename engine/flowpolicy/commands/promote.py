"""``flowpolicy promote ASSET --from B1 --to B2 [--instance SPEC]``: promote one instance
along a declared edge, refused exactly when the generated promotion flow would refuse it
(see :mod:`flowpolicy.runtime.moves`). Exit 0 promoted (or already promoted), 1 refused,
2 invalid input.

The options every lifecycle command shares (``--project``, ``--policy``, ``--registry``,
``--reason``, ``--dry-run``, ``--format``) and the way their outcome is printed live here;
``rollback`` and ``alias`` use them.
"""

from __future__ import annotations

import argparse
import json
import sys

HELP = "promote an instance from one branch to another, as the promotion flow would"


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project", help="project (default: FLOWPOLICY_PROJECT, "
                                          "obproject.toml)")
    parser.add_argument("--policy", action="append", default=[], metavar="PATH",
                        help="policy file or folder (default: ./policies/)")
    parser.add_argument("--registry", metavar="URL",
                        help="registry URL (default: FLOWPOLICY_REGISTRY or "
                             ".flowpolicy/registry.db at the project root)")
    parser.add_argument("--reason", metavar="TEXT", help="why (kept in the alias history)")
    parser.add_argument("--dry-run", action="store_true",
                        help="decide and report, write nothing")
    parser.add_argument("--format", choices=("text", "json"), default="text")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("asset", metavar="ASSET", help="asset name, e.g. fraud_model")
    parser.add_argument("--from", dest="source", required=True, metavar="B1",
                        help="branch to promote from")
    parser.add_argument("--to", dest="target", required=True, metavar="B2",
                        help="branch to promote to")
    parser.add_argument("--instance", default="latest", metavar="SPEC",
                        help="instance on the source branch (default: latest)")
    add_common_arguments(parser)


def prepare(args: argparse.Namespace, branch: str, **fields):
    """The policy, the registry (read-only for a dry run; never created) and the request."""
    from flowpolicy.registry import open_existing_registry
    from flowpolicy.runtime.branch import resolve_project, sanitize_branch
    from flowpolicy.runtime.identity import current_entity
    from flowpolicy.runtime.lifecycle import select_policy
    from flowpolicy.runtime.moves import MoveRequest

    project = resolve_project(args.project)
    policy = select_policy(args.policy, project)
    registry = open_existing_registry(
        args.registry, read_only=args.dry_run,
        missing="nothing registered yet, or point --registry / FLOWPOLICY_REGISTRY at the "
                "right file")
    request = MoveRequest(asset=args.asset, project=project, branch=sanitize_branch(branch),
                          actor=current_entity(), reason=args.reason, dry_run=args.dry_run,
                          **fields)
    return policy, registry, request


def emit(args: argparse.Namespace, outcome) -> int:
    """Print the outcome (JSON to stdout, or one line: a refusal to stderr) and return its
    exit code."""
    if args.format == "json":
        json.dump(outcome.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif outcome.refused:
        print(f"flowpolicy: refused: {outcome.message}", file=sys.stderr)
    else:
        print(outcome.message)
    return outcome.exit_code


def run(args: argparse.Namespace) -> int:
    from flowpolicy.runtime.branch import sanitize_branch
    from flowpolicy.runtime.moves import promote

    policy, registry, request = prepare(args, args.target, source=sanitize_branch(args.source),
                                        instance=args.instance)
    return emit(args, promote(policy, registry, request))
