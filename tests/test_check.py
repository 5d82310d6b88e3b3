"""``flowpolicy check`` against a registry built by the fraud example's real flows, then
broken the way it breaks in practice: a threshold raised after promotion, the champion tag
moved by hand, an instance registered straight onto prod, a stale or missing drift report,
an undeclared asset, a stale generated flow, a bad asset name in code, an invalid policy.

The check runs in-process (``api.check``) for most cases and as the ``flowpolicy`` CLI in a
subprocess for a few, to prove the wiring and exit codes. Every JSON report is validated
against ``schemas/check-report.schema.json``.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jsonschema
import pytest
from test_check_support import PROJECT, REPO_ROOT, Project

from flowpolicy import Asset, api
from flowpolicy.errors import FlowpolicyError, RegistryError

pytestmark = pytest.mark.flows

SCHEMA = json.loads((REPO_ROOT / "schemas" / "check-report.schema.json").read_text())


@pytest.fixture
def broken(healthy, tmp_path) -> Project:
    """A private copy of the healthy project and registry to break."""
    return healthy.copy(tmp_path)


def check(project: Project, policy: Path | None = None, **request):
    request.setdefault("static", False)
    report = api.check(api.CheckRequest(
        policies=(str(policy or project.policy),), registry=project.registry,
        metaflow_root=str(project.datastore), **request))
    jsonschema.validate(report.to_dict(), SCHEMA)
    return report


def failures(report, check_id: str) -> list:
    return [r for r in report.results if r.code == check_id and r.severity == "error"]


def edited_policy(project: Project, old: str, new: str) -> Path:
    text = project.policy.read_text()
    assert old in text
    project.policy.write_text(text.replace(old, new))
    return project.policy


def asset(project: Project, branch: str) -> Asset:
    return Asset(project=PROJECT, branch=branch, registry=project.registry,
                 entity_ref={"entity_kind": "user", "entity_id": "alice"})


# -- healthy ---------------------------------------------------------------------------------


def test_healthy_registry_holds_cli_text_and_json(broken):
    text = broken.cli("check")
    assert text.returncode == 0, text.stdout + text.stderr
    assert "flowpolicy check: all hold" in text.stdout
    for section in ("policy", "compile", "lint", "live"):
        assert f"\n{section:<8} pass" in text.stdout

    done = broken.cli("check", "--format", "json", "--branch", "staging", "--branch", "prod")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    jsonschema.validate(report, SCHEMA)
    assert report["ok"] and report["exit_code"] == 0
    assert report["branches"] == ["staging", "prod"]
    live = {(r["check"], r["branch"]): r for r in report["sections"][3]["results"]}
    assert live[("live.gate", "prod")]["instance"] == "v1"
    assert live[("live.gate", "prod")]["evidence"]["alias"] == "production"
    assert live[("live.lineage", "prod")]["evidence"]["promoted_from"] == "staging/v1"
    assert set(live[("live.lineage", "prod")]["evidence"]["judged_under"]) == {
        "quality", "champion"}
    assert live[("live.champion.tag", "staging")]["status"] == "pass"
    assert all(r["status"] == "pass" for r in live.values())


def test_healthy_registry_every_live_check_passes_in_process(broken):
    report = check(broken)
    assert report.exit_code == 0
    seen = {(r.code, r.branch) for r in report.results}
    assert {("live.gate", "staging"), ("live.gate", "prod"), ("live.lineage", "staging"),
            ("live.lineage", "prod"), ("live.champion.count", "staging"),
            ("live.champion.tag", "staging"), ("live.drift.report", "dev")} <= seen
    assert not [r for r in report.results if r.severity != "pass"]


# -- live breakages --------------------------------------------------------------------------


def test_threshold_raised_after_promotion_fails_live_gate(broken):
    policy = edited_policy(broken, "{metric: f1_score, min: 0.8}", "{metric: f1_score, min: 0.99}")
    report = check(broken, policy)
    assert report.exit_code == 1
    failed = failures(report, "live.gate")
    assert {(r.branch, r.instance, r.rule, r.evidence["alias"]) for r in failed} == {
        ("staging", "v1", "quality", "candidate"), ("prod", "v1", "quality", "production")}
    for result in failed:
        assert result.asset == "fraud_model"
        assert "fails gate quality under the current policy" in result.message
        assert "is below the minimum 0.99" in result.message
        assert result.evidence["verdict"]["checks"][0]["min"] == 0.99
    # the gate results the promotions rest on were judged under 0.8: they no longer count,
    # and the promoted instances, judged again under 0.99, fail; the policy change is said
    lineage = failures(report, "live.lineage")
    assert {(r.branch, r.instance) for r in lineage} == {("staging", "v1"), ("prod", "v1")}
    for result in lineage:
        assert "gate quality fails on fraud_model v1 judged again under the policy's " \
               "thresholds" in result.message
        assert "it was judged under f1_score >= 0.8, the policy's are f1_score >= 0.99" in (
            result.message)
    warned = [r for r in report.results if r.code == "live.lineage.policy_hash"]
    assert {r.branch for r in warned} == {"staging", "prod"}
    assert all(r.severity == "warning" for r in warned)


def test_threshold_lowered_after_promotion_still_holds_judged_again(broken):
    policy = edited_policy(broken, "{metric: f1_score, min: 0.8}", "{metric: f1_score, min: 0.5}")
    report = check(broken, policy, branches=("staging",))
    assert report.exit_code == 0, [r.message for r in report.failures]
    [lineage] = [r for r in report.results if r.code == "live.lineage"]
    assert "gate quality passes on fraud_model v1 judged again under the policy's " \
           "thresholds" in lineage.message


def test_gate_bypassed_by_a_threshold_override_fails_lineage(healthy, tmp_path):
    """The bypass, end to end on the real flows: a weak model passes a gate run whose
    threshold was overridden, and gets promoted on that verdict (as the promotion flow used
    to; it now refuses). check must not say the gate passed."""
    from flowpolicy.runtime.promote import promote_assets

    project = healthy.copy(tmp_path, datastore=True)
    weak = asset(project, "dev").register_model_asset(
        "fraud_model", annotations={"f1_score": "0.5", "training_run_id": "manual"})["id"]
    project.run_flows(("dev", "flows/quality_gate.py",
                       ("--instance", weak, "--min_f1_score", "0.1")))
    [record] = asset(project, "dev").evidence("fraud_model", weak, kind="gate")
    assert record["passed"] is True and record["details"]["under_policy"] is False
    promote_assets(PROJECT, "dev", "staging", kinds=["models"], asset="fraud_model",
                   instance=weak, with_aliases=False, registry=project.registry)

    report = check(project, branches=("staging",))
    assert report.exit_code == 1
    [result] = failures(report, "live.lineage")
    assert result.evidence["promoted_from"] == f"dev/{weak}"
    assert (f"gate quality fails on fraud_model {weak} judged again under the policy's "
            "thresholds: f1_score = 0.5 is below the minimum 0.8") in result.message
    assert "judged under f1_score >= 0.1 in a what-if run" in result.message


@pytest.mark.parametrize(("edit", "check_id", "message"), [
    ("moved", "live.champion.tag",
     "does not carry the 'champion:staging' tag; tagged instead: FraudTrainingFlow/{other}"),
    ("duplicated", "live.champion.count",
     "2 runs of FraudTrainingFlow carry the 'champion:staging' tag"),
    ("removed", "live.champion.count",
     "0 runs of FraudTrainingFlow carry the 'champion:staging' tag"),
    ("unscoped", "live.champion.tag",
     "does not carry the 'champion:staging' tag (it carries the unscoped 'champion' tag"),
])
def test_champion_tag_edited_by_hand(healthy, tmp_path, edit, check_id, message):
    broken = healthy.copy(tmp_path, datastore=True)
    champion, other = _training_runs(broken)
    add = f"Run('FraudTrainingFlow/{other}').add_tag('champion:staging')\n"
    remove = f"Run('FraudTrainingFlow/{champion}').remove_tag('champion:staging')\n"
    # the tag flows compiled before champion tags named their branch wrote
    unscoped = f"Run('FraudTrainingFlow/{champion}').replace_tag('champion:staging', 'champion')\n"
    broken.metaflow({"moved": add + remove, "duplicated": add, "removed": remove,
                     "unscoped": unscoped}[edit])

    report = check(broken, branches=("staging",))
    assert report.exit_code == 1
    failed = failures(report, check_id)
    assert len(failed) == 1
    result = failed[0]
    assert (result.asset, result.branch, result.instance, result.rule) == (
        "fraud_model", "staging", "v1", "champion")
    assert message.format(other=other) in result.message
    assert result.evidence["training_run"] == f"FraudTrainingFlow/{champion}"


def test_cli_reports_moved_champion_tag(healthy, tmp_path):
    broken = healthy.copy(tmp_path, datastore=True)
    champion, other = _training_runs(broken)
    broken.metaflow(f"Run('FraudTrainingFlow/{other}').add_tag('champion:staging')\n"
                    f"Run('FraudTrainingFlow/{champion}').remove_tag('champion:staging')\n")
    done = broken.cli("check", "--no-static", "--branch", "staging")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAIL live.champion.tag" in done.stdout
    assert f"tagged instead: FraudTrainingFlow/{other}" in done.stdout
    assert "flowpolicy check: FAILED" in done.stdout


def test_champions_of_three_branches_each_keep_their_branch_tag(healthy, tmp_path):
    """Champion evaluations on dev and prod (real flow runs) leave staging's champion tag
    alone: the dev champion was trained by the other training run, the prod champion (the
    promoted copy of staging's) by the same run as staging's, which then carries both."""
    project = healthy.copy(tmp_path, datastore=True)
    staging_run, other = _training_runs(project)
    project.run_flows(("dev", "flows/fraud_model_champion.py", ("--candidate", "v2")),
                      ("prod", "flows/fraud_model_champion.py", ("--candidate", "v1")))
    tags = json.loads(project.metaflow(
        "import json\nprint(json.dumps({r.id: sorted(t for t in r.user_tags "
        "if t.startswith('champion')) for r in Flow('FraudTrainingFlow')}))"))
    assert tags == {staging_run: ["champion:prod", "champion:staging"], other: ["champion:dev"]}

    report = check(project)
    assert report.exit_code == 0, [r.message for r in report.results if r.severity != "pass"]
    champion = {(r.code, r.branch): r for r in report.results
                if r.code.startswith("live.champion")}
    assert {key: r.severity for key, r in champion.items()} == {
        (check_id, branch): "pass" for check_id in ("live.champion.count", "live.champion.tag")
        for branch in ("dev", "staging", "prod")}
    assert champion[("live.champion.tag", "dev")].evidence["tagged_runs"] == [
        f"FraudTrainingFlow/{other}"]
    for branch in ("staging", "prod"):
        evidence = champion[("live.champion.tag", branch)].evidence
        assert evidence["tag"] == f"champion:{branch}"
        assert evidence["tagged_runs"] == [f"FraudTrainingFlow/{staging_run}"]


def test_champion_run_unknown_to_metaflow_is_one_failure(broken, tmp_path):
    (tmp_path / "elsewhere" / ".metaflow").mkdir(parents=True)
    elsewhere = Project(broken.dir, tmp_path / "elsewhere", broken.registry_file)
    report = check(elsewhere, branches=("staging",))
    assert report.exit_code == 1
    [result] = [r for r in report.results if r.severity == "error"]
    assert result.code == "live.champion.tag"
    assert "which Metaflow does not know" in result.message


def _training_runs(project: Project) -> tuple[str, str]:
    """(champion run id, the other training run id), from the registry and Metaflow."""
    champion = asset(project, "staging").peek_model_asset("fraud_model", "@champion")
    champion_run = champion["model_properties"]["annotations"]["training_run_id"]
    runs = project.metaflow("print(' '.join(r.id for r in Flow('FraudTrainingFlow')))").split()
    others = [r for r in runs if r != champion_run]
    assert len(others) == 1 and champion_run in runs
    return champion_run, others[0]


def test_instance_registered_straight_onto_prod_fails_lineage(broken):
    asset(broken, "prod").register_model_asset(
        "fraud_model", annotations={"f1_score": 0.97, "training_run_id": "manual"})
    report = check(broken)
    assert report.exit_code == 1
    failed = failures(report, "live.lineage")
    assert [(r.asset, r.branch, r.instance) for r in failed] == [("fraud_model", "prod", "v2")]
    assert "fraud_model v2 on prod was not promoted" in failed[0].message
    assert "only along staging -> prod" in failed[0].message
    assert failed[0].evidence["created_by"] == {"entity_kind": "user", "entity_id": "alice"}
    # @production still points at the promoted v1, which still passes its gate
    assert not failures(report, "live.gate")


def test_instance_without_required_annotations_breaks_the_asset_contract(broken):
    contract = [r for r in check(broken).results if r.code == "live.annotations"]
    assert contract and {r.severity for r in contract} == {"pass"}
    assert {(r.asset, r.branch) for r in contract} >= {("fraud_model", "dev"),
                                                       ("fraud_features", "dev")}

    ref = asset(broken, "dev").register_model_asset(
        "fraud_model", kind="onnx", annotations={"f1_score": 0.91, "training_run_id": " "})
    report = check(broken, branches=("dev",))
    assert report.exit_code == 1
    [result] = failures(report, "live.annotations")
    assert (result.asset, result.branch, result.instance) == ("fraud_model", "dev", ref["id"])
    assert "lacks required annotation(s) training_run_id" in result.message
    assert result.evidence["missing"] == ["training_run_id"]


def test_promotion_claimed_along_an_undeclared_edge_fails_lineage(broken):
    asset(broken, "prod").register_model_asset(
        "fraud_model", annotations={"f1_score": 0.97, "promoted_from_branch": "dev",
                                    "promoted_from_instance": "v1"})
    failed = failures(check(broken, branches=("prod",)), "live.lineage")
    assert [(r.branch, r.instance, r.rule) for r in failed] == [("prod", "v2", "dev->prod")]
    assert "no promotion edge dev -> prod is declared" in failed[0].message


def test_drift_report_older_than_max_age(broken):
    policy = edited_policy(broken, "events: {high: retrain_required}",
                           "events: {high: retrain_required}\n    max_age: 1d")
    fresh = check(broken, policy)
    assert [r.severity for r in fresh.results if r.code == "live.drift.age"] == ["pass"]

    later = datetime.now(timezone.utc) + timedelta(days=2)
    report = check(broken, policy, now=later)
    assert report.exit_code == 1
    [result] = failures(report, "live.drift.age")
    assert (result.asset, result.branch, result.instance) == ("fraud_features", "dev", "v2")
    assert "older than max_age 1.0d" in result.message
    assert result.evidence["max_age_seconds"] == 86400
    assert result.evidence["age_seconds"] > 86400
    assert result.evidence["report"]["level"] == "high"


def test_data_never_drift_checked_fails(broken):
    for _ in range(2):
        asset(broken, "staging").register_data_asset("fraud_features", kind="parquet")
    [result] = failures(check(broken), "live.drift.report")
    assert (result.asset, result.branch, result.instance) == ("fraud_features", "staging", "v2")
    assert "no drift report" in result.message


def test_a_changed_column_level_makes_earlier_drift_reports_not_count(healthy, tmp_path):
    """A drift report judged under a column's own level counts while the policy keeps that
    level, and stops counting once the policy changes it (the run's levels are unchanged)."""
    project = healthy.copy(tmp_path, datastore=True)
    policy = edited_policy(project, "events: {high: retrain_required}",
                           "events: {high: retrain_required}\n"
                           "    column_settings: {amount: {levels: {high: 0.9}}}")
    compiled = project.cli("compile", str(policy))
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    project.run_flows(("dev", "flows/fraud_features_drift.py",
                       ("--current", "v2", "--reference", "v1")))
    counted = [r for r in check(project).results
               if (r.code, r.branch) == ("live.drift.report", "dev")]
    assert [r.severity for r in counted] == ["pass"]

    changed = edited_policy(project, "high: 0.9", "high: 0.5")
    report = check(project, changed)
    assert report.exit_code == 1
    [result] = failures(report, "live.drift.report")
    assert (result.asset, result.branch) == ("fraud_features", "dev")
    assert result.message.endswith(
        "does not count: it was judged under normal >= 0, elevated >= 0.05, high >= 0.1; "
        "column amount: ks, high >= 0.9, the policy's are normal >= 0, elevated >= 0.05, "
        "high >= 0.1; column amount: ks, high >= 0.5")


def test_undeclared_and_mistyped_assets_fail_when_declared_only(broken):
    asset(broken, "dev").register_data_asset("fraud_labels", kind="parquet")
    asset(broken, "dev").register_model_asset("fraud_features", kind="onnx")
    assert not [r for r in check(broken).results if r.code == "live.declared"]

    policy = edited_policy(broken, "branches: [dev, staging, prod]",
                           "naming: {declared_only: true}\nbranches: [dev, staging, prod]")
    failed = failures(check(broken, policy), "live.declared")
    messages = {(r.asset, r.branch): r.message for r in failed}
    assert set(messages) == {("fraud_labels", "dev"), ("fraud_features", "dev")}
    assert "not declared in the policy" in messages[("fraud_labels", "dev")]
    assert "registered as a model asset" in messages[("fraud_features", "dev")]


def test_project_other_than_obproject_toml_is_not_all_hold(broken):
    """obproject.toml names fraud_detection, the policy another project: no live check can
    run, and zero checks is not a pass."""
    policy = edited_policy(broken, "project: fraud_detection", "project: fraud_renamed")
    report = check(broken, policy)
    assert report.exit_code == 1
    [coverage] = failures(report, "live.coverage")
    assert coverage.message == (
        "no live check ran: the registry holds no assets of project fraud_renamed on dev, "
        "staging, prod; it holds project(s) fraud_detection")
    [project] = failures(report, "policy.project")
    assert "names project 'fraud_detection' but the policy is for 'fraud_renamed'" in (
        project.message)

    done = broken.cli("check", "--no-static")
    assert done.returncode == 1 and "all hold" not in done.stdout
    assert "FAIL live.coverage" in done.stdout and "flowpolicy check: FAILED" in done.stdout


def test_assets_only_on_undeclared_branches_are_reported_not_passed(tmp_path):
    """Flows run without a branch land on Metaflow's user branch, which the policy does not
    declare: nothing there is checked, and the check says so."""
    project = Project(tmp_path / "project", tmp_path / "metaflow", tmp_path / "registry.db")
    project.dir.mkdir(parents=True)
    (project.dir / "policies").mkdir()
    project.policy.write_text((REPO_ROOT / "examples" / "fraud_detection" / "policies" /
                               "fraud.yaml").read_text())
    scratch = asset(project, "user_tester")
    scratch.register_model_asset("fraud_model", annotations={"f1_score": 0.9})
    scratch.register_data_asset("fraud_features")
    report = check(project)
    assert report.exit_code == 1
    [warned] = [r for r in report.results if r.code == "live.branches"]
    assert (warned.severity, warned.branch) == ("warning", "user_tester")
    assert warned.message.startswith(
        "2 asset(s) of project fraud_detection are on branch user_tester (fraud_features, "
        "fraud_model), which the policy does not declare")
    [coverage] = failures(report, "live.coverage")
    assert "the project's assets are on user_tester, which the policy does not declare" in (
        coverage.message)


def test_assets_on_an_undeclared_branch_beside_checked_ones_are_a_warning(broken):
    asset(broken, "user_alice").register_model_asset("fraud_model", annotations={"f1_score": 1})
    report = check(broken)
    assert report.exit_code == 0, [r.message for r in report.failures]
    assert [r.branch for r in report.results if r.code == "live.branches"] == ["user_alice"]
    # a branch chosen with --branch is what was asked for: the others are not reported
    assert not [r for r in check(broken, branches=("prod",)).results
                if r.code == "live.branches"]


def test_every_check_id_is_in_the_report_schema():
    from flowpolicy.check import CHECK_IDS

    enum = SCHEMA["$defs"]["result"]["properties"]["check"]["enum"]
    assert sorted(enum) == sorted(CHECK_IDS)


def test_branch_option_limits_live_checks(broken):
    report = check(broken, branches=("Prod",))
    assert report.branches == ("prod",)
    assert {r.branch for r in report.section("live").results} <= {"prod", None}


# -- static breakages ------------------------------------------------------------------------


def test_stale_generated_flow_and_bad_asset_name_fail_static_sections(broken):
    flow = broken.dir / "flows" / "quality_gate.py"
    flow.write_text(flow.read_text().replace("default=0.8", "default=0.5"))
    (broken.dir / "score.py").write_text(
        "class Scoring:\n"
        "    def start(self):\n"
        "        self.prj.register_data('prod_scores', 'scores')\n")
    report = check(broken, static=True, live=False)
    assert report.exit_code == 1
    assert report.section("live").status == "skipped"
    [stale] = failures(report, "compile.current")
    assert stale.rule == "quality_gate.py"
    assert "default=0.5" in stale.evidence["diff"]
    findings = failures(report, "lint.clean")
    assert findings and all(f.evidence["path"].endswith("score.py") for f in findings)
    assert "FPL001" in {f.rule for f in findings}  # an environment word in an asset name


def test_invalid_policy_is_exit_2_with_the_diagnostics(broken):
    policy = edited_policy(broken, "asset: fraud_model", "asset: no_such_model")
    report = check(broken, policy, static=True)
    assert report.exit_code == 2
    assert [s.status for s in report.sections] == ["fail", "skipped", "skipped", "skipped"]
    diagnostics = failures(report, "policy.valid")
    assert any("no_such_model" in d.message for d in diagnostics)
    assert all(d.evidence["line"] > 0 and d.rule.startswith("FP") for d in diagnostics)

    done = broken.cli("check", "--format", "json")
    assert done.returncode == 2
    jsonschema.validate(json.loads(done.stdout), SCHEMA)


def test_missing_registry_or_path_or_branch_is_invalid_input(broken, tmp_path):
    missing = f"sqlite:///{tmp_path / 'nowhere' / 'registry.db'}"
    with pytest.raises(RegistryError, match="no registry at"):
        api.check(api.CheckRequest(policies=(str(broken.policy),), registry=missing,
                                   static=False))
    assert not (tmp_path / "nowhere").exists()
    with pytest.raises(FlowpolicyError, match="not declared"):
        check(broken, branches=("qa",))
    with pytest.raises(FlowpolicyError, match="no such file"):
        check(broken, tmp_path / "missing.yaml")

    done = broken.cli("check", "--registry", missing)
    assert done.returncode == 2
    assert "no registry at" in done.stderr and "Traceback" not in done.stderr
