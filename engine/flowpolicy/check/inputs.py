"""Inputs shared by ``check`` and ``plan``: the policies, and the registry opened read-only
(never created, migrated or written)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from flowpolicy.policy.loader import load_policy, require_policy_files
from flowpolicy.policy.model import Policy
from flowpolicy.registry import Registry, open_existing_registry


def find_policies(paths: Sequence[str]) -> list[Path]:
    """The policy files named by ``paths`` (files or folders; default ./policies/, else the
    current folder); raises FlowpolicyError when a path is missing or nothing is found."""
    return require_policy_files(list(paths))


def load_policies(paths: Sequence[str]) -> list[Policy]:
    """Load the policies named by ``paths`` (see :func:`find_policies`); raises PolicyError
    for an invalid one."""
    return [load_policy(path) for path in find_policies(paths)]


def open_registry_readonly(url: str | None) -> Registry:
    """The registry behind ``url`` opened read-only: never created, migrated or written (an
    older schema is read as it is); a missing file is invalid input (RegistryError, exit 2)."""
    return open_existing_registry(
        url, read_only=True,
        missing="nothing to check (run the flows first, or point --registry / "
                "FLOWPOLICY_REGISTRY at the right file)")
