"""Hash files: every digest in one streaming pass, and PDQ from a small decode."""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from typing import IO, Any

import numpy as np
from PIL import Image

from childsafe.errors import MediaError, ResourceLimitError
from childsafe.media.decode import decode_small_rgb
from childsafe.media.limits import MediaLimits, QueryStep, QuerySteps
from childsafe.media.sniff import SNIFF_BYTES, MediaKind, name_claims_image, sniff_type
from childsafe.media.walk import FoundFile, walk_paths
from childsafe.parallel import ordered_map
from childsafe.signals.derived import bank_variant_hashes, derived_pdq_hashes
from childsafe.signals.full_resolution import FullSource, bank_full_variant, query_full_source
from childsafe.signals.keypoints import BANK_KEYPOINTS, MIN_KEYPOINTS, QUERY_KEYPOINTS, Keypoints, image_keypoints
from childsafe.signals.pdq import PDQ_MIN_QUALITY, PdqHash, pdq_dihedral_hashes, pdq_hash
from childsafe.signals.registry import get_signal, signal_names
from childsafe.signals.vpdq import VideoHash, vpdq_hash

__all__ = [
    "FileHashes",
    "QueryPicture",
    "hash_stream",
    "hash_file",
    "hash_found_file",
    "hash_paths",
    "unreadable",
    "found_unreadable",
]

_CHUNK = 1024 * 1024
#: FileHashes fields that matching and ``bank add`` use, not part of the ``hash`` output.
_NOT_OUTPUT = ("pdq_variants", "picture", "keypoints", "unfinished", "video")


@dataclass(frozen=True)
class QueryPicture:
    """The small decode of a file being matched, and the query-side
    mechanisms switched on (``MediaLimits.query_variants``). Its methods make
    the costlier query variants on demand (``Matcher.match_hashes`` asks for
    them only when the cheaper ones matched nothing); ``childsafe.detect``
    makes them all up front instead, away from the index."""

    image: Image.Image
    mechanisms: QuerySteps
    #: The file's bytes, kept only when a full-resolution hash may find it.
    full_source: FullSource | None = None

    def cut_hashes(self) -> dict[str, str]:
        """The PDQ hashes of its cuts (``derived.py``), by transform name."""
        return {name: h.hex for name, h in derived_pdq_hashes(self.image, self.mechanisms).items()}

    def keypoints(self, most: int = QUERY_KEYPOINTS) -> Keypoints | None:
        """Its keypoints, if that mechanism is on."""
        if QueryStep.KEYPOINTS not in self.mechanisms:
            return None
        return image_keypoints(np.asarray(self.image.convert("L")), most)

    def full_hashes(self) -> dict[str, str]:
        """Its full-resolution hash (``full_resolution.py``), if it may need one."""
        if self.full_source is None:
            return {}
        full = self.full_source.hash()
        return {"full": full.hex} if full is not None and full.quality >= PDQ_MIN_QUALITY else {}


@dataclass
class FileHashes:
    """The docs/spec.md ``hash`` object for one file.

    Digests are ``None`` only when the file could not be read at all.
    ``pdq_variants`` holds, when asked for (matching uses them), the 8
    dihedral PDQ hashes (or, for ``bank add``, the bank-side variants) by
    transform name; it is not part of the ``hash`` output. Nor are ``picture``, kept
    when matching so that the costlier query variants (cuts, keypoints) are
    made only when the cheaper ones matched nothing, ``keypoints``, the
    bank-side ones (``bank add``), and ``unfinished``: whether decoding ran
    out of time or memory (``ResourceLimitError``; the ``error`` says which),
    so that the content may still be a known picture. ``video``: a video's
    frame hashes (``signals/vpdq.py``), summarised in the output as ``vpdq``
    (frames hashed and a digest; only videos have the field), and its
    contact sheet when asked for (``video.sheet``, never in the output).
    """

    path: str
    size: int
    media_type: MediaKind
    mime: str
    md5: str | None
    sha1: str | None
    sha256: str | None
    pdq: str | None
    pdq_quality: int | None
    error: str | None
    pdq_variants: dict[str, str] | None = None
    picture: QueryPicture | None = None
    keypoints: Keypoints | None = None
    unfinished: bool = False
    video: VideoHash | None = None

    def to_dict(self) -> dict[str, Any]:
        """The object ``childsafe hash --json`` prints (docs/spec.md field order)."""
        shown = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _NOT_OUTPUT}
        if self.media_type == "video":
            shown["vpdq"] = self.vpdq_summary()
        return shown

    def vpdq_summary(self) -> dict[str, object] | None:
        """A video's ``vpdq`` object (frames hashed, digest), ``None`` when no frame was hashed."""
        return None if self.video is None or not self.video.features else self.video.summary()


def _digest_names() -> list[str]:
    return [name for name in signal_names() if get_signal(name).kind == "digest"]


def _read_digesting(
    stream: IO[bytes], keep_limit: int, keep_videos: bool = False
) -> tuple[int, dict[str, str], bytes, bytes | None]:
    """Read ``stream`` once: every digest, the first bytes, and the whole
    content when it is an image (or, with ``keep_videos``, a video) no larger
    than ``keep_limit`` (else ``None``). Memory stays constant for anything not kept."""
    hashers = {name: get_signal(name).new_hasher() for name in _digest_names()}  # type: ignore[misc]
    head = stream.read(SNIFF_BYTES)
    kind = sniff_type(head).kind
    keep = kind == "image" or (keep_videos and kind == "video")
    kept: list[bytes] = [head]
    size = 0
    chunk = head
    while chunk:
        for hasher in hashers.values():
            hasher.update(chunk)
        size += len(chunk)
        if keep and size > keep_limit:
            keep, kept = False, []
        chunk = stream.read(_CHUNK)
        if keep and chunk:
            kept.append(chunk)
    digests = {name: hasher.hexdigest() for name, hasher in hashers.items()}
    return size, digests, head, (b"".join(kept) if keep else None)


def hash_stream(
    stream: IO[bytes],
    path: str,
    limits: MediaLimits,
    *,
    dihedral: bool = False,
    bank_variants: bool = False,
    videos: bool = False,
    sheet_tiles: int = 0,
) -> FileHashes:
    """Hash content read from ``stream`` (a file, or later an archive member).

    ``path`` is only the name to report. Problems with the content become the
    result's ``error``; ``OSError`` from the stream itself propagates. With
    ``dihedral`` (for matching), ``pdq_variants`` holds the query's variants;
    with ``bank_variants`` (for ``bank add``), the bank-side variants. With
    ``videos``, a video's vPDQ hash is made too (``video``; the stream must
    read again from its start, or, from a stream that cannot seek back, from
    its bytes kept in memory up to ``video_keep_bytes``); with ``sheet_tiles``
    above 0, also its contact sheet of that many tiles, from the same
    decoding (``video.sheet``; not part of the ``hash`` output).
    """
    keep_videos = videos and not stream.seekable()
    keep_limit = limits.video_keep_bytes if keep_videos else limits.max_decode_bytes
    size, digests, head, data = _read_digesting(stream, keep_limit, keep_videos)
    sniffed = sniff_type(head)
    result = FileHashes(
        path=path,
        size=size,
        media_type=sniffed.kind,
        mime=sniffed.mime,
        md5=digests.get("md5"),
        sha1=digests.get("sha1"),
        sha256=digests.get("sha256"),
        pdq=None,
        pdq_quality=None,
        error=None,
    )
    if size == 0:
        result.error = "empty file"
        return result
    if sniffed.kind == "video" and videos:
        return _hash_video(stream, data, result, limits, sheet_tiles)
    if sniffed.kind != "image":
        if name_claims_image(path):
            result.error = f"named like an image but the content is {sniffed.mime}"
        return result
    if data is None:
        result.error = (
            f"image of {size:,} bytes is over the {limits.max_decode_bytes:,}-byte decode limit; digests only"
        )
        return result
    try:
        image = decode_small_rgb(data, sniffed.mime, limits)
        if dihedral and QueryStep.DIHEDRAL in limits.query_variants:
            variants = pdq_dihedral_hashes(image)
            found: PdqHash = variants["none"]
        else:
            found = pdq_hash(image)
            variants = {"none": found}
        if dihedral:
            # For matching: the file's own hash turned 8 ways; its cuts and
            # keypoints are made later from the picture, only if needed.
            if found.quality < PDQ_MIN_QUALITY:
                variants = {}  # a featureless hash turned 8 ways is no better; the cuts have their own check
            result.pdq_variants = {name: h.hex for name, h in variants.items()}
            if set(limits.query_variants) - {QueryStep.DIHEDRAL}:
                full_source = query_full_source(image, found, data, sniffed.mime, limits)
                result.picture = QueryPicture(image, limits.query_variants, full_source)
        elif bank_variants and found.quality >= PDQ_MIN_QUALITY:
            made = bank_variant_hashes(image) | bank_full_variant(image, found, data, sniffed.mime, limits)
            result.pdq_variants = {name: h.hex for name, h in made.items()}
            keypoints = image_keypoints(np.asarray(image.convert("L")), BANK_KEYPOINTS)
            result.keypoints = keypoints if len(keypoints) >= MIN_KEYPOINTS else None
    except MediaError as exc:
        result.error = str(exc)
        result.unfinished = isinstance(exc, ResourceLimitError)
        return result
    result.pdq, result.pdq_quality = found.hex, found.quality
    return result


def _hash_video(
    stream: IO[bytes], data: bytes | None, result: FileHashes, limits: MediaLimits, sheet_tiles: int = 0
) -> FileHashes:
    """A video's frame hashes, read again from its start (the digests took
    the first pass), or from its bytes kept when the stream cannot seek back."""
    if stream.seekable():
        stream.seek(0)
        source: IO[bytes] = stream
    elif data is not None:
        source = io.BytesIO(data)
    else:
        result.error = (
            f"video of {result.size:,} bytes in a stream that cannot be read twice is over the"
            f" {limits.video_keep_bytes:,}-byte limit for reading it from memory; digests only"
        )
        return result
    result.video = vpdq_hash(source, limits, sheet_tiles)
    result.error = result.video.error
    return result


def _unreadable(path: str, size: int, error: str, mime: str) -> FileHashes:
    return FileHashes(path, size, "other", mime, None, None, None, None, None, error)


def unreadable(name: str, exc: OSError) -> FileHashes:
    """The ``hash`` object of a file that could not be opened or read."""
    if isinstance(exc, FileNotFoundError):
        return _unreadable(name, 0, "cannot read: no such file (moved or deleted?)", "inode/x-unreadable")
    return _unreadable(name, 0, f"cannot read: {exc.strerror or type(exc).__name__}", "inode/x-unreadable")


def found_unreadable(found: FoundFile) -> FileHashes | None:
    """The ``hash`` object of a walked file recorded with an error, else ``None``."""
    if found.error is None:
        return None
    return _unreadable(found.path, found.size, found.error, found.mime or "inode/x-unreadable")


def hash_found_file(found: FoundFile, limits: MediaLimits, dihedral: bool = False, videos: bool = False) -> FileHashes:
    """Hash one walked file; a file that was recorded with an error stays so."""
    return found_unreadable(found) or hash_file(found.path, limits, dihedral=dihedral, videos=videos)


def hash_file(
    path: str | os.PathLike[str],
    limits: MediaLimits | None = None,
    *,
    dihedral: bool = False,
    bank_variants: bool = False,
    videos: bool = False,
    sheet_tiles: int = 0,
) -> FileHashes:
    """Hash the file at ``path``, opened read-only (``hash_stream`` says what the options do).
    Never raises for a bad file: the problem is in the result's ``error``."""
    limits = limits or MediaLimits()
    name = os.fspath(path)
    try:
        with open(name, "rb", buffering=0) as stream:
            return hash_stream(
                stream,
                name,
                limits,
                dihedral=dihedral,
                bank_variants=bank_variants,
                videos=videos,
                sheet_tiles=sheet_tiles,
            )
    except OSError as exc:
        return unreadable(name, exc)


def hash_paths(
    paths: Iterable[str], limits: MediaLimits, workers: int = 1, *, dihedral: bool = False, videos: bool = False
) -> Iterator[FileHashes]:
    """Hash every file under ``paths``, in walk order, using ``workers`` processes
    (``videos``: with their vPDQ hashes)."""
    tasks = ((found, limits, dihedral, videos) for found in walk_paths(paths))
    return ordered_map(_hash_found_task, tasks, workers)


def _hash_found_task(args: tuple[FoundFile, MediaLimits, bool, bool]) -> FileHashes:
    # Module-level so a process pool can pickle it.
    found, limits, dihedral, videos = args
    return hash_found_file(found, limits, dihedral, videos)
