"""Reads in the wrong place create nothing and say where they looked: a mistyped
``FLOWPOLICY_REGISTRY``, the CLI run from another folder, and a generated flow run from
another folder (a real Metaflow run), each against a real registry that is elsewhere."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_check_support import EXAMPLE, PROJECT

from flowpolicy import Asset
from flowpolicy.errors import RegistryError
from flowpolicy.runtime.promote import promote_assets

USER = {"entity_kind": "user", "entity_id": "tester"}
_SCRUBBED = ("FLOWPOLICY_BRANCH", "OB_BRANCH", "FLOWPOLICY_PROJECT", "OB_PROJECT",
             "FLOWPOLICY_REGISTRY", "METAFLOW_DATASTORE_SYSROOT_LOCAL")
NO_MARKER = "the current folder, as no obproject.toml or .git is in it or above it"


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    env.update(METAFLOW_USER="tester", METAFLOW_DATASTORE_SYSROOT_LOCAL=str(tmp_path / "mf"),
               **extra)
    return env


def real_registry(path: Path) -> str:
    url = f"sqlite:///{path}"
    Asset(project=PROJECT, branch="dev", entity_ref=USER, registry=url).register_model_asset(
        "fraud_model", kind="artifact", annotations={"f1_score": 0.9})
    return url


def test_reads_with_a_mistyped_registry_variable_create_nothing(tmp_path, monkeypatch):
    real_registry(tmp_path / "project" / "registry.db")
    typo = tmp_path / "projcet" / "registry.db"
    monkeypatch.setenv("FLOWPOLICY_REGISTRY", f"sqlite:///{typo}")
    said = (f"no registry at {typo} (named by FLOWPOLICY_REGISTRY=sqlite:///{typo}); "
            "nothing to read")

    with pytest.raises(RegistryError) as raised:
        Asset(project=PROJECT, branch="dev", read_only=True)
    assert str(raised.value).startswith(said)

    client = Asset(project=PROJECT, branch="dev", entity_ref=USER)
    reads = [
        lambda: client.peek_model_asset("fraud_model"),
        lambda: client.consume_model_asset("fraud_model"),
        lambda: client.list_model_assets(),
        lambda: list(client.list_model_asset_instances("fraud_model")),
        lambda: client.get_alias("fraud_model", "champion"),
        lambda: client.list_aliases("fraud_model"),
        lambda: client.alias_history("fraud_model"),
        lambda: client.evidence("fraud_model"),
        lambda: client.list_consumers("fraud_model"),
        lambda: client.list_events(),
        lambda: promote_assets(PROJECT, "dev", "staging", asset="fraud_model"),
    ]
    for read in reads:
        with pytest.raises(RegistryError) as raised:
            read()
        assert str(raised.value).startswith(said)
    assert not typo.parent.exists()


@pytest.mark.parametrize("argv", [["assets", "list"], ["events"]])
def test_cli_from_another_folder_creates_nothing_and_says_where_it_looked(tmp_path, argv):
    real_registry(tmp_path / "project" / ".flowpolicy" / "registry.db")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run([sys.executable, "-m", "flowpolicy", *argv], cwd=elsewhere,
                          env=clean_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert (f"no registry at {elsewhere}/.flowpolicy/registry.db (the default "
            f".flowpolicy/registry.db under the project root {elsewhere}: {NO_MARKER})"
            in done.stderr), done.stderr
    assert "Traceback" not in done.stderr
    assert list(elsewhere.iterdir()) == []


@pytest.mark.flows
def test_generated_flow_run_from_another_folder_creates_no_registry_there(tmp_path):
    project = tmp_path / "project"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("__pycache__", ".metaflow"))
    url = real_registry(project / ".flowpolicy" / "registry.db")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    gate = [sys.executable, str(project / "flows" / "quality_gate.py"), "--no-pylint", "run"]
    env = clean_env(tmp_path, FLOWPOLICY_BRANCH="dev")

    lost = subprocess.run(gate, cwd=elsewhere, env=env, capture_output=True, text=True,
                          timeout=300)
    assert lost.returncode != 0
    output = lost.stdout + lost.stderr
    assert (f"no registry at {elsewhere}/.flowpolicy/registry.db (the default "
            f".flowpolicy/registry.db under the project root {elsewhere}: {NO_MARKER})"
            in output), output
    assert list(elsewhere.iterdir()) == []

    # the same flow from the project folder finds the registry and judges the instance
    found = subprocess.run(gate, cwd=project, env=env, capture_output=True, text=True,
                           timeout=300)
    assert found.returncode == 0, found.stdout + found.stderr
    assert f"registry sqlite:///{project}/.flowpolicy/registry.db" in found.stdout
    evidence = Asset(project=PROJECT, branch="dev", read_only=True, registry=url).evidence(
        "fraud_model", "v1")
    assert [(e["kind"], e["rule"], e["passed"]) for e in evidence] == [
        ("gate", "quality", True)]
