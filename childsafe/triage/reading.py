"""Read one piece of evidence — a file, and every archive member inside it,
however deeply nested — and hash each item, without writing anything to disk.

Evidence is opened for reading only (and without updating its access time
where the system allows). Archive members are streamed; a zip inside an
archive is read into memory (zip needs to seek) up to a limit, never to disk.
"""

from __future__ import annotations

import io
import lzma
import os
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, cast

from childsafe.media.limits import MediaLimits
from childsafe.media.sniff import SNIFF_BYTES, sniff_type
from childsafe.media.streams import DigestingReader, prefixed
from childsafe.signals import FileHashes, hash_stream
from childsafe.triage.budgets import ScanBudgets
from childsafe.triage.sources import (
    Container,
    ContainerError,
    Member,
    Recorded,
    Task,
    container_for,
)

__all__ = ["ScannedItem", "read_task", "recorded_item", "open_evidence", "MAX_DEPTH", "MAX_NESTED_ZIP_BYTES"]

#: Archives nested deeper than this are reported, not opened (42.zip-style bombs).
MAX_DEPTH = 8
#: A zip inside another archive must be held in memory to be read; larger ones are digested only.
MAX_NESTED_ZIP_BYTES = 512 * 1024 * 1024
#: Bytes read ahead to recognise a container: an ISO 9660 image says so at byte 32,769.
CONTAINER_HEAD_BYTES = 40960

#: Errors that damaged archive data raises while a member is read.
_READ_ERRORS = (
    OSError,
    EOFError,
    zlib.error,
    zipfile.BadZipFile,
    lzma.LZMAError,
    tarfile.TarError,
    RuntimeError,
    ValueError,
)


@dataclass
class ScannedItem:
    """One item of the case: its hashes (``hashes.path`` is its report path),
    when it was last modified (where known), and the task it came from."""

    hashes: FileHashes
    modified: float | None


def recorded_item(recorded: Recorded) -> ScannedItem:
    """An item that was recorded without being read (a link, a FIFO)."""
    hashes = FileHashes(
        recorded.label, recorded.size, "other", recorded.mime, None, None, None, None, None, recorded.error
    )
    return ScannedItem(hashes, recorded.modified)


def open_evidence(path: str) -> IO[bytes]:
    """Open a file of evidence for reading only, not touching its access time
    when the system lets us (O_NOATIME needs ownership or root)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    try:
        descriptor = os.open(path, flags | getattr(os, "O_NOATIME", 0))
    except PermissionError:
        descriptor = os.open(path, flags)
    return os.fdopen(descriptor, "rb")


def _failed(
    label: str, size: int, error: str, modified: float | None, mime: str = "application/octet-stream"
) -> ScannedItem:
    return ScannedItem(FileHashes(label, size, "other", mime, None, None, None, None, None, error), modified)


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


class _Reader:
    """Recursion over containers, with the limits of one scan."""

    def __init__(self, limits: MediaLimits, max_depth: int = MAX_DEPTH, budgets: ScanBudgets | None = None) -> None:
        self.limits = limits
        self.max_depth = max_depth
        self.budgets = budgets or ScanBudgets()

    def read(
        self, stream: IO[bytes], label: str, modified: float | None, seekable: bool, depth: int
    ) -> Iterator[ScannedItem]:
        head = stream.read(CONTAINER_HEAD_BYTES)
        sniffed = sniff_type(head[:SNIFF_BYTES])
        container = container_for(sniffed.mime, head)
        if container is None:
            yield self._hash(prefixed(head, stream), label, modified)
        elif depth >= self.max_depth:
            item = self._hash(prefixed(head, stream), label, modified)
            item.hashes.error = item.hashes.error or f"archive nested more than {self.max_depth} deep; not opened"
            yield item
        elif seekable:
            yield from self._seekable_container(stream, container, sniffed.mime, label, modified, depth)
        else:
            yield from self._stream_container(prefixed(head, stream), container, sniffed.mime, label, modified, depth)

    def _hash(self, stream: IO[bytes], label: str, modified: float | None) -> ScannedItem:
        try:
            return ScannedItem(hash_stream(stream, label, self.limits, dihedral=True), modified)
        except _READ_ERRORS as exc:
            return _failed(label, 0, f"damaged data, cannot be read: {_reason(exc)}", modified)

    def _members(
        self, container: Container, stream: IO[bytes], mime: str, label: str, depth: int
    ) -> Iterator[ScannedItem]:
        """Items for every member of an archive; the archive's own problem, if
        any, is raised as ContainerError after the members read so far."""
        try:
            for member in container.members(stream, label, mime, self.budgets):
                yield from self._member(member, label, depth)
        except ContainerError:
            raise
        except _READ_ERRORS as exc:
            raise ContainerError(f"damaged archive: {_reason(exc)}") from exc

    def _member(self, member: Member, parent: str, depth: int) -> Iterator[ScannedItem]:
        label = f"{parent}!/{member.name}"
        if member.open is None:
            yield _failed(
                label,
                max(member.size, 0),
                member.error or "cannot be read",
                member.modified,
                member.mime or "application/octet-stream",
            )
            return
        try:
            stream = member.open()
        except _READ_ERRORS as exc:
            yield _failed(label, max(member.size, 0), f"cannot be read: {_reason(exc)}", member.modified)
            return
        with stream:
            head = stream.read(SNIFF_BYTES)
            mime = sniff_type(head).mime
            rest = prefixed(head, stream)
            if mime == "application/zip" and depth + 1 < self.max_depth:
                yield from self._nested_zip(rest, label, member, depth)
            else:
                yield from self.read(rest, label, member.modified, False, depth + 1)

    def _nested_zip(self, stream: IO[bytes], label: str, member: Member, depth: int) -> Iterator[ScannedItem]:
        data = stream.read(MAX_NESTED_ZIP_BYTES + 1)
        if len(data) > MAX_NESTED_ZIP_BYTES:
            item = self._hash(prefixed(data, stream), label, member.modified)
            item.hashes.error = f"zip inside an archive is over {MAX_NESTED_ZIP_BYTES >> 20} MB; digested, not opened"
            yield item
            return
        yield from self.read(io.BytesIO(data), label, member.modified, True, depth + 1)

    def _seekable_container(
        self, stream: IO[bytes], container: Container, mime: str, label: str, modified: float | None, depth: int
    ) -> Iterator[ScannedItem]:
        # The archive itself is an item too: hash it in one pass, then read its members.
        stream.seek(0)
        archive = self._hash(stream, label, modified)
        stream.seek(0)
        try:
            yield from self._members(container, stream, mime, label, depth)
        except ContainerError as exc:
            archive.hashes.error = str(exc)
        yield archive

    def _stream_container(
        self, stream: IO[bytes], container: Container, mime: str, label: str, modified: float | None, depth: int
    ) -> Iterator[ScannedItem]:
        # One pass: the container reads through a digesting view, which then
        # digests whatever the container did not need.
        reader = DigestingReader(stream, ("md5", "sha1", "sha256"))
        error = None
        try:
            yield from self._members(container, cast(IO[bytes], reader), mime, label, depth)
        except ContainerError as exc:
            error = str(exc)
        try:
            digests = reader.finish()
        except _READ_ERRORS as exc:
            yield _failed(label, reader.size, error or f"damaged data, cannot be read: {_reason(exc)}", modified, mime)
            return
        hashes = FileHashes(
            label, reader.size, "other", mime, digests["md5"], digests["sha1"], digests["sha256"], None, None, error
        )
        yield ScannedItem(hashes, modified)


def read_task(task: Task, limits: MediaLimits, max_depth: int = MAX_DEPTH) -> Iterator[ScannedItem]:
    """Every item of one file of evidence: the file, and if it is an archive,
    everything inside it. Problems become items' errors; this never raises
    for bad content."""
    try:
        stream = open_evidence(task.path)
    except FileNotFoundError:
        yield _failed(
            task.label, task.size, "cannot read: no such file (moved or deleted?)", task.modified, "inode/x-unreadable"
        )
        return
    except OSError as exc:
        yield _failed(
            task.label,
            task.size,
            f"cannot read: {exc.strerror or type(exc).__name__}",
            task.modified,
            "inode/x-unreadable",
        )
        return
    with stream:
        try:
            yield from _Reader(limits, max_depth).read(stream, task.label, task.modified, True, 0)
        except OSError as exc:
            yield _failed(
                task.label,
                task.size,
                f"cannot read: {exc.strerror or _reason(exc)}",
                task.modified,
                "inode/x-unreadable",
            )
