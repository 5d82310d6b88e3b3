"""The runtime outside flows: branch rules, the Asset client, promotion, events."""

from __future__ import annotations

import os
import subprocess

import pytest

from flowpolicy import Asset
from flowpolicy.errors import RegistryError
from flowpolicy.registry import AliasConflict
from flowpolicy.runtime.branch import (
    choose_write_branch,
    deployment_branch,
    event_branch,
    extract_branch,
    read_branch_for,
    resolve_branch,
    resolve_project,
    sanitize_branch,
)
from flowpolicy.runtime.events import ProjectEvent
from flowpolicy.runtime.promote import promote_assets
from flowpolicy.runtime.tags import mirror_champion, training_run

USER = {"entity_kind": "user", "entity_id": "tester"}


@pytest.mark.parametrize("raw, clean", [
    ("main", "main"),
    ("Feature/New-Model", "feature_new_model"),
    ("user.alice@example.com", "user_alice_at_example_com"),
    ("__dev__", "dev"),
    ("a--b..c", "a_b_c"),
    ("prod", "prod"),
    ("test.fix-42", "test_fix_42"),
])
def test_branch_names_are_sanitised_as_obproject_does(raw, clean):
    assert sanitize_branch(raw) == clean


def test_branch_with_nothing_left_is_an_error():
    with pytest.raises(RegistryError, match="nothing left"):
        sanitize_branch("-/-")


_BRANCH_VARS = ("FLOWPOLICY_BRANCH", "OB_BRANCH")
DEPLOYED = {"spec": {"project_branch": "Feature/X"}}


@pytest.mark.parametrize("env, spec, expected, source, ignored", [
    # a local run in a checkout on main writes to Metaflow's user branch, never to "main"
    ({}, None, "user_ada_l", "@project", None),
    # OB_BRANCH names the events' branch only (obproject-deploy sets it), never the assets'
    ({"OB_BRANCH": "feature/x"}, None, "user_ada_l", "@project", None),
    ({"FLOWPOLICY_BRANCH": "Staging"}, None, "staging", "FLOWPOLICY_BRANCH", None),
    ({}, DEPLOYED, "feature_x", "project_spec", None),
    ({}, {"branch": "release"}, "release", "project_spec", None),
    # the override never beats a deployed branch; the run is told it was ignored
    ({"FLOWPOLICY_BRANCH": "dev"}, DEPLOYED, "feature_x", "project_spec", "dev"),
    ({"FLOWPOLICY_BRANCH": "feature-x"}, DEPLOYED, "feature_x", "project_spec", None),
])
def test_write_branch_follows_obproject(tmp_path, monkeypatch, env, spec, expected, source,
                                        ignored):
    subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path)], check=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("METAFLOW_USER", "Ada.L")
    for var in _BRANCH_VARS:
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    choice = choose_write_branch(spec)
    assert (choice.branch, choice.source, choice.ignored) == (expected, source, ignored)
    assert resolve_branch(spec) == expected
    assert resolve_branch(spec, explicit="Other/Branch") == "other_branch"


@pytest.mark.parametrize("metaflow_branch, expected", [
    ("prod", "main"), ("test.fix_42", "fix_42"), ("prod.hotfix", "hotfix"),
    ("user.alice", "alice"),
])
def test_event_branch_of_a_metaflow_branch(metaflow_branch, expected):
    assert extract_branch(metaflow_branch) == expected


def test_event_branch_of_an_unknown_metaflow_branch_is_an_error():
    with pytest.raises(RegistryError, match="unknown Metaflow branch structure: 'main'"):
        extract_branch("main")


def test_event_branch_default(monkeypatch):
    monkeypatch.setenv("METAFLOW_USER", "alice")
    for var in _BRANCH_VARS:
        monkeypatch.delenv(var, raising=False)
    assert event_branch() == "alice"  # user.alice, as obproject extracts it
    monkeypatch.setenv("FLOWPOLICY_BRANCH", "Staging")
    assert event_branch() == "Staging"  # event branches are used as given
    monkeypatch.setenv("OB_BRANCH", "feature_x")
    assert event_branch() == "feature_x"


@pytest.mark.parametrize("config, spec, env, expected", [
    ({}, None, {}, None),
    ({}, DEPLOYED, {"FLOWPOLICY_BRANCH": "dev"}, "Feature/X"),
    ({"dev-assets": {"branch": "main"}}, None, {"FLOWPOLICY_BRANCH": "dev"}, "main"),
    ({}, None, {"FLOWPOLICY_BRANCH": "dev"}, "dev"),
])
def test_deployment_branch_of_triggers_and_schedules(monkeypatch, config, spec, env, expected):
    for var in _BRANCH_VARS:
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    assert deployment_branch(config, spec) == expected


@pytest.mark.parametrize("write, dev_assets, expected", [
    ("feature_x", "main", "main"), ("main", "other", "main"), ("Main", "other", "other"),
    ("feature_x", None, "feature_x"),
])
def test_read_branch_rule(write, dev_assets, expected):
    config = {"dev-assets": {"branch": dev_assets}} if dev_assets else {}
    assert read_branch_for(write, config) == expected


def test_project_resolution(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in ("FLOWPOLICY_PROJECT", "OB_PROJECT"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(RegistryError, match="no project"):
        resolve_project()
    (tmp_path / "obproject.toml").write_text('project = "from_toml"\n')
    assert resolve_project() == "from_toml"
    monkeypatch.setenv("FLOWPOLICY_PROJECT", "from_env")
    assert resolve_project() == "from_env"
    assert resolve_project("explicit") == "explicit"


@pytest.fixture
def asset(registry_url) -> Asset:
    return Asset(project="fraud", branch="dev", entity_ref=USER)


def test_asset_register_consume_peek_and_list(asset):
    response = asset.register_model_asset(
        "fraud_model", description="m", kind="checkpoint_dir", blobs=["s3://b/ckpt"],
        annotations={"f1_score": 0.9}, tags={"framework": "torch"})
    assert response["id"] == "v1"
    asset.register_model_asset("fraud_model", annotations={"f1_score": 0.95},
                               tags={"framework": "jax"})
    asset.register_data_asset("fraud_features", kind="parquet", blobs=["s3://b/f.parquet"])
    ref = asset.consume_model_asset("fraud_model", instance="latest-1")
    assert ref == {
        "id": "v1", "created_at": ref["created_at"],
        "created_by": USER,
        "asset": {"name": "fraud_model", "kind": "models", "description": "m"},
        "model_properties": {"model_kind": "checkpoint_dir",
                             "annotations": {"f1_score": "0.9"}, "blobs": ["s3://b/ckpt"]},
        "tags": [{"key": "framework", "value": "torch"}],
        "project": "fraud", "branch": "dev",
    }
    data = asset.peek_data_asset("fraud_features")
    assert data["data_properties"] == {"data_kind": "parquet", "annotations": {},
                                       "blobs": ["s3://b/f.parquet"]}
    assert data["asset"]["kind"] == "data"
    assert [c["instance"] for c in asset.list_consumers("fraud_model")] == ["v1"]

    instances = list(asset.list_model_asset_instances("fraud_model"))
    assert [(i.id, i.kind, i.asset_kind, i.annotations["f1_score"]) for i in instances] == [
        ("v2", "models", "generic", "0.95"), ("v1", "models", "checkpoint_dir", "0.9")]
    assert instances[0].created_at.tzinfo is not None
    assert instances[0].created_by.entity_id == "tester"

    listed = asset.list_model_assets()
    assert [i["asset"]["name"] for i in listed["items"]] == ["fraud_model"]
    assert listed["items"][0]["latest_instance"]["id"] == "v2"
    assert asset.list_model_assets(tags={"framework": "torch"})["items"] == []
    assert len(asset.list_model_assets(tags={"framework": "jax"})["items"]) == 1
    assert [i["asset"]["name"] for i in asset.list_data_assets()["items"]] == ["fraud_features"]


def test_read_only_asset_never_writes(asset, registry_url):
    asset.register_model_asset("fraud_model", annotations={"f1_score": 0.9})
    reader = Asset(project="fraud", branch="dev", read_only=True)
    assert reader.register_model_asset("fraud_model") is None
    reader.consume_model_asset("fraud_model")
    assert asset.list_consumers("fraud_model") == []
    assert [i.id for i in reader.list_model_asset_instances("fraud_model")] == ["v1"]
    for write in (lambda: reader.set_alias("fraud_model", "champion"),
                  lambda: reader.publish_event("x"),
                  lambda: reader.record_evidence("fraud_model", "v1", asset_type="model",
                                                 kind="gate", rule="q", passed=True,
                                                 policy_hash=None, details=None)):
        with pytest.raises(RegistryError, match="read_only"):
            write()


def test_asset_aliases_and_evidence(asset):
    for score in (0.8, 0.9):
        asset.register_model_asset("fraud_model", annotations={"f1_score": score})
    move = asset.set_alias("fraud_model", "champion", "v1", reason="first", expected=None)
    assert (move["from"], move["to"], move["by"]) == (None, "v1", USER)
    with pytest.raises(AliasConflict):
        asset.set_alias("fraud_model", "champion", "v2", expected=None)
    asset.set_alias("fraud_model", "champion", "v2", reason="better", expected="v1")
    assert asset.get_alias("fraud_model", "champion") == "v2"
    assert asset.get_alias("fraud_model", "production") is None
    assert asset.list_aliases("fraud_model") == {"champion": "v2"}
    assert [(h["from"], h["to"], h["reason"])
            for h in asset.alias_history("fraud_model", "champion")] == [
        (None, "v1", "first"), ("v1", "v2", "better")]
    record = asset.record_evidence("fraud_model", "@champion", asset_type="model", kind="gate",
                                   rule="quality", passed=True, policy_hash="abc",
                                   details={"f1_score": 0.9})
    assert record == {"kind": "gate", "rule": "quality", "passed": True, "policy_hash": "abc",
                      "details": {"f1_score": 0.9}, "created_at": record["created_at"],
                      "created_by": USER, "instance": "v2"}
    assert asset.evidence("fraud_model") == [record]
    assert asset.evidence("fraud_model", "v1") == []
    assert asset.evidence("fraud_model", kind="drift") == []


@pytest.mark.parametrize(("annotations", "creator", "run"), [
    ({"run_pathspec": "TrainFlow/12/train/5"}, "OtherFlow/1/start/2", "TrainFlow/12"),
    ({}, "TrainFlow/7/start/1", "TrainFlow/7"),
    ({"run_pathspec": ""}, "TrainFlow/7", "TrainFlow/7"),
    ({}, None, ""),
])
def test_training_run_of_an_instance(annotations, creator, run):
    assert training_run(annotations, creator) == run


def test_mirror_champion_without_alias_or_run_tags_nothing(asset, capsys):
    # registered outside a flow: the creator is a user, so there is no run to tag
    asset.register_model_asset("fraud_model", annotations={"f1_score": 0.9})
    assert mirror_champion(asset, "fraud_model", "champion", asset_type="model") is None
    asset.set_alias("fraud_model", "champion", "v1")
    assert mirror_champion(asset, "fraud_model", "champion", asset_type="model") is None
    assert "fraud_model v1 has no Metaflow run to tag" in capsys.readouterr().out


def test_promote_assets_between_branches(asset, registry_url):
    asset.register_model_asset("fraud_model", kind="artifact",
                               annotations={"f1_score": 0.9, "artifact": "model"})
    asset.register_model_asset("fraud_model", kind="artifact",
                               annotations={"f1_score": 0.95, "artifact": "model"})
    asset.register_data_asset("fraud_features", kind="artifact")
    asset.set_alias("fraud_model", "validated", "v2")
    asset.set_alias("fraud_model", "champion", "v1")

    result = promote_assets("fraud", "dev", "Staging", asset="fraud_model", instance="@validated")
    assert result == {"promoted": [{"kind": "models", "name": "fraud_model",
                                    "alias": "candidate", "instance": "v1",
                                    "source_instance": "v2", "already_promoted": False}],
                      "errors": []}
    staging = Asset(project="fraud", branch="staging", entity_ref=USER)
    ref = staging.peek_model_asset("fraud_model", "@candidate")
    source = asset.peek_model_asset("fraud_model", "v2")
    assert ref["created_by"] == source["created_by"]
    annotations = ref["model_properties"]["annotations"]
    assert annotations["promoted_from_branch"] == "dev"
    assert annotations["promoted_from_instance"] == "v2"
    # promoted_by as obproject writes it; who promoted is kept beside it and in the history
    assert annotations["promoted_by"] == "obproject/promote"
    assert annotations["promoted_by_entity"] == f"user {os.environ['METAFLOW_USER']}"
    assert staging.alias_history("fraud_model", "candidate")[0]["by"]["entity_id"] == \
        os.environ["METAFLOW_USER"]
    assert annotations["f1_score"] == "0.95"
    # only aliases on the promoted instance travel with it
    assert staging.list_aliases("fraud_model") == {"candidate": "v1", "validated": "v1"}
    assert staging.alias_history("fraud_model", "candidate")[0]["reason"] == \
        "promoted from dev v2"

    everything = promote_assets("fraud", "dev", "prod", alias="production")
    assert sorted((p["kind"], p["name"]) for p in everything["promoted"]) == [
        ("data", "fraud_features"), ("models", "fraud_model")]
    missing = promote_assets("fraud", "dev", "prod", asset="nope")
    assert missing["promoted"] == [] and "not found on source branch" in \
        missing["errors"][0]["error"]
    bad = promote_assets("fraud", "dev", "prod", kinds=["models"], asset="fraud_model",
                         instance="v9")
    assert "v9 of model asset 'fraud_model' in fraud/dev does not exist" in \
        bad["errors"][0]["error"]


def test_promoting_an_instance_already_on_the_target_returns_it(asset):
    asset.register_model_asset("fraud_model", kind="artifact", annotations={"f1_score": 0.9})
    asset.register_model_asset("fraud_model", kind="artifact", annotations={"f1_score": 0.95})
    staging = Asset(project="fraud", branch="staging", entity_ref=USER)

    def promote(instance):
        result = promote_assets("fraud", "dev", "staging", asset="fraud_model",
                                instance=instance)
        assert result["errors"] == []
        [promoted] = result["promoted"]
        return promoted["instance"], promoted["already_promoted"]

    assert promote("v1") == ("v1", False)
    assert promote("v1") == ("v1", True)
    assert [i.id for i in staging.list_model_asset_instances("fraud_model")] == ["v1"]
    assert len(staging.alias_history("fraud_model", "candidate")) == 1  # nothing to move

    assert promote("v2") == ("v2", False)
    assert promote("v1") == ("v1", True)  # the alias is still pointed where it was asked
    assert staging.get_alias("fraud_model", "candidate") == "v1"
    assert [(h["from"], h["to"]) for h in staging.alias_history("fraud_model", "candidate")] \
        == [(None, "v1"), ("v1", "v2"), ("v2", "v1")]
    assert [i.id for i in staging.list_model_asset_instances("fraud_model")] == ["v2", "v1"]

    # on its own branch an instance is already where it is asked to go: no copy
    same = promote_assets("fraud", "dev", "dev", asset="fraud_model", instance="v1",
                          alias="validated")
    assert same["promoted"][0]["instance"] == "v1" and same["promoted"][0]["already_promoted"]
    assert [i.id for i in asset.list_model_asset_instances("fraud_model")] == ["v2", "v1"]
    assert asset.get_alias("fraud_model", "validated") == "v1"


def test_promotion_aliases_restricted_by_obproject_toml(tmp_path, monkeypatch, asset):
    asset.register_model_asset("fraud_model")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "obproject.toml").write_text(
        'project = "fraud"\n[promotion]\naliases = ["candidate"]\n')
    with pytest.raises(ValueError, match="not in the allowed promotion aliases"):
        promote_assets("fraud", "dev", "prod", asset="fraud_model", alias="production")
    assert promote_assets("fraud", "dev", "prod", asset="fraud_model")["errors"] == []


def test_project_events(registry_url, monkeypatch):
    monkeypatch.setenv("METAFLOW_USER", "tester")
    event = ProjectEvent("retrain_required", project="fraud", branch="prod")
    assert event.event == "prj.fraud.prod.retrain_required"
    # an explicit branch is used as given (obproject does not sanitise it either)
    assert ProjectEvent("x", project="fraud", branch="Feature/A").event == "prj.fraud.Feature/A.x"
    published = event.publish({"statistic": 0.2})
    assert published["event"] == "prj.fraud.prod.retrain_required"
    assert published["producer"] == USER
    monkeypatch.setenv("FLOWPOLICY_REGISTRY", "postgres://nowhere")
    assert ProjectEvent("x", project="fraud", branch="prod").safe_publish() is None
    monkeypatch.setenv("FLOWPOLICY_REGISTRY", registry_url)
    reader = Asset(project="fraud", branch="prod", read_only=True)
    assert [e["payload"] for e in reader.list_events()] == [{"statistic": 0.2}]


@pytest.mark.parametrize("branch, read, write", [
    ("Feature-X", "main", "feature_x"),   # [dev-assets]: a feature branch reads main's assets
    ("main", "main", "main"),
])
def test_project_context_dev_assets_read_branch(registry_url, monkeypatch, branch, read, write):
    from types import SimpleNamespace

    from flowpolicy.runtime.project import ProjectContext

    monkeypatch.setenv("FLOWPOLICY_BRANCH", branch)
    flow = SimpleNamespace(project_config={"project": "fraud", "dev-assets": {"branch": "Main"}},
                           project_spec={})
    prj = ProjectContext(flow)
    assert (prj.project, prj.read_branch, prj.write_branch, prj.branch) == (
        "fraud", read, write, read)
    assert (prj.asset.branch, prj._write_asset.branch) == (read, write)
    with pytest.raises(AttributeError, match="doesn't have an artifact 'model'"):
        prj.register_model("fraud_model", "model")


def test_the_package_attribute_project_schedule_stays_the_decorator():
    import sys

    import flowpolicy
    import flowpolicy.project_schedule  # obproject's layout: a module of that name
    from flowpolicy.runtime.triggers import project_schedule

    assert flowpolicy.project_schedule is project_schedule  # as obproject.project_schedule
    assert sys.modules["flowpolicy.project_schedule"].project_schedule is project_schedule


def test_flowproject_spec_is_the_running_deployments(registry_url, monkeypatch):
    from flowpolicy.runtime.branch import note_deployment

    spec = {"project": "fraud", "branch": "Feature/X",
            "spec": {"project_name": "fraud", "project_branch": "Feature/X", "models": []}}
    monkeypatch.setattr("flowpolicy.runtime.branch._deployment", {})
    assert Asset(project="fraud", branch="feature_x").get_flowproject_spec() is None
    note_deployment(spec)
    assert Asset(project="fraud", branch="feature_x").get_flowproject_spec() == spec["spec"]
    assert Asset(project="fraud", branch="main").get_flowproject_spec() is None
    assert Asset(project="other", branch="feature_x").get_flowproject_spec() is None
