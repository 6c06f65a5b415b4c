"""``childsafe scan`` in-process with a picture in a tar that takes its worker
longer than CHILDSAFE_ITEM_SECONDS: that item is digested and reported, the
rest of the archive is read."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from builders import jpeg_of, write_file
from builders import tar_of as _tar
from PIL import Image
from support import invoke


def _slow_png(side: int = 14_000) -> bytes:
    """A large, highly compressible PNG that takes seconds of C code to decode."""
    row = (np.arange(side, dtype=np.uint32) * 255 // side).astype(np.uint8)
    pixels = np.empty((side, side, 3), np.uint8)
    pixels[:] = row[None, :, None]
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


@pytest.mark.slow
def test_an_item_that_hangs_its_worker_is_reported_and_the_rest_read(tmp_path: Path, home: Path) -> None:
    pictures = {name: jpeg_of(getattr(skimage.data, name)()) for name in ("coffee", "chelsea")}
    evidence = tmp_path / "evidence"
    slow = _slow_png()
    archive = _tar([(b"before.jpg", pictures["coffee"]), (b"slow.png", slow), (b"after.jpg", pictures["chelsea"])])
    write_file(evidence / "phone.tar", archive)
    write_file(tmp_path / "known" / "coffee.jpg", pictures["coffee"])
    assert invoke(["bank", "create", "police", "--scheme", "uk"], home).exit_code == 0
    assert (
        invoke(["bank", "add", "police", str(tmp_path / "known" / "coffee.jpg"), "--category", "A"], home).exit_code
        == 0
    )
    # Decoding the big picture takes seconds; one second is all an item may take here.
    out = tmp_path / "out"
    scan = ["scan", str(evidence), "--case", "P", "--out", str(out), "--workers", "1", "--json"]
    result = invoke(scan, home, env={"CHILDSAFE_ITEM_SECONDS": "1"})
    assert result.exit_code == 0, result.output[-2000:]
    items = {item["path"]: item for item in json.loads((out / "report.json").read_text())["items"]}
    assert sorted(items) == ["phone.tar", "phone.tar!/after.jpg", "phone.tar!/before.jpg", "phone.tar!/slow.png"]
    stopped = items["phone.tar!/slow.png"]
    assert stopped["error"].startswith("time limit") and "CHILDSAFE_ITEM_SECONDS" in stopped["error"]
    assert "digests only" in stopped["error"] and stopped["sha1"] == hashlib.sha1(slow).hexdigest()
    assert items["phone.tar!/before.jpg"]["category"] == "A"
    assert items["phone.tar!/after.jpg"]["sha1"] == hashlib.sha1(pictures["chelsea"]).hexdigest()
