"""FPL006 dynamic-name: an asset name is not statically known.

**What it does.** Reports a registry call whose asset name has no constant text at all: a
variable, a function call, a parameter, ``f"{name}"``, ``*args``/``**kwargs``. Names built
from string literals, module-level or class-level string constants, keywords of a
module-level constructor call (``GATE = Gate(asset="fraud_model")`` then ``GATE.asset``,
as generated flows do), ``+`` and f-strings with constant text are checked by the other
rules instead. A name imported from another
module is not followed (the linter never imports code), so it counts as dynamic too.

It also reports, at the argument, an asset name, instance spec or annotation key whose
evaluation tripped one of the linter's bounds: folded text longer than 4,096 characters,
nesting deeper than 100 levels (``+`` chains, constants defined through constants), or more
than 200,000 folding steps in one module. Each constant is folded once, so real code stays
far below them; the bounds exist so that no file can make the linter run away (a few lines
of constants that each repeat the previous one would otherwise grow exponentially).

**Why it is bad.** A name the linter cannot see is a name no rule can check: environment
words, the naming pattern and the policy's declared assets all go unverified. The finding
keeps such calls visible instead of silently skipping them; if the name really is decided
at run time (a loop over declared assets, say), say so with ``# noqa: FPL006``.

**Example.**

```python
self.prj.register_data(self.asset_name, "features")   # FPL006
FEATURES = "fraud_features"
self.prj.register_data(FEATURES, "features")          # ok: a module-level constant
A = "abcdefgh"
B = f"{A}{A}{A}{A}"                                   # 32 characters; C, D, E: 4x each
F = f"{E}{E}{E}{E}"                                   # 8,192 characters
self.prj.register_data(F, "features")                 # FPL006: longer than 4096 characters
```
"""

from __future__ import annotations

from collections.abc import Iterator

from flowpolicy.lint.callsites import CallSite, Value
from flowpolicy.lint.rule import Rule, RuleContext


def check(site: CallSite, ctx: RuleContext) -> Iterator[tuple[Value, str]]:
    for what, value in site.values():
        if value.limit is not None:
            yield value, (
                f"{what} of {site.api} was not evaluated: {value.limit} (the linter's "
                "bound); use a shorter literal or constant"
            )
        elif what == "asset name" and value.fully_dynamic:
            yield value, (
                f"asset name of {site.api} is not statically known ({value.source()}); "
                "use a string literal or a module-level constant"
            )


RULE = Rule.from_doc(__doc__, "Asset name is not statically known", check)
