"""Tar archives read as a stream (so a tar inside a compressed stream or
inside another archive is never written to disk)."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import IO

from childsafe.media.budgets import ScanBudgets
from childsafe.triage.sources.base import ContainerError, Member
from childsafe.triage.sources.registry import register_container

__all__ = ["TAR", "is_tar_header"]


def is_tar_header(head: bytes) -> bool:
    """Whether ``head`` starts with a POSIX or GNU tar header."""
    return head[257:262] == b"ustar"


def _extract(archive: tarfile.TarFile, info: tarfile.TarInfo) -> IO[bytes]:
    stream = archive.extractfile(info)
    if stream is None:  # only for non-regular members, which are not opened
        raise tarfile.ReadError(f"{info.name} has no content")
    return stream


@dataclass(frozen=True)
class TarContainer:
    """The ``tar`` container."""

    name: str = "tar"
    needs_seek: bool = False

    def opens(self, mime: str, head: bytes) -> bool:
        return mime == "application/x-tar" or is_tar_header(head)

    def members(self, stream: IO[bytes], name: str, mime: str, budgets: ScanBudgets) -> Iterator[Member]:
        try:
            archive = tarfile.open(fileobj=stream, mode="r|")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ContainerError(f"damaged tar: {exc}") from exc
        with archive:
            try:
                for info in archive:
                    modified = float(info.mtime) if info.mtime else None
                    if info.isdir():
                        continue
                    if info.issym() or info.islnk():
                        kind = "symbolic" if info.issym() else "hard"
                        yield Member(
                            info.name,
                            0,
                            modified,
                            None,
                            f"{kind} link in archive to {info.linkname!r}; not followed",
                            "inode/symlink",
                        )
                    elif not info.isfile():
                        yield Member(info.name, 0, modified, None, "not a regular file; skipped", "inode/x-special")
                    else:
                        yield Member(info.name, info.size, modified, partial(_extract, archive, info))
            except (tarfile.TarError, EOFError, OSError) as exc:
                raise ContainerError(f"damaged tar: {exc}") from exc


TAR = register_container(TarContainer())
