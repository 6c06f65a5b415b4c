"""RAR archives (RAR 4 and RAR 5), read-only, through libarchive
(``libarchive_reader.py``). Encrypted members are reported, not guessed at;
multi-volume sets are read one volume at a time (members continued from
another volume are reported damaged).
"""

from __future__ import annotations

from childsafe.triage.sources.libarchive_reader import LibarchiveContainer
from childsafe.triage.sources.registry import register_container

__all__ = ["RAR"]


def _is_rar(mime: str, head: bytes) -> bool:
    return mime == "application/vnd.rar"


RAR = register_container(LibarchiveContainer("rar", "RAR archive", ("rar", "rar5"), _is_rar))
