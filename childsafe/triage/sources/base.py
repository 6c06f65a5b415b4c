"""What evidence sources and containers provide.

Two kinds, each registered by name in ``registry.py``:

- an *evidence source* turns what the user named (a folder, a file; later a
  disk image) into top-level ``Task``s: units of work for one process, and
  items that need no reading (a symbolic link, a FIFO) recorded at once;
- a *container* lists the members of an archive read from a stream (zip,
  tar, gzip/bzip2/xz), so that scanning recurses without writing anything to
  disk. A member's name is only ever a label in the report: ``../../x.jpg``
  or ``/etc/passwd`` inside an archive never becomes a path on this machine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from childsafe.media.budgets import ScanBudgets

__all__ = ["Task", "Recorded", "Member", "EvidenceSource", "Container", "ContainerError"]


@dataclass(frozen=True)
class Task:
    """A file on disk to read (and recurse into, if it is an archive).

    ``path`` is where it is; ``label`` how the report names it (relative to
    the scanned root)."""

    path: str
    label: str
    size: int
    modified: float | None


@dataclass(frozen=True)
class Recorded:
    """An item reported without reading it: a link, a FIFO, an unreadable folder."""

    label: str
    error: str
    mime: str
    size: int = 0
    modified: float | None = None


@dataclass(frozen=True)
class Member:
    """One member of a container. ``open`` gives a stream of its content, or
    ``error`` says why it cannot be read (encrypted, damaged, a link).

    ``name`` is the member's name as stored, decoded as UTF-8 with
    ``surrogateescape`` so that bytes that are not UTF-8 are kept exactly
    (``name.encode("utf-8", "surrogateescape")`` gives them back).
    ``compressed_size`` (where the format says) bounds the expansion ratio.
    The reader numbers members in the order they are yielded; that number,
    not the name, is a member's identity."""

    name: str
    size: int
    modified: float | None
    open: Callable[[], IO[bytes]] | None
    error: str | None = None
    mime: str | None = None
    compressed_size: int | None = None


class ContainerError(Exception):
    """The container as a whole cannot be read (damaged, not really an archive)."""


class EvidenceSource(Protocol):
    """Turns a path the user gave into tasks and recorded items."""

    @property
    def name(self) -> str: ...

    def claims(self, path: Path) -> bool:
        """Whether this source reads ``path``."""
        ...

    def walk(self, path: Path) -> Iterator[Task | Recorded]:
        """Every unit of work under ``path``, in a stable sorted order."""
        ...


class Container(Protocol):
    """Reads the members of an archive from a stream."""

    @property
    def name(self) -> str: ...

    def opens(self, mime: str, head: bytes) -> bool:
        """Whether content of this type (and first bytes) is this container."""
        ...

    def members(self, stream: IO[bytes], name: str, mime: str, budgets: ScanBudgets) -> Iterator[Member]:
        """The members, in archive order (``mime``: the sniffed type of ``stream``). ``stream`` is positioned at the start;
        it is seekable when the container needs it (zip). Raises
        ``ContainerError`` when the archive cannot be read at all, after
        yielding the members read before the damage. Names and headers over
        ``budgets.max_name_bytes`` / ``max_header_bytes`` are not read whole:
        such a member is yielded with an ``over_budget`` error."""
        ...

    @property
    def needs_seek(self) -> bool:
        """Whether ``members`` needs a seekable stream (zip's directory is at its end)."""
        ...
