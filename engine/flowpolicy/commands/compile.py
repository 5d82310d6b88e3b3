"""``flowpolicy compile [POLICY...] [-o DIR] [--check]``: policies → generated Metaflow flows.

Without ``--check`` it writes one file per flow into the policy's ``compile.output_dir``
(relative to the policy file) or ``-o DIR``, and removes files it generated earlier that the
policy no longer produces. With ``--check`` it writes nothing: exit 1 and a unified diff when
a committed file is stale, missing or left over; exit 0 when everything is current.
An invalid policy, or an output folder that is a file or cannot be created, exits 2. Files
are replaced atomically (:mod:`flowpolicy.fileio`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from flowpolicy.errors import EXIT_FINDINGS, EXIT_OK, CompileError

HELP = "compile policies into Metaflow flows (--check: fail when committed flows are stale)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths", nargs="*", metavar="POLICY",
        help="policy files or directories to search (default: ./policies/ if it exists, "
             "else the current directory)",
    )
    parser.add_argument(
        "-o", "--output-dir", metavar="DIR",
        help="write flows here instead of each policy's compile.output_dir",
    )
    parser.add_argument(
        "--check", action="store_true",
        help="write nothing; exit 1 with a diff when generated files are not current",
    )


def run(args: argparse.Namespace) -> int:
    from flowpolicy.compile import check_outputs, compile_policy, output_dir_for, write_outputs
    from flowpolicy.policy.loader import load_policy, require_policy_files

    policies = [load_policy(path) for path in require_policy_files(args.paths)]
    targets = []
    claimed: dict[Path, str] = {}
    for policy in policies:
        directory = Path(args.output_dir) if args.output_dir else output_dir_for(policy)
        outputs = compile_policy(policy)
        for name in outputs:
            key = Path(os.path.abspath(directory / name))
            if key in claimed:
                raise CompileError(
                    f"{policy.source} and {claimed[key]} both generate {directory / name}; "
                    "give them different compile.output_dir settings"
                )
            claimed[key] = policy.source
        targets.append((policy, directory, outputs))

    if args.check:
        diffs = [diff for policy, directory, outputs in targets
                 for diff in check_outputs(policy, directory, outputs)]
        for diff in diffs:
            sys.stdout.write(diff if diff.endswith("\n") else diff + "\n")
        if diffs:
            print(f"{len(diffs)} generated file(s) are stale; run `flowpolicy compile`",
                  file=sys.stderr)
            return EXIT_FINDINGS
        print(f"{len(claimed)} generated file(s) are current", file=sys.stderr)
        return EXIT_OK

    changed = 0
    for policy, directory, outputs in targets:
        for path in write_outputs(policy, directory, outputs):
            changed += 1
            print(f"{'wrote' if path.exists() else 'removed'} {path}")
    print(f"{len(claimed)} flow(s) from {len(policies)} policy file(s), {changed} changed",
          file=sys.stderr)
    return EXIT_OK
