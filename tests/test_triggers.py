"""The trigger table: defaults derived from the rules, ``triggers:`` entries, what the
generated flows carry, and the loop check (in-process; the loader's located errors are in
the policy fixtures)."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

from flowpolicy.compile import compile_policy
from flowpolicy.errors import PolicyError
from flowpolicy.policy.loader import load_policy, load_policy_text
from flowpolicy.triggers import dispatch_table, instance_field, trigger_table

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = REPO_ROOT / "examples" / "fraud_detection"
FIXTURES = Path(__file__).parent / "fixtures" / "policies"


def rows(table) -> list[tuple]:
    return [(t.event, t.kind, t.rule, t.branches, dict(t.parameters)) for t in table.triggers]


def test_the_example_policy_chains_every_rule():
    table = trigger_table(load_policy(EXAMPLE / "policies" / "fraud.yaml"))
    assert rows(table) == [
        ("model.fraud_model.new_instance", "gate", "quality", ("dev", "staging"),
         {"instance": "instance"}),
        # the champion waits for the gate its edge also requires, on the branch it matters
        ("promote_model", "champion", "fraud_model", ("staging",), {"candidate": "instance"}),
        ("promote_model", "promotion", "fraud_model", ("dev",), {"instance": "instance"}),
        ("model_promoted", "promotion", "fraud_model", ("staging",),
         {"instance": "candidate"}),
        # new features arrive on dev only: nothing promotes them
        ("data.fraud_features.new_instance", "drift", "fraud_features", ("dev",),
         {"current": "instance"}),
        ("retrain_required", "flow", "train_flow.py", ("dev",), {"train_on": "current"}),
    ]
    [off] = table.untriggered
    assert (off.kind, off.rule, off.branch, off.reason) == (
        "gate", "quality", "prod", "switched off by triggers[1]")
    assert [t.flow for t in table.matching("fraud_detection", "staging", "promote_model")] == [
        ("champion", "fraud_model")]
    assert [t.flow for t in table.matching("fraud_detection", "dev", "promote_model")] == [
        ("promotion", "fraud_model")]
    assert table.matching("other_project", "dev", "promote_model") == []
    assert table.matching("fraud_detection", "prod", "model.fraud_model.new_instance") == []


def test_entries_replace_switch_off_and_add_flows():
    policy = load_policy(FIXTURES / "valid" / "triggers.yaml")
    table = trigger_table(policy)
    assert rows(table) == [
        ("model.risk_model.new_instance", "gate", "quality", ("dev",), {"instance": "instance"}),
        ("good", "promotion", "risk_model", ("dev",), {"instance": "instance"}),
        ("data.raw_features.new_instance", "drift", "raw_features", ("dev",),
         {"current": "instance"}),
        ("retrain_required", "flow", "training/train_flow.py", ("dev",),
         {"train_on": "current"}),
        ("model.risk_model.alias.candidate", "gate", "quality", ("prod",),
         {"instance": "instance"}),
    ]
    assert [(m.kind, m.branch) for m in table.untriggered] == [("drift", "prod")]
    assert instance_field(policy, "retrain_required") == "current"
    assert instance_field(policy, "good") == "instance"


def test_a_rule_without_its_event_starts_nothing_and_says_why():
    policy = load_policy_text(textwrap.dedent("""\
        version: 1
        project: quiet
        assets: {risk_model: {type: model}}
        branches: [dev, prod]
        gates: {quality: {asset: risk_model, checks: [{metric: auc, min: 0.7}]}}
        champion: {risk_model: {metric: auc}}
        promotion: [{from: dev, to: prod, assets: [risk_model], require: [quality, champion]}]
        """))
    table = trigger_table(policy)
    # the promotion waits for the champion: with no on_promote, for its alias to move
    assert rows(table) == [
        ("model.risk_model.new_instance", "gate", "quality", ("dev", "prod"),
         {"instance": "instance"}),
        ("model.risk_model.alias.champion", "promotion", "risk_model", ("dev",),
         {"instance": "instance"})]
    [missing] = table.untriggered
    assert (missing.kind, missing.branch) == ("champion", "dev")
    assert "gate quality names no on_pass event" in missing.reason


def test_without_declared_branches_triggers_apply_on_any_branch():
    policy = load_policy_text(textwrap.dedent("""\
        version: 1
        project: anywhere
        assets: {raw_features: {type: data}}
        drift: {raw_features: {levels: {normal: 0, high: 0.1}}}
        """))
    [trigger] = trigger_table(policy).triggers
    assert trigger.branches == () and trigger.applies_to("user_alice")


def test_generated_flows_carry_exactly_the_table():
    """Each committed flow's ``@project_trigger`` decorators are the table's rows for it."""
    policy = load_policy(EXAMPLE / "policies" / "fraud.yaml")
    table = trigger_table(policy)
    plans = {plan.file_name: (plan.kind, plan.rule) for plan in _plans(policy)}
    for name, source in compile_policy(policy).items():
        assert (EXAMPLE / "flows" / name).read_text() == source  # golden, committed
        decorated = [_trigger_call(d) for d in _flow_class(source).decorator_list
                     if isinstance(d, ast.Call) and getattr(d.func, "id", "") == "project_trigger"]
        wanted = [{"event": t.event, "branches": list(t.branches),
                   "parameters": dict(t.parameters)} for t in table.for_flow(*plans[name])]
        assert decorated == wanted, name


def test_the_hand_written_training_flow_carries_the_policy_s_trigger():
    """The policy cannot decorate a hand-written flow; its own decorator must say the same."""
    policy = load_policy(EXAMPLE / "policies" / "fraud.yaml")
    table = dispatch_table(policy, EXAMPLE, EXAMPLE / "flows")
    [trigger] = table.for_flow("flow", "train_flow.py")
    assert table.targets[trigger.flow].class_name == "FraudTrainingFlow"
    source = (EXAMPLE / "train_flow.py").read_text()
    [decorator] = [_trigger_call(d) for d in _flow_class(source).decorator_list
                   if isinstance(d, ast.Call)]
    assert decorator == {"event": trigger.event, "branches": list(trigger.branches),
                         "parameters": dict(trigger.parameters)}


def test_a_missing_or_unparsable_hand_written_flow_is_a_clear_error(tmp_path):
    from flowpolicy.errors import FlowpolicyError

    policy = load_policy(FIXTURES / "valid" / "triggers.yaml")
    with pytest.raises(FlowpolicyError, match="training/train_flow.py does not exist"):
        dispatch_table(policy, tmp_path, tmp_path / "flows")
    (tmp_path / "training").mkdir()
    (tmp_path / "training" / "train_flow.py").write_text("class (:\n")
    with pytest.raises(FlowpolicyError, match="cannot be read as Python"):
        dispatch_table(policy, tmp_path, tmp_path / "flows")


def test_loops_are_found_through_any_chain_and_named_step_by_step():
    text = textwrap.dedent("""\
        version: 1
        project: loopy
        assets:
          raw_features: {type: data}
          risk_model: {type: model}
        branches: [dev, prod]
        gates: {quality: {asset: risk_model, checks: [{metric: auc, min: 0.7}], on_pass: good}}
        promotion: [{from: dev, to: prod, assets: [risk_model], require: [quality]}]
        triggers:
          - flow: publish_features.py
            event: good
            branches: [dev]
            registers: [raw_features]
        """)
    load_policy_text(text)  # nothing starts on a new raw_features instance: no loop
    looping = text.replace("registers: [raw_features]", "registers: [risk_model]")
    with pytest.raises(PolicyError) as caught:
        load_policy_text(looping)
    [error] = caught.value.diagnostics
    assert (error.code, error.line, error.json_path) == ("FP225", 10, "$.triggers[0]")
    assert ("gate quality on dev; passes: good -> flow publish_features.py on dev; "
            "registers risk_model -> gate quality on dev") in error.message


def test_loop_check_scales_with_the_policy():
    """A thousand monitored assets, each reporting into the next, in a ring: one loop found,
    its message bounded."""
    n = 1000
    assets = "\n".join(f"  stream_{i:04d}: {{type: data}}" for i in range(n))
    drift = "\n".join(f"  stream_{i:04d}: {{levels: {{normal: 0, high: 0.1}}, "
                      f"report_asset: stream_{(i + 1) % n:04d}}}" for i in range(n))
    text = f"version: 1\nproject: ring\nassets:\n{assets}\ndrift:\n{drift}\n"
    with pytest.raises(PolicyError) as caught:
        load_policy_text(text)
    [error] = caught.value.diagnostics
    assert error.code == "FP225" and f"({n - 12} more steps)" in error.message
    assert len(error.message) < 2000


def _plans(policy):
    from flowpolicy.compile.flows import plan_flows

    return plan_flows(policy)


def _flow_class(source: str) -> ast.ClassDef:
    tree = ast.parse(source)
    return next(n for n in tree.body if isinstance(n, ast.ClassDef))


def _trigger_call(node: ast.Call) -> dict:
    found = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
    found.setdefault("branches", [])
    found.setdefault("parameters", {})
    return found
