"""Checkpoints vs assets in the fraud example, run for real: metaflow-checkpoint's
``@checkpoint`` on Metaflow's local datastore, ``@retry``, and the SQLite registry.

A scratch copy of the example runs two trainings at once: ``train_flow.py`` as it is, and
``tests/runtime_flows/preempted_training_flow.py`` (the same flow, whose first attempt of
``train`` SIGKILLs itself after epoch 130; see that file). The killed attempt saved
checkpoints at epochs 50 and 100, so the retry must resume from 100, end with the very model
the uninterrupted run trained, and register ``fraud_model`` once.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flowpolicy import Asset
from flowpolicy.demo import flow_environment

pytestmark = pytest.mark.flows

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = REPO_ROOT / "examples" / "fraud_detection"
PREEMPTED = Path(__file__).parent / "runtime_flows" / "preempted_training_flow.py"
PREEMPT_AT_EPOCH = 130
TRAININGS = {"preempted": ("preempted_training_flow.py", "PreemptedTrainingFlow"),
             "uninterrupted": ("train_flow.py", "FraudTrainingFlow")}

# Read with Metaflow's client in a subprocess (the client binds its datastore at import).
CLIENT = """
import json, sys
from metaflow import Run, Task, namespace
namespace(None)
out = {}
for name, pathspec in json.loads(sys.argv[1]).items():
    task = Run(pathspec)["train"].task
    first = Task(task.pathspec, attempt=0)
    meta = {m.name: m.value for m in task.metadata if m.type == "checkpoint"}
    out[name] = {
        "task": task.pathspec, "attempts": task.current_attempt + 1,
        "first_ok": first.successful, "first_stdout": first.stdout, "stdout": task.stdout,
        "resumed_from_epoch": task["resumed_from_epoch"].data,
        "saved_epochs": sorted(c["metadata"]["epoch"] for c in task["_task_checkpoints"].data),
        "loaded_attempt": meta.get("checkpoint-load-attempt"),
        "loaded_from": meta.get("checkpoint-load-pathspec"),
        "weights": task["model"].data["weights"].tolist(), "bias": task["model"].data["bias"],
        "f1_score": task["f1_score"].data,
    }
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Both trainings of the module docstring, their client view and the registry."""
    root = tmp_path_factory.mktemp("checkpoints")
    project = root / "fraud_detection"
    shutil.copytree(EXAMPLE, project,
                    ignore=shutil.ignore_patterns(".metaflow", "__pycache__", "flows"))
    shutil.copy(PREEMPTED, project)
    registry = f"sqlite:///{root / 'registry.db'}"
    env = flow_environment(root / "metaflow", registry, user="tester", branch="dev")
    started = {}
    for name, (script, _) in TRAININGS.items():
        extra = {"PREEMPT_AT_EPOCH": str(PREEMPT_AT_EPOCH)} if name == "preempted" else {}
        started[name] = subprocess.Popen(
            [sys.executable, script, "--quiet", "run", "--run-id-file", f"../{name}.run-id"],
            cwd=project, env={**env, **extra}, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
    for name, proc in started.items():
        output, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{name} training failed:\n{output}"
    runs = {name: f"{flow}/{(root / f'{name}.run-id').read_text().strip()}"
            for name, (_, flow) in TRAININGS.items()}
    view = subprocess.run([sys.executable, "-c", CLIENT, json.dumps(runs)], cwd=project,
                          env=env, capture_output=True, text=True, check=True, timeout=120)
    tasks = json.loads(view.stdout.strip().splitlines()[-1])
    asset = Asset(project="fraud_detection", branch="dev", registry=registry, read_only=True)
    return runs, tasks, list(asset.list_model_asset_instances("fraud_model"))


def test_the_first_attempt_was_killed_mid_training(trained):
    _, tasks, _ = trained
    preempted = tasks["preempted"]
    assert preempted["attempts"] == 2
    assert preempted["first_ok"] is False
    assert preempted["first_stdout"].strip().endswith(f"preempted after epoch {PREEMPT_AT_EPOCH}")
    assert tasks["uninterrupted"]["attempts"] == 1


def test_the_retry_resumed_from_the_last_checkpoint_not_from_zero(trained):
    _, tasks, _ = trained
    preempted = tasks["preempted"]
    assert preempted["resumed_from_epoch"] == 100  # saved at 50 and 100, killed after 130
    assert "resuming from the checkpoint of epoch 100" in preempted["stdout"]
    # @checkpoint loaded what attempt 0 of this very task saved...
    assert (preempted["loaded_attempt"], preempted["loaded_from"]) == (0, preempted["task"])
    # ...and attempt 1 went on from there: its only checkpoint is the one of epoch 150
    assert preempted["saved_epochs"] == [150]
    uninterrupted = tasks["uninterrupted"]
    assert (uninterrupted["resumed_from_epoch"], uninterrupted["saved_epochs"]) == (0, [50, 100,
                                                                                        150])
    assert uninterrupted["loaded_attempt"] is None


def test_the_resumed_training_ends_with_the_uninterrupted_model(trained):
    _, tasks, _ = trained
    preempted, uninterrupted = tasks["preempted"], tasks["uninterrupted"]
    assert preempted["weights"] == uninterrupted["weights"]
    assert preempted["bias"] == uninterrupted["bias"]
    assert preempted["f1_score"] == uninterrupted["f1_score"] > 0.8


def test_the_preempted_run_registered_exactly_one_model_version(trained):
    runs, tasks, instances = trained
    run_id = runs["preempted"].split("/")[1]
    from_preempted = [i for i in instances if i.annotations["training_run_id"] == run_id]
    assert len(from_preempted) == 1
    assert from_preempted[0].created_by.entity_id == tasks["preempted"]["task"]
    assert len(instances) == 2  # one per training run, none per epoch or per attempt
