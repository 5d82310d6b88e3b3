"""The run-time guard against registering an asset in a loop (lint rule FPL007's counterpart).

A registered version is a lifecycle event: each one can start gates, triggers and drift runs.
A training loop that registers every epoch floods the registry with versions nobody will
promote; per-epoch state belongs in ``@checkpoint`` (metaflow-checkpoint), and the final
artifact is registered once. ``self.prj`` counts the versions each task registers per asset;
past the policy's ``registration.max_versions_per_task`` (default 1) it warns once per asset
and task on stderr (the task's log), naming the step, the registering line and the loop
around it. It only warns: the registrations still happen. (Not a ``warnings.warn``: Metaflow
ignores every Python warning in flow processes.)

The limits come from the policies in ``./policies/`` (next to ``obproject.toml``), read once
at run start into ProjectFlow's ``registration_policy`` Config, so every task, local or
remote, uses the limits the run was launched (or deployed) with.
"""

from __future__ import annotations

import ast
import linecache
import os
import sys
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import Any

from flowpolicy.errors import FlowpolicyError
from flowpolicy.policy.loader import POLICY_DIR, find_policy_files, load_policy
from flowpolicy.policy.model import RegistrationRules

#: The versions a task may register per asset when no policy of its project sets a limit.
DEFAULT_LIMIT = RegistrationRules().max_versions_per_task

_PACKAGE_DIR = os.path.dirname(os.path.dirname(__file__)) + os.sep
_LOOPS = (ast.For, ast.AsyncFor, ast.While, ast.ListComp, ast.SetComp, ast.DictComp,
          ast.GeneratorExp)
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def policy_limits(directory: str | os.PathLike = POLICY_DIR) -> dict[str, dict[str, Any]]:
    """``{project: {"max_versions_per_task": n, "policy": path}}`` for the policies found in
    ``directory`` (none when it does not exist); the strictest where a project has several.

    A policy that does not load is left out with a one-line note on stderr: a broken policy
    must not stop a training run, and ``flowpolicy validate`` reports its problems.
    """
    if not Path(directory).is_dir():
        return {}
    limits: dict[str, dict[str, Any]] = {}
    for path in find_policy_files([directory]):
        try:
            policy = load_policy(path)
        except FlowpolicyError:
            print(f"flowpolicy: {path} does not load (`flowpolicy validate {path}` says why); "
                  f"its registration limits are not applied", file=sys.stderr)
            continue
        limit = policy.registration.max_versions_per_task
        known = limits.get(policy.project)
        if known is None or limit < known["max_versions_per_task"]:
            limits[policy.project] = {"max_versions_per_task": limit, "policy": str(path)}
    return limits


class RegistrationGuard:
    """Counts registrations per (task, asset) in this process and warns once per pair when
    the count passes ``limit``; ``policy`` names where the limit comes from."""

    def __init__(self, limit: int = DEFAULT_LIMIT, policy: str | None = None):
        self.limit = limit
        self.policy = policy
        self._counts: Counter[tuple[str | None, str, str]] = Counter()

    @classmethod
    def for_project(cls, limits: Mapping[str, Mapping[str, Any]], project: str
                    ) -> RegistrationGuard:
        """The guard of ``project`` from :func:`policy_limits`' result (the default limit when
        no policy of that project was found)."""
        found = limits.get(project) or {}
        return cls(int(found.get("max_versions_per_task", DEFAULT_LIMIT)), found.get("policy"))

    def note(self, asset_type: str, name: str) -> None:
        """Count one registration of ``asset_type`` ``name`` by the running task."""
        from metaflow import current

        key = (current.pathspec, asset_type, name)
        self._counts[key] += 1
        if self._counts[key] == self.limit + 1:
            print(f"flowpolicy: warning: {self._message(current.step_name, asset_type, name)}",
                  file=sys.stderr)

    def _message(self, step_name: str | None, asset_type: str, name: str) -> str:
        frame = _caller_frame()
        filename, lineno = frame.f_code.co_filename, frame.f_lineno
        loop = enclosing_loop(filename, lineno)
        inside = (f" inside the loop at {_display(filename)}:{loop} "
                  f"(`{linecache.getline(filename, loop).strip()}`)" if loop else "")
        source = (f"registration.max_versions_per_task in {self.policy}" if self.policy
                  else "the default of registration.max_versions_per_task")
        return (f"step {step_name} registered {asset_type} {name} {self.limit + 1} times in "
                f"one task, more than the policy allows ({self.limit}, {source}); the "
                f"registering call is at {_display(filename)}:{lineno}{inside}. Each version "
                f"starts gates, triggers and drift runs: keep per-epoch state in @checkpoint "
                f"and register the final {asset_type} once, after the loop (lint rules FPL007, "
                f"FPL008). Warned once for this asset and task.")


def enclosing_loop(filename: str, lineno: int) -> int | None:
    """Line of the innermost loop or comprehension around line ``lineno`` of ``filename``
    within the function holding that line, or None (no loop there, or no readable source)."""
    try:
        tree = ast.parse("".join(linecache.getlines(filename)))
    except (SyntaxError, ValueError):
        return None
    around = [node for node in ast.walk(tree) if isinstance(node, _LOOPS + _FUNCTIONS)
              and node.lineno <= lineno <= (node.end_lineno or node.lineno)]
    innermost = max(around, key=lambda node: (node.lineno, node.col_offset), default=None)
    return innermost.lineno if isinstance(innermost, _LOOPS) else None


def _caller_frame() -> FrameType:
    """The innermost frame outside the flowpolicy package: the line that called self.prj
    (Metaflow's own frames are outside it, so the walk always ends on one)."""
    frame = sys._getframe(1)
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
    return frame


def _display(filename: str) -> str:
    """``filename`` relative to the working directory when it is inside it."""
    relative = os.path.relpath(filename)
    return filename if relative.startswith("..") else relative
