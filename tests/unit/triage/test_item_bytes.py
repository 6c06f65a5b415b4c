"""An item of a finished case read again from the evidence by its id
(``childsafe/triage/item_bytes.py``): files, archive members nested in
streams, and files of a disk image, deleted ones too; the bytes are those
scanned, and evidence that changed since is said to have changed."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from builders import zip_of
from disk_builders import ext4_image, need, picture
from support import invoke

from childsafe.errors import UsageError
from childsafe.triage.item_bytes import read_item_bytes


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    need("mkfs.ext4", "debugfs")
    root = tmp_path_factory.mktemp("item-bytes")
    evidence = root / "evidence"
    (evidence / "camera").mkdir(parents=True)
    (evidence / "camera" / "a.jpg").write_bytes(picture(1))
    (evidence / "phone.zip").write_bytes(zip_of([("DCIM/b.jpg", picture(2)), ("DCIM/c.jpg", picture(3))]))
    inner = zip_of([("deep/d.jpg", picture(4))])  # a zip inside a tar.gz: read from a stream that cannot seek
    with tarfile.open(evidence / "backup.tar.gz", "w:gz") as archive:
        info = tarfile.TarInfo("photos.zip")
        info.size = len(inner)
        archive.addfile(info, io.BytesIO(inner))
    card = ext4_image(root / "card.img", 16, {"DCIM/e.jpg": picture(5), "DCIM/f.jpg": picture(6)}, ("DCIM/f.jpg",))
    card.rename(evidence / "card.img")
    out = root / "case"
    done = invoke(["scan", str(evidence), "--case", "OP-BYTES-1", "--out", str(out), "--workers", "1"], root / "home")
    assert done.exit_code == 0, done.output
    items = {item["path"]: item for item in json.loads((out / "report.json").read_text())["items"]}
    return {"out": out, "evidence": evidence, "items": items}


def test_every_picture_is_read_back_as_scanned_wherever_it_was(case: dict[str, Any]) -> None:
    pictures = {path: item for path, item in case["items"].items() if item["media_type"] == "image"}
    assert len(pictures) == 6
    deleted = [item for item in pictures.values() if item.get("state") == "deleted"]
    assert len(deleted) == 1  # f.jpg, deleted from the card, is read back too
    for path, item in pictures.items():
        data = read_item_bytes(case["out"], item["id"])
        assert hashlib.sha1(data).hexdigest() == item["sha1"], path
    assert read_item_bytes(case["out"], case["items"]["backup.tar.gz!/photos.zip!/deep/d.jpg"]["id"]) == picture(4)


def test_an_unknown_item_or_one_over_the_limit_is_refused(case: dict[str, Any]) -> None:
    with pytest.raises(UsageError, match="the case has no item 'nope'"):
        read_item_bytes(case["out"], "nope")
    with pytest.raises(UsageError, match="over the 100-byte limit"):
        read_item_bytes(case["out"], case["items"]["phone.zip!/DCIM/b.jpg"]["id"], limit=100)


def test_evidence_changed_since_the_scan_is_said_to_have_changed(case: dict[str, Any], tmp_path: Path) -> None:
    moved = tmp_path / "elsewhere"
    case["evidence"].rename(moved)
    try:
        with pytest.raises(UsageError, match="is the evidence where it was"):
            read_item_bytes(case["out"], case["items"]["camera/a.jpg"]["id"])
    finally:
        moved.rename(case["evidence"])
    original = (case["evidence"] / "camera" / "a.jpg").read_bytes()
    (case["evidence"] / "camera" / "a.jpg").write_bytes(picture(9))
    try:
        with pytest.raises(UsageError, match="other bytes than were scanned"):
            read_item_bytes(case["out"], case["items"]["camera/a.jpg"]["id"])
    finally:
        (case["evidence"] / "camera" / "a.jpg").write_bytes(original)
