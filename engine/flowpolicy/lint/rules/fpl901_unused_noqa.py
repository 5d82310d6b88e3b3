"""FPL901 unused-noqa: a ``# noqa: FPL...`` comment suppresses nothing.

**What it does.** With ``--report-unused-noqa``, reports each ``FPL`` code listed in a
``# noqa:`` comment that suppressed no finding on its line, and ``FPL`` codes that do not
exist. Codes of other tools (``E501``, ``F401``) and bare ``# noqa`` comments are left
alone: they may belong to flake8 or ruff.

**Why it is bad.** A stale suppression hides the next real problem on that line. Once the
name is fixed, the comment should go.

**Example.**

```python
self.prj.register_data("fraud_features", "df")  # noqa: FPL001   <- FPL901, nothing to hide
```
"""

from __future__ import annotations

from flowpolicy.lint.rule import Rule

RULE = Rule.from_doc(__doc__, "Unused noqa suppression")
