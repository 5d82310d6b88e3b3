"""FPL002 name-pattern: an asset name does not match the policy's naming pattern.

**What it does.** Checks the asset name against ``naming.pattern`` (a regular expression,
searched as JSON Schema does, on RE2 like the policy validator, so a pattern cannot make
the linter backtrack; the stock preset uses ``^[a-z][a-z0-9_]{2,62}$``). An
f-string is reported when its constant text already rules a match out: the dynamic parts
are replaced by a few sample values (empty, ``a``, ``A``, ``1``, ``a1``, ``abc``, ``a_b``,
``a-b``) and none of the results matches.

**Why it is bad.** Asset names become registry keys, Metaflow artifact annotations and
event names (``prj.<project>.<branch>.<name>``). A name outside the pattern (capitals,
spaces, dots, too long) is refused by the policy, differs between tools that normalise
case, and cannot be declared under ``assets:``.

**Example.**

```python
self.prj.register_data("Fraud Features", "features")  # FPL002
self.prj.register_data("fraud_features", "features")  # ok
```
"""

from __future__ import annotations

from collections.abc import Iterator

from flowpolicy.lint.callsites import DYNAMIC, CallSite, Value
from flowpolicy.lint.rule import Rule, RuleContext

#: Sample values for dynamic parts; a name is reported only if all of them fail.
PROBES = ("", "a", "A", "1", "a1", "abc", "a_b", "a-b")


def can_match(value: Value, ctx: RuleContext) -> bool:
    known = value.value
    if known is not None:
        return ctx.naming.matches(known)
    return any(
        ctx.naming.matches("".join(probe if p is DYNAMIC else p for p in value.parts))
        for probe in PROBES
    )


def check(site: CallSite, ctx: RuleContext) -> Iterator[tuple[Value, str]]:
    name = site.name
    if name is None or name.fully_dynamic or can_match(name, ctx):
        return
    if name.value is not None:
        yield name, (
            f"{site.name_label} {name.display()} does not match the naming pattern "
            f"{ctx.naming.pattern!r}"
        )
    else:
        yield name, (
            f"{site.name_label} {name.display()} cannot match the naming pattern "
            f"{ctx.naming.pattern!r} whatever its dynamic parts are"
        )


RULE = Rule.from_doc(__doc__, "Asset name does not match the naming pattern", check,
                     checks_declared_names=True)
