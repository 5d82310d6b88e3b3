"""Real Metaflow runs (subprocesses) against a real SQLite registry: producer → consumer,
an obproject-style flow with only its import line changed, and the champion tag mirror."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flowpolicy import Asset

pytestmark = pytest.mark.flows

FLOWS = Path(__file__).parent / "runtime_flows"
_SCRUBBED = ("FLOWPOLICY_BRANCH", "OB_BRANCH", "FLOWPOLICY_PROJECT", "OB_PROJECT",
             "FLOWPOLICY_REGISTRY", "METAFLOW_DATASTORE_SYSROOT_LOCAL")


def flow_env(root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    env.update(METAFLOW_USER="tester", METAFLOW_DATASTORE_SYSROOT_LOCAL=str(root / "metaflow"),
               FLOWPOLICY_REGISTRY=f"sqlite:///{root / 'registry.db'}", **extra)
    return env


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def run_flow(flow: Path, cwd: Path, env: dict[str, str], *args: str) -> str:
    return run([sys.executable, str(flow), "--no-pylint", "run", *args], cwd, env)


def client(script: str, cwd: Path, env: dict[str, str]):
    """Run Metaflow client code in a subprocess (it reads the datastore location at import)."""
    out = run([sys.executable, "-c", textwrap.dedent(script)], cwd, env)
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def produced(tmp_path_factory):
    """ProducerFlow twice (f1 0.85, then 0.95) with @champion on v1 in between, then
    ConsumerFlow in another process."""
    root = tmp_path_factory.mktemp("runtime_flows")
    env = flow_env(root, FLOWPOLICY_BRANCH="Dev", FLOWPOLICY_PROJECT="runtime_demo")
    run_flow(FLOWS / "producer_flow.py", root, env, "--score", "0.85")
    asset = Asset(project="runtime_demo", branch="dev", registry=env["FLOWPOLICY_REGISTRY"],
                  entity_ref={"entity_kind": "user", "entity_id": "tester"})
    asset.set_alias("demo_model", "champion", "v1", reason="first model", expected=None)
    run_flow(FLOWS / "producer_flow.py", root, env, "--score", "0.95")
    consumer_env = dict(env)
    del consumer_env["FLOWPOLICY_PROJECT"]  # ConsumerFlow names its project with @project
    run_flow(FLOWS / "consumer_flow.py", root, consumer_env)
    data = client("""
        import json
        from metaflow import Flow, namespace
        namespace(None)
        consumer = Flow("ConsumerFlow").latest_run
        producers = sorted(Flow("ProducerFlow").runs(), key=lambda r: int(r.id))
        print(json.dumps({
            "consumer": {k: consumer.data.__getattr__(k) for k in
                         ["latest", "previous", "first", "champion", "features", "ref",
                          "instance_ids", "trigger_events"]},
            "consumer_task": consumer["start"].task.pathspec,
            "consumer_tags": sorted(consumer.tags),
            "producer_tasks": [r["start"].task.pathspec for r in producers],
            "producer_runs": [r.id for r in producers],
            "missing_raised": producers[0].data.missing_attribute_raised,
            "registered_by": producers[0].data.registered_by,
        }))
    """, root, env)
    return root, env, asset, data


def test_consumer_resolves_every_spec_and_loads_artifacts(produced):
    _, _, _, data = produced
    got = data["consumer"]
    assert got["latest"]["score"] == 0.95
    assert got["previous"]["score"] == 0.85
    assert got["first"]["score"] == 0.85
    assert got["champion"]["score"] == 0.85
    assert got["features"] == {"amount": [1.0, 2.0, 3.0], "score": 0.95}
    assert got["instance_ids"] == ["v2", "v1"]
    assert "project:runtime_demo" in data["consumer_tags"]


def test_project_trigger_listens_on_the_project_branch_event(produced):
    _, _, _, data = produced
    assert data["consumer"]["trigger_events"] == ["prj.runtime_demo.dev.models_ready"]


def test_registration_records_artifact_kind_and_producing_task(produced):
    _, _, asset, data = produced
    assert data["missing_raised"] is True
    assert data["registered_by"] == "runtime_demo/dev"
    ref = data["consumer"]["ref"]
    first_task, second_task = data["producer_tasks"]
    assert ref["id"] == "v2"
    assert ref["created_by"] == {"entity_kind": "task", "entity_id": second_task}
    assert ref["asset"] == {"name": "demo_model", "kind": "models", "description": "toy model"}
    assert ref["model_properties"] == {
        "model_kind": "artifact",
        "annotations": {"artifact": "model", "run_pathspec": second_task, "f1_score": "0.95"},
        "blobs": [],
    }
    assert ref["tags"] == [{"key": "framework", "value": "toy"}]
    features = asset.peek_data_asset("demo_features", "v1")
    assert features["data_properties"]["data_kind"] == "artifact"
    assert features["data_properties"]["annotations"] == {
        "artifact": "features", "run_pathspec": first_task, "n_rows": "3"}


def test_consumption_lineage_and_events_are_recorded(produced):
    _, _, asset, data = produced
    task = data["consumer_task"]
    consumed = asset.list_consumers("demo_model")
    assert [(c["instance"], c["consumer"]["entity_id"]) for c in consumed] == [
        ("v2", task), ("v1", task), ("v1", task), ("v1", task), ("v2", task)]
    assert [c["instance"] for c in asset.list_consumers("demo_features", asset_type="data")] \
        == ["v2"]
    before = len(asset.list_consumers("demo_model"))
    asset.peek_model_asset("demo_model", "@champion")
    assert len(asset.list_consumers("demo_model")) == before
    [event] = asset.list_events("models_consumed")
    assert event["event"] == "prj.runtime_demo.dev.models_consumed"
    assert event["payload"] == {"latest": "v2"}
    assert event["producer"] == {"entity_kind": "task", "entity_id": task}


def test_champion_tag_mirror_moves_the_tag_by_run_id(produced):
    root, env, _, data = produced
    first, second = data["producer_runs"]
    result = client(f"""
        import json
        from metaflow import Flow, namespace
        from flowpolicy.runtime.tags import champion_tag, mirror_champion_tag
        dev, prod = champion_tag("champion", "dev"), champion_tag("champion", "Prod")
        out = [mirror_champion_tag("ProducerFlow", "{first}", dev),
               mirror_champion_tag("ProducerFlow", "{first}", prod),
               mirror_champion_tag("ProducerFlow", "{second}", dev)]
        namespace(None)
        out.append({{r.id: sorted(t for t in r.user_tags if t.startswith("champion"))
                    for r in Flow("ProducerFlow")}})
        print(json.dumps(out))
    """, root, env)
    assert result == [
        {"tagged": f"ProducerFlow/{first}", "untagged": []},
        {"tagged": f"ProducerFlow/{first}", "untagged": []},
        # moving dev's champion leaves prod's tag on the first run alone
        {"tagged": f"ProducerFlow/{second}", "untagged": [f"ProducerFlow/{first}"]},
        {first: ["champion:prod"], second: ["champion:dev"]},
    ]


def test_obproject_flow_runs_after_changing_only_its_import_line(tmp_path):
    original = (FLOWS / "obproject_style_flow.py").read_text()
    ported = original.replace("from obproject import ProjectFlow",
                              "from flowpolicy import ProjectFlow")
    changed = [(a, b) for a, b in zip(original.splitlines(), ported.splitlines(), strict=True)
               if a != b]
    assert changed == [("from obproject import ProjectFlow", "from flowpolicy import ProjectFlow")]
    (tmp_path / "flow.py").write_text(ported)
    (tmp_path / "obproject.toml").write_text('project = "ob_style"\n')
    env = flow_env(tmp_path)  # no branch or project variables: obproject.toml + Metaflow
    run_flow(tmp_path / "flow.py", tmp_path, env)
    log = run_flow(tmp_path / "flow.py", tmp_path, env)
    assert "usm0jrb3 ob_style user_tester evals {" in log and "f1_score of v2: 0.85" in log
    runs = client("""
        import json
        from metaflow import Flow, namespace
        namespace(None)
        runs = sorted(Flow("FraudTrainingFlow").runs(), key=lambda r: int(r.id))
        keys = ["latest_id", "latest_f1", "model_kind", "generations", "loaded", "scope"]
        print(json.dumps([{k: r.data.__getattr__(k) for k in keys} for r in runs]))
    """, tmp_path, env)
    assert [r["latest_id"] for r in runs] == ["v1", "v2"]
    assert [r["latest_f1"] for r in runs] == [0.8, pytest.approx(0.85)]
    assert runs[1]["generations"] == [2, 1]
    assert runs[1]["loaded"] == {"threshold": pytest.approx(0.4125), "generation": 2}
    assert runs[1]["model_kind"] == "artifact"
    assert runs[1]["scope"] == ["ob_style", "user_tester", "user_tester"]
    asset = Asset(project="ob_style", branch="user.tester",
                  registry=env["FLOWPOLICY_REGISTRY"], read_only=True)
    assert [e["payload"] for e in asset.list_events("model_trained")] == [
        {"id": "v1"}, {"id": "v2"}]
