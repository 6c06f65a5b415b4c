"""Zip archives (zip64 included), read member by member, never extracted.

The central directory and the local headers are parsed here (``struct``)
rather than through ``zipfile.ZipFile``, because ZipFile gives up on the whole
archive for one bad entry (a name flagged UTF-8 that is not UTF-8, a damaged
directory record) and finds nothing in a zip that was cut short. zipfile
still does what it is good at: each member is decompressed and its CRC
checked by ``zipfile.ZipExtFile`` reading a window onto that member's bytes.
So one damaged member (bad CRC, corrupt deflate data) fails only when it is
read, and the others are read as usual.

- Names are the stored bytes, decoded as UTF-8 with ``surrogateescape``,
  whether or not the entry's UTF-8 flag (bit 11) is set. Names without the
  flag are cp437 by the standard but in practice whatever code page the
  writing machine used (cp1252, Shift-JIS, UTF-8...); a guess would silently
  change them, the bytes lose nothing. The Info-ZIP Unicode path field is not
  read.
- A member with a damaged local header, data cut short, encryption, an
  unsupported method (deflate64, PPMd...), or a name over
  ``budgets.max_name_bytes`` is yielded with an ``error`` and no content.
- When the central directory is missing (a truncated zip) or damaged, the
  remaining members are found by walking the local headers (``PK\\x03\\x04``)
  from the start; members whose sizes follow their data (a data descriptor)
  are measured by finding that descriptor. Afterwards ``ContainerError`` says
  the directory was missing, so the archive's own item records the damage.
"""

from __future__ import annotations

import calendar
import io
import re
import stat
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import IO, cast

from childsafe.media.budgets import ScanBudgets, over_budget
from childsafe.triage.sources.base import ContainerError, Member
from childsafe.triage.sources.registry import register_container

__all__ = ["ZIP"]

_READABLE_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
_METHOD_NAMES = {9: "deflate64", 98: "PPMd", 99: "AES (WinZip)", 95: "xz", 93: "zstandard"}

# Record layouts (APPNOTE.TXT 4.3), the same as zipfile's private ones.
_LOCAL = struct.Struct("<4s2B4HL2L2H")  # local file header, 30 bytes
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")  # central directory record, 46 bytes
_END = struct.Struct("<4s4H2LH")  # end of central directory, 22 bytes
_ZIP64_LOCATOR = struct.Struct("<4sLQL")  # 20 bytes
_ZIP64_END = struct.Struct("<4sQ2H2L4Q")  # 56 bytes
_LOCAL_SIGNATURE = b"PK\x03\x04"
_CENTRAL_SIGNATURE = b"PK\x01\x02"
_END_SIGNATURE = b"PK\x05\x06"
_ZIP64_END_SIGNATURE = b"PK\x06\x06"
_DESCRIPTOR_SIGNATURE = b"PK\x07\x08"
_FLAG_ENCRYPTED = 0x1
_FLAG_DESCRIPTOR = 0x8
_FLAG_STRONG_ENCRYPTION = 0x40
_MAX_32 = 0xFFFFFFFF
_SEARCH_CHUNK = 1 << 20


@dataclass(frozen=True)
class _Entry:
    """One member as its directory record (or its local header) describes it."""

    name: bytes
    flags: int
    method: int
    dos_date: int
    dos_time: int
    crc: int
    compressed_size: int
    size: int
    header_at: int  # where its local header starts in the stream
    mode: int  # Unix mode from the external attributes, 0 when none


@dataclass(frozen=True)
class _Directory:
    """Where the central directory is; ``shift``: bytes before the first member
    (a self-extracting stub), which move every offset the records state."""

    start: int
    end: int
    shift: int


class _DirectoryDamaged(Exception):
    """The central directory stops making sense at this point."""


def _read_at(stream: IO[bytes], offset: int, length: int) -> bytes:
    stream.seek(offset)
    return stream.read(length)


def _modified(dos_date: int, dos_time: int) -> float | None:
    moment = ((dos_date >> 9) + 1980, (dos_date >> 5) & 0xF, dos_date & 0x1F)
    clock = (dos_time >> 11, (dos_time >> 5) & 0x3F, (dos_time & 0x1F) * 2)
    try:
        # Zip times carry no zone; read as UTC so reports do not depend on this machine.
        return float(calendar.timegm((*moment, *clock, 0, 0, 0)))
    except (ValueError, OverflowError):
        return None


def _zip64_values(extra: bytes, size: int, compressed_size: int, offset: int) -> tuple[int, int, int]:
    """Sizes and offset with the zip64 extra field's 64-bit values in place of
    the 32-bit fields that say 0xFFFFFFFF (in that order, as the standard has it)."""
    position = 0
    while position + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, position)
        if tag == 0x0001:
            body = extra[position + 4 : position + 4 + length]
            values = iter(struct.unpack_from(f"<{len(body) // 8}Q", body))
            if size == _MAX_32:
                size = next(values, size)
            if compressed_size == _MAX_32:
                compressed_size = next(values, compressed_size)
            if offset == _MAX_32:
                offset = next(values, offset)
            break
        position += 4 + length
    return size, compressed_size, offset


def _find(stream: IO[bytes], pattern: re.Pattern[bytes], start: int, end: int) -> Iterator[tuple[int, bytes]]:
    """(position, bytes) of each match of ``pattern`` (4 bytes long) in
    ``stream[start:end]``, read a chunk at a time. Chunks overlap by 3 bytes,
    so a match cut at a chunk's end is found whole, once, in the next one."""
    position = start
    while position < end:
        chunk = _read_at(stream, position, min(_SEARCH_CHUNK, end - position))
        for match in pattern.finditer(chunk):
            yield position + match.start(), match.group()
        if len(chunk) <= 3:
            return
        position += len(chunk) - 3


_NEXT_LOCAL = re.compile(re.escape(_LOCAL_SIGNATURE))
_DESCRIPTOR_OR_HEADER = re.compile(b"PK(?:\x07\x08|\x03\x04|\x01\x02|\x05\x06)")


def _next_local_header(stream: IO[bytes], start: int, file_size: int) -> int | None:
    for position, _ in _find(stream, _NEXT_LOCAL, start, file_size):
        return position
    return None


def _find_descriptor(stream: IO[bytes], data_start: int, file_size: int) -> tuple[int, int, int, int] | None:
    """(CRC, compressed size, size, end) of the data descriptor after a member
    whose local header left its sizes to it: the first descriptor whose stated
    compressed size is exactly its distance from the data's start. With the
    descriptor's own signature, or without it (then it ends where the next
    header begins)."""
    for at, signature in _find(stream, _DESCRIPTOR_OR_HEADER, data_start, file_size):
        if signature == _DESCRIPTOR_SIGNATURE:
            fields = _read_at(stream, at + 4, 20)
            if len(fields) >= 12 and struct.unpack_from("<L", fields, 4)[0] == at - data_start:
                crc, compressed, size = struct.unpack_from("<3L", fields)
                return crc, compressed, size, at + 16
            if len(fields) >= 20 and struct.unpack_from("<Q", fields, 4)[0] == at - data_start:
                crc, compressed, size = struct.unpack_from("<LQQ", fields)
                return crc, compressed, size, at + 24
        else:
            if at - 12 >= data_start:
                crc, compressed, size = struct.unpack("<3L", _read_at(stream, at - 12, 12))
                if compressed == at - 12 - data_start:
                    return crc, compressed, size, at
            if at - 20 >= data_start:
                crc, compressed, size = struct.unpack("<LQQ", _read_at(stream, at - 20, 20))
                if compressed == at - 20 - data_start:
                    return crc, compressed, size, at
    return None


def _central_directory(stream: IO[bytes], file_size: int) -> _Directory | None:
    """Where the central directory is, from the last plausible end record;
    None when there is none (a zip cut short) or it points nowhere."""
    tail_start = max(0, file_size - _END.size - 0xFFFF)
    tail = _read_at(stream, tail_start, file_size - tail_start)
    found = tail.rfind(_END_SIGNATURE)
    while found >= 0:
        if found + _END.size <= len(tail):
            end_at = tail_start + found
            directory = _directory_from_end(stream, tail[found : found + _END.size], end_at)
            if directory is not None:
                return directory
        found = tail.rfind(_END_SIGNATURE, 0, found)
    return None


def _directory_from_end(stream: IO[bytes], record: bytes, end_at: int) -> _Directory | None:
    _, _, _, _, count, size, offset, _ = _END.unpack(record)
    directory_end = end_at
    locator = _read_at(stream, end_at - _ZIP64_LOCATOR.size, _ZIP64_LOCATOR.size) if end_at >= 76 else b""
    if locator[:4] == b"PK\x06\x07":
        # As zipfile does: the zip64 end record sits just before its locator.
        zip64_at = end_at - _ZIP64_LOCATOR.size - _ZIP64_END.size
        zip64 = _read_at(stream, zip64_at, _ZIP64_END.size)
        if len(zip64) == _ZIP64_END.size and zip64[:4] == _ZIP64_END_SIGNATURE:
            _, _, _, _, _, _, _, count, size, offset = _ZIP64_END.unpack(zip64)
            directory_end = zip64_at
    start = directory_end - size
    if start < 0 or start - offset < 0:
        return None
    if count and _read_at(stream, start, 4) != _CENTRAL_SIGNATURE:
        return None
    return _Directory(start, directory_end, start - offset)


def _central_entries(stream: IO[bytes], directory: _Directory) -> Iterator[_Entry]:
    """Directory records one by one (a directory claiming 10^9 entries is
    never listed up front); ``_DirectoryDamaged`` where they stop making sense."""
    position = directory.start
    while position < directory.end:
        fixed = _read_at(stream, position, _CENTRAL.size)
        if len(fixed) < _CENTRAL.size or fixed[:4] != _CENTRAL_SIGNATURE:
            raise _DirectoryDamaged(f"central directory damaged at byte {position:,}")
        (_, _, _, _, _, flags, method, dos_time, dos_date, crc, compressed, size, name_length, extra_length,
         comment_length, _, _, external, offset) = _CENTRAL.unpack(fixed)  # fmt: skip
        name = stream.read(name_length)
        extra = stream.read(extra_length)
        if len(name) < name_length or len(extra) < extra_length:
            raise _DirectoryDamaged(f"central directory cut short at byte {position:,}")
        size, compressed, offset = _zip64_values(extra, size, compressed, offset)
        yield _Entry(
            name, flags, method, dos_date, dos_time, crc, compressed, size, offset + directory.shift, external >> 16
        )
        position += _CENTRAL.size + name_length + extra_length + comment_length


def _local_entries(stream: IO[bytes], file_size: int) -> Iterator[_Entry | tuple[_Entry, str]]:
    """Members found by walking the local headers from the start (no usable
    central directory); a member that cannot be measured comes with an error."""
    position = _next_local_header(stream, 0, file_size)
    while position is not None:
        fixed = _read_at(stream, position, _LOCAL.size)
        if len(fixed) < _LOCAL.size:
            return
        (_, _, _, flags, method, dos_time, dos_date, crc, compressed, size, name_length,
         extra_length) = _LOCAL.unpack(fixed)  # fmt: skip
        name = stream.read(name_length)
        extra = stream.read(extra_length)
        if len(name) < name_length or len(extra) < extra_length:
            return  # a header cut short at the end of the data
        size, compressed, _ = _zip64_values(extra, size, compressed, 0)
        data_start = position + _LOCAL.size + name_length + extra_length
        entry = _Entry(name, flags, method, dos_date, dos_time, crc, compressed, size, position, 0)
        if flags & _FLAG_DESCRIPTOR:
            described = _find_descriptor(stream, data_start, file_size)
            if described is None:
                yield entry, "damaged zip member: its size is stored after its data and no record of it was found"
                position = _next_local_header(stream, data_start, file_size)
                continue
            crc, compressed, size, data_end = described
            entry = _Entry(name, flags, method, dos_date, dos_time, crc, compressed, size, position, 0)
        else:
            data_end = data_start + compressed
        yield entry
        position = _next_local_header(stream, data_end, file_size) if data_end < file_size else None


class _Window(io.RawIOBase):
    """Bytes ``[start, start + length)`` of a shared seekable stream. It seeks
    before every read, so a member can be read after the stream was used for
    something else (listing the next member)."""

    def __init__(self, stream: IO[bytes], start: int, length: int) -> None:
        super().__init__()
        self._stream = stream
        self._position = start
        self._left = length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        wanted = min(len(buffer), self._left)
        if wanted <= 0:
            return 0
        data = _read_at(self._stream, self._position, wanted)
        buffer[: len(data)] = data
        self._position += len(data)
        self._left -= len(data)
        return len(data)


def _open_member(stream: IO[bytes], entry: _Entry, data_start: int) -> IO[bytes]:
    info = zipfile.ZipInfo(entry.name.decode("utf-8", "surrogateescape"))
    info.compress_type = entry.method
    info.compress_size = entry.compressed_size
    info.file_size = entry.size
    info.CRC = entry.crc
    info.flag_bits = entry.flags
    window = _Window(stream, data_start, entry.compressed_size)
    return cast(IO[bytes], zipfile.ZipExtFile(window, "r", info))


def _member(stream: IO[bytes], entry: _Entry, file_size: int, budgets: ScanBudgets) -> Member | None:
    """The member an entry describes (None for a folder)."""
    if entry.name.endswith(b"/"):
        return None
    modified = _modified(entry.dos_date, entry.dos_time)
    if len(entry.name) > budgets.max_name_bytes:
        shown = entry.name[: budgets.max_name_bytes].decode("utf-8", "surrogateescape")
        error = over_budget("max_name_bytes", budgets.max_name_bytes, f"member name of {len(entry.name):,} bytes")
        return Member(shown, entry.size, modified, None, error, compressed_size=entry.compressed_size)
    name = entry.name.decode("utf-8", "surrogateescape")

    def failed(error: str, mime: str | None = None) -> Member:
        return Member(name, entry.size, modified, None, error, mime, entry.compressed_size)

    if stat.S_ISLNK(entry.mode):
        return failed("symbolic link in archive; not followed", "inode/symlink")
    if entry.flags & (_FLAG_ENCRYPTED | _FLAG_STRONG_ENCRYPTION):
        return failed("encrypted member; cannot be read without its password")
    if entry.method not in _READABLE_METHODS:
        method = _METHOD_NAMES.get(entry.method, f"method {entry.method}")
        return failed(f"compression {method} is not supported; member not read")
    header = _read_at(stream, entry.header_at, _LOCAL.size)
    if len(header) < _LOCAL.size or header[:4] != _LOCAL_SIGNATURE:
        return failed(f"damaged zip member: no local header at byte {entry.header_at:,}")
    name_length, extra_length = struct.unpack_from("<2H", header, 26)
    data_start = entry.header_at + _LOCAL.size + name_length + extra_length
    if data_start + entry.compressed_size > file_size:
        return failed("damaged zip member: its data is cut short (archive truncated?)")
    opener = partial(_open_member, stream, entry, data_start)
    return Member(name, entry.size, modified, opener, compressed_size=entry.compressed_size)


@dataclass(frozen=True)
class ZipContainer:
    """The ``zip`` container."""

    name: str = "zip"
    needs_seek: bool = True

    def opens(self, mime: str, head: bytes) -> bool:
        return mime == "application/zip"

    def members(self, stream: IO[bytes], name: str, mime: str, budgets: ScanBudgets) -> Iterator[Member]:
        try:
            file_size = stream.seek(0, io.SEEK_END)
            directory = _central_directory(stream, file_size)
        except (OSError, ValueError) as exc:
            raise ContainerError(f"damaged zip: {exc}") from exc
        # Local headers already listed, for the walk after a damaged directory;
        # bounded (folders are listed without being yielded, so the reader's
        # member limit alone would not bound it).
        seen: set[int] = set()
        if directory is not None:
            try:
                for entry in _central_entries(stream, directory):
                    if len(seen) <= budgets.max_members:
                        seen.add(entry.header_at)
                    member = _member(stream, entry, file_size, budgets)
                    if member is not None:
                        yield member
                return
            except _DirectoryDamaged as exc:
                problem = f"damaged zip: {exc}; the members after it were found from their local headers"
        else:
            problem = "damaged zip: no central directory (cut short?); members found from their local headers"
        found = bool(seen)
        for local in _local_entries(stream, file_size):
            found = True
            entry, error = local if isinstance(local, tuple) else (local, None)
            if entry.header_at in seen:
                continue
            if error is not None:
                yield Member(entry.name.decode("utf-8", "surrogateescape"), -1, None, None, error)
                continue
            member = _member(stream, entry, file_size, budgets)
            if member is not None:
                yield member
        if not found:
            problem = "damaged zip: no central directory and no member headers found"
        raise ContainerError(problem)


ZIP = register_container(ZipContainer())
