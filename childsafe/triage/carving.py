"""Carving pictures out of unallocated space: JPEG, PNG, GIF, WebP and BMP
found by their headers and followed through their structure to their end.

A header alone says little (``BM`` starts one byte pair in 65,536 of random
data): a candidate becomes a picture only when its structure holds from the
header to an end marker (JPEG's EOI after its segments and entropy-coded
data, PNG's IEND after well-formed chunks, GIF's trailer after its blocks)
or to the length its header states (WebP's RIFF size, BMP's file size, each
checked against the rest of the header). Nothing is taken at a fixed size.

Written by hand, not with a carving tool: Debian's carvers (foremost,
scalpel, photorec) write what they find to disk, and evidence is never
extracted. This reads through ``read_at`` and only reports where each
picture lies; the scan reads it from there as a stream.

Costs: the search for headers is one compiled regular expression over
blocks of ``BLOCK_BYTES`` (the C regex engine, several hundred MB/s); a
candidate's structure is walked by reading its segments' headers, and
JPEG's entropy-coded data is searched for markers with ``bytes.find``.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass

__all__ = ["CarvedPicture", "carve_pictures", "BLOCK_BYTES", "MAX_CARVED_BYTES"]

#: How much is searched for headers at a time.
BLOCK_BYTES = 4 * 1024 * 1024
#: A carved picture is at most this long (a structure still running past it is dropped, not cut).
MAX_CARVED_BYTES = 64 * 1024 * 1024

ReadAt = Callable[[int, int], bytes]

#: Each picture type's header: a fixed part found with ``bytes.find`` (C,
#: gigabytes a second; one regular expression over all five ran at a third
#: of the speed of hashing), where it lies in the header, and the whole header.
_HEADERS = (
    (b"\xff\xd8\xff", 0, re.compile(rb"\xff\xd8\xff[\xc0-\xfe]")),  # JPEG: SOI and a first marker
    (b"\x89PNG\r\n\x1a\n", 0, re.compile(rb"\x89PNG\r\n\x1a\n")),
    (b"GIF8", 0, re.compile(rb"GIF8[79]a")),
    (b"WEBPVP8", 8, re.compile(rb"RIFF....WEBPVP8[ LX]", re.DOTALL)),
    (b"BM", 0, re.compile(rb"BM....\x00\x00\x00\x00", re.DOTALL)),  # BMP: its size, then two reserved words of 0
)
_LONGEST_HEADER = 16


@dataclass(frozen=True)
class CarvedPicture:
    """A picture found in unallocated space: where it starts (``offset``, in
    the coordinates of ``read_at``), how long it is, and its type."""

    offset: int
    length: int
    mime: str


def carve_pictures(read_at: ReadAt, start: int, end: int, max_bytes: int = MAX_CARVED_BYTES) -> Iterator[CarvedPicture]:
    """Every picture whose structure lies whole in ``[start, end)``, in order
    of offset. The search goes on after each picture's end (a picture inside
    another, such as a JPEG's EXIF thumbnail, is part of it, not a second find)."""
    position = start
    while position < end:
        block_end = min(end, position + BLOCK_BYTES)
        block = read_at(position, block_end - position + _LONGEST_HEADER)  # a header may straddle the block's end
        position = yield from _carve_block(read_at, block, position, block_end, end, max_bytes)


def _carve_block(
    read_at: ReadAt, block: bytes, position: int, block_end: int, end: int, max_bytes: int
) -> Generator[CarvedPicture, None, int]:
    """The pictures starting in one block; returns where the search goes on."""
    carved_to = 0  # headers inside a picture already carved are part of it
    for at, header in _headers_in(block, block_end - position):
        if at < carved_to:
            continue
        picture = _carve_at(read_at, position + at, end, max_bytes, header)
        if picture is None:
            continue
        yield picture
        carved_to = at + picture.length
        if position + carved_to >= block_end:
            return position + carved_to
    return block_end


def _headers_in(block: bytes, limit: int) -> list[tuple[int, bytes]]:
    """Where headers start in ``block`` (before ``limit``), in order, with each header's bytes."""
    found = []
    for needle, lead, header in _HEADERS:
        at = block.find(needle, lead)
        while 0 <= at < limit + lead:
            matched = header.match(block, at - lead)
            if matched is not None:
                found.append((at - lead, matched.group()))
            at = block.find(needle, at + 1)
    found.sort()
    return found


def _carve_at(read_at: ReadAt, offset: int, end: int, max_bytes: int, header: bytes) -> CarvedPicture | None:
    limit = min(end, offset + max_bytes)
    source = _Bytes(read_at, offset, limit)
    if header.startswith(b"\xff\xd8"):
        length, mime = _jpeg_length(source), "image/jpeg"
    elif header.startswith(b"\x89PNG"):
        length, mime = _png_length(source), "image/png"
    elif header.startswith(b"GIF"):
        length, mime = _gif_length(source), "image/gif"
    elif header.startswith(b"RIFF"):
        length, mime = _webp_length(source), "image/webp"
    else:
        length, mime = _bmp_length(source), "image/bmp"
    if length is None or offset + length > limit:
        return None
    return CarvedPicture(offset, length, mime)


class _Bytes:
    """Reads of one candidate, relative to its start, never past ``limit``;
    a read that would go past it raises ``_Truncated``."""

    def __init__(self, read_at: ReadAt, offset: int, limit: int) -> None:
        self.read_at, self.offset, self.size = read_at, offset, limit - offset

    def get(self, at: int, count: int) -> bytes:
        if at < 0 or at + count > self.size:
            raise _Truncated
        data = self.read_at(self.offset + at, count)
        if len(data) < count:
            raise _Truncated
        return data

    def find(self, needle: bytes, at: int, chunk: int = 256 * 1024) -> int:
        """The first position of ``needle`` at or after ``at``, or raise ``_Truncated``."""
        while at < self.size:
            data = self.read_at(self.offset + at, min(chunk, self.size - at))
            if not data:
                break
            found = data.find(needle)
            if found >= 0:
                return at + found
            at += max(1, len(data) - len(needle) + 1)
        raise _Truncated


class _Truncated(Exception):
    """The structure runs past the end of the space searched (or the size limit)."""


def _jpeg_length(source: _Bytes) -> int | None:
    """Segments after SOI, each ``FF marker length``; after SOS, entropy-coded
    data up to the next marker that is not a stuffed byte or a restart; ends at EOI."""
    at, scanned = 2, False
    try:
        while True:
            marker = source.get(at, 2)
            if marker[0] != 0xFF or marker[1] == 0xD8:  # a second SOI is never in the segment stream
                return None
            kind = marker[1]
            if kind == 0xD9:  # EOI: a picture only if some image data came before it
                return at + 2 if scanned else None
            if kind == 0xFF:  # fill byte before a marker
                at += 1
                continue
            if 0xD0 <= kind <= 0xD7 or kind == 0x01:  # markers without a length
                at += 2
                continue
            (length,) = struct.unpack(">H", source.get(at + 2, 2))
            if length < 2:
                return None
            at += 2 + length
            if kind == 0xDA:  # SOS: entropy-coded data follows
                at, scanned = _after_entropy_data(source, at), True
    except _Truncated:
        return None


def _after_entropy_data(source: _Bytes, at: int) -> int:
    """The position of the first real marker after entropy-coded data at ``at``."""
    while True:
        at = source.find(b"\xff", at)
        following = source.get(at + 1, 1)[0]
        if following == 0x00 or 0xD0 <= following <= 0xD7 or following == 0xFF:
            at += 1 if following == 0xFF else 2  # stuffed byte, restart marker, or fill
            continue
        return at


_PNG_CHUNK_TYPE = re.compile(rb"[A-Za-z]{4}")


def _png_length(source: _Bytes) -> int | None:
    """Chunks of ``length, type, data, crc`` from IHDR to IEND."""
    at, first = 8, True
    try:
        while True:
            length, kind = struct.unpack(">I4s", source.get(at, 8))
            if not _PNG_CHUNK_TYPE.fullmatch(kind) or length > 0x7FFFFFFF or (first and kind != b"IHDR"):
                return None
            at += 12 + length
            first = False
            if kind == b"IEND":
                return at if source.size >= at else None
    except _Truncated:
        return None


def _gif_length(source: _Bytes) -> int | None:
    """The screen descriptor and colour table, then extension and image blocks up to the trailer (0x3B)."""
    try:
        flags = source.get(10, 1)[0]
        at = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
        while True:
            introducer = source.get(at, 1)[0]
            if introducer == 0x3B:
                return at + 1
            if introducer == 0x21:  # extension: label, then sub-blocks
                at = _after_sub_blocks(source, at + 2)
            elif introducer == 0x2C:  # image: descriptor, local colour table, LZW code size, sub-blocks
                local = source.get(at + 9, 1)[0]
                at += 10 + (3 << ((local & 7) + 1) if local & 0x80 else 0)
                if not 2 <= source.get(at, 1)[0] <= 12:
                    return None
                at = _after_sub_blocks(source, at + 1)
            else:
                return None
    except _Truncated:
        return None


def _after_sub_blocks(source: _Bytes, at: int) -> int:
    while True:
        size = source.get(at, 1)[0]
        at += 1 + size
        if size == 0:
            return at


def _webp_length(source: _Bytes) -> int | None:
    """RIFF's stated size, when the first chunk (VP8, VP8L, VP8X) fits inside it."""
    try:
        riff_size, _, chunk_size = struct.unpack("<I8sI", source.get(4, 16))
    except _Truncated:
        return None
    total = 8 + int(riff_size)
    if riff_size % 2 or riff_size < 12 + 8 or 20 + chunk_size > total:
        return None
    return total


_BMP_INFO_SIZES = {12, 40, 52, 56, 64, 108, 124}


def _bmp_length(source: _Bytes) -> int | None:
    """Plain rows: where the rows end, by the dimensions, within the size the
    header states; compressed: that size, when the rest of the header agrees."""
    try:
        size, _, pixels_at, info_size = struct.unpack("<I4sII", source.get(2, 16))
        if info_size not in _BMP_INFO_SIZES:
            return None
        if info_size == 12:
            width, height, planes, depth = struct.unpack("<HhHH", source.get(18, 8))
            compression = 0
        else:
            width, height, planes, depth, compression = struct.unpack("<iiHHI", source.get(18, 16))
    except _Truncated:
        return None
    if planes != 1 or depth not in (1, 4, 8, 16, 24, 32) or width <= 0 or height == 0:
        return None
    if not 14 + info_size <= pixels_at < size:
        return None
    if compression == 0:  # BI_RGB
        pixels_end = int(pixels_at + (width * depth + 31) // 32 * 4 * abs(height))
        return pixels_end if pixels_end <= size else None
    return int(size)
