"""The wheel ships schemas/, policies/, the compiler's templates, the demo's example project and
the Metaflow card template the generated flows use: build it, install it into a fresh
virtualenv outside the checkout, and use the installed copy (not the source tree) to find
them and run the CLI.

Slow-ish (builds a wheel); deselect with ``-m "not packaging"``. Dependencies come from the
system site-packages (``--system-site-packages``) and the virtualenv running the tests;
flowpolicy itself is installed ``--no-deps`` from the wheel, and the venv's own
site-packages precedes the editable checkout on sys.path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path
from site import getsitepackages

import pytest

pytestmark = pytest.mark.packaging

REPO = Path(__file__).resolve().parent.parent
PROBE = """
import importlib.util, json, flowpolicy
from flowpolicy.resources import presets_dir, schema_path
from flowpolicy.policy.loader import default_naming
from flowpolicy.demo import example_dir
# where Metaflow finds it (found, not imported: importing it starts Metaflow)
card = importlib.util.find_spec("metaflow_extensions.flowpolicy.plugins.cards.flowpolicy_card")
print(json.dumps({
    "card_template": card.origin,
    "example": str(example_dir()),
    "package": flowpolicy.__file__,
    "schema": str(schema_path()),
    "presets": sorted(p.name for p in presets_dir().glob("*.yaml")),
    "presets_dir": str(presets_dir()),
    "naming": list(default_naming().forbidden_words),
}))
"""


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                            env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_installed_wheel_finds_schema_and_presets(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", wheels, REPO,
        cwd=tmp_path)
    (wheel,) = wheels.glob("flowpolicy-*.whl")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    if sys.prefix != sys.base_prefix:
        # Run from a virtualenv (as CI does): its packages are the dependencies too. A path
        # in a .pth file comes after the new venv's own site-packages, so the wheel wins.
        own = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                  cwd=tmp_path).stdout.strip()
        (Path(own) / "test_dependencies.pth").write_text(
            "\n".join(getsitepackages()) + "\n", encoding="utf-8")
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
        "--quiet", wheel, cwd=tmp_path)

    work = tmp_path / "elsewhere"
    work.mkdir()
    probe = json.loads(run(python, "-c", PROBE, cwd=work).stdout)
    site = env_dir.resolve()
    for key in ("package", "schema", "presets_dir", "example", "card_template"):
        assert Path(probe[key]).resolve().is_relative_to(site), (key, probe[key])
        assert not Path(probe[key]).resolve().is_relative_to(REPO), (key, probe[key])
    assert probe["presets"] == ["champion.yaml", "drift.yaml", "naming.yaml", "promotion.yaml"]
    assert "prod" in probe["naming"]

    schema = run(env_dir / "bin" / "flowpolicy", "schema", cwd=work).stdout
    assert json.loads(schema) == json.loads((REPO / "schemas" / "policy.schema.json").read_text())
    policy = work / "fraud.yaml"
    policy.write_text((REPO / "examples/fraud_detection/policies/fraud.yaml").read_text())
    validated = run(env_dir / "bin" / "flowpolicy", "validate", policy, cwd=work)
    assert "ok (project fraud_detection" in validated.stdout
    compiled = run(env_dir / "bin" / "flowpolicy", "compile", policy, "-o", work / "flows",
                   cwd=work)
    assert compiled.returncode == 0
    assert {p.name for p in (work / "flows").glob("*.py")} == {
        p.name for p in (REPO / "examples/fraud_detection/flows").glob("*.py")
    }
