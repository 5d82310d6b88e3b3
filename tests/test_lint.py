"""flowpolicy lint: rule fixtures, the call-site finder, noqa, policies, formats and the CLI.

Rule fixtures live in tests/fixtures/lint/<CODE>.py with trailing ``# expect: CODE``
comments; the fixture policy is loaded with the real loader.
"""

from __future__ import annotations

import ast
import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from flowpolicy.lint import LintRequest, lint_policy_names, prepare
from flowpolicy.lint.callsites import could_call_registry, find_call_sites
from flowpolicy.lint.docs import render_rules_markdown
from flowpolicy.lint.engine import LintConfig, Scope, lint_files, lint_parsed, lint_source
from flowpolicy.lint.noqa import parse_line
from flowpolicy.lint.rule import CODE_PATTERN, RuleContext
from flowpolicy.lint.rules import RULES
from flowpolicy.policy.loader import default_naming, load_policy
from flowpolicy.policy.model import AssetDecl, NamingRules, Policy, SourceLocation, frozen_map

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "lint"
EXPECT = re.compile(r"#\s*expect:\s*(?P<codes>FPL\d{3}(?:\s*,\s*FPL\d{3})*)")

#: Extra options per fixture (FPL901 needs the rules whose noqa codes it judges).
FIXTURE_OPTIONS = {
    "FPL901": {"select": ("FPL001", "FPL005", "FPL901"), "report_unused_noqa": True},
}


def fixture_context() -> RuleContext:
    from flowpolicy.lint.discovery import context_for_policy

    return context_for_policy(load_policy(FIXTURES / "policy.yaml"))


def expected_findings(path: Path) -> set[tuple[int, str]]:
    expected = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        match = EXPECT.search(line)
        if match:
            expected.update((number, c.strip()) for c in match.group("codes").split(","))
    return expected


def lint_fixture(code: str) -> list:
    options = FIXTURE_OPTIONS.get(code, {"select": (code,)})
    config = LintConfig(scopes=(Scope("", fixture_context()),), **options)
    path = FIXTURES / f"{code}.py"
    findings, _ = lint_source(path.read_bytes(), str(path), config)
    return findings


@pytest.mark.parametrize("code", [rule.code for rule in RULES])
def test_rule_fixture(code):
    findings = lint_fixture(code)
    assert {(f.line, f.code) for f in findings} == expected_findings(FIXTURES / f"{code}.py")
    assert all(f.col >= 1 and f.message for f in findings)


def test_every_rule_has_a_code_docs_and_a_fixture():
    assert len({rule.code for rule in RULES}) == len(RULES)
    assert len({rule.name for rule in RULES}) == len(RULES)
    for rule in RULES:
        assert CODE_PATTERN.match(rule.code), rule.code
        assert re.fullmatch(r"[a-z][a-z-]+", rule.name)
        assert rule.summary and not rule.summary.endswith(".")
        assert rule.doc.startswith(f"{rule.code} {rule.name}:"), rule.code
        for section in ("**What it does.**", "**Why it is bad.**", "**Example.**"):
            assert section in rule.doc, (rule.code, section)
        fixture = FIXTURES / f"{rule.code}.py"
        assert fixture.is_file(), fixture
        assert any(code == rule.code for _, code in expected_findings(fixture)), rule.code


def test_rule_docs_are_current():
    assert (REPO / "docs" / "lint-rules.md").read_text(encoding="utf-8") == render_rules_markdown()


# -- the call-site finder ------------------------------------------------------------------

FINDER_CASES = [
    # (source, [(api, known name or None for dynamic)])
    ('self.prj.register_data("a_b", "df")', [("register_data", "a_b")]),
    ('self.prj.register_model(name="m_1", artifact="m")', [("register_model", "m_1")]),
    ('flow.prj.get_data("x_y")', [("get_data", "x_y")]),
    ('prj.list_model_instances("m_m")', [("list_model_instances", "m_m")]),
    ('self.prj.asset.consume_data_asset("d_d")', [("consume_data_asset", "d_d")]),
    ('p = self.prj\na = p.asset\na.peek_model_asset("k_k")', [("peek_model_asset", "k_k")]),
    ('from flowpolicy import Asset\nAsset().register_data_asset("q_q")',
     [("register_data_asset", "q_q")]),
    ('from obproject.assets import Asset as A\nx = A(read_only=True)\nx.peek_data_asset("r_r")',
     [("peek_data_asset", "r_r")]),
    ('import obproject\nobproject.Asset().consume_model_asset("s_s")',
     [("consume_model_asset", "s_s")]),
    ('import flowpolicy as fp\nfp.Asset().list_data_asset_instances("t_t")',
     [("list_data_asset_instances", "t_t")]),
    ('from flowpolicy.runtime.promote import promote_assets\n'
     'promote_assets("p", "dev", "prod", None, "u_u")', [("promote_assets", "u_u")]),
    ('from flowpolicy.runtime import promote\npromote.promote_assets("p", "a", "b", asset="v_v")',
     [("promote_assets", "v_v")]),
    ('from flowpolicy import Asset as Reg\nr = Reg()\nr.peek_data_asset("x_x")',
     [("peek_data_asset", "x_x")]),
    ('def f():\n    from flowpolicy.runtime.promote import promote_assets as go\n'
     '    go("p", "a", "b", asset="y_y")', [("promote_assets", "y_y")]),
    ('N = "w_w"\nself.prj.get_model(N)', [("get_model", "w_w")]),
    ('N: str = "w_" + "x"\nself.prj.get_model(N)', [("get_model", "w_x")]),
    ('N = "a"\nN = "b"\nself.prj.get_model(N)', [("get_model", None)]),
    ('RULE = Gate(asset="g_g", checks=())\nself.prj.get_model(RULE.asset)', [("get_model", "g_g")]),
    ('RULE = Gate(name="g")\nself.prj.get_model(RULE.asset)', [("get_model", None)]),
    ('class F:\n    K = "k_k"\n    def s(self):\n        self.prj.get_model(self.K)',
     [("get_model", "k_k")]),
    # Not the registry API.
    ('mylist.register_data("prod")', []),
    ('self.other.get_data("prod")', []),
    ('self.prj.publish_event("prod")', []),
    # Asset / promote_assets from the project's own wrapper, or after a star import.
    ('from .assets import Asset\nAsset().consume_data_asset("w_a")',
     [("consume_data_asset", "w_a")]),
    ('from team.registry import Asset as R\nR().peek_model_asset("w_b")',
     [("peek_model_asset", "w_b")]),
    ('from ..registry import promote_assets as go\ngo("p", "a", "b", asset="w_c")',
     [("promote_assets", "w_c")]),
    ('from flowpolicy import *\nAsset().peek_data_asset("w_d")', [("peek_data_asset", "w_d")]),
    # Methods known by the registry's naming only, on a registry receiver.
    ('prj.peek_model("w_e")', [("peek_model", "w_e")]),
    ('self.prj.consume_data("w_f", "v1")', [("consume_data", "w_f")]),
    ('with Asset() as a:\n    a.get_model("w_g")', []),  # Asset not imported
    ('from flowpolicy import Asset\nwith Asset() as a:\n    a.get_model_asset("w_h")',
     [("get_model_asset", "w_h")]),
    ('Asset().consume_data_asset("prod")', []),  # Asset not imported at all
    ('class Asset: pass\nAsset().consume_data_asset("prod")', []),
    ('promote_assets("p", "a", "b", asset="prod")', []),
    ('self.prj.list_data_assets({"k": "v"})', []),  # lists assets, names none
    ('self.prj = prj\nprint(self.prj.project, self.prj.branch)', []),
    ('self.prj.asset.register_data("prod")', []),  # a ProjectContext method on an Asset
    ('self.prj.register_data()', []),
]


@pytest.mark.parametrize(("source", "expected"), FINDER_CASES)
def test_finder(source, expected):
    sites = find_call_sites(ast.parse(source))
    assert [(s.api, s.name.value if s.name else None) for s in sites] == expected
    # The prefilter passes every file the finder finds a call site in.
    assert could_call_registry(source.encode()) or not expected


def test_the_walk_reaches_every_call_the_full_ast_walk_does():
    """The finder's walk skips fields that hold no node; it must still visit every call
    (metaflow's own source and the fixtures: all the syntax they use), and a registry call
    in any position is a call site."""
    import metaflow

    from flowpolicy.lint.callsites import _Finder

    paths = sorted(FIXTURES.glob("FPL0*.py")) + sorted(Path(metaflow.__file__).parent.rglob("*.py"))
    for path in paths:
        tree = ast.parse(path.read_bytes())
        expected = sorted(
            (n.lineno, n.col_offset) for n in ast.walk(tree) if isinstance(n, ast.Call))
        found = sorted((call.lineno, call.col_offset) for call, _ in _Finder(tree).calls)
        assert found == expected, path
    call = 'prj.get_data("a_b")'
    positions = [
        f"@{call}\ndef f(x={call}, *, y={call}) -> {call}:\n    return lambda z={call}: {call}",
        f"class C({call}, metaclass={call}):\n    k = {call}",
        f"match {call}:\n    case {{'k': v}} if {call}:\n        {call}",
        f"try:\n    {call}\nexcept {call} as e:\n    {call}\nelse:\n    {call}\n"
        f"finally:\n    {call}",
        f"with {call} as w, {call}:\n    x[{call}:{call}] = f'{{{call}!r:{{{call}}}}}'",
        f"async def g():\n    await {call}\n    async for i in {call}:\n        yield {call}",
        f"x = {{{call}: {call} for i in {call} if {call}}}; del x[{call}]; assert {call}, {call}",
        f"global q\nx = [*{call}], {{**{call}}}, not {call}, {call} if {call} else {call}",
    ]
    for source in positions:
        tree = ast.parse(source)
        wanted = sum(isinstance(n, ast.Call) for n in ast.walk(tree))
        assert len(find_call_sites(tree)) == wanted, source


def test_receiver_chains_resolve_in_any_order_without_a_round_limit():
    # Bound in reverse order: each binding is only known once the one below it is.
    chain = [f"r{i} = r{i + 1}" for i in range(300)] + ["r300 = self.prj"]
    source = "\n".join(chain) + '\nr0.register_data("a_b", "df")\nr0.asset.peek_data_asset("c_d")\n'
    sites = find_call_sites(ast.parse(source))
    assert [(s.api, s.name.value) for s in sites] == [
        ("register_data", "a_b"), ("peek_data_asset", "c_d")]


def lint_text(source: str, *codes: str) -> list:
    config = LintConfig(scopes=(Scope("", fixture_context()),), select=codes)
    return lint_source(source.encode(), "f.py", config)[0]


def test_chained_fstring_constants_fold_once_and_stop_at_the_size_bound():
    # Each constant repeats the last eight times: 8 * 8**29 characters if folded naively
    # (the old depth cap of 20 still let this run for hours).
    lines = ['A0 = "abcdefgh"'] + [
        f'A{i} = f"' + f"{{A{i - 1}}}" * 8 + '"' for i in range(1, 30)]
    lines += ['self.prj.register_data(A29, "df")', 'self.prj.register_data(A2, "df")']
    findings = lint_text("\n".join(lines) + "\n", "FPL002", "FPL006")
    assert [(f.line, f.col, f.code) for f in findings] == [(31, 24, "FPL006"), (32, 24, "FPL002")]
    assert "asset name of register_data was not evaluated: its text is longer than 4096 " \
        "characters" in findings[0].message
    assert len(findings[1].message) < 300  # the 512-character name is shown shortened


def test_folding_work_is_bounded_per_module():
    # A constant of 2,000 parts referenced by 150 calls: 300,000 steps > the bound.
    parts = "".join("{x}a" for _ in range(1000))
    source = f'K = f"{parts}"\n' + 'self.prj.get_data(K)\n' * 150
    findings = lint_text(source, "FPL006")
    assert findings and {f.code for f in findings} == {"FPL006"}
    assert "takes more than 200000 steps" in findings[0].message
    assert findings[0].line > 50  # the first calls were evaluated


def test_constants_defined_through_each_other_are_dynamic():
    findings = lint_text('A = B\nB = A\nself.prj.get_data(A)\n', "FPL006")
    assert [(f.line, f.code) for f in findings] == [(3, "FPL006")]
    assert "not statically known" in findings[0].message


def test_deeply_nested_code_is_walked_without_recursion_errors():
    # 2,000 levels: more than Python's recursion limit, fewer than the parser's.
    deep = " + ".join(["y"] * 2000)
    body = f"x = {deep}\nself.prj.get_data({deep})\nself.prj.get_data('prod_x')\n"
    config = LintConfig(scopes=(Scope("", RuleContext(default_naming())),))
    findings, parsed = lint_source(body.encode(), "deep.py", config)
    assert parsed and [(f.line, f.code) for f in findings] == [(2, "FPL006"), (3, "FPL001")]
    assert "nested more than 100 levels deep" in findings[0].message


@pytest.mark.parametrize(
    ("line", "codes"),
    [
        ("x  # noqa", None),
        ("x  # NOQA", None),
        ("x  #noqa:FPL001", ("FPL001",)),
        ("x  # noqa: FPL001,FPL003", ("FPL001", "FPL003")),
        ("x  # noqa: FPL001 FPL003", ("FPL001", "FPL003")),
        ("x  # noqa: fpl001", ("FPL001",)),
        ("x  # noqa:-bad", None),  # malformed list: blanket, as flake8
    ],
)
def test_noqa_parsing(line, codes):
    found = parse_line(line, 1)
    assert found is not None and found.codes == codes


def test_noqa_prefix_and_absence():
    assert parse_line("x = 1", 1) is None
    assert parse_line("x  # noqa: FPL00", 1).covers("FPL003")
    assert not parse_line("x  # noqa: E501", 1).covers("FPL001")


# -- policies ------------------------------------------------------------------------------


def test_policy_declared_names_are_linted_at_their_yaml_lines(tmp_path):
    # The loader refuses such names itself; an IR built directly shows the linter's side.
    source = tmp_path / "policy.yaml"
    source.write_text("assets:\n  fraud_model_prod: {type: model}\n"
                      "  Bad_Name: {type: data}  # noqa: FPL002\n", encoding="utf-8")
    policy = Policy(
        project="p",
        naming=NamingRules(forbidden_words=("prod",)),
        assets=frozen_map({"fraud_model_prod": AssetDecl("fraud_model_prod", "model"),
                           "Bad_Name": AssetDecl("Bad_Name", "data")}),
        source=str(source),
        locations=frozen_map({
            "$.assets.fraud_model_prod": SourceLocation(str(source), 2, 3),
            "$.assets.Bad_Name": SourceLocation(str(source), 3, 3),
        }),
    )
    config = LintConfig(scopes=(Scope("", RuleContext(policy.naming)),))
    findings = lint_policy_names(policy, config)
    assert [(f.line, f.col, f.code) for f in findings] == [(2, 3, "FPL001")]
    assert "declared asset name 'fraud_model_prod'" in findings[0].message


POLICY = """version: 1
project: {project}
extends: [flowpolicy:naming]
naming: {{declared_only: true}}
assets:
  {asset}: {{type: data}}
"""


def test_each_project_is_linted_against_its_own_policy(tmp_path, monkeypatch):
    (tmp_path / ".git").mkdir()
    for project, asset in (("alpha", "alpha_events"), ("beta", "beta_events")):
        (tmp_path / project / "policies").mkdir(parents=True)
        (tmp_path / project / "policies" / "p.yaml").write_text(
            POLICY.format(project=project, asset=asset), encoding="utf-8")
        (tmp_path / project / "flow.py").write_text(
            'self.prj.get_data("alpha_events")\n', encoding="utf-8")
    (tmp_path / "tools.py").write_text('self.prj.get_data("beta_prod")\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    run = prepare(LintRequest(paths=(".",)))
    found = sorted((f.path, f.code) for f in run.findings())
    # beta does not declare alpha_events; tools.py is outside both: stock preset only.
    assert found == [("beta/flow.py", "FPL003"), ("tools.py", "FPL001")]


def test_stock_preset_without_policy(tmp_path, monkeypatch):
    (tmp_path / "f.py").write_text('self.prj.get_data("stg_events")\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    run = prepare(LintRequest(paths=(".",)))
    assert run.policy_set.policies == ()
    assert "stg" in default_naming().forbidden_words
    assert [f.code for f in run.findings()] == ["FPL001"]


# -- a messy tree: bad files are reported, the rest is linted ------------------------------


def write_messy_tree(root: Path, copies: int = 1) -> dict[str, tuple[int, int]]:
    """Good and bad files; returns the expected FPL900 location per bad file."""
    bad = {}
    for i in range(copies):
        d = root / f"pkg{i}"
        d.mkdir(parents=True)
        (d / "good.py").write_text('self.prj.register_data("prod_features", "df")\n')
        (d / "clean.py").write_text('import os\nprint(os.sep)\n')
        (d / "syntax.py").write_text('self.prj.get_data("a_b")\ndef f(:\n    pass\n')
        bad[f"pkg{i}/syntax.py"] = (2, 7)
        (d / "latin1.py").write_bytes('x = 1\nname = "café_prj.get_data"\n'.encode("latin-1"))
        bad[f"pkg{i}/latin1.py"] = (2, 12)
        (d / "latin1_declared.py").write_bytes(
            '# -*- coding: latin-1 -*-\n# café\nself.prj.get_data("uat_x")\n'.encode("latin-1"))
        (d / "junk.py").write_bytes(b"prj.get_data" + bytes(range(256)) * 4)
        bad[f"pkg{i}/junk.py"] = (1, 13)
        (d / "bom.py").write_bytes(b'\xef\xbb\xbfself.prj.get_data("qa_x")\n')
    return bad


@pytest.mark.parametrize("copies", [1, 30])  # 30 copies: enough files for the worker pool
def test_messy_tree(tmp_path, monkeypatch, copies):
    bad = write_messy_tree(tmp_path, copies)
    monkeypatch.chdir(tmp_path)
    run = prepare(LintRequest(paths=(".",), jobs=2))
    findings = list(run.findings())
    errors = {f.path: (f.line, f.col) for f in findings if f.code == "FPL900"}
    assert errors == bad
    assert len([f for f in findings if f.code == "FPL900"]) == len(bad)
    good = sorted((f.path.split("/")[1], f.line, f.code) for f in findings if f.code != "FPL900")
    assert good == sorted([("bom.py", 1, "FPL001"), ("good.py", 1, "FPL001"),
                           ("latin1_declared.py", 3, "FPL001")] * copies)
    assert run.stats.files == 7 * copies
    assert [f.path for f in findings] == sorted(f.path for f in findings)  # file order


def test_columns_count_characters_not_bytes():
    config = LintConfig(scopes=(Scope("", RuleContext(NamingRules(forbidden_words=("prod",)))),))
    data = 'é = 1; self.prj.get_data("prod_x")\n'.encode()
    (finding,), _ = lint_source(data, "f.py", config)
    assert finding.col == 'é = 1; self.prj.get_data("'.index('"') + 1


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_pool_and_serial_give_the_same_findings(tmp_path, start_method):
    write_messy_tree(tmp_path, 30)
    files = sorted(str(p) for p in tmp_path.rglob("*.py"))
    config = LintConfig(scopes=(Scope("", RuleContext(default_naming())),))
    pooled = list(lint_files(files, config, jobs=2, start_method=start_method))
    assert pooled == list(lint_files(files, config, jobs=1))


# -- the command line ----------------------------------------------------------------------


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "engine")}
    return subprocess.run(
        [sys.executable, "-m", "flowpolicy", "lint", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )


@pytest.fixture
def project(tmp_path) -> Path:
    (tmp_path / ".git").mkdir()
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "policy.yaml").write_text(
        (FIXTURES / "policy.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text(
        "from flowpolicy import ProjectFlow\n\n\nclass TrainFlow(ProjectFlow):\n"
        "    def start(self):\n"
        '        self.prj.register_model("fraud_model_prod", "model")\n'
        '        self.prj.get_data("fraud_features", instance="v0")\n',
        encoding="utf-8")
    (tmp_path / "src" / "clean.py").write_text(
        'self.prj.register_model("fraud_model", "model",\n'
        '                        annotations={"f1_score": 0.9, "training_run_id": "7"})\n',
        encoding="utf-8")
    return tmp_path


def test_cli_text(project):
    result = run_cli("src", cwd=project)
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines() == [
        "src/train.py:6:33: FPL001 asset name 'fraud_model_prod' contains environment word "
        "'prod'; name assets by what they are, the branch carries the environment",
        "src/train.py:6:33: FPL003 asset 'fraud_model_prod' is not declared in "
        "policies/policy.yaml; did you mean 'fraud_model'?",
        "src/train.py:7:54: FPL005 malformed instance spec 'v0'; use 'latest', 'latest-N', "
        "'vN' (N >= 1) or '@alias'",
    ]
    assert "3 findings in 2 files" in result.stderr


def test_cli_clean_exit_zero(project):
    result = run_cli("src/clean.py", cwd=project)
    assert (result.returncode, result.stdout) == (0, ""), result.stderr


def test_cli_json(project):
    result = run_cli("src", "--format", "json", "--select", "FPL001,FPL005", cwd=project)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert [(f["path"], f["line"], f["col"], f["code"]) for f in report["findings"]] == [
        ("src/train.py", 6, 33, "FPL001"), ("src/train.py", 7, 54, "FPL005")]
    assert report["findings"][0]["rule"] == "environment-word"
    assert report["summary"]["findings"] == 2 and report["summary"]["files"] == 2
    assert report["summary"]["by_code"] == {"FPL001": 1, "FPL005": 1}


def test_cli_sarif_validates_against_the_sarif_schema(project):
    out = project / "lint.sarif"
    result = run_cli("src", "--format", "sarif", "-o", str(out), cwd=project)
    assert result.returncode == 1
    sarif = json.loads(out.read_text(encoding="utf-8"))
    schema = json.loads((FIXTURES / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))
    jsonschema.Draft4Validator(schema).validate(sarif)
    (run,) = sarif["runs"]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == [r.code for r in RULES]
    for rule in run["tool"]["driver"]["rules"]:
        assert rule["shortDescription"]["text"] and rule["fullDescription"]["text"]
    first = run["results"][0]
    assert first["ruleId"] == "FPL001"
    assert run["tool"]["driver"]["rules"][first["ruleIndex"]]["id"] == "FPL001"
    location = first["locations"][0]["physicalLocation"]
    assert location["artifactLocation"] == {"uri": "src/train.py", "uriBaseId": "%SRCROOT%"}
    assert location["region"]["startLine"] == 6 and location["region"]["startColumn"] == 33


def test_cli_sarif_without_findings_is_valid(project):
    result = run_cli("src/clean.py", "--format", "sarif", cwd=project)
    assert result.returncode == 0
    schema = json.loads((FIXTURES / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))
    jsonschema.Draft4Validator(schema).validate(json.loads(result.stdout))


def test_cli_github(project):
    result = run_cli("src", "--format", "github", "--select", "FPL005", cwd=project)
    assert result.returncode == 1
    assert result.stdout == (
        "::error file=src/train.py,line=7,col=54,endLine=7,endColumn=58,title=FPL005::"
        "malformed instance spec 'v0'; use 'latest', 'latest-N', 'vN' (N >= 1) or '@alias'\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("missing_dir",), "no such file or directory"),
        (("src", "--select", "XYZ1"), "unknown lint code"),
        (("src", "--policy", "nope.yaml"), "no such policy file"),
        (("src", "--format", "xml"), "invalid choice"),
        (("src", "--jobs", "0"), "--jobs"),
    ],
)
def test_cli_usage_errors_exit_two(project, args, message):
    result = run_cli(*args, cwd=project)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_broken_policy_exits_two(project):
    (project / "policies" / "policy.yaml").write_text("version: 1\nproject: x\nassets: 3\n")
    result = run_cli("src", cwd=project)
    assert result.returncode == 2
    assert "policies/policy.yaml" in result.stderr
    assert "found by policy discovery" in result.stderr
    assert run_cli("src", "--exclude", "policies", cwd=project).returncode == 1


def test_cli_report_unused_noqa(project):
    (project / "src" / "clean.py").write_text(
        'self.prj.get_model("fraud_model")  # noqa: FPL001\n', encoding="utf-8")
    assert run_cli("src/clean.py", cwd=project).returncode == 0
    result = run_cli("src/clean.py", "--report-unused-noqa", cwd=project)
    assert result.returncode == 1
    assert result.stdout.startswith("src/clean.py:1:36: FPL901 unused noqa code FPL001")


def test_pre_commit_hooks_name_real_commands():
    import yaml

    from flowpolicy.cli import build_parser

    hooks = {h["id"]: h for h in yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())}
    assert set(hooks) == {"flowpolicy-lint", "flowpolicy-validate"}
    commands = build_parser()._subparsers._group_actions[0].choices
    for hook in hooks.values():
        program, command = hook["entry"].split()
        assert program == "flowpolicy" and command in commands
        assert hook["language"] == "python"
    assert hooks["flowpolicy-lint"]["types"] == ["python"]
    assert re.search(hooks["flowpolicy-validate"]["files"], "ml/policies/fraud.yaml")


# Statement templates for the property below: receivers, bindings, aliases, constants,
# loops, checkpoints, and code that names the registry's receivers without calling it.
SNIPPETS = [
    'self.prj.register_data("{n}", "df")',
    'self.prj.get_model(name={c})',
    '{v} = self.prj',
    '{v} = {v2}.asset',
    '{v}.peek_data_asset("{n}", "v1")',
    '{v} = Asset(read_only=True)',
    '{v} = Reg()',
    '{v}.consume_model_asset(f"{{x}}_{n}")',
    'from flowpolicy import Asset as Reg',
    'from .wrapper import Asset',
    'from flowpolicy.runtime.promote import promote_assets as {v}',
    '{v}("p", "a", "b", asset="{n}")',
    '{c} = "{n}"',
    '{c} = f"{{{c}}}_{{{c}}}"',
    'x = [i for i in range(3)]',
    'print("{n}")',
    'self.{v}.register_model("{n}", "m", annotations={{"f1_score": 1}})',
    'self.{v} = Asset()',
    'prj.peek_model("{n}")',
    'self.prj = prj',
    'print(self.prj.project, self.prj.branch, Asset)',
    'self.prj.publish_event("{n}")',
    'self.train_data = load_model(self.prj)',
    '# register_data("{n}") in a comment',
    'current.checkpoint.save()',
    'current.checkpoint.load()',
    'self.best = current.checkpoint.save()',
    'current.model.load(self.best)',
]
HEADERS = ["for epoch in range(3):", "while x:", "def f(self):", "class C:", "if x:",
           "@checkpoint\n{i}@step\n{i}def train(self):", "@step\n{i}def s(self):"]


def generated_module(seed: int) -> str:
    import random

    rng = random.Random(seed)
    names, variables, constants = ["a_b", "prod_x", "Bad", "fraud_model"], ["go", "st", "p"], \
        ["K", "N"]
    lines = [rng.choice(["from flowpolicy import Asset", "import os", ""])]
    # Half the modules only name the receivers (and checkpoints): the prefilter skips them.
    snippets = SNIPPETS if rng.random() < 0.5 else [
        snippet for snippet in SNIPPETS if not could_call_registry(snippet.encode())]
    indent = 0
    for _ in range(rng.randint(5, 40)):
        roll = rng.random()
        pad = "    " * indent
        if roll < 0.15:
            lines.append(pad + rng.choice(HEADERS).format(i=pad))
            indent += 1
        elif roll < 0.25 and indent:
            lines.append(pad + "pass")
            indent -= 1
        else:
            lines.append(pad + rng.choice(snippets).format(
                n=rng.choice(names), v=rng.choice(variables), v2=rng.choice(variables),
                c=rng.choice(constants)))
    lines.append("    " * indent + "pass")
    return "\n".join(lines) + "\n"


def test_the_prefilter_never_changes_the_findings():
    """Recall: linting with the prefilter gives exactly the findings of parsing every file,
    over generated modules (many of which the prefilter skips), the rule fixtures and
    metaflow's own source. The generator keeps to valid Python: FPL900 for a skipped file is
    the one documented difference."""
    import metaflow

    contexts = [fixture_context(), RuleContext(default_naming())]
    sources = [(f"gen{seed}.py", generated_module(seed).encode()) for seed in range(400)]
    sources += [(str(path), path.read_bytes()) for path in sorted(FIXTURES.glob("FPL*.py"))]
    sources += [(str(path), path.read_bytes())
                for path in sorted(Path(metaflow.__file__).parent.rglob("*.py"))[:120]]
    skipped = flagged = 0
    for noqa in (False, True):
        for context in contexts:
            config = LintConfig(scopes=(Scope("", context),), report_unused_noqa=noqa)
            for path, data in sources:
                filtered, parsed = lint_source(data, path, config)
                assert filtered == lint_parsed(data, path, config), (path, data.decode())
                skipped += not parsed
                flagged += bool(filtered)
    assert skipped > 500 and flagged > 500  # both sides of the prefilter were exercised


def test_the_prefilter_keys_on_calls_not_on_receivers():
    assert not could_call_registry(b"self.prj = prj\nprint(self.prj.branch, Asset)\n")
    assert not could_call_registry(b"self.train_data = load_model(self.prj)\n")
    assert not could_call_registry(b"return self._get_data(task.register_model)\n")  # no receiver
    assert could_call_registry(b"prj.peek_model('x')\n")
    from flowpolicy.lint.callsites import METHODS, method_spec

    for name in (*METHODS, "peek_model", "consume_data", "get_external_data",
                 "register_external_model_asset", "delete_model_asset_instances"):
        assert method_spec(name) is not None, name
        assert could_call_registry(f"x = prj\nx.{name}('a_b')\n".encode()), name
    for name in ("load_data", "train_model", "list_data_assets"):
        assert method_spec(name) is None, name
    assert could_call_registry(b"from .assets import promote_assets\n")
    # Identifiers are NFKC-folded by the parser: a fullwidth letter is the same name.
    source = "self.prj.\uff52egister_data('prod_x', 'df')\n".encode()
    assert could_call_registry(source)
    assert [s.api for s in find_call_sites(ast.parse(source))] == ["register_data"]


def test_the_prefilter_reads_a_cookie_naming_a_non_text_codec_as_utf8():
    # Non-ASCII bytes send the prefilter to decode the file in its cookie's codec; one that
    # is not a text encoding (rot13) must fall back to UTF-8, not escape as a LookupError.
    data = b'# coding: rot13\nx = "\xe9"\n'
    config = LintConfig(scopes=(Scope("", RuleContext(default_naming())),))
    assert not could_call_registry(data)
    assert lint_source(data, "rot.py", config) == ([], False)


def test_walk_skips_excluded_and_default_folders_but_not_named_files(tmp_path, monkeypatch):
    for rel in ("src/a.py", "src/gen/b.py", ".venv/c.py", "build/d.py", "node_modules/e.py",
                "src/notes.txt", "script"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text('self.prj.get_data("prod_x")\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    run = prepare(LintRequest(paths=(".",), exclude=("src/gen",)))
    assert run.files == ["src/a.py"]
    run = prepare(LintRequest(paths=("script", "build/d.py")))
    assert run.files == ["script", "build/d.py"]
    assert [f.path for f in run.findings()] == ["script", "build/d.py"]


def test_lint_and_policy_discovery_skip_the_same_folders(tmp_path, monkeypatch):
    from flowpolicy.lint.discovery import discover_policy_files
    from flowpolicy.policy.loader import find_policy_files

    for folder in ("src", "build", ".venv", "site-packages", "x.egg-info", "node_modules"):
        (tmp_path / folder / "policies").mkdir(parents=True)
        (tmp_path / folder / "policies" / "p.yaml").write_text("version: 1\nproject: p\n")
        (tmp_path / folder / "flow.py").write_text('self.prj.get_data("prod_x")\n')
    monkeypatch.chdir(tmp_path)
    assert find_policy_files(["."]) == [Path("src/policies/p.yaml")]
    assert discover_policy_files(tmp_path) == [tmp_path / "src" / "policies" / "p.yaml"]
    assert prepare(LintRequest(paths=(".",), policies=(str(FIXTURES / "policy.yaml"),))).files \
        == ["src/flow.py"]


def test_checkpoint_rules_on_the_example_and_the_epoch_registering_flow():
    """The example's @checkpoint training flow registers once, after its loop: clean. The
    run-time guard's test flow registers every epoch: FPL007 at that call."""
    example = REPO / "examples" / "fraud_detection"
    policy = str(example / "policies" / "fraud.yaml")
    run = prepare(LintRequest(paths=(str(example / "train_flow.py"),), policies=(policy,)))
    assert list(run.findings()) == [] and run.stats.parsed == 1
    flow = REPO / "tests" / "runtime_flows" / "epoch_registering_flow.py"
    run = prepare(LintRequest(paths=(str(flow),), policies=(policy,),
                              select=("FPL007", "FPL008", "FPL009", "FPL010")))
    assert [(f.line, f.code) for f in run.findings()] == [(20, "FPL007")]


def test_partly_known_names_match_declared_names_in_linear_time(tmp_path):
    # Fourteen dynamic parts against a 63-character declared name that none of them can
    # match: a backtracking regex tries every split of the name (minutes); RE2 does not.
    from flowpolicy.lint.discovery import context_for_policy

    declared = "a" * 62 + "b"
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\nproject: demo_project\n"
        "naming: {pattern: '^[a-z][a-z0-9_]{2,62}$', declared_only: true}\n"
        f"assets: {{{declared}: {{type: data}}}}\n", encoding="utf-8")
    config = LintConfig(scopes=(Scope("", context_for_policy(load_policy(policy))),),
                        select=("FPL003",))
    name = "a".join("{x}" for _ in range(14)) + "c"
    source = f'self.prj.register_data(f"{name}", "df")\n'
    # in a subprocess, so the old behaviour is bounded by its timeout
    result = subprocess.run(
        [sys.executable, "-c",
         "import pickle, sys; from flowpolicy.lint.engine import lint_source; "
         "config = pickle.loads(sys.stdin.buffer.read()); "
         f"print([f.code for f in lint_source({source.encode()!r}, 'f.py', config)[0]])"],
        input=pickle.dumps(config), capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().strip() == "['FPL003']"
