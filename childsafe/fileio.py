"""Files written whole or not at all: the one way childsafe writes an output
(a report, an export, a chart, a preserved upload)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, BinaryIO, TextIO, cast

__all__ = ["atomic_file", "atomic_binary_file"]


@contextmanager
def atomic_file(path: Path) -> Iterator[TextIO]:
    """Open a temporary neighbour of ``path`` for writing text (UTF-8, line
    ends as written); when the block ends without an error it is flushed to
    disk and renamed into place, so ``path`` is complete or absent, never
    half-written. On an error the temporary file is removed and the error goes on."""
    with _atomic(path, "w", None) as handle:
        yield cast(TextIO, handle)


@contextmanager
def atomic_binary_file(path: Path, *, permissions: int | None = None) -> Iterator[BinaryIO]:
    """``atomic_file`` for bytes; the file gets ``permissions`` (e.g. ``0o400``) before it appears."""
    with _atomic(path, "wb", permissions) as handle:
        yield cast(BinaryIO, handle)


@contextmanager
def _atomic(path: Path, mode: str, permissions: int | None) -> Iterator[IO[Any]]:
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.partial")
    text = mode == "w"
    try:
        with open(partial, mode, encoding="utf-8" if text else None, newline="" if text else None) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if permissions is not None:
            os.chmod(partial, permissions)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
