"""``flowpolicy promote``, ``rollback`` and ``alias``: the operations in-process on a toy
policy and a real SQLite registry, then as a user calls them against the example's trained
models, where each refusal must read exactly as the generated promotion flow's."""

from __future__ import annotations

import json
import sys

import pytest
from serving_support import POLICY, USER, register_toy, run, train_example

from flowpolicy.policy.loader import load_policy_text
from flowpolicy.registry import open_registry
from flowpolicy.registry.base import Scope
from flowpolicy.runtime.moves import (
    ALIAS_MOVED,
    MoveRequest,
    promote,
    rollback,
    set_alias,
    unset_alias,
)

DEV = Scope("serve_demo", "dev", "model", "toy_model")
PROD = Scope("serve_demo", "prod", "model", "toy_model")


@pytest.fixture
def registry(tmp_path):
    return open_registry(f"sqlite:///{tmp_path / 'registry.db'}")


@pytest.fixture
def policy():
    return load_policy_text(POLICY)


def request(branch: str = "prod", **fields) -> MoveRequest:
    return MoveRequest(asset="toy_model", project="serve_demo", branch=branch, actor=USER,
                       **fields)


def gate_passed(registry, policy, instance: str) -> None:
    """Record gate quality's verdict on dev ``instance`` as the quality gate flow does: the
    verdict of the policy's checks, with the thresholds it was judged under."""
    from flowpolicy.runtime import decisions

    gate = policy.gates["quality"]
    record = registry.resolve(DEV, instance)
    verdict = decisions.evaluate_gate(gate, record.annotations, instance=record.id)
    details = decisions.judged_details(
        verdict.to_dict(), thresholds=decisions.gate_thresholds(gate.checks),
        policy_thresholds=decisions.gate_thresholds(gate.checks), policy_hash=policy.hash)
    registry.add_evidence(DEV, record.id, kind="gate", rule=gate.name, passed=verdict.passed,
                          policy_hash=policy.hash, details=details, created_by=USER)


def counts(registry) -> tuple[int, int, int]:
    """(instances on prod, alias moves on prod, events): what a dry run must leave alone."""
    try:
        prod = (len(registry.instances(PROD, None)), len(registry.alias_history(PROD)))
    except Exception:  # noqa: BLE001 - nothing on prod yet
        prod = (0, 0)
    return (*prod, len(registry.events()))


def test_promote_follows_the_flows_rule_and_is_idempotent(registry, policy, tmp_path):
    v1 = register_toy(registry, tmp_path, "dev", 2.0)
    refused = promote(policy, registry, request(source="dev", instance=v1))
    assert refused.refused and refused.exit_code == 1
    assert refused.message == ("promotion of toy_model v1 from dev to prod refused: gate "
                               "quality has no recorded result on toy_model v1")
    assert registry.evidence(DEV, v1, "promotion")[-1].passed is False  # recorded, as the flow
    gate_passed(registry, policy, v1)
    before = counts(registry)
    dry = promote(policy, registry, request(source="dev", instance=v1, dry_run=True))
    assert not dry.refused and dry.dry_run and "would promote" in dry.message
    assert counts(registry) == before and len(registry.evidence(DEV, v1, "promotion")) == 1
    done = promote(policy, registry, request(source="dev", instance=v1, reason="release 1"))
    assert done.moved and done.to_instance == "v1" and done.exit_code == 0
    assert done.message == "promoted toy_model v1 from dev to prod as prod v1; @production " \
                           "(unset) → v1"
    again = promote(policy, registry, request(source="dev", instance=v1))
    assert not again.moved and again.details["promotion"]["already_promoted"]
    assert "already promoted to prod as v1; @production already points at it" in again.message
    assert len(registry.instances(PROD, None)) == 1
    moves = registry.alias_history(PROD, "production")
    assert [(m.from_version, m.to_version, m.reason) for m in moves] == [(None, 1, "release 1")]
    events = registry.events("serve_demo", "prod", ALIAS_MOVED)
    assert [(e.payload["from"], e.payload["to"], e.payload["action"]) for e in events] == [
        (None, "v1", "promote")]


def test_promote_refuses_what_no_edge_allows(registry, policy, tmp_path):
    register_toy(registry, tmp_path, "prod", 2.0)
    refused = promote(policy, registry, request(branch="dev", source="prod", instance="v1"))
    assert refused.refused and refused.message == (
        "promotion of toy_model v1 from prod to dev refused: no promotion edge prod -> dev is "
        "declared for toy_model (its edges: dev -> prod)")
    assert registry.assets("serve_demo", "dev") == []


def promoted_twice(registry, policy, tmp_path, second_f1: str = "0.9") -> None:
    """prod v1 then prod v2 promoted from dev (dev v2 with ``second_f1``)."""
    for factor, f1 in ((2.0, "0.9"), (3.0, second_f1)):
        instance = register_toy(registry, tmp_path, "dev", factor, f1=f1)
        gate_passed(registry, policy, instance)
        assert promote(policy, registry, request(source="dev", instance=instance)).moved


def test_rollback_returns_the_alias_to_its_previous_holder(registry, policy, tmp_path):
    promoted_twice(registry, policy, tmp_path)
    dry = rollback(policy, registry, request(dry_run=True))
    assert (dry.from_instance, dry.to_instance, dry.moved) == ("v2", "v1", False)
    assert registry.get_alias(PROD, "production") == 2
    back = rollback(policy, registry, request(reason="v2 misbehaves"))
    assert back.message == "@production on prod v2 → v1" and back.moved
    assert registry.get_alias(PROD, "production") == 1
    last = registry.alias_history(PROD, "production")[-1]
    assert (last.from_version, last.to_version, last.by, last.reason) == (
        2, 1, USER, "v2 misbehaves")
    assert registry.events("serve_demo", "prod", ALIAS_MOVED)[-1].payload["action"] == \
        "rollback"
    again = rollback(policy, registry, request())  # the previous holder is now v2
    assert again.to_instance == "v2"
    to = rollback(policy, registry, request(to="v2"))
    assert not to.refused and not to.moved and "already points at v2: nothing to do" in \
        to.message


def test_rollback_to_an_instance_failing_its_gates_needs_force(registry, policy, tmp_path):
    weak = register_toy(registry, tmp_path, "prod", 2.0, f1="0.5")
    registry.set_alias(PROD, "production", weak, by=USER)
    registry.set_alias(PROD, "production", register_toy(registry, tmp_path, "prod", 3.0),
                       by=USER)
    refused = rollback(policy, registry, request())
    assert refused.refused and refused.message == (
        "rollback of @production on prod to v1 refused: toy_model v1 fails under policy "
        f"{policy.short_hash}: gate quality: f1_score = 0.5 is below the minimum 0.8 "
        "(--force --reason TEXT moves it anyway)")
    assert registry.get_alias(PROD, "production") == 2
    forced = rollback(policy, registry, request(force=True, reason="v2 is worse"))
    assert forced.moved and forced.details["forced"]
    assert registry.alias_history(PROD, "production")[-1].reason == (
        "forced past failing gates: v2 is worse")


def test_rollback_with_no_previous_holder_is_refused(registry, policy, tmp_path):
    registry.set_alias(PROD, "production", register_toy(registry, tmp_path, "prod", 2.0),
                       by=USER)
    refused = rollback(policy, registry, request())
    assert refused.refused and "no previous holder" in refused.message
    assert "(unset) → v1" in refused.message


def test_alias_set_and_unset(registry, policy, tmp_path):
    good = register_toy(registry, tmp_path, "prod", 2.0)
    weak = register_toy(registry, tmp_path, "prod", 3.0, f1="0.1")
    assert set_alias(policy, registry, request(alias="production", to=good,
                                               reason="first")).moved
    refused = set_alias(policy, registry, request(alias="production", to=weak, reason="x"))
    assert refused.refused and "fails under policy" in refused.message
    # an alias no promotion sets answers to every gate judging the asset
    assert set_alias(policy, registry, request(alias="shadow", to=weak, reason="x")).refused
    assert set_alias(policy, registry, request(alias="shadow", to=weak, reason="shadow test",
                                               force=True)).moved
    dry = unset_alias(policy, registry, request(alias="production", reason="r", dry_run=True))
    assert dry.dry_run and registry.get_alias(PROD, "production") == 1
    gone = unset_alias(policy, registry, request(alias="production", reason="incident"))
    assert gone.moved and registry.get_alias(PROD, "production") is None
    assert registry.alias_history(PROD, "production")[-1].to_version is None
    assert unset_alias(policy, registry, request(alias="production", reason="r")).refused
    back = rollback(policy, registry, request())  # undoes the unset
    assert back.to_instance == "v1" and registry.get_alias(PROD, "production") == 1


# -- the commands, against the example's trained models -----------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return train_example(tmp_path_factory.mktemp("lifecycle"))


def cli(project, env, *argv: str):
    return run([sys.executable, "-m", "flowpolicy", *argv], project, env, ok=False)


def flow_refusal(output: str) -> str:
    """The reason a refused promotion flow run gave, as it printed it."""
    line = next(line for line in reversed(output.splitlines())
                if "promotion of fraud_model" in line and " refused: " in line)
    return line[line.index("promotion of fraud_model"):].strip()


@pytest.mark.flows
@pytest.mark.parametrize("source, target, instance", [
    ("dev", "staging", "v3"),     # no gate result recorded on v3
    ("dev", "prod", "v1"),        # no dev -> prod edge
    ("staging", "prod", "v1"),    # gate passed, but no champion decision
])
def test_promote_refuses_exactly_as_the_promotion_flow(trained, source, target, instance):
    project, _, env = trained
    registry = open_registry(env["FLOWPOLICY_REGISTRY"])
    dev = Scope("fraud_detection", "dev", "model", "fraud_model")
    if len(registry.instances(dev, None)) < 3:  # v3: registered, never through the gate
        v1 = registry.resolve(dev, "v1")
        registry.register(dev, kind=v1.kind, created_by=v1.created_by,
                          annotations=v1.annotations)
    if source == "staging":
        assert cli(project, env, "promote", "fraud_model", "--from", "dev", "--to", "staging",
                   "--instance", "v1").returncode == 0
    flow = run([sys.executable, "flows/fraud_model_promotion.py", "run", "--source", source,
                "--target", target, "--instance", instance], project,
               {**env, "FLOWPOLICY_BRANCH": source}, ok=False)
    assert flow.returncode == 1
    command = cli(project, env, "promote", "fraud_model", "--from", source, "--to", target,
                  "--instance", instance)
    assert command.returncode == 1 and command.stdout == ""
    assert command.stderr.strip() == "flowpolicy: refused: " + flow_refusal(
        flow.stdout + flow.stderr)


@pytest.mark.flows
def test_the_commands_exit_codes_json_and_history(trained):
    project, _, env = trained
    usage = [
        ("alias", "set", "fraud_model", "production", "--branch", "prod", "--to", "v1"),
        ("rollback", "fraud_model", "--branch", "prod", "--force"),
        ("promote", "fraud_model", "--from", "dev"),
        ("promote", "no_such_model", "--from", "dev", "--to", "staging"),
        ("rollback", "fraud_model", "--branch", "prod", "--registry",
         f"sqlite:///{project / 'missing.db'}"),
    ]
    for argv in usage:
        done = cli(project, env, *argv)
        assert done.returncode == 2, (argv, done.stderr)
        assert "Traceback" not in done.stderr and done.stderr.strip()
    assert not (project / "missing.db").exists()

    promoted = cli(project, env, "promote", "fraud_model", "--from", "dev", "--to", "staging",
                   "--instance", "v2", "--format", "json")
    assert promoted.returncode == 0
    outcome = json.loads(promoted.stdout)
    assert outcome["action"] == "promote" and outcome["alias"] == "candidate"
    assert outcome["moved"] and outcome["verdict"]["allowed"]
    staging_v2 = outcome["to"]
    unknown = cli(project, env, "rollback", "fraud_model", "--branch", "prod")
    assert unknown.returncode == 2  # nothing was promoted to prod here: an unknown asset
    back = cli(project, env, "rollback", "fraud_model", "--branch", "staging", "--reason",
               "numbers look off")
    assert back.returncode == 0, back.stderr
    assert back.stdout.strip().startswith(f"@candidate on staging {staging_v2} → ")
    dry = cli(project, env, "alias", "unset", "fraud_model", "candidate", "--branch",
              "staging", "--reason", "drill", "--dry-run")
    assert dry.returncode == 0 and "dry run: nothing was written" in dry.stdout
    unset = cli(project, env, "alias", "unset", "fraud_model", "candidate", "--branch",
                "staging", "--reason", "drill")
    assert unset.returncode == 0
    again = cli(project, env, "alias", "unset", "fraud_model", "candidate", "--branch",
                "staging", "--reason", "drill")
    assert again.returncode == 1 and "is not set: nothing to unset" in again.stderr

    history = cli(project, env, "assets", "history", "fraud_model", "--branch", "staging")
    assert history.returncode == 0
    moves = [line for line in history.stdout.splitlines() if "@candidate" in line]
    registry = open_registry(env["FLOWPOLICY_REGISTRY"])
    recorded = registry.alias_history(Scope("fraud_detection", "staging", "model",
                                            "fraud_model"), "candidate")
    assert len(moves) == len(recorded) >= 3
    assert "by user tester: numbers look off" in moves[-2]
    assert moves[-1].split("Z  ", 1)[1].startswith("@candidate v")
    assert "→ (unset) by user tester: drill" in moves[-1]
