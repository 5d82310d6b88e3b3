"""Expensive real runs made once per test run and shared by every test (and every
pytest-xdist worker) that reads them: ``flowpolicy demo`` (eleven Metaflow runs), the healthy
check project (:mod:`test_check_support`) and the trained example of ``test_flows``.

This module holds helpers only; it has no tests of its own.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


def built_once(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """The folder ``name`` that ``build(folder)`` filled in this test run. The first worker
    to ask builds it under a file lock, the others wait and reuse it; a build that raised is
    started again by the next one to ask (``build`` clears what a failed one left)."""
    base = tmp_path_factory.getbasetemp()
    uid = os.environ.get("PYTEST_XDIST_TESTRUNUID")  # set for every worker of one run
    root = (base.parent / f"{name}-{uid}") if uid else (base / name)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not (root / ".done").exists():
                build(root)
                (root / ".done").write_text("built\n")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return root


@dataclass(frozen=True)
class DemoRun:
    """What ``flowpolicy demo --dir DIR`` printed and left behind."""

    dir: Path
    returncode: int
    stdout: str
    stderr: str

    @property
    def registry(self) -> str:
        return f"sqlite:///{self.dir / 'registry.db'}"


def demo_command(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``flowpolicy demo`` as a user runs it: no flowpolicy or Metaflow settings, so the demo
    must choose them itself."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWPOLICY_", "METAFLOW_"))}
    return subprocess.run([sys.executable, "-m", "flowpolicy", "demo", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def shared_demo(tmp_path_factory) -> DemoRun:
    """One ``flowpolicy demo`` of this test run; read it, never change it."""
    def build(root: Path) -> None:
        scratch = root / "demo"
        shutil.rmtree(scratch, ignore_errors=True)  # a run that died half-way: start afresh
        done = demo_command("--dir", str(scratch), cwd=root)
        (root / "result.json").write_text(json.dumps(
            {"returncode": done.returncode, "stdout": done.stdout, "stderr": done.stderr}))

    root = built_once(tmp_path_factory, "flowpolicy-demo", build)
    result = json.loads((root / "result.json").read_text())
    return DemoRun(root / "demo", **result)
