"""Inputs shared by ``check`` and ``plan``: the policies, and the registry opened read-only
(never created, migrated or written)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from flowpolicy.policy.model import Policy


def find_policies(paths: Sequence[str]) -> list[Path]:
    """The policy files named by ``paths`` (files or folders; default ./policies/, else the
    current folder); raises FlowpolicyError when a path is missing or nothing is found."""
    from flowpolicy.policy.loader import require_policy_files

    return require_policy_files(list(paths))


def load_policies(paths: Sequence[str]) -> list[Policy]:
    """Load the policies named by ``paths`` (see :func:`find_policies`); raises PolicyError
    for an invalid one."""
    from flowpolicy.policy.loader import load_policy

    return [load_policy(path) for path in find_policies(paths)]


def open_registry_readonly(url: str | None):
    """The registry behind ``url`` opened read-only: never created, migrated or written (an
    older schema is read as it is); a missing file is invalid input (RegistryError, exit 2)."""
    from flowpolicy.registry import open_existing_registry

    return open_existing_registry(
        url, read_only=True,
        missing="nothing to check (run the flows first, or point --registry / "
                "FLOWPOLICY_REGISTRY at the right file)")
