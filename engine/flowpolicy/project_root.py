"""The project root: where the default registry lives (``.flowpolicy/registry.db``), what
generated headers name the policy file relative to, and where ``lint`` looks for
``policies/`` folders.

The rule: the nearest folder, from ``start`` upwards, that holds ``obproject.toml``; if there
is none, the nearest that holds ``.git`` (a folder, or a file in a git worktree or
submodule); if there is neither, ``start`` itself. ``obproject.toml`` wins over a nearer
``.git`` because it marks the Metaflow project, which in a monorepo is a folder below the
repository's root, and in a vendored or nested checkout may sit above it.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["project_root"]

PROJECT_FILE = "obproject.toml"
REPOSITORY_MARKER = ".git"


def project_root(start: str | os.PathLike | None = None) -> Path:
    """The project root for the folder ``start`` (default: the working directory), as an
    absolute path with links resolved."""
    here = Path(start if start is not None else os.getcwd()).resolve()
    chain = (here, *here.parents)
    for folder in chain:
        if (folder / PROJECT_FILE).is_file():
            return folder
    for folder in chain:
        if (folder / REPOSITORY_MARKER).exists():
            return folder
    return here
