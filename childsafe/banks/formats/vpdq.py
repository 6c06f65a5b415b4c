"""Meta's vPDQ file: one video's frame hashes, a ``frame,quality,pdqhex,timestamp``
line each (as ``childsafe hash --vpdq-out`` and Meta's ``vpdq`` tools write them).

The file is one entry: its ``vpdq`` signal (the digest of the frames), its
frames, and as its source id the file's name up to the first dot
(``V004.vpdq.txt`` -> ``V004``), as hotlines name such files after the
video's id. Many videos travel as CSV (a ``vpdq`` column naming each file)
or VICS (``MediaFiles``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, TextIO

from childsafe.banks.formats.base import ExportEntry, ImportOptions, ParsedEntry, checked_category, text_lines
from childsafe.banks.formats.registry import register
from childsafe.errors import InputFormatError, UsageError
from childsafe.signals.vpdq import FrameHashes, VpdqFeature, format_vpdq, parse_vpdq_line

__all__ = ["VPDQ_FILE", "MAX_VIDEO_FRAMES", "MAX_VIDEO_FILE_BYTES", "read_vpdq_frames"]

#: Frame hashes one file may hold: a day of video at 10 hashes a second.
#: More is refused (and bounds memory when a wrong file is imported).
MAX_VIDEO_FRAMES = 864_000
#: The most bytes such a file can take (a line is at most about 90 bytes).
MAX_VIDEO_FILE_BYTES = MAX_VIDEO_FRAMES * 100

_LINE = re.compile(rb"\s*\d+\s*,\s*\d+\s*,\s*[0-9a-fA-F]{64}\s*,\s*\d+(\.\d*)?\s*")


def read_vpdq_frames(stream: BinaryIO) -> list[VpdqFeature]:
    """The frames of a vPDQ file; ``InputFormatError`` naming the bad line,
    or saying the file is empty or over ``MAX_VIDEO_FRAMES``."""
    features: list[VpdqFeature] = []
    for number, line in text_lines(stream):
        if not line.strip():
            continue
        if len(features) >= MAX_VIDEO_FRAMES:
            raise InputFormatError(f"line {number}: over {MAX_VIDEO_FRAMES:,} frame hashes (is this one video?)")
        try:
            features.append(parse_vpdq_line(line))
        except ValueError as exc:
            raise InputFormatError(f"line {number}: {exc}") from None
    if not features:
        raise InputFormatError("no frame hashes: a vPDQ file has a frame,quality,pdqhex,timestamp line a frame")
    return features


@dataclass(frozen=True)
class VpdqFileFormat:
    """The ``vpdq`` bank format."""

    name: str = "vpdq"

    def looks_like(self, head: bytes) -> bool:
        first = head.lstrip(b"\xef\xbb\xbf \t\r\n").split(b"\n", 1)[0].rstrip(b"\r")
        return bool(_LINE.fullmatch(first))

    def read(self, stream: BinaryIO, options: ImportOptions) -> Iterator[ParsedEntry]:
        video = FrameHashes.of(read_vpdq_frames(stream))
        source_id = (options.file_name or "").split(".", 1)[0] or None
        category = checked_category(options.scheme, options.category, "the file")
        yield ParsedEntry([], "the file", category, source_id, None, video)

    def write(self, entries: Iterable[ExportEntry], out: TextIO, bank_name: str, scheme: str) -> None:
        videos = [entry for entry in entries if entry.video is not None]
        if len(videos) != 1:
            raise UsageError(
                f"a vPDQ file holds one video and bank {bank_name!r} has {len(videos)}: export to csv or vics"
            )
        assert videos[0].video is not None
        out.write(format_vpdq(videos[0].video.features()))


VPDQ_FILE = register(VpdqFileFormat())
