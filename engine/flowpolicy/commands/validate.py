"""``flowpolicy validate [PATH...] [--format text|json]``: check policy files.

Exit 0 when every file is valid, 1 when any is invalid, 2 on usage errors (a missing path,
a bad flag, no policy file found).
"""

from __future__ import annotations

import argparse
import json
import sys

from flowpolicy.errors import EXIT_FINDINGS, EXIT_OK, FlowpolicyError, PolicyError

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
    from flowpolicy.policy.loader import find_policy_files, load_policy

    files = find_policy_files(args.paths)
    if not files:
        searched = ", ".join(args.paths) or "policies/ or the current directory"
        raise FlowpolicyError(f"no policy files found in {searched} (a policy file is a "
                              "*.yaml with top-level 'version:' and 'project:' keys)")
    results = []
    for path in files:
        try:
            policy = load_policy(path)
        except PolicyError as exc:
            results.append({"path": str(path), "valid": False, "project": None, "hash": None,
                            "diagnostics": [d.to_dict() for d in exc.diagnostics],
                            "_text": [d.format() for d in exc.diagnostics]})
        else:
            results.append({"path": str(path), "valid": True, "project": policy.project,
                            "hash": policy.hash, "diagnostics": [], "_text": []})
    valid = all(r["valid"] for r in results)
    errors = sum(len(r["diagnostics"]) for r in results)
    if args.format == "json":
        report = {
            "valid": valid,
            "error_count": errors,
            "files": [{k: v for k, v in r.items() if not k.startswith("_")} for r in results],
        }
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for result in results:
            if result["valid"]:
                print(f"{result['path']}: ok (project {result['project']}, "
                      f"policy {result['hash'][:12]})")
            else:
                for line in result["_text"]:
                    print(line)
        bad = sum(not r["valid"] for r in results)
        summary = (f"{len(results)} policy file(s) valid" if valid else
                   f"{errors} error(s) in {bad} of {len(results)} policy file(s)")
        print(summary, file=sys.stderr)
    return EXIT_OK if valid else EXIT_FINDINGS
