"""7z archives, through libarchive (``libarchive_reader.py``).

7z keeps its directory at the end of the archive, so libarchive must seek:
the reader gives this container a seekable stream (``needs_seek``).
Archives whose directory is encrypted cannot be listed (the archive's item
says so); members encrypted on their own are reported, not guessed at.
"""

from __future__ import annotations

from childsafe.triage.sources.libarchive_reader import LibarchiveContainer
from childsafe.triage.sources.registry import register_container

__all__ = ["SEVEN_ZIP"]


def _is_7z(mime: str, head: bytes) -> bool:
    return mime == "application/x-7z-compressed"


SEVEN_ZIP = register_container(LibarchiveContainer("7z", "7z archive", ("7zip",), _is_7z, needs_seek=True))
