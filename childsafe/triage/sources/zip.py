"""Zip archives (zip64 included), read member by member, never extracted.

Python's zipfile reads stored, deflate, bzip2 and lzma members and zip64;
deflate64 and other methods are reported as items with an error. Encrypted
members are reported, not guessed at.
"""

from __future__ import annotations

import calendar
import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import IO

from childsafe.media.budgets import ScanBudgets
from childsafe.triage.sources.base import ContainerError, Member
from childsafe.triage.sources.registry import register_container

__all__ = ["ZIP"]

_READABLE_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
_METHOD_NAMES = {9: "deflate64", 98: "PPMd", 99: "AES (WinZip)", 95: "xz", 93: "zstandard"}


def _modified(info: zipfile.ZipInfo) -> float | None:
    try:
        # Zip times carry no zone; read as UTC so reports do not depend on this machine.
        return float(calendar.timegm((*info.date_time, 0, 0, 0)))
    except (ValueError, OverflowError):
        return None


@dataclass(frozen=True)
class ZipContainer:
    """The ``zip`` container."""

    name: str = "zip"
    needs_seek: bool = True

    def opens(self, mime: str, head: bytes) -> bool:
        return mime == "application/zip"

    def members(self, stream: IO[bytes], name: str, mime: str, budgets: ScanBudgets) -> Iterator[Member]:
        try:
            archive = zipfile.ZipFile(stream)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
            raise ContainerError(
                f"damaged zip: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            ) from exc
        with archive:
            for info in archive.infolist():
                if info.is_dir():
                    continue
                modified = _modified(info)
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    yield Member(
                        info.filename,
                        info.file_size,
                        modified,
                        None,
                        "symbolic link in archive; not followed",
                        "inode/symlink",
                    )
                elif info.flag_bits & 0x1:
                    yield Member(
                        info.filename,
                        info.file_size,
                        modified,
                        None,
                        "encrypted member; cannot be read without its password",
                    )
                elif info.compress_type not in _READABLE_METHODS:
                    method = _METHOD_NAMES.get(info.compress_type, f"method {info.compress_type}")
                    yield Member(
                        info.filename,
                        info.file_size,
                        modified,
                        None,
                        f"compression {method} is not supported; member not read",
                    )
                else:
                    yield Member(info.filename, info.file_size, modified, partial(archive.open, info))


ZIP = register_container(ZipContainer())
