"""The files of one file system in a disk image, through The Sleuth Kit
(``pytsk3``): allocated files, deleted files whose metadata remains, and
NTFS alternate data streams, each a member with its provenance.

- **Allocated** files are those the file system lists.
- **Deleted** files: a name the file system has released (FAT keeps the
  entry with its first letter overwritten: TSK shows ``_ic1.jpg``), a file
  whose metadata is released (an NTFS MFT entry no longer in use), a file in
  a deleted folder, and orphan files (metadata with no name left, listed by
  TSK under ``$OrphanFiles``). Their content is read from where the metadata
  says it was: it may since have been overwritten, and then the item's
  hashes are of what is there now. Skipped: deleted entries with no content
  left (size 0), and deleted names whose metadata now belongs to another
  file (that file is reported under its own name).
- **Alternate data streams** (NTFS): each named ``$DATA`` stream of a file or
  folder is an item of its own, ``name:stream``.
- Not items: ``.`` and ``..``; TSK's virtual files (``$MBR``, ``$FAT1``);
  NTFS's own metadata files (MFT entries 0-15: ``$MFT``, ``$LogFile``,
  ``$BadClus``... and ``$Extend``); exFAT's own entries in its root folder
  (``$ALLOC_BITMAP``, ``$UPCASE_TABLE``, the volume label). Symbolic links and special files are
  items with an error, never followed.

Free space: every block run of every file the walk meets (NTFS's own files,
TSK's virtual files and reported deleted files included) is noted, and the
blocks of the file system no run covers are carved for pictures after the
walk (``unallocated.py``).

Files are read as streams, a chunk at a time (``read_random``), never whole
into memory. A folder that cannot be listed is an item with an error and
the walk goes on; folders are visited once each, so a damaged file system
whose folders loop is walked to an end.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import IO, Any

import pytsk3

from childsafe.media.budgets import ScanBudgets, over_budget
from childsafe.triage.provenance import Location, Provenance, State, iso_time
from childsafe.triage.sources.base import Member
from childsafe.triage.sources.unallocated import BlockRuns, UnallocatedArea, UnallocatedRange

__all__ = ["Volume", "ReadFailures", "filesystem_members", "TSK_ERRORS", "tsk_reason"]

#: What pytsk3 raises: OSError for its own errors, RuntimeError wrapping an error of our read callback.
TSK_ERRORS = (OSError, RuntimeError)

_NTFS_DATA = int(pytsk3.TSK_FS_ATTR_TYPE_NTFS_DATA)
#: MFT entries below this are NTFS's own metadata files ($MFT ... $Extend and reserved ones).
_NTFS_FIRST_USER_ENTRY = 16
#: exFAT's own entries in its root folder, which TSK lists as regular files (they have no timestamps; files have).
_EXFAT_OWN = (b"$ALLOC_BITMAP", b"$UPCASE_TABLE", b"$VOLUME_GUID", b"$TEX_FAT")
_EXFAT_LABEL = b" (Volume Label Entry)"
_DIRECTORIES = (int(pytsk3.TSK_FS_META_TYPE_DIR), int(pytsk3.TSK_FS_META_TYPE_VIRT_DIR))
_REGULAR = int(pytsk3.TSK_FS_META_TYPE_REG)
_VIRTUAL = int(pytsk3.TSK_FS_META_TYPE_VIRT)
_LINK = int(pytsk3.TSK_FS_META_TYPE_LNK)
_NOT_ON_DISK = int(pytsk3.TSK_FS_ATTR_RUN_FLAG_SPARSE) | int(pytsk3.TSK_FS_ATTR_RUN_FLAG_FILLER)
#: Files no folder lists, whose blocks are not free: ext's reserved inodes (the journal is 8).
_UNLISTED_INODES = {"ext2": range(1, 11), "ext3": range(1, 11), "ext4": range(1, 11)}


def tsk_reason(exc: BaseException) -> str:
    """One short line from a pytsk3 error (which may wrap ours as ``OSError('...')``)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    for wrapper in ("OSError(", "IOError("):
        if text.startswith(wrapper) and text.endswith(")"):
            text = text[len(wrapper) + 1 : -2]
    return text[:200]


#: Failed ranges kept one by one; beyond this many they are merged into one (conservatively wide).
_MAX_FAILED_RANGES = 4096


@dataclass
class ReadFailures:
    """Where the image could not be read (a missing E01 segment, a short
    image). The Sleuth Kit is given zeros there, so that it still reads what
    it can (a partition table whose backup copy is missing); a file or folder
    whose reading met a failure is then an item with that error, never a
    file of zeros. TSK caches what it reads, so a file's data may come from
    a failed read made earlier for something else: the failed byte ranges are
    kept, and a file whose data lies in one fails too."""

    count: int = 0
    last: str = ""
    ranges: list[tuple[int, int, str]] = field(default_factory=list)

    def note(self, reason: str, start: int, end: int) -> None:
        self.count += 1
        self.last = reason
        self.ranges.append((start, end, reason))
        if len(self.ranges) > _MAX_FAILED_RANGES:
            low, high = min(r[0] for r in self.ranges), max(r[1] for r in self.ranges)
            self.ranges = [(low, high, "many parts of the image cannot be read")]

    def overlapping(self, spans: list[tuple[int, int]]) -> str | None:
        """Why the image cannot be read in one of ``spans`` (byte ranges), if it cannot."""
        for start, end, reason in self.ranges:
            if any(low < end and start < high for low, high in spans):
                return reason
        return None


@dataclass(frozen=True)
class Volume:
    """Where a file system is: the image (its report path), the partition
    number (``None`` without a partition table), its byte offset in the
    image, the prefix of its members' names (``p1/``, or none), and the
    image's read failures."""

    image: str
    partition: int | None
    offset: int
    prefix: str
    failures: ReadFailures


@dataclass(frozen=True)
class _Data:
    """Which data stream of a file to read (``attribute``: type and id, or the
    default one), and how to find its bytes in the image (for ``ReadFailures``)."""

    size: int
    attribute: tuple[int, int] | None
    block_size: int
    volume: Volume


def _disk_runs(file: Any, attribute: tuple[int, int] | None = None) -> Iterator[tuple[int, int]]:
    """The runs of blocks (first block, count) on disk of a file's attributes
    kept outside its metadata (only attribute ``(type, id)`` when given);
    sparse and filler runs, which hold no blocks, are left out. Raises what
    pytsk3 raises when they cannot be listed."""
    for found in file:
        info = found.info
        if attribute is not None and (int(info.type), int(info.id)) != attribute:
            continue
        if not int(info.flags) & int(pytsk3.TSK_FS_ATTR_NONRES):
            continue
        for run in found:
            if not int(run.flags) & _NOT_ON_DISK:
                yield int(run.addr), int(run.len)


def _spans(file: Any, data: _Data) -> list[tuple[int, int]]:
    """The byte ranges in the image that hold the stream's data (none for data kept in the metadata)."""
    base, size = data.volume.offset, data.block_size
    try:
        return [
            (base + first * size, base + (first + count) * size) for first, count in _disk_runs(file, data.attribute)
        ]
    except TSK_ERRORS:
        return [(0, 1 << 62)]  # its runs cannot be listed: any failure may be in its data


class _TskFileStream(io.RawIOBase):
    """One data stream of a file in the file system, read a chunk at a time."""

    def __init__(self, file: Any, data: _Data) -> None:
        super().__init__()
        self._file = file
        self._data = data
        self._failures = data.volume.failures
        self._size = data.size
        self._attribute = data.attribute
        self._position = 0
        self._spans: list[tuple[int, int]] | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def tell(self) -> int:
        return self._position

    def readinto(self, buffer: Any) -> int:
        wanted = min(len(buffer), self._size - self._position)
        if wanted <= 0:
            return 0
        failed = self._failures.count
        try:
            if self._attribute is None:
                data = self._file.read_random(self._position, wanted)
            else:
                kind, number = self._attribute
                data = self._file.read_random(self._position, wanted, kind, number)
        except TSK_ERRORS as exc:
            raise OSError(f"file data cannot be read at byte {self._position:,}: {tsk_reason(exc)}") from exc
        reason = self._failures.last if self._failures.count != failed else self._failed_before()
        if reason is not None:
            raise OSError(f"file data cannot be read: {reason}")
        if not data:
            raise OSError(f"file data ends at byte {self._position:,} of {self._size:,}")
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)

    def _failed_before(self) -> str | None:
        """Why the data may have come from a failed read made before (TSK's cache), if so."""
        if not self._failures.ranges:
            return None
        if self._spans is None:
            self._spans = _spans(self._file, self._data)
        return self._failures.overlapping(self._spans)


def _open_stream(file: Any, data: _Data) -> IO[bytes]:
    return _TskFileStream(file, data)  # type: ignore[return-value]  # a RawIOBase is a binary stream


def _time(meta: Any, name: str) -> str | None:
    seconds = getattr(meta, name, 0) or 0
    nanoseconds = getattr(meta, f"{name}_nano", 0) or 0
    return iso_time(seconds + nanoseconds / 1e9) if seconds else None


def _data_streams(file: Any) -> tuple[tuple[int, int] | None, list[tuple[str, int, int]]]:
    """An NTFS file's unnamed ``$DATA`` attribute (type, id) and its named
    ones (alternate data streams: name, id, size)."""
    default: tuple[int, int] | None = None
    named: list[tuple[str, int, int]] = []
    try:
        for attribute in file:
            info = attribute.info
            if int(info.type) != _NTFS_DATA:
                continue
            if info.name in (None, b"", b"$Data"):
                default = default or (_NTFS_DATA, int(info.id))
            else:
                stream = info.name.decode("utf-8", "surrogateescape") if isinstance(info.name, bytes) else info.name
                named.append((stream, int(info.id), int(info.size)))
    except TSK_ERRORS:  # attributes of a deleted entry may be gone: the default stream is still tried
        pass
    return default, named


@dataclass
class _Walker:
    """One walk over a file system's folders."""

    fs: Any
    volume: Volume
    filesystem: str
    budgets: ScanBudgets
    used: BlockRuns = field(default_factory=BlockRuns)

    @property
    def ntfs(self) -> bool:
        return self.filesystem == "ntfs"

    @property
    def block_size(self) -> int:
        return int(self.fs.info.block_size)

    def provenance(self, state: State, meta: Any | None, inode: str | None) -> Provenance:
        volume = self.volume
        times: dict[str, str | None] = {}
        if meta is not None:
            times = {
                "created": _time(meta, "crtime"),
                "modified": _time(meta, "mtime"),
                "accessed": _time(meta, "atime"),
            }
        location = Location(volume.image, volume.partition, volume.offset, self.filesystem, inode, **times)
        return Provenance(state, location)

    def walk(self) -> Iterator[Member]:
        root = int(self.fs.info.root_inum)
        visited = {root}
        self._note_runs_of(root)
        # Depth first, each folder's files before its subfolders, in the order the file system lists them.
        # A folder of NTFS's own ($Extend) is walked only to note its files' blocks: they are not items.
        pending: list[tuple[str, int, bool, bool]] = [("", root, False, False)]
        while pending:
            path, inode, deleted, internal = pending.pop()
            subfolders: list[tuple[str, int, bool, bool]] = []
            failed = self.volume.failures.count
            try:
                folder = self.fs.open_dir(inode=inode)
            except TSK_ERRORS as exc:
                if not deleted and not internal:  # a deleted folder's entries are often gone: nothing to report
                    yield self._unreadable_folder(path, inode, tsk_reason(exc))
                continue
            if self.volume.failures.count != failed and not deleted and not internal:
                # Listed from zeros where the image could not be read: what was listed is still read.
                yield self._unreadable_folder(path, inode, self.volume.failures.last)
            for entry in folder:
                name_info, meta = entry.info.name, entry.info.meta
                raw = bytes(name_info.name or b"")
                if raw in (b"", b".", b".."):
                    continue
                name_released = bool(name_info.flags & pytsk3.TSK_FS_NAME_FLAG_UNALLOC)
                if meta is None:
                    entry, meta = self._released_metadata(name_info, name_released)
                    if entry is None or meta is None:
                        continue  # a name without metadata has nothing to read
                meta_released = bool(meta.flags & pytsk3.TSK_FS_META_FLAG_UNALLOC)
                if name_released and not meta_released:
                    continue  # the name is deleted and its metadata now belongs to another file
                self._note_runs(entry)
                kind = int(meta.type)
                child = path + raw.decode("utf-8", "surrogateescape")
                child_deleted = deleted or name_released or meta_released
                own = self._own(path, raw, meta)
                if kind in _DIRECTORIES and int(meta.addr) not in visited:
                    visited.add(int(meta.addr))
                    subfolders.append((child + "/", int(meta.addr), child_deleted, internal or own))
                if internal or kind == _VIRTUAL or own:
                    continue
                if kind in _DIRECTORIES:
                    if self.ntfs:
                        yield from self._alternate_streams(entry, meta, child, child_deleted)
                elif kind == _REGULAR:
                    yield from self._file(entry, meta, child, child_deleted)
                elif not child_deleted:
                    yield self._special(meta, child, kind)
            pending.extend(reversed(subfolders))
        for inode in _UNLISTED_INODES.get(self.filesystem, ()):
            self._note_runs_of(inode)

    def _own(self, path: str, raw: bytes, meta: Any) -> bool:
        """Whether an entry is one of the file system's own files (not an item; its blocks are still used)."""
        if self.ntfs:
            return int(meta.addr) < _NTFS_FIRST_USER_ENTRY
        if self.filesystem == "exfat" and not path and not meta.mtime:
            return raw in _EXFAT_OWN or raw.endswith(_EXFAT_LABEL)
        return False

    def _note_runs_of(self, inode: int) -> None:
        try:
            self._note_runs(self.fs.open_meta(inode=inode))
        except TSK_ERRORS:
            pass  # no such file: nothing is used

    def _note_runs(self, file: Any) -> None:
        """Note the blocks all of a file's attributes (data, folder indexes, indirect blocks) use."""
        try:
            for first, count in _disk_runs(file):
                self.used.add(first, count)
        except TSK_ERRORS:
            pass  # its runs cannot be listed (a damaged entry): its blocks are searched as free space

    def free_space(self) -> list[UnallocatedRange]:
        """The bytes of the file system (image offsets) that none of the files walked uses."""
        info, size = self.fs.info, self.block_size
        last = min(int(info.last_block), int(info.last_block_act))
        return [
            UnallocatedRange(self.volume.offset + start * size, length * size)
            for start, length in self.used.free(int(info.first_block), last)
        ]

    def _released_metadata(self, name_info: Any, name_released: bool) -> tuple[Any, Any]:
        """The file a released name points to, where TSK did not load it with
        the folder (orphan files under ``$OrphanFiles``). An allocated name
        without metadata is not followed: TSK lists that file as an orphan."""
        address = int(name_info.meta_addr or 0)
        if not name_released or address == 0:
            return None, None
        try:
            file = self.fs.open_meta(inode=address)
        except TSK_ERRORS:
            return None, None
        return file, file.info.meta

    def _name(self, path: str) -> tuple[str, str | None]:
        """The member's name (cut to the budget, with an error, when too long)."""
        name = self.volume.prefix + path
        raw = name.encode("utf-8", "surrogateescape")
        limit = self.budgets.max_name_bytes
        if len(raw) <= limit:
            return name, None
        shown = raw[:limit].decode("utf-8", "surrogateescape")
        return shown, over_budget("max_name_bytes", limit, f"path in the file system of {len(raw):,} bytes")

    def _file(self, entry: Any, meta: Any, path: str, deleted: bool) -> Iterator[Member]:
        size = int(meta.size)
        if deleted and size <= 0:
            return
        state: State = "deleted" if deleted else "allocated"
        address = int(meta.addr)
        modified = float(meta.mtime) if meta.mtime else None
        default: tuple[int, int] | None = None
        streams: list[tuple[str, int, int]] = []
        if self.ntfs:
            default, streams = _data_streams(entry)
        inode = f"{address}-{default[0]}-{default[1]}" if default is not None else str(address)
        name, error = self._name(path)
        provenance = self.provenance(state, meta, inode)
        if error is not None:
            yield Member(name, size, modified, None, error, provenance=provenance)
        else:
            opener = partial(_open_stream, entry, _Data(size, default, self.block_size, self.volume))
            yield Member(name, size, modified, opener, seekable=True, provenance=provenance)
        for stream, number, stream_size in streams:
            yield self._stream_member(entry, meta, path, stream, number, stream_size, state)

    def _alternate_streams(self, entry: Any, meta: Any, path: str, deleted: bool) -> Iterator[Member]:
        """A folder's alternate data streams (a folder has no unnamed one)."""
        state: State = "deleted" if deleted else "allocated"
        for stream, number, size in _data_streams(entry)[1]:
            yield self._stream_member(entry, meta, path, stream, number, size, state)

    def _stream_member(
        self, entry: Any, meta: Any, path: str, stream: str, number: int, size: int, state: State
    ) -> Member:
        name, error = self._name(f"{path}:{stream}")
        modified = float(meta.mtime) if meta.mtime else None
        provenance = self.provenance(state, meta, f"{int(meta.addr)}-{_NTFS_DATA}-{number}")
        if error is not None:
            return Member(name, size, modified, None, error, provenance=provenance)
        opener = partial(_open_stream, entry, _Data(size, (_NTFS_DATA, number), self.block_size, self.volume))
        return Member(name, size, modified, opener, seekable=True, provenance=provenance)

    def _special(self, meta: Any, path: str, kind: int) -> Member:
        name, error = self._name(path)
        modified = float(meta.mtime) if meta.mtime else None
        provenance = self.provenance("allocated", meta, str(int(meta.addr)))
        if error is None and kind == _LINK:
            target = meta.link.decode("utf-8", "replace") if isinstance(meta.link, bytes) else str(meta.link or "")
            error, mime = f"symbolic link in the file system to {target!r}; not followed", "inode/symlink"
        else:
            error, mime = error or "not a regular file (a FIFO, socket or device); skipped", "inode/x-special"
        return Member(name, 0, modified, None, error, mime, provenance=provenance)

    def _unreadable_folder(self, path: str, inode: int, reason: str) -> Member:
        name, _ = self._name(path.rstrip("/") or "(root folder)")
        provenance = self.provenance("allocated", None, str(inode))
        return Member(
            name,
            0,
            None,
            None,
            f"folder cannot be listed in full (damaged file system or image): {reason}",
            provenance=provenance,
        )


def filesystem_members(
    fs: Any, volume: Volume, filesystem: str, budgets: ScanBudgets, free: list[UnallocatedArea]
) -> Iterator[Member]:
    """Every file of the open file system ``fs`` (a ``pytsk3.FS_Info``) as a
    member, with its provenance; once all are listed, its free space is added to ``free``."""
    walker = _Walker(fs, volume, filesystem, budgets)
    yield from walker.walk()
    where = Location(volume.image, volume.partition, volume.offset, filesystem)
    free.append(UnallocatedArea(walker.free_space(), where, volume.prefix))
