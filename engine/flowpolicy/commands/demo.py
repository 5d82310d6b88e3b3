"""``flowpolicy demo [--dir DIR]``: run the main job end to end in a scratch project.

Trains, gates, picks a champion, promotes dev → staging → prod and watches drift, with real
Metaflow runs (local metadata and datastore) and the embedded SQLite registry; then prints
the registry and every decision with its evidence. Exit 0 when every flow behaved as the
policy demands, 1 otherwise.
"""

from __future__ import annotations

import argparse

from flowpolicy import api
from flowpolicy.errors import EXIT_OK

HELP = "run the fraud example end to end (train, gate, champion, promote, drift) locally"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir", metavar="DIR",
        help="new or empty folder for the scratch project (default: a temporary folder)",
    )


def run(args: argparse.Namespace) -> int:
    api.demo(api.DemoRequest(directory=args.dir))
    return EXIT_OK
