"""``flowpolicy demo [--dir DIR]``: run the main job end to end in a scratch project, with
real Metaflow runs (see :mod:`flowpolicy.demo`). Exit 0 when every flow behaved as the
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
    parser.add_argument(
        "--registry", metavar="URL",
        help="an empty registry to run on, e.g. postgresql://user@host:5432/db (default: a "
             "new SQLite file in the scratch folder)",
    )


def run(args: argparse.Namespace) -> int:
    api.demo(api.DemoRequest(directory=args.dir, registry=args.registry))
    return EXIT_OK
