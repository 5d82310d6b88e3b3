"""``flowpolicy demo``: the main job, end to end, on the embedded registry.

It copies the fraud example into a scratch folder, compiles its policy, and runs the real
flows with Metaflow's local metadata and datastore and a SQLite registry: two trainings, the
quality gate, promotion dev → staging (one refused, one allowed), gate and champion on
staging, promotion staging → prod, a training on shifted data and the drift monitor. Then it
prints what the registry holds and every decision with its evidence.
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowpolicy.compile import write_outputs
from flowpolicy.errors import EXIT_FINDINGS, FlowpolicyError, RegistryError
from flowpolicy.fileio import make_folder
from flowpolicy.policy.loader import load_policy
from flowpolicy.policy.model import Policy
from flowpolicy.registry import open_registry
from flowpolicy.runtime.assets import Asset
from flowpolicy.runtime.promote import PROMOTED_FROM_BRANCH, PROMOTED_FROM_INSTANCE

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
                    ignore=shutil.ignore_patterns(".metaflow", "__pycache__", "flows"))
    policy = load_policy(project_dir / POLICY)
    return policy, write_outputs(policy)


@dataclass(frozen=True)
class Step:
    """One flow run of the demo and the outcome the policy should produce. Steps of the
    same ``phase`` do not depend on each other and run at the same time."""

    phase: int
    branch: str
    title: str
    argv: tuple[str, ...]
    succeeds: bool = True


_TO_STAGING = ("flows/fraud_model_promotion.py", "--source", "dev", "--target", "staging")
STEPS = (
    Step(1, "dev", "train an under-trained fraud_model (5 epochs)",
         ("train_flow.py", "--seed", "7", "--epochs", "5")),
    Step(2, "dev", "quality gate on fraud_model v1", ("flows/quality_gate.py", "--instance", "v1"),
         succeeds=False),
    Step(2, "dev", "train a good fraud_model", ("train_flow.py", "--seed", "8")),
    Step(3, "dev", "promote fraud_model v1 dev -> staging", (*_TO_STAGING, "--instance", "v1"),
         succeeds=False),
    Step(3, "dev", "quality gate on fraud_model v2", ("flows/quality_gate.py", "--instance", "v2")),
    Step(3, "dev", "train on shifted transactions",
         ("train_flow.py", "--seed", "9", "--shift", "1")),
    Step(4, "dev", "promote fraud_model v2 dev -> staging", (*_TO_STAGING, "--instance", "v2")),
    Step(4, "dev", "drift monitor: fraud_features latest vs latest-1",
         ("flows/fraud_features_drift.py",)),
    Step(5, "staging", "quality gate on fraud_model latest", ("flows/quality_gate.py",)),
    Step(6, "staging", "champion evaluation of fraud_model latest",
         ("flows/fraud_model_champion.py",)),
    Step(7, "staging", "promote fraud_model latest staging -> prod",
         ("flows/fraud_model_promotion.py", "--source", "staging", "--target", "prod")),
)


def run_demo(directory: str | os.PathLike | None = None,
             echo: Callable[[str], None] = print, *, registry: str | None = None) -> Path:
    """Run the demo in ``directory`` (default: a new temporary folder) and return it, on the
    registry at URL ``registry`` (default: a new SQLite file in the scratch folder), which
    must be empty (e.g. a new PostgreSQL database).

    Raises FlowpolicyError (exit 1) when a flow's outcome is not what the policy demands.
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
         f"{len(written)} flows: {', '.join(p.name for p in written)}\n")

    numbered = list(enumerate(STEPS, 1))
    for phase in sorted({step.phase for step in STEPS}):
        batch = [(number, step) for number, step in numbered if step.phase == phase]
        with ThreadPoolExecutor(len(batch)) as pool:
            results = list(pool.map(lambda item: _run(item[1], project_dir, env), batch))
        for (number, step), (returncode, output, seconds) in zip(batch, results, strict=True):
            _show(number, step, returncode, output, seconds, echo)

    echo("")
    echo(report(env["FLOWPOLICY_REGISTRY"], policy.branches or ("dev", "staging", "prod")))
    echo(f"demo finished in {time.perf_counter() - started:.1f}s; the scratch project stays in "
         f"{project_dir}")
    exports = " ".join(f"{key}={shlex.quote(env[key])}" for key in _REPRODUCE)
    echo("\nexplore it in a shell:\n"
         f"  cd {shlex.quote(str(project_dir))}\n"
         f"  export {exports}\n"
         "  flowpolicy check                # the policy holds on this registry (exit 0)\n"
         "  flowpolicy plan                 # what each flow would decide now; writes nothing\n"
         "  flowpolicy assets history fraud_model --branch staging\n"
         "  python flows/fraud_features_drift.py card view measure   # the drift decision's card\n"
         "  FLOWPOLICY_BRANCH=dev python flows/fraud_model_promotion.py run "
         "--instance v2 --target prod   # refused: no dev -> prod edge")
    return project_dir


def _run(step: Step, project_dir: Path, env: Mapping[str, str]) -> tuple[int, str, float]:
    """Run one flow; returns its exit code, output and wall time."""
    began = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, step.argv[0], "--quiet", "run", *step.argv[1:]],
        cwd=project_dir, env={**env, "FLOWPOLICY_BRANCH": step.branch},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    return proc.returncode, proc.stdout, time.perf_counter() - began


def _show(number: int, step: Step, returncode: int, output: str, seconds: float,
          echo: Callable[[str], None]) -> None:
    ok = returncode == 0
    outcome = "ok" if ok else "refused, as the policy demands"
    echo(f"{number:>2}. [{step.branch:<7}] {step.title:<50} {outcome} ({seconds:.1f}s)")
    if ok != step.succeeds:
        tail = "\n".join(output.strip().splitlines()[-25:])
        raise FlowpolicyError(
            f"step {number} ({step.title}) {'failed' if step.succeeds else 'succeeded'} "
            f"unexpectedly:\n{tail}", exit_code=EXIT_FINDINGS)
    if not ok:
        echo(f"    {_failure_line(output)}")


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


def _failure_line(output: str) -> str:
    """The one-line reason a refusing flow printed (its last line when it printed none)."""
    # not at the top: steps imports Metaflow, which binds its datastore root at import
    from flowpolicy.runtime.steps import refusal_reason

    reason = refusal_reason(output)
    if reason is not None:
        return reason
    return output.strip().splitlines()[-1] if output.strip() else ""


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
        events = asset.list_events()
        if events:
            lines.append("  events")
            for event in events:
                payload = event.get("payload") or {}
                about = payload.get("instance") or payload.get("candidate") or payload.get(
                    "current") or ""
                lines.append(f"    {event['event']}  {about}")
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
    if kind == "gate":
        why = details.get("reason", "")
    elif kind == "champion":
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
