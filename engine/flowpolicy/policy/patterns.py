"""Every regular expression a policy supplies or the schema declares runs here, on RE2.

RE2 matches in time linear in the input whatever the pattern, so no ``naming.pattern`` can
make ``validate`` or ``lint`` hang on catastrophic backtracking (``(a+)+$`` against a long
name costs what ``a+`` costs). Its syntax is Python's ``re`` less the constructs that need
backtracking: backreferences, lookahead and lookbehind, atomic groups and possessive
repeats, conditionals. Those are refused with a message that says so.

``$`` means the end of the text in RE2 (as in ECMA-262, the dialect JSON Schema patterns are
written in), never "before a final newline" as in Python: ``^[a-z]+$`` does not accept
``"abc\\n"``. The schema's ``pattern`` keyword is evaluated with :func:`search` for that reason.
"""

from __future__ import annotations

from functools import cache

import re2

__all__ = ["PatternError", "compile_pattern", "search"]

#: RE2's memory budget for one compiled pattern; a pattern needing more is refused when it is
#: compiled (not while matching), so a huge counted repeat is an error, not a slow match.
MAX_PATTERN_MEMORY = 8 << 20

#: Python ``re`` constructs RE2 lacks, as written in a pattern, and what to tell the user
#: (looked up in the pattern only once RE2 has refused it; longer markers first).
_UNSUPPORTED = (
    ("(?P=", "named backreferences (?P=name) are not supported"),
    ("(?<=", "lookbehind (?<=...) is not supported"),
    ("(?<!", "negative lookbehind (?<!...) is not supported"),
    ("(?=", "lookahead (?=...) is not supported"),
    ("(?!", "negative lookahead (?!...) is not supported"),
    ("(?>", "atomic groups (?>...) are not supported"),
    ("(?(", "conditionals (?(...)...) are not supported"),
    ("(?#", "comments (?#...) are not supported"),
    ("\\Z", "\\Z is not supported; $ already means the very end of the text"),
    ("++", "possessive repeats (++, *+, ?+) are not supported"),
    ("*+", "possessive repeats (++, *+, ?+) are not supported"),
    ("?+", "possessive repeats (++, *+, ?+) are not supported"),
    *((f"\\{digit}", "backreferences (\\1 ...) are not supported") for digit in "123456789"),
)


class PatternError(ValueError):
    """A pattern RE2 cannot compile; the message says why, in terms of Python's ``re``."""


def _options():
    options = re2.Options()
    options.log_errors = False  # the error is reported to the user, not logged to stderr
    options.max_mem = MAX_PATTERN_MEMORY
    return options


def _explain(pattern: str, reason: str) -> str:
    for marker, message in _UNSUPPORTED:
        if marker in pattern:
            return f"{message} (patterns run on RE2, which never backtracks; {reason})"
    if reason.startswith("pattern too large"):
        return f"{reason}: it needs more than {MAX_PATTERN_MEMORY >> 20} MB to compile"
    return reason


@cache
def compile_pattern(pattern: str):
    """The compiled RE2 pattern (cached); raises :class:`PatternError`."""
    try:
        return re2.compile(pattern, options=_options())
    except re2.error as exc:
        reason = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(
            exc.args[0], bytes) else str(exc)
        raise PatternError(_explain(pattern, reason)) from None


def search(pattern: str, text: str) -> bool:
    """Whether ``pattern`` matches somewhere in ``text`` (JSON Schema's ``pattern`` test)."""
    return compile_pattern(pattern).search(text) is not None
