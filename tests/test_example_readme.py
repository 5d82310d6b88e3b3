"""The example's README, run as written: its first shell line must give Metaflow a user
name it accepts in shells where ``$USER`` is empty, unset or ``root`` (containers, CI), and
the first command after it must then really run."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flowpolicy import Asset

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "fraud_detection"
_USER_VARIABLES = ("USER", "USERNAME", "SUDO_USER", "LOGNAME")


def _readme_commands() -> list[str]:
    text = (EXAMPLE / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", text, re.DOTALL)
    assert block, "the README has no bash block"
    return [line.split("  #")[0].strip() for line in block.group(1).splitlines()
            if line.strip()]


def _shell_env(tmp_path: Path, **users: str) -> dict[str, str]:
    """A shell with no Metaflow or flowpolicy settings, only ``users`` as user names, and a
    private Metaflow datastore (the registry is left to default, as the README says)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FLOWPOLICY_", "METAFLOW_", "OB_")) and k not in _USER_VARIABLES}
    env.update(users, METAFLOW_DEFAULT_METADATA="local", METAFLOW_DEFAULT_DATASTORE="local",
               METAFLOW_DATASTORE_SYSROOT_LOCAL=str(tmp_path / "metaflow"),
               PYTHON=sys.executable)
    return env


def _bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize(
    ("users", "expected"),
    [({}, "dev"), ({"USER": ""}, "dev"), ({"USER": "root"}, "dev"),
     ({"USER": "", "METAFLOW_USER": "alice"}, "alice")],
)
def test_the_first_line_gives_metaflow_a_user_it_accepts(tmp_path, users, expected):
    export = _readme_commands()[0]
    assert export.startswith("export METAFLOW_USER=")
    script = (f'{export}\n"$PYTHON" -c "from metaflow.util import get_username; '
              f'print(get_username())"')
    result = _bash(script, EXAMPLE, _shell_env(tmp_path, **users))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


@pytest.mark.flows
def test_the_walkthrough_starts_in_a_shell_with_an_empty_user(tmp_path):
    project = tmp_path / "fraud_detection"
    shutil.copytree(EXAMPLE, project,
                    ignore=shutil.ignore_patterns(".metaflow", ".flowpolicy", "__pycache__"))
    export, first = _readme_commands()[:2]
    assert first.startswith("python train_flow.py run")
    script = f'{export}\n"$PYTHON" {first.removeprefix("python ")}'
    result = _bash(script, project, _shell_env(tmp_path, USER=""))
    assert result.returncode == 0, result.stdout + result.stderr
    registry = f"sqlite:///{project / '.flowpolicy' / 'registry.db'}"
    dev = Asset(project="fraud_detection", branch="dev", registry=registry, read_only=True)
    assert dev.peek_model_asset("fraud_model", "latest")["id"] == "v1"
