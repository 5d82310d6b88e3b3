"""The compiler: golden files, determinism, identifier validation, no code injection,
``--check``. No Metaflow runs here (see test_flows.py for the generated flows at work)."""

from __future__ import annotations

import ast
import functools
import itertools
import keyword
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowpolicy.compile import (
    GENERATED_MARKER,
    compile_policy,
    output_dir_for,
    stale_outputs,
    write_outputs,
)
from flowpolicy.compile.names import RESERVED_PARAMETERS, RESERVED_STEPS, parameter_name
from flowpolicy.compile.render import comment, literal
from flowpolicy.errors import CompileError
from flowpolicy.policy.loader import load_policy
from flowpolicy.policy.model import (
    AssetDecl,
    ChampionRule,
    Check,
    CompileSettings,
    DriftColumn,
    DriftLevel,
    DriftRule,
    Gate,
    NamingRules,
    Policy,
    PromotionEdge,
    frozen_map,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = REPO_ROOT / "examples" / "fraud_detection"
EXAMPLE_POLICY = EXAMPLE / "policies" / "fraud.yaml"
GOLDEN = EXAMPLE / "flows"
EXPECTED_FILES = {
    "quality_gate.py",
    "fraud_model_champion.py",
    "fraud_model_promotion.py",
    "fraud_features_drift.py",
}


def fraud_policy(**changes) -> Policy:
    """The example policy built directly as IR (no loader), for table-driven variations."""
    policy = Policy(
        project="fraud_detection",
        naming=NamingRules(forbidden_words=("prod", "production")),
        assets=frozen_map({
            "fraud_features": AssetDecl("fraud_features", "data", "features"),
            "fraud_model": AssetDecl("fraud_model", "model", "classifier", ("f1_score",)),
            "drift_reports": AssetDecl("drift_reports", "data"),
        }),
        branches=("dev", "staging", "prod"),
        gates=frozen_map({
            "quality": Gate(
                "quality", "fraud_model",
                (Check("f1_score", min=0.8), Check("latency_ms", max=50.0)),
                on_pass="promote_model", on_fail="quality_gate_failed",
            ),
        }),
        champions=frozen_map({
            "fraud_model": ChampionRule(
                "fraud_model", "f1_score", min_improvement=0.02, on_promote="model_promoted"
            ),
        }),
        promotion=(
            PromotionEdge("dev", "staging", ("fraud_model",), ("quality",)),
            PromotionEdge("staging", "prod", ("fraud_model",), ("quality", "champion"),
                          alias="production"),
        ),
        drift=frozen_map({
            "fraud_features": DriftRule(
                "fraud_features",
                (DriftLevel("normal", 0.0), DriftLevel("elevated", 0.05), DriftLevel("high", 0.1)),
                report_asset="drift_reports",
                events=frozen_map({"high": "retrain_required"}),
            ),
        }),
        compile=CompileSettings("flows"),
    )
    return replace(policy, **changes)


# --- golden files and determinism -------------------------------------------------------


def test_example_policy_matches_the_committed_flows_byte_for_byte():
    """The example's committed flows are the golden files: a template change shows up as a
    reviewed diff of examples/fraud_detection/flows/ (refresh with `flowpolicy compile`)."""
    policy = load_policy(EXAMPLE_POLICY)
    outputs = compile_policy(policy)
    assert output_dir_for(policy) == GOLDEN
    assert set(outputs) == EXPECTED_FILES == {p.name for p in GOLDEN.glob("*.py")}
    for name, source in outputs.items():
        assert source == (GOLDEN / name).read_text(encoding="utf-8"), name
    assert stale_outputs(policy) == {}


def test_header_names_relative_source_hash_and_marker():
    policy = load_policy(EXAMPLE_POLICY)
    for source in compile_policy(policy).values():
        head = source.splitlines()[:3]
        assert head[0] == GENERATED_MARKER
        assert head[1] == "# source: policies/fraud.yaml"
        assert head[2] == f"# policy: fraud_detection sha256:{policy.hash}"
        assert f'POLICY_HASH = "{policy.hash}"' in source
        assert str(REPO_ROOT) not in source


def test_compile_is_deterministic_across_processes_and_hash_seeds():
    script = (
        "import json, sys; from flowpolicy.policy.loader import load_policy; "
        "from flowpolicy.compile import compile_policy; "
        "json.dump(compile_policy(load_policy(sys.argv[1])), sys.stdout, sort_keys=True)"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", script, str(EXAMPLE_POLICY)],
            capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONHASHSEED": seed}, cwd=REPO_ROOT,
        ).stdout
        for seed in ("1", "2")
    ]
    assert runs[0] == runs[1]


@settings(max_examples=40, deadline=None)
@given(
    threshold=st.floats(0, 1, allow_nan=False),
    improvement=st.floats(0, 1, allow_nan=False),
    levels=st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=4, unique=True),
)
def test_same_policy_compiles_to_identical_bytes(threshold, improvement, levels):
    policy = fraud_policy(
        gates=frozen_map({
            "quality": Gate("quality", "fraud_model", (Check("f1_score", min=threshold),)),
        }),
        champions=frozen_map({"fraud_model": ChampionRule("fraud_model", "f1_score",
                                                          min_improvement=improvement)}),
        drift=frozen_map({"fraud_features": DriftRule(
            "fraud_features",
            tuple(DriftLevel(f"level{i}", v) for i, v in enumerate(sorted(levels))),
        )}),
    )
    first, second = compile_policy(policy), compile_policy(policy)
    assert first == second
    gate = ast.parse(first["quality_gate.py"])
    defaults = [
        kw.value.value for node in ast.walk(gate) if isinstance(node, ast.Call)
        for kw in node.keywords if kw.arg == "default" and isinstance(kw.value, ast.Constant)
    ]
    assert threshold in defaults  # the policy value is the Parameter default, exactly


# --- flows and their parameters ----------------------------------------------------------


def _parameters(source: str) -> dict[str, object]:
    """Parameter name -> default of the flow class in ``source``."""
    found = {}
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "Parameter"):
            default = next(kw.value for kw in node.keywords if kw.arg == "default")
            found[node.args[0].value] = ast.literal_eval(default)
    return found


@pytest.mark.parametrize(("file_name", "class_name", "parameters"), [
    ("quality_gate.py", "QualityGateFlow",
     {"instance": "latest", "min_f1_score": 0.8, "max_latency_ms": 50.0}),
    ("fraud_model_champion.py", "FraudModelChampionFlow",
     {"candidate": "latest", "min_improvement": 0.02}),
    ("fraud_model_promotion.py", "FraudModelPromotionFlow",
     {"source": "", "target": "", "instance": "latest"}),
    ("fraud_features_drift.py", "FraudFeaturesDriftFlow",
     {"current": "latest", "reference": "latest-1", "normal_threshold": 0.0,
      "elevated_threshold": 0.05, "high_threshold": 0.1}),
])
def test_generated_flow_anatomy(file_name, class_name, parameters):
    source = compile_policy(fraud_policy())[file_name]
    tree = ast.parse(source)
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    assert [c.name for c in classes] == [class_name]
    flow = classes[0]
    assert ast.get_docstring(flow)
    assert _parameters(source) == parameters
    steps = [n for n in flow.body if isinstance(n, ast.FunctionDef)]
    assert steps[0].name == "start" and steps[-1].name == "end"
    assert not {s.name for s in steps} & RESERVED_STEPS
    assert not set(parameters) & RESERVED_PARAMETERS
    for step in steps:
        assert ast.get_docstring(step), step.name
        if step.name != "end":
            last = step.body[-1]
            assert isinstance(last, ast.Expr) and last.value.func.attr == "next", step.name
    # the module imports only metaflow, flowpolicy, its IR and the light step helpers (which
    # import what is heavy, numpy for drift, only when a step needs it)
    top_imports = {n.module for n in tree.body if isinstance(n, ast.ImportFrom)}
    assert top_imports <= {"metaflow", "flowpolicy", "flowpolicy.policy.model",
                           "flowpolicy.runtime", "flowpolicy.runtime.decisions"}
    assert source.rstrip().endswith(f"{class_name}()")


def _embedded_rules(source: str):
    """The ``RULES`` a generated promotion flow builds, evaluated from its literal."""
    tree = ast.parse(source)
    assign = next(n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "RULES")
    namespace: dict = {}
    exec(  # the literal is plain IR construction; evaluating it proves what the flow enforces
        "from flowpolicy.policy.model import *\n"
        "from flowpolicy.runtime.decisions import PromotionRules\n"
        "RULES = " + ast.unparse(assign.value), namespace
    )
    return namespace["RULES"]


def test_promotion_flow_embeds_only_what_governs_its_asset():
    from flowpolicy.runtime.decisions import promotion_rules

    policy = fraud_policy(
        assets=frozen_map({**fraud_policy().assets,
                           "other_model": AssetDecl("other_model", "model")}),
        promotion=(PromotionEdge("dev", "staging", ("fraud_model", "other_model"), ("quality",)),
                   PromotionEdge("staging", "prod", ("fraud_model",), ("quality", "champion"),
                                 alias="production")),
    )
    outputs = compile_policy(policy)
    assert {"fraud_model_promotion.py", "other_model_promotion.py"} <= set(outputs)
    for asset in ("fraud_model", "other_model"):
        embedded = _embedded_rules(outputs[f"{asset}_promotion.py"])
        assert embedded == promotion_rules(policy, asset)  # the rule check and plan apply
    other = _embedded_rules(outputs["other_model_promotion.py"])
    assert other.edges == (PromotionEdge("dev", "staging", ("other_model",), ("quality",)),)
    assert not other.gates and other.champion is None  # quality judges fraud_model
    fraud = _embedded_rules(outputs["fraud_model_promotion.py"])
    assert fraud.gates["quality"].checks == policy.gates["quality"].checks
    assert fraud.gates["quality"].on_pass is None  # promotion publishes no gate events
    assert (fraud.champion.min_improvement, fraud.champion.on_promote) == (0.02, None)


@pytest.mark.parametrize("value", [
    None, True, 0, -3, 0.1, 1e-300, "", "plain", "it's", 'say "hi"', "both ' and \"",
    "back\\slash", "new\nline", "\x00\x1b\u2028\ud7ff", ("a",), ["x", 1], {"k": (1.5, None)},
    Gate("g", "a", (Check("m", min=0.5),), on_fail="x"),
    ChampionRule("a", "m", direction="minimize", alias="best"),
    DriftRule("d", (DriftLevel("hi", 0.2),), columns=("c",), events=frozen_map({"hi": "e"})),
])
def test_literals_evaluate_back_to_the_value(value):
    namespace: dict = {}
    exec("from flowpolicy.policy.model import *", namespace)
    for indent in (0, 60):
        assert eval(literal(value, indent), namespace) == value


def test_subclasses_of_plain_types_are_written_as_their_plain_value():
    import enum

    class Level(enum.IntEnum):
        HIGH = 3

    class Named(str, enum.Enum):
        RED = "red"

    class Sneaky(str):  # its own repr/str would be code
        def __repr__(self):
            return "__import__('os').system('x')"

        __str__ = __repr__

    assert literal(Level.HIGH) == "3"
    assert literal(Named.RED) == '"red"'
    assert literal([Sneaky("ok"), (Level.HIGH,)]) == '["ok", (3,)]'


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), object(), {1, 2}])
def test_literal_refuses_what_is_not_plain_finite_data(value):
    with pytest.raises(CompileError):
        literal(value)


# --- identifiers ------------------------------------------------------------------------


@pytest.mark.parametrize("name", [
    "with", "tags", "run_id", "max_workers", "namespace", "project_config", "project_spec",
    "name", "input", "next", "prj", "class", "Upper", "1x", "a-b", "",
])
def test_parameter_names_reserved_or_invalid_are_refused(name):
    with pytest.raises(CompileError):
        parameter_name(fraud_policy(), name, "$.gates.quality")


@pytest.mark.parametrize(("changes", "message"), [
    ({"gates": frozen_map({"bad-name": Gate("bad-name", "fraud_model", (Check("f1", 0.5),))})},
     "gate name"),
    ({"gates": frozen_map({"q": Gate("q", "fraud_model", (Check("f1 score", 0.5),))})},
     "metric name"),
    ({"gates": frozen_map({"q": Gate("q", "fraud_model", (Check("f1", 0.5), Check("f1", 0.2)))})},
     "clashes"),
    ({"gates": frozen_map({"q": Gate("q", "unknown_model", (Check("f1", 0.5),))})},
     "not declared"),
    ({"gates": frozen_map({
        "fraud_model": Gate("fraud_model", "fraud_model", (Check("f1", 0.5),)),
        "fraud__model": Gate("fraud__model", "fraud_model", (Check("f1", 0.5),)),
    })}, "both generate"),
    ({"gates": frozen_map({"q": Gate("q", "fraud_model", (Check("f1", 0.5),),
                                     on_pass="bad event")})}, "event name"),
    ({"gates": frozen_map({"q": Gate("q", "fraud_model", (Check("f1", float("nan")),))})},
     "finite"),
    ({"project": "Fraud Detection"}, "project"),
    ({"promotion": (PromotionEdge("dev\n", "prod", ("fraud_model",)),)}, "branch name"),
    ({"drift": frozen_map({"fraud_model": DriftRule("fraud_model", (DriftLevel("x", 0.1),))})},
     "data asset"),
    ({"drift": frozen_map({"fraud_features": DriftRule(
        "fraud_features", (DriftLevel("high", 0.1), DriftLevel("high", 0.2)))})},
     "clashes"),
])
def test_unusable_names_are_compile_errors(changes, message):
    with pytest.raises(CompileError, match=message):
        compile_policy(fraud_policy(**changes))


def test_compile_error_points_at_the_policy_line():
    # the loader already refuses such names; break a loaded policy to keep its locations
    policy = load_policy(EXAMPLE_POLICY)
    broken = replace(policy, project="Not A Project")
    with pytest.raises(CompileError) as caught:
        compile_policy(broken)
    assert "fraud.yaml:" in str(caught.value) and "$.project" in str(caught.value)


# --- no code injection --------------------------------------------------------------------

PAYLOADS = [
    '"""; import os; os.system("echo pwned") #',
    "'); __import__('os').system('id'); ('",
    "\nimport os\nos.system('id')\n",
    "\r\nexit(1)",
    "x\u2028import os",
    "\x0c\x0bimport os",
    "{{ 7*7 }}{% raw %}{# x #}",
    "\\",
    "\\n\\x00",
    "' + str(__import__('os').getpid()) + '",
    "# -*- coding: latin-1 -*-",
    '"' * 7,
    "\x00",
]

hostile = st.one_of(
    st.sampled_from(PAYLOADS),
    st.text(alphabet=st.sampled_from(list("\"'\\\n\r#{}%();:=ab _\t\x00\u2028é")), max_size=30),
)


def _set_description(policy, s):
    assets = {n: replace(a, description=s) for n, a in policy.assets.items()}
    return replace(policy, assets=frozen_map(assets))


def _set_gate(policy, **fields):
    gate = replace(policy.gates["quality"], **fields)
    return replace(policy, gates=frozen_map({"quality": gate}))


def _set_champion(policy, **fields):
    rule = replace(policy.champions["fraud_model"], **fields)
    return replace(policy, champions=frozen_map({"fraud_model": rule}))


def _set_drift(policy, **fields):
    rule = replace(policy.drift["fraud_features"], **fields)
    return replace(policy, drift=frozen_map({"fraud_features": rule}))


def _set_edge_alias(policy, s):
    return replace(policy, promotion=tuple(replace(e, alias=s) for e in policy.promotion))


#: Fields written only as literals (or escaped comments): any string must compile safely.
LITERAL_FIELDS = {
    "asset description": _set_description,
    "required annotation": lambda p, s: replace(p, assets=frozen_map({
        **p.assets, "fraud_model": replace(p.assets["fraud_model"], required_annotations=(s,))})),
    "champion alias": lambda p, s: _set_champion(p, alias=s),
    "promotion alias": _set_edge_alias,
    "drift current spec": lambda p, s: _set_drift(p, current=s),
    "drift reference spec": lambda p, s: _set_drift(p, reference=s),
    "drift column": lambda p, s: _set_drift(p, columns=(s,)),
    "drift column setting": lambda p, s: _set_drift(p, column_settings=frozen_map(
        {s: DriftColumn(s, "linf")})),
    "naming pattern": lambda p, s: replace(p, naming=NamingRules(pattern=s, forbidden_words=(s,))),
    "policy source": lambda p, s: replace(p, source="<" + s),
}
#: Fields that become identifiers or docstring words: refused unless they are safe names.
VALIDATED_FIELDS = {
    "gate on_pass event": lambda p, s: _set_gate(p, on_pass=s),
    "gate on_fail event": lambda p, s: _set_gate(p, on_fail=s),
    "metric name": lambda p, s: _set_gate(p, checks=(Check(s, min=0.5),)),
    "champion metric": lambda p, s: _set_champion(p, metric=s),
    "champion event": lambda p, s: _set_champion(p, on_keep=s),
    "drift event": lambda p, s: _set_drift(p, events=frozen_map({"high": s})),
    "branch": lambda p, s: replace(p, promotion=(PromotionEdge(s, "prod", ("fraud_model",)),)),
    "project": lambda p, s: replace(p, project=s),
    "gate name": lambda p, s: replace(p, gates=frozen_map({s: replace(p.gates["quality"], name=s)}),
                                      promotion=()),
    "drift level name": lambda p, s: _set_drift(p, levels=(DriftLevel(s, 0.1),)),
    "drift report asset": lambda p, s: _set_drift(p, report_asset=s),
    "promotion requirement": lambda p, s: replace(p, promotion=(
        PromotionEdge("dev", "staging", ("fraud_model",), (s,)),)),
}


PLAIN_NAME = re.compile(r"[a-z0-9_]{1,128}")


@functools.cache
def _baseline(field: str) -> dict[str, str]:
    setter = LITERAL_FIELDS.get(field) or VALIDATED_FIELDS[field]
    return {name: _skeleton(source)
            for name, source in compile_policy(setter(fraud_policy(), "placeholder")).items()}


def _skeleton(source: str) -> str:
    """The AST with every string constant blanked: what the code *does*, not what it says."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            node.value = ""
    return ast.dump(tree)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(sorted({**LITERAL_FIELDS, **VALIDATED_FIELDS})), payload=hostile)
def test_hostile_strings_never_become_code(field, payload):
    setter = LITERAL_FIELDS.get(field) or VALIDATED_FIELDS[field]
    baseline = _baseline(field)
    try:
        outputs = compile_policy(setter(fraud_policy(), payload))
    except CompileError:
        assert field in VALIDATED_FIELDS, f"{field} must accept any string as a literal"
        return
    if field in VALIDATED_FIELDS:
        # a validated field lets through only plain names, which may rename classes, files
        # and parameters (so the skeleton differs by design) but cannot carry code
        assert PLAIN_NAME.fullmatch(payload) and not keyword.iskeyword(payload), payload
        for source in outputs.values():
            names = {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name)}
            assert "__import__" not in names and "os" not in names
        return
    assert outputs.keys() == baseline.keys()
    for name, source in outputs.items():
        # same statements, calls and names as with a harmless value: the payload added no code
        assert _skeleton(source) == baseline[name], (field, name)
        names = {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name)}
        assert "__import__" not in names and "os" not in names


def test_comment_filter_keeps_text_on_one_line():
    assert "\n" not in comment("a\nb\r\x0c\u2028c")
    assert comment("policies/fraud.yaml") == "policies/fraud.yaml"


# --- writing and checking outputs ---------------------------------------------------------


def _policy_file(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    (project / "policies").mkdir(parents=True)
    (project / "obproject.toml").write_text('project = "fraud_detection"\n')
    target = project / "policies" / "fraud.yaml"
    target.write_text(EXAMPLE_POLICY.read_text(encoding="utf-8"), encoding="utf-8")
    return target


def test_write_then_stale_outputs_round_trip(tmp_path):
    policy = load_policy(_policy_file(tmp_path))
    out = output_dir_for(policy)
    assert out == tmp_path / "project" / "flows"
    assert stale_outputs(policy)  # nothing written yet: every file is missing
    written = write_outputs(policy)
    assert {p.name for p in written} == EXPECTED_FILES
    assert stale_outputs(policy) == {}
    assert write_outputs(policy) == []  # current files are left alone
    # identical to the committed example: the header names the path inside the project
    for name in EXPECTED_FILES:
        assert (out / name).read_text() == (EXAMPLE / "flows" / name).read_text()


def test_check_reports_changed_missing_and_stale_files_but_not_foreign_ones(tmp_path):
    policy = load_policy(_policy_file(tmp_path))
    out = output_dir_for(policy)
    write_outputs(policy)
    (out / "quality_gate.py").write_text("edited\n")
    (out / "fraud_model_champion.py").unlink()
    stale = (out / "fraud_features_drift.py").read_text()
    (out / "renamed_gate.py").write_text(stale)
    (out / "hand_written.py").write_text("print('mine')\n")
    other_source = stale.replace("# source: policies/fraud.yaml", "# source: policies/other.yaml")
    (out / "other_policy_flow.py").write_text(other_source)

    stale = stale_outputs(policy)
    assert set(stale) == {out / "quality_gate.py", out / "fraud_model_champion.py",
                          out / "renamed_gate.py"}
    diffs = list(stale.values())
    assert len(diffs) == 3
    joined = "\n".join(diffs)
    assert "-edited" in joined
    assert "--- /dev/null" in joined
    assert "+++ " + (out / "fraud_model_champion.py").as_posix() in joined
    assert "+++ /dev/null" in joined and "renamed_gate.py" in joined
    assert "hand_written.py" not in joined and "other_policy_flow.py" not in joined

    write_outputs(policy)
    assert not (out / "renamed_gate.py").exists()
    assert (out / "hand_written.py").exists() and (out / "other_policy_flow.py").exists()
    assert stale_outputs(policy) == {}


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flowpolicy", "compile", *args],
        capture_output=True, text=True, cwd=cwd,
    )


def test_cli_check_passes_on_the_committed_example():
    result = _cli("--check", "policies/fraud.yaml", cwd=EXAMPLE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_cli_compiles_then_check_fails_with_a_diff_when_stale(tmp_path):
    policy_file = _policy_file(tmp_path)
    project = policy_file.parent.parent
    assert _cli("--check", cwd=project).returncode == 1  # nothing generated yet
    first = _cli(cwd=project)
    assert first.returncode == 0, first.stderr
    assert _cli("--check", cwd=project).returncode == 0
    policy_file.write_text(policy_file.read_text().replace("min: 0.8", "min: 0.85"))
    stale = _cli("--check", cwd=project)
    assert stale.returncode == 1
    assert "-            Check(\"f1_score\"" not in stale.stdout  # thresholds are Parameters
    assert "-        \"min_f1_score\", default=0.8" in stale.stdout
    assert "+        \"min_f1_score\", default=0.85" in stale.stdout


def test_cli_output_dir_option_and_invalid_policy_exit_codes(tmp_path):
    policy_file = _policy_file(tmp_path)
    out = tmp_path / "elsewhere"
    assert _cli(str(policy_file), "-o", str(out), cwd=tmp_path).returncode == 0
    assert {p.name for p in out.glob("*.py")} == EXPECTED_FILES
    policy_file.write_text(policy_file.read_text().replace("project: fraud_detection",
                                                           "project: [1]"))
    broken = _cli(str(policy_file), cwd=tmp_path)
    assert broken.returncode == 2 and "fraud.yaml:" in broken.stderr
    assert _cli(str(tmp_path / "missing.yaml"), cwd=tmp_path).returncode == 2


def _every_template_branch() -> Policy:
    """One policy that takes every branch of every template: each gate, champion rule,
    promoted asset and drift rule differs from the others in what is optional."""
    check_sets = {
        "lo": (Check("f1_score", min=0.8),),
        "hi": (Check("latency_ms", max=50.0),),
        "both": (Check("f1_score", min=0.5, max=1.0),),
        "many": (Check("f1_score", min=0.8), Check("latency_ms", max=5.0),
                 Check("auc", min=0.6, max=0.99)),
    }
    assets: dict[str, AssetDecl] = {"reports": AssetDecl("reports", "data")}
    gates, champions, edges, drift = {}, {}, [], {}
    for index, (checks, on_pass, on_fail, kind) in enumerate(itertools.product(
            check_sets, (None, "passed"), (None, "failed"), ("model", "data"))):
        asset = f"gated_{index}"
        assets[asset] = AssetDecl(asset, kind)
        gates[f"gate_{index}"] = Gate(f"gate_{index}", asset, check_sets[checks],
                                      on_pass=on_pass, on_fail=on_fail)
    for index, (direction, on_promote, on_keep, kind) in enumerate(itertools.product(
            ("maximize", "minimize"), (None, "promoted"), (None, "kept"), ("model", "data"))):
        asset = f"ranked_{index}"
        assets[asset] = AssetDecl(asset, kind)
        champions[asset] = ChampionRule(asset, "f1_score", direction, 0.01, "best" if index % 2
                                        else "champion", on_promote, on_keep)
    for index, (require, alias, ranked, kind, two_edges) in enumerate(itertools.product(
            ((), ("gate_0",), ("champion",), ("gate_1", "champion"), ("own", "champion")),
            ("candidate", "live"), (False, True), ("model", "data"), (False, True))):
        asset = f"promoted_{index}"
        assets[asset] = AssetDecl(asset, kind)
        if "own" in require:  # a gate that judges the promoted asset itself
            gates[f"own_{index}"] = Gate(f"own_{index}", asset, check_sets["many"])
            require = tuple(f"own_{index}" if r == "own" else r for r in require)
        if ranked:
            champions[asset] = ChampionRule(asset, "f1_score")
        edges.append(PromotionEdge("dev", "staging", (asset,), require, alias))
        if two_edges:
            edges.append(PromotionEdge("staging", "prod", (asset, "gated_0"), ("champion",),
                                       "production"))
    settings = frozen_map({"age": DriftColumn("age", "psi", frozen_map({"high": 0.25}))})
    for index, (levels, columns, report, events, mode, column_settings) in enumerate(
            itertools.product((1, 3), ((), ("amount", "age")), (None, "reports"),
                              ({}, {"high": "retrain"}, {"normal": "fine", "high": "retrain"}),
                              ("exact", "sketch"), (frozen_map(), settings))):
        asset = f"watched_{index}"
        assets[asset] = AssetDecl(asset, "data")
        names = ("normal", "elevated", "high")[-levels:]
        drift[asset] = DriftRule(
            asset, tuple(DriftLevel(name, 0.05 * i) for i, name in enumerate(names)),
            mode=mode, columns=columns, column_settings=column_settings, report_asset=report,
            events=frozen_map({k: v for k, v in events.items() if k in names}),
        )
    return Policy(
        project="branches", assets=frozen_map(assets), branches=("dev", "staging", "prod"),
        gates=frozen_map(gates), champions=frozen_map(champions), promotion=tuple(edges),
        drift=frozen_map(drift),
    )


def test_every_template_branch_compiles_to_valid_python():
    """compile_policy does not re-parse its output (see its docstring): this is the proof
    that no template branch writes code Python refuses."""
    policy = _every_template_branch()
    outputs = compile_policy(policy)
    kinds = {name.rsplit("_", 1)[1] for name in outputs}
    assert kinds == {"gate.py", "champion.py", "promotion.py", "drift.py"}
    assert len(outputs) == (len(policy.gates) + len(policy.champions)
                            + len({a for e in policy.promotion for a in e.assets})
                            + len(policy.drift))
    for name, source in outputs.items():
        compile(source, name, "exec", dont_inherit=True)  # parser, symbol table and codegen
    from flowpolicy.runtime.decisions import promotion_rules

    promoted = {a for e in policy.promotion for a in e.assets}
    taken = {"gates": 0, "champion": 0}
    for asset in promoted:  # each promotion flow enforces exactly the rules check applies
        embedded = _embedded_rules(outputs[f"{asset}_promotion.py"])
        assert embedded == promotion_rules(policy, asset), asset
        taken["gates"] += bool(embedded.gates)
        taken["champion"] += embedded.champion is not None
    assert all(taken.values()), taken
