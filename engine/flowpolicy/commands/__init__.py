"""One module per CLI sub-command. Each provides ``HELP`` (one line), ``add_arguments(parser)``
and ``run(args) -> int``: it builds the request of its :mod:`flowpolicy.api` function from
the arguments, calls it, prints the result and returns the result's exit code. No command
imports another; the options several share, and the printing, are here."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import TextIO

from flowpolicy.formats import DATA_FORMATS, FORMATS, Report

POLICIES_HELP = ("policy files or directories (default: ./policies/ if it exists, else the "
                 "current directory)")
PROJECT_HELP = "project (default: FLOWPOLICY_PROJECT, obproject.toml)"
REGISTRY_HELP = ("registry URL (default: FLOWPOLICY_REGISTRY or .flowpolicy/registry.db at "
                 "the project root)")


def add_registry(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--registry", metavar="URL", help=REGISTRY_HELP)


def add_format(parser: argparse.ArgumentParser, choices: Sequence[str] = DATA_FORMATS) -> None:
    parser.add_argument("--format", choices=tuple(choices), default="text",
                        help="report format (default: text)")


def add_switches(parser: argparse.ArgumentParser, switches: Mapping[str, str]) -> None:
    """On/off options (``store_true``), each ``--flag`` with its help, in order."""
    for flag, meaning in switches.items():
        parser.add_argument(flag, action="store_true", help=meaning)


def add_scope(parser: argparse.ArgumentParser) -> None:
    """``--project``, ``--branch``, ``--registry`` and ``--format`` of the registry reports."""
    parser.add_argument("--project", help=PROJECT_HELP)
    parser.add_argument("--branch", help="asset branch (sanitised as obproject does)")
    add_registry(parser)
    add_format(parser)


def emit(report: Report, fmt: str, out: TextIO | None = None) -> int:
    """Print ``report`` in format ``fmt`` (:data:`flowpolicy.formats.FORMATS`) and return its
    exit code."""
    FORMATS[fmt](report, out or sys.stdout)
    return report.exit_code


def add_lifecycle(parser: argparse.ArgumentParser) -> None:
    """What ``promote``, ``rollback`` and ``alias`` share."""
    parser.add_argument("--project", help=PROJECT_HELP)
    parser.add_argument("--policy", action="append", default=[], metavar="PATH",
                        help="policy file or folder (default: ./policies/)")
    add_registry(parser)
    parser.add_argument("--reason", metavar="TEXT", help="why (kept in the alias history)")
    parser.add_argument("--dry-run", action="store_true",
                        help="decide and report, write nothing")
    add_format(parser)


def lifecycle_options(args: argparse.Namespace) -> dict:
    """The :class:`~flowpolicy.request.LifecycleRequest` fields of ``add_lifecycle``."""
    return {"asset": args.asset, "project": args.project, "policies": tuple(args.policy),
            "registry": args.registry, "reason": args.reason, "dry_run": args.dry_run}


def emit_move(outcome, fmt: str) -> int:
    """A lifecycle outcome: a refusal is one line on stderr (``flowpolicy: refused: ...``),
    as every refusal is; anything else goes through :func:`emit`."""
    if fmt == "text" and outcome.refused:
        print(f"flowpolicy: refused: {outcome.message}", file=sys.stderr)
        return outcome.exit_code
    return emit(outcome, fmt)
