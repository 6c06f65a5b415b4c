"""Disk images as containers: what every image format shares.

A format module (``raw_image.py``, ``ewf.py``, ``vhd.py``, ``vmdk.py``,
``qcow.py``) recognises its images from their bytes and opens one as
``Media``: the disk's bytes, read at any offset, never copied. Then
``volumes.py`` finds the partitions and file systems on it and
``filesystems.py`` lists their files, allocated and deleted, each a member
with its provenance. Everything is read-only: images are opened through
``open_evidence`` (or are a stream the reader already holds), nothing is
mounted and nothing is written.

An image on disk may be one of several segment files (``disk.E01``,
``disk.E02``; ``disk.001``, ``disk.002``): the reader gives its path
(``ImageContext.path``) and the format opens the other segments beside it.
An image inside an archive or another image is read as one segment.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from childsafe.media.budgets import ScanBudgets
from childsafe.triage.sources.base import ContainerError, ImageContext, Member, open_evidence

__all__ = [
    "load_binding",
    "open_segments",
    "Media",
    "StreamMedia",
    "ConcatenatedMedia",
    "LibyalMedia",
    "TickingMedia",
    "OpenedImage",
    "ImageFormat",
    "DiskImageContainer",
    "short_reason",
    "digest_media",
]

#: Bytes read at once when a whole image is digested (verification).
_CHUNK = 1 << 20
#: A long read says it is still going this often (bytes).
_TICK = 64 << 20


class Media(Protocol):
    """A disk's bytes, read at any offset (``read_at`` may return fewer bytes
    at the end; it raises ``OSError`` where the image cannot be read)."""

    @property
    def size(self) -> int: ...

    def read_at(self, offset: int, length: int) -> bytes: ...


def load_binding(module: str, package: str, what: str) -> Any:
    """The Python binding ``module`` (from the wheel ``package``) that reads
    ``what``; a ``ContainerError`` saying so when it cannot be loaded (the
    bindings are dependencies, but a broken install still scans everything else)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ContainerError(f"{what} not opened: {package} ({module}) cannot be loaded: {exc}") from exc


def open_segments(paths: Iterable[str]) -> tuple[list[IO[bytes]], list[str]]:
    """The later segments of an image opened for reading, in order, up to the
    first that cannot be opened; and, if one could not, what went wrong with it."""
    handles: list[IO[bytes]] = []
    for segment in paths:
        try:
            handles.append(open_evidence(segment))
        except OSError as exc:
            return handles, [f"segment {os.path.basename(segment)} cannot be opened: {exc.strerror or exc}"]
    return handles, []


def short_reason(exc: BaseException) -> str:
    """One short line from a library's error (libyal errors chain every
    function they passed through: keep the first)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    first = text.split(". ", 1)[0]
    return first[:200]


@dataclass
class StreamMedia:
    """The bytes of a seekable stream (a raw image, one segment)."""

    stream: IO[bytes]
    size: int

    def read_at(self, offset: int, length: int) -> bytes:
        length = max(0, min(length, self.size - offset))
        self.stream.seek(offset)
        return self.stream.read(length)


@dataclass
class ConcatenatedMedia:
    """Segments read as one disk (split raw: ``disk.001``, ``disk.002``...)."""

    parts: list[StreamMedia]
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.size = sum(part.size for part in self.parts)

    def read_at(self, offset: int, length: int) -> bytes:
        chunks = []
        start = 0
        for part in self.parts:
            end = start + part.size
            if length > 0 and offset < end and offset + length > start:
                chunk = part.read_at(max(offset - start, 0), min(offset + length, end) - max(offset, start))
                chunks.append(chunk)
            start = end
        return b"".join(chunks)


@dataclass
class LibyalMedia:
    """The media of a libyal handle (pyewf, pyvhdi, pyvmdk, pyqcow)."""

    handle: Any
    size: int

    def read_at(self, offset: int, length: int) -> bytes:
        length = max(0, min(length, self.size - offset))
        if length == 0:
            return b""
        try:
            return bytes(self.handle.read_buffer_at_offset(length, offset))
        except OSError as exc:
            raise OSError(f"image cannot be read at byte {offset:,}: {short_reason(exc)}") from exc


@dataclass
class TickingMedia:
    """``media`` that says a long read is still going (``tick``, every 64 MiB
    read), so that The Sleuth Kit's long walks (the orphan files of a large
    NTFS read the whole MFT) and carving a large free space are not taken for
    a hang, whichever segment they read."""

    media: Media
    tick: Callable[[], None]
    _read: int = 0

    @property
    def size(self) -> int:
        return self.media.size

    def read_at(self, offset: int, length: int) -> bytes:
        data = self.media.read_at(offset, length)
        before, self._read = self._read, self._read + len(data)
        if before // _TICK != self._read // _TICK:
            self.tick()
        return data


@dataclass
class OpenedImage:
    """An image opened for reading. ``found``: what manifest.json says of it
    (format, media size, segments, stored hashes); ``problems``: what is
    wrong with the image as a whole (a missing segment), raised after its
    members; ``verify``: for formats that store acquisition hashes, checks
    them (given a tick) and returns the result; ``close``: releases it."""

    media: Media
    found: dict[str, Any]
    close: Callable[[], None]
    problems: list[str] = field(default_factory=list)
    verify: Callable[[Callable[[], None]], dict[str, Any]] | None = None


class ImageFormat(Protocol):
    """One disk image format."""

    @property
    def name(self) -> str: ...

    def recognises(self, mime: str, head: bytes) -> bool:
        """Whether content of this type, with these first bytes, is an image of this format."""
        ...

    def open(self, stream: IO[bytes], path: str | None) -> OpenedImage:
        """Open the image read from ``stream`` (seekable; the file at ``path``
        when it is on disk, whose other segments are then opened too).
        Raises ``ContainerError`` when it cannot be opened at all."""
        ...


def digest_media(media: Media, names: list[str], tick: Callable[[], None]) -> dict[str, str]:
    """Hex digests (hashlib names) of all of ``media``; ``OSError`` where it cannot be read."""
    hashers = {name: hashlib.new(name) for name in names}
    ticking = TickingMedia(media, tick)
    offset = 0
    while offset < media.size:
        chunk = ticking.read_at(offset, min(_CHUNK, media.size - offset))
        if not chunk:
            raise OSError(f"image ends at byte {offset:,}, before its stated size of {media.size:,}")
        for hasher in hashers.values():
            hasher.update(chunk)
        offset += len(chunk)
    return {name: hasher.hexdigest() for name, hasher in hashers.items()}


def _no_tick() -> None:
    pass


@dataclass(frozen=True)
class DiskImageContainer:
    """The container of one image format (registered by its module)."""

    name: str
    format: ImageFormat
    needs_seek: bool = True

    def opens(self, mime: str, head: bytes) -> bool:
        return self.format.recognises(mime, head)

    def members(self, stream: IO[bytes], name: str, mime: str, budgets: ScanBudgets) -> Iterator[Member]:
        yield from self.image_members(stream, name, mime, budgets, ImageContext(None, False, _no_tick))

    def image_members(
        self, stream: IO[bytes], name: str, mime: str, budgets: ScanBudgets, context: ImageContext
    ) -> Iterator[Member]:
        try:
            from childsafe.triage.sources.volumes import volume_members
        except ImportError as exc:  # pytsk3 is a dependency; a broken install still scans everything else
            raise ContainerError(f"disk image not opened: The Sleuth Kit (pytsk3) cannot be loaded: {exc}") from exc
        image = self.format.open(stream, context.path)
        try:
            context.found = image.found
            yield from volume_members(TickingMedia(image.media, context.tick), name, budgets, context.carve)
            problems = list(image.problems)
            if context.verify and image.verify is not None:
                verification = image.verify(context.tick)
                image.found["verification"] = verification
                if verification["result"] != "verified":
                    problems.append(verification["detail"])
        finally:
            image.close()
        if problems:
            raise ContainerError("; ".join(problems))


def open_libyal(
    handle: Any, stream: IO[bytes], what: str, kind: str, parent: Callable[[Any], str | None]
) -> OpenedImage:
    """Open a virtual disk through a libyal ``handle`` (pyvhdi, pyvmdk,
    pyqcow) on ``stream``. ``parent`` names the parent a differencing disk
    needs (its blocks are elsewhere: not opened, and said so)."""
    try:
        handle.open_file_object(stream)
        needed = parent(handle)
        size = int(handle.get_media_size())
    except OSError as exc:
        raise ContainerError(f"{what} cannot be opened: {short_reason(exc)}") from exc
    if needed:
        handle.close()
        raise ContainerError(f"{what} is a differencing disk: its parent {needed!r} is needed; not opened")
    found = {"format": kind, "media_size": size, "segments": []}
    return OpenedImage(LibyalMedia(handle, size), found, handle.close)
