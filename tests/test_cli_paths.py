"""Path arguments a user gets wrong, as the CLI is called (subprocesses): an output or scratch
folder that is a file, a missing folder, a folder where a file should go. Each is exit 2
(usage, never 1, which CI reads as "findings") with one clean line on stderr and nothing
created or changed; and "no policy files found" says what a policy file is, for every
command that needs one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = REPO_ROOT / "examples" / "fraud_detection"


def flowpolicy(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flowpolicy", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})


def _snapshot(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None
            for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("compile", "project/policies/fraud.yaml", "-o", "afile"),
         "output folder afile exists and is not a folder"),
        (("compile", "project/policies/fraud.yaml", "-o", "afile/flows"),
         "output folder afile/flows cannot be a folder: afile is not a folder"),
        (("compile", "--check", "project/policies/fraud.yaml", "-o", "afile"),
         "output folder afile exists and is not a folder"),
        (("lint", "project", "-o", "missing/dir/x.sarif"),
         "cannot write missing/dir/x.sarif: folder missing/dir does not exist"),
        (("lint", "project", "-o", "afile/x.sarif"),
         "cannot write afile/x.sarif: afile is not a folder"),
        (("lint", "project", "--format", "sarif", "-o", "project"),
         "cannot write project: it is a folder"),
        (("demo", "--dir", "afile"), "--dir {cwd}/afile exists and is not a folder"),
        (("demo", "--dir", "afile/scratch"),
         "--dir {cwd}/afile/scratch cannot be a folder: {cwd}/afile is not a folder"),
        (("demo", "--dir", "project"), "--dir {cwd}/project is not empty"),
        (("demo", "--dir", str(EXAMPLE / "policies" / "scratch")),
         f"--dir {EXAMPLE.resolve()}/policies/scratch is inside the example it copies"),
    ],
)
def test_bad_output_paths_are_usage_errors(tmp_path, args, message):
    shutil.copytree(EXAMPLE, tmp_path / "project",
                    ignore=shutil.ignore_patterns(".metaflow", "__pycache__", ".flowpolicy"))
    (tmp_path / "afile").write_text("keep me\n")
    before = _snapshot(tmp_path)

    result = flowpolicy(*args, cwd=tmp_path)

    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    expected = message.format(cwd=tmp_path.resolve())
    assert lines[0].startswith(f"flowpolicy: error: {expected}"), lines[0]
    assert _snapshot(tmp_path) == before  # nothing created, nothing changed
    assert not (EXAMPLE / "policies" / "scratch").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux's sysfs")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("lint", "src", "-o", "/sys/flowpolicy.sarif"),
         "cannot write /sys/flowpolicy.sarif: Permission denied"),
        (("compile", str(EXAMPLE / "policies" / "fraud.yaml"), "-o", "/sys/flowpolicy-flows"),
         "output folder /sys/flowpolicy-flows cannot be created: Operation not permitted"),
    ],
)
def test_unwritable_places_are_usage_errors(tmp_path, args, message):
    """/sys refuses new files and folders even to root, so this runs as any user (a folder
    made read-only with chmod would not stop root)."""
    (tmp_path / "src").mkdir()
    result = flowpolicy(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines() == [f"flowpolicy: error: {message}"]
    assert not [p for p in os.listdir("/sys") if "flowpolicy" in p]


@pytest.mark.parametrize("command", ["validate", "compile", "check", "plan"])
def test_no_policy_files_found_says_what_a_policy_file_is(tmp_path, command):
    (tmp_path / "notes.yaml").write_text("title: not a policy\n")
    result = flowpolicy(command, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        "flowpolicy: error: no policy files found in policies/ or the current directory "
        "(searched for *.yaml and *.yml files with a top-level 'version:' or 'project:' "
        "key, or the policy.schema.json modeline)"]


@pytest.mark.parametrize("head", ["version: 1\n", "project: only_project\n",
                                  "# yaml-language-server: $schema=policy.schema.json\n"])
def test_each_marker_in_that_message_makes_a_policy_file(tmp_path, head):
    """What the message (and the README) says is what discovery does: any one marker is
    enough (the file is then validated, and this one is incomplete)."""
    (tmp_path / "p.yaml").write_text(head)
    result = flowpolicy("validate", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "p.yaml:" in result.stdout


@pytest.mark.parametrize("args", [("validate",), ("compile", "--check")])
def test_an_installation_missing_a_dependency_is_one_clear_line(tmp_path, args):
    """An environment installed before a dependency joined pyproject.toml (an editable install
    keeps running the new code without it) gets told what to reinstall, not a traceback. The
    dependency is hidden from the child process by a ``None`` in ``sys.modules``."""
    policy = str(EXAMPLE / "policies" / "fraud.yaml")
    program = ("import sys; sys.modules['re2'] = None; from flowpolicy.cli import main; "
               f"sys.exit(main({[*args, policy]!r}))")
    result = subprocess.run([sys.executable, "-c", program], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "flowpolicy: error: the Python module 're2' is not installed (package google-re2); "
        "this installation of flowpolicy is incomplete or older than its code: reinstall it "
        "(pip install -e '.[dev]' in the checkout, or pip install flowpolicy)"]
