"""Walk the paths a user gives us, recursively and safely.

Symbolic links inside a walked directory are recorded, not followed: a link can
point outside the tree or back into it (a loop), and following it would count
one file twice. Paths named on the command line are followed, since the user
asked for them. Anything that is not a regular file (a FIFO would block a
reader forever) is recorded with an error and skipped.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = ["FoundFile", "walk_paths"]


@dataclass(frozen=True)
class FoundFile:
    """A path to hash, or one that cannot be, with ``error`` saying why.

    ``mime`` is an ``inode/*`` type for things that are not regular files.
    """

    path: str
    size: int = 0
    error: str | None = None
    mime: str | None = None


def _not_regular(path: str, st: os.stat_result) -> FoundFile:
    kinds = {
        stat.S_ISFIFO: "fifo",
        stat.S_ISSOCK: "socket",
        stat.S_ISCHR: "chardevice",
        stat.S_ISBLK: "blockdevice",
    }
    kind = next((name for test, name in kinds.items() if test(st.st_mode)), "unknown")
    return FoundFile(path, 0, f"not a regular file ({kind}); skipped", f"inode/{kind}")


def _symlink(path: str) -> FoundFile:
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    return FoundFile(path, 0, f"symbolic link to {target!r}; not followed", "inode/symlink")


def _os_error(path: str, exc: OSError) -> FoundFile:
    reason = exc.strerror or type(exc).__name__
    if isinstance(exc, FileNotFoundError):
        reason = "no such file (moved or deleted?)"
    return FoundFile(path, 0, f"cannot read: {reason}", "inode/x-unreadable")


def _sorted_entries(folder: str) -> list[os.DirEntry[str]] | OSError:
    # Listed whole and closed at once, so a deep tree holds no open descriptors.
    try:
        with os.scandir(folder) as scan:
            return sorted(scan, key=lambda e: e.name, reverse=True)
    except OSError as exc:
        return exc


def _walk_directory(top: str) -> Iterator[FoundFile]:
    """Depth-first, in name order, with a stack of its own instead of
    recursion: a tree thousands of folders deep is walked like any other
    (Python's recursion limit is about a thousand)."""
    pending: list[list[os.DirEntry[str]] | OSError | str] = [top]
    while pending:
        step = pending.pop()
        if isinstance(step, str):  # a folder to list
            listed = _sorted_entries(step)
            if isinstance(listed, OSError):
                yield FoundFile(step, 0, f"cannot list directory: {listed.strerror}", "inode/directory")
            else:
                pending.append(listed)
            continue
        assert isinstance(step, list)
        if not step:
            continue
        entry = step.pop()  # entries are sorted in reverse: pop() takes them in name order
        pending.append(step)
        try:
            if entry.is_symlink():
                yield _symlink(entry.path)
            elif entry.is_dir(follow_symlinks=False):
                pending.append(entry.path)
            else:
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISREG(st.st_mode):
                    yield FoundFile(entry.path, st.st_size)
                else:
                    yield _not_regular(entry.path, st)
        except OSError as exc:
            yield _os_error(entry.path, exc)


def walk_paths(paths: Iterable[str]) -> Iterator[FoundFile]:
    """Every file under ``paths`` (files or directories), in a stable sorted order."""
    for path in paths:
        try:
            st = os.stat(path)  # follows a link the user named explicitly
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                yield FoundFile(path, 0, "symbolic link loop; not followed", "inode/symlink")
            else:
                yield _os_error(path, exc)
            continue
        if stat.S_ISDIR(st.st_mode):
            yield from _walk_directory(path)
        elif stat.S_ISREG(st.st_mode):
            yield FoundFile(path, st.st_size)
        else:
            yield _not_regular(path, st)
