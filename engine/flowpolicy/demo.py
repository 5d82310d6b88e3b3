"""``flowpolicy demo``: the main job, end to end, on the embedded registry, driven by events.

It copies the fraud example into a scratch folder, compiles its policy, and starts three
real Metaflow runs by hand (:data:`STEPS`; local metadata and datastore, a SQLite registry).
Everything else is started by the policy's triggers through a dispatcher, as Argo Events
would start it (:data:`EXPECTED`: the gates, promotions dev → staging → prod, the champion
decision, the drift monitor and, on high drift, a retraining on the drifted batch that goes
the whole way again). It prints the chain as a tree of event → run → event, checks every
outcome against what the policy demands, then prints what the registry holds with every
decision and its evidence.
"""

from __future__ import annotations

import getpass
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowpolicy.compile import output_dir_for, write_outputs
from flowpolicy.errors import EXIT_FINDINGS, FlowpolicyError, RegistryError
from flowpolicy.fileio import make_folder
from flowpolicy.policy.loader import load_policy
from flowpolicy.policy.model import Policy
from flowpolicy.registry import open_registry
from flowpolicy.runtime.assets import Asset
from flowpolicy.runtime.promote import PROMOTED_FROM_BRANCH, PROMOTED_FROM_INSTANCE
from flowpolicy.triggers import TriggerTable, dispatch_table

PROJECT = "fraud_detection"
POLICY = Path("policies") / "fraud.yaml"
_PACKAGE_DIR = Path(__file__).resolve().parent


def example_dir() -> Path:
    """The fraud example: packaged in a wheel under ``flowpolicy/_data/examples``, else the
    repository's ``examples/`` folder (editable installs)."""
    for candidate in (
        _PACKAGE_DIR / "_data" / "examples" / "fraud_detection",
        _PACKAGE_DIR.parent.parent / "examples" / "fraud_detection",
    ):
        if (candidate / POLICY).is_file():
            return candidate
    raise FlowpolicyError("flowpolicy installation is missing examples/fraud_detection")


def require_example_dependencies() -> None:
    """The example's training flow uses ``@checkpoint`` from metaflow-checkpoint (extra
    ``examples``, part of ``dev``); without it every training run would die on an import
    error inside Metaflow, so say so before starting anything."""
    import importlib.util

    try:
        found = importlib.util.find_spec("metaflow_extensions.obcheckpoint") is not None
    except ModuleNotFoundError:  # no Metaflow extension package at all
        found = False
    if not found:
        raise FlowpolicyError(
            "the demo runs the fraud example's training flow, which uses @checkpoint from "
            "metaflow-checkpoint, and that is not installed: pip install 'flowpolicy[examples]'")


def copy_example(project_dir: Path) -> tuple[Policy, list[Path]]:
    """Copy the fraud example into ``project_dir`` (without its runs, caches and generated
    flows) and compile its policy there; returns the policy and the flow files written."""
    shutil.copytree(example_dir(), project_dir,
                    ignore=shutil.ignore_patterns(".metaflow", ".flowpolicy", "__pycache__",
                                                  "flows"))
    policy = load_policy(project_dir / POLICY)
    return policy, write_outputs(policy)


@dataclass(frozen=True)
class Step:
    """One run the demo starts by hand; the policy's triggers start everything after it."""

    title: str
    argv: tuple[str, ...]


STEPS = (
    Step("train an under-trained fraud_model (5 epochs)",
         ("train_flow.py", "--seed", "7", "--epochs", "5")),
    Step("train it properly on the same transactions", ("train_flow.py", "--train_on", "v1")),
    Step("new transactions arrive, shifted", ("ingest_flow.py", "--seed", "9", "--shift", "1")),
)


@dataclass(frozen=True)
class Expected:
    """A run the triggers must start, and how it must end: the flow, its branch, the
    instance its event named, and its status."""

    flow: str
    branch: str
    instance: str
    status: str
    why: str


#: What the policy demands of the chain the three runs above start. fraud_model on dev: v1
#: weak, v2 good, v3 retrained on the shifted batch (fraud_features v2); on staging, v1 and
#: v2 are the promoted copies of dev v2 and v3.
EXPECTED = (
    Expected("QualityGateFlow", "dev", "v1", "refused", "the weak model fails its gate"),
    Expected("FraudFeaturesDriftFlow", "dev", "v1", "refused", "nothing before v1 to compare"),
    Expected("QualityGateFlow", "dev", "v2", "succeeded", "the good model passes"),
    Expected("FraudModelPromotionFlow", "dev", "v2", "succeeded", "dev -> staging"),
    Expected("QualityGateFlow", "staging", "v1", "succeeded", "the gate again, on staging"),
    Expected("FraudModelChampionFlow", "staging", "v1", "succeeded", "the first champion"),
    Expected("FraudModelPromotionFlow", "staging", "v1", "succeeded", "staging -> prod"),
    Expected("FraudFeaturesDriftFlow", "dev", "v2", "succeeded", "v2 vs v1: high"),
    Expected("FraudTrainingFlow", "dev", "v2", "succeeded", "retraining on the drifted batch"),
    Expected("QualityGateFlow", "dev", "v3", "succeeded", "the retrained model passes"),
    Expected("FraudModelPromotionFlow", "dev", "v3", "succeeded", "dev -> staging"),
    Expected("QualityGateFlow", "staging", "v2", "succeeded", "the gate again, on staging"),
    Expected("FraudModelChampionFlow", "staging", "v2", "succeeded", "it beats the champion"),
    Expected("FraudModelPromotionFlow", "staging", "v2", "succeeded", "staging -> prod"),
)


def run_demo(directory: str | os.PathLike | None = None,
             echo: Callable[[str], None] = print, *, registry: str | None = None) -> Path:
    """Run the demo in ``directory`` (default: a new temporary folder) and return it, on the
    registry at URL ``registry`` (default: a new SQLite file in the scratch folder), which
    must be empty (e.g. a new PostgreSQL database).

    Raises FlowpolicyError (exit 1) when a run's outcome is not what the policy demands.
    """
    started = time.perf_counter()
    require_example_dependencies()
    if registry is not None:
        _require_empty(registry)
    scratch = _scratch(directory)
    project_dir = scratch / PROJECT
    env = _environment(scratch, echo, registry)
    echo(f"flowpolicy demo in {project_dir}")

    policy, written = copy_example(project_dir)
    echo(f"compiled {POLICY} (policy {policy.short_hash}) into "
         f"{len(written)} flows: {', '.join(p.name for p in written)}")
    echo("three runs are started by hand; the policy's triggers start the rest "
         "(flowpolicy dispatch, the local stand-in for Argo Events)\n")
    table = dispatch_table(policy, project_dir, output_dir_for(policy))
    _run_chain(table, project_dir, env, echo)
    registry = env["FLOWPOLICY_REGISTRY"]
    echo("")
    echo(chain_report(registry))
    _check_outcomes(registry, table)
    echo(report(registry, policy.branches or ("dev", "staging", "prod")))
    echo(f"demo finished in {time.perf_counter() - started:.1f}s; the scratch project stays in "
         f"{project_dir}")
    exports = " ".join(f"{key}={shlex.quote(env[key])}" for key in _REPRODUCE)
    echo("\nexplore it in a shell:\n"
         f"  cd {shlex.quote(str(project_dir))}\n"
         f"  export {exports}\n"
         "  flowpolicy events --runs        # the chain above: event -> run -> event\n"
         "  flowpolicy check                # the policy holds on this registry (exit 0)\n"
         "  flowpolicy plan                 # what each flow would decide now; writes nothing\n"
         "  flowpolicy assets history fraud_model --branch staging\n"
         "  python flows/fraud_features_drift.py card view measure   # the drift decision's card\n"
         "  FLOWPOLICY_BRANCH=dev python flows/fraud_model_promotion.py run "
         "--instance v2 --target prod   # refused: no dev -> prod edge\n"
         "  FLOWPOLICY_BRANCH=dev python train_flow.py run --seed 10 && flowpolicy dispatch "
         "--once   # another chain")
    return project_dir


def _run_chain(table: TriggerTable, project_dir: Path, env: Mapping[str, str],
               echo: Callable[[str], None]) -> None:
    """Start :data:`STEPS` one after the other (so instance numbers are fixed) while a
    dispatcher starts what their events trigger in ``table``; return when the chain has run
    out."""
    import threading

    from flowpolicy.dispatch.dispatcher import Dispatcher

    by_hand_done = threading.Event()
    failed: list[BaseException] = []

    def dispatch() -> None:
        try:
            dispatcher = Dispatcher(open_registry(env["FLOWPOLICY_REGISTRY"]), table,
                                    cwd=project_dir, echo=lambda line: echo(f"    {line}"),
                                    environment=env)
            dispatcher.run(follow=False, timeout=_CHAIN_TIMEOUT_S, max_runs=_MAX_RUNS,
                           hold=lambda: not by_hand_done.is_set())
        except BaseException as exc:  # reported by the main thread
            failed.append(exc)

    worker = threading.Thread(target=dispatch, name="flowpolicy-demo-dispatch")
    try:
        for number, step in enumerate(STEPS, 1):
            returncode, output, seconds = _run(step, project_dir, env)
            echo(f"{number}. [dev] {step.title:<46} "
                 f"{'ok' if returncode == 0 else 'FAILED'} ({seconds:.1f}s)")
            if returncode != 0:
                tail = "\n".join(output.strip().splitlines()[-25:])
                raise FlowpolicyError(f"step {number} ({step.title}) failed:\n{tail}",
                                      exit_code=EXIT_FINDINGS)
            if number == 1:
                worker.start()  # the registry exists now: the dispatcher follows it
    finally:
        by_hand_done.set()
        if worker.ident is not None:  # started
            worker.join()
    if failed:
        raise failed[0]


#: Bounds of the demo's dispatcher (the chain above is 14 runs).
_CHAIN_TIMEOUT_S = 600.0
_MAX_RUNS = 50


def _run(step: Step, project_dir: Path, env: Mapping[str, str]) -> tuple[int, str, float]:
    """Run one flow on dev; returns its exit code, output and wall time."""
    began = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, step.argv[0], "--quiet", "run", *step.argv[1:]],
        cwd=project_dir, env={**env, "FLOWPOLICY_BRANCH": "dev"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    return proc.returncode, proc.stdout, time.perf_counter() - began


def chain_report(registry: str) -> str:
    """The chain as ``flowpolicy events --runs`` shows it."""
    from flowpolicy.dispatch.chain import build_chains, render_chains

    return "the chain (event -> run -> event):\n" + render_chains(
        build_chains(open_registry(registry, read_only=True), project=PROJECT))


def _check_outcomes(registry: str, table: TriggerTable) -> None:
    """Every run of :data:`EXPECTED` ran once and ended as the policy demands, and nothing
    else ran; else FlowpolicyError (exit 1) naming each difference."""
    # the Parameter each trigger sets from its event names the instance the run judged
    instance_flags = tuple({f"--{name}=" for t in table.triggers for name in t.parameters})
    reader = open_registry(registry, read_only=True)
    found: dict[tuple[str, str, str], list[str]] = {}
    for record in reader.dispatches():
        instance = next((a.split("=", 1)[1] for a in record.argv
                         if a.startswith(instance_flags)), "")
        found.setdefault((record.flow_name or record.flow, record.branch, instance),
                         []).append(record.status or record.state)
    problems = []
    for want in EXPECTED:
        got = found.pop((want.flow, want.branch, want.instance), [])
        if got != [want.status]:
            problems.append(f"{want.flow} on {want.branch} for {want.instance} ({want.why}): "
                            f"expected {want.status}, got {', '.join(got) or 'no run'}")
    problems += [f"{flow} on {branch} for {instance}: not expected, ended {', '.join(got)}"
                 for (flow, branch, instance), got in found.items()]
    if problems:
        raise FlowpolicyError("the chain did not go as the policy demands:\n  "
                              + "\n  ".join(problems), exit_code=EXIT_FINDINGS)


def _scratch(directory: str | os.PathLike | None) -> Path:
    if directory is None:
        return Path(tempfile.mkdtemp(prefix="flowpolicy-demo-"))
    path = Path(directory).resolve()
    example = example_dir().resolve()
    if path == example or example in path.parents:
        # the copy would contain itself, copied again at every level until the path is too long
        raise FlowpolicyError(f"--dir {path} is inside the example it copies ({example}); "
                              "give a folder outside it")
    make_folder(path, "--dir")
    if any(path.iterdir()):
        raise FlowpolicyError(f"--dir {path} is not empty; give a new or empty folder")
    return path


#: What a shell needs to see the demo's runs and registry afterwards.
_REPRODUCE = ("METAFLOW_USER", "METAFLOW_DATASTORE_SYSROOT_LOCAL", "FLOWPOLICY_REGISTRY")


def flow_environment(datastore_root: str | os.PathLike, registry: str, *, user: str,
                     branch: str | None = None) -> dict[str, str]:
    """The environment to run flows in on this machine: the caller's, minus its flowpolicy,
    Metaflow and Outerbounds settings, plus Metaflow user ``user``, local Metaflow metadata
    and datastore under ``datastore_root``, registry ``registry`` and, when given, branch
    ``branch``. The demo, the benchmarks and the tests that run flows all use it."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FLOWPOLICY_", "METAFLOW_", "OB_"))}
    env.update({
        "METAFLOW_USER": user,
        "METAFLOW_DEFAULT_METADATA": "local",
        "METAFLOW_DEFAULT_DATASTORE": "local",
        "METAFLOW_DATASTORE_SYSROOT_LOCAL": str(datastore_root),
        "FLOWPOLICY_REGISTRY": registry,
    })
    if branch:
        env["FLOWPOLICY_BRANCH"] = branch
    return env


def _environment(scratch: Path, echo: Callable[[str], None], registry: str | None
                 ) -> dict[str, str]:
    """Local Metaflow and a SQLite registry (unless ``registry`` names one), both inside
    the scratch folder; nothing from the caller's flowpolicy or Metaflow settings leaks in
    except the user name."""
    user = os.environ.get("METAFLOW_USER")
    if not user:
        user = _login() or "flowpolicy_demo"
        echo(f"note: METAFLOW_USER is not set; the demo's Metaflow runs use {user!r}")
    env = flow_environment(scratch, registry or f"sqlite:///{scratch / 'registry.db'}",
                           user=user)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _require_empty(url: str) -> None:
    """The demo numbers on v1, v2, …: a registry that already holds assets or events is
    refused (a read here creates nothing)."""
    registry = open_registry(url)
    try:
        held = bool(registry.assets() or registry.events())
    except RegistryError as exc:
        if "nothing to read" not in str(exc):
            raise
        held = False
    if held:
        raise FlowpolicyError(f"--registry {registry.url} already holds assets or events; the "
                              "demo needs an empty registry (e.g. a new database)")


def _login() -> str | None:
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        return None
    return None if name == "root" else name  # Metaflow refuses root


# --- the report ---------------------------------------------------------------------------


def report(registry: str, branches: Sequence[str]) -> str:
    """What the registry holds now, branch by branch: instances with their key annotations
    and aliases, every decision with its evidence, and the events published."""
    lines = [f"Registry {registry}"]
    for branch in branches:
        asset = Asset(project=PROJECT, branch=branch, read_only=True, registry=registry)
        lines.append(f"\n== branch {branch}")
        for asset_type, name in (("model", "fraud_model"), ("data", "fraud_features"),
                                 ("data", "drift_reports")):
            instances = _instances(asset, asset_type, name)
            if not instances:
                continue
            aliases = _aliases_by_instance(asset, name, asset_type)
            lines.append(f"  {asset_type} {name}")
            for instance in instances:
                tags = aliases.get(instance.id, [])
                alias_text = f"  @{' @'.join(tags)}" if tags else ""
                lines.append(f"    {instance.id:<4}{_summary(instance.annotations)}{alias_text}")
                for record in asset.evidence(name, instance.id, asset_type=asset_type):
                    lines.append(f"         {_decision(record)}")
    return "\n".join(lines) + "\n"


def _instances(asset: Any, asset_type: str, name: str) -> list[Any]:
    lister = (asset.list_model_asset_instances if asset_type == "model"
              else asset.list_data_asset_instances)
    try:
        return sorted(lister(name), key=lambda i: int(i.id.lstrip("v")))
    except RegistryError:
        return []


def _aliases_by_instance(asset: Any, name: str, asset_type: str) -> dict[str, list[str]]:
    by_instance: dict[str, list[str]] = {}
    for alias, instance in sorted(asset.list_aliases(name, asset_type=asset_type).items()):
        by_instance.setdefault(instance, []).append(alias)
    return by_instance


_SHOWN = ("f1_score", "accuracy", "n_rows", "level", "max_statistic", "worst_column",
          "current_instance", "reference_instance")


def _summary(annotations: Mapping[str, str]) -> str:
    parts = [f"{key}={annotations[key]}" for key in _SHOWN if key in annotations]
    if PROMOTED_FROM_BRANCH in annotations:
        parts.append(f"from {annotations[PROMOTED_FROM_BRANCH]} "
                     f"{annotations[PROMOTED_FROM_INSTANCE]}")
    if "source" in annotations and "f1_score" not in annotations:
        parts.append(annotations["source"])
    return "  ".join(parts)


def _decision(record: Mapping[str, Any]) -> str:
    details = record.get("details") or {}
    verdict = "PASS" if record["passed"] else "FAIL"
    kind = record["kind"]
    if kind in ("gate", "champion"):
        why = details.get("reason", "")
    elif kind == "promotion":
        verdict = "ALLOWED" if record["passed"] else "REFUSED"
        why = "; ".join(details.get("reasons") or details.get("satisfied") or [])
    elif kind == "drift":
        verdict = str(details.get("level", "")).upper()
        why = (f"max D {details.get('max_statistic', 0):.4f} in {details.get('worst_column')} "
               f"({details.get('current')} vs {details.get('reference')})")
    else:
        why = ""
    policy = (record.get("policy_hash") or "")[:12]
    what_if = " (what-if run: never accepted)" if details.get("under_policy") is False else ""
    return f"{kind} {record['rule']}: {verdict}{what_if} - {why} [policy {policy}]"
