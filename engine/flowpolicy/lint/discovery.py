"""Which policy applies to which file.

With ``--policy PATH`` (repeatable) those files are used; ``--policy flowpolicy:<preset>``
names a stock preset instead of a file (rules only, no declared assets). Without it, every
folder named ``policies/`` below the project root of the current directory (nearest
``obproject.toml``, else ``.git``, else the current directory: :mod:`flowpolicy.project_root`)
is searched for policy files with :func:`flowpolicy.policy.loader.find_policy_files` (YAML
files with a top-level ``version:``/``project:`` key; stock presets have neither). Hidden
folders and the linter's excluded folders are not entered.

A policy governs the Python files under its *home*: the folder holding its ``policies/``
folder (else the policy file's own folder). A file under several homes takes the deepest.
A single policy governs every file; files outside every home (or all files, when no
policy is found) get the stock ``flowpolicy:naming`` preset, which declares no assets, or
the presets named with ``--policy`` (together, as one policy extending them all).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from flowpolicy.errors import FlowpolicyError, PolicyError
from flowpolicy.lint.engine import Scope
from flowpolicy.lint.rule import RuleContext
from flowpolicy.policy.loader import default_naming, find_policy_files, load_policy, preset_policy
from flowpolicy.policy.merge import PRESET_PREFIX
from flowpolicy.policy.model import Policy
from flowpolicy.project_root import project_root
from flowpolicy.walk import walk_files


@dataclass(frozen=True)
class PolicySet:
    """The policies in force and the scopes they give, deepest home first."""

    policies: tuple[Policy, ...]
    scopes: tuple[Scope, ...]


def discover_policy_files(root: Path, exclude: Sequence[str] = ()) -> list[Path]:
    """Policy files in the ``policies/`` folders under ``root``."""
    # The outermost policies/ folder above each YAML file the shared walker finds.
    folders: dict[Path, None] = {}
    for found in walk_files(root, (".yaml", ".yml"), exclude):
        parts = Path(os.path.relpath(found, root)).parts[:-1]
        if "policies" in parts:
            folders.setdefault(Path(root, *parts[: parts.index("policies") + 1]))
    return find_policy_files(list(folders)) if folders else []


def _load_discovered(path: Path) -> Policy:
    try:
        return load_policy(path)
    except PolicyError as exc:
        raise FlowpolicyError(
            f"{exc}\nflowpolicy lint: {os.fspath(path)} was found by policy discovery and "
            "does not load; fix it, name the policies to use with --policy, or skip its "
            "folder with --exclude"
        ) from exc


def policy_home(policy_file: Path) -> Path:
    folder = policy_file.resolve().parent
    return folder.parent if folder.name == "policies" else folder


def context_for_policy(policy: Policy) -> RuleContext:
    return RuleContext(
        naming=policy.naming,
        declared={name: decl.type for name, decl in policy.assets.items()},
        policy_source=shown_path(policy.source),
        required_annotations={
            name: decl.required_annotations
            for name, decl in policy.assets.items() if decl.required_annotations
        },
    )


def shown_path(path: str) -> str:
    """Paths under the current directory are shown relative to it, like linted files."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return path


def stock_context() -> RuleContext:
    return RuleContext(naming=default_naming())


def preset_context(refs: Sequence[str]) -> RuleContext:
    """The rules of the stock presets ``refs`` merged as one policy; declares no assets."""
    naming = preset_policy(*refs).naming
    return RuleContext(naming=naming, declared=None, policy_source=", ".join(refs))


def resolve_policies(
    policy_paths: Sequence[str | os.PathLike] = (), *, exclude: Sequence[str] = (),
    root: Path | None = None,
) -> PolicySet:
    """Load the policies in force (raises PolicyError/FlowpolicyError, exit 2, if one is
    broken or missing) and the scopes they govern."""
    if policy_paths:
        presets = [os.fspath(p) for p in policy_paths if os.fspath(p).startswith(PRESET_PREFIX)]
        files = [Path(p) for p in policy_paths if not os.fspath(p).startswith(PRESET_PREFIX)]
        for path in files:
            if not path.is_file():
                raise FlowpolicyError(f"no such policy file: {os.fspath(path)}")
        policies = tuple(load_policy(path) for path in files)
        if presets:
            return policy_set_of(policies, fallback=preset_context(presets))
    else:
        policies = tuple(
            _load_discovered(path)
            for path in discover_policy_files(root or project_root(), exclude)
        )
    return policy_set_of(policies)


def policy_set_of(policies: Sequence[Policy], fallback: RuleContext | None = None) -> PolicySet:
    """The scopes of policies already loaded: one policy governs everything, several each
    govern their own project folder (the deepest wins), ``fallback`` (default: the stock
    rules) the rest. With a ``fallback``, even a single policy governs only its folder."""
    policies = tuple(policies)
    if len(policies) == 1 and fallback is None:
        return PolicySet(policies, (Scope("", context_for_policy(policies[0])),))
    homed = sorted(
        ((str(policy_home(Path(p.source))), p) for p in policies),
        key=lambda item: -len(item[0]),
    )
    scopes = [Scope(home, context_for_policy(policy)) for home, policy in homed]
    scopes.append(Scope("", fallback or stock_context()))
    return PolicySet(policies, tuple(scopes))
