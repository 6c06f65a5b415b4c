"""Thumbs.db (childsafe/triage/sources/thumbs_db.py): OLE compound files
built here with libgsf's ``gsf createole`` (the tests skip without it) in
the Windows XP layout; every thumbnail is a member named by the file the
catalogue says it was made from, and other OLE files give no members."""

from __future__ import annotations

import hashlib
import io
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from childsafe.media.limits import MediaLimits
from childsafe.triage.reading import ScannedItem, read_task
from childsafe.triage.sources import Task

pytestmark = pytest.mark.skipif(shutil.which("gsf") is None, reason="gsf (Debian's libgsf-bin) is not installed")


def _jpeg(seed: int) -> bytes:
    picture = Image.new("RGB", (96, 72), (seed * 50 % 256, 120, 255 - seed * 30 % 256))
    picture.paste((20, 240 - seed * 10, 90), (seed * 7 % 60, 10, seed * 7 % 60 + 24, 40))
    out = io.BytesIO()
    picture.save(out, format="JPEG")
    return out.getvalue()


def _catalogue(names: dict[int, str]) -> bytes:
    entries = b""
    for number, name in names.items():
        body = struct.pack("<IQ", number, 0) + name.encode("utf-16-le") + b"\0\0"
        entries += struct.pack("<I", 4 + len(body)) + body
    return struct.pack("<HHIII", 16, 7, len(names), 96, 96) + entries


def _ole(folder: Path, streams: dict[str, bytes], name: str = "Thumbs.db") -> Path:
    """An OLE compound file holding ``streams`` (made with gsf, from files named as the streams)."""
    parts = folder / "parts"
    parts.mkdir()
    for stream, data in streams.items():
        (parts / stream).write_bytes(data)
    target = folder / name
    subprocess.run(["gsf", "createole", str(target), *streams], cwd=parts, check=True, capture_output=True)
    shutil.rmtree(parts)
    return target


def _scan(path: Path) -> dict[str, ScannedItem]:
    st = path.stat()
    return {
        item.hashes.path: item for item in read_task(Task(str(path), path.name, st.st_size, st.st_mtime), MediaLimits())
    }


def test_each_thumbnail_is_an_item_named_by_the_file_it_was_made_from(tmp_path: Path) -> None:
    pictures = {1: _jpeg(1), 2: _jpeg(2), 12: _jpeg(3)}
    streams = {str(n)[::-1]: struct.pack("<III", 12, n, len(p)) + p for n, p in pictures.items()}
    names = {1: "holiday.jpg", 2: "purple umbrella.png", 12: "garden.jpg"}
    path = _ole(tmp_path, {"Catalog": _catalogue(names), **streams})
    items = _scan(path)
    expected = {f"Thumbs.db!/{str(n)[::-1]} {names[n]}": p for n, p in pictures.items()}
    assert set(items) == {"Thumbs.db", *expected}
    for label, picture in expected.items():
        hashes = items[label].hashes
        assert (hashes.sha1, hashes.media_type, hashes.error) == (hashlib.sha1(picture).hexdigest(), "image", None)
    assert items["Thumbs.db"].hashes.mime == "application/x-ole-storage"


def test_a_thumbnail_the_catalogue_does_not_name_keeps_its_stream_name(tmp_path: Path) -> None:
    picture = _jpeg(4)
    path = _ole(tmp_path, {"Catalog": _catalogue({}), "3": struct.pack("<III", 24, 3, 0) + bytes(12) + picture})
    items = _scan(path)
    assert items["Thumbs.db!/3"].hashes.sha1 == hashlib.sha1(picture).hexdigest()  # after a 24-byte header


def test_an_ole_file_without_a_catalogue_gives_no_members(tmp_path: Path) -> None:
    path = _ole(tmp_path, {"WordDocument": b"\x00" * 600, "1Table": b"\x01" * 100}, name="letter.doc")
    items = _scan(path)
    assert set(items) == {"letter.doc"}
    assert items["letter.doc"].hashes.error is None


def test_a_damaged_compound_file_is_reported_on_the_file(tmp_path: Path) -> None:
    whole = _ole(tmp_path, {"Catalog": _catalogue({1: "a.jpg"}), "1": struct.pack("<III", 12, 1, 0) + _jpeg(5)})
    damaged = tmp_path / "cut.db"
    damaged.write_bytes(whole.read_bytes()[:600])  # the header survives, its sectors do not
    items = _scan(damaged)
    assert items["cut.db"].hashes.error is not None
    assert items["cut.db"].hashes.error.startswith("damaged")
