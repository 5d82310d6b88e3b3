"""``flowpolicy validate [PATH...] [--format text|json]``: check policy files.

Exit 0 when every file is valid, 1 when any is invalid, 2 on usage errors (a missing path,
a bad flag, no policy file found).
"""

from __future__ import annotations

import argparse
import json
import sys

from flowpolicy.errors import EXIT_FINDINGS, EXIT_OK, PolicyError

HELP = "validate policy files: schema, references, naming; every error with file:line:col"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths", nargs="*", metavar="PATH",
        help="policy files or directories to search (default: ./policies/ if it exists, "
             "else the current directory)",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help="output format (default: text)")


def run(args: argparse.Namespace) -> int:
    from flowpolicy.policy.loader import load_policy, require_policy_files

    files = require_policy_files(args.paths)
    outcomes = []  # (path, the policy or None, its diagnostics)
    for path in files:
        try:
            outcomes.append((path, load_policy(path), ()))
        except PolicyError as exc:
            outcomes.append((path, None, exc.diagnostics))
    invalid = sum(policy is None for _, policy, _ in outcomes)
    errors = sum(len(diagnostics) for _, _, diagnostics in outcomes)
    if args.format == "json":
        report = {
            "valid": not invalid,
            "error_count": errors,
            "files": [
                {
                    "path": str(path),
                    "valid": policy is not None,
                    "project": policy.project if policy is not None else None,
                    "hash": policy.hash if policy is not None else None,
                    "diagnostics": [d.to_dict() for d in diagnostics],
                }
                for path, policy, diagnostics in outcomes
            ],
        }
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for path, policy, diagnostics in outcomes:
            if policy is not None:
                print(f"{path}: ok (project {policy.project}, policy {policy.short_hash})")
            for diagnostic in diagnostics:
                print(diagnostic.format())
        summary = (f"{errors} error(s) in {invalid} of {len(outcomes)} policy file(s)" if invalid
                   else f"{len(outcomes)} policy file(s) valid")
        print(summary, file=sys.stderr)
    return EXIT_FINDINGS if invalid else EXIT_OK
