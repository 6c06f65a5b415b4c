"""Contact sheets of a case's unmatched videos: one small JPEG each (a grid
of frames spread over the video, ``childsafe/media/contact_sheet.py``), so
that an investigator grades a video from one picture instead of watching it.

The sheet is made in the same decoding pass as the video's vPDQ hash
(``prepare_query(..., sheet_tiles=SHEET_TILES)``) and written by the worker
that matched the video, only when nothing matched: a known video's frames are
never put on disk. Files are ``contact-sheets/ITEM.jpg`` in the case output
(``ITEM`` the item's id, ``/`` written as ``-``), each written whole or not
at all; the manifest lists each with its SHA-256.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from childsafe.fileio import atomic_binary_file
from childsafe.signals.hashing import FileHashes

__all__ = [
    "SHEETS_FOLDER",
    "SHEET_TILES",
    "sheet_jpeg",
    "write_contact_sheet",
    "write_sheet_jpeg",
    "contact_sheet_digests",
]

#: The case output's folder of contact sheets.
SHEETS_FOLDER = "contact-sheets"
#: Frames on a sheet (IPED's sheets have 20 too).
SHEET_TILES = 20


def sheet_name(item_id: str) -> str:
    """The file name of an item's sheet: its id with ``/`` (archive members) as ``-``."""
    return item_id.replace("/", "-") + ".jpg"


def sheet_jpeg(hashes: FileHashes) -> bytes | None:
    """The sheet an unmatched video's hashing made, if it made one (``None`` for anything else)."""
    video = hashes.video
    return None if video is None or video.sheet is None else video.sheet.jpeg


def write_contact_sheet(out: Path, item_id: str, hashes: FileHashes) -> Path | None:
    """Write the sheet an unmatched video's hashing made, if it made one;
    returns the file written (``None`` for anything else)."""
    jpeg = sheet_jpeg(hashes)
    return None if jpeg is None else write_sheet_jpeg(out, item_id, jpeg)


def write_sheet_jpeg(out: Path, item_id: str, jpeg: bytes) -> Path:
    """Write an item's sheet (``sheet_jpeg``) into the case output ``out``."""
    folder = out / SHEETS_FOLDER
    folder.mkdir(exist_ok=True)
    path = folder / sheet_name(item_id)
    with atomic_binary_file(path) as handle:
        handle.write(jpeg)
    return path


def contact_sheet_digests(out: Path) -> dict[str, str]:
    """Every sheet of the case (``contact-sheets/NAME.jpg``) with its SHA-256, for the manifest."""
    folder = out / SHEETS_FOLDER
    if not folder.is_dir():
        return {}
    return {
        f"{SHEETS_FOLDER}/{path.name}": hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.glob("*.jpg"))
        if not path.name.startswith(".")
    }
