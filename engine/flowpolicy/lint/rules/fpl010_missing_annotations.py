"""FPL010 missing-annotations: a registration lacks annotations the policy requires.

**What it does.** For a registration of a declared asset (``register_model``,
``register_data``, ``register_external_*``, ``Asset(...).register_*_asset``) whose name is
statically known, compares the annotation keys passed with the asset's
``required_annotations`` in the policy and reports the missing ones at the
``annotations=`` argument (at the name when none is passed). The keys are known when the
argument is a dict literal or ``dict(key=...)`` call whose keys are literals or
constants; a key given ``None`` or ``""`` counts as missing, as the gates count it. Keys the
runtime adds itself (``artifact`` and ``run_pathspec`` on ``register_data`` /
``register_model``) count as given. Annotations built elsewhere (a variable, a function
call, ``**extra``) are not judged.

**Why it is bad.** Gates and champion rules read their metrics from the annotations, and
``flowpolicy check`` refuses instances without the required ones: a version registered
without ``f1_score`` fails its gate (or the audit) long after the training run that could
have recorded it has finished.

**Example.**

```yaml
assets:
  fraud_model: {type: model, required_annotations: [f1_score, training_run_id]}
```

```python
self.prj.register_model("fraud_model", "model",
                        annotations={"f1_score": f1})  # FPL010: no 'training_run_id'
self.prj.register_model("fraud_model", "model",
                        annotations={"f1_score": f1, "training_run_id": current.run_id})  # ok
```
"""

from __future__ import annotations

from collections.abc import Iterator

from flowpolicy.lint.callsites import CallSite, Value
from flowpolicy.lint.rule import Rule, RuleContext


def check(site: CallSite, ctx: RuleContext) -> Iterator[tuple[Value, str]]:
    if not site.registers or site.name is None or site.annotation_keys is None:
        return
    required = ctx.required_annotations.get(site.name.value, ())  # a dynamic name is None
    if not required or site.annotations is None:
        return
    given = {key.value for key in site.annotation_keys}
    if None in given:  # a key that is not statically known may be any of them
        return
    missing = [key for key in required if key not in given]
    if missing:
        listed = ", ".join(repr(key) for key in missing)
        where = ctx.policy_source or "the policy"
        yield site.annotations, (
            f"{site.api} registers {site.name.display()} without the annotation"
            f"{'s' if len(missing) > 1 else ''} {listed} that {where} requires for it"
        )


RULE = Rule.from_doc(__doc__, "Registration lacks annotations the policy requires", check)
