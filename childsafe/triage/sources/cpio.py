"""cpio archives (odc, newc, crc and old binary), through libarchive
(``libarchive_reader.py``); recognised by ``childsafe/media/sniff.py``."""

from __future__ import annotations

from childsafe.triage.sources.libarchive_reader import LibarchiveContainer
from childsafe.triage.sources.registry import register_container

__all__ = ["CPIO"]


def _is_cpio(mime: str, head: bytes) -> bool:
    return mime == "application/x-cpio"


CPIO = register_container(LibarchiveContainer("cpio", "cpio archive", ("cpio",), _is_cpio))
