"""Fixture folders: every valid policy loads; every invalid one fails with exactly the codes and
lines its ``# expect: CODE [file] line N`` comments name (one parametrised test, ruff-style)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from flowpolicy.errors import PolicyError
from flowpolicy.policy.codes import CODES
from flowpolicy.policy.loader import load_policy, load_policy_text

FIXTURES = Path(__file__).parent / "fixtures" / "policies"
VALID = sorted((FIXTURES / "valid").glob("*.yaml"))
INVALID = sorted((FIXTURES / "invalid").glob("*.yaml"))
EXPECT = re.compile(r"#\s*expect:\s*(FP\d{3})(?:\s+(\S+\.ya?ml))?\s+line\s+(\d+)")
#: Codes no fixture file can produce: FP010 (unreadable file) is tested below, FP199 is the
#: fallback for schema keywords the policy schema does not use.
NO_FIXTURE = {"FP010", "FP199"}


def expectations(path: Path) -> set[tuple[str, Path, int]]:
    text = path.read_bytes().decode("utf-8", "replace")
    found = set()
    for code, file, line in EXPECT.findall(text):
        target = (path.parent / file) if file else path
        found.add((code, target.resolve(), int(line)))
    return found


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_valid_policy_loads_and_round_trips(path: Path) -> None:
    policy = load_policy(path)
    dumped = yaml.safe_dump(policy.to_document(), sort_keys=False)
    again = load_policy_text(dumped)
    assert again.hash == policy.hash
    assert again.to_document() == policy.to_document()


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_policy_reports_expected_codes_and_lines(path: Path) -> None:
    expected = expectations(path)
    assert expected, f"{path.name} has no '# expect: CODE line N' comment"
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    actual = {(d.code, Path(d.path).resolve(), d.line) for d in caught.value.diagnostics}
    assert actual == expected, caught.value.message
    for diagnostic in caught.value.diagnostics:
        assert diagnostic.col >= 1
        assert diagnostic.code in CODES


def test_every_code_has_an_invalid_fixture() -> None:
    covered = {code for path in INVALID for code, _, _ in expectations(path)}
    assert set(CODES) - NO_FIXTURE <= covered, sorted(set(CODES) - NO_FIXTURE - covered)


def test_unreadable_file_is_fp010(tmp_path: Path) -> None:
    folder = tmp_path / "policy.yaml"
    folder.mkdir()
    with pytest.raises(PolicyError) as caught:
        load_policy(folder)
    assert [d.code for d in caught.value.diagnostics] == ["FP010"]


def test_missing_file_is_fp010_not_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy(tmp_path / "absent.yaml")
    assert caught.value.diagnostics[0].code == "FP010"
