"""FPL009 checkpoint-as-model: a training checkpoint is used as the deployable model.

**What it does.** In a module that calls the registry, reports what can be seen without
running the code:

* a registration whose other arguments hold a Metaflow checkpoint: an expression reading
  ``current.checkpoint`` (``blobs=[current.checkpoint.directory]``), or the name of a flow
  attribute assigned from one anywhere in the module (``self.best = current.checkpoint.save()``
  then ``register_model("fraud_model", "best")``);
* a checkpoint loaded outside a ``@checkpoint`` step — in another step, a helper, or serving
  code: ``current.checkpoint.<anything but save>``, ``current.model.load(...)``,
  ``current.model.loaded``, and ``Checkpoint(...)`` imported from ``metaflow``.

Not caught: checkpoint paths passed in through parameters, configuration, other modules or
local variables; a model saved with ``current.model.save`` and registered from its own
reference (that is the model store, not a checkpoint); checkpoint loads inside a
``@checkpoint`` step, which is how training resumes. Files that never call the registry
are not read (the prefilter), so their checkpoint loads are not reported either.

**Why it is bad.** A checkpoint is a snapshot of a run in progress, kept so that training
can resume; it is not gated, carries no evidence, has no alias and is garbage-collected by
Metaflow's checkpoint retention. Serving or registering it bypasses the quality gate,
champion rule and promotion path that the policy declares for the model: what runs in
production is whatever the last checkpoint happened to hold.

**Example.**

```python
@step
def deploy(self):
    current.checkpoint.load()                        # FPL009: outside a @checkpoint step
    self.model = self.prj.get_model("fraud_model", instance="@production")  # ok
```
"""

from __future__ import annotations

from collections.abc import Iterator

from flowpolicy.lint.callsites import CallSite, Value
from flowpolicy.lint.rule import Rule, RuleContext

REGISTRY_MODEL = "load it from the registry (prj.get_model, Asset(...).consume_model_asset)"


def check(site: CallSite, ctx: RuleContext) -> Iterator[tuple[Value, str]]:
    if site.checkpoint_payload is not None and site.name is not None:
        yield site.checkpoint_payload, (
            f"{site.api} registers a checkpoint ({site.checkpoint_payload.source()}) as "
            f"{site.name.display()}: checkpoints are for resuming training; register the "
            "trained model once training has finished"
        )
    read = site.checkpoint_read
    if read is not None:
        where = f"step {site.step.name!r}" if site.step is not None else "code outside a step"
        yield read, (
            f"{site.api} loads a checkpoint in {where}, which is not a @checkpoint step: a "
            f"deployable model is a registered, gated asset; {REGISTRY_MODEL}"
        )


RULE = Rule.from_doc(__doc__, "Training checkpoint used as the deployable model", check)
