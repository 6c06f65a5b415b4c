"""Small stream wrappers used when reading evidence and hash lists once."""

from __future__ import annotations

import hashlib
import io
from typing import IO, Any, cast

__all__ = ["PrefixedStream", "DigestingReader", "prefixed"]


class PrefixedStream(io.RawIOBase):
    """``prefix`` followed by the rest of ``rest``: lets a reader look at the
    first bytes of a stream that cannot seek back, then hand it on whole.

    When ``rest`` can seek, so can this (``prefix`` was read from it, so its
    bytes are there again): a video is read a second time this way."""

    def __init__(self, prefix: bytes, rest: IO[bytes]) -> None:
        super().__init__()
        self._prefix = memoryview(prefix)
        self._rest = rest
        self._origin: int | None = None
        try:
            if rest.seekable():
                self._origin = rest.tell() - len(prefix)
        except (AttributeError, OSError, ValueError):
            self._origin = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._origin is not None and self._origin >= 0

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if not self.seekable():
            raise io.UnsupportedOperation("seek")
        assert self._origin is not None
        if whence == io.SEEK_CUR:
            offset, whence = self.tell() + offset, io.SEEK_SET
        self._prefix = memoryview(b"")  # from here on, everything comes from ``rest``
        if whence == io.SEEK_SET:
            return self._rest.seek(self._origin + offset) - self._origin
        return self._rest.seek(offset, whence) - self._origin

    def tell(self) -> int:
        if not self.seekable():
            raise io.UnsupportedOperation("tell")
        assert self._origin is not None
        return self._rest.tell() - self._origin - len(self._prefix)

    def readinto(self, buffer: Any) -> int:
        if self._prefix:
            count = min(len(buffer), len(self._prefix))
            buffer[:count] = self._prefix[:count]
            self._prefix = self._prefix[count:]
            return count
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def prefixed(prefix: bytes, rest: IO[bytes]) -> IO[bytes]:
    """A buffered stream of ``prefix`` then ``rest`` (``read(n)`` returns n
    bytes unless the end is reached, as readers expect)."""
    return cast(IO[bytes], io.BufferedReader(PrefixedStream(prefix, rest), buffer_size=1 << 20))


class DigestingReader(io.RawIOBase):
    """A read-only view of ``raw`` that digests every byte the first time it
    is read, so that parsing a file and fingerprinting it is one read.

    Seeking back (some parsers look twice) does not digest bytes again;
    ``finish`` digests whatever the parser did not read and returns the hex
    digests by name (hashlib names: ``md5``, ``sha1``, ``sha256``...)."""

    def __init__(self, raw: IO[bytes], names: tuple[str, ...] = ("sha256",)) -> None:
        super().__init__()
        self._raw = raw
        self._hashers = {name: hashlib.new(name) for name in names}
        self._digested = 0
        self._position = 0
        self.size = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        try:
            return bool(self._raw.seekable())
        except AttributeError:
            return False

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._position = self._raw.seek(offset, whence)
        return self._position

    def tell(self) -> int:
        return self._position

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        start, end = self._position, self._position + len(data)
        if end > self._digested and start <= self._digested:
            fresh = memoryview(data)[self._digested - start :]
            for hasher in self._hashers.values():
                hasher.update(fresh)
            self._digested = end
        self._position = end
        self.size = max(self.size, end)
        buffer[: len(data)] = data
        return len(data)

    def finish(self) -> dict[str, str]:
        """Read what is left (from where digesting stopped) and return the digests."""
        if self.seekable():
            self.seek(self._digested)
        elif self._position != self._digested:
            raise io.UnsupportedOperation("cannot digest a stream that skipped bytes")
        while self.read(1 << 20):
            pass
        return {name: hasher.hexdigest() for name, hasher in self._hashers.items()}
