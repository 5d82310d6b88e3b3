"""A test copy of the fraud example's training flow whose first attempt is preempted.

Copied next to ``train_flow.py`` in a scratch copy of the example. It is
``FraudTrainingFlow`` unchanged, except that when the environment variable
``PREEMPT_AT_EPOCH`` is set, the first attempt of ``train`` kills its own process with
SIGKILL (what a reclaimed spot machine does: no exception, no clean-up) right after that
epoch. ``@retry`` then starts attempt 1, which ``@checkpoint`` resumes from the last saved
epoch.
"""

import os
import signal

import train_flow
from metaflow import current
from train_flow import FraudTrainingFlow

_epoch = train_flow.gradient_descent_epoch


def _epoch_then_preempt(state, *args, **kwargs):
    state = _epoch(state, *args, **kwargs)
    if current.retry_count == 0 and str(state["epoch"]) == os.environ.get("PREEMPT_AT_EPOCH"):
        print(f"preempted after epoch {state['epoch']}", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    return state


# The train step looks the function up in train_flow's globals at every epoch.
train_flow.gradient_descent_epoch = _epoch_then_preempt


class PreemptedTrainingFlow(FraudTrainingFlow):
    """FraudTrainingFlow, killed once mid-training (see the module docstring)."""


if __name__ == "__main__":
    PreemptedTrainingFlow()
