"""Which project and which asset branch a flow, notebook or CLI works in.

Branch resolution follows obproject: an explicit environment variable (``FLOWPOLICY_BRANCH``,
then ``OB_BRANCH``), else the deploy-time branch (``project_spec``), else the git branch of
the working directory, else Metaflow's ``@project`` branch (``user.<name>`` for local runs).
Every branch is sanitised the way obproject sanitises it, so both agree on scope names.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flowpolicy.errors import RegistryError
from flowpolicy.runtime.identity import running_flow, username

BRANCH_ENV_VARS = ("FLOWPOLICY_BRANCH", "OB_BRANCH")
PROJECT_ENV_VARS = ("FLOWPOLICY_PROJECT", "OB_PROJECT")
PROJECT_FILE = "obproject.toml"


def sanitize_branch(branch: str) -> str:
    """``@``→``_at_``, lower-case, anything outside ``[a-z0-9_]``→``_``, collapse, trim."""
    sanitized = branch.replace("@", "_at_")
    sanitized = re.sub(r"[^a-z0-9_]", "_", sanitized.lower())
    sanitized = re.sub(r"_+", "_", sanitized).strip("_")
    if not sanitized:
        raise RegistryError(f"branch name {branch!r} has nothing left after sanitising")
    return sanitized


def git_branch(cwd: str | os.PathLike | None = None) -> str | None:
    """The checked-out git branch, or None (not a repository, detached HEAD, no git).

    ``symbolic-ref`` rather than ``rev-parse``: it also names a branch without commits yet."""
    try:
        result = subprocess.run(
            ["git", "symbolic-ref", "--quiet", "--short", "HEAD"],
            capture_output=True, text=True, timeout=5, cwd=cwd,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    name = result.stdout.strip()
    if result.returncode != 0 or not name or name == "HEAD":
        return None
    return name


def deployed_branch(project_spec: Mapping[str, Any] | None) -> str | None:
    """The git branch recorded at deploy time in obproject's ``project_spec`` Config."""
    if not project_spec:
        return None
    spec = project_spec.get("spec", project_spec)
    return spec.get("project_branch") or project_spec.get("branch") or None


def _first_env(names: tuple[str, ...]) -> str | None:
    return next((os.environ[v] for v in names if os.environ.get(v)), None)


def env_branch() -> str | None:
    """The branch named by the environment (``FLOWPOLICY_BRANCH``, then ``OB_BRANCH``)."""
    return _first_env(BRANCH_ENV_VARS)


def resolve_branch(project_spec: Mapping[str, Any] | None = None, *,
                   explicit: str | None = None) -> str:
    """The (sanitised) write branch for assets in this process: ``explicit`` if given, else
    the order in the module docstring."""
    branch = explicit or env_branch() or deployed_branch(project_spec) or git_branch()
    if not branch:
        current = running_flow()
        if current is not None and current.branch_name:
            branch = current.branch_name
        else:
            branch = f"user.{username()}"  # what Metaflow's @project calls a local run
    return sanitize_branch(branch)


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
    env = _first_env(PROJECT_ENV_VARS)
    if env:
        return env
    name = read_project_file().get("project")
    if name:
        return str(name)
    raise RegistryError(
        "no project: pass project=..., set FLOWPOLICY_PROJECT, or add obproject.toml "
        "with project = \"...\" to the working directory"
    )
