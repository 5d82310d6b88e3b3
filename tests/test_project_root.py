"""One project-root rule (nearest ``obproject.toml``, else ``.git``, else the start folder),
and the registry default, generated headers and lint's policy discovery all following it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flowpolicy.compile.flows import source_label
from flowpolicy.lint.discovery import resolve_policies
from flowpolicy.policy.loader import load_policy
from flowpolicy.project_root import project_root
from flowpolicy.registry import default_registry_url

POLICY = "version: 1\nproject: {name}\n"


def _make(root: Path, entries: tuple[str, ...]) -> None:
    """``a/obproject.toml`` a file, ``a/.git/`` a folder, ``a/.git`` a file (a worktree)."""
    for entry in entries:
        path = root / entry.rstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        if entry.endswith("/"):
            path.mkdir()
        else:
            path.write_text("project = 'x'\n" if path.name == "obproject.toml" else "gitdir: x\n")


@pytest.mark.parametrize(
    ("entries", "start", "expected"),
    [
        (("proj/obproject.toml",), "proj/src/deep", "proj"),
        (("repo/.git/",), "repo/src", "repo"),
        (("repo/.git",), "repo/src", "repo"),  # a worktree's .git is a file
        (("repo/.git/", "repo/proj/obproject.toml"), "repo/proj/src", "repo/proj"),
        (("repo/.git/", "repo/proj/obproject.toml"), "repo/other", "repo"),
        # obproject.toml wins over a nearer .git (a submodule inside the project)
        (("proj/obproject.toml", "proj/vendored/.git/"), "proj/vendored/src", "proj"),
        (("outer/.git/", "outer/inner/.git/"), "outer/inner/src", "outer/inner"),
        (("repo/.git/", "repo/obproject.toml/"), "repo/src", "repo"),  # a folder is no marker
        ((), "plain/src", "plain/src"),
    ],
)
def test_project_root_rule(tmp_path, entries, start, expected):
    assert project_root(tmp_path) == tmp_path.resolve(), "a marker above the test folder"
    _make(tmp_path, entries)
    (tmp_path / start).mkdir(parents=True, exist_ok=True)
    assert project_root(tmp_path / start) == (tmp_path / expected).resolve()


def test_registry_headers_and_lint_agree_on_the_root(tmp_path, monkeypatch):
    """A project with a nested git checkout: the three users of the root used to disagree
    (the registry took the project, compile headers and lint discovery the checkout)."""
    assert project_root(tmp_path) == tmp_path.resolve(), "a marker above the test folder"
    _make(tmp_path, ("obproject.toml", "sub/.git/"))
    for folder, name in (("sub", "inner"), ("other", "outer")):
        (tmp_path / folder / "policies").mkdir(parents=True)
        (tmp_path / folder / "policies" / f"{name}.yaml").write_text(POLICY.format(name=name))
    monkeypatch.chdir(tmp_path / "sub")
    monkeypatch.delenv("FLOWPOLICY_REGISTRY", raising=False)

    root = tmp_path.resolve()
    assert default_registry_url() == f"sqlite:///{root / '.flowpolicy' / 'registry.db'}"
    inner = load_policy(Path("policies") / "inner.yaml")
    assert source_label(inner) == "sub/policies/inner.yaml"
    found = {Path(p.source).resolve() for p in resolve_policies().policies}
    assert found == {root / "sub" / "policies" / "inner.yaml",
                     root / "other" / "policies" / "outer.yaml"}


def test_header_label_of_a_policy_reached_through_a_link(tmp_path):
    """The label is the path inside the project even when the policy is opened through a
    linked folder (the root is found with links resolved)."""
    _make(tmp_path, ("real/obproject.toml",))
    (tmp_path / "real" / "policies").mkdir()
    (tmp_path / "real" / "policies" / "p.yaml").write_text(POLICY.format(name="p"))
    os.symlink(tmp_path / "real", tmp_path / "link")
    policy = load_policy(tmp_path / "link" / "policies" / "p.yaml")
    assert source_label(policy) == "policies/p.yaml"
