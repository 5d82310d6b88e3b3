"""``flowpolicy dispatch`` on the fraud example, for real: Metaflow runs (local metadata and
datastore) started by the policy's triggers from a real SQLite registry's events; plus the
Argo Events webhook, ``events --follow`` and ``events --runs``."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from dispatch_support import fraud_project, ran, stub_env, stub_project

from flowpolicy import Asset
from flowpolicy.dispatch.dispatcher import Dispatcher
from flowpolicy.dispatch.webhook import MAX_BODY_BYTES, WebhookServer
from flowpolicy.policy.loader import load_policy
from flowpolicy.registry import open_registry
from flowpolicy.triggers import dispatch_table

PROJECT = "fraud_detection"


def _outcomes(registry) -> list[tuple[str, str, str, str]]:
    """(flow, branch, instance argument, status) of every dispatch, in dispatch order."""
    found = []
    for record in registry.dispatches():
        instance = next(a.split("=", 1)[1] for a in record.argv if a.startswith("--") and "=" in a)
        found.append((record.flow_name, record.branch, instance, record.status))
    return found


@pytest.mark.flows
def test_a_training_run_alone_then_dispatch_once_runs_the_whole_chain(tmp_path):
    scratch = fraud_project(tmp_path)
    trained = scratch.run("train_flow.py", "--seed", "8")
    assert trained.returncode == 0, trained.stdout + trained.stderr
    done = scratch.flowpolicy("dispatch", "--once")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == (
        "dispatch: read 10 events, started 6 runs (5 succeeded, 1 refused, 0 failed); "
        "cursor at event 10")
    registry = open_registry(scratch.registry, read_only=True)
    # what the hand-driven demo did, in its order, started by events alone
    assert sorted(_outcomes(registry)) == sorted([
        ("FraudFeaturesDriftFlow", "dev", "v1", "refused"),  # the first batch: nothing before
        ("QualityGateFlow", "dev", "v1", "succeeded"),
        ("FraudModelPromotionFlow", "dev", "v1", "succeeded"),
        ("QualityGateFlow", "staging", "v1", "succeeded"),
        ("FraudModelChampionFlow", "staging", "v1", "succeeded"),
        ("FraudModelPromotionFlow", "staging", "v1", "succeeded"),
    ])
    prod = Asset(project=PROJECT, branch="prod", registry=scratch.registry, read_only=True)
    staging = Asset(project=PROJECT, branch="staging", registry=scratch.registry,
                    read_only=True)
    in_prod = prod.peek_model_asset("fraud_model", "@production")["model_properties"]
    assert in_prod["annotations"]["promoted_from_branch"] == "staging"
    assert staging.get_alias("fraud_model", "champion") == (
        in_prod["annotations"]["promoted_from_instance"])
    assert prod.list_aliases("fraud_model") == {"production": "v1"}
    assert [e["kind"] for e in staging.evidence("fraud_model", "v1")] == [
        "gate", "champion", "promotion"]
    # the chain, as a user reads it
    chains = scratch.flowpolicy("events", "--runs")
    assert chains.returncode == 0, chains.stderr
    tree = chains.stdout
    order = ["FraudTrainingFlow/", "model.fraud_model.new_instance [dev] v1", "QualityGateFlow/",
             "promote_model [dev] v1", "FraudModelPromotionFlow/",
             "model.fraud_model.new_instance [staging] v1", "promote_model [staging] v1",
             "FraudModelChampionFlow/", "model_promoted [staging] v1",
             "model.fraud_model.new_instance [prod] v1"]
    positions = [tree.index(text) for text in order]
    assert positions == sorted(positions), tree
    assert "refused: nothing to compare: fraud_features v1 has no instance 1 before it" in tree
    # nothing new: a second dispatcher says so and starts nothing
    again = scratch.flowpolicy("dispatch", "--once")
    assert again.returncode == 1  # found nothing to do: not a success
    assert again.stdout.splitlines()[-1] == "nothing to dispatch: no events after event 10"
    assert len(registry.dispatches()) == 6


@pytest.mark.flows
def test_each_event_judges_its_own_instance_and_a_failed_gate_ends_its_chain(tmp_path):
    """A good model, then a weak one, both trained before anything is dispatched: when the
    good one's gate runs, ``latest`` is already the weak one, and the gate still judges the
    instance its event named. The weak one's refused gate is where its chain ends."""
    scratch = fraud_project(tmp_path)
    for args in (("--seed", "8"), ("--seed", "7", "--epochs", "5")):
        trained = scratch.run("train_flow.py", *args)
        assert trained.returncode == 0, trained.stdout + trained.stderr
    policy = load_policy(scratch.dir / "policies" / "fraud.yaml")
    registry = open_registry(scratch.registry)
    dispatcher = Dispatcher(registry, dispatch_table(policy, scratch.dir, scratch.dir / "flows"),
                            cwd=scratch.dir, environment=scratch.env())
    summary = dispatcher.run(follow=False, timeout=900, max_runs=20)
    assert len(summary.started) == 8 and summary.events_read > 0
    assert sorted(_outcomes(registry)) == sorted([
        ("FraudFeaturesDriftFlow", "dev", "v1", "refused"),
        ("FraudFeaturesDriftFlow", "dev", "v2", "succeeded"),
        ("QualityGateFlow", "dev", "v1", "succeeded"),   # judged v1, though v2 was latest
        ("QualityGateFlow", "dev", "v2", "refused"),     # the weak one: the chain ends here
        ("FraudModelPromotionFlow", "dev", "v1", "succeeded"),
        ("QualityGateFlow", "staging", "v1", "succeeded"),
        ("FraudModelChampionFlow", "staging", "v1", "succeeded"),
        ("FraudModelPromotionFlow", "staging", "v1", "succeeded"),
    ])
    dev = Asset(project=PROJECT, branch="dev", registry=registry)
    assert [(e["kind"], e["passed"]) for e in dev.evidence("fraud_model", "v1")] == [
        ("gate", True), ("promotion", True)]
    assert [(e["kind"], e["passed"]) for e in dev.evidence("fraud_model", "v2")] == [
        ("gate", False)]
    assert [e["payload"]["instance"] for e in dev.list_events("promote_model")] == ["v1"]
    assert [e["payload"]["instance"] for e in dev.list_events("quality_gate_failed")] == ["v2"]
    staging = Asset(project=PROJECT, branch="staging", registry=registry)
    [copy] = staging.list_model_asset_instances("fraud_model")
    assert copy.annotations["promoted_from_instance"] == "v1"


def test_argo_event_publish_reaches_the_dispatcher_through_the_webhook(tmp_path):
    """Metaflow's own ``ArgoEvent(...).publish()``, pointed at the local webhook, starts the
    flow the event triggers (stub flows: the run itself is not what is tested)."""
    policy = (stub_policy_with("  - gate: alpha\n    event: data_arrived\n"
                               "    parameters: {instance: batch}\n"))
    scratch = stub_project(tmp_path, policy)
    registry = open_registry(scratch.registry)
    table = dispatch_table(load_policy(scratch.dir / "policies" / "stress.yaml"), scratch.dir,
                           scratch.dir / "flows")
    with WebhookServer(registry) as webhook:
        publish = ("from metaflow.integrations import ArgoEvent\n"
                   "ArgoEvent('prj.stress.dev.data_arrived').publish({'batch': 'v7'}, "
                   "ignore_errors=False)\n")
        sent = subprocess.run([sys.executable, "-c", publish], capture_output=True, text=True,
                              env={**scratch.env(),
                                   "METAFLOW_ARGO_EVENTS_WEBHOOK_URL": webhook.url},
                              timeout=120)
        assert sent.returncode == 0, sent.stderr
        assert "Argo Event (prj.stress.dev.data_arrived) published." in sent.stderr
    [event] = registry.events(name="data_arrived")
    assert (event.project, event.branch, event.payload["batch"]) == ("stress", "dev", "v7")
    assert event.payload["generated-by-metaflow"] is True and event.producer.entity_kind == (
        "webhook")
    dispatcher = Dispatcher(registry, table, cwd=scratch.dir,
                            environment={**scratch.env(), **stub_env(scratch)})
    dispatcher.run(follow=False, timeout=120, max_runs=5)
    assert ran(scratch) == {("alpha_gate.py", "v7"): 1}


def test_the_webhook_refuses_what_it_cannot_route(tmp_path):
    scratch = stub_project(tmp_path)
    registry = open_registry(scratch.registry)
    with WebhookServer(registry) as webhook:
        for body, status, message in (
            (b"not json", 400, "not JSON"),
            (json.dumps({"name": "plain_event", "payload": {}}).encode(), 400,
             "not a project event"),
            (json.dumps({"name": "prj.stress.dev.x", "payload": [1]}).encode(), 400,
             "payload must be a JSON object"),
        ):
            request = urllib.request.Request(webhook.url, data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
            with pytest.raises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(request, timeout=30)
            assert caught.value.code == status
            assert message in json.loads(caught.value.read())["message"]
        # a body announced as too large is refused before any of it is read
        host, port = webhook.url.split("//")[1].rstrip("/").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        connection.putrequest("POST", "/")
        connection.putheader("Content-Length", str(MAX_BODY_BYTES + 1))
        connection.endheaders()
        answer = connection.getresponse()
        assert answer.status == 413 and "at most" in json.loads(answer.read())["message"]
        connection.close()
    assert not (scratch.root / "registry.db").exists()  # nothing was published
    with pytest.raises(Exception, match="loopback interface only"):
        WebhookServer(registry, host="0.0.0.0")


def test_events_follow_prints_new_events_and_stops_after_its_time(tmp_path):
    scratch = stub_project(tmp_path)
    registry = open_registry(scratch.registry)
    registry.publish_event("stress", "dev", "before", None, _USER)
    follower = subprocess.Popen(
        [sys.executable, "-m", "flowpolicy", "events", "--follow", "--for", "5",
         "--format", "json"], cwd=scratch.dir, env=scratch.env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    assert json.loads(follower.stdout.readline())["name"] == "before"
    assert follower.stderr.readline().startswith("registry sqlite:///")
    assert "following new events for 5s" in follower.stderr.readline()
    registry.publish_event("stress", "dev", "after", {"n": 1}, _USER)
    line = json.loads(follower.stdout.readline())
    assert (line["event"], line["payload"]) == ("prj.stress.dev.after", {"n": 1})
    assert follower.wait(timeout=60) == 0  # --for is a bound, not an error


def stub_policy_with(triggers: str) -> str:
    from dispatch_support import STUB_POLICY

    return STUB_POLICY + "triggers:\n" + triggers


_USER = {"entity_kind": "user", "entity_id": "tester"}


def test_dispatch_and_event_runs_in_process_through_the_api(tmp_path, monkeypatch):
    """The API calls the commands make: the trigger table, one drain of the pending events
    (progress lines to the request's echo), then the chains as data; a second drain finds
    nothing and says so."""
    from flowpolicy import api
    from flowpolicy.registry import EntityRef, Scope

    scratch = stub_project(tmp_path)
    for key, value in scratch.env(**stub_env(scratch)).items():
        monkeypatch.setenv(key, value)
    policy = str(scratch.dir / "policies" / "stress.yaml")
    listing = api.dispatch(api.DispatchRequest(policy=policy, mode="list"))
    assert listing.exit_code == 0
    assert [t["flow"] for t in listing.to_dict()["triggers"]] == [
        "flows/alpha_gate.py", "flows/beta_gate.py"]
    registry = open_registry(scratch.registry)
    trainer = EntityRef("task", "TrainFlow/1/train/1")
    registry.register(Scope("stress", "dev", "model", "risk_model"), kind="artifact",
                      created_by=trainer)
    lines: list[str] = []
    report = api.dispatch(api.DispatchRequest(policy=policy, registry=scratch.registry,
                                              echo=lines.append))
    assert report.exit_code == 0 and (report.events_read, len(report.started)) == (1, 2)
    assert set(report.finished.values()) == {"succeeded"} and report.cursor_after == 1
    assert lines[0] == f"registry {scratch.registry}" and len(lines) == 5  # 2 starts, 2 ends
    assert ran(scratch) == {("alpha_gate.py", "v1"): 1, ("beta_gate.py", "v1"): 1}
    again = api.dispatch(api.DispatchRequest(policy=policy, registry=scratch.registry,
                                             echo=lines.append))
    assert again.exit_code == 1
    assert "nothing to dispatch: no events after event 1" in again.format_text()
    chains = api.event_runs(api.EventRunsRequest(registry=scratch.registry)).to_dict()
    [root] = chains["chains"]
    assert root["run"] == "TrainFlow/1" and root["dispatch"] is None
    [event] = root["events"]
    assert sorted(r["dispatch"]["outcome"] for r in event["runs"]) == ["succeeded"] * 2
    with pytest.raises(Exception, match="--limit takes 0"):
        api.event_runs(api.EventRunsRequest(registry=scratch.registry, limit=-1))
