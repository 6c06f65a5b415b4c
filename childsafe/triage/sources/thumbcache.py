"""Windows Explorer thumbnail caches (``thumbcache_*.db``, Windows Vista to
11): each cached thumbnail (JPEG, PNG or BMP) is a member, named by its
cache entry's identifier, so a picture deleted long ago that survives as a
thumbnail is matched like any other.

Written by hand from the published layout (Joachim Metz's libwtcdb
documentation): the format is a header and a chain of ``CMMM`` entries, and
the one maintained Python reader (dissect.thumbcache) is AGPL-licensed.
Entries are walked by their stated sizes; where an entry is damaged, the
walk looks for the next ``CMMM`` signature (as thumbnail viewers do) rather
than stop, and says so.

Layouts by format version (the second word of the file):
Vista (20): entry header 56 bytes, with a 4-character extension;
7 (21): 48 bytes; 8 to 11 (26 and later): 56 bytes, with width and height.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from childsafe.media.budgets import ScanBudgets, over_budget
from childsafe.triage.sources.base import ContainerError, Member
from childsafe.triage.sources.registry import register_container

__all__ = ["THUMBCACHE", "THUMBCACHE_MIME"]

THUMBCACHE_MIME = "application/x-windows-thumbcache"

_SIGNATURE = b"CMMM"
_VISTA, _SEVEN = 20, 21
#: How far past a damaged entry the next signature is looked for.
_RESYNC_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class _EntryHeader:
    size: int
    name_bytes: int
    padding: int
    data_bytes: int
    header_bytes: int


def _entry_header(raw: bytes, version: int) -> _EntryHeader | None:
    """The sizes an entry states, or ``None`` when its header is not one."""
    if raw[:4] != _SIGNATURE:
        return None
    if version == _VISTA:
        size, name_bytes, padding, data_bytes = struct.unpack_from("<I8x8xIII", raw, 4)
        header_bytes = 56
    elif version == _SEVEN:
        size, name_bytes, padding, data_bytes = struct.unpack_from("<I8xIII", raw, 4)
        header_bytes = 48
    else:
        size, name_bytes, padding, data_bytes = struct.unpack_from("<I8xIII", raw, 4)
        header_bytes = 56
    if size < header_bytes + name_bytes + padding + data_bytes or name_bytes % 2:
        return None
    return _EntryHeader(size, name_bytes, padding, data_bytes, header_bytes)


@dataclass(frozen=True)
class ThumbcacheContainer:
    """The ``thumbcache`` container."""

    name: str = "thumbcache"
    needs_seek: bool = True

    def opens(self, mime: str, head: bytes) -> bool:
        return mime == THUMBCACHE_MIME

    def members(self, stream: IO[bytes], name: str, mime: str, budgets: ScanBudgets) -> Iterator[Member]:
        header = stream.read(24)
        if len(header) < 24:
            raise ContainerError("damaged thumbnail cache: its header is cut short")
        version = struct.unpack_from("<I", header, 4)[0]
        # Vista and 7: first entry, then free space and a count; 8 and later: an unknown word first.
        first = struct.unpack_from("<I", header, 12 if version in (_VISTA, _SEVEN) else 16)[0]
        total = stream.seek(0, io.SEEK_END)
        at, damaged = first, 0
        while at + 48 <= total:
            stream.seek(at)
            raw = stream.read(56)
            entry = _entry_header(raw, version)
            if entry is None:
                damaged += 1
                found = _next_signature(stream, at + 1, total)
                if found is None:
                    break
                at = found
                continue
            if entry.data_bytes:
                yield _member(stream, at, entry, budgets, total)
            at += entry.size
        if damaged:
            raise ContainerError(f"damaged thumbnail cache: entries that could not be read: {damaged}; the others were")


def _member(stream: IO[bytes], at: int, entry: _EntryHeader, budgets: ScanBudgets, total: int) -> Member:
    stream.seek(at + entry.header_bytes)
    name = stream.read(min(entry.name_bytes, budgets.max_name_bytes)).decode("utf-16-le", "replace")
    data_at = at + entry.header_bytes + entry.name_bytes + entry.padding
    if entry.data_bytes > budgets.max_member_bytes:
        error = over_budget("max_member_bytes", budgets.max_member_bytes, "thumbnail larger")
        return Member(name, entry.data_bytes, None, None, error=error)
    if data_at + entry.data_bytes > total:
        return Member(name, entry.data_bytes, None, None, error="damaged thumbnail: cut short by the end of the cache")

    def open_thumbnail() -> IO[bytes]:
        stream.seek(data_at)
        return io.BytesIO(stream.read(entry.data_bytes))  # a thumbnail: kilobytes, within the member budget

    return Member(name or f"entry at {at}", entry.data_bytes, None, open_thumbnail)


def _next_signature(stream: IO[bytes], start: int, total: int) -> int | None:
    stream.seek(start)
    window = stream.read(min(_RESYNC_BYTES, total - start))
    found = window.find(_SIGNATURE)
    return None if found < 0 else start + found


THUMBCACHE = register_container(ThumbcacheContainer())
