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
