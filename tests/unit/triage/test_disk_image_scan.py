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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from disk_builders import file_digest, need, picture, run, standard_disk
from support import invoke

from childsafe.triage.reports.items_csv import LOCATION_COLUMNS


@dataclass
class ScannedCase:
    """The scan every test here reads: its output folder, the image's digest
    before and after, and the raw disk the E01 was made from."""

    out: Path
    before: tuple[str, int, int]
    after: tuple[str, int, int]
    raw: bytes

    def report(self) -> dict[str, Any]:
        return cast(dict[str, Any], json.loads((self.out / "report.json").read_text()))

    def items(self) -> dict[str, dict[str, Any]]:
        return {item["path"]: item for item in self.report()["items"]}


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> ScannedCase:
    need("ewfacquire")
    tmp_path = tmp_path_factory.mktemp("disk-scan")
    home = tmp_path / "home"

    def cli(*args: str) -> None:
        result = invoke(list(args), home)
        assert result.exit_code == 0, result.output

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
    return ScannedCase(out, before, file_digest(image), disk.path.read_bytes())


pytestmark = pytest.mark.slow


def test_the_image_is_unchanged_by_the_scan(case: ScannedCase) -> None:
    assert case.after == case.before


def test_pictures_in_the_image_deleted_ones_too_match_the_bank(case: ScannedCase) -> None:
    categories = {path: item["category"] for path, item in case.items().items() if item["category"]}
    assert categories == {
        "photos/loose.jpg": "A",
        "exhibit.E01!/p1/DCIM/p1.jpg": "A",
        "exhibit.E01!/p1/DCIM/_2.jpg": "B",
        "exhibit.E01!/p2/p5.jpg": "C",
    }


def test_the_summary_counts_the_image_s_items_by_state(case: ScannedCase) -> None:
    assert case.report()["summary"]["by_state"] == {
        "allocated": {"files": 4, "matched": 1},  # p1.jpg, top.jpg, p4.jpg, notes.txt
        "deleted": {"files": 2, "matched": 2},
    }


def test_a_deleted_item_says_where_it_was_and_items_outside_images_do_not(case: ScannedCase) -> None:
    items = case.items()
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


def test_items_csv_has_the_state_and_location_columns_last(case: ScannedCase) -> None:
    text = (case.out / "items.csv").read_text()
    rows = {row["path"]: row for row in csv.DictReader(io.StringIO(text))}
    header = next(csv.reader(io.StringIO(text)))
    assert header[-len(LOCATION_COLUMNS) - 1 :] == ["state", *LOCATION_COLUMNS]
    fat = rows["exhibit.E01!/p1/DCIM/_2.jpg"]
    assert (fat["state"], fat["partition"], fat["filesystem"], fat["offset"]) == ("deleted", "1", "fat16", str(1 << 20))
    assert all(rows["photos/loose.jpg"][column] == "" for column in ["state", *LOCATION_COLUMNS])


def test_the_html_report_shows_states_and_where_items_were(case: ScannedCase) -> None:
    html = (case.out / "report.html").read_text()
    assert "Found in disk images, by state" in html and "deleted, in exhibit.E01, partition 2" in html


def test_the_vics_export_carries_state_and_file_system_dates(case: ScannedCase) -> None:
    where = case.items()["exhibit.E01!/p2/p5.jpg"]["location"]
    vics = json.loads((case.out / "case.vics.json").read_text())
    copies = {
        f"{copy['FilePath']}/{copy['FileName']}": copy
        for media in vics["value"][0]["Media"]
        for copy in media["MediaFiles"]
    }
    assert copies["exhibit.E01!/p2/p5.jpg"]["ItemState"] == "deleted"
    assert copies["exhibit.E01!/p2/p5.jpg"]["Created"] == where["created"]
    assert copies["exhibit.E01!/p2/p5.jpg"]["Modified"] == where["modified"]
    assert "ItemState" not in copies["photos/loose.jpg"]


def test_the_manifest_holds_the_verified_acquisition_hashes(case: ScannedCase) -> None:
    manifest = json.loads((case.out / "manifest.json").read_text())
    (described,) = manifest["images"]
    stored = {"md5": hashlib.md5(case.raw).hexdigest(), "sha1": hashlib.sha1(case.raw).hexdigest()}
    assert (described["path"], described["format"], described["stored_hashes"]) == ("exhibit.E01", "ewf", stored)
    assert described["verification"]["result"] == "verified" and described["verification"]["computed"] == stored


def test_an_image_read_by_two_workers_at_once_gives_the_report_one_worker_gives(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    tmp_path = tmp_path_factory.mktemp("shared-scan")
    evidence = tmp_path / "evidence"
    disk = standard_disk(tmp_path / "build", "exhibit.dd")
    evidence.mkdir()
    disk.path.rename(evidence / "exhibit.dd")
    with open(evidence / "exhibit.dd", "r+b") as handle:  # a picture in the ext4 partition's free space
        handle.seek(39 << 20)
        handle.write(picture(41))
    home = tmp_path / "home"
    reports = []
    for workers in ("1", "2"):
        out = tmp_path / f"case-{workers}"
        result = invoke(["scan", str(evidence), "--case", "OP-SHARE", "--out", str(out), "--workers", workers], home)
        assert result.exit_code == 0, result.output
        report = json.loads((out / "report.json").read_text())
        manifest = json.loads((out / "manifest.json").read_text())
        reports.append((report["items"], report["summary"], manifest["images"]))
    assert reports[0] == reports[1]
    items, summary, images = reports[0]
    assert [image["path"] for image in images] == ["exhibit.dd"]
    assert summary["by_state"]["carved"]["files"] == 1
    assert len({item["id"] for item in items}) == len(items) == summary["files"]
