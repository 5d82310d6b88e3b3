"""``flowpolicy plan [POLICY...]``: what each generated flow would decide now against the
registry (gate verdicts, champion decision and margin, promotions allowed or refused with
reasons, drift level with D per column), without running anything or writing to the
registry. Exit 0, or 2 on invalid input."""

from __future__ import annotations

import argparse

from flowpolicy import api
from flowpolicy.commands import POLICIES_HELP, add_format, add_registry, emit

HELP = "dry run: what each generated flow would decide now (nothing runs, nothing is written)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("policies", nargs="*", metavar="POLICY", help=POLICIES_HELP)
    add_registry(parser)
    add_format(parser)
    parser.add_argument("--branch", action="append", default=[], metavar="B",
                        help="only this branch (repeatable; promotions leaving or entering "
                             "it are shown too)")


def run(args: argparse.Namespace) -> int:
    return emit(api.plan(api.PlanRequest(policies=tuple(args.policies), registry=args.registry,
                                         branches=tuple(args.branch))), args.format)
