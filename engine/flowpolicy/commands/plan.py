"""``flowpolicy plan [POLICY...]``: what each generated flow would decide now against the
registry (gate verdicts, champion decision and margin, promotions allowed or refused with
reasons, drift level with D per column), without running anything or writing to the
registry. Exit 0, or 2 on invalid input."""

from __future__ import annotations

import argparse

from flowpolicy.commands.check import add_input_arguments, write_report

HELP = "dry run: what each generated flow would decide now (nothing runs, nothing is written)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_input_arguments(parser)
    parser.add_argument("--branch", action="append", default=[], metavar="B",
                        help="only this branch (repeatable; promotions leaving or entering "
                             "it are shown too)")


def run(args: argparse.Namespace) -> int:
    from flowpolicy.check import PlanRequest, run_plan

    report = run_plan(PlanRequest(policies=tuple(args.policies), registry=args.registry,
                                  branches=tuple(args.branch)))
    return write_report(args, report, report.format_text)
