"""Domain errors. Every user-facing failure is one of these; the CLI catches them once,
prints the message to stderr and exits with the error's code (tracebacks only with --debug)."""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class ErrorResponse:
    """What ``requests.HTTPError.response`` offers code written for obproject: the HTTP
    status Outerbounds' asset service answers the same failure with, and the message."""

    status_code: int
    text: str

    @property
    def ok(self) -> bool:
        return self.status_code < 400


class RegistryError(FlowpolicyError):
    """The asset registry cannot answer: unknown asset, bad instance spec, corrupt file.

    ``status_code`` (and ``response.status_code``) is the HTTP status the Outerbounds asset
    service answers the same failure with, so code written for obproject's
    ``requests.HTTPError`` can branch on it: 400 a bad request (a malformed instance spec or
    name), 404 nothing there (:class:`flowpolicy.registry.base.AssetNotFound`), 403 a
    read-only registry, 409 an alias moved meanwhile, 500 damaged storage, 503 busy or
    unreachable."""

    status_code = 400

    def __init__(self, message: str, *, exit_code: int | None = None,
                 status_code: int | None = None):
        super().__init__(message, exit_code=exit_code)
        if status_code is not None:
            self.status_code = status_code

    @property
    def response(self) -> ErrorResponse:
        return ErrorResponse(self.status_code, self.message)


class CompileError(FlowpolicyError):
    """A policy cannot be turned into flows (e.g. an identifier that is not safe)."""


class OutputError(FlowpolicyError):
    """A file or folder cannot be written where the user asked (a missing folder, a path
    that is a file, no permission)."""
