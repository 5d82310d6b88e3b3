"""``flowpolicy events``: project events published by flows (``prj.<project>.<branch>.<name>``),
oldest first. Without ``--project`` every project's events are shown. The registry is opened
read-only and named in the output (a ``registry`` line, or key in JSON).

``--follow`` then waits for new events and prints each as it is published (JSON: one object
a line), until interrupted or ``--for SECONDS`` have passed. On PostgreSQL the wait is woken
by the server's notification; the SQLite file is looked at every 0.1 s."""

from __future__ import annotations

import argparse
import json
import sys
import time

from flowpolicy.errors import EXIT_OK, RegistryError

HELP = "show project events published to the asset registry (--follow: and new ones)"
#: the longest single wait, so an interrupt or the --for deadline is noticed
_WAIT_S = 60.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from flowpolicy.commands.assets import add_scope_arguments

    parser.add_argument("--name", help="only events with this name (e.g. model_promoted)")
    parser.add_argument("--follow", action="store_true",
                        help="keep printing new events as they are published")
    parser.add_argument("--for", dest="follow_for", type=float, metavar="SECONDS",
                        help="with --follow: stop after this long (default: until interrupted)")
    add_scope_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from flowpolicy.commands.assets import open_existing
    from flowpolicy.runtime.branch import sanitize_branch

    if args.follow_for is not None and (not args.follow or args.follow_for <= 0):
        raise RegistryError("--for takes a positive number of seconds, with --follow")
    registry = open_existing(args.registry)
    branch = sanitize_branch(args.branch) if args.branch else None
    if args.follow:
        return _follow(registry, args.project, branch, args.name, args.format, args.follow_for)
    events = [e.to_dict() for e in registry.events(args.project, branch, args.name)]
    if args.format == "json":
        json.dump({"registry": registry.url, "events": events}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    print(f"registry {registry.url}")
    if not events:
        print("no events")
    for event in events:
        print(_line(event))
    return EXIT_OK


def _line(event: dict) -> str:
    payload = "" if event["payload"] is None else "  " + json.dumps(
        event["payload"], sort_keys=True)
    producer = event["producer"]
    return (f"{event['created_at']}  {event['event']}  "
            f"by {producer['entity_kind']} {producer['entity_id']}{payload}")


def _follow(registry, project: str | None, branch: str | None, name: str | None, form: str,
            seconds: float | None) -> int:
    """Print the events so far, then each new one, until ``seconds`` pass (None: forever)."""
    print(f"registry {registry.url}", file=sys.stderr if form == "json" else sys.stdout)
    deadline = None if seconds is None else time.monotonic() + seconds
    cursor, first = 0, True
    while True:
        # read the newest id first: an event published meanwhile is read now or next time
        newest = registry.newest_event_id()
        for event in registry.events(project, branch, name, after=cursor):
            print(json.dumps(event.to_dict()) if form == "json" else _line(event.to_dict()),
                  flush=True)
            newest = max(newest, event.id)
        if first:
            until = "until interrupted" if seconds is None else f"for {seconds:g}s"
            print(f"following new events {until}", file=sys.stderr, flush=True)
            first = False
        cursor = newest
        left = _WAIT_S if deadline is None else deadline - time.monotonic()
        if left <= 0:
            return EXIT_OK
        registry.wait_for_events(cursor, min(left, _WAIT_S))
