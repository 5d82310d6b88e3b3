"""Serving the example's real trained model: loading it outside a flow, the seed's FastAPI
pattern, and ``flowpolicy serve`` as a process while the alias moves under continuous load.

One module fixture trains ``fraud_model`` twice on dev (real Metaflow runs, local datastore,
SQLite registry) and runs the quality gate on both."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from serving_support import call, run, train_example, wait_for

from flowpolicy.errors import RegistryError
from flowpolicy.registry import open_registry
from flowpolicy.registry.base import EntityRef, Scope, instance_id
from flowpolicy.runtime.loading import ModelLoadError, load_model, resolve_model

pytestmark = pytest.mark.flows
pytest.importorskip("fastapi")

TESTS = Path(__file__).resolve().parent
SEED_APP = TESTS / "fixtures" / "serving" / "seed_fastapi_app.py"
DEV = Scope("fraud_detection", "dev", "model", "fraud_model")
USER = EntityRef("user", "tester")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The example project with fraud_model v1 and v2 on dev, both through the quality gate;
    (project folder, datastore root, environment)."""
    root = tmp_path_factory.mktemp("serving")
    return train_example(root)


def rows_that_tell_the_models_apart(project: Path, env: dict[str, str]) -> list[dict]:
    """Transactions on which v1 and v2 answer differently (and some where they agree)."""
    script = f"""
import json, sys
sys.path.insert(0, {str(project)!r})
import numpy as np
from train_flow import FEATURES, make_transactions
columns = make_transactions(400, 99, 0.0)
print(json.dumps([{{name: float(columns[name][i]) for name in FEATURES}} for i in range(400)]))
"""
    return json.loads(run([sys.executable, "-c", script], project, env).stdout)


def predictions(project: Path, root: Path, env: dict[str, str], branch: str,
                instances: list[str], rows: list[dict]) -> dict[str, list[float]]:
    """What the example's loader predicts for ``rows`` with each instance, computed in a
    process of its own through the public loading API."""
    script = f"""
import json, sys
sys.path.insert(0, {str(project)!r})
from flowpolicy import load_model
import serving
rows = json.loads(sys.stdin.read())
print(json.dumps({{i: list(map(float, load_model("fraud_model", i, branch={branch!r},
                                                  datastore={str(root)!r},
                                                  loader=serving.load)(rows)))
                  for i in {instances!r}}}))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=project, env=env,
                          input=json.dumps(rows), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# -- loading outside a flow --------------------------------------------------------------------


def test_load_model_reads_the_artifact_from_the_datastore_it_is_pointed_at(trained, tmp_path,
                                                                          monkeypatch):
    project, root, env = trained
    monkeypatch.chdir(tmp_path)  # no .metaflow here or above: only datastore= can find it
    registry = env["FLOWPOLICY_REGISTRY"]
    model = load_model("fraud_model", "v1", project="fraud_detection", branch="dev",
                       registry=registry, datastore=root)
    assert set(model) == {"weights", "bias", "mean", "scale"}
    assert len(model["weights"]) == 7
    other = load_model("fraud_model", "latest", project="fraud_detection", branch="dev",
                       registry=registry, datastore=root / ".metaflow")
    assert not (other["weights"] == model["weights"]).all()
    instance = resolve_model("fraud_model", "v2", project="fraud_detection", branch="dev",
                             registry=registry, datastore=root)
    assert instance.kind == "artifact" and instance.producer.startswith("FraudTrainingFlow/")
    assert not (Path(tmp_path) / ".flowpolicy").exists()  # a read creates nothing


def test_load_model_says_where_it_looked_for_the_task(trained, tmp_path):
    project, _, env = trained
    empty = tmp_path / "elsewhere"
    (empty / ".metaflow").mkdir(parents=True)
    script = f"""
from flowpolicy import load_model
from flowpolicy.runtime.loading import ModelLoadError
try:
    load_model("fraud_model", "v1", project="fraud_detection", branch="dev",
               datastore={str(empty)!r})
except ModelLoadError as exc:
    print(exc)
"""
    out = run([sys.executable, "-c", script], project, env).stdout
    assert "fraud_model v1 (fraud_detection/dev) was produced by task FraudTrainingFlow/" in out
    assert f"local@{empty}" in out and "datastore=" in out
    with pytest.raises(ModelLoadError, match="holds no .metaflow folder"):
        load_model("fraud_model", registry=env["FLOWPOLICY_REGISTRY"], project="fraud_detection",
                   branch="dev", datastore=tmp_path / "nothing")


def test_an_external_instance_goes_to_the_users_loader(tmp_path):
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    open_registry(url).register(
        Scope("fraud_detection", "prod", "model", "llm"), kind="huggingface", created_by=USER,
        blobs=["hf://acme/fraud-llm@rev3"], annotations={"f1_score": "0.9"})
    got = load_model("llm", "latest", project="fraud_detection", branch="prod", registry=url,
                     loader=lambda instance: (instance.id, instance.kind, instance.blobs))
    assert got == ("v1", "huggingface", ("hf://acme/fraud-llm@rev3",))
    with pytest.raises(ModelLoadError, match="kind 'huggingface', not a Metaflow artifact.*"
                                             "hf://acme/fraud-llm@rev3"):
        load_model("llm", project="fraud_detection", branch="prod", registry=url)
    with pytest.raises(RegistryError, match="no registry"):
        resolve_model("llm", project="p", branch="b", registry=f"sqlite:///{tmp_path / 'x.db'}")
    assert not (tmp_path / "x.db").exists()


def test_the_seeds_fastapi_app_runs_with_only_its_import_changed(trained, tmp_path):
    project, _, env = trained
    source = SEED_APP.read_text()
    assert source.count("from obproject import Asset") == 1
    (tmp_path / "seed_app.py").write_text(
        source.replace("from obproject import Asset", "from flowpolicy import Asset"))
    env = {**env, "OB_PROJECT": "fraud_detection", "OB_BRANCH": "dev"}
    from serving_support import call, free_port

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "seed_app:app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        info = wait_for(lambda: _get_or_none(base, "/model/info"), 60, "the seed app")
        assert info["instance"] == "v2" and info["weights"] == 7
        assert info["annotations"]["epochs"] == "120"
        assert call(base, "/model/reload?instance=v1", raw=b"")[2] == {"reloaded": "v1"}
        assert call(base, "/model/info")[2]["annotations"]["epochs"] == "200"
    finally:
        server.send_signal(signal.SIGINT)
        output = server.communicate(timeout=30)[0]
    assert "Traceback" not in output, output
    consumers = open_registry(env["FLOWPOLICY_REGISTRY"]).consumers(DEV)
    assert consumers == []  # read_only: consuming is peeking, no lineage written


def test_the_readme_shows_the_seed_app_with_only_its_import_changed():
    readme = (TESTS.parent / "README.md").read_text(encoding="utf-8")
    shown = SEED_APP.read_text().replace("from obproject import Asset",
                                         "from flowpolicy import Asset")
    assert f"```python\n{shown}```" in readme


def _get_or_none(base: str, path: str):
    from serving_support import call

    try:
        status, _, body = call(base, path)
    except OSError:
        return None
    return body if status == 200 else None


# -- flowpolicy serve as a process ---------------------------------------------------------


class Served:
    """``flowpolicy serve`` started as a subprocess; ``url`` once it printed where."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str]):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flowpolicy", "serve", *argv, "--port", "0"], cwd=cwd,
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        if not line:
            raise AssertionError(f"serve exited {self.process.wait(30)}: "
                                 f"{self.process.stderr.read()}")
        self.banner = line.strip()
        self.url = self.banner.rsplit(" at ", 1)[1].split()[0]

    def stop(self, sig: int = signal.SIGTERM) -> str:
        self.process.send_signal(sig)
        _, err = self.process.communicate(timeout=30)
        assert self.process.returncode == 0, err
        return err


def serve_argv(root: Path, *extra: str) -> list[str]:
    return ["fraud_model", "--loader", "serving:load", "--datastore", str(root), *extra]


def test_serve_refuses_an_unset_alias_and_a_failing_instance(trained):
    project, root, env = trained
    done = run([sys.executable, "-m", "flowpolicy", "serve",
                *serve_argv(root, "--branch", "dev", "--alias", "production")], project, env,
               ok=False)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines()[-1].startswith(
        "flowpolicy: error: alias @production is not set on model asset 'fraud_model' in "
        "fraud_detection/dev")
    weak = open_registry(env["FLOWPOLICY_REGISTRY"]).register(
        Scope("fraud_detection", "prod", "model", "fraud_model"), kind="artifact",
        created_by=USER, annotations={"f1_score": "0.5", "artifact": "model"})
    open_registry(env["FLOWPOLICY_REGISTRY"]).set_alias(weak.scope, "production", weak.id,
                                                          by=USER, reason="test")
    done = run([sys.executable, "-m", "flowpolicy", "serve",
                *serve_argv(root, "--branch", "prod")], project, env, ok=False)
    assert done.returncode == 2
    assert "will not serve fraud_model v1 (@production on prod): fraud_model v1 fails under " \
           "policy" in done.stderr
    assert "f1_score = 0.5 is below the minimum 0.8" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_with_an_override_says_so(trained, tmp_path):
    project, root, env = trained
    served = Served(serve_argv(root, "--branch", "dev", "--alias", "nothing_here",
                               "--allow-unset"), project, env)
    try:
        assert "(nothing yet: @nothing_here is unset)" in served.banner
        assert served.banner.endswith("(--allow-unset)")
        from serving_support import call

        status, headers, body = call(served.url, "/ready")
        assert status == 503 and body["ready"] is False
        assert call(served.url, "/model/info")[2]["overrides"] == {"ignore_gates": False,
                                                                   "allow_unset": True}
        open_registry(env["FLOWPOLICY_REGISTRY"]).set_alias(DEV, "nothing_here", "v1",
                                                              by=USER, reason="now")
        wait_for(lambda: call(served.url, "/ready")[0] == 200, 60, "readiness")
    finally:
        served.stop()


def started_client(url: str, rows: list[dict], folder: Path) -> tuple[subprocess.Popen, Path,
                                                                       Path]:
    rows_file, out, stop = folder / "rows.json", folder / "responses.jsonl", folder / "stop"
    rows_file.write_text(json.dumps(rows))
    client = subprocess.Popen([sys.executable, str(TESTS / "serving_client.py"), url,
                               str(rows_file), str(out), str(stop), "300"])
    wait_for(lambda: out.exists() and out.stat().st_size > 0, 60, "the first response")
    return client, out, stop


def responses(out: Path) -> list[dict]:
    return [json.loads(line) for line in out.read_text().splitlines() if line.endswith("}")]


def served_after(out: Path, since: float, instance: str) -> dict | None:
    """The first response sent after ``since`` that ``instance`` answered."""
    return next((r for r in responses(out) if r["sent"] >= since
                 and r.get("instance") == instance), None)


def seconds_since_epoch(at: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()


def lifecycle(project: Path, env: dict[str, str], *argv: str) -> str:
    """A lifecycle command as a user runs it; its one line of output."""
    return run([sys.executable, "-m", "flowpolicy", *argv], project, env).stdout.strip()


def test_serve_follows_promotions_and_rollbacks_under_continuous_load(trained, tmp_path):
    project, root, env = trained
    registry = open_registry(env["FLOWPOLICY_REGISTRY"])
    staging = Scope("fraud_detection", "staging", "model", "fraud_model")
    assert lifecycle(project, env, "promote", "fraud_model", "--from", "dev", "--to",
                     "staging", "--instance", "v1").startswith("promoted fraud_model v1")
    all_rows = rows_that_tell_the_models_apart(project, env)
    expected = predictions(project, root, env, "dev", ["v1", "v2"], all_rows)
    differ = [i for i, (a, b) in enumerate(zip(expected["v1"], expected["v2"], strict=True))
              if a != b]
    assert differ, "v1 and v2 answer every row alike: the test could not tell them apart"
    picked = sorted(set(differ[:8]) | set(range(8)))
    rows = [all_rows[i] for i in picked]
    answers = {v: [expected[v][i] for i in picked] for v in ("v1", "v2")}  # staging v1, v2

    served = Served(serve_argv(root, "--branch", "staging"), project, env)
    assert "fraud_model v1, @candidate on fraud_detection/staging" in served.banner
    client, out, stop = started_client(served.url, rows, tmp_path)
    switches = []
    try:
        def moved(argv: tuple[str, ...], to: str) -> None:
            lifecycle(project, env, *argv)
            at = registry.alias_history(staging, "candidate")[-1].at
            first = wait_for(lambda: served_after(out, seconds_since_epoch(at), to), 60,
                             f"{to} to answer after {' '.join(argv)}")
            switches.append((" ".join(argv[:2]), to, first["received"] - seconds_since_epoch(at)))

        promote_v2 = ("promote", "fraud_model", "--from", "dev", "--to", "staging",
                      "--instance", "v2")
        back = ("rollback", "fraud_model", "--branch", "staging", "--reason", "test rollback")
        moved(promote_v2, "v2")       # staging v2, @candidate v1 -> v2
        moved(back, "v1")             # @candidate v2 -> v1
        moved(promote_v2, "v2")       # already promoted: the same staging v2, alias moved back
        moved(back, "v1")
        broken = registry.register(staging, kind="artifact", created_by=USER,
                                   annotations={"artifact": "model", "f1_score": "0.95",
                                                "training_run_id": "1"},
                                   description="its producing task does not exist")
        broken_move = lifecycle(project, env, "alias", "set", "fraud_model", "candidate",
                                "--branch", "staging", "--to", broken.id, "--reason",
                                "broken on purpose")
        assert broken_move == f"@candidate on staging v1 → {broken.id}"
        error = wait_for(lambda: call(served.url, "/model/info")[2]["last_reload_error"], 60,
                         "the broken instance to be refused")
        assert error["to"] == broken.id and "still serving v1" in error["error"]
        lifecycle(project, env, *back)  # broken -> v1, which is being served: nothing loads
        moved(promote_v2, "v2")
        attempts = call(served.url, "/model/info")[2]["reloads"]
    finally:
        stop.touch()
        client.wait(60)
        served.stop(signal.SIGINT)
    answered = responses(out)
    assert len(answered) > 50
    assert [r for r in answered if r["status"] != 200] == []
    assert all(r["header"].rsplit("/", 1)[1] == r["instance"] for r in answered)
    assert all(r["predictions"] == answers[r["instance"]] for r in answered)
    assert {r["instance"] for r in answered} == {"v1", "v2"}  # never the broken instance
    info_moves = [m for m in registry.alias_history(staging, "candidate")]
    assert [(m.from_version, m.to_version) for m in info_moves] == [
        (None, 1), (1, 2), (2, 1), (1, 2), (2, 1), (1, broken.version), (broken.version, 1),
        (1, 2)]
    assert [m.by.entity_id for m in info_moves] == ["tester"] * len(info_moves)
    assert info_moves[2].reason == "test rollback"
    events = [e.payload for e in registry.events("fraud_detection", "staging", "alias_moved")]
    assert [(e["from"], e["to"]) for e in events] == [
        (instance_id(m.from_version), instance_id(m.to_version)) for m in info_moves]
    # each move was noticed by the server within 2 s of its commit (it looks every 50 ms);
    # the client's view of the switch adds the load and check, printed for the record
    def delay(attempt: dict) -> float:
        seen = seconds_since_epoch(attempt["at"])
        committed = max(seconds_since_epoch(m.at) for m in info_moves
                        if instance_id(m.to_version) == attempt["to"]
                        and seconds_since_epoch(m.at) <= seen)
        return seen - committed

    noticed = [(a["to"], delay(a)) for a in attempts]
    assert [to for to, _ in noticed] == ["v2", "v1", "v2", "v1", broken.id, "v2"]
    assert all(seconds < 2.0 for _, seconds in noticed), noticed
    print("\nnoticed after the commit: " + ", ".join(f"{to} {seconds * 1000:.0f} ms"
                                                    for to, seconds in noticed))
    print("first answer by the new instance after the commit: " + ", ".join(
        f"{what} -> {to} {seconds * 1000:.0f} ms" for what, to, seconds in switches))
