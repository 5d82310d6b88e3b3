"""Domain errors. Every user-facing failure is one of these; the CLI catches them once,
prints the message to stderr and exits with the error's code (tracebacks only with --debug)."""

from __future__ import annotations

from flowpolicy.diagnostics import Diagnostic

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2


class FlowpolicyError(Exception):
    """Base of every error flowpolicy reports to a user."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class PolicyError(FlowpolicyError):
    """A policy could not be loaded; carries every diagnostic found, not just the first."""

    def __init__(self, diagnostics: list[Diagnostic] | tuple[Diagnostic, ...]):
        self.diagnostics = tuple(diagnostics)
        super().__init__("\n".join(d.format() for d in self.diagnostics))


class RegistryError(FlowpolicyError):
    """The asset registry cannot answer: unknown asset, bad instance spec, corrupt file."""


class CompileError(FlowpolicyError):
    """A policy cannot be turned into flows (e.g. an identifier that is not safe)."""


class OutputError(FlowpolicyError):
    """A file or folder cannot be written where the user asked (a missing folder, a path
    that is a file, no permission)."""
