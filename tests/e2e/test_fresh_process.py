"""Readings measured or changed in a fresh Python process: peak memory
(a giant tar header, a 12,000 x 12,000 16-bit PNG), and libarchive missing."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import skimage.data
from builders import libarchive_write as _libarchive_write
from builders import png as _png
from builders import write_tar_with_giant_long_name as _write_tar_with_giant_long_name
from PIL import Image
from support import REPO

from childsafe.signals import pdq_distance, pdq_hash


def _sha1(data: bytes) -> str:
    import hashlib

    return hashlib.sha1(data).hexdigest()


def test_tar_with_a_giant_long_name_header_stays_small(tmp_path: Path) -> None:
    before, after = _png(70), _png(71)
    claim = 64 << 20
    path = tmp_path / "giant-header.tar"
    _write_tar_with_giant_long_name(path, claim, before, after)
    # In a fresh process, so that the peak memory measured is this reading's.
    program = f"""
import json, os, resource, sys
from childsafe.media.limits import MediaLimits
from childsafe.triage.reading import read_task
from childsafe.triage.sources import Task
path = {str(path)!r}
start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
items = list(read_task(Task(path, "giant.tar", os.path.getsize(path), None), MediaLimits()))
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start
print(json.dumps({{"grown_kib": grown, "items": [[i.hashes.path, i.hashes.sha1, i.hashes.error] for i in items]}}))
"""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["grown_kib"] < 100 * 1024, f"reading grew by {report['grown_kib'] // 1024} MiB"
    items = {path: (sha1, error) for path, sha1, error in report["items"]}
    assert items["giant.tar!/before.png"] == (_sha1(before), None)
    assert items["giant.tar!/after.png"] == (_sha1(after), None)
    (described,) = [error for label, (_, error) in items.items() if label.startswith("giant.tar!/described")]
    assert described and "CHILDSAFE_MAX_HEADER_BYTES" in described and "67,108,864" in described


def test_without_libarchive_such_archives_are_items_with_an_error(tmp_path: Path) -> None:
    path = tmp_path / "a.7z"
    path.write_bytes(_libarchive_write("7zip", [("a.png", _png(140))]))
    program = f"""
import json, os
from childsafe.media.limits import MediaLimits
from childsafe.triage.reading import read_task
from childsafe.triage.sources import Task
items = list(read_task(Task({str(path)!r}, "a.7z", os.path.getsize({str(path)!r}), None), MediaLimits()))
print(json.dumps([[i.hashes.path, i.hashes.error] for i in items]))
"""
    # libarchive-c loads the library named by LIBARCHIVE: here, one that does not exist.
    env = {**os.environ, "PYTHONPATH": str(REPO), "LIBARCHIVE": str(tmp_path / "no-libarchive.so")}
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        ["a.7z", "7z archive not opened: libarchive is not installed (apt-get install libarchive13)"]
    ]


def _grey16_png(picture: np.ndarray, scale: int) -> bytes:
    """A 16-bit grey PNG of ``picture`` (uint16) with every pixel a
    ``scale`` x ``scale`` block: huge decoded, small on disk (repeated rows
    are written as PNG "up" rows of zeros), and made without the huge array."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    height, width = picture.shape[0] * scale, picture.shape[1] * scale
    repeat = b"\x02" + bytes(2 * width)  # filter "up", nothing changes
    compressor = zlib.compressobj(6)
    idat = []
    for source_row in picture:
        row = b"\x00" + np.repeat(source_row.astype(">u2"), scale).tobytes()
        idat.append(compressor.compress(row) + compressor.compress(repeat * (scale - 1)))
    idat.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(idat)) + chunk(b"IEND", b"")


_MEASURE_DECODE = """
import json, resource, sys
from childsafe.media import MediaLimits, decode_small_rgb
from childsafe.signals import pdq_hash
data = open(sys.argv[1], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
small = decode_small_rgb(data, "image/png", MediaLimits())
found = pdq_hash(small)
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"grown_kib": grown, "size": small.size, "pdq": found.hex}))
"""


def test_large_16_bit_image_is_hashed_in_bounded_memory(tmp_path: Path) -> None:
    coffee = Image.fromarray(skimage.data.coffee())
    # 12,000 x 12,000 16-bit grey: 288 MB decoded, which Pillow must hold once;
    # a full-size float copy would add 1.15 GB.
    picture = np.asarray(coffee.convert("L").crop((100, 0, 500, 400)), np.uint16) * 16 + 1000
    path = tmp_path / "deep.png"
    path.write_bytes(_grey16_png(picture, 30))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run(
        [sys.executable, "-c", _MEASURE_DECODE, str(path)], capture_output=True, text=True, env=env, check=True
    )
    measured = json.loads(run.stdout)
    assert measured["size"] == [261, 261]  # 12,000 / 46, rounded up
    assert measured["grown_kib"] * 1024 < 600_000_000
    stretched = Image.fromarray(((picture - picture.min()) * (255 / np.ptp(picture)) + 0.5).astype(np.uint8))
    assert pdq_distance(measured["pdq"], pdq_hash(stretched.convert("RGB")).hex) <= 16
