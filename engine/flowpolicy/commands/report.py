"""``flowpolicy report [-o report.html]``: one self-contained HTML page of the registry's
history (instances, alias moves, gate verdicts, champions, promotions, drift, events).
The registry is opened read-only and never created; the page is written atomically."""

from __future__ import annotations

import argparse
from pathlib import Path

from flowpolicy import api
from flowpolicy.commands import add_registry
from flowpolicy.errors import EXIT_OK

HELP = "write one self-contained HTML page of the registry's history"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", metavar="FILE", default="report.html",
                        help="where to write the page (default: report.html)")
    parser.add_argument("--project",
                        help="only this project (default: FLOWPOLICY_PROJECT, obproject.toml, "
                             "else every project in the registry)")
    parser.add_argument("--branch", help="only this asset branch")
    add_registry(parser)


def run(args: argparse.Namespace) -> int:
    result = api.report(api.ReportRequest(output=Path(args.output), registry=args.registry,
                                          project=args.project, branch=args.branch))
    history = result.history
    print(f"wrote {result.path} ({result.size / 1024:,.0f} KiB) from registry {history.url}: "
          f"{len(history.scopes)} assets on {len(history.branches)} branches, "
          f"{history.instance_count:,} instances, {history.alias_move_count:,} alias moves, "
          f"{history.evidence_count:,} decisions, {history.event_count:,} events")
    return EXIT_OK
