"""FPL006 dynamic-name: an asset name is not statically known.

**What it does.** Reports a registry call whose asset name has no constant text at all: a
variable, a function call, a parameter, ``f"{name}"``, ``*args``/``**kwargs``. Names built
from string literals, module-level or class-level string constants, keywords of a
module-level constructor call (``GATE = Gate(asset="fraud_model")`` then ``GATE.asset``,
as generated flows do), ``+`` and f-strings with constant text are checked by the other
rules instead. A name imported from another
module is not followed (the linter never imports code), so it counts as dynamic too.

**Why it is bad.** A name the linter cannot see is a name no rule can check: environment
words, the naming pattern and the policy's declared assets all go unverified. The finding
keeps such calls visible instead of silently skipping them; if the name really is decided
at run time (a loop over declared assets, say), say so with ``# noqa: FPL006``.

**Example.**

```python
self.prj.register_data(self.asset_name, "features")   # FPL006
FEATURES = "fraud_features"
self.prj.register_data(FEATURES, "features")          # ok: a module-level constant
```
"""

from __future__ import annotations

from collections.abc import Iterator

from flowpolicy.lint.callsites import CallSite, Value
from flowpolicy.lint.rule import Rule, RuleContext


def check(site: CallSite, ctx: RuleContext) -> Iterator[tuple[Value, str]]:
    if site.name is not None and site.name.fully_dynamic:
        yield site.name, (
            f"asset name of {site.api} is not statically known ({site.name.source()}); "
            "use a string literal or a module-level constant"
        )


RULE = Rule(
    code="FPL006",
    name="dynamic-name",
    summary="Asset name is not statically known",
    docstring=__doc__,
    check=check,
)
