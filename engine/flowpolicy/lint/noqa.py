"""``# noqa`` comments with flake8's semantics.

``# noqa`` on a line suppresses every finding on it; ``# noqa: FPL001,FPL003`` (or
separated by spaces) only those codes, each matched as a prefix, so ``# noqa: FPL00``
covers FPL001..FPL009. The word is case-insensitive. A comment whose code list is
malformed (``# noqa: fpl-1``) is a blanket ``# noqa``, as in flake8.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NOQA = re.compile(
    r"#[ \t]*noqa(?::[ \t]?(?P<codes>[A-Z]+[0-9]+(?:[ \t,]+[A-Z]+[0-9]+)*))?", re.IGNORECASE
)
_SPLIT = re.compile(r"[ \t,]+")


@dataclass(frozen=True, slots=True)
class Suppression:
    """One ``# noqa`` comment. ``codes`` is None for a blanket ``# noqa``."""

    line: int
    col: int
    codes: tuple[str, ...] | None

    def covers(self, code: str) -> bool:
        return self.codes is None or code.startswith(self.codes)


def parse_line(text: str, line: int) -> Suppression | None:
    """The suppression written on one source line, if any."""
    if "noqa" not in text.lower():
        return None
    match = NOQA.search(text)
    if match is None:
        return None
    codes = match.group("codes")
    return Suppression(
        line=line,
        col=match.start() + 1,
        codes=tuple(c.upper() for c in _SPLIT.split(codes.strip())) if codes else None,
    )
