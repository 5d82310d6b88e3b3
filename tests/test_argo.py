"""The same chain on Argo Workflows: the generated flows rendered by Metaflow itself
(``python flow.py argo-workflows create --only-json``), deployed nowhere, and each Argo
Events sensor checked against what the upstream flows publish.

What runs here for real: Metaflow's Argo compiler, on the committed flows, for each branch
they are deployed on. What stands in: an S3-compatible datastore on 127.0.0.1 (moto's
server), because ``argo-workflows create`` packages the flow's code into the S3 datastore
before it compiles anything; and ``--only-json`` prints the WorkflowTemplate but not the
Sensor (Metaflow's own ``TODO: Support echo-ing Argo Events Sensor template``), so a
three-line wrapper runs the same command and also prints the Sensor Metaflow compiled.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from flowpolicy.policy.loader import load_policy
from flowpolicy.registry.base import (
    EntityRef,
    InstanceRecord,
    Scope,
    alias_payload,
    event_wire_name,
    new_instance_payload,
)
from flowpolicy.triggers import dispatch_table, publications

pytestmark = pytest.mark.flows

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = REPO_ROOT / "examples" / "fraud_detection"
PROJECT = "fraud_detection"
BUCKET = "flowpolicy-argo-test"

#: Runs ``python FLOW --branch B argo-workflows create --only-json`` in this process and
#: prints, after the WorkflowTemplate Metaflow prints, the Sensor it compiled.
WITH_SENSOR = """\
import json, runpy, sys
from metaflow.plugins.argo import argo_workflows as aw
template = aw.ArgoWorkflows.__str__
aw.ArgoWorkflows.__str__ = lambda self: template(self) + "\\n" + json.dumps(
    {"sensor": self._sensor.to_json() if self._sensor else None})
sys.argv = [sys.argv[1], "--branch", sys.argv[2], "argo-workflows", "create", "--only-json"]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """moto's S3 server on a free 127.0.0.1 port, with the datastore bucket made."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("w") as out:
        server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                   "-p", str(port)], stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail(f"moto server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
    urllib.request.urlopen(urllib.request.Request(f"{url}/{BUCKET}", method="PUT"), timeout=30)
    yield url
    server.terminate()
    server.wait(timeout=30)


def _argo_env(s3_url: str, branch: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FLOWPOLICY_", "METAFLOW_", "OB_"))}
    return {**env, "METAFLOW_USER": "tester", "FLOWPOLICY_BRANCH": branch,
            "METAFLOW_DEFAULT_METADATA": "local", "METAFLOW_DEFAULT_DATASTORE": "s3",
            "METAFLOW_DATASTORE_SYSROOT_S3": f"s3://{BUCKET}/metaflow",
            "METAFLOW_S3_ENDPOINT_URL": s3_url, "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
            "METAFLOW_KUBERNETES_NAMESPACE": "flows",
            "METAFLOW_ARGO_EVENTS_EVENT": "metaflow-event",
            "METAFLOW_ARGO_EVENTS_EVENT_SOURCE": "argo-events-webhook",
            "METAFLOW_ARGO_EVENTS_SERVICE_ACCOUNT": "operate-workflow-sa"}


def _render(s3_url: str, flow: Path, branch: str) -> tuple[dict, dict | None]:
    done = subprocess.run([sys.executable, "-c", WITH_SENSOR, str(flow), branch],
                          cwd=EXAMPLE, env=_argo_env(s3_url, branch), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    decoder = json.JSONDecoder()
    template, end = decoder.raw_decode(done.stdout.strip())
    sensor = json.loads(done.stdout.strip()[end:].strip())["sensor"]
    return template, sensor


def _listens(sensor: dict) -> list[tuple[str, dict[str, str]]]:
    """(event name, {parameter: payload field}) of each dependency of a Metaflow sensor."""
    found = []
    trigger = sensor["spec"]["triggers"][0]["template"]["k8s"]
    for dependency in sensor["spec"]["dependencies"]:
        [name_filter] = [e for e in dependency["filters"]["exprs"]
                         if e["fields"][0]["name"] == "name"]
        event = name_filter["expr"].split("'")[1]
        mapping = {}
        for parameter in trigger["parameters"]:
            source, dest = parameter["src"], parameter["dest"]
            if source.get("dependencyName") != dependency["name"] or not source.get("dataTemplate"):
                continue
            field = source["dataTemplate"].split('hasKey $.Input.body.payload "')[1].split('"')[0]
            mapping[dest.split("#(name=")[1].split(")")[0]] = field
        found.append((event, mapping))
    return found


def _published_fields() -> dict[str, set[str]]:
    """The payload fields of every event the upstream flows publish, from the functions that
    build the payloads (the rule events through the steps' own conclude_* with a recording
    stand-in for ``self.prj``)."""
    from flowpolicy.registry.base import AliasMove
    from flowpolicy.runtime import steps

    policy = load_policy(EXAMPLE / "policies" / "fraud.yaml")
    fields: dict[str, set[str]] = {}

    class Recorder:
        def publish_event(self, name, payload):
            fields[name] = set(payload)

    gate = policy.gates["quality"]
    for passed, event in ((True, gate.on_pass), (False, gate.on_fail)):
        try:
            steps.conclude_gate(Recorder(), gate, {"event": event, "under_policy": True,
                                                   "policy_hash": "h", "instance": "v1",
                                                   "passed": passed, "reason": "r"})
        except steps.Refused:
            pass
    champion = policy.champions["fraud_model"]
    steps.conclude_champion(Recorder(), champion, {
        "event": champion.on_promote, "under_policy": True, "policy_hash": "h",
        "promote": False, "candidate": "v1", "champion_after": "v1", "reason": "r",
        "asset_type": "model"})
    drift = policy.drift["fraud_features"]
    steps.conclude_drift(Recorder(), dataclasses.replace(drift, report_asset=None),
                         {"event": "retrain_required", "under_policy": True,
                          "policy_hash": "h", "level": "high", "current": "v2",
                          "reference": "v1"})
    scope = Scope(PROJECT, "dev", "model", "fraud_model")
    record = InstanceRecord(scope, 1, "artifact", "", {}, {}, (), "", EntityRef("task", "a"))
    for name in ("model.fraud_model.new_instance", "data.fraud_features.new_instance"):
        fields[name] = set(new_instance_payload(record, EntityRef("task", "a")))
    move = AliasMove(scope, "champion", None, 1, EntityRef("task", "a"), "", None)
    fields["model.fraud_model.alias.champion"] = set(alias_payload(move))
    return fields


def test_sensors_listen_to_exactly_what_the_upstream_flows_publish(s3):
    policy = load_policy(EXAMPLE / "policies" / "fraud.yaml")
    table = dispatch_table(policy, EXAMPLE, EXAMPLE / "flows")
    fields = _published_fields()
    # every (event, branch) some flow of the chain publishes, the training flow's included
    published = {(event, where)
                 for kind, rule in {t.flow for t in table.triggers} | {("gate", "quality")}
                 for branch in policy.branches
                 for event, where, _ in publications(policy, kind, rule, branch)}
    published |= {(f"{kind}.{asset}.new_instance", "dev")  # what training / ingestion register
                  for asset, kind in (("fraud_model", "model"), ("fraud_features", "data"))}
    deployed = []
    for (kind, rule), target in table.targets.items():
        for branch in policy.branches:
            template, sensor = _render(s3, target.path, branch)
            wanted = [(event_wire_name(PROJECT, branch, t.event), dict(t.parameters))
                      for t in table.for_flow(kind, rule) if t.applies_to(branch)]
            if not wanted:
                assert sensor is None, (target.path.name, branch)  # never started there
                continue
            assert _listens(sensor) == wanted, (target.path.name, branch)
            annotations = template["metadata"]["annotations"]
            assert json.loads(annotations["metaflow/triggers"]) == [
                {"name": name, "type": "event"} for name, _ in wanted]
            for name, mapping in wanted:
                event = name.split(".", 3)[3]
                assert (event, branch) in published, f"nothing publishes {name}"
                assert set(mapping.values()) <= fields[event], (name, mapping)
            deployed.append((target.path.name, branch))
    assert sorted(deployed) == sorted([
        ("quality_gate.py", "dev"), ("quality_gate.py", "staging"),
        ("fraud_model_champion.py", "staging"),
        ("fraud_model_promotion.py", "dev"), ("fraud_model_promotion.py", "staging"),
        ("fraud_features_drift.py", "dev"), ("train_flow.py", "dev")])


def test_argo_workflows_create_only_json_runs_as_users_call_it(s3):
    done = subprocess.run(
        [sys.executable, "flows/fraud_model_promotion.py", "--branch", "staging",
         "argo-workflows", "create", "--only-json"], cwd=EXAMPLE,
        env=_argo_env(s3, "staging"), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    template = json.loads(done.stdout)
    assert template["kind"] == "WorkflowTemplate"
    assert json.loads(template["metadata"]["annotations"]["metaflow/triggers"]) == [
        {"name": "prj.fraud_detection.staging.model_promoted", "type": "event"}]
    parameters = {p["name"] for p in template["spec"]["arguments"]["parameters"]}
    assert {"instance", "source", "target"} <= parameters
