"""Deleting an asset (obproject's ``delete_*_asset``) keeps the audit trail: the asset is
marked deleted, its instances, alias history, evidence and lineage stay, and reads say
when and by whom it was deleted. Also the HTTP statuses registry errors carry."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest
import requests

from flowpolicy import Asset
from flowpolicy.assets import DeleteResult
from flowpolicy.errors import RegistryError
from flowpolicy.registry import open_registry
from flowpolicy.registry.base import AssetNotFound, Scope
from flowpolicy.registry.sqlite import SCHEMA_VERSION

USER = {"entity_kind": "user", "entity_id": "tester"}


@pytest.fixture
def asset(registry_url) -> Asset:
    asset = Asset(project="fraud", branch="dev", entity_ref=USER)
    for score in (0.8, 0.9, 0.95):
        asset.register_model_asset("fraud_model", kind="checkpoint_dir",
                                   blobs=[f"s3://models/{score}"],
                                   annotations={"f1_score": score}, tags={"stage": "dev"})
    asset.set_alias("fraud_model", "production", "v2", reason="launch")
    asset.record_evidence("fraud_model", "v2", asset_type="model", kind="gate",
                          rule="quality", passed=True, policy_hash="abc", details={"f1": 0.9})
    asset.consume_model_asset("fraud_model", "v3")
    return asset


def test_delete_hides_the_asset_and_keeps_its_history(asset):
    assert asset.delete_model_asset("fraud_model", reason="retired") == DeleteResult(
        catalog_deleted=True, metadata_updated=False)
    assert asset.list_model_assets()["items"] == []
    for read in (lambda: asset.peek_model_asset("fraud_model"),
                 lambda: asset.consume_model_asset("fraud_model", "@production"),
                 lambda: list(asset.list_model_asset_instances("fraud_model"))):
        with pytest.raises(AssetNotFound, match="was deleted at .* by user tester") as caught:
            read()
        assert caught.value.status_code == 404
    # what was recorded stays: alias history, evidence, lineage, the deletion itself
    assert [m["to"] for m in asset.alias_history("fraud_model", "production")] == ["v2"]
    assert [e["rule"] for e in asset.evidence("fraud_model", "v2")] == ["quality"]
    assert [c["instance"] for c in asset.list_consumers("fraud_model")] == ["v3"]
    [deletion] = asset.deletions("fraud_model")
    assert deletion["deleted_through"] == "v3"
    assert deletion["aliases"] == {"production": "v2"}
    assert (deletion["by"], deletion["reason"]) == (USER, "retired")
    assert asset.list_aliases("fraud_model") == {}


def test_delete_is_idempotent_and_registering_again_starts_after_the_deleted(asset):
    asset.delete_model_asset("fraud_model")
    assert asset.delete_model_asset("fraud_model") == DeleteResult(False, False)
    assert asset.delete_data_asset("never_registered") == DeleteResult(False, False)
    again = asset.register_model_asset("fraud_model", kind="checkpoint_dir")
    assert again["id"] == "v4"  # an instance id never names two instances
    assert [i.id for i in asset.list_model_asset_instances("fraud_model")] == ["v4"]
    assert [item["asset"]["id"] for item in asset.list_model_assets()["items"]] == \
        ["fraud_model"]
    with pytest.raises(AssetNotFound, match="goes back past v4"):
        asset.peek_model_asset("fraud_model", "latest-1")
    with pytest.raises(AssetNotFound, match=r"v2 of .* does not exist: fraud_model has v4 "
                                            r"\(v1…v3 were deleted\)"):
        asset.peek_model_asset("fraud_model", "v2")
    with pytest.raises(AssetNotFound):
        asset.set_alias("fraud_model", "production", "v2")
    # the evidence of a deleted instance is still readable
    assert [e["rule"] for e in asset.evidence("fraud_model", "v2")] == ["quality"]


def test_history_command_shows_a_deleted_asset(asset, registry_url):
    asset.delete_model_asset("fraud_model", reason="retired")
    done = subprocess.run(
        [sys.executable, "-m", "flowpolicy", "assets", "history", "fraud_model", "--project",
         "fraud", "--branch", "dev", "--registry", registry_url, "--format", "json"],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    [item] = report["assets"] if isinstance(report, dict) else report
    events = [e["event"] for e in item["history"]]
    assert events.count("registered") == 3 and events[-1] == "deleted"
    text = subprocess.run(
        [sys.executable, "-m", "flowpolicy", "assets", "history", "fraud_model", "--project",
         "fraud", "--branch", "dev", "--registry", registry_url],
        capture_output=True, text=True, timeout=120).stdout
    assert "deleted (through v3; aliases @production→v2 dropped) by user tester: retired" in text


def test_read_only_client_refuses_to_delete(asset, registry_url):
    reader = Asset(project="fraud", branch="dev", read_only=True)
    with pytest.raises(RuntimeError, match="refusing to delete model asset 'fraud_model': "
                                           "client is read_only"):
        reader.delete_model_asset("fraud_model")
    with pytest.raises(RegistryError, match="read-only") as caught:
        open_registry(registry_url, read_only=True).delete_asset(
            Scope("fraud", "dev", "model", "fraud_model"), by=USER)
    assert caught.value.status_code == 403


def test_deleting_where_there_is_no_registry_creates_nothing(tmp_path):
    path = tmp_path / "none.db"
    registry = open_registry(f"sqlite:///{path}")
    assert registry.delete_asset(Scope("fraud", "dev", "model", "x"), by=USER) is None
    assert not path.exists()


def test_an_older_registry_is_migrated_by_a_deletion(tmp_path):
    path = tmp_path / "old.db"
    registry = open_registry(f"sqlite:///{path}")
    registry.register(Scope("fraud", "dev", "data", "features"), kind="table",
                      created_by=USER)
    registry.close()
    with sqlite3.connect(path) as conn:  # back to schema 2, before deletions (migration 3)
        for table in ("asset_deletions", "dispatches", "cursors"):  # and what came after
            conn.execute(f"DROP TABLE {table}")
        conn.execute("PRAGMA user_version = 2")
    old = open_registry(f"sqlite:///{path}", read_only=True)
    assert [s.scope.name for s in old.assets()] == ["features"]  # read as it is
    fresh = type(registry)(path)
    assert fresh.delete_asset(Scope("fraud", "dev", "data", "features"), by=USER) is not None
    assert fresh.schema_version == SCHEMA_VERSION and fresh.assets() == []


def test_deletions_are_append_only(asset, backend):
    asset.delete_model_asset("fraud_model")
    statements = ["DELETE FROM asset_deletions", "UPDATE asset_deletions SET reason = 'x'"]
    if backend.name == "postgresql":
        statements.append("TRUNCATE asset_deletions")
    for statement in statements:
        with pytest.raises(backend.IntegrityError, match="append-only"):
            backend.execute_raw(statement)


def test_obproject_api_errors_are_http_errors_with_the_service_status(asset):
    with pytest.raises(requests.HTTPError) as caught:
        asset.peek_model_asset("no_such_model")
    assert caught.value.response.status_code == 404
    assert isinstance(caught.value, AssetNotFound)
    assert "unknown model asset 'no_such_model'" in str(caught.value)
    with pytest.raises(requests.HTTPError) as caught:
        asset.consume_model_asset("fraud_model", "v9")
    assert caught.value.response.status_code == 404
    with pytest.raises(requests.HTTPError) as caught:
        asset.peek_model_asset("fraud_model", "3")  # not an instance id the registry gives
    assert caught.value.response.status_code == 400
    assert "an instance id is the 'id' of a response or listed instance, e.g. 'v3'" in \
        str(caught.value)
    listing = asset.list_model_asset_instances("no_such_model")  # read at the first next()
    with pytest.raises(requests.HTTPError) as caught:
        next(listing)
    assert caught.value.response.status_code == 404
