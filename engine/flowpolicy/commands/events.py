"""``flowpolicy events``: project events published by flows (``prj.<project>.<branch>.<name>``),
oldest first. Without ``--project`` every project's events are shown. The registry is opened
read-only and named in the output (a ``registry`` line, or key in JSON)."""

from __future__ import annotations

import argparse
import json
import sys

from flowpolicy.errors import EXIT_OK

HELP = "show project events published to the asset registry"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from flowpolicy.commands.assets import add_scope_arguments

    parser.add_argument("--name", help="only events with this name (e.g. model_promoted)")
    add_scope_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from flowpolicy.commands.assets import open_existing
    from flowpolicy.runtime.branch import sanitize_branch

    registry = open_existing(args.registry)
    branch = sanitize_branch(args.branch) if args.branch else None
    events = [e.to_dict() for e in registry.events(args.project, branch, args.name)]
    if args.format == "json":
        json.dump({"registry": registry.url, "events": events}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    print(f"registry {registry.url}")
    if not events:
        print("no events")
    for event in events:
        payload = "" if event["payload"] is None else "  " + json.dumps(
            event["payload"], sort_keys=True)
        producer = event["producer"]
        print(f"{event['created_at']}  {event['event']}  "
              f"by {producer['entity_kind']} {producer['entity_id']}{payload}")
    return EXIT_OK
