"""Names from evidence are bytes: how they are kept, shown and identified.

Inside childsafe a name from evidence (a path on a seized disk, an archive
member's name) is a ``str`` decoded from its bytes as UTF-8 with
``surrogateescape``: bytes that are not UTF-8 (Latin-1 and other legacy
names are common on seized media) survive exactly, and ``raw_name`` gives
them back. Reports show a *display* form (those bytes as ``\\xNN`` escapes)
and, where the name is not UTF-8, the raw bytes in hex, so the evidence can
always be found again from the report.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = ["raw_name", "display_name", "name_bytes_hex", "item_id"]


def raw_name(name: str) -> bytes:
    """The bytes a name was read from."""
    return name.encode("utf-8", "surrogateescape")


def display_name(name: str) -> str:
    """``name`` as valid text: bytes that are not UTF-8 shown as ``\\xNN``."""
    return raw_name(name).decode("utf-8", "backslashreplace")


def name_bytes_hex(name: str) -> str | None:
    """The raw bytes in hex when ``name`` is not valid UTF-8; else ``None``."""
    raw = raw_name(name)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.hex()
    return None


def item_id(task: str, position: Sequence[int]) -> str:
    """An item's identity in its case, from where it is, never from its name
    alone: a digest of the path of the file on disk (relative to the
    evidence), then the member number at each archive level
    (``3f1c...e2`` for a file, ``3f1c...e2/0/4`` inside archives)."""
    digest = hashlib.sha256(raw_name(task)).hexdigest()[:16]
    return digest + "".join(f"/{number}" for number in position)
