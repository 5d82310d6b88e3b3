"""Contract tests against the real obproject (ob-project-utils 0.2.42, a test dependency).

For every public name obproject exports, flowpolicy has a counterpart with a compatible
signature, or the README's table of intentional differences lists it with its reason (and
every row of that table names something obproject really has). Where obproject's code runs
without the Outerbounds service — branch naming, scope resolution, parsing, deployment
decorators on real flow runs — both are run on the same input and compared. obproject's
``Asset`` client logic (payloads, tag filtering, promotion, deletion) is run against a local
stand-in for the service (:mod:`asset_service_stub`; the service cannot run here) and
compared with flowpolicy on its embedded registry.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import json
import os
import re
import subprocess
import sys
import types
import warnings
from pathlib import Path

import obproject
import obproject.assets
import obproject.evals_logger
import obproject.project_events
import obproject.project_schedule
import obproject.projectbase
import pytest
from asset_service_stub import AssetServiceStub, serve
from hypothesis import given
from hypothesis import strategies as st

import flowpolicy
import flowpolicy.assets
import flowpolicy.evals_logger
import flowpolicy.project_events
import flowpolicy.project_schedule
import flowpolicy.projectbase
from flowpolicy.runtime.branch import extract_branch, sanitize_branch

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"

#: obproject's modules and their flowpolicy counterparts.
MODULES = {
    "obproject": "flowpolicy",
    "obproject.assets": "flowpolicy.assets",
    "obproject.projectbase": "flowpolicy.projectbase",
    "obproject.project_events": "flowpolicy.project_events",
    "obproject.project_schedule": "flowpolicy.project_schedule",
    "obproject.evals_logger": "flowpolicy.evals_logger",
}
_CONSTANT_TYPES = (str, int, float, bool, list, dict, set, tuple, type(None))
_MISSING = object()


def public_names(module: types.ModuleType) -> list[str]:
    """What a module exports: its own public classes and functions (the package: also what
    it re-exports from its modules) and its public plain-data constants."""
    names = []
    for name, value in vars(module).items():
        if name.startswith("_") or isinstance(value, types.ModuleType):
            continue
        if isinstance(value, _CONSTANT_TYPES):
            names.append(name)
        elif inspect.isclass(value) or inspect.isfunction(value):
            home = value.__module__
            if home == module.__name__ or (module.__name__ == "obproject" and home.startswith(
                    ("obproject.", "highlight_card."))):
                names.append(name)
    return names


def documented_differences() -> dict[str, str]:
    """The README's table of intentional differences: obproject name → the row."""
    text = README.read_text(encoding="utf-8")
    table = text.split("<!-- obproject-differences:start -->")[1].split(
        "<!-- obproject-differences:end -->")[0]
    rows: dict[str, str] = {}
    for line in table.splitlines():
        cells = line.split("|")
        if len(cells) < 4 or set(cells[1].strip()) <= {"-", " "}:
            continue
        for name in re.findall(r"`(obproject[\w.]*)`", cells[1]):
            rows[name] = line
    return rows


DIFFERENCES = documented_differences()


def resolve(qualified: str, side: str = "flowpolicy"):
    """The object ``obproject.module.Name[.member]`` names in obproject, or its flowpolicy
    counterpart (``side="flowpolicy"``); ``_MISSING`` when there is none. Class members are
    read statically (a property stays a property)."""
    ob_module = max((m for m in MODULES if qualified == m or qualified.startswith(m + ".")),
                    key=len)
    target = importlib.import_module(ob_module if side == "obproject" else MODULES[ob_module])
    for part in qualified[len(ob_module):].split(".")[1:]:
        target = inspect.getattr_static(target, part, _MISSING) if inspect.isclass(
            target) else getattr(target, part, _MISSING)
        if target is _MISSING:
            break
    return target


def counterpart(qualified: str):
    """flowpolicy's object for ``obproject.module.Name[.member]``, or None."""
    found = resolve(qualified)
    return None if found is _MISSING else found


def test_the_installed_obproject_is_the_one_compared_with():
    assert importlib.metadata.version("ob-project-utils") == "0.2.42"


@pytest.mark.parametrize("ob_module", sorted(MODULES))
def test_every_public_name_has_a_counterpart_or_a_documented_difference(ob_module):
    module = importlib.import_module(ob_module)
    missing = [name for name in public_names(module)
               if counterpart(f"{ob_module}.{name}") is None
               and f"{ob_module}.{name}" not in DIFFERENCES]
    assert missing == [], f"no flowpolicy counterpart and no documented difference: {missing}"


def test_every_documented_difference_names_something_obproject_has():
    unknown = [name for name in DIFFERENCES if resolve(name, "obproject") is _MISSING]
    assert unknown == [], f"the differences table names what obproject does not have: " \
                          f"{unknown}"


# -- signatures ---------------------------------------------------------------------------


def _callable_of(value):
    """The callable whose signature users depend on: a function, a class's constructor
    (a FlowMutator's ``init``, a StepMutator's ``mutate``), a property's getter."""
    if isinstance(value, property):
        return value.fget
    if isinstance(value, (staticmethod, classmethod)):
        return value.__func__
    if inspect.isclass(value):
        from metaflow import FlowMutator, StepMutator

        if issubclass(value, FlowMutator):
            return value.init
        if issubclass(value, StepMutator):
            return value.mutate
        return value.__init__
    return value


def signature_gap(ob, fp) -> str | None:
    """Why a call written for ``ob`` could fail on ``fp`` (None: it cannot). Every obproject
    parameter must be there with its name, kind, position and default; flowpolicy's extra
    parameters must be keyword-only with defaults."""
    ob_params = [p for p in inspect.signature(_callable_of(ob)).parameters.values()
                 if p.name != "self"]
    fp_params = {p.name: p for p in inspect.signature(_callable_of(fp)).parameters.values()
                 if p.name != "self"}
    fp_order = [p.name for p in fp_params.values()]
    for index, param in enumerate(ob_params):
        mine = fp_params.get(param.name)
        if mine is None:
            return f"parameter {param.name!r} is missing"
        if mine.kind != param.kind:
            return f"parameter {param.name!r} is {mine.kind.description}, not " \
                   f"{param.kind.description}"
        if mine.default != param.default:
            return f"parameter {param.name!r} defaults to {mine.default!r}, not " \
                   f"{param.default!r}"
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD) and \
                fp_order.index(param.name) != index:
            return f"parameter {param.name!r} is at position {fp_order.index(param.name)}"
    for name, param in fp_params.items():
        if name not in {p.name for p in ob_params} and not (
                param.kind == param.KEYWORD_ONLY and param.default is not param.empty):
            return f"extra parameter {name!r} is not keyword-only with a default"
    return None


def _members(cls: type) -> list[str]:
    return [name for name, value in vars(cls).items() if not name.startswith("_")
            and (inspect.isfunction(value) or isinstance(value, (property, staticmethod,
                                                                 classmethod)))]


def signature_cases() -> list[str]:
    cases = []
    for ob_module in MODULES:
        module = importlib.import_module(ob_module)
        for name in public_names(module):
            value = getattr(module, name)
            if f"{ob_module}.{name}" in MODULES:
                continue  # obproject.project_schedule: checked as its module's own name
            if inspect.isfunction(value) or inspect.isclass(value):
                cases.append(f"{ob_module}.{name}")
            if inspect.isclass(value) and value.__module__ == ob_module and \
                    not issubclass(value, (tuple, BaseException)):
                cases += [f"{ob_module}.{name}.{member}" for member in _members(value)]
    return cases


@pytest.mark.parametrize("qualified", signature_cases())
def test_signatures_are_compatible(qualified):
    fp = counterpart(qualified)
    if fp is None:
        assert qualified in DIFFERENCES, f"{qualified} has no counterpart"
        return
    ob = resolve(qualified, "obproject")
    if inspect.isclass(ob) and issubclass(ob, tuple):  # NamedTuples: the same fields
        assert fp._fields == ob._fields
    elif inspect.isclass(ob) and issubclass(ob, BaseException):
        assert issubclass(fp, ob.__mro__[1]) and getattr(fp, "headline", None) == \
            getattr(ob, "headline", None)
    else:
        assert signature_gap(ob, fp) is None, f"{qualified}: {signature_gap(ob, fp)}"


@pytest.mark.parametrize("ob_module, name", [
    (m, n) for m in MODULES for n in public_names(importlib.import_module(m))
    if isinstance(getattr(importlib.import_module(m), n), _CONSTANT_TYPES)])
def test_constants_are_equal(ob_module, name):
    qualified = f"{ob_module}.{name}"
    if counterpart(qualified) is None:
        assert qualified in DIFFERENCES
        return
    assert counterpart(qualified) == getattr(importlib.import_module(ob_module), name)


# -- behaviour that runs without the service ----------------------------------------------


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=40))
def test_branch_names_are_sanitised_exactly_as_obproject_does(raw):
    expected = obproject.assets._sanitize_branch_name(raw)
    if expected:
        assert sanitize_branch(raw) == expected
    else:  # obproject returns "" and its service refuses the scope later; flowpolicy says so
        with pytest.raises(flowpolicy.errors.RegistryError, match="nothing left"):
            sanitize_branch(raw)


@pytest.mark.parametrize("branch", ["prod", "test.fix_42", "prod.hotfix", "user.alice",
                                    "main", "feature_x"])
def test_event_branches_are_extracted_as_obproject_does(branch):
    try:
        expected = obproject.project_events._extract_branch(branch)
    except Exception as exc:  # noqa: BLE001 - obproject's MetaflowException
        with pytest.raises(flowpolicy.errors.RegistryError, match="unknown Metaflow branch"):
            extract_branch(branch)
        assert "Unknown metaflow branch structure" in str(exc)
    else:
        assert extract_branch(branch) == expected


def test_event_names():
    assert flowpolicy.project_events.event_name("ready", "fraud", "main") == \
        obproject.project_events.event_name("ready", "fraud", "main") == "prj.fraud.main.ready"


@pytest.mark.parametrize("config, spec", [
    ({"project": "fraud"}, {"spec": {"project_branch": "Feature/X"}}),
    ({"project": "fraud"}, {"branch": "release"}),
    ({"project": "fraud", "dev-assets": {"branch": "main"}}, {"spec": {"project_branch": "x"}}),
    ({"project": "fraud", "dev-assets": {"branch": "main"}},
     {"spec": {"project_branch": "main"}}),
])
def test_scope_is_resolved_as_obproject_does(monkeypatch, config, spec):
    monkeypatch.setenv("FLOWPOLICY_BRANCH", "ignored_when_deployed")
    assert flowpolicy.projectbase.resolve_scope(config, spec) == \
        obproject.projectbase.resolve_scope(config, spec)


def test_project_config_parser():
    text = 'project = "fraud"\n[dev-assets]\nbranch = "main"\n'
    assert flowpolicy.projectbase.toml_parser(text) == obproject.projectbase.toml_parser(text)


def test_entity_refs():
    for name in ("entity_ref", "user_ref"):
        args = ("user", "alice") if name == "entity_ref" else ("alice",)
        assert getattr(flowpolicy.assets, name)(*args) == getattr(obproject.assets, name)(*args)
    assert flowpolicy.assets.task_ref("F", "1", "s", "2") == \
        obproject.assets.task_ref("F", "1", "s", "2")
    created_by = flowpolicy.EntityRef("task", "F/1/s/2")
    kind, entity_id = created_by  # unpacks and indexes like obproject's NamedTuple
    assert (kind, entity_id, created_by[1]) == ("task", "F/1/s/2", "F/1/s/2")
    assert created_by == obproject.EntityRef("task", "F/1/s/2")


def test_obprojects_parser_reads_flowpolicys_responses_as_flowpolicy_lists_them(registry_url):
    asset = flowpolicy.Asset(project="fraud", branch="dev",
                             entity_ref={"entity_kind": "task", "entity_id": "F/1/s/2"})
    response = asset.register_model_asset(
        "fraud_model", kind="checkpoint_dir", blobs=["s3://m/1"],
        annotations={"f1_score": 0.91}, tags={"framework": "torch"}, description="d")
    [listed] = asset.list_model_asset_instances("fraud_model")
    assert obproject.assets._parse_instance(response) == listed
    assert obproject.assets._parse_instance(asset.peek_model_asset("fraud_model")) == listed


# -- obproject's Asset client against the service stand-in --------------------------------


@pytest.fixture
def service(monkeypatch):
    """obproject's Asset talking to the local stand-in. obproject reads its server from the
    ``outerbounds`` package's Metaflow extension, which is not installed here: a module with
    an empty configuration stands in for it, and OBP_INTEGRATIONS_URL names the stub."""
    stub = AssetServiceStub()
    server = serve(stub)
    remote_config = types.ModuleType("metaflow_extensions.outerbounds.remote_config")
    remote_config.init_config = dict
    monkeypatch.setitem(sys.modules, "metaflow_extensions.outerbounds",
                        types.ModuleType("metaflow_extensions.outerbounds"))
    monkeypatch.setitem(sys.modules, "metaflow_extensions.outerbounds.remote_config",
                        remote_config)
    monkeypatch.setenv("OBP_INTEGRATIONS_URL", stub.url + "/api")
    monkeypatch.setenv("OBP_PERIMETER", "default")
    yield stub
    server.shutdown()
    server.server_close()


USER = {"entity_kind": "user", "entity_id": "tester"}
TRAINER = {"entity_kind": "task", "entity_id": "TrainFlow/7/train/3"}


def both(branch="dev", entity_ref=TRAINER, read_only=False):
    return (obproject.assets.Asset(project="fraud", branch=branch, entity_ref=entity_ref,
                                   read_only=read_only),
            flowpolicy.Asset(project="fraud", branch=branch, entity_ref=entity_ref,
                             read_only=read_only))


def register_catalog(asset) -> None:
    """The Outerbounds docs' shapes: external models with blobs, tagged data."""
    asset.register_model_asset("fraud_model", kind="checkpoint_dir", blobs=["s3://m/v1"],
                               annotations={"f1_score": 0.91, "epochs": 5},
                               tags={"framework": "torch", "v": 2})
    asset.register_model_asset("churn_model", kind="huggingface", blobs=["org/churn"],
                               tags={"framework": "sklearn"})
    asset.register_data_asset("transactions", kind="snowflake_table",
                              blobs=["snowflake://db.tx"], tags={"source": "sensor"})


def test_registration_payloads_are_stringified_alike(service, registry_url):
    ob, fp = both()
    for asset in (ob, fp):
        register_catalog(asset)
    theirs = service.instances[("fraud", "dev", "models", "fraud_model")][-1]
    ours = fp.peek_model_asset("fraud_model")
    for key in ("model_properties", "tags", "created_by"):
        assert ours[key] == theirs[key], key
    assert ob.meta == fp.meta


@pytest.mark.parametrize("tags", [{"framework": "torch"}, {"v": "2"}, {"v": 2},
                                  {"framework": "torch", "v": "3"}, None])
def test_tag_filters_select_the_same_assets(service, registry_url, tags):
    ob, fp = both()
    for asset in (ob, fp):
        register_catalog(asset)
    names = [[item["asset"]["name"] for item in asset.list_model_assets(tags=tags)["items"]]
             for asset in (ob, fp)]
    assert names[0] == names[1]


def test_obprojects_deploy_code_reads_flowpolicys_listing(registry_url):
    from deploy.deploy_obproject import _catalog_index

    fp = flowpolicy.Asset(project="fraud", branch="dev", entity_ref=USER)
    register_catalog(fp)
    assert _catalog_index(fp.list_model_assets()) == ({"fraud_model", "churn_model"}, True)


def _promotable(service, registry_url):
    ob, fp = both()
    for asset in (ob, fp):
        register_catalog(asset)
    return ob, fp


def _target_annotations(service, fp, name="fraud_model", branch="staging"):
    theirs = service.instances[("fraud", branch, "models", name)][-1]
    ours = fp.__class__(project="fraud", branch=branch, entity_ref=USER).peek_model_asset(name)
    return theirs, ours


def test_promotion_writes_what_obproject_writes(service, registry_url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no obproject.toml: obproject's default aliases
    monkeypatch.setenv("METAFLOW_USER", "tester")
    _promotable(service, registry_url)
    results = [impl("fraud", "dev", "staging", asset="fraud_model")
               for impl in (obproject.assets.promote_assets, flowpolicy.assets.promote_assets)]
    keys = ("kind", "name", "alias")
    assert [{k: p[k] for k in keys} for p in results[1]["promoted"]] == results[0]["promoted"]
    assert results[0]["errors"] == results[1]["errors"] == []
    theirs, ours = _target_annotations(service, flowpolicy.Asset(project="fraud",
                                                                 branch="staging"))
    ours_annotations = dict(ours["model_properties"]["annotations"])
    assert ours_annotations.pop("promoted_by_entity") == "user tester"  # documented extra
    assert ours_annotations == theirs["model_properties"]["annotations"]
    assert ours["created_by"] == theirs["created_by"] == TRAINER
    assert service.aliases[("fraud", "staging", "models", "fraud_model")] == {"candidate": "v1"}
    staging = flowpolicy.Asset(project="fraud", branch="staging", entity_ref=USER)
    assert staging.list_aliases("fraud_model") == {"candidate": "v1"}


@pytest.mark.parametrize("toml, alias", [
    (None, "staging"), (None, "champion"), ('[promotion]\naliases = ["gold"]\n', "candidate"),
])
def test_promotion_aliases_are_allowed_as_obproject_allows_them(service, registry_url,
                                                                tmp_path, monkeypatch, toml,
                                                                alias):
    monkeypatch.chdir(tmp_path)
    if toml:
        (tmp_path / "obproject.toml").write_text(f'project = "fraud"\n{toml}')
    messages = []
    for impl in (obproject.assets.promote_assets, flowpolicy.assets.promote_assets):
        with pytest.raises(ValueError) as caught:
            impl("fraud", "dev", "staging", asset="fraud_model", alias=alias)
        messages.append(str(caught.value))
    assert messages[0] == messages[1]


def test_promotion_of_an_empty_branch_warns_as_obproject_does(service, registry_url):
    register_catalog(flowpolicy.Asset(project="fraud", branch="dev", entity_ref=USER))
    got = []
    for impl in (obproject.assets.promote_assets, flowpolicy.assets.promote_assets):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = impl("fraud", "torn_down", "main")
        got.append((result, [str(w.message) for w in caught]))
    assert got[0] == got[1]
    assert "No assets found on source branch 'torn_down'" in got[0][1][0]


def test_promotion_of_an_unknown_asset_reports_it_as_obproject_does(service, registry_url):
    register_catalog(flowpolicy.Asset(project="fraud", branch="dev", entity_ref=USER))
    results = [impl("fraud", "dev", "main", asset="nope")
               for impl in (obproject.assets.promote_assets, flowpolicy.assets.promote_assets)]
    assert results[0] == results[1]


def test_deletion_results_and_refusals_match(service, registry_url):
    ob, fp = both(entity_ref=USER)
    results = []
    for asset in (ob, fp):
        register_catalog(asset)
        results.append([asset.delete_model_asset("fraud_model"),
                        asset.delete_model_asset("fraud_model"),
                        asset.delete_data_asset("never_there"),
                        asset.get_flowproject_spec()])
    assert results[0] == results[1]
    assert [i["asset"]["name"] for i in ob.list_model_assets()["items"]] == \
        [i["asset"]["name"] for i in fp.list_model_assets()["items"]] == ["churn_model"]
    messages = []
    for reader in both(entity_ref=USER, read_only=True):
        assert reader.register_model_asset("x", kind="k") is None
        with pytest.raises(RuntimeError) as caught:
            reader.delete_model_asset("churn_model")
        messages.append(str(caught.value))
    assert messages[0] == messages[1]


def test_evaluation_log_lines_match(service, registry_url, capsys):
    for impl in (obproject.evals_logger.EvalsLogger, flowpolicy.evals_logger.EvalsLogger):
        impl(project="fraud", branch="dev").log("f1 0.91")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == lines[1]
    assert lines[0].startswith("usm0jrb3 fraud dev evals {")


@pytest.mark.parametrize("env, branch", [({"OB_BRANCH": "feature_x"}, None),
                                         ({}, "Feature/X"), ({"OB_PROJECT": "other"}, "main")])
def test_project_event_names_match(monkeypatch, env, branch):
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    project = None if "OB_PROJECT" in env else "fraud"
    events = [impl("retrain", project=project, branch=branch).event
              for impl in (obproject.ProjectEvent, flowpolicy.ProjectEvent)]
    assert events[0] == events[1]


# -- ProjectFlow and its deployment decorators on real runs ---------------------------------

CONTRACT_FLOW = '''
import json

from metaflow import current, step
from obproject import ProjectFlow, project_schedule, project_trigger


@project_schedule({"main": {"cron": "0 8 * * 1-5", "timezone": "UTC"},
                   "release/*": {"hourly": True}})
@project_trigger(event="data_ready")
class ContractFlow(ProjectFlow):
    """What obproject's and flowpolicy's ProjectFlow make of the same flow."""

    @step
    def start(self):
        """Report the project branch and the decorators the deployment added."""
        from metaflow.flowspec import FlowStateItems

        decorators = type(self)._flow_state[FlowStateItems.FLOW_DECORATORS]
        seen = {
            "project": current.project_name,
            "branch": current.branch_name,
            "trigger": [d.attributes.get("event") for d in decorators.get("trigger", [])],
            "schedule": [{k: v for k, v in d.attributes.items() if v}
                         for d in decorators.get("schedule", [])],
            "configs": [self.project_config["project"], dict(self.project_deps)],
        }
        print("SEEN " + json.dumps(seen, sort_keys=True))
        self.next(self.end)

    @step
    def end(self):
        """Nothing more."""


if __name__ == "__main__":
    ContractFlow()
'''


def run_both(tmp_path: Path, *args: str, flow_text: str = CONTRACT_FLOW,
             **extra_env: str) -> list[dict]:
    """Run the flow with obproject and with flowpolicy (only the import changed); what each
    start step saw, and the deployment decorators' own lines."""
    (tmp_path / "obproject.toml").write_text('project = "contract"\n')
    (tmp_path / "spec_release.json").write_text(
        json.dumps({"spec": {"project_branch": "release/v2"}}))
    (tmp_path / "spec_main.json").write_text(json.dumps({"spec": {"project_branch": "main"}}))
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "contract"\ndependencies = ["requests>=2"]\n')
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FLOWPOLICY_", "OB_", "OBPROJECT_"))}
    env.update(METAFLOW_USER="tester", METAFLOW_DATASTORE_SYSROOT_LOCAL=str(tmp_path / "mf"),
               FLOWPOLICY_REGISTRY=f"sqlite:///{tmp_path / 'registry.db'}", **extra_env)
    seen = []
    for name, text in (("ob_flow.py", flow_text),
                       ("fp_flow.py", flow_text.replace("from obproject import",
                                                        "from flowpolicy import"))):
        (tmp_path / name).write_text(text)
        done = subprocess.run([sys.executable, name, "--no-pylint", *args], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=300)
        output = done.stdout + done.stderr
        said = sorted({line.split("] ", 1)[-1] if "] [@" in line else line
                       for line in output.splitlines() if "[@project_" in line})
        found = [json.loads(line.split("SEEN ", 1)[1]) for line in output.splitlines()
                 if "SEEN " in line]
        seen.append({"returncode": done.returncode, "seen": found, "said": said,
                     "output": output})
    return seen


@pytest.mark.flows
@pytest.mark.parametrize("args, expected", [
    (["run"], {"branch": "user.tester", "trigger": [], "schedule": []}),
    (["--branch", "feature_x", "--config", "project_spec", "spec_release.json", "run"],
     {"branch": "test.feature_x", "trigger": ["prj.contract.release_v2.data_ready"],
      "schedule": [{"daily": True, "hourly": True}]}),  # @schedule's own daily default
    (["--production", "--config", "project_spec", "spec_main.json", "run"],
     {"branch": "prod", "trigger": ["prj.contract.main.data_ready"],
      "schedule": [{"cron": "0 8 * * 1-5", "daily": True, "timezone": "UTC"}]}),
])
def test_project_flows_and_deployment_decorators_match(tmp_path, args, expected):
    ob, fp = run_both(tmp_path, *args)
    assert ob["returncode"] == fp["returncode"] == 0, fp["output"] + ob["output"]
    assert fp["seen"] == ob["seen"]
    [seen] = fp["seen"]
    assert {k: seen[k] for k in expected} == expected
    assert seen["project"] == "contract"
    assert fp["said"] == ob["said"]


@pytest.mark.flows
def test_an_invalid_schedule_map_is_refused_alike(tmp_path):
    text = CONTRACT_FLOW.replace('"release/*": {"hourly": True}', '"release/*": {"nightly": 1}')
    ob, fp = run_both(tmp_path, "run", flow_text=text)
    assert ob["returncode"] == fp["returncode"] == 1
    for result in (ob, fp):
        assert "Project Schedule Exception" in result["output"]
        assert "Invalid schedule keys {'nightly'} for pattern 'release/" in result["output"]


@pytest.mark.flows
def test_project_deps_add_pypi_base_as_obproject_does(tmp_path):
    ob, fp = run_both(tmp_path, "--config", "project_deps", "pyproject.toml", "run")
    assert ob["returncode"] == fp["returncode"] == 1  # @pypi_base needs a pypi environment
    for result in (ob, fp):
        assert "@pypi decorator requires --environment=conda or --environment=pypi" in \
            result["output"]
    ob, fp = run_both(tmp_path, "--config", "project_deps", "pyproject.toml", "run",
                      OBPROJECT_SKIP_PYPI_BASE="1")
    assert ob["returncode"] == fp["returncode"] == 0, fp["output"]
    assert fp["seen"] == ob["seen"]
    assert fp["seen"][0]["configs"][1]["packages"] == {"requests": ">=2"}
