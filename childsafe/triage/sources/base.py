"""What evidence sources and containers provide.

Two kinds, each registered by name in ``registry.py``:

- an *evidence source* turns what the user named (a folder, a file; later a
  disk image) into top-level ``Task``s: units of work for one process, and
  items that need no reading (a symbolic link, a FIFO) recorded at once;
- a *container* lists the members of an archive read from a stream (zip,
  tar, gzip/bzip2/xz), so that scanning recurses without writing anything to
  disk. A member's name is only ever a label in the report: ``../../x.jpg``
  or ``/etc/passwd`` inside an archive never becomes a path on this machine.

A disk image (E01, raw, VHD...) is a container too, an ``ImageContainer``:
its members are the files of its file systems, each with its provenance, and
the reader tells it more than an archive needs (``ImageContext``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable

from childsafe.media.budgets import ScanBudgets
from childsafe.triage.names import raw_name
from childsafe.triage.provenance import Provenance

__all__ = [
    "Task",
    "Share",
    "Recorded",
    "Member",
    "EvidenceSource",
    "Container",
    "ContainerError",
    "ImageContainer",
    "ImageContext",
    "open_evidence",
]


def open_evidence(path: str) -> IO[bytes]:
    """Open a file of evidence for reading only, not touching its access time
    when the system lets us (O_NOATIME needs ownership or root)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    try:
        descriptor = os.open(path, flags | getattr(os, "O_NOATIME", 0))
    except PermissionError:
        descriptor = os.open(path, flags)
    return os.fdopen(descriptor, "rb")


@dataclass(frozen=True)
class Share:
    """One of ``count`` shares of a disk image's work, so that several
    workers read one image at once (``index`` from 0). Each share lists the
    image's files (cheap: metadata only) and reads every ``count``-th of
    them; the first also hashes the image file itself (and verifies it), the
    last also carves its unallocated space. The items are the same, with the
    same identities, as when one worker reads the whole image."""

    index: int
    count: int

    @property
    def reads_file_itself(self) -> bool:
        return self.index == 0

    @property
    def carves(self) -> bool:
        return self.index == self.count - 1

    def reads_member(self, number: int) -> bool:
        """Whether this share reads the image's file number ``number`` (in the order they are listed)."""
        return number % self.count == self.index


@dataclass(frozen=True)
class Task:
    """A file on disk to read (and recurse into, if it is an archive).

    ``path`` is where it is; ``label`` how the report names it (relative to
    the scanned root); ``share``: the part of a disk image's work this task
    is, when the image is spread over several workers."""

    path: str
    label: str
    size: int
    modified: float | None
    share: Share | None = None

    @property
    def reads_file_itself(self) -> bool:
        """Whether this task reports the file on disk as an item (every task but a disk image's later shares)."""
        return self.share is None or self.share.reads_file_itself

    @property
    def key(self) -> bytes:
        """What the scan's state knows this task by: its path's raw bytes, and the share (after a NUL,
        which no path holds)."""
        raw = raw_name(self.label)
        return raw if self.share is None else raw + f"\0share {self.share.index + 1}/{self.share.count}".encode()


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
    not the name, is a member's identity. ``seekable``: ``open`` gives a
    stream that can seek (a file in a disk image), so an archive or image in
    it is read in place rather than in memory. ``provenance``: where in a
    disk image the member was found (members of archives have none)."""

    name: str
    size: int
    modified: float | None
    open: Callable[[], IO[bytes]] | None
    error: str | None = None
    mime: str | None = None
    compressed_size: int | None = None
    seekable: bool = False
    provenance: Provenance | None = None


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


@dataclass
class ImageContext:
    """What the reader tells a disk-image container beyond what an archive
    needs, and where the container reports on the image itself.

    ``path``: the image's file on disk when it is one, so that its other
    segments (``disk.E02``, ``disk.002``) are found beside it; ``None`` for an
    image inside an archive or another image (read as one segment).
    ``verify``: check the acquisition hashes the image stores
    (``scan --verify-images``). ``tick``: says a long read is still going.
    ``found``: set by the container: the image's format, media size,
    segments, stored hashes and the verification result (for manifest.json).
    ``carve``: carve the image's unallocated space (after all its files)."""

    path: str | None
    verify: bool
    tick: Callable[[], None]
    found: dict[str, Any] | None = None
    carve: bool = True


@runtime_checkable
class ImageContainer(Container, Protocol):
    """A container that reads disk images: the reader calls ``image_members``
    (``members`` reads the image as one segment, without verification)."""

    def image_members(
        self, stream: IO[bytes], name: str, mime: str, budgets: ScanBudgets, context: ImageContext
    ) -> Iterator[Member]:
        """The files of the image's file systems (and per-volume problems as
        members with an ``error``). Problems of the image as a whole (a missing
        segment, hashes that do not match) are raised as ``ContainerError``
        after the members that could be read."""
        ...
