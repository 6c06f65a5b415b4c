"""The volumes of a disk image: partition tables (MBR, GPT...) and the file
system in each partition, through The Sleuth Kit (``pytsk3``).

A disk whose first bytes are a file system is read as one volume (no
partition number); otherwise its partition table is read, and each
allocated partition is opened as a file system. A partition that cannot be
read is a member of its own with an ``error`` (so the report says what was
not read), and the other partitions are still read:

- an encrypted volume (BitLocker, LUKS) is reported as such, never opened;
- a partition whose file system The Sleuth Kit does not know, or which is
  damaged, says so;
- a partition where the image cannot be read (a missing E01 segment) says
  that.

Space that no partition uses, and each file system's free space, is
searched for pictures by their structure (``unallocated.py``): each is a
member with state ``carved``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytsk3

from childsafe.media.budgets import ScanBudgets
from childsafe.triage.provenance import Location, Provenance
from childsafe.triage.sources.base import ContainerError, Member
from childsafe.triage.sources.disk_image import Media, short_reason
from childsafe.triage.sources.disk_signatures import HEAD_BYTES, encryption, filesystem, table_size
from childsafe.triage.sources.filesystems import TSK_ERRORS, ReadFailures, Volume, filesystem_members, tsk_reason
from childsafe.triage.sources.unallocated import UnallocatedArea, UnallocatedRange, carve

__all__ = ["volume_members", "filesystem_name"]

_ENCRYPTED_MIME = {"BitLocker": "application/x-bitlocker-volume", "LUKS": "application/x-luks-volume"}


class _TskImage(pytsk3.Img_Info):  # type: ignore[misc]  # pytsk3 has no type information
    """``Media`` as The Sleuth Kit sees an image (read-only: TSK only reads).
    Where the image cannot be read, TSK is given zeros and ``failures`` says
    so (see ``ReadFailures``)."""

    def __init__(self, media: Media, failures: ReadFailures, claimed: int | None = None) -> None:
        self._media = media
        self.failures = failures
        # A disk cut short is given the size its partition table claims, so TSK still reads the table.
        self._size = max(media.size, claimed or 0)
        super().__init__(url="", type=pytsk3.TSK_IMG_TYPE_EXTERNAL)

    def read(self, offset: int, size: int) -> bytes:
        wanted = max(0, min(size, self._size - offset))
        try:
            data = self._media.read_at(offset, wanted)
        except OSError as exc:
            self.failures.note(short_reason(exc), offset, offset + wanted)
            return bytes(wanted)
        if len(data) < wanted:
            reason = f"the image ends at byte {self._media.size:,}, before the end of its partitions"
            self.failures.note(reason, offset + len(data), offset + wanted)
            data += bytes(wanted - len(data))
        return data

    def get_size(self) -> int:
        return self._size

    def close(self) -> None:
        pass


_FS_NAMES = {
    "NTFS": "ntfs",
    "FAT12": "fat12",
    "FAT16": "fat16",
    "FAT32": "fat32",
    "EXFAT": "exfat",
    "EXT2": "ext2",
    "EXT3": "ext3",
    "EXT4": "ext4",
    "HFS": "hfs+",
    "APFS": "apfs",
    "ISO9660": "iso9660",
    "FFS1": "ufs1",
    "FFS1B": "ufs1",
    "FFS2": "ufs2",
    "YAFFS2": "yaffs2",
}
_FS_BY_TYPE = {int(getattr(pytsk3, f"TSK_FS_TYPE_{tsk}")): name for tsk, name in _FS_NAMES.items()}


def filesystem_name(fs: Any) -> str:
    """``ntfs``, ``fat32``, ``ext4``... for an open ``pytsk3.FS_Info``."""
    kind = int(fs.info.ftype)
    return _FS_BY_TYPE.get(kind, f"tsk-type-{kind:#x}")


def volume_members(media: Media, image: str, budgets: ScanBudgets, carve_space: bool = True) -> Iterator[Member]:
    """The members of the disk image ``image`` (its report path) whose bytes
    are ``media``: the files of every file system, then (``carve_space``) the
    pictures carved from the space they and the partitions leave unallocated."""
    free: list[UnallocatedArea] = []
    yield from _volume_files(media, image, budgets, free)
    if carve_space:
        yield from carve(media, free, budgets)


def _volume_files(media: Media, image: str, budgets: ScanBudgets, free: list[UnallocatedArea]) -> Iterator[Member]:
    """The files of every file system; the unallocated space of the disk and of each file system is added to ``free``."""
    try:
        head = media.read_at(0, HEAD_BYTES)
    except OSError as exc:
        raise ContainerError(f"disk image cannot be read at its start: {short_reason(exc)}") from exc
    locked = encryption(head)
    if locked is not None:
        raise ContainerError(f"{locked}-encrypted volume: not opened (its key is needed)")
    failures = ReadFailures()
    tsk_image = _TskImage(media, failures)
    whole = Volume(image, None, 0, "", failures)
    if filesystem(head) is not None:
        yield from _filesystem_or_raise(tsk_image, whole, budgets, free)
        return
    try:
        volumes = pytsk3.Volume_Info(tsk_image)
    except TSK_ERRORS:
        claimed = table_size(head)
        if claimed is None or claimed <= media.size:
            # No partition table TSK knows: perhaps a file system our own checks do not name (TSK knows more).
            yield from _filesystem_or_raise(tsk_image, whole, budgets, free)
            return
        tsk_image = _TskImage(media, failures, claimed)  # cut short: TSK refuses a table that runs past the end
        try:
            volumes = pytsk3.Volume_Info(tsk_image)
        except TSK_ERRORS as exc:
            raise ContainerError(f"partition table cannot be read: {tsk_reason(exc)}") from exc
    block_size = int(volumes.info.block_size)
    unallocated: list[UnallocatedRange] = []
    number = 0
    for part in volumes:
        offset, length = int(part.start) * block_size, int(part.len) * block_size
        if part.flags & pytsk3.TSK_VS_PART_FLAG_UNALLOC:
            unallocated.append(UnallocatedRange(offset, length))
            continue
        if not part.flags & pytsk3.TSK_VS_PART_FLAG_ALLOC:
            continue  # the partition tables themselves, extended-partition containers
        number += 1
        volume = Volume(image, number, offset, f"p{number}/", failures)
        yield from _partition(tsk_image, media, volume, length, _text(part.desc), budgets, free)
    free.append(UnallocatedArea(unallocated, Location(image)))


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _partition(
    tsk_image: Any,
    media: Media,
    volume: Volume,
    length: int,
    description: str,
    budgets: ScanBudgets,
    free: list[UnallocatedArea],
) -> Iterator[Member]:
    """The files of one partition, or a member saying why they cannot be read."""
    name = volume.prefix.rstrip("/")
    provenance = Provenance("allocated", Location(volume.image, volume.partition, volume.offset))
    if volume.offset >= media.size:
        error = f"partition {volume.partition} lies past the end of the image (cut short at byte {media.size:,})"
        yield Member(name, length, None, None, error, provenance=provenance)
        return
    try:
        head = media.read_at(volume.offset, HEAD_BYTES)
    except OSError as exc:
        yield Member(name, length, None, None, f"partition cannot be read: {short_reason(exc)}", provenance=provenance)
        return
    locked = encryption(head)
    if locked is not None:
        error = f"{locked}-encrypted volume ({description}): not opened (its key is needed)"
        yield Member(name, length, None, None, error, _ENCRYPTED_MIME[locked], provenance=provenance)
        return
    failed = volume.failures.count
    try:
        fs = pytsk3.FS_Info(tsk_image, offset=volume.offset)
    except TSK_ERRORS as exc:
        reason = "all zeros" if not head.strip(b"\0") else tsk_reason(exc)
        if volume.failures.count != failed:
            reason = f"the image cannot be read there: {volume.failures.last}"
        error = f"no file system that can be read in partition {volume.partition} ({description}): {reason}"
        yield Member(name, length, None, None, error, provenance=provenance)
        return
    yield from filesystem_members(fs, volume, filesystem_name(fs), budgets, free)


def _filesystem_or_raise(
    tsk_image: Any, volume: Volume, budgets: ScanBudgets, free: list[UnallocatedArea]
) -> Iterator[Member]:
    failed = volume.failures.count
    try:
        fs = pytsk3.FS_Info(tsk_image, offset=volume.offset)
    except TSK_ERRORS as exc:
        reason = tsk_reason(exc) if volume.failures.count == failed else volume.failures.last
        raise ContainerError(f"no partition table or file system that can be read in the disk image: {reason}") from exc
    yield from filesystem_members(fs, volume, filesystem_name(fs), budgets, free)
