"""``flowpolicy plan`` on the registry built by the fraud example's real flows: what each
generated flow would decide now, and proof that planning writes nothing (the registry
file's bytes are unchanged, no lineage is recorded)."""

from __future__ import annotations

import json

import jsonschema
import pytest
from test_check_support import (
    PROJECT,
    REPO_ROOT,
    Project,
    downgrade_to_schema_1,
    file_digest,
)

from flowpolicy import Asset, api

pytestmark = pytest.mark.flows

SCHEMA = json.loads((REPO_ROOT / "schemas" / "plan-report.schema.json").read_text())


@pytest.fixture
def copy(healthy, tmp_path) -> Project:
    return healthy.copy(tmp_path)


def plan(project: Project, **request):
    report = api.plan(api.PlanRequest(policies=(str(project.policy),), registry=project.registry,
                                      metaflow_root=str(project.datastore), **request))
    jsonschema.validate(report.to_dict(), SCHEMA)
    return report


def entries(report) -> dict[tuple[str, str], dict]:
    return {(e["kind"], e["branch"]): e for e in report.to_dict()["entries"]}


def test_cli_plan_decides_without_writing(copy):
    before = file_digest(copy.registry_file)
    text = copy.cli("plan")
    assert text.returncode == 0, text.stderr
    assert "QualityGateFlow (quality_gate.py)" in text.stdout
    assert "nothing was run and nothing was written" in text.stdout
    done = copy.cli("plan", "--format", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    jsonschema.validate(report, SCHEMA)
    assert {e["flow"] for e in report["entries"]} == {
        "QualityGateFlow", "FraudModelChampionFlow", "FraudModelPromotionFlow",
        "FraudFeaturesDriftFlow"}
    assert file_digest(copy.registry_file) == before
    wal = copy.registry_file.with_name(copy.registry_file.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0


def test_plan_shows_every_decision_with_its_evidence(copy):
    before = file_digest(copy.registry_file)
    reader = Asset(project=PROJECT, branch="dev", registry=copy.registry, read_only=True)
    consumed = reader.list_consumers("fraud_features", asset_type="data")
    got = entries(plan(copy))

    gate = got[("gate", "dev")]
    assert (gate["outcome"], gate["decision"]["instance"]) == ("pass", "v2")
    assert gate["decision"]["checks"][0]["min"] == 0.8

    staging = got[("champion", "staging")]["decision"]
    assert (staging["candidate"], staging["champion"], staging["promote"]) == ("v1", "v1", False)
    assert staging["margin"] == 0.0
    # the summary is the decision's own reason, margin included when one was compared
    assert got[("champion", "staging")]["summary"] == staging["reason"]
    dev = got[("champion", "dev")]
    assert dev["outcome"] == "promote" and "first champion" in dev["summary"]

    refused = got[("promotion", "dev -> staging")]
    assert refused["outcome"] == "refused"
    assert refused["decision"]["reasons"] == [
        "gate quality has no recorded result on fraud_model v2"]
    allowed = got[("promotion", "staging -> prod")]
    assert allowed["outcome"] == "allowed" and len(allowed["decision"]["satisfied"]) == 2
    assert "(already there as v1)" in allowed["summary"]

    drift = got[("drift", "dev")]
    statistics = drift["decision"]["statistics"]
    assert drift["outcome"] == drift["decision"]["level"] == "high"
    assert {"amount", "distance_km", "tx_last_24h"} <= set(statistics)
    assert drift["decision"]["max_statistic"] == max(statistics.values())
    assert (drift["decision"]["current"], drift["decision"]["reference"]) == ("v2", "v1")
    assert got[("drift", "prod")]["status"] == "nothing"

    assert file_digest(copy.registry_file) == before
    assert reader.list_consumers("fraud_features", asset_type="data") == consumed


def test_plan_uses_the_current_policy_and_branch_filter(copy):
    text = copy.policy.read_text()
    copy.policy.write_text(text.replace("{metric: f1_score, min: 0.8}",
                                        "{metric: f1_score, min: 0.99}"))
    report = plan(copy, branches=("staging",))
    got = entries(report)
    assert {branch for _, branch in got} == {"staging", "dev -> staging", "staging -> prod"}
    assert got[("gate", "staging")]["outcome"] == "fail"
    assert "is below the minimum 0.99" in got[("gate", "staging")]["decision"]["reason"]
    # promotion rests on recorded evidence, and the gate result recorded under 0.8 does not
    # count under 0.99: the promotion flow would refuse, and plan says so in its words
    promotion = got[("promotion", "staging -> prod")]
    assert promotion["outcome"] == "refused"
    assert ("gate quality has no result on fraud_model v1 judged under the policy's thresholds"
            in promotion["decision"]["reasons"][0])
    assert "judged under f1_score >= 0.8, the policy's are f1_score >= 0.99" in (
        promotion["decision"]["reasons"][0])


def test_plan_and_check_read_an_older_schema_registry_without_migrating_it(copy):
    """Opening a schema-1 registry for writing migrates it; plan and check open it read-only
    and read it as it is (no evidence recorded yet), leaving the file byte for byte."""
    import sqlite3

    downgrade_to_schema_1(copy.registry_file)
    before = file_digest(copy.registry_file)
    planned = copy.cli("plan", "--format", "json")
    assert planned.returncode == 0, planned.stderr
    entries = {(e["kind"], e["branch"]): e for e in json.loads(planned.stdout)["entries"]}
    assert entries[("promotion", "staging -> prod")]["outcome"] == "refused"  # no evidence
    checked = copy.cli("check", "--no-static", "--branch", "staging")
    assert checked.returncode == 1, checked.stdout + checked.stderr  # findings, not an error
    assert "FAIL live.lineage" in checked.stdout
    assert file_digest(copy.registry_file) == before
    wal = copy.registry_file.with_name(copy.registry_file.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    conn = sqlite3.connect(copy.registry_file.as_uri() + "?mode=ro", uri=True)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    conn.close()


def test_plan_branch_option_is_repeatable(copy):
    done = copy.cli("plan", "--format", "json", "--branch", "dev", "--branch", "prod")
    assert done.returncode == 0, done.stderr
    shown = {(e["kind"], e["branch"]) for e in json.loads(done.stdout)["entries"]}
    assert {("gate", "dev"), ("gate", "prod"), ("promotion", "dev -> staging"),
            ("promotion", "staging -> prod")} <= shown
    assert ("gate", "staging") not in shown


def test_plan_and_the_drift_flow_agree_when_there_is_nothing_to_compare(healthy, tmp_path):
    import subprocess
    import sys

    from flowpolicy.runtime.steps import refusal_reason

    project = healthy.copy(tmp_path, datastore=True)
    Asset(project=PROJECT, branch="staging", registry=project.registry).register_data_asset(
        "fraud_features", kind="parquet")
    [entry] = [e for e in plan(project).to_dict()["entries"]
               if (e["kind"], e["branch"]) == ("drift", "staging")]
    assert entry["status"] == "nothing"
    run = subprocess.run([sys.executable, "flows/fraud_features_drift.py", "--quiet", "run"],
                         cwd=project.dir, env=project.env("staging"), capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 1, run.stdout + run.stderr
    assert refusal_reason(run.stdout + run.stderr) == entry["summary"]
    assert entry["summary"].startswith("nothing to compare: latest-1 of data asset "
                                    "'fraud_features' in fraud_detection/staging")


#: Registers 50,000 values of one column as fraud_features with its drift profile: more than
#: a sketch's first level holds, so sketch-mode D comes with a bound above 0.
REGISTER_FEATURES = '''\
import numpy as np
from metaflow import Parameter, project, step

from flowpolicy import ProjectFlow


@project(name="fraud_detection")
class RegisterFeaturesFlow(ProjectFlow):
    """Register a seeded sample as fraud_features."""

    seed = Parameter("seed", type=int)
    shift = Parameter("shift", type=float)

    @step
    def start(self):
        """Draw and register the sample with its drift profile."""
        values = np.random.default_rng(self.seed).normal(self.shift, 1, 50_000)
        self.features = {"amount": values}
        self.prj.register_data("fraud_features", "features", drift_profile=True,
                               annotations={"n_rows": 50_000, "source": "seeded sample"})
        self.next(self.end)

    @step
    def end(self):
        """Done."""


if __name__ == "__main__":
    RegisterFeaturesFlow()
'''


def test_plan_and_the_drift_flow_agree_on_an_indeterminate_sketch_verdict(healthy, tmp_path):
    """Sketch mode, a column's own high threshold placed inside its sketch bound: the drift
    flow reads both stored profiles, finds the level open (indeterminate, never passed) and
    publishes the policy's indeterminate event; plan reads the same profiles and shows the
    same verdict and figures."""
    import numpy as np

    from flowpolicy.policy.model import DriftLevel, DriftRule
    from flowpolicy.runtime.drift import evaluate_drift, profile_data

    samples = {seed: {"amount": np.random.default_rng(seed).normal(shift, 1, 50_000)}
               for seed, shift in ((1, 0.0), (2, 0.5))}
    probe = evaluate_drift(DriftRule("fraud_features", (DriftLevel("high", 0.1),), mode="sketch"),
                           profile_data(samples[2]), profile_data(samples[1]),
                           current_id="v2", reference_id="v1").columns["amount"]
    assert 0.1 < probe.value and 0 < probe.bound < 0.01  # the threshold set below is open

    project = healthy.copy(tmp_path, datastore=True)
    policy = project.policy.read_text()
    project.policy.write_text(policy.replace(
        "events: {high: retrain_required}",
        "events: {high: retrain_required, indeterminate: drift_unclear}\n"
        "    mode: sketch\n"
        f"    column_settings: {{amount: {{levels: {{high: {probe.value!r}}}}}}}"))
    compiled = project.cli("compile", str(project.policy))
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    (project.dir / "register_features.py").write_text(REGISTER_FEATURES)
    branch = "staging"  # it holds no fraud_features yet: these are v1 and v2
    for seed, shift in (("1", "0.0"), ("2", "0.5")):
        project.run_flows((branch, "register_features.py", ("--seed", seed, "--shift", shift)))
    project.run_flows((branch, "flows/fraud_features_drift.py", ()))

    assets = Asset(project=PROJECT, branch=branch, registry=project.registry)
    (record,) = assets.evidence("fraud_features", "v2", asset_type="data", kind="drift")
    flow = record["details"]
    assert flow["level"] == "indeterminate" and record["passed"] is False
    assert flow["level_range"] == ["elevated", "high"] and flow["under_policy"] is True
    assert flow["inputs"] == {"current": "profile", "reference": "profile"}
    assert [e["payload"]["level"] for e in assets.list_events("drift_unclear")] == [
        "indeterminate"]

    [entry] = [e for e in plan(project, branches=(branch,)).to_dict()["entries"]
               if e["kind"] == "drift"]
    assert entry["status"] == "decided" and entry["outcome"] == flow["level"]
    assert entry["decision"]["inputs"] == flow["inputs"]
    assert entry["decision"]["columns"] == flow["columns"]
    assert entry["summary"].startswith(
        "fraud_features v2 vs v1: level indeterminate (between elevated and high within the "
        "sketch bound; never passes) (max ks ")
    assert entry["summary"].endswith("in amount); publishes drift_unclear")
