"""The ``flowpolicy`` command line: parses arguments, calls the API, prints, picks the exit code.

Each sub-command is a module of :mod:`flowpolicy.commands`. Domain errors
(:class:`FlowpolicyError`) are caught here once and printed to stderr without a traceback
unless ``--debug``.
Exit codes: 0 clean, 1 findings, 2 invalid input or usage.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from flowpolicy import __version__
from flowpolicy.errors import EXIT_USAGE, FlowpolicyError

COMMANDS = (
    "validate",
    "schema",
    "compile",
    "lint",
    "check",
    "plan",
    "assets",
    "events",
    "dispatch",
    "graph",
    "report",
    "serve",
    "promote",
    "rollback",
    "alias",
    "registry",
    "demo",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's usage errors exit 2, as ours do
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="flowpolicy",
        description="Declarative promotion policies for Metaflow projects.",
    )
    parser.add_argument("--version", action="version", version=f"flowpolicy {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        module = importlib.import_module(f"flowpolicy.commands.{name}")
        command = sub.add_parser(name, help=module.HELP, description=module.HELP)
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show tracebacks for errors")
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


#: Import names of flowpolicy's dependencies that differ from the package to install.
_PACKAGE_OF_MODULE = {"re2": "google-re2", "yaml": "pyyaml"}


def _missing_module(exc: ModuleNotFoundError) -> str:
    """What to tell a user whose installation lacks a module: typically an environment
    installed before a dependency was added to pyproject.toml (an editable install does not
    pick new dependencies up by itself)."""
    module = (exc.name or "?").partition(".")[0]
    package = _PACKAGE_OF_MODULE.get(module, module)
    return (f"flowpolicy: error: the Python module {module!r} is not installed (package "
            f"{package}); this installation of flowpolicy is incomplete or older than its code: "
            "reinstall it (pip install -e '.[dev]' in the checkout, or pip install flowpolicy)")


def main(argv: list[str] | None = None) -> int:
    args = None
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "_run", None):
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        return int(args._run(args) or 0)
    except ModuleNotFoundError as exc:
        if getattr(args, "debug", False) or (exc.name or "").startswith("flowpolicy"):
            raise
        print(_missing_module(exc), file=sys.stderr)
        return EXIT_USAGE
    except FlowpolicyError as exc:
        if getattr(args, "debug", False):
            raise
        print(f"flowpolicy: error: {exc}" if "\n" not in str(exc) else str(exc), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
