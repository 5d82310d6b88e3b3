"""Writing files so that a reader never sees half of one.

Everything flowpolicy writes for a user (generated flows, ``lint -o`` reports) goes through
here. Each file is written to a temporary file in the same folder and renamed over the old
one, so a reader (CI, an editor, a running flow) sees the old file or the new one, never a
mix. The data is flushed to disk before the rename and the folder after it, so a crash does
not leave an empty file where a good one was. A file that already exists keeps its
permission bits; a new one gets the usual ``0o666`` minus the umask. A symbolic link is
written through (the link stays, its target is replaced). On any failure the temporary file
is removed and the old file is left as it was.

Problems a user can fix (a missing folder, a path that is a file, no permission) are
:class:`~flowpolicy.errors.OutputError` (exit 2) with one line saying which path and why.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TextIO

from flowpolicy.errors import OutputError

__all__ = ["atomic_write", "atomic_write_all", "atomic_writer", "make_folder", "require_folder"]


def atomic_write(path: str | os.PathLike, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8, ``\\n`` line ends) in one rename."""
    atomic_write_all({path: text})


def atomic_write_all(files: Mapping[str | os.PathLike, str]) -> None:
    """Replace each path with its text (UTF-8, ``\\n`` line ends). Every file is written and
    flushed to disk before the first rename, so a failure while writing (a full disk, a
    path that is a folder) changes none of them."""
    staged: list[tuple[Path, Path]] = []
    try:
        for path, text in files.items():
            target = _target(path)
            handle, temp = _open_temp(target)
            staged.append((temp, target))
            with _reported(target), handle:
                handle.write(text)
        # Syncing after all are written lets the file system commit them together: 1.5-1.8x
        # faster than syncing each as it is written (bench/compile.py, 1,999 files, ext4).
        for temp, target in staged:
            with _reported(target):
                _sync(temp, os.O_WRONLY)
        for temp, target in staged:
            with _reported(target):
                os.replace(temp, target)
    except BaseException:
        for temp, _ in staged:
            temp.unlink(missing_ok=True)
        raise
    for folder in dict.fromkeys(target.parent for _, target in staged):
        _sync_folder(folder)


@contextmanager
def atomic_writer(path: str | os.PathLike) -> Iterator[TextIO]:
    """A text handle (UTF-8, ``\\n`` line ends) whose content replaces ``path`` when the
    ``with`` block ends normally; if the block raises, ``path`` is left as it was. For output
    written as it is produced (``lint -o``); :func:`atomic_write` when the text is at hand."""
    target = _target(path)
    handle, temp = _open_temp(target)
    try:
        with handle:
            yield handle
            with _reported(target):
                handle.flush()
                os.fsync(handle.fileno())
        with _reported(target):
            os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _sync_folder(target.parent)


def require_folder(path: str | os.PathLike, label: str = "folder") -> Path:
    """``path``, unless it (or a folder above it) exists and is not a folder: then an
    OutputError saying so (``label`` names the path in the message, e.g. ``"--dir"``).
    Creates nothing; a folder that does not exist yet is fine."""
    folder = Path(path)
    blocker = _file_in_the_way(folder)
    if blocker == folder:
        raise OutputError(f"{label} {folder} exists and is not a folder")
    if blocker is not None:
        raise OutputError(f"{label} {folder} cannot be a folder: {blocker} is not a folder")
    return folder


def make_folder(path: str | os.PathLike, label: str = "folder") -> Path:
    """:func:`require_folder`, then create ``path`` and its parents if they are missing."""
    folder = require_folder(path, label)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{label} {folder} cannot be created: "
                          f"{exc.strerror or exc}") from exc
    return folder


def _target(path: str | os.PathLike) -> Path:
    """The file to replace: ``path``, or what it links to, so a link is not replaced by a
    plain file. A folder, or a missing or blocked parent folder, is an OutputError."""
    target = Path(path)
    if target.is_symlink():
        target = Path(os.path.realpath(target))
    if target.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder")
    parent = target.parent
    blocker = _file_in_the_way(parent)
    if blocker is not None:
        raise OutputError(f"cannot write {path}: {blocker} is not a folder")
    if not parent.is_dir():
        raise OutputError(f"cannot write {path}: folder {parent} does not exist")
    return target


def _open_temp(target: Path) -> tuple[TextIO, Path]:
    """A new, uniquely named hidden file beside ``target``, opened for writing. Created with
    mode 0o666 so the umask applies as for any new file, then given ``target``'s permission
    bits when it exists."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(temp, flags, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            raise _output_error(target, exc) from exc
        try:
            with _reported(target):
                _copy_mode(target, fd)
            return os.fdopen(fd, "w", encoding="utf-8", newline="\n"), temp
        except BaseException:
            os.close(fd)
            temp.unlink(missing_ok=True)
            raise
    raise OutputError(f"cannot write {target}: no free temporary name beside it")


def _copy_mode(target: Path, fd: int) -> None:
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        return  # a new file: the umask already decided
    os.fchmod(fd, mode)


@contextmanager
def _reported(target: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise _output_error(target, exc) from exc


def _output_error(target: Path, exc: OSError) -> OutputError:
    return OutputError(f"cannot write {target}: {exc.strerror or exc}")


def _sync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable. Folders cannot be opened for this everywhere (not on
    Windows), and the files are already safe, so a failure here is not an error."""
    with suppress(OSError):
        _sync(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))


def _file_in_the_way(folder: Path) -> Path | None:
    """The first existing path of ``folder`` and its parents, if it is not a folder."""
    for candidate in (folder, *folder.parents):
        if candidate.is_dir():
            return None
        if candidate.exists() or candidate.is_symlink():
            return candidate
    return None

