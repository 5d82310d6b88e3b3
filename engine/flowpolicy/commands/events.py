"""``flowpolicy events``: project events published by flows, oldest first; ``--follow``: then
each new one as it is published (JSON: one object a line) until interrupted or ``--for``
seconds; ``--runs``: each event with the runs ``flowpolicy dispatch`` started for it
(:mod:`flowpolicy.dispatch.chain`). Read-only (see :mod:`flowpolicy.inventory`)."""

from __future__ import annotations

import argparse
import sys

from flowpolicy import api
from flowpolicy.commands import add_scope, emit
from flowpolicy.errors import EXIT_OK, RegistryError

HELP = "show project events published to the asset registry (--follow: and new ones)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", help="only events with this name (e.g. model_promoted)")
    parser.add_argument("--follow", action="store_true",
                        help="keep printing new events as they are published")
    parser.add_argument("--for", dest="follow_for", type=float, metavar="SECONDS",
                        help="with --follow: stop after this long (default: until interrupted)")
    parser.add_argument("--runs", action="store_true",
                        help="event -> run -> event: the runs each event started (dispatch) "
                             "and how they ended")
    parser.add_argument("--limit", type=int, default=500, metavar="N",
                        help="with --runs: the newest N events (default 500; 0 = all)")
    add_scope(parser)


def run(args: argparse.Namespace) -> int:
    if args.runs:
        if args.follow or args.name:
            raise RegistryError("--runs shows the chains so far, of every event; it does not "
                                "go with --follow or --name")
        return emit(api.event_runs(api.EventRunsRequest(
            project=args.project, branch=args.branch, registry=args.registry,
            limit=args.limit)), args.format)
    request = api.EventsRequest(name=args.name, project=args.project, branch=args.branch,
                                registry=args.registry, follow_for=args.follow_for)
    if not args.follow:
        return emit(api.events(request), args.format)
    followed = api.follow_events(request)
    print(f"registry {followed.registry}",
          file=sys.stderr if args.format == "json" else sys.stdout)
    for number, batch in enumerate(followed.batches):
        for event in batch:
            print(followed.line(event, args.format), flush=True)
        if number == 0:
            until = ("until interrupted" if args.follow_for is None
                     else f"for {args.follow_for:g}s")
            print(f"following new events {until}", file=sys.stderr, flush=True)
    return EXIT_OK
