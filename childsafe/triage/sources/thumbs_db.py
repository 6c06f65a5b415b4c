"""``Thumbs.db`` (Windows 98 to XP, and where later Windows still writes
it on network folders): an OLE compound file of one small picture per
stream, with a ``Catalog`` stream naming the file each was made from.
Each thumbnail is a member, named by that file when the catalogue knows it,
so a picture deleted long ago that survives as a thumbnail is matched like
any other.

The compound file is read by ``olefile``; the catalogue and each stream's
short header are read here, from the layout documented by Vinetto and
libyal. Other OLE files (Word, Excel, MSI) have no ``Catalog`` stream and
give no members.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

import olefile

from childsafe.media.budgets import ScanBudgets, over_budget
from childsafe.triage.sources.base import ContainerError, Member
from childsafe.triage.sources.registry import register_container

__all__ = ["THUMBS_DB", "OLE_MIME"]

OLE_MIME = "application/x-ole-storage"

#: A thumbnail stream's own header is at most this long (12 bytes on XP, 24 on later writers).
_MAX_STREAM_HEADER = 64
_PICTURE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM")
_OLE_ERRORS = (OSError, ValueError, IndexError, struct.error, UnicodeDecodeError)


def _catalogue(data: bytes) -> dict[int, str]:
    """The original file names by thumbnail number; what cannot be read is left out."""
    names: dict[int, str] = {}
    if len(data) < 16:
        return names
    (header_size,) = struct.unpack_from("<H", data, 0)
    at = header_size if 8 <= header_size <= 64 else 16
    while at + 16 <= len(data):
        length, number = struct.unpack_from("<II", data, at)
        if length < 16 or at + length > len(data):
            break
        name = data[at + 16 : at + length].decode("utf-16-le", "replace").split("\0", 1)[0]
        names[number] = name
        at += length
    return names


def _picture_start(data: bytes) -> int:
    """Where the picture starts in a thumbnail stream: after the header its
    first word states, or at the first picture signature near the start."""
    stated = int.from_bytes(data[:4], "little") if len(data) >= 4 else 0
    if 8 <= stated <= _MAX_STREAM_HEADER and data[stated:].startswith(_PICTURE_SIGNATURES):
        return stated
    for signature in _PICTURE_SIGNATURES:
        found = data.find(signature, 0, _MAX_STREAM_HEADER + len(signature))
        if found >= 0:
            return found
    return 0


@dataclass(frozen=True)
class ThumbsDbContainer:
    """The ``thumbs-db`` container."""

    name: str = "thumbs-db"
    needs_seek: bool = True

    def opens(self, mime: str, head: bytes) -> bool:
        return mime == OLE_MIME

    def members(self, stream: IO[bytes], name: str, mime: str, budgets: ScanBudgets) -> Iterator[Member]:
        try:
            ole = olefile.OleFileIO(stream)
        except _OLE_ERRORS as exc:
            raise ContainerError(f"damaged OLE compound file: {exc}") from exc
        try:
            if not ole.exists("Catalog"):
                return  # a Word, Excel or installer file: no thumbnails
            names = _catalogue(_read(ole, "Catalog", budgets.max_member_bytes))
            numbered = (path[0] for path in ole.listdir() if len(path) == 1 and path[0].isdecimal())
            streams = sorted(numbered, key=lambda stream_name: int(stream_name[::-1]))
            for stream_name in streams:
                yield _member(ole, stream_name, names.get(int(stream_name[::-1])), budgets)
        except _OLE_ERRORS as exc:
            raise ContainerError(f"damaged Thumbs.db: {exc}") from exc
        finally:
            ole.close()


def _read(ole: olefile.OleFileIO, stream_name: str, limit: int) -> bytes:
    with ole.openstream(stream_name) as opened:
        return bytes(opened.read(limit))


def _member(ole: olefile.OleFileIO, stream_name: str, original: str | None, budgets: ScanBudgets) -> Member:
    # The stream's number is its name read backwards ("21" is thumbnail 12); the report shows both.
    label = f"{stream_name} {original}" if original else stream_name
    size = int(ole.get_size(stream_name))
    if size > budgets.max_member_bytes:
        error = over_budget("max_member_bytes", budgets.max_member_bytes, "thumbnail larger")
        return Member(label, size, None, None, error=error)
    data = _read(ole, stream_name, size)  # read now: a thumbnail is kilobytes, within the member budget
    picture = data[_picture_start(data) :]
    return Member(label, len(picture), None, lambda: io.BytesIO(picture))


THUMBS_DB = register_container(ThumbsDbContainer())
