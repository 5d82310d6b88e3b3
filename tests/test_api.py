"""The API layer and the report formats every command shares.

In-process through :mod:`flowpolicy.api` for what each call returns; as the ``flowpolicy``
CLI in subprocesses for the formats a CI job reads (SARIF validated against the OASIS
2.1.0 schema, GitHub workflow commands) and for what the command line is allowed to load.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from flowpolicy import Asset, api
from flowpolicy.errors import CompileError, RegistryError

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "fraud_detection"
INVALID = REPO / "tests" / "fixtures" / "policies" / "invalid" / "undeclared_asset.yaml"
SARIF_SCHEMA = json.loads(
    (REPO / "tests" / "fixtures" / "lint" / "sarif-schema-2.1.0.json").read_text())
COMMANDS = REPO / "engine" / "flowpolicy" / "commands"


def flowpolicy(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWPOLICY_")}
    return subprocess.run([sys.executable, "-m", "flowpolicy", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def project(tmp_path) -> Path:
    """A copy of the fraud example (policy, code, committed flows), without runs."""
    shutil.copytree(EXAMPLE, tmp_path / "fraud_detection",
                    ignore=shutil.ignore_patterns(".metaflow", ".flowpolicy", "__pycache__"))
    return tmp_path / "fraud_detection"


def line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


# -- validate ----------------------------------------------------------------------------------


def test_validate_in_process_returns_every_file_with_its_diagnostics(project):
    valid = project / "policies" / "fraud.yaml"
    report = api.validate(api.ValidateRequest(paths=(str(valid), str(INVALID))))
    assert report.exit_code == 1 and report.invalid == 1
    assert [f.policy is not None for f in report.files] == [True, False]
    assert [(d.code, d.line, d.col, d.json_path) for d in report.diagnostics] == [
        ("FP203", 8, 13, "$.gates.quality.asset"), ("FP203", 13, 27, "$.promotion[0].assets[1]")]
    assert report.to_dict()["files"][1]["diagnostics"][0]["path"] == str(INVALID)


def test_validate_sarif_validates_and_points_at_each_error(tmp_path):
    done = flowpolicy("validate", "--format", "sarif", str(INVALID), cwd=REPO)
    assert done.returncode == 1, done.stderr
    sarif = json.loads(done.stdout)
    jsonschema.Draft4Validator(SARIF_SCHEMA).validate(sarif)
    (run,) = sarif["runs"]
    rules = run["tool"]["driver"]["rules"]
    first = run["results"][0]
    assert rules[first["ruleIndex"]]["id"] == first["ruleId"] == "FP203"
    assert first["message"]["text"].startswith("$.gates.quality.asset: asset 'fraud_modle'")
    location = first["locations"][0]["physicalLocation"]
    assert location["artifactLocation"] == {
        "uri": "tests/fixtures/policies/invalid/undeclared_asset.yaml", "uriBaseId": "%SRCROOT%"}
    assert location["region"] == {"startLine": 8, "startColumn": 13}


def test_validate_github_annotates_each_error_line():
    done = flowpolicy("validate", "--format", "github", str(INVALID.relative_to(REPO)), cwd=REPO)
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        "::error file=tests/fixtures/policies/invalid/undeclared_asset.yaml,line=8,col=13,"
        "title=FP203::$.gates.quality.asset: asset 'fraud_modle' is not declared under assets "
        "(declared: fraud_model)",
        "::error file=tests/fixtures/policies/invalid/undeclared_asset.yaml,line=13,col=27,"
        "title=FP203::$.promotion[0].assets[1]: asset 'fraud_features' is not declared under "
        "assets (declared: fraud_model)",
    ]


# -- compile -----------------------------------------------------------------------------------


def test_compile_in_process_checks_writes_then_holds(project):
    flows = project / "flows"
    shutil.rmtree(flows)
    request = api.CompileRequest(paths=(str(project / "policies"),), check=True)
    missing = api.compile(request)
    assert missing.exit_code == 1 and len(missing.stale) == missing.flows == 4
    assert {Path(d.path).name for d in missing.stale} == {
        "quality_gate.py", "fraud_model_champion.py", "fraud_model_promotion.py",
        "fraud_features_drift.py"}
    assert not flows.exists()  # a check writes nothing

    written = api.compile(api.CompileRequest(paths=(str(project / "policies"),)))
    assert written.exit_code == 0 and sorted(p.name for p in written.changed) == sorted(
        p.name for p in flows.glob("*.py"))
    current = api.compile(request)
    assert (current.exit_code, current.stale) == (0, ())
    assert current.summary == "4 generated file(s) are current"


def test_compile_refuses_two_policies_writing_one_file(project, tmp_path):
    other = tmp_path / "other.yaml"
    other.write_text((project / "policies" / "fraud.yaml").read_text())
    with pytest.raises(CompileError, match="both generate"):
        api.compile(api.CompileRequest(paths=(str(project / "policies"), str(other)),
                                       output_dir=str(tmp_path / "out")))
    assert not (tmp_path / "out").exists()


# -- check -------------------------------------------------------------------------------------


def test_check_static_sarif_and_github_point_at_the_stale_flow(project):
    flow = project / "flows" / "quality_gate.py"
    flow.write_text(flow.read_text().replace("default=0.8", "default=0.5"))
    done = flowpolicy("check", "--no-live", "--format", "sarif", cwd=project)
    assert done.returncode == 1, done.stderr
    sarif = json.loads(done.stdout)
    jsonschema.Draft4Validator(SARIF_SCHEMA).validate(sarif)
    results = sarif["runs"][0]["results"]
    [stale] = [r for r in results if r["level"] == "error"]
    assert stale["ruleId"] == "compile.current"
    assert stale["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == (
        "flows/quality_gate.py")
    assert {r.get("kind") for r in results if r is not stale} == {"pass"}

    github = flowpolicy("check", "--no-live", "--format", "github", cwd=project)
    assert github.returncode == 1
    assert github.stdout == (
        f"::error file=flows/quality_gate.py,title=compile.current::{flow.as_posix()} is not "
        "what the policy compiles to now; run `flowpolicy compile`\n")


def test_live_results_are_located_at_the_rule_they_check(project, tmp_path):
    """A weak model behind @candidate on staging fails gate quality: the result points at
    the gate in the policy file, the missing champion at the champion rule."""
    registry = f"sqlite:///{tmp_path / 'registry.db'}"
    staging = Asset(project="fraud_detection", branch="staging", registry=registry,
                    entity_ref={"entity_kind": "user", "entity_id": "tester"})
    weak = staging.register_model_asset(
        "fraud_model", annotations={"f1_score": 0.5, "training_run_id": "manual"})["id"]
    staging.set_alias("fraud_model", "candidate", weak, reason="by hand", expected=None)
    policy = project / "policies" / "fraud.yaml"
    report = api.check(api.CheckRequest(policies=(str(policy),), registry=registry,
                                        static=False, branches=("staging",)))
    assert report.exit_code == 1
    where = {r.code: (r.path, r.line) for r in report.failures}
    assert where["live.gate"] == (str(policy), line_of(policy, "quality:"))
    # the rule under champion: is keyed by its asset, on the line after it
    assert where["live.champion.count"] == (str(policy), line_of(policy, "champion:") + 1)


def test_registry_info_copy_and_follow_in_process(tmp_path):
    """The registry commands as API calls: info names the backend and its rows, a copy is
    verified and refuses an empty source (exit 1), a follow yields the events so far first and
    ends when its time is up."""
    source = f"sqlite:///{tmp_path / 'source.db'}"
    dev = Asset(project="fraud_detection", branch="dev", registry=source,
                entity_ref={"entity_kind": "user", "entity_id": "tester"})
    dev.register_model_asset("fraud_model", annotations={"f1_score": 0.9})
    dev.publish_event("retrain_required", {"why": "drift"})

    info = api.registry_info(api.RegistryInfoRequest(registry=source))
    assert (info.exit_code, info.to_dict()["backend"]) == (0, "sqlite")
    assert info.to_dict()["rows"]["instances"] == 1 and "instances 1" in info.format_text()

    copy = api.registry_copy(api.RegistryCopyRequest(
        source=source, destination=f"sqlite:///{tmp_path / 'copy.db'}"))
    assert copy.exit_code == 0 and copy.to_dict()["rows"] == info.to_dict()["rows"]
    assert copy.format_text().startswith(f"copied {source} → sqlite:///")
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    Asset(project="p", branch="b", registry=empty).publish_event("n", None)
    with pytest.raises(RegistryError, match="--for takes a positive number"):
        api.events(api.EventsRequest(registry=empty, follow_for=1))
    followed = api.follow_events(api.EventsRequest(registry=source, follow_for=0.2))
    batches = list(followed.batches)
    assert followed.registry == source
    assert [e["name"] for e in batches[0]] == ["model.fraud_model.new_instance",
                                              "retrain_required"]
    assert all(batch == () for batch in batches[1:])
    with sqlite3.connect(tmp_path / "empty.db") as conn:  # its tables there, all empty
        conn.execute("DELETE FROM events")
    with pytest.raises(RegistryError, match="nothing to copy") as refused:
        api.registry_copy(api.RegistryCopyRequest(source=empty, destination=source))
    assert refused.value.exit_code == 1


# -- what the command line is ------------------------------------------------------------------


def _flowpolicy_imports(path: Path) -> set[str]:
    """The flowpolicy modules ``path`` imports (``from flowpolicy import api``: the api)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "flowpolicy":
            found.update(f"flowpolicy.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] == "flowpolicy"}


@pytest.mark.parametrize("module", sorted(p.name for p in COMMANDS.glob("*.py")))
def test_commands_only_reach_flowpolicy_through_the_api(module):
    """A command parses, calls :mod:`flowpolicy.api` and prints: it imports no other command
    and no module that does the work."""
    allowed = {"flowpolicy.api", "flowpolicy.commands", "flowpolicy.errors",
               "flowpolicy.fileio", "flowpolicy.formats"}
    assert _flowpolicy_imports(COMMANDS / module) <= allowed


def test_help_loads_no_command_s_work():
    """``flowpolicy --help`` builds every command's parser without importing what the
    commands run (the API imports that per call)."""
    script = ("import sys\nfrom flowpolicy.cli import build_parser\nbuild_parser()\n"
              "print(' '.join(sorted(m for m in sys.modules if m.startswith('flowpolicy'))))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True)
    loaded = set(done.stdout.split())
    assert "flowpolicy.api" in loaded
    for heavy in ("flowpolicy.check", "flowpolicy.lint", "flowpolicy.compile",
                  "flowpolicy.policy.loader", "flowpolicy.registry", "flowpolicy.report",
                  "flowpolicy.demo"):
        assert heavy not in loaded, heavy
