"""``flowpolicy events``: project events published by flows (``prj.<project>.<branch>.<name>``),
oldest first. Without ``--project`` every project's events are shown. The registry is opened
read-only and named in the output (a ``registry`` line, or key in JSON)."""

from __future__ import annotations

import argparse

from flowpolicy import api
from flowpolicy.commands import add_scope, emit

HELP = "show project events published to the asset registry"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", help="only events with this name (e.g. model_promoted)")
    add_scope(parser)


def run(args: argparse.Namespace) -> int:
    return emit(api.events(api.EventsRequest(name=args.name, project=args.project,
                                             branch=args.branch, registry=args.registry)),
                args.format)
