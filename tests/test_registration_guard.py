"""The registration guard: the policy's ``registration.max_versions_per_task``, the limits a
run reads from ``./policies/``, the warning's location, and real flow runs that register an
asset once per epoch (``tests/runtime_flows/epoch_registering_flow.py``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flowpolicy import Asset
from flowpolicy.errors import PolicyError
from flowpolicy.policy.loader import load_policy_text
from flowpolicy.runtime.registration import RegistrationGuard, enclosing_loop, policy_limits

FLOW = Path(__file__).parent / "runtime_flows" / "epoch_registering_flow.py"
BASE = "version: 1\nproject: demo\n"

# --- the policy field -------------------------------------------------------------------


def test_the_limit_defaults_to_one_and_is_read_from_the_policy() -> None:
    assert load_policy_text(BASE).registration.max_versions_per_task == 1
    policy = load_policy_text(BASE + "registration: {max_versions_per_task: 3}\n")
    assert policy.registration.max_versions_per_task == 3
    assert policy.to_document()["registration"] == {"max_versions_per_task": 3}
    assert load_policy_text(BASE + "registration:\n  max_versions_per_task: 3\n") == policy


def test_a_policy_at_the_default_limit_keeps_its_hash() -> None:
    # evidence is recorded under the policy hash: adding the section must not change it
    plain = load_policy_text(BASE)
    assert "registration" not in plain.to_document()
    assert load_policy_text(BASE + "registration: {max_versions_per_task: 1}\n").hash == plain.hash
    assert load_policy_text(BASE + "registration: {max_versions_per_task: 2}\n").hash != plain.hash


@pytest.mark.parametrize(("text", "code", "where"), [
    ("registration: {max_versions_per_task: 0}", "FP106", "<string>:3:16"),
    ("registration: {max_versions_per_task: 2.5}", "FP103", "<string>:3:16"),
    ("registration: {max_versions_per_task: true}", "FP103", "<string>:3:16"),
    ("registration: {max_versions: 2}", "FP101", "<string>:3:16"),
    ("registration: 3", "FP103", "<string>:3:1"),
])
def test_a_bad_limit_is_a_located_error(text: str, code: str, where: str) -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy_text(BASE + text + "\n")
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.code == code
    assert f"{diagnostic.path}:{diagnostic.line}:{diagnostic.col}" == where


# --- limits found at run start ------------------------------------------------------------


def test_policy_limits_by_project_strictest_first(tmp_path, capsys) -> None:
    policies = tmp_path / "policies"
    (policies / "team").mkdir(parents=True)
    (policies / "fraud.yaml").write_text(
        "version: 1\nproject: fraud\nregistration: {max_versions_per_task: 5}\n")
    (policies / "team" / "fraud_strict.yaml").write_text(
        "version: 1\nproject: fraud\nregistration: {max_versions_per_task: 2}\n")
    (policies / "churn.yaml").write_text("version: 1\nproject: churn\n")
    (policies / "broken.yaml").write_text(
        "version: 1\nproject: other\nregistration: {max_versions_per_task: 0}\n")

    limits = policy_limits(policies)

    assert limits == {
        "fraud": {"max_versions_per_task": 2, "policy": str(policies / "team/fraud_strict.yaml")},
        "churn": {"max_versions_per_task": 1, "policy": str(policies / "churn.yaml")},
    }
    note = capsys.readouterr().err
    assert f"{policies / 'broken.yaml'} does not load" in note and "not applied" in note


def test_no_policies_folder_means_no_limits_and_nothing_created(tmp_path) -> None:
    assert policy_limits(tmp_path / "policies") == {}
    assert list(tmp_path.iterdir()) == []
    guard = RegistrationGuard.for_project({}, "fraud")
    assert (guard.limit, guard.policy) == (1, None)


# --- where the warning points -------------------------------------------------------------

LOOPS = '''\
def epochs(prj, n):
    for epoch in range(n):
        prj.register_model("m", "model")
    while n:
        n -= 1
        prj.register_model("m", "model")
    versions = [prj.register_model("m", "model")
                for _ in range(n)]
    prj.register_model("m", "model")
    for epoch in range(n):
        def helper():
            prj.register_model("m", "model")
'''


@pytest.mark.parametrize(("call_line", "loop_line"), [
    (3, 2),      # for
    (6, 4),      # while
    (7, 7),      # comprehension
    (9, None),   # no loop
    (12, None),  # in a function defined in a loop: the loop is not this function's
])
def test_enclosing_loop(tmp_path, call_line: int, loop_line: int | None) -> None:
    source = tmp_path / "loops.py"
    source.write_text(LOOPS)
    assert enclosing_loop(str(source), call_line) == loop_line


def test_enclosing_loop_without_source_is_none(tmp_path) -> None:
    assert enclosing_loop(str(tmp_path / "missing.py"), 3) is None


def test_the_guard_warns_once_per_asset_at_the_line_that_registers(capsys) -> None:
    guard = RegistrationGuard(2, "policies/fraud.yaml")
    for _ in range(5):
        guard.note("model", "fraud_model")  # the line the warning must name
        guard.note("data", "fraud_features")
    guard.note("model", "other_model")

    lines = capsys.readouterr().err.splitlines()
    this_file = Path(__file__).resolve()
    call = next(n for n, text in enumerate(this_file.read_text().splitlines(), 1)
                if "the line the warning must name" in text)
    assert len(lines) == 2
    model, data = lines
    assert model.startswith("flowpolicy: warning: step None registered model fraud_model 3 "
                            "times in one task, more than the policy allows (2, "
                            "registration.max_versions_per_task in policies/fraud.yaml)")
    assert f"{this_file.name}:{call} inside the loop at " in model
    assert f"{this_file.name}:{call - 1} (`for _ in range(5):`)" in model
    assert "FPL007" in model and "@checkpoint" in model
    assert "registered data fraud_features 3 times" in data


# --- real runs ----------------------------------------------------------------------------


def _line_of(text: str, path: Path = FLOW) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


@pytest.mark.flows
def test_flow_runs_warn_once_past_the_policys_limit(tmp_path) -> None:
    """Three runs at once: 5 epochs and 3 epochs under a policy allowing 3, and 2 epochs in a
    project without policies (default 1)."""
    from flowpolicy.demo import flow_environment

    runs = {"over": ("limited", 5), "at_limit": ("limited", 3), "default": ("plain", 2)}
    for project in ("limited", "plain"):
        (tmp_path / project).mkdir()
        (tmp_path / project / FLOW.name).write_text(FLOW.read_text())
    (tmp_path / "limited" / "policies").mkdir()
    (tmp_path / "limited" / "policies" / "loop.yaml").write_text(
        "version: 1\nproject: loop_demo\nregistration: {max_versions_per_task: 3}\n")
    registry = f"sqlite:///{tmp_path / 'registry.db'}"
    started = {}
    for name, (project, epochs) in runs.items():
        env = {**flow_environment(tmp_path / "metaflow", registry, user="tester",
                                  branch=name), "FLOWPOLICY_PROJECT": "loop_demo"}
        started[name] = subprocess.Popen(
            [sys.executable, FLOW.name, "--no-pylint", "run", "--epochs", str(epochs)],
            cwd=tmp_path / project, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
    outputs = {}
    for name, proc in started.items():
        outputs[name], _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, outputs[name]

    warnings = {name: [line for line in out.splitlines() if "flowpolicy: warning:" in line]
                for name, out in outputs.items()}
    assert warnings["at_limit"] == []
    call = _line_of('self.prj.register_model("epoch_model"')
    loop = _line_of("for epoch in range(self.epochs):")
    (over,) = warnings["over"]
    assert ("step start registered model epoch_model 4 times in one task, more than the "
            "policy allows (3, registration.max_versions_per_task in policies/loop.yaml)") in over
    assert (f"the registering call is at {FLOW.name}:{call} inside the loop at {FLOW.name}:{loop}"
            " (`for epoch in range(self.epochs):`)") in over
    (default,) = warnings["default"]
    assert ("registered model epoch_model 2 times in one task, more than the policy allows "
            "(1, the default of registration.max_versions_per_task)") in default
    # it warns, it does not block: every epoch's version is there, and the summary once
    for name, (_, epochs) in runs.items():
        asset = Asset(project="loop_demo", branch=name, registry=registry, read_only=True)
        assert len(list(asset.list_model_asset_instances("epoch_model"))) == epochs
        assert len(list(asset.list_data_asset_instances("training_summary"))) == 1
