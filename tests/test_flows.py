"""The committed generated flows of the fraud example, run for real: Metaflow (local
metadata and datastore) in subprocesses, against a temporary SQLite registry.

One trained project is shared by every test of this module, also across pytest-xdist
workers (built once, :func:`shared_runs.built_once`): three training runs (a weak model, a
good one, one on shifted data) and one gate run per model. Tests that change registry state work on
instance ids they own or on a branch of their own, so they can run in any order and in
parallel; the two champion tests tag the same Metaflow training runs (each with its own
branch's tag, but Metaflow's local tag writes are unlocked read-modify-writes of the run),
so they take a lock around their runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import random
import shutil
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from shared_runs import built_once

from flowpolicy import Asset
from flowpolicy.demo import flow_environment
from flowpolicy.runtime.steps import refusal_reason

pytestmark = pytest.mark.flows

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = REPO_ROOT / "examples" / "fraud_detection"
PROJECT = "fraud_detection"
FLOWS = ("quality_gate", "fraud_model_champion", "fraud_model_promotion", "fraud_features_drift")
TRAININGS = {
    "weak": ["--seed", "7", "--epochs", "5"],
    "good": ["--seed", "8"],
    "shifted": ["--seed", "9", "--shift", "1.0"],
}


class Project:
    """A copy of the example project with its own Metaflow datastore and registry."""

    def __init__(self, root: Path):
        self.root = root
        self.dir = root / "fraud_detection"
        self.registry = f"sqlite:///{root / 'registry.db'}"
        # The project sits inside the datastore root: Metaflow writes local cards under the
        # first .metaflow folder above the working directory and its client reads them under
        # the datastore root, so they must be the same folder.
        self.datastore = root

    def env(self, branch: str = "dev") -> dict[str, str]:
        return flow_environment(self.datastore, self.registry, user="tester", branch=branch)

    def command(self, script: str, *args: str) -> list[str]:
        return [sys.executable, script, "--quiet", "run", *args]

    def run(self, script: str, *args: str, branch: str = "dev") -> dict:
        """Run a flow; returns its exit code, output and run pathspec."""
        run_id_file = self.root / f"run-id-{uuid.uuid4().hex}"
        proc = subprocess.run(
            self.command(script, "--run-id-file", str(run_id_file), *args),
            cwd=self.dir, env=self.env(branch), capture_output=True, text=True, timeout=300,
        )
        return self._result(script, proc.returncode, proc.stdout + proc.stderr, run_id_file)

    def start(self, script: str, *args: str, branch: str = "dev"):
        run_id_file = self.root / f"run-id-{uuid.uuid4().hex}"
        proc = subprocess.Popen(
            self.command(script, "--run-id-file", str(run_id_file), *args),
            cwd=self.dir, env=self.env(branch), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )
        return proc, run_id_file

    def finish(self, script: str, started) -> dict:
        proc, run_id_file = started
        output, _ = proc.communicate(timeout=300)
        return self._result(script, proc.returncode, output, run_id_file)

    def _result(self, script: str, returncode: int, output: str, run_id_file: Path) -> dict:
        run_id = run_id_file.read_text().strip() if run_id_file.exists() else None
        flow = _flow_class(self.dir / script)
        return {"returncode": returncode, "output": output,
                "run": f"{flow}/{run_id}" if run_id else None}

    def asset(self, branch: str = "dev") -> Asset:
        return Asset(project=PROJECT, branch=branch, registry=self.registry)

    def card(self, run: str, step: str) -> dict:
        """The decision card of ``run``'s ``step``, read back with Metaflow's client
        (``get_cards``) in a subprocess: its type and its components, unpacked from the HTML
        page as Metaflow's card script reads them."""
        out = subprocess.run([sys.executable, "-c", READ_CARD, f"{run}/{step}"], cwd=self.dir,
                             env=self.env(), capture_output=True, text=True, check=True,
                             timeout=120).stdout
        return json.loads(out.strip().splitlines()[-1])

    def client(self, code: str) -> object:
        """Evaluate ``code`` with Metaflow's client in a subprocess (the client binds its
        datastore root at import, so it must not run in the shared test process)."""
        script = ("import json\nfrom metaflow import Run, Flow, namespace\nnamespace(None)\n"
                  f"print(json.dumps({code}))")
        out = subprocess.run([sys.executable, "-c", script], cwd=self.dir, env=self.env(),
                             capture_output=True, text=True, check=True, timeout=120).stdout
        return json.loads(out.strip().splitlines()[-1])


READ_CARD = """
import base64, json, re, sys
from metaflow import Step, namespace
from metaflow.cards import get_cards
namespace(None)
(card,) = get_cards(Step(sys.argv[1]).task, id="decision")
html = card.get()
encoded = re.search(r'__MF_DATA__\\["[^"]+"\\] = "([^"]+)"', html).group(1)
(page,) = json.loads(base64.b64decode(encoded))["components"]
components = [c for section in page["contents"] for c in section["contents"]]
print(json.dumps({"type": card.type, "components": components,
                  "fonts": "fonts.googleapis.com" in html}))
"""


def _tables(card: dict) -> dict[str, list]:
    """The card's tables by their first header."""
    return {c["columns"][0]: c["data"] for c in card["components"] if c["type"] == "table"}


def _text(card: dict) -> str:
    return "\n".join(c["source"] for c in card["components"] if c["type"] == "markdown")


def _charts(card: dict) -> list[dict]:
    return [c["spec"] for c in card["components"] if c["type"] == "vegaChart"]


def _shows_identity(card: dict, record: dict, **instances: str) -> None:
    recorded = dict(_tables(card)["recorded"])
    assert recorded["policy"] == f"sha256:{record['policy_hash']}"
    for label, instance in instances.items():
        assert recorded[label.replace("_", " ")] == instance


def _flow_class(path: Path) -> str:
    import ast

    tree = ast.parse(path.read_text())
    return next(n.name for n in tree.body if isinstance(n, ast.ClassDef))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(project: Project) -> dict:
    for leftover in (project.dir, project.datastore):  # of a build that failed half-way
        shutil.rmtree(leftover, ignore_errors=True)
    (project.root / "registry.db").unlink(missing_ok=True)
    shutil.copytree(EXAMPLE, project.dir, ignore=shutil.ignore_patterns(".metaflow", "__pycache__"))
    started = {name: project.start("train_flow.py", *args) for name, args in TRAININGS.items()}
    trainings = {name: project.finish("train_flow.py", s) for name, s in started.items()}
    for result in trainings.values():
        assert result["returncode"] == 0, result["output"]
    # The three ran at once, so map instances to trainings by what each registered.
    dev = project.asset()
    models, features = {}, {}
    for name, result in trainings.items():
        run_id = result["run"].split("/")[1]
        models[name] = next(i.id for i in dev.list_model_asset_instances("fraud_model")
                            if i.annotations["training_run_id"] == run_id)
        features[name] = next(i.id for i in dev.list_data_asset_instances("fraud_features")
                              if i.annotations["run_pathspec"].split("/")[1] == run_id)
    started = {name: project.start("flows/quality_gate.py", "--instance", models[name])
               for name in ("weak", "good")}
    gates = {name: project.finish("flows/quality_gate.py", s) for name, s in started.items()}
    return {"runs": {n: r["run"] for n, r in trainings.items()},
            "models": models, "features": features, "gates": gates}


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> tuple[Project, dict]:
    """The trained example project, built once per session (shared by xdist workers)."""
    def build(root: Path) -> None:
        (root / "state.json").write_text(json.dumps(_build(Project(root))))

    root = built_once(tmp_path_factory, "flowpolicy-flows", build)
    return Project(root), json.loads((root / "state.json").read_text())


@pytest.fixture
def champion_lock(trained) -> Iterator[None]:
    project, _ = trained
    with _locked(project.root / "champion.lock"):
        yield


# --- every flow is valid Metaflow -------------------------------------------------------


@pytest.mark.parametrize("flow", FLOWS)
def test_generated_flow_passes_metaflow_check(trained, flow):
    project, _ = trained
    proc = subprocess.run([sys.executable, f"flows/{flow}.py", "--quiet", "check"],
                          cwd=project.dir, env=project.env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- quality gate -------------------------------------------------------------------------


def _events(project: Project, name: str, branch: str = "dev") -> list[dict]:
    return project.asset(branch).list_events(name)


def test_gate_failure_publishes_its_event_then_fails_the_run(trained):
    project, state = trained
    weak = state["models"]["weak"]
    result = state["gates"]["weak"]
    assert result["returncode"] == 1
    reason = refusal_reason(result["output"])
    assert reason.startswith(f"gate quality failed for fraud_model {weak}: f1_score = ")
    assert reason.endswith("is below the minimum 0.8")
    events = [e for e in _events(project, "quality_gate_failed")
              if e["payload"]["instance"] == weak]
    assert len(events) == 1 and events[0]["event"] == "prj.fraud_detection.dev.quality_gate_failed"
    (record,) = project.asset().evidence("fraud_model", weak, kind="gate")
    assert record["passed"] is False and record["rule"] == "quality"
    assert record["details"]["checks"][0]["min"] == 0.8
    assert record["created_by"]["entity_id"].startswith(state["gates"]["weak"]["run"])
    # the deciding step succeeded, so its card was rendered before the run was refused
    card = project.card(result["run"], "evaluate")
    assert f"## Quality gate `quality` on `fraud_model` {weak}: failed" in _text(card)
    (row,) = _tables(card)["metric"]
    check = record["details"]["checks"][0]
    assert row[0] == "f1_score" and float(row[1]) == check["value"]
    assert row[2:] == ["≥ 0.8", "failed"]
    _shows_identity(card, record, instance=weak)


def test_gate_pass_publishes_its_event_and_records_evidence_and_policy(trained):
    project, state = trained
    good = state["models"]["good"]
    result = state["gates"]["good"]
    assert result["returncode"] == 0, result["output"]
    assert [e["payload"]["passed"] for e in _events(project, "promote_model")
            if e["payload"]["instance"] == good] == [True]
    (record,) = project.asset().evidence("fraud_model", good, kind="gate")
    check = record["details"]["checks"][0]
    value = float(project.asset().peek_model_asset("fraud_model", good)
                  ["model_properties"]["annotations"]["f1_score"])
    assert record["passed"] is True and check["value"] == value and check["min"] == 0.8
    policy_hash = (EXAMPLE / "flows" / "quality_gate.py").read_text().split("sha256:")[1][:64]
    assert record["policy_hash"] == policy_hash
    seen = project.client(
        f"[sorted(Run({result['run']!r}).user_tags), "
        f"Run({result['run']!r})['end'].task['verdict'].data['policy_hash']]"
    )
    assert seen == [["asset_write_branch:dev", f"flowpolicy_policy:{policy_hash[:12]}"],
                    policy_hash]
    card = project.card(result["run"], "evaluate")
    assert card["type"] == "flowpolicy" and card["fonts"] is False
    assert "Judged under the policy's thresholds: f1_score >= 0.8." in _text(card)
    assert _tables(card)["metric"] == [["f1_score", repr(value), "≥ 0.8", "passed"]]
    _shows_identity(card, record, instance=good, event="promote_model")


def test_gate_threshold_is_a_parameter_a_run_can_override(trained):
    project, state = trained
    shifted = state["models"]["shifted"]  # no other test judges this one
    result = project.run("flows/quality_gate.py", "--instance", shifted, "--min_f1_score", "0.999")
    assert result["returncode"] == 1
    assert refusal_reason(result["output"]).startswith(
        f"gate quality failed for fraud_model {shifted} (what-if run under f1_score >= 0.999, "
        "the policy's f1_score >= 0.8: recorded, never accepted): f1_score = ")
    (record,) = project.asset().evidence("fraud_model", shifted, kind="gate")
    assert record["passed"] is False and record["details"]["checks"][0]["min"] == 0.999
    assert record["details"]["under_policy"] is False
    assert [e for e in _events(project, "quality_gate_failed")
            if e["payload"]["instance"] == shifted] == []  # a what-if publishes nothing
    card = project.card(result["run"], "evaluate")
    assert ("**What-if run** under f1_score >= 0.999; the policy's are f1_score >= 0.8"
            in _text(card))
    (row,) = _tables(card)["metric"]
    assert row[2:] == ["≥ 0.999", "≥ 0.8", "failed"]
    _shows_identity(card, record, event="quality_gate_failed (not published: what-if)")


def test_threshold_override_is_a_what_if_that_promotion_refuses(trained):
    """The bypass: a gate run with a lowered threshold passes a weak model. Its evidence says
    so (the thresholds used and the policy's), and promotion refuses to rest on it."""
    project, _ = trained
    weak = project.asset().register_model_asset(
        "fraud_model", annotations={"f1_score": "0.5", "training_run_id": "manual"})["id"]
    gate = project.run("flows/quality_gate.py", "--instance", weak, "--min_f1_score", "0.1")
    assert gate["returncode"] == 0, gate["output"]
    assert "what-if run: event promote_model not published" in gate["output"]
    assert (f"gate quality passed for fraud_model {weak} (what-if run under f1_score >= 0.1, "
            "the policy's f1_score >= 0.8: recorded, never accepted)") in gate["output"]
    (record,) = project.asset().evidence("fraud_model", weak, kind="gate")
    details = record["details"]
    assert record["passed"] is True and details["under_policy"] is False
    assert details["thresholds"] == [{"metric": "f1_score", "min": 0.1, "max": None}]
    assert details["policy_thresholds"] == [{"metric": "f1_score", "min": 0.8, "max": None}]
    assert [e for e in _events(project, "promote_model") if e["payload"]["instance"] == weak] == []

    promotion = project.run("flows/fraud_model_promotion.py", "--source", "dev", "--target",
                            "staging", "--instance", weak)
    assert promotion["returncode"] == 1, promotion["output"]
    assert refusal_reason(promotion["output"]) == (
        f"promotion of fraud_model {weak} from dev to staging refused: gate quality has no "
        f"result on fraud_model {weak} judged under the policy's thresholds: the latest at "
        f"{record['created_at']} it was judged under f1_score >= 0.1 in a what-if run, the "
        "policy's are f1_score >= 0.8")
    assert _promotions_into(project, "staging", weak) == []


# --- promotion ----------------------------------------------------------------------------


def _promotions_into(project: Project, branch: str, source_instance: str) -> list:
    with contextlib.suppress(Exception):
        return [i for i in project.asset(branch).list_model_asset_instances("fraud_model")
                if i.annotations.get("promoted_from_instance") == source_instance]
    return []


def test_promotion_along_a_declared_edge(trained):
    project, state = trained
    good = state["models"]["good"]
    result = project.run("flows/fraud_model_promotion.py", "--source", "dev", "--target",
                         "staging", "--instance", good)
    assert result["returncode"] == 0, result["output"]
    (promoted,) = _promotions_into(project, "staging", good)
    assert promoted.annotations["promoted_from_branch"] == "dev"
    assert project.asset("staging").get_alias("fraud_model", "candidate") == promoted.id
    (record,) = project.asset().evidence("fraud_model", good, kind="promotion")
    assert record["passed"] is True and record["rule"] == "dev->staging"
    assert record["details"]["satisfied"]
    card = project.card(result["run"], "decide")
    assert f"`fraud_model` {good} from dev to staging: allowed" in _text(card)
    tables = _tables(card)
    assert tables["edge"] == [["dev → staging", "quality", "candidate"]]
    (gate,) = project.asset().evidence("fraud_model", good, kind="gate")
    assert tables["requirement"] == [["quality", "holds", (
        f"passed at {gate['created_at']} in {gate['created_by']['entity_id']} "
        f"(policy {gate['policy_hash'][:12]})")]]
    _shows_identity(card, record, instance=f"{good} on dev")


@pytest.mark.parametrize(("model", "source", "target", "reason"), [
    ("weak", "dev", "staging", "gate quality failed"),
    ("good", "dev", "prod", "no promotion edge dev -> prod is declared"),
])
def test_promotion_is_refused(trained, model, source, target, reason):
    project, state = trained
    instance = state["models"][model]
    result = project.run("flows/fraud_model_promotion.py", "--source", source, "--target",
                         target, "--instance", instance)
    assert result["returncode"] == 1
    said = refusal_reason(result["output"])
    assert said.startswith(f"promotion of fraud_model {instance} from {source} to {target} "
                           "refused: ") and reason in said
    assert _promotions_into(project, target, instance) == []
    refused = [r for r in project.asset().evidence("fraud_model", instance, kind="promotion")
               if r["rule"] == f"{source}->{target}"]
    assert [r["passed"] for r in refused] == [False]
    card = project.card(result["run"], "decide")  # a refusal is a decision: it has its card
    assert f"from {source} to {target}: refused" in _text(card)
    assert [f"- {reason}" for reason in refused[0]["details"]["reasons"]] == [
        line for line in _text(card).splitlines() if line.startswith("- ")]


# --- champion / challenger ----------------------------------------------------------------


def _register_candidates(project: Project, branch: str, scores, runs) -> list[str]:
    """Model instances with chosen scores, each pointing at a real training run (whose
    Metaflow tags mirror the champion)."""
    asset = project.asset(branch)
    return [
        asset.register_model_asset(
            "fraud_model", kind="artifact",
            annotations={"f1_score": score, "run_pathspec": f"{run}/train/2"},
        )["id"]
        for score, run in zip(scores, runs, strict=True)
    ]


def _tagged_runs(project: Project, branch: str) -> list[str]:
    """The training runs carrying ``branch``'s champion tag."""
    return project.client(
        f"sorted(r.pathspec for r in Flow('FraudTrainingFlow').runs('champion:{branch}'))")


def test_champion_first_then_keep_then_promote(trained, champion_lock):
    project, state = trained
    branch = f"champ_{uuid.uuid4().hex[:8]}"
    run_a, run_b = state["runs"]["weak"], state["runs"]["good"]
    first, close, better = _register_candidates(
        project, branch, [0.85, 0.86, 0.9], [run_a, run_a, run_b])
    outcomes, runs = [], {}
    for candidate in (first, close, better):
        result = project.run("flows/fraud_model_champion.py", "--candidate", candidate,
                             branch=branch)
        assert result["returncode"] == 0, result["output"]
        runs[candidate] = result["run"]
        outcomes.append(project.asset(branch).get_alias("fraud_model", "champion"))
        if candidate == first:
            assert _tagged_runs(project, branch) == [run_a]
    assert outcomes == [first, first, better]
    asset = project.asset(branch)
    decisions = {c: asset.evidence("fraud_model", c, kind="champion")[0] for c in outcomes}
    decisions[close] = asset.evidence("fraud_model", close, kind="champion")[0]
    assert decisions[first]["passed"] is True and decisions[first]["details"]["champion"] is None
    assert decisions[close]["passed"] is False
    assert decisions[close]["details"]["margin"] == pytest.approx(0.01)
    assert decisions[better]["details"]["champion"] == first
    assert decisions[better]["details"]["candidate_value"] == 0.9
    assert [e["payload"]["candidate"] for e in _events(project, "model_promoted", branch)] == [
        first, better]
    assert _tagged_runs(project, branch) == [run_b]
    for candidate, after, moved in ((close, first, "not moved"), (better, better, "moved")):
        card = project.card(runs[candidate], "decide")
        details = decisions[candidate]["details"]
        tables = _tables(card)
        assert tables["role"] == [["candidate", candidate, repr(details["candidate_value"])],
                                  ["champion", first, repr(details["champion_value"])]]
        assert tables["margin"] == [[repr(details["margin"]), "0.02",
                                     "replace" if details["promote"] else "keep"]]
        assert tables["alias"] == [["champion", first, after, moved]]
        _shows_identity(card, decisions[candidate], candidate=candidate, champion_before=first)


def test_concurrent_champion_evaluations_leave_exactly_one_champion(trained, champion_lock):
    project, state = trained
    branch = f"race_{uuid.uuid4().hex[:8]}"
    scores = [round(0.70 + 0.03 * k, 2) for k in range(8)]
    runs = [state["runs"][name] for name in ("weak", "good", "shifted")]
    candidates = _register_candidates(
        project, branch, scores, [runs[k % len(runs)] for k in range(8)])
    order = list(candidates)
    random.Random(4).shuffle(order)
    started = [project.start("flows/fraud_model_champion.py", "--candidate", c, branch=branch)
               for c in order]
    results = [project.finish("flows/fraud_model_champion.py", s) for s in started]
    for result in results:
        assert result["returncode"] == 0, result["output"]

    asset = project.asset(branch)
    best = candidates[-1]  # every step beats the one before by more than min_improvement
    assert asset.get_alias("fraud_model", "champion") == best
    history = asset.alias_history("fraud_model", "champion")
    assert history[0]["from"] is None and history[-1]["to"] == best
    for before, after in zip(history, history[1:], strict=False):
        assert after["from"] == before["to"]  # no move was lost or based on a stale read
    champions = [c for c in candidates
                 if asset.evidence("fraud_model", c, kind="champion")[-1]["passed"]]
    assert best in champions
    assert _tagged_runs(project, branch) == [runs[7 % len(runs)]]


def test_min_improvement_override_decides_but_moves_no_champion(trained, champion_lock):
    project, state = trained
    branch = f"whatif_{uuid.uuid4().hex[:8]}"
    run_a, run_b = state["runs"]["weak"], state["runs"]["good"]
    first, close = _register_candidates(project, branch, [0.85, 0.86], [run_a, run_b])
    assert project.run("flows/fraud_model_champion.py", "--candidate", first,
                       branch=branch)["returncode"] == 0
    result = project.run("flows/fraud_model_champion.py", "--candidate", close,
                         "--min_improvement", "0", branch=branch)
    assert result["returncode"] == 0, result["output"]
    assert "what-if run under min_improvement 0, the policy's min_improvement 0.02" in (
        result["output"])
    asset = project.asset(branch)
    assert asset.get_alias("fraud_model", "champion") == first
    (record,) = asset.evidence("fraud_model", close, kind="champion")
    assert record["details"]["promote"] is True and record["details"]["under_policy"] is False
    assert [e["payload"]["candidate"] for e in _events(project, "model_promoted", branch)] == [
        first]
    assert _tagged_runs(project, branch) == [run_a]
    card = project.card(result["run"], "decide")
    assert "would become the champion (what-if: nothing moved)" in _text(card)
    assert "**What-if run** under min_improvement 0; the policy's are min_improvement 0.02" in (
        _text(card))
    assert _tables(card)["alias"] == [["champion", first, first, "not moved"]]


# --- expected refusals ---------------------------------------------------------------------


def _refusal_block(output: str, headline: str) -> list[str]:
    """The failing step's ``<flow X step Y> failed:`` line, then the headline and the line
    under it, prefixes removed (a line the step printed may come between the first two:
    Metaflow reads a task's stdout and stderr one line of each at a time)."""
    lines = [line.split("] ", 1)[1] if "] " in line else line for line in output.splitlines()]
    failed = next(i for i, line in enumerate(lines) if line.endswith("> failed:"))
    at = lines.index(f"{headline}:", failed)
    assert at - failed <= 2, lines[failed:at]
    return [lines[failed], *lines[at:at + 2]]


def test_expected_refusals_end_the_run_with_one_line_and_no_traceback(trained):
    """What Metaflow 2.19 prints for flowpolicy's refusals (a MetaflowException subclass
    raised in a step): the step, a headline and the reason, no traceback; exit code 1."""
    project, state = trained
    lonely = f"lonely_{uuid.uuid4().hex[:8]}"
    project.asset(lonely).register_data_asset("fraud_features", kind="parquet")
    ungated = project.asset().register_model_asset(
        "fraud_model", annotations={"f1_score": "0.95", "training_run_id": "manual"})["id"]
    cases = {
        "failed gate": (state["gates"]["weak"], "QualityGateFlow step end", "Gate failed",
                        f"gate quality failed for fraud_model {state['models']['weak']}: "),
        "missing instance": (
            project.run("flows/quality_gate.py", "--instance", "v999"),
            "QualityGateFlow step start", "No such instance",
            "v999 of model asset 'fraud_model' in fraud_detection/dev does not exist: "),
        "refused promotion": (
            project.run("flows/fraud_model_promotion.py", "--instance", ungated),
            "FraudModelPromotionFlow step end", "Promotion refused",
            f"promotion of fraud_model {ungated} from dev to staging refused: gate quality has "
            f"no recorded result on fraud_model {ungated}"),
        "nothing to compare": (
            project.run("flows/fraud_features_drift.py", branch=lonely),
            "FraudFeaturesDriftFlow step start", "Nothing to compare",
            f"nothing to compare: latest-1 of data asset 'fraud_features' in "
            f"fraud_detection/{lonely} goes back past v1"),
    }
    for name, (result, step_name, headline, reason) in cases.items():
        output = result["output"]
        assert result["returncode"] == 1, (name, output)
        assert "Traceback" not in output and "Internal error" not in output, (name, output)
        block = _refusal_block(output, headline)
        assert block[:2] == [f"<flow {step_name}> failed:", f"{headline}:"], (name, block)
        assert block[2].startswith(reason), (name, block)
        assert refusal_reason(output) == block[2]


# --- drift --------------------------------------------------------------------------------


def _report_for(project: Project, current: str) -> dict:
    (report,) = [i for i in project.asset().list_data_asset_instances("drift_reports")
                 if i.annotations["current_instance"] == current]
    return report.annotations


@pytest.mark.parametrize(("current", "reference", "level", "event"), [
    ("good", "weak", "normal", None),
    ("shifted", "good", "high", "retrain_required"),
])
def test_drift_monitor(trained, current, reference, level, event):
    project, state = trained
    current_id, reference_id = state["features"][current], state["features"][reference]
    result = project.run("flows/fraud_features_drift.py", "--current", current_id,
                         "--reference", reference_id)
    assert result["returncode"] == 0, result["output"]
    report = _report_for(project, current_id)
    assert report["level"] == level and report["reference_instance"] == reference_id
    columns = {"amount", "hour", "distance_km", "merchant_risk", "tx_last_24h", "foreign",
               "is_fraud"}
    assert {k.removeprefix("ks_") for k in report if k.startswith("ks_")} == columns
    assert float(report["max_statistic"]) == max(
        float(report[f"ks_{c}"]) for c in columns)
    (record,) = project.asset().evidence("fraud_features", current_id, asset_type="data",
                                         kind="drift")
    assert record["details"]["level"] == level and record["passed"] is (event is None)
    published = [e for e in _events(project, "retrain_required")
                 if e["payload"]["current"] == current_id]
    assert len(published) == (1 if event else 0)

    card = project.card(result["run"], "measure")
    details = record["details"]
    assert (f"## Drift of `fraud_features` {current_id} against {reference_id}: {level}"
            in _text(card))
    _shows_drift(card, details)
    assert _tables(card)["column"][0][0] == details["worst_column"]
    bars, *ecdfs = _charts(card)
    assert {(v["column"], v["level"]): v["threshold"]
            for v in bars["layer"][2]["data"]["values"]} == {
        (column, name): threshold for column in columns
        for name, threshold in (("elevated", 0.05), ("high", 0.1))}
    pictured = details["distributions"]["columns"]
    assert len(ecdfs) == len(pictured) == 3 and details["worst_column"] in pictured
    for spec, (column, sides) in zip(ecdfs, pictured.items(), strict=True):
        assert spec["encoding"]["x"]["title"] == column
        drawn = [v["value"] for v in spec["data"]["values"]
                 if v["instance"] == f"current {current_id}"]
        assert drawn == sides["current"] and len(drawn) == 51
    _shows_identity(card, record, current=current_id, reference=reference_id)


def _shows_drift(card: dict, details: dict) -> None:
    """The card's table and bars show each column's statistic, value, bound and level as the
    drift evidence recorded them."""
    columns, bounded = details["columns"], details["mode"] == "sketch"
    for name, statistic, value, *bound, level, n_current, n_reference in _tables(card)["column"]:
        column = columns[name]
        assert (statistic, float(value), level) == (
            column["statistic"], column["value"], column["level"])
        assert bound == ([f"± {column['bound']!r}"] if bounded else [])
        assert [int(n_current), int(n_reference)] == column["sizes"]
    bars = _charts(card)[0]["layer"][0]["data"]["values"]
    assert {v["column"]: (v["value"], v["level"]) for v in bars} == {
        name: (column["value"], column["level"]) for name, column in columns.items()}


SKETCH_POLICY = """\
version: 1
project: fraud_detection
extends: ["../policies/fraud.yaml"]
assets:
  sketch_reports: {type: data}
drift:
  fraud_features:
    mode: sketch
    report_asset: sketch_reports
    column_settings:
      foreign: {statistic: linf}
      tx_last_24h: {statistic: chi2, levels: {elevated: 0.95, high: 0.99}}
      hour: {statistic: psi}
      amount: {levels: {high: 0.9}}
    events: {high: features_drifted, indeterminate: drift_unclear}
compile: {output_dir: flows}
"""


def test_sketch_mode_drift_with_categorical_columns_and_column_levels(trained):
    """The example's policy with its drift rule in sketch mode, three categorical columns
    and one column's own thresholds, compiled and run for real: the run reads the drift
    profiles stored at registration (never the data) and every figure agrees with the exact
    statistics of the data within its stated bound."""
    from scipy.stats import ks_2samp

    from flowpolicy.runtime.categorical import categorical_statistic

    project, state = trained
    variant = project.dir / "sketch_variant"
    variant.mkdir(exist_ok=True)
    (variant / "fraud.yaml").write_text(SKETCH_POLICY)
    compiled = subprocess.run([sys.executable, "-m", "flowpolicy", "compile", "sketch_variant"],
                              cwd=project.dir, env=project.env(), capture_output=True,
                              text=True, timeout=120)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    current_id, reference_id = state["features"]["weak"], state["features"]["shifted"]
    result = project.run("sketch_variant/flows/fraud_features_drift.py", "--current",
                         current_id, "--reference", reference_id)
    assert result["returncode"] == 0, result["output"]

    (report,) = [i.annotations for i in project.asset().list_data_asset_instances(
        "sketch_reports") if i.annotations["current_instance"] == current_id]
    assert report["mode"] == "sketch" and report["level"] == "high"
    assert {"linf_foreign", "chi2_tx_last_24h", "psi_hour", "ks_amount", "ks_distance_km",
            "ks_merchant_risk", "ks_is_fraud"} <= set(report)
    # the what-if test also judges weak against shifted, with the example's own rule
    (record,) = [r for r in project.asset().evidence("fraud_features", current_id,
                                                     asset_type="data", kind="drift")
                 if r["details"]["mode"] == "sketch"]
    details = record["details"]
    assert details["inputs"] == {"current": "profile", "reference": "profile"}
    assert record["passed"] is False  # high publishes an event
    assert details["under_policy"] is True
    assert details["thresholds"]["columns"]["amount"] == {"statistic": "ks",
                                                          "levels": {"high": 0.9}}
    published = [e for e in _events(project, "features_drifted")
                 if e["payload"]["current"] == current_id]
    assert len(published) == 1

    runs = {name: state["runs"][name] for name in ("weak", "shifted")}
    data = project.client("{name: {k: v.tolist() for k, v in Run(path)['start'].task"
                          "['features'].data.items()} for name, path in "
                          f"{runs!r}.items()}}")
    current, reference = data["weak"], data["shifted"]
    columns = details["columns"]
    for name, column in columns.items():
        if column["statistic"] == "ks":
            exact = ks_2samp(current[name], reference[name]).statistic
            # 20,000 rows fit in a sketch's first level, so here the bound is 0 and D exact.
            assert column["bound"] == 0
            assert column["value"] == pytest.approx(exact, abs=1e-12)
        else:
            counts = [dict(zip(*np.unique(side[name], return_counts=True), strict=True))
                      for side in (current, reference)]
            value, _ = categorical_statistic(column["statistic"], *counts)
            assert column["value"] == pytest.approx(value, rel=1e-12)
            assert column["bound"] == 0
    # amount's own high threshold (0.9) is far above its D; the rule's (0.1) is not.
    assert 0.1 < columns["amount"]["value"] < 0.9
    assert columns["amount"]["level"] == "elevated"
    assert columns["distance_km"]["level"] == "high"

    card = project.card(result["run"], "measure")
    assert (f"Sketch mode (current {current_id} from its profile, reference {reference_id} "
            "from its profile)") in _text(card)
    _shows_drift(card, details)
    ticks = {(v["column"], v["level"]): v["threshold"]
             for v in _charts(card)[0]["layer"][2]["data"]["values"]}
    assert ticks[("amount", "high")] == 0.9 and ticks[("tx_last_24h", "high")] == 0.99
    pictured = details["distributions"]["columns"]
    drawn = _charts(card)[1:]
    assert len(drawn) == len(pictured) == 3
    for spec, (name, summary) in zip(drawn, pictured.items(), strict=True):
        kind = "quantiles" if columns[name]["statistic"] == "ks" else "categories"
        assert summary["kind"] == kind
        if kind == "categories":  # the shares of each value on both sides
            shares = [v["share"] for v in spec["data"]["values"]
                      if v["instance"] == f"current {current_id}"]
            assert shares == summary["current"]
            counts = {str(value): n for value, n in Counter(current[name]).items()}
            assert shares == [counts.get(value, 0) / len(current[name])
                              for value in summary["categories"]]


def test_drift_level_override_is_labelled_and_acts_on_nothing(trained):
    project, state = trained
    current, reference = state["features"]["weak"], state["features"]["shifted"]
    result = project.run("flows/fraud_features_drift.py", "--current", current,
                         "--reference", reference, "--high_threshold", "0.99")
    assert result["returncode"] == 0, result["output"]
    assert "what-if run under normal >= 0, elevated >= 0.05, high >= 0.99, the policy's " \
           "normal >= 0, elevated >= 0.05, high >= 0.1" in result["output"]
    # the sketch-mode test also judges weak against shifted, under a variant's rule
    (record,) = [r for r in project.asset().evidence("fraud_features", current,
                                                     asset_type="data", kind="drift")
                 if r["details"]["mode"] == "exact"]
    details = record["details"]
    assert details["under_policy"] is False and details["level"] == "elevated"
    assert details["thresholds"]["levels"]["high"] == 0.99
    assert details["policy_thresholds"]["levels"]["high"] == 0.1
    reports = []
    with contextlib.suppress(Exception):  # no report registered yet by any test
        reports = [i for i in project.asset().list_data_asset_instances("drift_reports")
                   if i.annotations["current_instance"] == current]
    assert reports == []  # a what-if registers no report
    assert [e for e in _events(project, "retrain_required")
            if e["payload"]["current"] == current] == []
    card = project.card(result["run"], "measure")
    assert ("**What-if run** under normal >= 0, elevated >= 0.05, high >= 0.99; the policy's "
            "are normal >= 0, elevated >= 0.05, high >= 0.1") in _text(card)
    top = _tables(card)["column"][0]  # the rows go from the largest D down
    assert (top[0], top[3]) == (details["worst_column"], "elevated")


# --- cards --------------------------------------------------------------------------------


def test_a_card_that_cannot_be_built_never_fails_the_decision(trained):
    """The gate flow with its card builder broken on purpose (a copy of the committed flow
    that replaces flowpolicy's gate card builder with one that raises, in the flow's own
    process): the run still judges, records, publishes and succeeds, and the card says
    what went wrong."""
    project, _ = trained
    source = (project.dir / "flows" / "quality_gate.py").read_text()
    marker = "from flowpolicy.runtime import steps\n"
    broken = source.replace(marker, marker + (
        "from flowpolicy.runtime import cards\n\n\n"
        "def _broken_card(verdict):\n"
        "    raise RuntimeError('card broken on purpose')\n\n\n"
        "cards.gate_card = _broken_card\n"), 1)
    assert broken != source
    (project.dir / "flows" / "quality_gate_broken_card.py").write_text(broken)
    instance = project.asset().register_model_asset(
        "fraud_model", annotations={"f1_score": "0.91", "training_run_id": "manual"})["id"]

    result = project.run("flows/quality_gate_broken_card.py", "--instance", instance)
    assert result["returncode"] == 0, result["output"]
    assert ("the decision card could not be built (RuntimeError: card broken on purpose); the "
            "decision and its evidence are recorded") in result["output"]
    assert f"gate quality passed for fraud_model {instance}" in result["output"]
    (record,) = project.asset().evidence("fraud_model", instance, kind="gate")
    assert record["passed"] is True and record["details"]["under_policy"] is True
    assert [e["payload"]["passed"] for e in _events(project, "promote_model")
            if e["payload"]["instance"] == instance] == [True]
    assert project.client(f"Run({result['run']!r})['evaluate'].task['verdict'].data['passed']")
    card = project.card(result["run"], "evaluate")
    assert "could not be built" in _text(card) and "card broken on purpose" in _text(card)
