"""``flowpolicy registry info | copy SRC DST``: the registry itself rather than its assets.

``info`` names the backend, where the registry is, its schema version and sizes (rows per
table, bytes on disk); the registry is opened read-only. ``copy`` moves a whole registry from
one SQL backend to another (the embedded SQLite file to a PostgreSQL server, or back):
instances with their numbers and timestamps, aliases, alias history, evidence, lineage and
events, ids included. It reads the source in one snapshot, writes the destination in one
transaction, refuses a destination that holds anything unless ``--replace``, and commits
only after reading the destination back with equal row counts and content hash.
Exit 0 done, 1 refused (destination not empty, nothing to copy, copy did not verify),
2 invalid input (a registry that is not there or cannot be reached).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from flowpolicy.errors import EXIT_FINDINGS, EXIT_OK, RegistryError

HELP = "show a registry's backend, schema and size, or copy a whole registry to another backend"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True,
                                    parser_class=type(parser))
    info = actions.add_parser("info", help="backend, location, schema version and sizes")
    info.add_argument("--registry", metavar="URL",
                      help="registry URL (default: FLOWPOLICY_REGISTRY or "
                           ".flowpolicy/registry.db at the project root)")
    info.add_argument("--format", choices=("text", "json"), default="text")
    copy = actions.add_parser(
        "copy", help="copy every instance, alias, history entry, evidence record, lineage "
                     "record and event from SRC to DST, verified")
    copy.add_argument("source", metavar="SRC", help="registry URL to copy from (read only)")
    copy.add_argument("destination", metavar="DST",
                      help="registry URL to copy into, e.g. postgresql://user@host:5432/db")
    copy.add_argument("--replace", action="store_true",
                      help="discard what DST holds (default: refuse a DST that is not empty)")
    copy.add_argument("--format", choices=("text", "json"), default="text")


def run(args: argparse.Namespace) -> int:
    return _info(args) if args.action == "info" else _copy(args)


def _sql_backend(registry: Any, role: str):
    from flowpolicy.registry.sql import SQLRegistry

    if not isinstance(registry, SQLRegistry):
        raise RegistryError(f"{role} {registry.url}: copy works between SQL registries "
                            "(sqlite:///… and postgresql://…), not this backend")
    return registry


def _info(args: argparse.Namespace) -> int:
    from flowpolicy.commands.assets import open_existing

    registry = open_existing(args.registry)
    info = {"registry": registry.url, **registry.info()}
    if args.format == "json":
        json.dump(info, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    print(f"registry {info['registry']}")
    print(f"  backend   {info['backend']} ({info['server']})")
    print(f"  location  {info['location']}")
    for line in info.get("guarantees", ()):
        print(f"  {line}")
    if "schema_version" in info:
        print(f"  schema    version {info['schema_version']} (this flowpolicy writes "
              f"{info['current_schema_version']})")
        print(f"  size      {_bytes(info['bytes'])}")
        print(f"  rows      {_rows(info['rows'])}")
    return EXIT_OK


def _copy(args: argparse.Namespace) -> int:
    from flowpolicy.registry import open_existing_registry, open_registry
    from flowpolicy.registry.sql import copy_registry

    source = _sql_backend(open_existing_registry(
        args.source, read_only=True, missing="nothing to copy"), "source")
    if not any(source.digest().counts.values()):
        print(f"nothing to copy: {source.url} holds no rows", file=sys.stderr)
        return EXIT_FINDINGS
    destination = _sql_backend(open_registry(args.destination), "destination")
    report = copy_registry(source, destination, replace=args.replace)
    if args.format == "json":
        json.dump(report.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    replaced = " (its previous contents discarded)" if report.replaced else ""
    print(f"copied {report.source} → {report.destination}{replaced}")
    print(f"  rows      {_rows(report.digest.counts)}")
    print(f"  verified  row counts and content sha256 {report.digest.sha256[:16]}… equal in both")
    return EXIT_OK


def _rows(counts: dict[str, int]) -> str:
    return ", ".join(f"{table} {count}" for table, count in counts.items())


def _bytes(size: int) -> str:
    value, unit = float(size), "B"
    for bigger in ("KiB", "MiB", "GiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
