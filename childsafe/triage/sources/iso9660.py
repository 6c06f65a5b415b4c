"""ISO 9660 disc images (with Rock Ridge and Joliet names), through libarchive
(``libarchive_reader.py``).

An image is recognised by the volume descriptor "CD001" at byte 32,769 (the
first descriptor, in sector 16), beyond the 512 bytes ``sniff_type`` sees:
the reader hands ``container_for`` a head of ``CONTAINER_HEAD_BYTES``.
libarchive reads ISO 9660 only, not UDF: a UDF disc that also carries an ISO
9660 directory (a "bridge" disc, as most are) is read through that; a disc
with UDF alone ("BEA01" where "CD001" would be) is reported, not opened.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from childsafe.media.budgets import ScanBudgets
from childsafe.triage.sources.base import ContainerError, Member
from childsafe.triage.sources.libarchive_reader import LibarchiveContainer
from childsafe.triage.sources.registry import register_container

__all__ = ["ISO9660", "is_iso9660", "is_udf_only"]

_FIRST_DESCRIPTOR = 16 * 2048 + 1  # the identifier after the descriptor's type byte
_UDF_IDENTIFIERS = (b"BEA01", b"NSR02", b"NSR03", b"TEA01")


def is_iso9660(head: bytes) -> bool:
    """Whether ``head`` (at least 32,774 bytes) is the start of an ISO 9660 image."""
    return head[_FIRST_DESCRIPTOR : _FIRST_DESCRIPTOR + 5] == b"CD001"


def is_udf_only(head: bytes) -> bool:
    """Whether ``head`` starts a UDF disc without an ISO 9660 directory."""
    return head[_FIRST_DESCRIPTOR : _FIRST_DESCRIPTOR + 5] in _UDF_IDENTIFIERS


# Does the reading; Iso9660Container below recognises images and turns UDF-only discs away.
_READER = LibarchiveContainer("iso9660", "ISO 9660 image", ("iso9660",), lambda mime, head: is_iso9660(head))


@dataclass(frozen=True)
class Iso9660Container:
    """The ``iso9660`` container."""

    name: str = "iso9660"
    needs_seek: bool = False

    def opens(self, mime: str, head: bytes) -> bool:
        # Only what the first 512 bytes left unnamed (zeros, or a hybrid
        # image's boot record): a zip or tar is never taken for a disc.
        return mime == "application/octet-stream" and (is_iso9660(head) or is_udf_only(head))

    def members(self, stream: IO[bytes], name: str, mime: str, budgets: ScanBudgets) -> Iterator[Member]:
        if _udf_only(stream):
            raise ContainerError("UDF disc image not opened: it has no ISO 9660 directory, and UDF alone is not read")
        yield from _READER.members(stream, name, mime, budgets)


def _udf_only(stream: IO[bytes]) -> bool:
    """Whether a seekable ``stream`` holds a UDF-only disc (a stream that cannot
    seek is left to libarchive, which then says it is not ISO 9660)."""
    try:
        if not stream.seekable():
            return False
        stream.seek(_FIRST_DESCRIPTOR)
        identifier = stream.read(5)
        stream.seek(0)
    except (OSError, ValueError):
        return False
    return identifier in _UDF_IDENTIFIERS


ISO9660 = register_container(Iso9660Container())
