"""The stock naming rules hold for every policy, extended or not; ``naming.allowed_words``
is the one way to turn an environment word off; ``lint --policy flowpolicy:<preset>``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from flowpolicy.errors import PolicyError
from flowpolicy.lint import LintRequest, prepare
from flowpolicy.policy.loader import default_naming, load_policy_text

REPO = Path(__file__).resolve().parent.parent
HEAD = "version: 1\nproject: demo\n"
STOCK_WORDS = default_naming().forbidden_words


def diagnostics(text: str) -> list[tuple[str, str]]:
    with pytest.raises(PolicyError) as caught:
        load_policy_text(text)
    return [(d.code, d.json_path) for d in caught.value.diagnostics]


def test_environment_word_is_refused_without_extends() -> None:
    assert diagnostics(HEAD + "assets: {prod_model: {type: model}}\n") == [
        ("FP215", "$.assets.prod_model")]


def test_stock_pattern_holds_without_extends() -> None:
    # "ab" is a schema-valid identifier, but the stock pattern wants three characters
    assert diagnostics(HEAD + "assets: {ab: {type: data}}\n") == [("FP214", "$.assets.ab")]


def test_a_policy_of_its_own_words_keeps_the_stock_ones() -> None:
    policy = load_policy_text(HEAD + "naming: {forbidden_words: [sandbox]}\n")
    assert policy.naming.forbidden_words == (*STOCK_WORDS, "sandbox")
    assert policy.extends == ()  # the stock rules are not recorded as an extends entry


def test_allowed_words_take_a_stock_word_out() -> None:
    policy = load_policy_text(HEAD + "naming: {allowed_words: [qa]}\n"
                              "assets: {qa_model: {type: model}}\n")
    assert "qa" not in policy.naming.forbidden_words
    assert set(policy.naming.forbidden_words) == set(STOCK_WORDS) - {"qa"}
    assert policy.naming.allowed_words == ("qa",)
    # the other stock words still hold
    assert diagnostics(HEAD + "naming: {allowed_words: [qa]}\n"
                       "assets: {prod_model: {type: model}}\n") == [
        ("FP215", "$.assets.prod_model")]


def test_allowing_every_stock_word_turns_the_rule_off() -> None:
    words = ", ".join(STOCK_WORDS)
    policy = load_policy_text(HEAD + f"naming: {{allowed_words: [{words}]}}\n"
                              "assets: {prod_model: {type: model}}\n")
    assert policy.naming.forbidden_words == ()


def test_an_empty_forbidden_list_does_not_turn_the_rule_off() -> None:
    # forbidden_words merge by union: [] adds nothing and removes nothing
    assert diagnostics(HEAD + "naming: {forbidden_words: []}\n"
                       "assets: {prod_model: {type: model}}\n") == [
        ("FP215", "$.assets.prod_model")]


def test_allowed_words_are_united_across_extends(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("naming: {allowed_words: [qa]}\n")
    policy = load_policy_text(HEAD + "extends: [base.yaml]\nnaming: {allowed_words: [uat]}\n",
                              str(tmp_path / "policy.yaml"))
    assert policy.naming.allowed_words == ("qa", "uat")
    assert not {"qa", "uat"} & set(policy.naming.forbidden_words)


def test_lint_applies_the_stock_words_under_a_policy_without_extends(tmp_path: Path,
                                                                      monkeypatch) -> None:
    (tmp_path / "policy.yaml").write_text(HEAD + "assets: {fraud_model: {type: model}}\n")
    (tmp_path / "train.py").write_text('self.prj.register_model("prod_model", "model")\n')
    monkeypatch.chdir(tmp_path)
    run = prepare(LintRequest(paths=("train.py",), policies=("policy.yaml",)))
    assert [(f.path, f.code) for f in run.findings()] == [("train.py", "FPL001")]


def lint_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "engine")}
    return subprocess.run([sys.executable, "-m", "flowpolicy", "lint", *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=120)


def test_lint_accepts_a_stock_preset_as_the_policy(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text('self.prj.register_model("prod_model", "model")\n'
                                       'self.prj.register_model("fraud_model", "model")\n')
    result = lint_cli("--policy", "flowpolicy:naming", "train.py", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert [line.split(" ")[:2] for line in result.stdout.splitlines()] == [
        ["train.py:1:25:", "FPL001"]]


def test_lint_names_an_unknown_preset(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text('self.prj.register_model("fraud_model", "model")\n')
    result = lint_cli("--policy", "flowpolicy:nmaing", "train.py", cwd=tmp_path)
    assert result.returncode == 2
    assert "FP201" in result.stderr and "flowpolicy:naming" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_preset_beside_a_policy_file_governs_what_the_file_does_not(tmp_path: Path,
                                                                       monkeypatch) -> None:
    project = tmp_path / "project"
    (project / "policies").mkdir(parents=True)
    (project / "policies" / "p.yaml").write_text(
        HEAD + "naming: {allowed_words: [qa]}\nassets: {qa_model: {type: model}}\n")
    (project / "flow.py").write_text('self.prj.get_model("qa_model")\n')
    (tmp_path / "tools.py").write_text('self.prj.get_model("qa_model")\n')
    monkeypatch.chdir(tmp_path)
    run = prepare(LintRequest(paths=(".",), policies=("project/policies/p.yaml",
                                                      "flowpolicy:naming")))
    # the project allows qa; outside it, the preset named on the command line rules
    assert [(f.path, f.code) for f in run.findings()] == [("tools.py", "FPL001")]
