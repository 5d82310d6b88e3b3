"""What ``check`` and ``plan`` read: the registry, opened read-only (never created, migrated
or written)."""

from __future__ import annotations

from flowpolicy.registry import Registry, open_existing_registry


def open_registry_readonly(url: str | None) -> Registry:
    """The registry behind ``url`` opened read-only: never created, migrated or written (an
    older schema is read as it is); a missing file is invalid input (RegistryError, exit 2)."""
    return open_existing_registry(
        url, read_only=True,
        missing="nothing to check (run the flows first, or point --registry / "
                "FLOWPOLICY_REGISTRY at the right file)")
