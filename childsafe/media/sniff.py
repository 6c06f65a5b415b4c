"""Content type from a file's first bytes (magic numbers), never its name.

Written by hand rather than taken from a library: the table is short, we need
exact control over which types we hand to a decoder (a wrong guess would feed
hostile bytes to the wrong parser), and ISO-BMFF brands (HEIC, AVIF, MP4) need
a look inside the ``ftyp`` box that general libraries get wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["MediaKind", "SniffedType", "sniff_type", "SNIFF_BYTES", "IMAGE_EXTENSIONS", "name_claims_image"]

MediaKind = Literal["image", "video", "other"]

#: How many leading bytes ``sniff_type`` needs to see.
SNIFF_BYTES = 512


@dataclass(frozen=True)
class SniffedType:
    """What the bytes say a file is."""

    kind: MediaKind
    mime: str


#: File-name endings that claim to be an image; a file so named whose bytes
#: are not an image is worth an analyst's attention, and is reported.
IMAGE_EXTENSIONS = frozenset(".jpg .jpeg .jpe .jfif .png .gif .bmp .dib .tif .tiff .webp .heic .heif .avif".split())


def name_claims_image(name: str) -> bool:
    """Whether ``name`` ends like an image file (case-insensitive)."""
    dot = name.rfind(".")
    return dot >= 0 and name[dot:].lower() in IMAGE_EXTENSIONS


# (offset, magic, kind, mime), tried in order.
_MAGIC: list[tuple[int, bytes, MediaKind, str]] = [
    (0, b"\xff\xd8\xff", "image", "image/jpeg"),
    (0, b"\x89PNG\r\n\x1a\n", "image", "image/png"),
    (0, b"GIF87a", "image", "image/gif"),
    (0, b"GIF89a", "image", "image/gif"),
    (0, b"BM", "image", "image/bmp"),
    (0, b"II*\x00", "image", "image/tiff"),
    (0, b"MM\x00*", "image", "image/tiff"),
    (0, b"\x1a\x45\xdf\xa3", "video", "video/x-matroska"),
    (0, b"FLV\x01", "video", "video/x-flv"),
    (0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "video", "video/x-ms-asf"),
    (0, b"\x00\x00\x01\xba", "video", "video/mpeg"),
    (0, b"\x00\x00\x01\xb3", "video", "video/mpeg"),
    (0, b"PK\x03\x04", "other", "application/zip"),
    (0, b"PK\x05\x06", "other", "application/zip"),
    (0, b"\x1f\x8b", "other", "application/gzip"),
    (0, b"BZh", "other", "application/x-bzip2"),
    (0, b"\xfd7zXZ\x00", "other", "application/x-xz"),
    (0, b"7z\xbc\xaf\x27\x1c", "other", "application/x-7z-compressed"),
    (0, b"Rar!\x1a\x07", "other", "application/vnd.rar"),
    (257, b"ustar", "other", "application/x-tar"),
    (0, b"070707", "other", "application/x-cpio"),  # odc (portable ASCII)
    (0, b"070701", "other", "application/x-cpio"),  # newc
    (0, b"070702", "other", "application/x-cpio"),  # newc with checksums
    (0, b"%PDF-", "other", "application/pdf"),
    (0, b"SQLite format 3\x00", "other", "application/vnd.sqlite3"),
    (0, b"CMMM", "other", "application/x-windows-thumbcache"),  # thumbcache_*.db (a container)
    (0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "other", "application/x-ole-storage"),  # Thumbs.db, Office 97
]

# ISO base media file format brands (the ``ftyp`` box).
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}
_QUICKTIME_BRANDS = {b"qt  "}
_3GP_PREFIX = b"3g"


def _sniff_ftyp(head: bytes) -> SniffedType | None:
    if len(head) < 12 or head[4:8] != b"ftyp":
        return None
    box_size = int.from_bytes(head[0:4], "big")
    major = head[8:12]
    # Compatible brands follow the minor version; a HEIF image may name
    # ``mif1`` as major brand and ``heic`` only among the compatible ones.
    end = min(len(head), box_size if box_size >= 16 else 16)
    brands = {major} | {head[i : i + 4] for i in range(16, end - 3, 4)}
    if brands & _AVIF_BRANDS:
        return SniffedType("image", "image/avif")
    if brands & _HEIF_BRANDS:
        return SniffedType("image", "image/heic")
    if major in _QUICKTIME_BRANDS:
        return SniffedType("video", "video/quicktime")
    if major.startswith(_3GP_PREFIX):
        return SniffedType("video", "video/3gpp")
    return SniffedType("video", "video/mp4")


def _sniff_riff(head: bytes) -> SniffedType | None:
    if len(head) < 12 or head[:4] != b"RIFF":
        return None
    form = head[8:12]
    if form == b"WEBP":
        return SniffedType("image", "image/webp")
    if form == b"AVI ":
        return SniffedType("video", "video/x-msvideo")
    if form == b"WAVE":
        return SniffedType("other", "audio/wav")
    return SniffedType("other", "application/octet-stream")


_CPIO_FILE_TYPES = {0o010000, 0o020000, 0o040000, 0o060000, 0o100000, 0o120000, 0o140000}


def _sniff_binary_cpio(head: bytes) -> SniffedType | None:
    """Old binary cpio: its magic is two bytes (0o070707 in either byte
    order), too weak alone, so the rest of the 26-byte header must agree: a
    file type in the mode, and a name whose stated length ends at a NUL."""
    if len(head) < 28:
        return None
    order: Literal["little", "big"]
    if head[:2] == b"\xc7\x71":
        order = "little"
    elif head[:2] == b"\x71\xc7":
        order = "big"
    else:
        return None
    mode = int.from_bytes(head[6:8], order)
    name_size = int.from_bytes(head[20:22], order)
    if mode & 0o170000 not in _CPIO_FILE_TYPES or not 2 <= name_size <= len(head) - 26:
        return None
    if head[26 + name_size - 1] != 0 or 0 in head[26 : 26 + name_size - 1]:
        return None
    return SniffedType("other", "application/x-cpio")


def _looks_like_text(head: bytes) -> bool:
    if not head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the sample is still text.
        if exc.start < len(head) - 3:
            return False
    return all(b >= 0x20 or b in b"\t\n\r\f" for b in head)


def sniff_type(head: bytes) -> SniffedType:
    """The kind and MIME type of content whose first bytes are ``head``.

    ``head`` should hold at least ``SNIFF_BYTES`` bytes (fewer for a short file).
    """
    for offset, magic, kind, mime in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return SniffedType(kind, mime)
    for special in (_sniff_ftyp(head), _sniff_riff(head), _sniff_binary_cpio(head)):
        if special is not None:
            return special
    if len(head) >= 189 and head[0] == 0x47 and head[188] == 0x47:
        return SniffedType("video", "video/mp2t")
    if not head:
        return SniffedType("other", "application/x-empty")
    if _looks_like_text(head):
        return SniffedType("other", "text/plain")
    return SniffedType("other", "application/octet-stream")
