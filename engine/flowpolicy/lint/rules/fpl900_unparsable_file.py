"""FPL900 unparsable-file: a Python file cannot be parsed.

**What it does.** Reports, at the place of the fault, a file that is not valid Python for
the running interpreter: a syntax error, bytes that do not decode in the file's encoding
(UTF-8 unless a PEP 263 ``# -*- coding: ... -*-`` line says otherwise), or NUL bytes. The
other files are linted as usual: one bad file never stops the run. This finding cannot be
suppressed with ``noqa`` (the comment could not be read reliably); exclude the file
instead.

**Why it is bad.** A file the linter cannot parse is a file whose asset names nobody
checked — and it will not import either.

**Example.**

```python
# -*- coding: utf-8 -*-
name = "caf\xe9"   # written as Latin-1 bytes -> FPL900 'utf-8' codec can't decode byte 0xe9
```
"""

from __future__ import annotations

from flowpolicy.lint.rule import Rule

RULE = Rule.from_doc(__doc__, "File cannot be parsed")
