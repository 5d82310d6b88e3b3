"""``flowpolicy demo`` end to end: real Metaflow runs, SQLite registry, a scratch folder.

The main job runs once per test run (the ``demo_run`` fixture, whose registry the report
tests read too); the refusals run the command themselves."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from shared_runs import demo_command

from flowpolicy import Asset

pytestmark = pytest.mark.flows

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_demo_runs_the_main_job_and_reports_every_decision(demo_run):
    result, scratch = demo_run, demo_run.dir  # run with no FLOWPOLICY_/METAFLOW_ settings
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "METAFLOW_USER is not set" in out
    # three runs by hand, the rest started by the policy's triggers, shown as a chain
    assert [line.split("  ")[0] for line in out.splitlines() if line[:3] in ("1. ", "2. ", "3. ")
            ] == ["1. [dev] train an under-trained fraud_model (5 epochs)",
                  "2. [dev] train it properly on the same transactions",
                  "3. [dev] new transactions arrive, shifted"]
    tree = out[out.index("the chain (event -> run -> event):"):out.index("Registry sqlite")]
    assert "refused: gate quality failed for fraud_model v1: f1_score = " in tree
    assert "quality_gate_failed [dev] v1" in tree
    retrain = tree.index("retrain_required [dev] v2")
    assert tree.index("FraudTrainingFlow/", retrain) > retrain
    assert tree.count("FraudModelChampionFlow/") == 2 and "refused" not in tree.split(
        "TransactionIngestFlow/")[1]
    assert "gate quality: FAIL - f1_score = " in out
    assert "champion champion: PASS - no champion yet: v1 becomes the first champion" in out
    assert "champion champion: PASS - v2 beats champion v1" in out
    assert "drift ks: HIGH" in out

    registry = f"sqlite:///{scratch / 'registry.db'}"
    prod = Asset(project="fraud_detection", branch="prod", registry=registry, read_only=True)
    staging = Asset(project="fraud_detection", branch="staging", registry=registry,
                    read_only=True)
    in_prod = prod.peek_model_asset("fraud_model", "@production")
    annotations = in_prod["model_properties"]["annotations"]
    assert annotations["promoted_from_branch"] == "staging"
    assert staging.get_alias("fraud_model", "champion") == annotations["promoted_from_instance"]
    assert prod.list_aliases("fraud_model") == {"production": "v2"}
    # the model in prod is the one retrained on the drifted batch
    source = staging.peek_model_asset("fraud_model", annotations["promoted_from_instance"])
    dev = Asset(project="fraud_detection", branch="dev", registry=registry, read_only=True)
    retrained = dev.peek_model_asset(
        "fraud_model", source["model_properties"]["annotations"]["promoted_from_instance"])
    assert retrained["id"] == "v3"
    # the generated flows of the scratch project are the committed ones
    for flow in (REPO_ROOT / "examples" / "fraud_detection" / "flows").glob("*.py"):
        assert (scratch / "fraud_detection" / "flows" / flow.name).read_text() == flow.read_text()


def test_demo_runs_end_to_end_on_postgresql(tmp_path, postgres_url):
    """The training flow and every generated flow against a PostgreSQL registry, then
    ``flowpolicy check`` on what they left there."""
    scratch = tmp_path / "demo"
    result = demo_command("--dir", str(scratch), "--registry", postgres_url, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert f"Registry {postgres_url}" in out
    # the same chain, dispatched from PostgreSQL's events table
    tree = out[out.index("the chain (event -> run -> event):"):out.index("Registry ")]
    assert "refused: gate quality failed for fraud_model v1: f1_score = " in tree
    assert tree.count("FraudModelChampionFlow/") == 2 and "retrain_required [dev] v2" in tree
    assert "champion champion: PASS - no champion yet: v1 becomes the first champion" in out
    assert "champion champion: PASS - v2 beats champion v1" in out
    assert "drift ks: HIGH" in out
    assert not (scratch / "registry.db").exists()

    prod = Asset(project="fraud_detection", branch="prod", registry=postgres_url,
                 read_only=True)
    staging = Asset(project="fraud_detection", branch="staging", registry=postgres_url,
                    read_only=True)
    annotations = prod.peek_model_asset("fraud_model", "@production")["model_properties"][
        "annotations"]
    assert staging.get_alias("fraud_model", "champion") == annotations["promoted_from_instance"]
    assert [e["kind"] for e in staging.evidence("fraud_model", "@champion")] == [
        "gate", "champion", "promotion"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWPOLICY_")}
    checked = subprocess.run([sys.executable, "-m", "flowpolicy", "check", "--registry",
                              postgres_url], cwd=scratch / "fraud_detection", capture_output=True,
                             text=True, timeout=300,
                             env={**env, "METAFLOW_DATASTORE_SYSROOT_LOCAL": str(scratch)})
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"registry {postgres_url}" in checked.stdout

    again = demo_command("--registry", postgres_url, cwd=tmp_path)
    assert again.returncode == 2 and "already holds assets or events" in again.stderr


def test_demo_refuses_a_folder_that_is_not_empty(tmp_path):
    (tmp_path / "something").write_text("keep me")
    result = demo_command("--dir", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2 and "not empty" in result.stderr
    assert (tmp_path / "something").read_text() == "keep me"


def test_demo_without_metaflow_checkpoint_says_how_to_install_it(tmp_path):
    """A plain install lacks the ``examples`` extra. It is simulated by blocking the import
    (a None entry in sys.modules is how Python marks a module as not importable)."""
    blocked = ("import sys\nsys.modules['metaflow_extensions.obcheckpoint'] = None\n"
               "from flowpolicy.cli import main\nsys.exit(main(sys.argv[1:]))")
    result = subprocess.run(
        [sys.executable, "-c", blocked, "demo", "--dir", str(tmp_path / "demo")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [
        "flowpolicy: error: the demo runs the fraud example's training flow, which uses "
        "@checkpoint from metaflow-checkpoint, and that is not installed: "
        "pip install 'flowpolicy[examples]'"]
    assert not (tmp_path / "demo").exists()
