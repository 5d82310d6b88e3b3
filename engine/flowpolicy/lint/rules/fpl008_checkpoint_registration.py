"""FPL008 checkpoint-registration: a ``@checkpoint`` step registers inside its training loop.

**What it does.** In a step decorated with both ``@step`` and ``@checkpoint``, the
*training loop* is a ``for``/``while`` loop whose body calls ``current.checkpoint.save``.
A registration (``register_model``, ``register_data``, ``register_external_*``,
``Asset(...).register_*_asset``) anywhere inside that loop is reported, whatever its name.
A training loop that saves through a helper function is not recognised as one; a
registration in it is still FPL007's finding when the name is the same every iteration.

**Why it is bad.** Checkpoints exist so that a failed or preempted training run resumes
where it stopped (``@checkpoint`` with ``@retry``). A model registered inside the loop is a
partly trained model: each epoch becomes a version that the quality gate judges and the
promotion flow may promote, and after a resume the same epochs register again. Checkpoints
are for resuming; the registry holds the finished model.

**Example.**

```python
@checkpoint
@step
def train(self):
    for epoch in range(self.epochs):
        self.model = fit_one_epoch(self.model)
        current.checkpoint.save()
        self.prj.register_model("fraud_model", "model")  # FPL008
    self.prj.register_model("fraud_model", "model")      # ok: after the loop
```
"""

from __future__ import annotations

from collections.abc import Iterator

from flowpolicy.lint.callsites import CallSite, Value
from flowpolicy.lint.rule import Rule, RuleContext


def in_training_loop(site: CallSite) -> bool:
    """Whether ``site`` registers inside the checkpoint-saving loop of a @checkpoint step
    (FPL008's case, which FPL007 leaves to it)."""
    return (
        site.registers and site.step is not None and site.step.checkpoint
        and site.loop is not None and site.loop.training_loop_line is not None
    )


def check(site: CallSite, ctx: RuleContext) -> Iterator[tuple[Value, str]]:
    if site.name is None or not in_training_loop(site):
        return
    assert site.step is not None and site.loop is not None
    yield site.name, (
        f"{site.api} registers {site.name.display()} inside the training loop (line "
        f"{site.loop.training_loop_line}) of @checkpoint step {site.step.name!r}: every pass "
        "registers a partly trained version; checkpoints are for resuming, register once "
        "after the loop"
    )


RULE = Rule.from_doc(
    __doc__, "Asset registered inside the training loop of a @checkpoint step", check)
