"""``flowpolicy graph``: golden Mermaid and DOT output for the example policy, parsed by the
real tools (the official Mermaid CLI driving Debian's Chromium, and Graphviz's ``dot``), the
escaping of hostile text proven on both and by property, and the alias holders read from a
real SQLite registry."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowpolicy.compile.flows import source_label
from flowpolicy.graph import (
    BranchNode,
    PromotionArrow,
    PromotionGraph,
    build_graph,
    dot_text,
    mermaid_text,
    printable,
    to_dot,
    to_mermaid,
)
from flowpolicy.policy.loader import load_policy, load_policy_text
from flowpolicy.registry import EntityRef, Scope, open_registry

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = REPO_ROOT / "examples" / "fraud_detection"
POLICY = EXAMPLE / "policies" / "fraud.yaml"
GOLDEN = REPO_ROOT / "tests" / "fixtures" / "graph"
ME = EntityRef("user", "tester")

#: Text that breaks a diagram written without escaping, one way or another.
HOSTILE = (
    'say "hi"', "a]-->b[", "x --> y", "#quot; and #35;", "%%{init: {'theme': 'dark'}}%%",
    "<script>alert(1)</script>", "`**markdown**`", "pipe|d|", "{curly}", "end",
    "back\\slash \\N \\G \\n", "two\nlines", "tab\there", "&amp; &lt;", "ünïcödé ≥ 0.8",
    "line\u2028separator", "subgraph", "click b0 call alert()", "style b0 fill:#f00",
)


def example_graph(registry=None) -> PromotionGraph:
    policy = load_policy(POLICY)
    return build_graph(policy, source_label(policy), registry)


def cli(*args: str, cwd: Path = REPO_ROOT, env: dict | None = None):
    return subprocess.run([sys.executable, "-m", "flowpolicy", "graph", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def hostile_graph() -> PromotionGraph:
    nodes = tuple(BranchNode(f"branch{i}", (text, f"holder {text}"))
                  for i, text in enumerate(HOSTILE))
    arrows = tuple(PromotionArrow(f"branch{i}", f"branch{i + 1}", (text, "sets @x"))
                   for i, text in enumerate(HOSTILE[:-1]))
    return PromotionGraph(HOSTILE[:3], nodes, arrows)


# -- golden output --------------------------------------------------------------------------


def test_cli_prints_the_golden_mermaid_and_dot_of_the_example():
    for fmt, golden in (("mermaid", "fraud.mmd"), ("dot", "fraud.dot")):
        done = cli(str(POLICY), "--format", fmt)
        assert done.returncode == 0, done.stderr
        assert done.stdout == (GOLDEN / golden).read_text(), fmt
        assert done.stderr == ""


def test_golden_files_are_what_the_api_renders():
    graph = example_graph()
    assert to_mermaid(graph) == (GOLDEN / "fraud.mmd").read_text()
    assert to_dot(graph) == (GOLDEN / "fraud.dot").read_text()


@pytest.mark.parametrize("readme", [REPO_ROOT / "README.md", EXAMPLE / "README.md"],
                         ids=["README", "example README"])
def test_readmes_embed_the_current_mermaid_graph(readme):
    blocks = re.findall(r"```mermaid\n(.*?)```", readme.read_text(), re.DOTALL)
    assert to_mermaid(example_graph()) in blocks, (
        f"{readme.name} does not embed the current graph; paste the output of "
        f"`flowpolicy graph {POLICY.relative_to(REPO_ROOT)}`")


def test_graph_shows_every_edge_with_its_gates_and_alias():
    lines = {(a.source, a.target): a.label for a in example_graph().arrows}
    assert lines[("dev", "staging")] == ("fraud_model", "gate quality: f1_score ≥ 0.8",
                                         "sets @candidate")
    assert lines[("staging", "prod")] == (
        "fraud_model", "gate quality: f1_score ≥ 0.8",
        "champion: maximize f1_score, by ≥ 0.02", "sets @production")


def test_edges_without_requirements_and_bounds_of_every_shape():
    policy = load_policy_text("""
version: 1
project: shapes
naming: {pattern: "^[a-z][a-z0-9_]*$"}  # one-letter names; the stock pattern wants three
branches: [a, b, c]
assets: {m: {type: model}, n: {type: model}}
gates:
  g: {asset: m, checks: [{metric: auc, min: 0.5, max: 0.99}, {metric: latency_ms, max: 50},
                         {metric: size, min: 0.00001}]}
champion: {m: {metric: loss, direction: minimize, min_improvement: 0.001}}
promotion:
  - {from: a, to: b, assets: [m, n], require: []}
  - {from: b, to: c, assets: [m], require: [g, champion], alias: live}
""")
    graph = build_graph(policy, "<string>")
    assert [n.name for n in graph.branches] == ["a", "b", "c"]
    assert graph.arrows[0].label == ("m, n", "no requirements", "sets @candidate")
    assert graph.arrows[1].label == (
        "m", "gate g: 0.5 ≤ auc ≤ 0.99; latency_ms ≤ 50; size ≥ 1e-05",
        "champion: minimize loss, by ≥ 0.001", "sets @live")


# -- the real parsers -----------------------------------------------------------------------


def mermaid_cli() -> str:
    """The official Mermaid CLI (``.ci/run`` installs it and sets MERMAID_CLI); it drives a
    browser, Debian's Chromium here (puppeteer's own download is not available)."""
    mmdc = os.environ.get("MERMAID_CLI") or shutil.which("mmdc")
    if not mmdc or not shutil.which("chromium"):
        pytest.skip("the Mermaid CLI (MERMAID_CLI or mmdc on PATH) and chromium are needed; "
                    ".ci/run installs both")
    return mmdc


def render_mermaid(text: str, tmp_path: Path) -> str:
    """SVG from the official Mermaid CLI; fails the test with its parse error."""
    config = tmp_path / "puppeteer.json"
    config.write_text(json.dumps({"executablePath": shutil.which("chromium"),
                                  "args": ["--no-sandbox", "--disable-gpu"]}))
    source, out = tmp_path / "graph.mmd", tmp_path / "graph.svg"
    source.write_text(text)
    done = subprocess.run([mermaid_cli(), "-p", str(config), "-i", str(source), "-o", str(out)],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    return out.read_text()


def render_dot(text: str) -> str:
    if not shutil.which("dot"):
        pytest.skip("Graphviz's dot is needed; .ci/run installs it")
    done = subprocess.run(["dot", "-Tsvg"], input=text, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and not done.stderr, done.stderr
    return done.stdout


def test_mermaid_cli_refuses_what_it_cannot_parse(tmp_path):
    """The parser check can fail: an unescaped quote in a label is a parse error."""
    mermaid_cli()
    with pytest.raises(AssertionError, match="Parse error"):
        render_mermaid('flowchart LR\n    b0["st"a"]\n', tmp_path)


def test_golden_mermaid_renders_with_the_official_cli(tmp_path):
    svg = render_mermaid((GOLDEN / "fraud.mmd").read_text(), tmp_path)
    text = html.unescape(re.sub(r"<[^>]+>", " ", svg))
    for expected in ("dev", "staging", "prod", "gate quality: f1_score ≥ 0.8", "sets @production"):
        assert expected in text


def test_golden_dot_renders_with_graphviz():
    svg = render_dot((GOLDEN / "fraud.dot").read_text())
    assert svg.count('class="node"') == 3 and svg.count('class="edge"') == 2


def svg_text(svg: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", re.sub(r"<br\s*/?>", "\n", svg)))


def test_hostile_text_stays_text_in_mermaid(tmp_path):
    graph = hostile_graph()
    svg = render_mermaid(to_mermaid(graph), tmp_path)
    # exactly the nodes and edges drawn: nothing was injected, nothing swallowed
    assert len(re.findall(r'<g class="node default"', svg)) == len(graph.branches)
    assert len(re.findall(r'<path [^>]*class="[^"]*flowchart-link', svg)) == len(graph.arrows)
    assert "<script" not in svg and "dark" not in svg.split("<style>")[0]
    shown = svg_text(svg)
    for text in HOSTILE:
        assert printable(text) in shown, text


def test_hostile_text_stays_text_in_dot():
    graph = hostile_graph()
    svg = render_dot(to_dot(graph))
    assert svg.count('class="node"') == len(graph.branches)
    assert svg.count('class="edge"') == len(graph.arrows)
    lines = set(svg_text(svg).splitlines())
    for text in HOSTILE:
        assert printable(text) in lines, text


# -- escaping, by property -------------------------------------------------------------------

_PLAIN = re.compile(r"(?:[A-Za-z0-9 _.,:;@/+=()\[\]'*!?-]|[^\x00-\x7f]|#\d+;)*")


@given(st.text())
def test_mermaid_text_is_plain_and_loses_nothing(text):
    escaped = mermaid_text(text)
    assert _PLAIN.fullmatch(escaped)
    assert '"' not in escaped and "%" not in escaped and "\n" not in escaped
    assert re.sub(r"#(\d+);", lambda m: chr(int(m.group(1))), escaped) == printable(text)


@given(st.text())
def test_dot_text_has_no_bare_quote_and_loses_nothing(text):
    escaped = dot_text(text)
    assert not re.search(r'(?<!\\)(?:\\\\)*"', escaped)
    assert not re.search(r"&(?!amp;)", escaped)
    assert "\n" not in escaped and "\r" not in escaped
    assert html.unescape(re.sub(r"\\(.)", r"\1", escaped)) == printable(text)


@given(st.text())
def test_printable_keeps_one_line_and_printable_text(text):
    shown = printable(text)
    assert len(shown.splitlines()) <= 1
    assert all(ch.isprintable() for ch in shown)
    if text.isprintable():
        assert shown == text


# -- with a registry --------------------------------------------------------------------------


@pytest.fixture
def registry_with_aliases(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    registry = open_registry(url)
    staging = Scope("fraud_detection", "staging", "model", "fraud_model")
    prod = Scope("fraud_detection", "prod", "model", "fraud_model")
    for _ in range(3):
        registry.register(staging, kind="artifact", created_by=ME)
    registry.set_alias(staging, "champion", "v2", by=ME)
    registry.set_alias(staging, "candidate", "v3", by=ME)
    registry.register(prod, kind="artifact", created_by=ME)
    registry.set_alias(prod, "production", "v1", by=ME)
    # a name registered by hand that no policy would accept
    hostile = Scope("fraud_detection", "prod", "data", 'x"]-->b9["pwned')
    registry.register(hostile, kind="artifact", created_by=ME)
    registry.set_alias(hostile, "latest.good", "v1", by=ME)
    registry.close()
    return url


def test_registry_adds_the_holder_of_each_alias(registry_with_aliases):
    registry = open_registry(registry_with_aliases, read_only=True)
    branches = example_graph(registry).branches
    # what starts which flow comes first (the fixtures show it); then the holders
    labels = {node.name: tuple(line for line in node.label if not line.startswith("on "))
              for node in branches}
    assert labels["dev"] == ("dev", "no aliases set")
    assert labels["staging"] == ("staging", "fraud_model @candidate v3",
                                 "fraud_model @champion v2")
    assert labels["prod"] == ("prod", 'x"]-->b9["pwned @latest.good v1',
                              "fraud_model @production v1")


def test_cli_registry_holders_render_and_injected_names_stay_text(registry_with_aliases,
                                                                  tmp_path):
    done = cli(str(POLICY), "--registry", registry_with_aliases)
    assert done.returncode == 0, done.stderr
    assert f"aliases as held in registry {registry_with_aliases}" in done.stdout
    svg = render_mermaid(done.stdout, tmp_path)
    assert len(re.findall(r'<g class="node default"', svg)) == 3
    assert 'x"]-->b9["pwned @latest.good v1' in svg_text(svg)
    dot = cli(str(POLICY), "--format", "dot", "--registry", registry_with_aliases)
    assert render_dot(dot.stdout).count('class="node"') == 3


def test_bare_registry_flag_uses_flowpolicy_registry(registry_with_aliases):
    done = cli(str(POLICY), "--registry", env={"FLOWPOLICY_REGISTRY": registry_with_aliases})
    assert done.returncode == 0, done.stderr
    assert "fraud_model @production v1" in done.stdout


def test_missing_registry_is_exit_2_and_creates_nothing(tmp_path):
    missing = tmp_path / "nothing.db"
    done = cli(str(POLICY), f"--registry=sqlite:///{missing}")
    assert done.returncode == 2 and "no registry at" in done.stderr
    assert "Traceback" not in done.stderr
    assert not missing.exists() and list(tmp_path.iterdir()) == []


def test_registry_without_the_project_says_so(tmp_path):
    url = f"sqlite:///{tmp_path / 'other.db'}"
    registry = open_registry(url)
    registry.register(Scope("other", "dev", "model", "m"), kind="artifact", created_by=ME)
    registry.close()
    done = cli(str(POLICY), "--registry", url)
    assert done.returncode == 0
    assert "holds no assets of project fraud_detection" in done.stderr


# -- input errors -----------------------------------------------------------------------------


def test_policy_given_as_registry_value_is_a_usage_error():
    done = cli("--registry", str(POLICY))
    assert done.returncode == 2 and "looks like a policy file" in done.stderr


def test_default_policy_is_the_one_under_policies(tmp_path):
    shutil.copytree(EXAMPLE / "policies", tmp_path / "policies")
    done = cli(cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("%% promotion graph of project fraud_detection")
    (tmp_path / "policies" / "second.yaml").write_text("version: 1\nproject: second\n")
    done = cli(cwd=tmp_path)
    assert done.returncode == 2 and "name the one to draw" in done.stderr


def test_nothing_to_draw_is_exit_1_and_no_edges_is_said(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("version: 1\nproject: nothing\n")
    done = cli(str(empty))
    assert done.returncode == 1 and "nothing to draw" in done.stderr and done.stdout == ""
    branches_only = tmp_path / "branches.yaml"
    branches_only.write_text("version: 1\nproject: some\nbranches: [dev, prod]\n")
    done = cli(str(branches_only))
    assert done.returncode == 0 and "declares no promotion edges" in done.stderr
    assert 'b1["prod"]' in done.stdout


def test_invalid_policy_is_exit_2_with_its_location(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nproject: Bad-Name\n")
    done = cli(str(bad))
    assert done.returncode == 2 and "bad.yaml:2:" in done.stderr
