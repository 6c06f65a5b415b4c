"""EnCase images (E01, and Ex01 where libewf reads it), through libewf's
Python binding (``pyewf``); an E01's chunks are read through zlib where they
can be (``ewf_chunks.py``: ten times and more as fast).

Recognised by the EWF signature of their first segment (whatever the file
is called); later segments (``disk.E02``...) are files of the evidence like
any other, hashed but not opened: their first segment opens them, when it is
on disk beside them (``pyewf.glob`` names them from it).

The acquisition hashes an image stores (MD5, SHA-1) are read into the
manifest; with ``scan --verify-images`` the whole media is read again and
its digests compared with them. An image whose last segment is missing or
cut short (its last section is ``next``, or it has no ``done`` section) says
so on its own item, and every file in the part that can be read is still
read; files in the missing part are items with an error.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from childsafe.triage.sources.base import ContainerError
from childsafe.triage.sources.disk_image import (
    DiskImageContainer,
    LibyalMedia,
    OpenedImage,
    digest_media,
    load_binding,
    open_segments,
    short_reason,
)
from childsafe.triage.sources.ewf_chunks import EVF1_SIGNATURE, EwfMedia, ewf_sections, read_chunk_tables
from childsafe.triage.sources.registry import register_container

__all__ = ["EWF", "segment_number", "last_section"]

_EVF2 = b"EVF2\x0d\x0a\x81\x00"
#: What the acquisition headers are called in the manifest (libewf's names).
_HEADERS = (
    "case_number",
    "description",
    "evidence_number",
    "examiner_name",
    "notes",
    "acquiry_date",
    "acquiry_software_version",
)
#: Stored hash names (libewf's) and hashlib's.
_HASHES = {"MD5": "md5", "SHA1": "sha1", "SHA256": "sha256"}


def segment_number(head: bytes) -> int | None:
    """The segment number an EWF segment file's header gives, or ``None`` if not EWF."""
    if head.startswith(EVF1_SIGNATURE) and len(head) >= 13:
        return int.from_bytes(head[9:11], "little")
    if head.startswith(_EVF2) and len(head) >= 16:
        return int.from_bytes(head[12:16], "little")
    return None


def last_section(stream: IO[bytes]) -> tuple[str, int]:
    """How an EWF (version 1) segment file ends: (``done``, offset) when it is
    an image's last segment, (``next``, offset) when more follow, (``cut``,
    offset) when it ends before either (a truncated copy)."""
    cut = 13
    for section in ewf_sections(stream):
        if section.kind in ("done", "next"):
            return section.kind, section.offset
        cut = section.following if section.continues else section.offset
    return "cut", cut


def _segment_problem(stream: IO[bytes], name: str, number: int) -> str | None:
    """What is wrong with the last segment read, if anything."""
    try:
        end, offset = last_section(stream)
    except (OSError, ValueError) as exc:
        return f"segment {name} cannot be read to its end: {exc}"
    if end == "next":
        return f"segment {number + 1} of the image is missing: files in the media after segment {number} cannot be read"
    if end == "cut":
        return f"segment {name} is cut short at byte {offset:,} (no 'done' section): files after it cannot be read"
    return None


def _verify(media: EwfMedia, stored: dict[str, str], complete: bool, tick: Callable[[], None]) -> dict[str, Any]:
    """The media's digests compared with the stored acquisition hashes
    (which are in the last segment: an image without it cannot be verified)."""
    if not complete:
        return {"result": "unreadable", "detail": "the image cannot be verified: it is incomplete"}
    if not stored:
        return {"result": "no stored hash", "detail": "the image cannot be verified: it stores no acquisition hash"}
    try:
        computed = digest_media(media, sorted(stored), tick)
    except OSError as exc:
        reason = short_reason(exc)
        return {"result": "unreadable", "detail": f"the image cannot be verified: {reason}"}
    differing = [name for name in sorted(stored) if computed[name] != stored[name]]
    if differing:
        shown = ", ".join(f"{name.upper()} stored {stored[name]}, read {computed[name]}" for name in differing)
        return {"result": "mismatch", "computed": computed, "detail": f"acquisition hash does not match: {shown}"}
    return {"result": "verified", "computed": computed, "detail": "the media matches its stored acquisition hashes"}


@dataclass(frozen=True)
class EwfFormat:
    """The ``ewf`` image format."""

    name: str = "ewf"

    def recognises(self, mime: str, head: bytes) -> bool:
        return segment_number(head) == 1

    def open(self, stream: IO[bytes], path: str | None) -> OpenedImage:
        pyewf = load_binding("pyewf", "libewf-python", "E01 image")
        later = _later_segments(pyewf, path)
        opened, problems = open_segments(later)
        files = [stream, *opened]
        names = [
            os.path.basename(path) if path else "(this file)",
            *(os.path.basename(p) for p in later[: len(opened)]),
        ]
        files[0].seek(0)
        version_1 = files[0].read(len(EVF1_SIGNATURE)) == EVF1_SIGNATURE
        if version_1:  # EWF version 2 ends differently: not checked
            problem = _segment_problem(files[-1], names[-1], len(files))
            problems.extend([problem] if problem else [])
        chunks = read_chunk_tables(files) if version_1 else None
        files[0].seek(0)
        ewf = pyewf.handle()
        try:
            ewf.open_file_objects(files)
            size = int(ewf.get_media_size())
            if chunks is not None and (chunks.chunk_size, chunks.media_size) != (int(ewf.get_chunk_size()), size):
                chunks = None  # not the layout this module reads: libewf reads it all
            media = EwfMedia(LibyalMedia(ewf, size), chunks)
            stored = {_HASHES[k]: str(v).lower() for k, v in (ewf.get_hash_values() or {}).items() if k in _HASHES}
            headers = {k: v for k, v in (ewf.get_header_values() or {}).items() if k in _HEADERS}
        except OSError as exc:
            for handle in opened:
                handle.close()
            raise ContainerError(f"E01 image cannot be opened: {short_reason(exc)}") from exc
        found = {
            "format": "ewf",
            "media_size": media.size,
            "segments": names if path else [],
            "stored_hashes": stored,
            "acquisition": headers,
        }

        def close() -> None:
            ewf.close()
            for handle in opened:
                handle.close()

        complete = not problems
        return OpenedImage(media, found, close, problems, lambda tick: _verify(media, stored, complete, tick))


def _later_segments(pyewf: Any, path: str | None) -> list[str]:
    """The image's other segment files beside ``path`` (none when it is not on disk, or not named like one)."""
    if path is None:
        return []
    try:
        names = [str(name) for name in pyewf.glob(path)]
    except (OSError, TypeError):  # not named like a first segment (disk.E01, disk.Ex01, disk.s01)
        return []
    return [name for name in names if os.path.abspath(name) != os.path.abspath(path)]


EWF = register_container(DiskImageContainer("ewf", EwfFormat()))
