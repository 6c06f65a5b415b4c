"""Read one piece of evidence — a file, and every archive member inside it,
however deeply nested — and hash each item, without writing anything to disk.

Evidence is opened for reading only (and without updating its access time
where the system allows). Archive members are streamed; an archive inside an
archive that needs to seek (zip, 7z) is read into memory up to a limit, never
to disk.

Every item has a *position*: the member numbers that lead to it from the
file on disk (``()`` for the file itself, ``(2, 0)`` for the first member of
the third member). Positions, not names, identify items: two members may
share a name, and a name need not be text.

Two things make this safe on hostile evidence:

- **Budgets** (``childsafe/media/budgets.py``): every byte a member expands to is counted
  against the member, each archive it is in, and the file on disk; a member
  over a budget becomes an item with an ``over budget`` error, and an archive
  over its budget stops there, saying so, while the rest of the evidence goes on.
- **Poison positions**: before each item (and before asking an archive for
  its next member) ``progress(key)`` tells the supervising process where the
  work is. When a worker crashed or hung there, the task is read again with
  ``poisoned[key]`` saying why: the item is then only digested (not decoded
  or opened), and if digesting it also failed, recorded without reading; an
  archive that failed while being listed stops at that member.
"""

from __future__ import annotations

import io
import lzma
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import IO, Any, cast

from childsafe.detect import PreparedQuery, prepare_query
from childsafe.media.budgets import BudgetExceeded, ScanBudgets, over_budget
from childsafe.media.limits import MediaLimits
from childsafe.media.sniff import SNIFF_BYTES, MediaKind, sniff_type
from childsafe.media.streams import DigestingReader, prefixed
from childsafe.signals import FileHashes
from childsafe.triage.budgeted import ArchiveOverBudget, BudgetedStream, Tally, TickingFile
from childsafe.triage.contact_sheets import SHEET_TILES
from childsafe.triage.provenance import Provenance
from childsafe.triage.sources import (
    Container,
    ContainerError,
    ImageContainer,
    ImageContext,
    Member,
    Recorded,
    Share,
    Task,
    container_for,
    open_evidence,
)

__all__ = [
    "ScannedItem",
    "Position",
    "read_task",
    "image_shares",
    "SHARED_IMAGE_MIN_BYTES",
    "recorded_item",
    "open_evidence",
    "CONTAINER_HEAD_BYTES",
    "MAX_NESTED_ARCHIVE_BYTES",
]

#: Member numbers from the file on disk to an item; ``()`` is the file itself.
Position = tuple[int, ...]
#: How much of an item is looked at to recognise an archive (ISO 9660 says so at byte 32,769).
CONTAINER_HEAD_BYTES = 40_960
#: An archive inside an archive that must seek is held in memory to be read; larger ones are digested only.
MAX_NESTED_ARCHIVE_BYTES = 512 * 1024 * 1024

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

Progress = Callable[[Hashable], None]


@dataclass
class ScannedItem:
    """One item of the case: its hashes (``hashes.path`` is its report path,
    with bytes that are not UTF-8 kept as surrogate escapes), when it was last
    modified (where known), and its position in the file on disk."""

    hashes: FileHashes
    modified: float | None
    position: Position = ()
    #: What matching it needs, when it was read whole (``hashes`` is its ``hashes``).
    query: PreparedQuery | None = None
    #: Where in a disk image it was found (``None`` outside disk images).
    provenance: Provenance | None = None
    #: For a disk image itself: its format, segments, stored hashes and their verification.
    image: dict[str, Any] | None = None


def recorded_item(recorded: Recorded) -> ScannedItem:
    """An item that was recorded without being read (a link, a FIFO)."""
    return _failed(recorded.label, recorded.size, recorded.error, recorded.modified, (), recorded.mime)


def _failed(
    label: str,
    size: int,
    error: str,
    modified: float | None,
    position: Position,
    mime: str = "application/octet-stream",
) -> ScannedItem:
    hashes = FileHashes(label, size, "other", mime, None, None, None, None, None, error)
    return ScannedItem(hashes, modified, position)


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


@dataclass
class _Reader:
    """Recursion over containers, with the limits of one scan and the
    poison positions of earlier attempts at this task."""

    limits: MediaLimits
    budgets: ScanBudgets
    progress: Progress
    poisoned: Mapping[Hashable, str]
    #: The archive budget that ran out, until the archive it belongs to has stopped.
    spent: ArchiveOverBudget | None = None
    current: Hashable = ()
    #: The open archives' tallies, innermost last; and the file on disk's, when it is an archive.
    tallies: list[Tally] = field(default_factory=list)
    file_tally: Tally | None = None
    #: The file on disk being read (a disk image's other segments are found beside it).
    file_path: str | None = None
    #: Check the acquisition hashes that disk images store (``scan --verify-images``).
    verify_images: bool = False
    #: The share of the file on disk (a disk image) this task reads, when the image is shared by several.
    share: Share | None = None

    def start(self, key: Hashable) -> None:
        self.current = key
        self.progress(key)

    def tick(self) -> None:
        self.progress(self.current)

    # -- one item ------------------------------------------------------------

    def read(
        self, stream: IO[bytes], label: str, modified: float | None, seekable: bool, position: Position
    ) -> Iterator[ScannedItem]:
        """The item at ``position`` (already started), and everything inside it."""
        if position in self.poisoned:
            yield self._digest_only(stream, label, modified, position)
            return
        try:
            head = stream.read(CONTAINER_HEAD_BYTES)
        except BudgetExceeded as exc:
            self._note_spent(exc)
            yield _failed(label, 0, str(exc), modified, position)
            return
        except _READ_ERRORS as exc:  # a damaged member fails alone, however small
            yield _failed(label, 0, f"damaged data, cannot be read: {_reason(exc)}", modified, position)
            return
        sniffed = sniff_type(head[:SNIFF_BYTES])
        container = container_for(sniffed.mime, head)
        if container is None:
            yield self._hash(prefixed(head, stream), label, modified, position)
        elif len(position) >= self.budgets.max_depth:
            item = self._hash(prefixed(head, stream), label, modified, position)
            item.hashes.error = item.hashes.error or over_budget(
                "max_depth", self.budgets.max_depth, "archive nested deeper; digested, not opened"
            )
            yield item
        elif container.needs_seek and not seekable:
            yield from self._nested_seekable(prefixed(head, stream), container, sniffed.mime, label, modified, position)
        elif seekable:
            yield from self._seekable_container(stream, container, sniffed.mime, label, modified, position)
        else:
            yield from self._stream_container(
                prefixed(head, stream), container, sniffed.mime, label, modified, position
            )

    def _hash(self, stream: IO[bytes], label: str, modified: float | None, position: Position) -> ScannedItem:
        try:
            prepared = prepare_query(stream, label, self.limits, sheet_tiles=SHEET_TILES)
            return ScannedItem(prepared.hashes, modified, position, prepared)
        except BudgetExceeded as exc:
            self._note_spent(exc)
            return _failed(label, 0, str(exc), modified, position)
        except _READ_ERRORS as exc:
            return _failed(label, 0, f"damaged data, cannot be read: {_reason(exc)}", modified, position)

    def _digest_only(self, stream: IO[bytes], label: str, modified: float | None, position: Position) -> ScannedItem:
        """A poison item read again: digests only, never decoded or opened.
        (One whose digesting failed too is recorded unread before it is
        opened, by ``_member`` and ``read_task``.)"""
        reason = self.poisoned[position]
        self.start((*position, "digests"))
        reader = DigestingReader(stream, ("md5", "sha1", "sha256"))
        try:
            head = reader.read(SNIFF_BYTES)
            digests = reader.finish()
        except BudgetExceeded as exc:
            self._note_spent(exc)
            return _failed(label, reader.size, f"{reason}; then {exc}", modified, position)
        except _READ_ERRORS as exc:
            return _failed(label, reader.size, f"{reason}; then damaged data: {_reason(exc)}", modified, position)
        sniffed = sniff_type(head)
        error = f"{reason}; digests only, not decoded or opened"
        return ScannedItem(
            _digested(label, reader.size, sniffed.kind, sniffed.mime, digests, error), modified, position
        )

    def unread(self, label: str, size: int, modified: float | None, position: Position) -> ScannedItem | None:
        """The item at ``position`` recorded without reading it, when even
        digesting it killed a worker; ``None`` when it may be read."""
        reason = self.poisoned.get((*position, "digests"))
        return None if reason is None else _failed(label, size, f"{reason}; not read", modified, position)

    def _note_spent(self, exc: BudgetExceeded) -> None:
        if isinstance(exc, ArchiveOverBudget):
            self.spent = exc

    # -- archives ------------------------------------------------------------

    def _members(
        self,
        container: Container,
        stream: IO[bytes],
        mime: str,
        label: str,
        position: Position,
        own_size: int | None,
        image: ImageContext | None = None,
    ) -> Iterator[ScannedItem]:
        """Items for every member of an archive (or disk image, told ``image``).
        The archive's own problem, if any, is raised as ContainerError after
        the members read so far."""
        budgets = self.budgets
        if own_size is not None and not position:  # the file on disk: its size is known and not attacker-inflated
            self.file_tally = Tally(
                max(budgets.ratio_floor_bytes, budgets.max_ratio * own_size),
                over_budget("max_ratio", budgets.max_ratio, "archive expands more times the size of its file"),
            )
        limit = budgets.max_container_bytes
        tally = Tally(limit, over_budget("max_container_bytes", limit, "members of one archive expand to more bytes"))
        self.tallies.append(tally)
        try:
            if image is not None and isinstance(container, ImageContainer):
                members = container.image_members(stream, label, mime, budgets, image)
            else:
                members = container.members(stream, label, mime, budgets)
            number = 0
            while True:
                key = (*position, "listing", number)
                if key in self.poisoned:
                    raise ContainerError(f"{self.poisoned[key]} while listing member {number + 1}; the rest not read")
                self.start(key)
                member = next(members, None)
                if member is None:
                    return
                if image is not None and image.found is not None:
                    # A disk's files are bounded by the disk, not by an archive's budget: a 1 TB image may hold
                    # more than 256 GiB of files (twice its size: deleted files may share space with others).
                    tally.limit = max(tally.limit, 2 * int(image.found.get("media_size", 0)))
                if number >= budgets.max_members:
                    raise ContainerError(
                        over_budget("max_members", budgets.max_members, "more members; the rest not read")
                    )
                if self._reads(member, number, position):
                    yield from self._member(member, label, (*position, number))
                number += 1
                if self.spent is not None:
                    spent, self.spent = self.spent, (None if self.spent.tally is tally else self.spent)
                    raise ContainerError(f"{spent}; members after {number} not read")
        except ContainerError:
            raise
        except BudgetExceeded as exc:  # the archive's own stream ran out of budget while being listed
            self._note_spent(exc)
            if self.spent is not None and self.spent.tally is tally:
                self.spent = None
            raise ContainerError(str(exc)) from exc
        except _READ_ERRORS as exc:
            raise ContainerError(f"damaged archive: {_reason(exc)}") from exc
        finally:
            self.tallies.pop()

    def _reads(self, member: Member, number: int, position: Position) -> bool:
        """Whether this task reads a member: all do, but for the files of a shared disk image
        (carved members come only to the share that carves)."""
        if self.share is None or position:
            return True
        carved = member.provenance is not None and member.provenance.state == "carved"
        return carved or self.share.reads_member(number)

    def _counting(self) -> list[Tally]:
        """What a member's bytes count against: its own archive, and the file on disk."""
        return [tally for tally in (self.tallies[-1], self.file_tally) if tally is not None]

    def _member(self, member: Member, parent: str, position: Position) -> Iterator[ScannedItem]:
        """The items of one member; those of a member found in a disk image say
        where (an archive's members, or an image's, are seen from that file)."""
        outer = member.provenance
        for item in self._member_items(member, parent, position):
            if outer is not None:
                item.provenance = outer if item.provenance is None else item.provenance.within(outer)
            yield item

    def _member_items(self, member: Member, parent: str, position: Position) -> Iterator[ScannedItem]:
        label = f"{parent}!/{member.name}"
        self.start(position)
        if member.open is None:
            yield _failed(
                label,
                max(member.size, 0),
                member.error or "cannot be read",
                member.modified,
                position,
                member.mime or "application/octet-stream",
            )
            return
        if (unread := self.unread(label, max(member.size, 0), member.modified, position)) is not None:
            yield unread
            return
        try:
            raw = member.open()
        except _READ_ERRORS as exc:
            yield _failed(label, max(member.size, 0), f"cannot be read: {_reason(exc)}", member.modified, position)
            return
        with raw:
            stream = cast(
                IO[bytes],
                io.BufferedReader(
                    BudgetedStream(
                        raw, self.budgets, member.compressed_size, self._counting(), self.tick, member.seekable
                    ),
                    buffer_size=1 << 20,
                ),
            )
            yield from self.read(stream, label, member.modified, member.seekable, position)

    def _nested_seekable(
        self, stream: IO[bytes], container: Container, mime: str, label: str, modified: float | None, position: Position
    ) -> Iterator[ScannedItem]:
        try:
            data = stream.read(MAX_NESTED_ARCHIVE_BYTES + 1)
        except BudgetExceeded as exc:
            self._note_spent(exc)
            yield _failed(label, 0, str(exc), modified, position, mime)
            return
        except _READ_ERRORS as exc:
            yield _failed(label, 0, f"damaged data, cannot be read: {_reason(exc)}", modified, position, mime)
            return
        if len(data) > MAX_NESTED_ARCHIVE_BYTES:
            item = self._hash(prefixed(data, stream), label, modified, position)
            item.hashes.error = item.hashes.error or (
                f"{container.name} archive inside an archive is over {MAX_NESTED_ARCHIVE_BYTES >> 20} MB;"
                " digested, not opened"
            )
            yield item
            return
        yield from self._seekable_container(io.BytesIO(data), container, mime, label, modified, position)

    def _seekable_container(
        self, stream: IO[bytes], container: Container, mime: str, label: str, modified: float | None, position: Position
    ) -> Iterator[ScannedItem]:
        share = None if position else self.share
        if share is not None and not share.reads_file_itself:
            yield from self._shared_image(stream, container, mime, label, share)
            return
        # The archive itself is an item too: hash it in one pass, then read its members.
        stream.seek(0)
        archive = self._hash(stream, label, modified, position)
        stream.seek(0)
        image = None
        if isinstance(container, ImageContainer):
            carve = share is None or share.carves
            image = ImageContext(None if position else self.file_path, self.verify_images, self.tick, carve=carve)
        try:
            yield from self._members(container, stream, mime, label, position, archive.hashes.size, image)
        except ContainerError as exc:
            archive.hashes.error = str(exc)
        if image is not None:
            archive.image = image.found
        yield archive

    def _shared_image(
        self, stream: IO[bytes], container: Container, mime: str, label: str, share: Share
    ) -> Iterator[ScannedItem]:
        """A share of a disk image other than the first: its part of the files, not the image's own item
        (nor its problems as a whole, which the first share reports)."""
        if not isinstance(container, ImageContainer):
            return  # shares are made of disk images only; the first share reads anything else whole
        size = stream.seek(0, io.SEEK_END)
        stream.seek(0)
        image = ImageContext(self.file_path, False, self.tick, carve=share.carves)
        try:
            yield from self._members(container, stream, mime, label, (), size, image)
        except ContainerError:
            pass

    def _stream_container(
        self, stream: IO[bytes], container: Container, mime: str, label: str, modified: float | None, position: Position
    ) -> Iterator[ScannedItem]:
        # One pass: the container reads through a digesting view, which then
        # digests whatever the container did not need.
        reader = DigestingReader(stream, ("md5", "sha1", "sha256"))
        error = None
        try:
            yield from self._members(container, cast(IO[bytes], reader), mime, label, position, None)
        except ContainerError as exc:
            error = str(exc)
        rest = (*position, "rest")  # digesting what the members did not need
        if rest in self.poisoned:
            yield _failed(label, reader.size, error or f"{self.poisoned[rest]}; not digested", modified, position, mime)
            return
        self.start(rest)
        try:
            digests = reader.finish()
        except BudgetExceeded as exc:
            self._note_spent(exc)
            yield _failed(label, reader.size, error or str(exc), None, position, mime)
            return
        except _READ_ERRORS as exc:
            reason = error or f"damaged data, cannot be read: {_reason(exc)}"
            yield _failed(label, reader.size, reason, modified, position, mime)
            return
        yield ScannedItem(_digested(label, reader.size, "other", mime, digests, error), modified, position)


def _digested(
    label: str, size: int, kind: MediaKind, mime: str, digests: dict[str, str], error: str | None
) -> FileHashes:
    """The ``hash`` object of an item known by its digests alone (no picture read)."""
    return FileHashes(label, size, kind, mime, digests["md5"], digests["sha1"], digests["sha256"], None, None, error)


#: A disk image smaller than this is read by one worker (sharing it saves less than listing it again costs).
SHARED_IMAGE_MIN_BYTES = 16 * 1024 * 1024


def image_shares(task: Task, count: int) -> list[Task]:
    """``task`` as ``count`` shares when it is a disk image of at least
    ``SHARED_IMAGE_MIN_BYTES`` (recognised from its bytes, as when it is read), so
    that ``count`` workers read it at once; otherwise ``[task]``."""
    if count <= 1 or task.size < SHARED_IMAGE_MIN_BYTES:
        return [task]
    try:
        with open_evidence(task.path) as stream:
            head = stream.read(CONTAINER_HEAD_BYTES)
    except OSError:
        return [task]  # reading it will say why it cannot be read
    if not isinstance(container_for(sniff_type(head[:SNIFF_BYTES]).mime, head), ImageContainer):
        return [task]
    return [replace(task, share=Share(index, count)) for index in range(count)]


def _ignore(key: Hashable) -> None:
    pass


def read_task(
    task: Task,
    limits: MediaLimits,
    budgets: ScanBudgets | None = None,
    progress: Progress = _ignore,
    poisoned: Mapping[Hashable, str] | None = None,
    verify_images: bool = False,
) -> Iterator[ScannedItem]:
    """Every item of one file of evidence: the file, and if it is an archive
    or a disk image, everything inside it. Problems become items' errors; this
    never raises for bad content. ``progress`` and ``poisoned``: see the module
    docstring. ``verify_images``: check the acquisition hashes disk images store.
    A task that is a share of a disk image gives that share's items (``Share``)."""
    reader = _Reader(
        limits,
        budgets or ScanBudgets(),
        progress,
        poisoned or {},
        file_path=task.path,
        verify_images=verify_images and task.reads_file_itself,
        share=task.share,
    )
    items = _read_task(reader, task)
    if not task.reads_file_itself:
        # The file itself is the first share's item, whatever happens in another (a failed read, a poisoned start).
        items = (item for item in items if item.position)
    yield from items


def _read_task(reader: _Reader, task: Task) -> Iterator[ScannedItem]:
    reader.start(())
    if (unread := reader.unread(task.label, task.size, task.modified, ())) is not None:
        yield unread
        return
    try:
        stream = open_evidence(task.path)
    except FileNotFoundError:
        yield _failed(
            task.label,
            task.size,
            "cannot read: no such file (moved or deleted?)",
            task.modified,
            (),
            "inode/x-unreadable",
        )
        return
    except OSError as exc:
        reason = f"cannot read: {exc.strerror or type(exc).__name__}"
        yield _failed(task.label, task.size, reason, task.modified, (), "inode/x-unreadable")
        return
    with stream:
        ticking = cast(IO[bytes], io.BufferedReader(TickingFile(stream, reader.tick), buffer_size=1 << 20))
        try:
            yield from reader.read(ticking, task.label, task.modified, True, ())
        except OSError as exc:
            reason = f"cannot read: {exc.strerror or _reason(exc)}"
            yield _failed(task.label, task.size, reason, task.modified, (), "inode/x-unreadable")
