"""``flowpolicy assets`` and ``flowpolicy events`` (in-process, plus one real subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from flowpolicy import Asset
from flowpolicy.cli import main

USER = {"entity_kind": "user", "entity_id": "tester"}


@pytest.fixture
def populated(registry_url, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FLOWPOLICY_PROJECT", raising=False)
    dev = Asset(project="fraud", branch="dev", entity_ref=USER)
    for score in (0.8, 0.9):
        dev.register_model_asset("fraud_model", kind="artifact",
                                 annotations={"f1_score": score}, tags={"team": "risk"})
    dev.register_data_asset("fraud_features", kind="parquet", blobs=["s3://b/f"])
    dev.set_alias("fraud_model", "champion", "v1", reason="first")
    dev.set_alias("fraud_model", "champion", "v2", reason="better f1")
    dev.record_evidence("fraud_model", "v2", asset_type="model", kind="gate", rule="quality",
                        passed=True, policy_hash="0123456789abcdef", details={"f1": 0.9})
    dev.consume_model_asset("fraud_model")
    dev.publish_event("model_promoted", {"to": "v2"})
    Asset(project="fraud", branch="prod", entity_ref=USER).register_model_asset("fraud_model")
    Asset(project="other", branch="dev", entity_ref=USER).publish_event("ping")
    return registry_url


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_assets_list_text_and_json(populated, capsys):
    code, out, _ = cli(capsys, "assets", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"registry {populated}"
    assert lines[1].split() == ["PROJECT", "BRANCH", "TYPE", "NAME", "LATEST", "ALIASES",
                                "UPDATED"]
    assert [line.split()[:6] for line in lines[2:]] == [
        ["fraud", "dev", "data", "fraud_features", "v1", "-"],
        ["fraud", "dev", "model", "fraud_model", "v2", "@champion→v2"],
        ["fraud", "prod", "model", "fraud_model", "v1", "-"],
    ]
    code, out, _ = cli(capsys, "assets", "list", "--branch", "DEV", "--type", "model",
                       "--format", "json")
    report = json.loads(out)
    assert report["registry"] == populated
    [item] = report["assets"]
    assert (item["branch"], item["name"], item["aliases"]) == ("dev", "fraud_model",
                                                               {"champion": "v2"})


def test_assets_show_and_history(populated, capsys):
    code, out, _ = cli(capsys, "assets", "show", "fraud_model", "--project", "fraud",
                       "--branch", "dev", "--format", "json")
    [item] = json.loads(out)["assets"]
    newest, oldest = item["instances"]
    assert (newest["id"], newest["aliases"], newest["annotations"]) == (
        "v2", ["champion"], {"f1_score": "0.9"})
    assert [(e["kind"], e["rule"], e["passed"]) for e in newest["evidence"]] == [
        ("gate", "quality", True)]
    assert [c["consumer"] for c in newest["consumers"]] == [USER]
    assert oldest["consumers"] == []

    code, out, _ = cli(capsys, "assets", "show", "fraud_model", "--project", "fraud")
    assert out.startswith(f"registry {populated}\n")
    assert "in fraud/dev (latest v2)" in out and "in fraud/prod (latest v1)" in out
    assert "evidence: gate quality pass" in out

    code, out, _ = cli(capsys, "assets", "history", "fraud_model", "--project", "fraud",
                       "--branch", "dev")
    events = [line.split("  ", 2)[-1] for line in out.splitlines()[2:]]
    assert events == [
        "v1 registered by user tester",
        "v2 registered by user tester",
        "@champion (unset) → v1 by user tester: first",
        "@champion v1 → v2 by user tester: better f1",
    ]


@pytest.mark.parametrize("argv, message", [
    (["assets", "show", "nope", "--project", "fraud"],
     "no asset 'nope' in fraud/any branch of registry "),
    (["assets", "history"], "needs an asset NAME"),
    (["assets", "list", "extra"], "takes no NAME"),
    (["assets", "show", "fraud_model"], "no project"),
    (["events", "--registry", "sqlite:////nonexistent/dir/registry.db"], "no registry at"),
])
def test_assets_errors_exit_2(populated, capsys, argv, message):
    code, _, err = cli(capsys, *argv)
    assert code == 2
    assert message in err


def test_events(populated, capsys):
    code, out, _ = cli(capsys, "events", "--format", "json")
    report = json.loads(out)
    assert report["registry"] == populated
    # the registry's own lifecycle events, in the order of the changes, beside the flows' ones
    assert [e["event"] for e in report["events"]] == [
        "prj.fraud.dev.model.fraud_model.new_instance",
        "prj.fraud.dev.model.fraud_model.new_instance",
        "prj.fraud.dev.data.fraud_features.new_instance",
        "prj.fraud.dev.model.fraud_model.alias.champion",
        "prj.fraud.dev.model.fraud_model.alias.champion",
        "prj.fraud.dev.model_promoted",
        "prj.fraud.prod.model.fraud_model.new_instance",
        "prj.other.dev.ping"]
    moved = report["events"][4]["payload"]
    assert (moved["from"], moved["to"], moved["reason"], moved["actor"]) == (
        "v1", "v2", "better f1", "tester")
    code, out, _ = cli(capsys, "events", "--project", "fraud", "--name", "model_promoted")
    assert out.count("\n") == 2 and out.startswith(f"registry {populated}\n")
    assert 'prj.fraud.dev.model_promoted  by user tester  {"to": "v2"}' in out


def test_cli_subprocess_wiring(populated):
    done = subprocess.run([sys.executable, "-m", "flowpolicy", "assets", "list", "--format",
                           "json", "--project", "fraud"], capture_output=True, text=True,
                          env={**os.environ, "FLOWPOLICY_REGISTRY": populated})
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["assets"]) == 3


def test_events_follow_prints_new_events_as_they_are_published(backend, tmp_path):
    """``events --follow`` as users run it, on each backend: the events so far, then one
    published while it waits (woken by NOTIFY on PostgreSQL)."""
    from flowpolicy.registry import EntityRef

    reg = backend.open()
    reg.publish_event("fraud", "dev", "before", None, EntityRef("user", "tester"))
    follower = subprocess.Popen(
        [sys.executable, "-m", "flowpolicy", "events", "--follow", "--for", "60",
         "--project", "fraud", "--format", "json", "--registry", backend.url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert json.loads(follower.stdout.readline())["name"] == "before"
        assert follower.stderr.readline().startswith("registry ")
        assert follower.stderr.readline() == "following new events for 60s\n"
        reg.publish_event("other", "dev", "filtered_out", None, EntityRef("user", "tester"))
        reg.publish_event("fraud", "dev", "after", {"n": 1}, EntityRef("user", "tester"))
        event = json.loads(follower.stdout.readline())
        assert (event["name"], event["payload"]) == ("after", {"n": 1})
    finally:
        follower.kill()
        follower.communicate()


@pytest.mark.parametrize("argv", [["events", "--for", "3"],
                                  ["events", "--follow", "--for", "0"]])
def test_events_for_needs_follow_and_a_positive_time(populated, capsys, argv):
    assert main(argv) == 2
    assert "--for takes a positive number of seconds" in capsys.readouterr().err
