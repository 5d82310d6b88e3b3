"""Scratch projects for the dispatch tests: a copy of the fraud example (real flows), or a
small policy whose generated flows are replaced by stubs that only record that they ran
(for the tests that start hundreds of runs)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

from flowpolicy.demo import flow_environment

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = REPO_ROOT / "examples" / "fraud_detection"


class Scratch:
    """A project folder with its own registry and Metaflow datastore."""

    def __init__(self, root: Path, name: str):
        self.root = root
        self.dir = root / name
        self.registry = f"sqlite:///{root / 'registry.db'}"
        self.datastore = root / "metaflow"

    def env(self, branch: str | None = None, **extra: str) -> dict[str, str]:
        env = flow_environment(self.datastore, self.registry, user="tester", branch=branch)
        return {**env, **extra}

    def run(self, script: str, *args: str, branch: str = "dev") -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, script, "--quiet", "run", *args], cwd=self.dir,
                              env=self.env(branch), capture_output=True, text=True,
                              timeout=300)

    def flowpolicy(self, *args: str, timeout: float = 900, **env: str
                   ) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "flowpolicy", *args], cwd=self.dir,
                              env=self.env(**env), capture_output=True, text=True,
                              timeout=timeout)


def fraud_project(tmp_path: Path) -> Scratch:
    """The fraud example with its committed (golden) generated flows."""
    scratch = Scratch(tmp_path, "fraud_detection")
    shutil.copytree(EXAMPLE, scratch.dir,
                    ignore=shutil.ignore_patterns(".metaflow", ".flowpolicy", "__pycache__"))
    return scratch


STUB_POLICY = """\
version: 1
project: stress
assets:
  risk_model: {type: model}
branches: [dev]
gates:
  alpha: {asset: risk_model, checks: [{metric: auc, min: 0.5}]}
  beta: {asset: risk_model, checks: [{metric: auc, min: 0.5}]}
compile: {output_dir: ../flows}
"""

#: Stands in for a generated flow: records (flow, branch, instance, pid) with one O_APPEND
#: write, so lines from concurrent runs never mix.
STUB_FLOW = textwrap.dedent("""\
    import os
    import sys

    args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
    line = "{} {} {} {}\\n".format(os.path.basename(__file__), os.environ["FLOWPOLICY_BRANCH"],
                                  args.get("instance"), os.getpid())
    fd = os.open(os.environ["STUB_MARKER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, line.encode())
    os.close(fd)
    """)


def stub_project(tmp_path: Path, policy: str = STUB_POLICY) -> Scratch:
    """A project of ``policy`` whose flows are :data:`STUB_FLOW`; the runs record
    themselves in ``<root>/ran.txt`` (``STUB_MARKER``)."""
    scratch = Scratch(tmp_path, "stress")
    (scratch.dir / "policies").mkdir(parents=True)
    (scratch.dir / "flows").mkdir()
    (scratch.dir / "obproject.toml").write_text('project = "stress"\n')
    (scratch.dir / "policies" / "stress.yaml").write_text(policy)
    for name in ("alpha_gate.py", "beta_gate.py"):
        (scratch.dir / "flows" / name).write_text(STUB_FLOW)
    return scratch


def stub_env(scratch: Scratch) -> dict[str, str]:
    return {"STUB_MARKER": str(scratch.root / "ran.txt")}


def ran(scratch: Scratch) -> Counter:
    """How often each (flow file, instance) ran."""
    marker = scratch.root / "ran.txt"
    if not marker.exists():
        return Counter()
    return Counter((flow, instance) for flow, _, instance, _ in
                   (line.split() for line in marker.read_text().splitlines()))
