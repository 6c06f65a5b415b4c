"""Windows thumbnail caches (childsafe/triage/sources/thumbcache.py): files
built here in each version's layout; every thumbnail is a member, read as
any picture is, and a damaged entry costs only itself."""

from __future__ import annotations

import hashlib
import io
import struct
from pathlib import Path

import pytest
from PIL import Image

from childsafe.media.limits import MediaLimits
from childsafe.triage.reading import ScannedItem, read_task
from childsafe.triage.sources import Task

VISTA, SEVEN, TEN = 20, 21, 32


def _picture(seed: int, format: str) -> bytes:
    picture = Image.new("RGB", (64, 48), (seed * 40 % 256, 90, 200 - seed * 30 % 200))
    for x in range(0, 64, 8):
        picture.paste((255 - seed * 20 % 255, x * 4, 30), (x, seed % 40, x + 4, seed % 40 + 8))
    out = io.BytesIO()
    picture.save(out, format=format)
    return out.getvalue()


def _entry(version: int, name: str, data: bytes) -> bytes:
    name_bytes = name.encode("utf-16-le")
    padding = b"\x00" * (-len(name_bytes) % 8)
    sizes = (len(name_bytes), len(padding), len(data))
    if version == VISTA:
        header_rest = struct.pack("<Q8sIII4sQQ", 0x1234, "jpg\0".encode("utf-16-le"), *sizes, b"\0" * 4, 0, 0)
    elif version == SEVEN:
        header_rest = struct.pack("<QIII4sQQ", 0x1234, *sizes, b"\0" * 4, 0, 0)
    else:
        header_rest = struct.pack("<QIIIII4sQQ", 0x1234, *sizes, 64, 48, b"\0" * 4, 0, 0)
    size = 8 + len(header_rest) + sum(sizes)
    return b"CMMM" + struct.pack("<I", size) + header_rest + name_bytes + padding + data


def _cache(version: int, entries: list[bytes]) -> bytes:
    if version in (VISTA, SEVEN):
        header = b"CMMM" + struct.pack("<IIIII", version, 1, 24, 0, len(entries))
    else:
        header = b"CMMM" + struct.pack("<IIIIII", version, 1, 0, 28, 0, 0)
    return header + b"".join(entries)


def _scan(path: Path) -> list[ScannedItem]:
    st = path.stat()
    return list(read_task(Task(str(path), path.name, st.st_size, st.st_mtime), MediaLimits()))


@pytest.mark.parametrize("version", [VISTA, SEVEN, TEN], ids=["vista", "windows 7", "windows 10"])
def test_every_thumbnail_is_an_item_with_its_picture_hashes(version: int, tmp_path: Path) -> None:
    thumbnails = {"7a3c51e0f2b94d10": _picture(1, "JPEG"), "0b1d2e3f4a5b6c7d": _picture(2, "PNG"),
                  "ffee000011112222": _picture(3, "BMP")}  # fmt: skip
    entries = [_entry(version, name, data) for name, data in thumbnails.items()]
    entries.insert(1, _entry(version, "", b""))  # an empty slot: not an item
    path = tmp_path / "thumbcache_256.db"
    path.write_bytes(_cache(version, entries))
    items = {item.hashes.path: item for item in _scan(path)}
    assert set(items) == {"thumbcache_256.db", *(f"thumbcache_256.db!/{name}" for name in thumbnails)}
    for name, data in thumbnails.items():
        hashes = items[f"thumbcache_256.db!/{name}"].hashes
        assert (hashes.sha1, hashes.media_type, hashes.error) == (hashlib.sha1(data).hexdigest(), "image", None)
        assert hashes.pdq is not None
    assert items["thumbcache_256.db"].hashes.error is None


def test_a_damaged_entry_is_reported_and_the_next_is_still_read(tmp_path: Path) -> None:
    first, second = _picture(4, "JPEG"), _picture(5, "PNG")
    damaged = bytearray(_entry(SEVEN, "1111222233334444", _picture(6, "JPEG")))
    damaged[:4] = b"XXXX"  # its signature is gone: the walk looks for the next one
    path = tmp_path / "thumbcache_96.db"
    path.write_bytes(_cache(SEVEN, [_entry(SEVEN, "aaaa", first), bytes(damaged), _entry(SEVEN, "bbbb", second)]))
    items = {item.hashes.path: item for item in _scan(path)}
    assert items["thumbcache_96.db!/aaaa"].hashes.sha1 == hashlib.sha1(first).hexdigest()
    assert items["thumbcache_96.db!/bbbb"].hashes.sha1 == hashlib.sha1(second).hexdigest()
    assert "thumbcache_96.db!/1111222233334444" not in items
    assert items["thumbcache_96.db"].hashes.error == (
        "damaged thumbnail cache: entries that could not be read: 1; the others were"
    )


def test_an_entry_cut_short_by_the_end_of_the_file_says_so(tmp_path: Path) -> None:
    whole = _entry(TEN, "cccc", _picture(7, "JPEG"))
    path = tmp_path / "thumbcache_32.db"
    path.write_bytes(_cache(TEN, [_entry(TEN, "dddd", _picture(8, "PNG")), whole[:-100]]))
    items = {item.hashes.path: item for item in _scan(path)}
    assert items["thumbcache_32.db!/dddd"].hashes.media_type == "image"
    assert items["thumbcache_32.db!/cccc"].hashes.error == "damaged thumbnail: cut short by the end of the cache"
