"""``flowpolicy plan [POLICY...]``: what each generated flow would decide now against the
registry (gate verdicts, champion decision and margin, promotions allowed or refused with
reasons, drift level with D per column), without running anything or writing to the
registry. Exit 0, or 2 on invalid input."""

from __future__ import annotations

import argparse
import json
import sys

HELP = "dry run: what each generated flow would decide now (nothing runs, nothing is written)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("policies", nargs="*", metavar="POLICY",
                        help="policy files or directories (default: ./policies/ if it exists, "
                             "else the current directory)")
    parser.add_argument("--registry", metavar="URL",
                        help="registry URL (default: FLOWPOLICY_REGISTRY or "
                             ".flowpolicy/registry.db at the project root)")
    parser.add_argument("--branch", metavar="B",
                        help="only this branch (promotions leaving or entering it)")
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help="report format (default: text)")


def run(args: argparse.Namespace) -> int:
    from flowpolicy.check import PlanRequest, run_plan

    report = run_plan(PlanRequest(policies=tuple(args.policies), registry=args.registry,
                                  branch=args.branch))
    if args.format == "json":
        json.dump(report.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(report.format_text())
    return report.exit_code
