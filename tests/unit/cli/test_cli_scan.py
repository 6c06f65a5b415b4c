"""``childsafe scan`` in-process on a generated case: exact counts, archives,
hostile input, read-only evidence, the reports and their manifest, the audit
anchor. The case is scanned once a module; each test checks one thing of it.
(A scan killed and resumed is in tests/e2e/test_scan_killed.py.)"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skimage.data
from builders import bomb_png
from PIL import Image, ImageEnhance
from support import invoke


def _jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def photos() -> dict[str, Image.Image]:
    """Benign photos bundled with scikit-image."""
    return {
        name: Image.fromarray(getattr(skimage.data, name)())
        for name in ("coffee", "chelsea", "astronaut", "rocket", "hubble_deep_field")
    }


def build_case(root: Path, photos: dict[str, Image.Image]) -> tuple[Path, Path]:
    """The evidence folder and a folder of the 'known' originals for the banks."""
    known = root / "known"
    coffee, chelsea, astronaut = _jpeg(photos["coffee"]), _png(photos["chelsea"]), _jpeg(photos["astronaut"])
    _write(known / "coffee.jpg", coffee)
    _write(known / "chelsea.png", chelsea)
    _write(known / "astronaut.jpg", astronaut)
    evidence = root / "evidence"
    _write(evidence / "photos" / "coffee.jpg", coffee)  # exact copy
    _write(evidence / "photos" / "holiday.txt", chelsea)  # renamed, wrong extension
    small = photos["coffee"].resize((300, 200), Image.Resampling.LANCZOS)
    _write(evidence / "edits" / "coffee-small.jpg", _jpeg(small, 70))  # resized, recompressed
    _write(evidence / "edits" / "chelsea-rot90.png", _png(photos["chelsea"].rotate(90, expand=True)))
    bright = ImageEnhance.Brightness(photos["astronaut"])
    _write(evidence / "edits" / "astronaut-bright.jpg", _jpeg(bright.enhance(1.25)))
    _write(evidence / "edits" / "astronaut-bright-fp.jpg", _jpeg(bright.enhance(1.15)))  # suppressed
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:
        archive.writestr("deep/coffee.jpg", coffee)
        archive.writestr("../../escape.jpg", chelsea)
    outer = io.BytesIO()
    with tarfile.open(fileobj=outer, mode="w:gz") as archive:
        for name, data in (("inner.zip", inner.getvalue()), ("notes.txt", b"meeting notes\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    _write(evidence / "archives" / "outer.tar.gz", outer.getvalue())
    (evidence / "archives").mkdir(exist_ok=True)
    with zipfile.ZipFile(evidence / "archives" / "zeros.zip", "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("zeros.bin", "w") as member:
            for _ in range(64):
                member.write(bytes(1 << 20))
    _write(evidence / "bad" / "bomb.png", bomb_png(30000, 30000))
    _write(evidence / "bad" / "truncated.jpg", coffee[: len(coffee) // 2])
    rng = np.random.default_rng(5)
    _write(evidence / "bad" / "random.bin", rng.bytes(5000))
    _write(evidence / "bad" / "random.jpg", rng.bytes(5000))
    os.symlink("loop-b", evidence / "bad" / "loop-a")
    os.symlink("loop-a", evidence / "bad" / "loop-b")
    _write(evidence / "clean" / "rocket.jpg", _jpeg(photos["rocket"]))
    _write(evidence / "clean" / "hubble.png", _png(photos["hubble_deep_field"]))
    return evidence, known


def _tree_digest(root: Path) -> str:
    """Paths, contents, link targets and modification times of a whole tree."""
    digest = hashlib.sha256()
    for folder, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        digest.update(f"D {folder} {os.lstat(folder).st_mtime_ns}\n".encode())
        for name in sorted(files):
            path = os.path.join(folder, name)
            st = os.lstat(path)
            content = os.readlink(path).encode() if os.path.islink(path) else Path(path).read_bytes()
            digest.update(
                f"F {path} {st.st_mtime_ns} {st.st_size} {st.st_mode}\n".encode() + hashlib.sha256(content).digest()
            )
    return digest.hexdigest()


def _set_up_banks(known: Path, home: Path, evidence: Path) -> None:
    assert invoke(["bank", "create", "police", "--scheme", "uk"], home).exit_code == 0
    for name, category in (("coffee.jpg", "A"), ("chelsea.png", "B"), ("astronaut.jpg", "C")):
        added = invoke(["bank", "add", "police", str(known / name), "--category", category], home)
        assert added.exit_code == 0, added.output
    # Threshold 0: the suppress entry silences this one near-duplicate, not its neighbours.
    made = invoke(["bank", "create", "false-positives", "--kind", "suppress", "--pdq-threshold", "0"], home)
    assert made.exit_code == 0, made.output
    added = invoke(["bank", "add", "false-positives", str(evidence / "edits" / "astronaut-bright-fp.jpg")], home)
    assert added.exit_code == 0, added.output


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory, photos: dict[str, Image.Image]) -> dict[str, Any]:
    """The generated case scanned twice (two workers, then one) into two output folders."""
    root = tmp_path_factory.mktemp("scan")
    home = root / "home"
    evidence, known = build_case(root, photos)
    _set_up_banks(known, home, evidence)
    before = _tree_digest(evidence)
    out = root / "case-out"
    result = invoke(["scan", str(evidence), "--case", "OP-TEST-1", "--out", str(out), "--workers", "2", "--json"], home)
    assert result.exit_code == 0, result.output
    after = _tree_digest(evidence)
    again = invoke(["scan", str(evidence), "--case", "OP-TEST-1", "--out", str(root / "again"), "--workers", "1"], home)
    assert again.exit_code == 0, again.output
    report = json.loads((out / "report.json").read_text())
    return {
        "root": root, "home": home, "evidence": evidence, "out": out, "again": root / "again",
        "digests": (before, after), "report": report, "items": {item["path"]: item for item in report["items"]},
        "manifest": json.loads((out / "manifest.json").read_text()),
    }  # fmt: skip


pytestmark = pytest.mark.slow  # the case is scanned twice: about 20 s


def test_the_evidence_is_not_changed(scanned: dict[str, Any]) -> None:
    before, after = scanned["digests"]
    assert after == before


def test_the_output_folder_holds_the_reports_and_nothing_else(scanned: dict[str, Any]) -> None:
    assert sorted(p.name for p in scanned["out"].iterdir()) == [
        "case.sqlite",  # the case's items, for its reports written again after review
        "case.vics.json",
        "items.csv",
        "manifest.json",
        "report.html",
        "report.json",
    ]


def test_the_summary_has_the_exact_counts(scanned: dict[str, Any]) -> None:
    assert scanned["report"]["summary"] == {
        "files": 21,
        "images": 12,
        "videos": 0,
        "errors": 5,
        "matched_files": 7,
        "matched_unique": 5,
        "unmatched_images": 5,
        "by_category": {"A": {"files": 3, "unique": 2}, "B": {"files": 3, "unique": 2}, "C": {"files": 1, "unique": 1}},
        "videos_by_category": {},
        "graded_by_category": {},
    }


def test_items_are_in_path_order(scanned: dict[str, Any]) -> None:
    assert list(scanned["items"]) == sorted(scanned["items"])


def test_a_renamed_image_is_typed_by_its_bytes_and_matched(scanned: dict[str, Any]) -> None:
    holiday = scanned["items"]["photos/holiday.txt"]
    assert (holiday["mime"], holiday["category"]) == ("image/png", "B")


def test_members_of_nested_archives_are_matched(scanned: dict[str, Any]) -> None:
    assert scanned["items"]["archives/outer.tar.gz!/inner.zip!/deep/coffee.jpg"]["category"] == "A"


def test_a_member_named_to_escape_is_matched_and_never_written(scanned: dict[str, Any]) -> None:
    assert scanned["items"]["archives/outer.tar.gz!/inner.zip!/../../escape.jpg"]["category"] == "B"
    root = scanned["root"]
    assert not (root / "escape.jpg").exists() and not (scanned["evidence"].parent.parent / "escape.jpg").exists()


def test_a_turned_copy_is_matched_with_its_transform(scanned: dict[str, Any]) -> None:
    (rotated,) = [m for m in scanned["items"]["edits/chelsea-rot90.png"]["matches"] if m["signal"] == "pdq"]
    assert rotated["transform"] != "none"


def test_a_suppressed_near_duplicate_has_no_matches(scanned: dict[str, Any]) -> None:
    assert scanned["items"]["edits/astronaut-bright-fp.jpg"]["matches"] == []


def test_a_large_member_is_read_whole(scanned: dict[str, Any]) -> None:
    assert scanned["items"]["archives/zeros.zip!/zeros.bin"]["size"] == 64 << 20


def test_bad_files_are_error_items(scanned: dict[str, Any]) -> None:
    items = scanned["items"]
    assert "decompression" in items["bad/bomb.png"]["error"] or "pixel" in items["bad/bomb.png"]["error"]
    assert "symbolic link" in items["bad/loop-a"]["error"]
    assert items["bad/random.jpg"]["error"]
    assert items["bad/random.bin"]["error"] is None  # not named like a picture: just digested


def test_duplicates_are_the_files_with_one_sha1(scanned: dict[str, Any]) -> None:
    items = scanned["items"]
    assert {d["sha1"] for d in scanned["report"]["duplicates"]} == {
        items["photos/coffee.jpg"]["sha1"],
        items["photos/holiday.txt"]["sha1"],
    }


def test_the_report_names_the_banks(scanned: dict[str, Any]) -> None:
    assert [b["name"] for b in scanned["report"]["banks"]] == ["false-positives", "police"]


def test_the_manifest_digests_every_report(scanned: dict[str, Any]) -> None:
    files = scanned["manifest"]["files"]
    assert sorted(files) == ["case.vics.json", "items.csv", "report.html", "report.json"]
    for name, digest in files.items():
        assert hashlib.sha256((scanned["out"] / name).read_bytes()).hexdigest() == digest


def test_the_manifest_names_the_banks_and_the_command(scanned: dict[str, Any]) -> None:
    manifest = scanned["manifest"]
    assert {b["name"]: b["entries"] for b in manifest["banks"]} == {"false-positives": 1, "police": 3}
    evidence, out = str(scanned["evidence"]), str(scanned["out"])
    assert manifest["command"] == ["childsafe", "scan", evidence, "--case", "OP-TEST-1", "--out", out, "--workers", "2",
                                   "--json"]  # fmt: skip


def test_the_csv_has_a_row_an_item(scanned: dict[str, Any]) -> None:
    rows = list(csv.DictReader(io.StringIO((scanned["out"] / "items.csv").read_text())))
    assert len(rows) == 21 and {r["category"] for r in rows} == {"A", "B", "C", ""}


def test_the_html_report_shows_no_picture(scanned: dict[str, Any]) -> None:
    html = (scanned["out"] / "report.html").read_text()
    assert "<img" not in html and "OP-TEST-1" in html and "../../escape.jpg" in html


def test_the_vics_case_export_lists_each_matched_picture_once_with_its_files(scanned: dict[str, Any]) -> None:
    vics = json.loads((scanned["out"] / "case.vics.json").read_text())
    media = vics["value"][0]["Media"]
    assert vics["value"][0]["CaseNumber"] == "OP-TEST-1" and len(media) == 5
    coffee = next(m for m in media if m["SHA1"] == scanned["items"]["photos/coffee.jpg"]["sha1"])
    assert sorted(f["FilePath"] + "/" + f["FileName"] for f in coffee["MediaFiles"]) == [
        "archives/outer.tar.gz!/inner.zip!/deep/coffee.jpg",
        "photos/coffee.jpg",
    ]


def test_the_same_evidence_and_banks_give_the_same_items(scanned: dict[str, Any]) -> None:
    assert json.loads((scanned["again"] / "report.json").read_text())["items"] == scanned["report"]["items"]


def test_each_scan_is_audited_with_the_reports_of_its_manifest(scanned: dict[str, Any]) -> None:
    listed = invoke(["audit", "list", "--action", "scan", "--json"], scanned["home"]).stdout.splitlines()
    audit = [json.loads(line) for line in listed]
    assert len(audit) == 2 and audit[0]["detail"]["case_id"] == "OP-TEST-1"
    assert audit[0]["detail"]["files"] == scanned["manifest"]["files"]


def test_the_chain_verifies_against_the_manifests_anchor(scanned: dict[str, Any]) -> None:
    verified = invoke(["audit", "verify", "--json"], scanned["home"])
    assert verified.exit_code == 0 and json.loads(verified.stdout)["intact"] is True
    manifest = scanned["out"] / "manifest.json"
    anchored = invoke(["audit", "verify", "--manifest", str(manifest), "--json"], scanned["home"])
    assert anchored.exit_code == 0 and json.loads(anchored.stdout)["anchor"] == scanned["manifest"]["audit"]
