"""The one directory walker: ``lint`` (Python files), policy discovery and ``validate`` /
``compile`` (policy YAML) all list files with :func:`walk_files`, so they skip the same
folders.

Never entered: hidden folders (``.git``, ``.venv``, ``.tox``, ``.metaflow``,
``.flowpolicy``, ...) and the folders in :data:`SKIPPED_FOLDERS` — virtualenvs, caches,
build output, installed packages. A caller's ``exclude`` globs are matched against each
name and each path (as walked, relative to the top folder given).
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator, Sequence

#: Folder names (globs) never entered, beside hidden folders.
SKIPPED_FOLDERS: tuple[str, ...] = (
    "__pycache__", "venv", "node_modules", "site-packages", "build", "dist", "*.egg-info",
)


def skipped(name: str, path: str, exclude: Sequence[str] = ()) -> bool:
    """Whether the folder or file ``name`` at ``path`` is left out of a walk."""
    return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(path, p) for p in exclude)


def walk_files(
    top: str | os.PathLike, suffixes: tuple[str, ...], exclude: Sequence[str] = ()
) -> Iterator[str]:
    """Files under ``top`` whose names end with one of ``suffixes``, in a stable order
    (entries sorted by name, depth first). Folders that cannot be listed are skipped."""
    top = os.fspath(top)
    try:
        entries = sorted(os.scandir(top), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        name = entry.name
        full = os.path.join(top, name) if top != "." else name
        if skipped(name, full, exclude):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                if name.startswith(".") or any(fnmatch.fnmatch(name, p) for p in SKIPPED_FOLDERS):
                    continue
                yield from walk_files(full, suffixes, exclude)
            elif name.endswith(suffixes) and entry.is_file():
                yield full
        except OSError:
            continue
