"""Raw disk images (``dd``), single or split (``disk.001``, ``disk.002``...).

A raw image has no header of its own: it is recognised by what its first
bytes hold, a partition table (MBR, GPT), a file system (NTFS, FAT, exFAT,
ext, HFS+, APFS) or an encrypted volume (``disk_signatures.py``), and only
where the first 512 bytes named no other type (a zip is never taken for a
disk). A fixed-size VHD is a raw image with a 512-byte footer
(``conectix``): it is read as one, without the footer.

Split images: when the file on disk is named like a first segment
(``NAME.001``, or ``NAME.000``), the segments numbered after it beside it,
with as many digits, are read after it as one disk, until a number is
missing. The later segments are also files of the evidence: each is hashed
as a file of its own (their first bytes are rarely a disk's, so they are not
opened as images). Inside an archive or another image, a first segment is
read alone.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from typing import IO

from childsafe.triage.sources.disk_image import (
    ConcatenatedMedia,
    DiskImageContainer,
    OpenedImage,
    StreamMedia,
    open_segments,
)
from childsafe.triage.sources.disk_signatures import looks_like_disk
from childsafe.triage.sources.registry import register_container

__all__ = ["RAW_IMAGE", "split_segments"]

_FIRST_SEGMENT = re.compile(r"^(?P<stem>.+)\.(?P<number>[0-9]{3,})$")
_MAX_SEGMENTS = 100_000
_VHD_FOOTER = b"conectix"


def split_segments(path: str) -> list[str]:
    """The segments that follow ``path`` when it is the first of a split image
    (``disk.001`` -> ``disk.002``, ``disk.003``... while they exist)."""
    folder, name = os.path.split(path)
    match = _FIRST_SEGMENT.match(name)
    if match is None or int(match["number"]) > 1:
        return []
    width, number = len(match["number"]), int(match["number"])
    segments = []
    for following in range(number + 1, number + _MAX_SEGMENTS):
        candidate = os.path.join(folder, f"{match['stem']}.{following:0{width}d}")
        if not os.path.lexists(candidate):
            break
        segments.append(candidate)
    return segments


def _fixed_vhd(stream: IO[bytes], size: int) -> bool:
    if size < 1024 or size % 512:
        return False
    stream.seek(size - 512)
    return stream.read(len(_VHD_FOOTER)) == _VHD_FOOTER


@dataclass(frozen=True)
class RawImageFormat:
    """The ``raw`` image format."""

    name: str = "raw"

    def recognises(self, mime: str, head: bytes) -> bool:
        return mime == "application/octet-stream" and looks_like_disk(head)

    def open(self, stream: IO[bytes], path: str | None) -> OpenedImage:
        size = stream.seek(0, io.SEEK_END)
        kind = "raw"
        if _fixed_vhd(stream, size):
            kind, size = "vhd (fixed)", size - 512
        parts = [StreamMedia(stream, size)]
        later = split_segments(path) if path and kind == "raw" else []
        opened, problems = open_segments(later)
        parts += [StreamMedia(handle, os.fstat(handle.fileno()).st_size) for handle in opened]
        segments = [os.path.basename(p) for p in ([path] if path else []) + later[: len(opened)]]
        media = parts[0] if len(parts) == 1 else ConcatenatedMedia(parts)
        found = {"format": "split raw" if len(parts) > 1 else kind, "media_size": media.size, "segments": segments}

        def close() -> None:
            for handle in opened:
                handle.close()

        return OpenedImage(media, found, close, problems)


RAW_IMAGE = register_container(DiskImageContainer("raw-image", RawImageFormat()))
