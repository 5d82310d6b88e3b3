"""FPL004 asset-type-mismatch: a model API is used on a data asset, or the reverse.

**What it does.** Compares the API called — ``register_model``, ``get_model``,
``consume_model_asset``, ``peek_model_asset``, ``list_model_instances`` and the other
``*_model*`` methods against their ``*_data*`` twins, and ``asset_type=`` of the alias and
evidence methods — with the type the policy declares for the asset. An f-string is
reported when every declared asset it can name has the other type.

**Why it is bad.** Data and model assets live in separate namespaces of the registry.
``register_data("fraud_model", ...)`` creates a *second* asset called ``fraud_model`` that
no gate, champion rule or promotion edge looks at, and ``get_model("fraud_features")``
fails at run time, far from the typo.

**Example.**

```yaml
assets:
  fraud_features: {type: data}
```

```python
self.prj.get_model("fraud_features")  # FPL004: declared as a data asset
self.prj.get_data("fraud_features")   # ok
```
"""

from __future__ import annotations

from collections.abc import Iterator

from flowpolicy.lint.callsites import CallSite, Value
from flowpolicy.lint.rule import Rule, RuleContext


def check(site: CallSite, ctx: RuleContext) -> Iterator[tuple[Value, str]]:
    name = site.name
    used = site.asset_type
    if name is None or used is None or ctx.declared is None or name.fully_dynamic:
        return
    known = name.value
    if known is not None:
        declared = ctx.declared.get(known)
        if declared is not None and declared != used:
            yield name, (
                f"{site.api} uses {name.display()} as a {used} asset, but the policy "
                f"declares it as a {declared} asset"
            )
        return
    regex = name.regex()
    types = {t for n, t in ctx.declared.items() if regex.fullmatch(n)}
    if types and used not in types:
        (declared,) = types
        yield name, (
            f"{site.api} uses {name.display()} as a {used} asset, but every declared asset "
            f"it can name is a {declared} asset"
        )


RULE = Rule.from_doc(__doc__, "Model API used on a data asset, or the reverse", check)
