"""Bounded work on every input: user regexes run on RE2 (no backtracking, located errors for
what RE2 lacks), alias expansion is bounded by the file's size, compile output by the
policy's, and no schema pattern accepts a trailing newline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowpolicy.compile import compile_policy
from flowpolicy.compile.render import FLOW_ALLOWANCE, OUTPUT_RATIO, policy_size
from flowpolicy.errors import CompileError, PolicyError
from flowpolicy.lint.engine import LintConfig, Scope, lint_source
from flowpolicy.lint.rule import RuleContext
from flowpolicy.policy.loader import load_policy_text
from flowpolicy.policy.model import NamingRules
from flowpolicy.policy.patterns import PatternError, compile_pattern, search
from flowpolicy.policy.schema import policy_schema

REPO = Path(__file__).resolve().parent.parent
HEAD = "version: 1\nproject: demo\n"
#: Exponential for a backtracking engine on a near-miss: 2**60 steps for 60 letters.
CATASTROPHIC = r"^([a-z]+)+$"
NEAR_MISS = "a" * 60 + "_"


def load_error(text: str) -> PolicyError:
    with pytest.raises(PolicyError) as caught:
        load_policy_text(text)
    return caught.value


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The command as a user runs it; the timeout only turns a hang into a failure."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "engine")}
    return subprocess.run([sys.executable, "-m", "flowpolicy", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


# -- user regexes ----------------------------------------------------------------------------


def test_catastrophic_naming_pattern_does_not_hang_validate(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(
        HEAD + f"naming: {{pattern: '{CATASTROPHIC}'}}\nassets: {{{NEAR_MISS}: {{type: data}}}}\n")
    result = cli("validate", "policy.yaml", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert f"policy.yaml:4:10: FP214 $.assets.{NEAR_MISS}:" in result.stdout


def test_catastrophic_naming_pattern_does_not_hang_lint(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(HEAD + f"naming: {{pattern: '{CATASTROPHIC}'}}\n")
    (tmp_path / "train.py").write_text(f'self.prj.register_data("{NEAR_MISS}", "df")\n')
    result = cli("lint", "--policy", "policy.yaml", "train.py", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert [line.split(" ")[1] for line in result.stdout.splitlines()] == ["FPL002"]


@pytest.mark.parametrize(("pattern", "explained"), [
    (r"^([a-z])\1$", "backreferences"),
    (r"^(?P<a>[a-z])(?P=a)$", "named backreferences"),
    (r"^(?!prod)[a-z_]+$", "negative lookahead"),
    (r"^(?=[a-z])[a-z_]+$", "lookahead"),
    (r"^[a-z_]+(?<!_)$", "negative lookbehind"),
    (r"^(?<=x)[a-z]+$", "lookbehind"),
    (r"^(?>[a-z]+)$", "atomic groups"),
    (r"^[a-z]++$", "possessive repeats"),
    (r"^[a-z]+\Z", "\\Z is not supported"),
    (r"^[a-z(+$", "missing"),
])
def test_unsupported_constructs_are_located_errors(pattern: str, explained: str) -> None:
    error = load_error(HEAD + f"naming:\n  pattern: '{pattern}'\n")
    (diagnostic,) = error.diagnostics
    assert (diagnostic.code, diagnostic.json_path, diagnostic.line) == (
        "FP216", "$.naming.pattern", 4)
    assert explained in diagnostic.message


def test_a_pattern_needing_too_much_memory_is_refused_when_compiled() -> None:
    with pytest.raises(PatternError):
        compile_pattern("(" * 200 + "[a-z]{1,1000}" + ")" * 200 + "{1000}")


def test_linter_and_validator_share_the_matcher() -> None:
    """FPL002 asks the IR's NamingRules, so it agrees with FP214: "$" is the end of the
    name, where Python's re would also accept a final newline."""
    naming = NamingRules(pattern=r"^[a-z_]+$")
    assert naming.matches("fraud_features") and not naming.matches("fraud_features\n")
    config = LintConfig(scopes=(Scope("", RuleContext(naming)),), select=("FPL002",))
    source = b'self.prj.register_data("fraud_features\\n", "df")\n'
    findings, _ = lint_source(source, "f.py", config)
    assert [f.code for f in findings] == ["FPL002"]


# -- alias expansion and compile output ----------------------------------------------------


def test_one_anchor_aliased_everywhere_is_a_located_error() -> None:
    long_text = "x" * 50_000
    assets = "".join(f"  asset_{i:03d}: {{type: data, description: *long}}\n"
                     for i in range(40))
    text = HEAD + f"x_long: &long '{long_text}'\nassets:\n{assets}"
    (diagnostic,) = load_error(text).diagnostics
    assert diagnostic.code == "FP007"
    assert diagnostic.json_path.startswith("$.assets.asset_")
    assert diagnostic.json_path.endswith(".description")
    assert "repeats &long (line 3)" in diagnostic.message
    assert diagnostic.line > 4  # at the alias, not at the anchor


def test_honest_aliases_stay_within_the_bound() -> None:
    gates = "".join(f"  gate_{i:03d}: {{asset: model_{i:03d}, checks: *checks}}\n"
                    for i in range(1, 200))
    assets = "".join(f"  model_{i:03d}: {{type: model}}\n" for i in range(200))
    policy = load_policy_text(
        HEAD + f"assets:\n{assets}gates:\n  gate_000:\n    asset: model_000\n"
        "    checks: &checks [{metric: f1_score, min: 0.8}, {metric: latency_ms, max: 50}]\n"
        + gates)
    assert len(policy.gates) == 200
    assert policy.gates["gate_199"].checks == policy.gates["gate_000"].checks


def test_compile_output_is_bounded_by_the_policy_size() -> None:
    """One edge over all models requires every gate; each asset's promotion flow names the
    requirements but carries the checks only of the gate that judges its asset, so the output
    stays linear in the policy."""
    n = 200
    assets = "".join(f"  model_{i:03d}: {{type: model}}\n" for i in range(n))
    gates = "".join(f"  gate_{i:03d}: {{asset: model_{i:03d}, checks: [{{metric: f1, min: 1}}]}}\n"
                    for i in range(n))
    policy = load_policy_text(HEAD + "extends: [flowpolicy:promotion]\n"
                              f"assets:\n{assets}gates:\n{gates}")
    outputs = compile_policy(policy)
    assert outputs["model_000_promotion.py"].count("Check(") == 1
    policy_part = sum(map(len, outputs.values())) - FLOW_ALLOWANCE * len(outputs)
    assert policy_part <= OUTPUT_RATIO * policy_size(policy)


def test_output_over_the_budget_is_a_located_error() -> None:
    from flowpolicy.compile.flows import plan_flows
    from flowpolicy.compile.render import OutputBudget

    policy = load_policy_text(HEAD + "extends: [flowpolicy:promotion]\n"
                              "assets:\n  model_a: {type: model}\n")
    plan = next(p for p in plan_flows(policy) if p.kind == "promotion")
    budget = OutputBudget(policy, flows=1)
    with pytest.raises(CompileError) as caught:
        budget.charge(plan, "x" * (budget.limit + 1))
    assert str(caught.value).startswith(str(policy.locate("$.promotion[0]")) + ": $.promotion[0]: ")
    assert "model_a_promotion.py" in str(caught.value)


# -- whole-string patterns -----------------------------------------------------------------


def schema_patterns(node: object = None) -> list[str]:
    node = policy_schema() if node is None else node
    found = []
    if isinstance(node, dict):
        if isinstance(node.get("pattern"), str):
            found.append(node["pattern"])
        for value in node.values():
            found += schema_patterns(value)
    elif isinstance(node, list):
        for value in node:
            found += schema_patterns(value)
    return sorted(set(found))


@pytest.mark.parametrize(("line", "path"), [
    ('project: "fraud_detection\\n"', "$.project"),
    ('champion: {fraud_model: {metric: f1, alias: "champion\\n"}}', "$.champion.fraud_model.alias"),
    ('drift: {fraud_features: {levels: {normal: 0}, reference: "latest-1\\n"}}',
     "$.drift.fraud_features.reference"),
    ('branches: ["dev\\n", prod]', "$.branches[0]"),
    ('assets: {"fraud_model\\n": {type: model}}', "$.assets['fraud_model\\n']"),
])
def test_a_trailing_newline_is_refused(line: str, path: str) -> None:
    base = {"project": "fraud_detection",
            "assets": "{fraud_model: {type: model}, fraud_features: {type: data}}"}
    key = line.split(":")[0]
    lines = [f"{k}: {v}" for k, v in base.items() if k != key]
    error = load_error("version: 1\n" + "\n".join(lines) + "\n" + line + "\n")
    assert [(d.code, d.json_path) for d in error.diagnostics] == [("FP105", path)]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_no_schema_pattern_accepts_a_trailing_newline(data) -> None:
    pattern = data.draw(st.sampled_from(schema_patterns()))
    text = data.draw(st.from_regex(pattern, fullmatch=True).filter(lambda s: "\n" not in s))
    assert search(pattern, text)
    assert not search(pattern, text + "\n")
    assert not search(pattern, text + "\r\n")


# -- properties: any input terminates, output stays proportional ---------------------------

ADVERSARIAL = [
    "version: 1\n", "project: demo\n", "naming:\n", "  pattern: ", repr(CATASTROPHIC),
    "'(a|aa)*b'", "'(x+x+)+y'", r"'(a)\1'", "'(?=a)'", "\n", "assets:\n",
    f"  {NEAR_MISS}: {{type: data}}\n", "  prod_model: {type: model}\n", "x_a: &a [", "*a, ",
    "*a]\n", "x_b: &b {k: ", "'" + "v" * 400, "'}\n", "*b", "<<: *b\n", "gates:\n",
    "  g: {asset: prod_model, checks: [{metric: m, min: 1}]}\n",
]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(ADVERSARIAL), max_size=30).map("".join))
def test_any_policy_text_ends_in_a_policy_or_located_errors(text: str) -> None:
    try:
        load_policy_text(text)
    except PolicyError as exc:
        assert exc.diagnostics
        assert all(d.line >= 1 and d.col >= 1 and d.code.startswith("FP")
                   for d in exc.diagnostics)


NAMES = ["user_events", "fraud_model", "ranker", "scores", "churn_model", "clicks"]


@st.composite
def shared_documents(draw) -> dict:
    """Valid policies whose parts share objects, so YAML writes anchors and aliases."""
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=6, unique=True))
    types = {n: draw(st.sampled_from(["data", "model"])) for n in names}
    description = draw(st.text(alphabet="abc ", max_size=300))
    asset = {"type": "model", "description": description}
    doc: dict = {"version": 1, "project": "demo", "branches": ["dev", "staging", "prod"],
                 "assets": {n: (asset if t == "model" else {"type": "data"})
                            for n, t in types.items()}}
    models = [n for n, t in types.items() if t == "model"]
    datas = [n for n, t in types.items() if t == "data"]
    checks = [{"metric": f"m{i}", "min": 0.5} for i in range(draw(st.integers(1, 12)))]
    doc["gates"] = {f"gate_{m}": {"asset": m, "checks": checks} for m in models}
    doc["champion"] = {m: {"metric": "m0"} for m in models if draw(st.booleans())}
    if models:
        doc["promotion"] = [{"from": "dev", "to": "staging"}, {"from": "staging", "to": "prod"}]
    columns = [f"col_{i}" for i in range(draw(st.integers(0, 40)))]
    levels = {"normal": 0.0, "high": 0.2}
    doc["drift"] = {d: {"levels": levels, "columns": columns} for d in datas}
    return doc


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shared_documents())
def test_generated_output_is_a_small_multiple_of_the_policy(doc: dict) -> None:
    text = yaml.safe_dump(doc, sort_keys=False)
    policy = load_policy_text(text)
    outputs = compile_policy(policy)  # a policy like these never needs the budget's error
    policy_part = sum(map(len, outputs.values())) - FLOW_ALLOWANCE * len(outputs)
    assert policy_part <= OUTPUT_RATIO * policy_size(policy)
