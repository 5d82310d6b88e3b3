"""FPL005 instance-spec: an instance spec is malformed.

**What it does.** Checks the instance argument of ``get_data``/``get_model``,
``consume_*``/``peek_*``, ``promote_assets(instance=...)`` and the alias and evidence
methods, when it is statically known, with the registry's own parser. The valid forms are
``latest``, ``latest-N`` (N versions back, N a decimal number), ``vN`` (N ≥ 1, no leading
zeros) and ``@alias`` (letters, digits, ``_``, ``-``, ``.``, at most 128 characters).
Dynamic specs are not judged.

**Why it is bad.** The registry resolves specs at run time: ``latest-x``, ``v0``, ``V3``
or a bare ``@`` fail only when the flow runs — possibly hours into a training run, or in
the middle of a promotion.

**Example.**

```python
self.prj.get_model("fraud_model", instance="latest-one")  # FPL005
self.prj.get_model("fraud_model", instance="latest-1")    # ok
self.prj.asset.consume_model_asset("fraud_model", "@champion")  # ok
```
"""

from __future__ import annotations

from collections.abc import Iterator

from flowpolicy.errors import RegistryError
from flowpolicy.lint.callsites import CallSite, Value
from flowpolicy.lint.rule import Rule, RuleContext
from flowpolicy.registry.base import parse_spec


def check(site: CallSite, ctx: RuleContext) -> Iterator[tuple[Value, str]]:
    spec = site.instance
    if spec is None or spec.value is None:
        return
    try:
        parse_spec(spec.value)
    except RegistryError:
        yield spec, (
            f"malformed instance spec {spec.display()}; use 'latest', 'latest-N', "
            "'vN' (N >= 1) or '@alias'"
        )


RULE = Rule.from_doc(__doc__, "Malformed instance spec", check)
