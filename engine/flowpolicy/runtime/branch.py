"""Which project and which asset branch a flow, notebook or CLI works in.

The write branch of a ``ProjectFlow`` follows obproject 0.2.42's *code* (its docstring
mentions git; its ``_detect_git_branch`` is never called):

1. the deploy-time branch in the ``project_spec`` Config (what ``obproject-deploy`` passes);
2. else Metaflow's ``@project`` branch: ``user.<name>`` for a local run, ``test.<x>`` with
   ``--branch x``, ``prod`` with ``--production``.

flowpolicy adds one documented override between the two, ``FLOWPOLICY_BRANCH``, so a local
run can write to a policy branch such as ``dev`` or ``staging`` (which ``@project`` cannot
name). It never beats a deployed branch: with both set, the deployed branch is used and the
run says so. The git branch of the checkout is never used. Every branch is sanitised the
way obproject sanitises it (:func:`sanitize_branch`), so both agree on scope names.

``OB_BRANCH`` is what ``obproject-deploy`` sets for events; as in obproject it only decides
the default branch of a ``ProjectEvent`` (:func:`event_branch`), never where assets go.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowpolicy.errors import RegistryError
from flowpolicy.policy.loader import POLICY_DIR, find_policy_files, load_policy
from flowpolicy.runtime.identity import running_flow, username

BRANCH_ENV_VAR = "FLOWPOLICY_BRANCH"
EVENT_BRANCH_ENV_VAR = "OB_BRANCH"
PROJECT_ENV_VARS = ("FLOWPOLICY_PROJECT", "OB_PROJECT")
PROJECT_FILE = "obproject.toml"


def sanitize_branch(branch: str) -> str:
    """``@``→``_at_``, lower-case, anything outside ``[a-z0-9_]``→``_``, collapse, trim.

    obproject returns ``""`` for a name with nothing left (and the service then refuses the
    scope); flowpolicy says so here."""
    sanitized = branch.replace("@", "_at_")
    sanitized = re.sub(r"[^a-z0-9_]", "_", sanitized.lower())
    sanitized = re.sub(r"_+", "_", sanitized).strip("_")
    if not sanitized:
        raise RegistryError(f"branch name {branch!r} has nothing left after sanitising")
    return sanitized


def deployed_branch(project_spec: Mapping[str, Any] | None) -> str | None:
    """The branch recorded at deploy time in obproject's ``project_spec`` Config."""
    if not project_spec:
        return None
    spec = project_spec.get("spec", project_spec)
    return spec.get("project_branch") or project_spec.get("branch") or None


def config_dict(value: Any) -> dict[str, Any]:
    """A Config value (Metaflow's ConfigValue, a dict or JSON text) as a plain dict."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {k: (config_dict(v) if isinstance(v, Mapping) else v) for k, v in value.items()}
    if isinstance(value, str):
        import json

        try:
            loaded = json.loads(value)
        except ValueError:
            return {}
        return loaded if isinstance(loaded, dict) else {}
    return {}


def decorated_project_name(mutable_flow: Any) -> str | None:
    """The name a flow's own ``@project(name=...)`` gives it, if any."""
    names = (kwargs.get("name") for _, _, _, kwargs
             in mutable_flow.get_decorator_specs("project"))
    return next((name for name in names if isinstance(name, str) and name), None)


def env_branch() -> str | None:
    """``FLOWPOLICY_BRANCH``, if set and not empty."""
    return os.environ.get(BRANCH_ENV_VAR) or None


def metaflow_branch() -> str:
    """Metaflow's ``@project`` branch of the running flow; outside a flow (or a flow without
    ``@project``) the one a local run would get, ``user.<name>``."""
    current = running_flow()
    if current is not None and current.branch_name:
        return current.branch_name
    return f"user.{username()}"


@dataclass(frozen=True)
class BranchChoice:
    """The write branch and why: ``source`` is ``project_spec``, ``FLOWPOLICY_BRANCH`` or
    ``@project``; ``ignored`` is a ``FLOWPOLICY_BRANCH`` value a deployed branch overrode."""

    raw: str
    source: str
    ignored: str | None = None

    @property
    def branch(self) -> str:
        return sanitize_branch(self.raw)


def choose_write_branch(project_spec: Mapping[str, Any] | None = None) -> BranchChoice:
    """The write branch by the rule in the module docstring."""
    deployed, override = deployed_branch(project_spec), env_branch()
    if deployed:
        ignored = override if override and sanitize_branch(override) != sanitize_branch(
            deployed) else None
        return BranchChoice(deployed, "project_spec", ignored)
    if override:
        return BranchChoice(override, BRANCH_ENV_VAR)
    return BranchChoice(metaflow_branch(), "@project")


def resolve_branch(project_spec: Mapping[str, Any] | None = None, *,
                   explicit: str | None = None) -> str:
    """The sanitised branch: ``explicit`` if given, else :func:`choose_write_branch`."""
    if explicit:
        return sanitize_branch(explicit)
    return choose_write_branch(project_spec).branch


def read_branch_for(write_branch: str, project_config: Mapping[str, Any]) -> str:
    """obproject's read-branch rule on the *unsanitised* write branch: a branch other than
    ``main`` reads obproject.toml's ``[dev-assets] branch`` when one is configured."""
    dev_read = (project_config.get("dev-assets") or {}).get("branch")
    if dev_read and write_branch != "main":
        return dev_read
    return write_branch


def deployment_branch(project_config: Mapping[str, Any],
                      project_spec: Mapping[str, Any] | None) -> str | None:
    """The (unsanitised) branch ``@project_trigger`` and ``@project_schedule`` act for: the
    deploy-time branch, else ``[dev-assets] branch``, else ``FLOWPOLICY_BRANCH``; None when
    none is set (then, as in obproject, no trigger or schedule is added)."""
    return (deployed_branch(project_spec)
            or (project_config.get("dev-assets") or {}).get("branch")
            or env_branch())


def extract_branch(metaflow_branch_name: str) -> str:
    """obproject's event branch from a Metaflow ``@project`` branch: ``prod`` → ``main``,
    ``test.X`` / ``prod.X`` / ``user.X`` → ``X``."""
    if metaflow_branch_name == "prod":
        return "main"
    for prefix in ("test.", "prod.", "user."):
        if metaflow_branch_name.startswith(prefix):
            return metaflow_branch_name[len(prefix):]
    raise RegistryError(f"unknown Metaflow branch structure: {metaflow_branch_name!r}")


def event_branch() -> str:
    """A ``ProjectEvent``'s default branch: ``OB_BRANCH`` (set by obproject-deploy), else
    ``FLOWPOLICY_BRANCH``, else :func:`extract_branch` of the ``@project`` branch. Used as
    it is, not sanitised (obproject does not sanitise event branches either)."""
    return (os.environ.get(EVENT_BRANCH_ENV_VAR) or env_branch()
            or extract_branch(metaflow_branch()))


def read_project_file(folder: str | os.PathLike | None = None) -> dict[str, Any]:
    """``obproject.toml`` in ``folder`` (default: the working directory) as a dict, or {}."""
    path = Path(folder or os.getcwd()) / PROJECT_FILE
    if not path.is_file():
        return {}
    import tomllib

    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RegistryError(f"cannot read {path}: {exc}") from exc


def resolve_project(explicit: str | None = None) -> str:
    """Project name: explicit, else the running flow's ``@project``, else the environment
    (``FLOWPOLICY_PROJECT``/``OB_PROJECT``), else ``obproject.toml`` in the working directory."""
    if explicit:
        return explicit
    current = running_flow()
    if current is not None and current.project_name:
        return current.project_name
    env = next((os.environ[v] for v in PROJECT_ENV_VARS if os.environ.get(v)), None)
    if env:
        return env
    name = read_project_file().get("project")
    if name:
        return str(name)
    raise RegistryError(
        "no project: pass project=..., set FLOWPOLICY_PROJECT, or add obproject.toml "
        "with project = \"...\" to the working directory"
    )


@dataclass(frozen=True)
class DeclaredBranches:
    """The branches the project's policies declare, and the policy files that say so."""

    branches: tuple[str, ...]
    sources: tuple[str, ...]


def declared_branches(project: str) -> DeclaredBranches | None:
    """The branches (sanitised) that the policies in ``./policies/`` (where the run's
    registration limits come from too) declare for ``project``; None when none of them is
    about ``project`` or declares branches. A policy that does not load is a
    FlowpolicyError."""
    if not Path(POLICY_DIR).is_dir():
        return None
    branches: dict[str, None] = {}
    sources = []
    for path in find_policy_files([POLICY_DIR]):
        policy = load_policy(path)
        if policy.project == project and policy.branches:
            branches.update(dict.fromkeys(sanitize_branch(b) for b in policy.branches))
            sources.append(str(path))
    if not branches:
        return None
    return DeclaredBranches(tuple(branches), tuple(sources))


#: The deploy-time spec of the ProjectFlow running in this process (see note_deployment).
_deployment: dict[str, Any] = {}


def note_deployment(project_spec: Mapping[str, Any] | None) -> None:
    """Remember the running ProjectFlow's ``project_spec`` (``Asset.get_flowproject_spec``
    answers from it)."""
    _deployment.clear()
    _deployment.update(project_spec or {})


def deployment_spec(project: str, branch: str) -> dict[str, Any] | None:
    """The ``spec`` part of the running flow's ``project_spec`` when it was deployed for
    ``project`` and (sanitised) ``branch``; else None."""
    spec = _deployment.get("spec")
    deployed = deployed_branch(_deployment)
    if not isinstance(spec, Mapping) or not deployed:
        return None
    if spec.get("project_name", _deployment.get("project")) != project:
        return None
    return dict(spec) if sanitize_branch(deployed) == branch else None
