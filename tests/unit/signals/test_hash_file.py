"""``childsafe hash`` end to end: the SPEC output, and every kind of bad input."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import skimage.data
from PIL import Image

from childsafe.media import FoundFile, MediaLimits
from childsafe.signals import hash_file, hash_found_file


def test_file_that_vanishes_or_cannot_be_read_mid_run(tmp_path: Path) -> None:
    path = tmp_path / "soon-gone.jpg"
    Image.fromarray(skimage.data.coffee()).save(path)
    found = FoundFile(str(path), path.stat().st_size)  # walked, then deleted
    path.unlink()
    vanished = hash_found_file(found, MediaLimits())
    assert vanished.error == "cannot read: no such file (moved or deleted?)"
    # /proc/self/mem cannot be read from offset 0: a real read error, even for root.
    unreadable = hash_file("/proc/self/mem")
    assert unreadable.error is not None and unreadable.error.startswith("cannot read:")
    assert unreadable.sha1 is None


def test_digests_are_exact_and_the_type_comes_from_bytes(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # several read chunks
    path = tmp_path / "blob.jpg.bin"
    path.write_bytes(data)
    result = hash_file(path)
    assert result.md5 == hashlib.md5(data).hexdigest()
    assert result.sha1 == hashlib.sha1(data).hexdigest()
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert (result.size, result.media_type, result.error) == (len(data), "other", None)


def test_image_over_the_decode_size_limit_is_digested_not_decoded(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.fromarray(skimage.data.coffee()).save(path)
    result = hash_file(path, MediaLimits(max_decode_bytes=1000))
    assert result.sha1 == hashlib.sha1(path.read_bytes()).hexdigest()
    assert result.pdq is None and result.error is not None and "decode limit" in result.error
