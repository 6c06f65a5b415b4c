"""gzip, bzip2 and xz streams: a compressed tar (tar.gz, tar.bz2, tar.xz)
is read as one archive; anything else compressed is one member."""

from __future__ import annotations

import bz2
import gzip
import lzma
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, cast

from childsafe.media.budgets import ScanBudgets
from childsafe.media.streams import prefixed
from childsafe.triage.sources.base import ContainerError, Member
from childsafe.triage.sources.registry import register_container
from childsafe.triage.sources.tar import TAR, is_tar_header

__all__ = ["COMPRESSED"]

_OPENERS: dict[str, Callable[[IO[bytes]], IO[bytes]]] = {
    "application/gzip": lambda s: cast(IO[bytes], gzip.GzipFile(fileobj=s, mode="rb")),
    "application/x-bzip2": lambda s: cast(IO[bytes], bz2.BZ2File(s, mode="rb")),
    "application/x-xz": lambda s: cast(IO[bytes], lzma.LZMAFile(s, mode="rb")),
}
# What a compressed file's single member is called: "notes.txt.gz" holds "notes.txt".
_INNER_NAMES = ((".tgz", ".tar"), (".tbz2", ".tar"), (".txz", ".tar"), (".gz", ""), (".bz2", ""), (".xz", ""))


def _inner_name(name: str) -> str:
    base = name.rsplit("/", 1)[-1]
    for suffix, replacement in _INNER_NAMES:
        if base.lower().endswith(suffix) and len(base) > len(suffix):
            return base[: -len(suffix)] + replacement
    return base + ".decompressed"


@dataclass(frozen=True)
class CompressedContainer:
    """The ``compressed`` container (gzip, bzip2, xz)."""

    name: str = "compressed"
    needs_seek: bool = False

    def opens(self, mime: str, head: bytes) -> bool:
        return mime in _OPENERS

    def members(self, stream: IO[bytes], name: str, mime: str, budgets: ScanBudgets) -> Iterator[Member]:
        decompressed = _OPENERS[mime](stream)
        try:
            head = decompressed.read(512)
        except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
            raise ContainerError(f"damaged {mime.rsplit('/', 1)[-1].removeprefix('x-')} stream: {exc}") from exc
        content = prefixed(head, decompressed)
        if is_tar_header(head):
            yield from TAR.members(content, name, "application/x-tar", budgets)
        else:
            yield Member(_inner_name(name), -1, None, lambda: content)


COMPRESSED = register_container(CompressedContainer())
