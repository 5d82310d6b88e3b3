"""``flowpolicy registry info | copy SRC DST``: the registry itself rather than its assets.

``info`` names the backend, where the registry is, its schema version and sizes; the
registry is opened read-only. ``copy`` moves a whole registry from one SQL backend to another
(the embedded SQLite file to a PostgreSQL server, or back), verified
(:func:`flowpolicy.registry.sql.copy_registry`).
Exit 0 done, 1 refused (destination not empty, nothing to copy, copy did not verify),
2 invalid input (a registry that is not there or cannot be reached).
"""

from __future__ import annotations

import argparse

from flowpolicy import api
from flowpolicy.commands import add_format, add_registry, emit

HELP = "show a registry's backend, schema and size, or copy a whole registry to another backend"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True,
                                    parser_class=type(parser))
    info = actions.add_parser("info", help="backend, location, schema version and sizes")
    add_registry(info)
    add_format(info)
    copy = actions.add_parser(
        "copy", help="copy every instance, alias, history entry, evidence record, lineage "
                     "record and event from SRC to DST, verified")
    copy.add_argument("source", metavar="SRC", help="registry URL to copy from (read only)")
    copy.add_argument("destination", metavar="DST",
                      help="registry URL to copy into, e.g. postgresql://user@host:5432/db")
    copy.add_argument("--replace", action="store_true",
                      help="discard what DST holds (default: refuse a DST that is not empty)")
    add_format(copy)


def run(args: argparse.Namespace) -> int:
    if args.action == "info":
        return emit(api.registry_info(api.RegistryInfoRequest(registry=args.registry)),
                    args.format)
    return emit(api.registry_copy(api.RegistryCopyRequest(
        source=args.source, destination=args.destination, replace=args.replace)), args.format)
