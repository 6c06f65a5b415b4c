"""A folder tree of evidence: every regular file a task, links and special
files recorded (never followed, never opened)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from childsafe.media.walk import walk_paths
from childsafe.triage.sources.base import Recorded, Task
from childsafe.triage.sources.registry import register_source

__all__ = ["DIRECTORY"]


@dataclass(frozen=True)
class DirectorySource:
    """The ``directory`` evidence source."""

    name: str = "directory"

    def claims(self, path: Path) -> bool:
        return path.is_dir() and not path.is_symlink()

    def walk(self, path: Path) -> Iterator[Task | Recorded]:
        root = str(path)
        for found in walk_paths([root]):
            label = os.path.relpath(found.path, root)
            if found.error is not None:
                yield Recorded(label, found.error, found.mime or "inode/x-unreadable", found.size)
                continue
            try:
                modified: float | None = os.lstat(found.path).st_mtime
            except OSError:
                modified = None
            yield Task(found.path, label, found.size, modified)


DIRECTORY = register_source(DirectorySource())
