"""A fast path for reading E01 (EWF version 1) images: the chunks found
from the segments' tables and inflated with Python's zlib.

Written by hand because the libewf-python wheel inflates with libewf's own
deflate code, not zlib: it reads about 10 MB of media a second, and an E01
took twice a folder's time to scan (docs/benchmarks.md, "Disk images").
zlib reads it at hundreds of MB a second.

Only the bulk reading is ours: libewf still opens the image, gives its size,
headers and stored hashes, and reads whatever this module does not map or
cannot check. The layout (section descriptors of 76 bytes chained by their
``next`` offset; ``volume``/``disk`` giving sectors per chunk and bytes per
sector; ``sectors`` holding the chunks; ``table`` listing each chunk's
offset, its top bit set when it is compressed) is the one libyal's "Expert
Witness Compression Format" document describes. Every chunk is checked as
it is read: a compressed chunk must inflate (zlib checks its Adler-32) to
the chunk's size, a stored one must match the Adler-32 that follows it;
a chunk that fails either, a table that does not fit its ``sectors``
section, or a layout not described above (EnCase 1-5 tables holding their
chunks) is left to libewf, which reports the damage as it always has.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

import numpy as np

from childsafe.triage.sources.disk_image import LibyalMedia

__all__ = ["EwfChunks", "read_chunk_tables", "EwfMedia", "EwfSection", "ewf_sections", "EVF1_SIGNATURE"]

#: The first bytes of an EWF version 1 segment file (E01).
EVF1_SIGNATURE = b"EVF\x09\x0d\x0a\xff\x00"
_SECTION = struct.Struct("<16sQQ")  # type, next section's offset, this section's size (of 76 bytes)
_SECTION_BYTES = 76
_TABLE_HEADER = struct.Struct("<I4xQ")  # entries, padding, base offset (then padding and a checksum)
_TABLE_HEADER_BYTES = 24
_VOLUME = struct.Struct("<4xIIIQ")  # media type and padding, chunks, sectors per chunk, bytes per sector, sectors
_MAX_SECTIONS = 1_000_000
#: Inflated chunks kept (The Sleuth Kit reads small pieces of one chunk many times).
_CACHED_CHUNKS = 64
_COMPRESSED = 0x80000000


@dataclass(frozen=True)
class EwfSection:
    """One section of a segment file: its type (``volume``, ``table``, ``done``...),
    where its descriptor starts, its size, and whether the chain of sections
    goes on from it (its next offset lies forward, within the file)."""

    kind: str
    offset: int
    size: int
    following: int
    continues: bool


def ewf_sections(stream: IO[bytes]) -> Iterator[EwfSection]:
    """The sections of an EWF version 1 segment, in the order their chain
    gives, until a descriptor cannot be read whole or the chain does not go
    on (a cut or damaged segment ends there). After each section is yielded,
    ``stream`` is just past its descriptor, where its data starts."""
    size = stream.seek(0, os.SEEK_END)
    offset = 13
    for _ in range(_MAX_SECTIONS):
        stream.seek(offset)
        descriptor = stream.read(_SECTION_BYTES)
        if len(descriptor) < _SECTION_BYTES:
            return
        kind, following, section_size = _SECTION.unpack_from(descriptor)
        continues = offset < following <= size
        yield EwfSection(kind.rstrip(b"\0").decode("ascii", "replace"), offset, section_size, following, continues)
        if not continues:
            return
        offset = following


@dataclass
class EwfChunks:
    """Where each chunk of the media is: its segment file, offset and stored
    length, and whether it is compressed (arrays indexed by chunk number)."""

    files: list[IO[bytes]]
    chunk_size: int
    media_size: int
    segment: np.ndarray
    offset: np.ndarray
    length: np.ndarray
    compressed: np.ndarray

    @property
    def count(self) -> int:
        return len(self.offset)

    def chunk(self, number: int) -> bytes | None:
        """Chunk ``number`` inflated and checked; ``None`` when it is not mapped or fails its check."""
        if number >= self.count:
            return None
        handle = self.files[int(self.segment[number])]
        length = int(self.length[number])
        handle.seek(int(self.offset[number]))
        data = handle.read(length)
        if len(data) != length:
            return None
        expected = min(self.chunk_size, self.media_size - number * self.chunk_size)
        if self.compressed[number]:
            try:
                content = zlib.decompress(data)
            except zlib.error:
                return None
        else:
            content, stored = data[:-4], data[-4:]
            if zlib.adler32(content) != int.from_bytes(stored, "little"):
                return None
        return content if len(content) == expected else None


def read_chunk_tables(files: list[IO[bytes]]) -> EwfChunks | None:
    """The chunks of the EWF version 1 segments ``files`` (in order), or ``None``
    when their layout is not one this module reads (libewf then reads it all)."""
    geometry: tuple[int, int] | None = None
    parts: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
    for index, handle in enumerate(files):
        handle.seek(0)
        if handle.read(len(EVF1_SIGNATURE)) != EVF1_SIGNATURE:
            return None
        sectors = None
        # A cut segment ends the chain early: the chunks mapped so far are read; libewf reports the rest.
        for section in ewf_sections(handle):
            if section.kind in ("volume", "disk"):
                _, per_chunk, sector_bytes, sector_count = _VOLUME.unpack(handle.read(_VOLUME.size))
                geometry = (per_chunk * sector_bytes, sector_count * sector_bytes)
            elif section.kind == "sectors":
                sectors = (section.offset + _SECTION_BYTES, section.offset + section.size)
            elif section.kind == "table":
                table = _table(handle, sectors)
                if table is None:
                    return None
                parts.append((index, *table))
            elif section.kind in ("done", "next"):
                break
    if geometry is None or not parts or geometry[0] <= 0:
        return None
    chunk_size, media_size = geometry
    offsets = np.concatenate([part[1] for part in parts])
    return EwfChunks(
        files,
        chunk_size,
        media_size,
        np.concatenate([np.full(len(part[1]), part[0], dtype=np.int32) for part in parts]),
        offsets,
        np.concatenate([part[2] for part in parts]),
        np.concatenate([part[3] for part in parts]),
    )


def _table(handle: IO[bytes], sectors: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """One table's chunks (offsets, stored lengths, compressed flags), which lie in the ``sectors`` section before it."""
    if sectors is None:
        return None  # EnCase 1-5 keep the chunks in the table section itself
    header = handle.read(_TABLE_HEADER_BYTES)
    if len(header) < _TABLE_HEADER_BYTES:
        return None
    entries, base = _TABLE_HEADER.unpack_from(header)
    raw = handle.read(entries * 4)
    if len(raw) != entries * 4:
        return None
    values = np.frombuffer(raw, dtype="<u4").astype(np.int64)
    offsets = (values & ~_COMPRESSED) + base
    ends = np.append(offsets[1:], sectors[1])
    lengths = ends - offsets
    if entries == 0 or (lengths <= 4).any() or offsets[0] < sectors[0] or ends[-1] > sectors[1]:
        return None
    return offsets, lengths, (values & _COMPRESSED) != 0


@dataclass
class EwfMedia:
    """An E01's media: read through ``chunks`` where they are mapped and
    check out, through libewf everywhere else."""

    libewf: LibyalMedia
    chunks: EwfChunks | None
    _cache: OrderedDict[int, bytes] = field(default_factory=OrderedDict)

    @property
    def size(self) -> int:
        return self.libewf.size

    def read_at(self, offset: int, length: int) -> bytes:
        length = max(0, min(length, self.size - offset))
        if self.chunks is None:
            return self.libewf.read_at(offset, length)
        pieces = []
        while length > 0:
            number, within = divmod(offset, self.chunks.chunk_size)
            content = self._chunk(number)
            if content is None:
                pieces.append(self.libewf.read_at(offset, length))
                break
            piece = content[within : within + length]
            pieces.append(piece)
            offset += len(piece)
            length -= len(piece)
        return b"".join(pieces)

    def _chunk(self, number: int) -> bytes | None:
        content = self._cache.get(number)
        if content is not None:
            self._cache.move_to_end(number)
            return content
        assert self.chunks is not None
        content = self.chunks.chunk(number)
        if content is not None:
            self._cache[number] = content
            if len(self._cache) > _CACHED_CHUNKS:
                self._cache.popitem(last=False)
        return content
