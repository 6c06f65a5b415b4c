"""``childsafe scan`` of evidence holding an E01 disk image, run in-process
(Typer's CliRunner; the scan's workers are real processes): the pictures
in its partitions, deleted ones included, are matched against a bank and
every report says where each was found, while items outside the image keep
their usual fields; ``--verify-images`` puts the image's verified
acquisition hashes in the manifest; the image is unchanged."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_disk_images import file_digest, need, picture, run, standard_disk
from typer.testing import CliRunner

from childsafe.cli import app
from childsafe.triage.reports.items_csv import LOCATION_COLUMNS


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    """A fresh CHILDSAFE_HOME; no other CHILDSAFE_* setting of the caller's shell leaks in."""
    saved = {name: value for name, value in os.environ.items() if name.startswith("CHILDSAFE_")}
    for name in saved:
        del os.environ[name]
    os.environ["CHILDSAFE_HOME"] = str(tmp_path / "home")
    try:
        yield tmp_path / "home"
    finally:
        del os.environ["CHILDSAFE_HOME"]
        os.environ.update(saved)


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.slow
def test_a_scan_of_an_e01_matches_its_deleted_pictures_and_reports_where_each_was(home: Path, tmp_path: Path) -> None:
    need("ewfacquire")
    disk = standard_disk(tmp_path / "build")
    evidence = tmp_path / "evidence"
    (evidence / "photos").mkdir(parents=True)
    run("ewfacquire", "-u", "-q", "-c", "fast", "-d", "sha1", "-t", evidence / "exhibit", disk.path)
    (evidence / "photos" / "loose.jpg").write_bytes(picture(1))
    known = tmp_path / "known"
    known.mkdir()
    cli("bank", "create", "police", "--scheme", "uk")
    for seed, category in ((1, "A"), (2, "B"), (5, "C")):  # p1.jpg; the deleted _2.jpg and p5.jpg
        (known / f"known-{seed}.jpg").write_bytes(picture(seed))
        cli("bank", "add", "police", str(known / f"known-{seed}.jpg"), "--category", category)
    image = evidence / "exhibit.E01"
    before = file_digest(image)
    out = tmp_path / "case"
    cli("scan", str(evidence), "--case", "OP-DISK-1", "--out", str(out), "--workers", "1", "--verify-images", "--json")
    assert file_digest(image) == before, "the image changed during the scan"

    report = json.loads((out / "report.json").read_text())
    items = {item["path"]: item for item in report["items"]}
    categories = {path: item["category"] for path, item in items.items() if item["category"]}
    assert categories == {
        "photos/loose.jpg": "A",
        "exhibit.E01!/p1/DCIM/p1.jpg": "A",
        "exhibit.E01!/p1/DCIM/_2.jpg": "B",
        "exhibit.E01!/p2/p5.jpg": "C",
    }
    assert report["summary"]["by_state"] == {
        "allocated": {"files": 4, "matched": 1},  # p1.jpg, top.jpg, p4.jpg, notes.txt
        "deleted": {"files": 2, "matched": 2},
    }
    deleted = items["exhibit.E01!/p2/p5.jpg"]
    assert deleted["state"] == "deleted" and deleted["error"] is None
    where = deleted["location"]
    assert (where["image"], where["partition"], where["offset"], where["filesystem"]) == (
        "exhibit.E01",
        2,
        24 << 20,
        "ext4",
    )
    assert where["inode"] and where["created"] and where["modified"] and where["accessed"]
    for outside in ("photos/loose.jpg", "exhibit.E01"):  # not found in an image: today's fields only
        assert "state" not in items[outside] and "location" not in items[outside]
    assert items["exhibit.E01"]["error"] is None

    rows = {row["path"]: row for row in csv.DictReader(io.StringIO((out / "items.csv").read_text()))}
    header = next(csv.reader(io.StringIO((out / "items.csv").read_text())))
    assert header[-len(LOCATION_COLUMNS) - 1 :] == ["state", *LOCATION_COLUMNS]
    fat = rows["exhibit.E01!/p1/DCIM/_2.jpg"]
    assert (fat["state"], fat["partition"], fat["filesystem"], fat["offset"]) == ("deleted", "1", "fat16", str(1 << 20))
    assert all(rows["photos/loose.jpg"][column] == "" for column in ["state", *LOCATION_COLUMNS])

    html = (out / "report.html").read_text()
    assert "Found in disk images, by state" in html and "deleted, in exhibit.E01, partition 2" in html

    vics = json.loads((out / "case.vics.json").read_text())
    copies = {
        f"{copy['FilePath']}/{copy['FileName']}": copy
        for media in vics["value"][0]["Media"]
        for copy in media["MediaFiles"]
    }
    assert copies["exhibit.E01!/p2/p5.jpg"]["ItemState"] == "deleted"
    assert copies["exhibit.E01!/p2/p5.jpg"]["Created"] == where["created"]
    assert copies["exhibit.E01!/p2/p5.jpg"]["Modified"] == where["modified"]
    assert "ItemState" not in copies["photos/loose.jpg"]

    manifest = json.loads((out / "manifest.json").read_text())
    (described,) = manifest["images"]
    raw = disk.path.read_bytes()
    stored = {"md5": hashlib.md5(raw).hexdigest(), "sha1": hashlib.sha1(raw).hexdigest()}
    assert (described["path"], described["format"], described["stored_hashes"]) == ("exhibit.E01", "ewf", stored)
    assert described["verification"]["result"] == "verified" and described["verification"]["computed"] == stored
