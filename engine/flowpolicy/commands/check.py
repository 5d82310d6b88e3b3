"""``flowpolicy check [POLICY...]``: prove the policies hold, statically and against the
live registry (see :mod:`flowpolicy.check`).

Sections: ``policy`` (valid, obproject.toml names its project), ``compile`` (generated flows
current), ``lint`` (asset names in code), ``live`` (per branch: promoted aliases pass their
gates now, one champion that agrees with its Metaflow tag, promotion lineage with evidence
judged under the policy's thresholds, drift report freshness, undeclared assets; assets on
branches the policy does not declare are named, and zero live checks is a failure). Exit 0
when all hold, 1 when a check fails, 2 on invalid input (an invalid policy, a missing path or
registry file, an unknown branch).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

HELP = "check that the policies hold: valid, compiled, lint clean, and true in the registry"


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """What ``check`` and ``plan`` both read: the policies, the registry, the report format."""
    parser.add_argument("policies", nargs="*", metavar="POLICY",
                        help="policy files or directories (default: ./policies/ if it exists, "
                             "else the current directory)")
    parser.add_argument("--registry", metavar="URL",
                        help="registry URL (default: FLOWPOLICY_REGISTRY or "
                             ".flowpolicy/registry.db at the project root)")
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help="report format (default: text)")


def write_report(args: argparse.Namespace, report, text: Callable[[], str]) -> int:
    """Print ``report`` as ``--format`` asks (JSON from ``to_dict()``, else ``text()``) and
    return its exit code."""
    if args.format == "json":
        json.dump(report.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(text())
    return report.exit_code


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_input_arguments(parser)
    parser.add_argument("--branch", action="append", default=[], metavar="B",
                        help="check only this branch live (repeatable; default: the policy's "
                             "branches)")
    parser.add_argument("--no-static", action="store_true",
                        help="skip the compile and lint sections")
    parser.add_argument("--no-live", action="store_true",
                        help="skip the registry checks")
    parser.add_argument("--src", action="append", default=[], metavar="PATH",
                        help="code to lint (repeatable; default: the policy's project root)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="text format: list passing checks too")


def run(args: argparse.Namespace) -> int:
    from flowpolicy.check import CheckRequest, format_text, run_check

    report = run_check(CheckRequest(
        policies=tuple(args.policies),
        registry=args.registry,
        branches=tuple(args.branch),
        static=not args.no_static,
        live=not args.no_live,
        src=tuple(args.src),
    ))
    return write_report(args, report, lambda: format_text(report, verbose=args.verbose))
