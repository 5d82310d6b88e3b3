"""FPL007 register-in-loop: a step registers an asset inside a loop.

**What it does.** Reports a registration (``register_data``, ``register_model``,
``register_external_*``, ``Asset(...).register_*_asset``) inside the body of a ``for`` or
``while`` loop or a comprehension of a Metaflow step (a method decorated ``@step``), when
the asset name does not use the loop's variable — so every iteration registers the same
asset again. A loop over names (``for name in NAMES: register_data(name, ...)``) registers
one version of each and is left alone, unless another loop around the call repeats it
(``for epoch ...: for name in NAMES: ...``). Only loops in the step's own body count: a
registration in a helper function the loop calls is not seen. A registration inside the
training loop of a ``@checkpoint`` step is FPL008's finding instead, never both.

**Why it is bad.** Every registration creates a new immutable version (v1, v2, ...). One
per iteration floods the registry with half-finished versions, moves ``latest`` on every
pass, and fires the lifecycle events that start gates and promotions for each of them;
``latest-1`` no longer means "the previous run".

**Example.**

```python
@step
def train(self):
    for epoch in range(self.epochs):
        self.model = fit_one_epoch(self.model)
        self.prj.register_model("fraud_model", "model")  # FPL007
    self.prj.register_model("fraud_model", "model")      # ok: once, after the loop
```
"""

from __future__ import annotations

from collections.abc import Iterator

from flowpolicy.lint.callsites import CallSite, Value
from flowpolicy.lint.rule import Rule, RuleContext
from flowpolicy.lint.rules.fpl008_checkpoint_registration import in_training_loop


def check(site: CallSite, ctx: RuleContext) -> Iterator[tuple[Value, str]]:
    loop, step = site.loop, site.step
    if not site.registers or site.name is None or loop is None or step is None:
        return
    if loop.name_varies or in_training_loop(site):
        return
    yield site.name, (
        f"{site.api} registers {site.name.display()} inside the {loop.kind} loop at line "
        f"{loop.line} of step {step.name!r}: one version per iteration; register once "
        "after the loop"
    )


RULE = Rule.from_doc(__doc__, "Asset registered inside a loop of a step", check)
