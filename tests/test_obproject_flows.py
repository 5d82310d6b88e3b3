"""Flows written for obproject in the style of the Outerbounds docs (tests/obproject_flows/),
run for real with Metaflow on flowpolicy: once with only their import lines changed, once
unchanged through the opt-in obproject stand-in (in an environment without the real
obproject, which the stand-in never shadows). Also the branch rule on real runs."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from flowpolicy import Asset

pytestmark = pytest.mark.flows

FLOWS = Path(__file__).parent / "obproject_flows"
PROJECT = "docs_style"
IMPORTS = {"from obproject import": "from flowpolicy import",
           "from obproject.assets import": "from flowpolicy.assets import"}
#: What the real obproject installs; the environment for the stand-in leaves it out.
REAL_OBPROJECT = ("obproject", "highlight_card", "deploy", "ob_project_utils")


def port(source: Path, folder: Path) -> Path:
    """Copy a flow with only its obproject import lines changed to flowpolicy's."""
    original = source.read_text()
    ported = original
    for old, new in IMPORTS.items():
        ported = ported.replace(old, new)
    changed = [(a, b) for a, b in zip(original.splitlines(), ported.splitlines(), strict=True)
               if a != b]
    assert changed and all(a.startswith("from obproject") for a, _ in changed)
    target = folder / source.name
    target.write_text(ported)
    return target


def project_folder(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "obproject.toml").write_text(f'project = "{PROJECT}"\n')
    for name, branch in (("spec_main.json", "main"), ("spec_feature.json", "feature/x")):
        (folder / name).write_text(json.dumps({"spec": {"project_branch": branch}}))
    return folder


def flow_env(folder: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FLOWPOLICY_", "OB_", "OBPROJECT_", "METAFLOW_"))}
    env.update(METAFLOW_USER="tester", METAFLOW_DEFAULT_METADATA="local",
               METAFLOW_DEFAULT_DATASTORE="local",
               METAFLOW_DATASTORE_SYSROOT_LOCAL=str(folder / "metaflow"),
               FLOWPOLICY_REGISTRY=f"sqlite:///{folder / 'registry.db'}", **extra)
    return env


def run(argv: list[str], folder: Path, env: dict[str, str], ok: bool = True) -> str:
    done = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True,
                          timeout=300)
    output = done.stdout + done.stderr
    if ok:
        assert done.returncode == 0, f"{argv} failed:\n{output}"
    return output


def artifacts(folder: Path, env: dict[str, str], flow: str, names: list[str],
              python: str = sys.executable) -> list[dict]:
    """The named artifacts of every run of ``flow``, oldest first, and each run's tags."""
    script = textwrap.dedent(f"""
        import json
        from metaflow import Flow, namespace
        namespace(None)
        runs = sorted(Flow({flow!r}).runs(), key=lambda r: int(r.id))
        print(json.dumps([dict({{k: getattr(r.data, k) for k in {names!r}}},
                               tags=sorted(r.tags)) for r in runs]))
    """)
    return json.loads(run([python, "-c", script], folder, env).strip().splitlines()[-1])


@pytest.fixture(scope="module")
def python_without_obproject(tmp_path_factory) -> str:
    """A Python environment with everything the test environment has except the real
    obproject: a fresh venv whose one .pth file adds a folder of links to this
    environment's packages, leaving ob-project-utils' packages out."""
    root = tmp_path_factory.mktemp("no_obproject")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    mirror = root / "packages"
    mirror.mkdir()
    site_packages = Path(sysconfig.get_paths()["purelib"])
    for entry in site_packages.iterdir():
        if entry.name.startswith(REAL_OBPROJECT):
            continue
        if entry.name == "metaflow_extensions":  # keep the other Metaflow extensions
            (mirror / entry.name).mkdir()
            for child in entry.iterdir():
                if child.name != "obproject_utils":
                    (mirror / entry.name / child.name).symlink_to(child)
            continue
        (mirror / entry.name).symlink_to(entry)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; "
                              "print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "test_environment.pth").write_text(
        f"import site; site.addsitedir({str(mirror)!r})\n")
    found = subprocess.run([str(python), "-c", "import importlib.util, flowpolicy, metaflow; "
                            "print(importlib.util.find_spec('obproject'))"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert found == "None"
    return str(python)


# -- external models with blobs, tag-filtered listing and deletion ---------------------------


def check_external_assets(folder: Path, env: dict[str, str], python: str) -> None:
    [got] = artifacts(folder, env, "ExternalAssetsFlow",
                      ["base_llm", "checkpoint", "by_tag", "not_an_artifact", "deleted",
                       "deleted_again", "remaining", "spec"], python)
    task = got["checkpoint"]["producer"]
    assert got["base_llm"] == {"blobs": ["meta-llama/Llama-3.1-8B-Instruct"],
                               "kind": "huggingface", "context_length": 8192}
    assert got["checkpoint"] == {
        "id": "v1", "blobs": ["s3://checkpoints/run-1/"], "kind": "checkpoint_dir",
        "producer_kind": "task", "producer": task, "producer_by_index": task,
        "best_loss": 0.123}
    assert task.startswith("ExternalAssetsFlow/") and task.endswith("/start/1")
    # tags compare as strings, as obproject's filter does: the int 2 matches nothing
    assert got["by_tag"] == {"pytorch": ["training_checkpoints"], "revision_str": ["base_llm"],
                             "revision_int": [], "sensor_data": ["raw_sales"]}
    assert got["not_an_artifact"] == \
        "Model asset 'base_llm' doesn't seem like an artifact. It is of kind 'huggingface'"
    assert got["deleted"] == {"training_checkpoints": {"catalog_deleted": True,
                                                       "metadata_updated": False}}
    assert got["deleted_again"] == {"catalog_deleted": False, "metadata_updated": False}
    assert got["remaining"] == ["base_llm"] and got["spec"] is None
    assert "asset_write_branch:user_tester" in got["tags"]
    registry = Asset(project=PROJECT, branch="user.tester", read_only=True,
                     registry=env["FLOWPOLICY_REGISTRY"])
    [deletion] = registry.deletions("training_checkpoints")  # the audit trail stays
    assert deletion["deleted_through"] == "v1" and deletion["by"]["entity_id"].startswith(
        "ExternalAssetsFlow/")


def test_external_assets_flow_with_its_import_changed(tmp_path):
    folder = project_folder(tmp_path)
    env = flow_env(folder)
    flow = port(FLOWS / "external_assets_flow.py", folder)
    log = run([sys.executable, str(flow), "--no-pylint", "run"], folder, env)
    assert f"flowpolicy: assets are written to {PROJECT}/user_tester, from Metaflow's " \
           "@project branch user.tester" in log
    check_external_assets(folder, env, sys.executable)


def test_external_assets_flow_unchanged_through_the_obproject_stand_in(
        tmp_path, python_without_obproject):
    folder = project_folder(tmp_path)
    env = flow_env(folder)
    (folder / "flow.py").write_text((FLOWS / "external_assets_flow.py").read_text())
    run([python_without_obproject, "-m", "flowpolicy.compat", "flow.py", "--no-pylint", "run"],
        folder, env)
    check_external_assets(folder, env, python_without_obproject)


# -- @project_trigger + @project_schedule + promotion through @candidate and @validated ------


def run_promotion_story(folder: Path, env: dict[str, str], command: list[str],
                        python: str) -> None:
    """Train on feature/x (deployed there), validate on main (deployed there), twice: a
    good model becomes @candidate and @validated, a weaker one only @candidate."""
    for accuracy in ("0.93", "0.80"):
        run([*command, "train_classifier_flow.py", "--no-pylint", "--config", "project_spec",
             "spec_feature.json", "run", "--accuracy", accuracy], folder, env)
        run([*command, "validate_classifier_flow.py", "--no-pylint", "--production",
             "--config", "project_spec", "spec_main.json", "run"], folder, env)
    runs = artifacts(folder, env, "ValidateClassifierFlow",
                     ["trigger_events", "schedule", "metaflow_branch", "candidate_promotion",
                      "candidate", "accuracy", "passed", "validation", "unlisted_alias"], python)
    first, second = runs
    assert first["trigger_events"] == [f"prj.{PROJECT}.main.classifier_trained"]
    assert first["schedule"] == ["0 6 * * *"] and first["metaflow_branch"] == "prod"
    assert "asset_write_branch:main" in first["tags"]
    assert [p["alias"] for p in first["candidate_promotion"]["promoted"]] == ["candidate"]
    assert (first["candidate"], first["accuracy"], first["passed"]) == ("v1", 0.93, True)
    assert first["validation"]["promoted"][0]["alias"] == "validated"
    assert first["unlisted_alias"].startswith(
        "Alias 'blessed' is not in the allowed promotion aliases: ['candidate', 'validated', "
        "'production']")
    assert (second["candidate"], second["accuracy"], second["passed"]) == ("v2", 0.8, False)
    main = Asset(project=PROJECT, branch="main", read_only=True,
                 registry=env["FLOWPOLICY_REGISTRY"])
    assert main.list_aliases("classifier") == {"candidate": "v2", "validated": "v1"}
    validated = main.peek_model_asset("classifier", "@validated")
    annotations = validated["model_properties"]["annotations"]
    assert (annotations["promoted_from_branch"], annotations["promoted_from_instance"],
            annotations["promoted_by"]) == ("feature_x", "v1", "obproject/promote")
    assert validated["model_properties"]["blobs"] == ["s3://models/classifier/0.93/"]
    assert validated["created_by"]["entity_id"].startswith("TrainClassifierFlow/")
    feature = Asset(project=PROJECT, branch="feature_x", read_only=True,
                    registry=env["FLOWPOLICY_REGISTRY"])
    assert [e["event"] for e in feature.list_events("classifier_trained")] == [
        f"prj.{PROJECT}.feature_x.classifier_trained"] * 2
    assert [e["payload"] for e in main.list_events("classifier_validated")] == [
        {"passed": True}, {"passed": False}]


def test_promotion_flows_with_their_imports_changed(tmp_path):
    folder = project_folder(tmp_path)
    for name in ("train_classifier_flow.py", "validate_classifier_flow.py"):
        port(FLOWS / name, folder)
    run_promotion_story(folder, flow_env(folder), [sys.executable], sys.executable)


def test_promotion_flows_unchanged_through_the_obproject_stand_in(tmp_path,
                                                                 python_without_obproject):
    folder = project_folder(tmp_path)
    for name in ("train_classifier_flow.py", "validate_classifier_flow.py"):
        (folder / name).write_text((FLOWS / name).read_text())
    run_promotion_story(folder, flow_env(folder),
                        [python_without_obproject, "-m", "flowpolicy.compat"],
                        python_without_obproject)


# -- the stand-in never shadows a real obproject ------------------------------------------


def test_the_stand_in_refuses_where_the_real_obproject_is_installed(tmp_path):
    folder = project_folder(tmp_path)
    (folder / "flow.py").write_text((FLOWS / "train_classifier_flow.py").read_text())
    env = flow_env(folder)
    done = subprocess.run([sys.executable, "-m", "flowpolicy.compat", "flow.py", "run"],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("error: flowpolicy's obproject stand-in will not shadow the "
                                  "real obproject at ")
    assert len(done.stderr.strip().splitlines()) == 1
    shim = subprocess.run([sys.executable, "-m", "flowpolicy.compat", "--path"],
                          capture_output=True, text=True, timeout=60)
    assert shim.returncode == 2  # not even the path is handed out
    from flowpolicy.compat import SHIM_DIR

    imported = subprocess.run(
        [sys.executable, "-c", "import obproject"], cwd=folder, capture_output=True,
        text=True, timeout=60, env={**env, "PYTHONPATH": str(SHIM_DIR)})
    assert imported.returncode == 1
    assert "ImportError: flowpolicy's obproject stand-in will not shadow the real obproject" \
        in imported.stderr


def test_the_stand_in_path_and_usage(python_without_obproject, tmp_path):
    shim = subprocess.run([python_without_obproject, "-m", "flowpolicy.compat", "--path"],
                          capture_output=True, text=True, timeout=60)
    assert shim.returncode == 0 and Path(shim.stdout.strip(), "obproject").is_dir()
    usage = subprocess.run([python_without_obproject, "-m", "flowpolicy.compat"],
                           capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2 and usage.stderr.startswith("usage: python -m flowpolicy.compat")
    missing = subprocess.run([python_without_obproject, "-m", "flowpolicy.compat", "nope.py"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no flow file 'nope.py'" in missing.stderr


# -- the branch rule on real runs -----------------------------------------------------------

POLICY = """\
version: 1
project: docs_style
extends: ["flowpolicy:naming"]
assets:
  classifier: {type: model}
branches: [dev, staging, prod]
"""


def test_branch_rule_on_real_runs(tmp_path):
    folder = project_folder(tmp_path)
    subprocess.run(["git", "init", "-q", "-b", "main", str(folder)], check=True)
    (folder / "policies").mkdir()
    (folder / "policies" / "docs.yaml").write_text(POLICY)
    flow = port(FLOWS / "train_classifier_flow.py", folder)
    argv = [sys.executable, str(flow), "--no-pylint"]
    # in a checkout on main, a local run writes to Metaflow's user branch, never to "main"
    log = run([*argv, "run"], folder, flow_env(folder))
    assert f"assets are written to {PROJECT}/user_tester" in log
    assert "warning: branch user_tester is not declared by policies/docs.yaml (branches: " \
           "dev, staging, prod)" in log
    log = run([*argv, "--branch", "x", "run"], folder, flow_env(folder))
    assert f"{PROJECT}/test_x, from Metaflow's @project branch test.x" in log
    log = run([*argv, "--production", "run"], folder, flow_env(folder))
    assert f"{PROJECT}/prod" in log and "not declared" not in log
    log = run([*argv, "run"], folder, flow_env(folder, FLOWPOLICY_BRANCH="dev"))
    assert f"{PROJECT}/dev, from FLOWPOLICY_BRANCH" in log and "not declared" not in log
    log = run([*argv, "--config", "project_spec", "spec_feature.json", "run"], folder,
              flow_env(folder, FLOWPOLICY_BRANCH="dev"))
    assert f"{PROJECT}/feature_x, from the deploy-time branch (project_spec)" in log
    assert "FLOWPOLICY_BRANCH='dev' is ignored: this flow was deployed for branch 'feature/x'" \
        in log
    registry = f"sqlite:///{folder / 'registry.db'}"
    written = {branch: [i.id for i in Asset(project=PROJECT, branch=branch, read_only=True,
                                           registry=registry).list_model_asset_instances(
                                               "classifier")]
               for branch in ("user_tester", "test_x", "prod", "dev", "feature_x")}
    assert written == {b: ["v1"] for b in written}
    assert Asset(project=PROJECT, branch="main", read_only=True, registry=registry) \
        .list_model_assets()["items"] == []
    tags = [r["tags"] for r in artifacts(folder, flow_env(folder), "TrainClassifierFlow",
                                         ["accuracy"])]
    assert [next(t for t in run_tags if t.startswith("asset_write_branch:"))
            for run_tags in tags] == [f"asset_write_branch:{b}" for b in written]


# -- @highlight ----------------------------------------------------------------------------


def test_highlight_is_stored_as_obproject_stores_it_and_drawn_as_a_local_card(tmp_path):
    from highlight_card.highlight_decorator import HighlightData

    folder = project_folder(tmp_path)
    env = flow_env(folder)
    flow = port(FLOWS / "highlight_flow.py", folder)
    run([sys.executable, str(flow), "--no-pylint", "run"], folder, env)
    [got] = artifacts(folder, env, "HighlightFlow", ["highlight_data"])
    theirs = HighlightData()  # obproject's own, filled the same way
    theirs.set_title("Model quality")
    theirs.add_label("fraud")
    theirs.add_line("0.93", caption="accuracy")
    theirs.add_column(big="0.93", small="accuracy")
    expected = theirs._serialize()
    ours = got["highlight_data"]
    assert ours.pop("id").startswith("highlight-") and expected.pop("id")
    assert ours == expected
    assert "highlight" in got["tags"]
    # the card, as Metaflow's card command writes it (local cards go under the working
    # folder's .metaflow/ whatever the datastore root)
    [card_file] = (folder / ".metaflow" / "mf.cards").glob(
        "HighlightFlow/runs/*/steps/start/tasks/*/cards/blank-highlight-*.html")
    encoded = re.search(r'__MF_DATA__\["[^"]+"\] = "([^"]+)"', card_file.read_text())
    card = json.dumps(json.loads(base64.b64decode(encoded.group(1))))
    for shown in ("# Model quality", "`fraud`", "**accuracy** 0.93", '"0.93"'):
        assert shown in card
