"""One file as evidence (an image, or an archive to recurse into)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from childsafe.triage.sources.base import Recorded, Task
from childsafe.triage.sources.registry import register_source

__all__ = ["SINGLE_FILE"]


@dataclass(frozen=True)
class SingleFileSource:
    """The ``file`` evidence source."""

    name: str = "file"

    def claims(self, path: Path) -> bool:
        return path.is_file()

    def walk(self, path: Path) -> Iterator[Task | Recorded]:
        st = os.stat(path)
        yield Task(str(path), path.name, st.st_size, st.st_mtime)


SINGLE_FILE = register_source(SingleFileSource())
