"""FPL003 undeclared-asset: the code uses an asset the policy does not declare.

**What it does.** When the policy in force sets ``naming.declared_only: true``, every asset
name in the code must be declared under ``assets:``. An f-string is reported when no
declared name fits its constant text. The rule is silent without a policy (the stock
preset declares no assets) and when ``declared_only`` is false.

**Why it is bad.** Gates, champion rules, promotion edges and drift monitors refer to
assets by their declared name. An asset registered under a name the policy does not know
is never gated, never promoted along a declared path and never monitored — typically a
typo (``fraud_modle``) or a name that drifted from the policy.

**Example.**

```yaml
naming: {declared_only: true}
assets:
  fraud_model: {type: model}
```

```python
self.prj.register_model("fraud_modle", "model")  # FPL003 (did you mean 'fraud_model'?)
self.prj.register_model("fraud_model", "model")  # ok
```
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator

from flowpolicy.lint.callsites import CallSite, Value
from flowpolicy.lint.rule import Rule, RuleContext


def check(site: CallSite, ctx: RuleContext) -> Iterator[tuple[Value, str]]:
    name = site.name
    if name is None or name.fully_dynamic or ctx.declared is None:
        return
    if not ctx.naming.declared_only:
        return
    where = ctx.policy_source or "the policy"
    known = name.value
    if known is not None:
        if known in ctx.declared:
            return
        close = difflib.get_close_matches(known, list(ctx.declared), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        yield name, f"asset {name.display()} is not declared in {where}{hint}"
        return
    regex = name.regex()
    if not any(regex.fullmatch(declared) for declared in ctx.declared):
        yield name, f"asset name {name.display()} matches no asset declared in {where}"


RULE = Rule.from_doc(__doc__, "Asset is not declared in the policy", check)
