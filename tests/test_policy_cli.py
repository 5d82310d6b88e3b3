"""``flowpolicy validate`` and ``flowpolicy schema`` as a user runs them: real subprocesses,
exit codes 0 valid / 1 invalid / 2 usage, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flowpolicy.resources import schema_path

FIXTURES = Path(__file__).parent / "fixtures" / "policies"
VALID = FIXTURES / "valid" / "minimal.yaml"
INVALID = FIXTURES / "invalid" / "undeclared_asset.yaml"


def flowpolicy(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flowpolicy", *args], capture_output=True,
                          text=True, cwd=cwd, env={**os.environ, "PYTHONWARNINGS": "ignore"})


@pytest.mark.parametrize(
    ("args", "code", "stream", "needle"),
    [
        ((str(VALID),), 0, "stdout", "ok (project minimal"),
        ((str(INVALID),), 1, "stdout", f"{INVALID}:8:13: FP203 $.gates.quality.asset:"),
        ((str(FIXTURES / "invalid"),), 1, "stderr", "error(s) in"),
        ((str(FIXTURES / "no-such-file.yaml"),), 2, "stderr", "no such file or directory"),
        (("--format", "xml", str(VALID)), 2, "stderr", "invalid choice: 'xml'"),
        ((str(FIXTURES / "invalid" / "python_tag.yaml"),), 1, "stdout", "FP006"),
    ],
)
def test_validate_exit_codes(args: tuple, code: int, stream: str, needle: str) -> None:
    result = flowpolicy("validate", *args)
    assert result.returncode == code, result.stderr
    assert needle in getattr(result, stream)
    assert "Traceback" not in result.stderr


def test_validate_json_and_default_search(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "good.yaml").write_text(VALID.read_text())
    (tmp_path / "policies" / "bad.yaml").write_text("version: 1\nproject: bad\nbranches: dev\n")
    result = flowpolicy("validate", "--format", "json", cwd=tmp_path)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["valid"] is False and report["error_count"] == 1
    by_name = {Path(f["path"]).name: f for f in report["files"]}
    assert by_name["good.yaml"]["valid"] and len(by_name["good.yaml"]["hash"]) == 64
    (diagnostic,) = by_name["bad.yaml"]["diagnostics"]
    assert (diagnostic["code"], diagnostic["line"], diagnostic["col"],
            diagnostic["json_path"]) == ("FP103", 3, 1, "$.branches")


def test_validate_without_policies_is_a_usage_error(tmp_path: Path) -> None:
    result = flowpolicy("validate", cwd=tmp_path)
    assert result.returncode == 2
    assert "no policy files found" in result.stderr


def test_schema_prints_the_shipped_schema() -> None:
    result = flowpolicy("schema")
    assert result.returncode == 0
    assert json.loads(result.stdout) == json.loads(schema_path().read_text())
    located = flowpolicy("schema", "--path")
    assert Path(located.stdout.strip()) == schema_path()
