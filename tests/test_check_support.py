"""A healthy registry for the ``check`` and ``plan`` tests, built by running the fraud
example's real flows (training flow and generated flows) in Metaflow subprocesses.

The build (eight flow runs, in two chains side by side) happens once per test session, also
across pytest-xdist workers (:func:`shared_runs.built_once`); tests copy the registry file
(and, to edit run tags, the Metaflow datastore) before breaking anything. This module holds
helpers only; it has no tests of its own.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from shared_runs import built_once

from flowpolicy.demo import flow_environment

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = REPO_ROOT / "examples" / "fraud_detection"
PROJECT = "fraud_detection"
ROWS = ["--n_rows", "4000"]

#: (branch, script, arguments) of each step; a step is a tuple of runs made at once.
#: Train (features v1, model v1), then two chains side by side: gate v1 on dev, promote it to
#: staging, gate it there and make it champion, promote it to prod; and train again on
#: shifted data (v2 of both) and run the drift monitor on dev. Instances are named (v1),
#: never "latest", because the chains race.
FIRST = ("dev", "train_flow.py", (*ROWS, "--seed", "7"))
PROMOTION_CHAIN: tuple[tuple[tuple[str, str, tuple[str, ...]], ...], ...] = (
    (("dev", "flows/quality_gate.py", ("--instance", "v1")),),
    (("dev", "flows/fraud_model_promotion.py",
      ("--source", "dev", "--target", "staging", "--instance", "v1")),),
    (("staging", "flows/quality_gate.py", ("--instance", "v1")),
     ("staging", "flows/fraud_model_champion.py", ("--candidate", "v1"))),
    (("staging", "flows/fraud_model_promotion.py",
      ("--source", "staging", "--target", "prod", "--instance", "v1")),),
)
DRIFT_CHAIN: tuple[tuple[tuple[str, str, tuple[str, ...]], ...], ...] = (
    (("dev", "train_flow.py", (*ROWS, "--seed", "9", "--shift", "1.0")),),
    (("dev", "flows/fraud_features_drift.py", ("--current", "v2", "--reference", "v1")),),
)


@dataclass(frozen=True)
class Project:
    """A copy of the example project, its Metaflow datastore root and registry file."""

    dir: Path
    datastore: Path
    registry_file: Path

    @property
    def policy(self) -> Path:
        return self.dir / "policies" / "fraud.yaml"

    @property
    def registry(self) -> str:
        return f"sqlite:///{self.registry_file}"

    def env(self, branch: str | None = None) -> dict[str, str]:
        return flow_environment(self.datastore, self.registry, user="tester", branch=branch)

    def run_flows(self, *runs: tuple[str, str, tuple[str, ...]]) -> None:
        """Run flows at once, each ``(branch, script, args)``; all must succeed."""
        started = [
            (branch, script, subprocess.Popen(
                [sys.executable, script, "--quiet", "run", *args], cwd=self.dir,
                env=self.env(branch), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True))
            for branch, script, args in runs]
        for branch, script, proc in started:
            output, _ = proc.communicate(timeout=600)
            assert proc.returncode == 0, f"{script} on {branch} failed:\n{output}"

    def copy(self, dest: Path, *, datastore: bool = False) -> Project:
        """A private copy to break: project folder and registry file, and the Metaflow
        datastore too when the test edits run tags."""
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copytree(self.dir, dest / "project",
                        ignore=shutil.ignore_patterns("__pycache__", ".metaflow"))
        shutil.copy2(self.registry_file, dest / "registry.db")
        store = self.datastore
        if datastore:
            store = dest / "metaflow"
            shutil.copytree(self.datastore, store)
        return Project(dest / "project", store, dest / "registry.db")

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "flowpolicy", *args], cwd=self.dir,
                              env=self.env(), capture_output=True, text=True, timeout=300)

    def metaflow(self, code: str) -> str:
        """Run Metaflow client code in a subprocess (the client binds its datastore at
        import, so it must not run in the test process)."""
        script = "from metaflow import Flow, Run, namespace\nnamespace(None)\n" + code
        done = subprocess.run([sys.executable, "-c", script], cwd=self.dir, env=self.env(),
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout


def build_healthy(root: Path) -> Project:
    project = Project(root / "project", root / "metaflow", root / "registry.db")
    # a build that failed half-way (another worker's) leaves parts behind: start afresh
    for leftover in (project.dir, project.datastore):
        shutil.rmtree(leftover, ignore_errors=True)
    project.registry_file.unlink(missing_ok=True)
    shutil.copytree(EXAMPLE, project.dir,
                    ignore=shutil.ignore_patterns("__pycache__", ".metaflow"))
    project.run_flows(FIRST)
    with ThreadPoolExecutor(max_workers=1) as side:
        drift = side.submit(lambda: [project.run_flows(*step) for step in DRIFT_CHAIN])
        for step in PROMOTION_CHAIN:
            project.run_flows(*step)
        drift.result()
    return project


#: A folder holding a healthy project built earlier by :func:`build_healthy`, reused instead
#: of building one (saves the eight flow runs while editing these tests).
PREBUILT_ENV = "FLOWPOLICY_TEST_HEALTHY_PROJECT"


def shared_healthy(tmp_path_factory) -> Project:
    """The healthy project of this test run, built by the first worker that asks."""
    prebuilt = os.environ.get(PREBUILT_ENV)
    root = Path(prebuilt) if prebuilt else built_once(tmp_path_factory, "flowpolicy-check",
                                                      build_healthy)
    return Project(root / "project", root / "metaflow", root / "registry.db")


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def downgrade_to_schema_1(path: Path) -> None:
    """Turn a registry into the schema-1 file flowpolicy's first release wrote (no evidence
    table, no events index), keeping its assets, aliases and events; the writer's close
    checkpoints the WAL back into the file."""
    import sqlite3

    conn = sqlite3.connect(path)
    conn.executescript("""
        DROP TRIGGER evidence_append_only_update;
        DROP TRIGGER evidence_append_only_delete;
        DROP TRIGGER alias_history_no_delete;
        DROP INDEX evidence_by_instance;
        DROP INDEX events_by_scope;
        DROP TABLE evidence;
        PRAGMA user_version = 1;
    """)
    conn.close()
