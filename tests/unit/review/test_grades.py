"""Grades of a case's unmatched pictures (``childsafe/review/grades.py``) and
graded pictures into a bank (``review export-bank``): on a real scan of
benign photos, whose re-scan then finds what was graded."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import skimage.data
from PIL import Image
from support import invoke

from childsafe.banks.schemes import category_to_vics
from childsafe.errors import UsageError
from childsafe.review import GRADES_FILE, GradeBook, case_scheme, grade_keys, load_review_items

PHOTOS = ("coffee", "chelsea", "rocket", "astronaut", "camera")


@pytest.fixture
def case(tmp_path: Path) -> dict[str, Any]:
    """A scan against a UK bank holding one photo: four photos left for review."""
    home, evidence, out = tmp_path / "home", tmp_path / "evidence", tmp_path / "case"
    evidence.mkdir()
    for name in PHOTOS:
        Image.fromarray(getattr(skimage.data, name)()).convert("RGB").save(evidence / f"{name}.jpg", quality=90)
    for args in (["bank", "create", "known", "--scheme", "uk"], ["bank", "add", "known", str(evidence / "coffee.jpg")]):
        assert invoke(args, home).exit_code == 0
    done = invoke(["scan", str(evidence), "--case", "OP-GRADE-1", "--out", str(out), "--workers", "1"], home)
    assert done.exit_code == 0, done.output
    ids = {Path(item.label).stem: item.id for item in load_review_items(out)}
    assert sorted(ids) == sorted(PHOTOS[1:])
    return {"home": home, "evidence": evidence, "out": out, "ids": ids}


def test_a_group_is_graded_at_once_and_undone_whole(case: dict[str, Any]) -> None:
    ids = case["ids"]
    with GradeBook(case["out"]) as book:
        assert book.scheme == "uk" and book.categories() == ("A", "B", "C", "not-indecent")
        book.grade([ids["chelsea"]], "c", "pc-smith")
        book.grade([ids["chelsea"], ids["rocket"]], "B", "pc-smith")
        grades = book.grades()
        assert {item: g.category for item, g in grades.items()} == {ids["chelsea"]: "B", ids["rocket"]: "B"}
        assert grades[ids["rocket"]].to_dict()["reviewer"] == "pc-smith"
        assert sorted(book.undo("pc-smith")) == sorted([ids["chelsea"], ids["rocket"]])
        assert {item: g.category for item, g in book.grades().items()} == {ids["chelsea"]: "C"}  # as before
        book.undo("pc-smith")
        assert book.grades() == {}
        with pytest.raises(UsageError, match="pc-smith has no change to undo"):
            book.undo("pc-smith")
        assert [c["action"] for c in book.history()] == ["grade", "grade", "undo", "undo"]
    # Stored with the case: another session sees the same.
    with GradeBook(case["out"]) as again:
        assert again.grades() == {} and len(again.history()) == 4
    assert (case["out"] / GRADES_FILE).is_file()


def test_bad_grades_and_someone_elses_later_change_are_refused(case: dict[str, Any]) -> None:
    ids = case["ids"]
    with GradeBook(case["out"]) as book:
        with pytest.raises(UsageError, match="a grade is one of A, B, C, not-indecent"):
            book.grade([ids["rocket"]], "A1", "pc-smith")
        book.grade([ids["rocket"]], "A", "pc-smith")
        book.grade([ids["rocket"]], "not-indecent", "pc-jones")
        with pytest.raises(UsageError, match="another change graded these items since"):
            book.undo("pc-smith")
        with pytest.raises(UsageError, match="a second reviewer must confirm it"):
            book.confirm([ids["rocket"]], "pc-jones")


def test_the_scheme_is_the_banks_and_mixed_schemes_are_refused(case: dict[str, Any], tmp_path: Path) -> None:
    assert case_scheme(case["out"]) == "uk"
    mixed = tmp_path / "mixed"
    shutil.copytree(case["out"], mixed)
    manifest = json.loads((mixed / "manifest.json").read_text())
    manifest["banks"].append({**manifest["banks"][0], "name": "other", "scheme": "ncmec"})
    (mixed / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UsageError, match="different category schemes"):
        case_scheme(mixed)


def test_each_schemes_grades_have_their_keys_project_vics_as_autopsy_has_them(
    case: dict[str, Any], tmp_path: Path
) -> None:
    assert grade_keys("uk") == (("1", "A"), ("2", "B"), ("3", "C"), ("4", "not-indecent"))
    assert grade_keys("ncmec") == (("1", "A1"), ("2", "A2"), ("3", "B1"), ("4", "B2"), ("5", "not-indecent"))
    # Project VIC: each category by its own number, 0-4, and 5 (Autopsy's "non-pertinent") for not-indecent.
    assert grade_keys("us-vics") == (("0", "0"), ("1", "1"), ("2", "2"), ("3", "3"), ("4", "4"), ("5", "not-indecent"))
    assert grade_keys("none") == (("1", "not-indecent"),)
    # A case scanned against a Project VIC bank is graded with those keys, and each key's category is a grade.
    vics = tmp_path / "vics"
    shutil.copytree(case["out"], vics, ignore=shutil.ignore_patterns(GRADES_FILE))
    manifest = json.loads((vics / "manifest.json").read_text())
    manifest["banks"] = [{**bank, "scheme": "us-vics"} for bank in manifest["banks"]]
    (vics / "manifest.json").write_text(json.dumps(manifest))
    item = next(iter(load_review_items(vics))).id
    with GradeBook(vics) as book:
        assert book.keys() == grade_keys("us-vics")
        for _, category in book.keys():
            book.grade([item], category, "pc-smith")
            assert book.grades()[item].category == category


def test_graded_pictures_enter_a_bank_and_the_next_scan_finds_them(case: dict[str, Any]) -> None:
    home, out, ids = case["home"], case["out"], case["ids"]
    with GradeBook(out) as book:
        book.grade([ids["chelsea"]], "A", "pc-smith")
        book.grade([ids["rocket"], ids["astronaut"]], "B", "pc-smith")
        book.grade([ids["camera"]], "not-indecent", "pc-smith")

    def export() -> dict[str, Any]:
        result = invoke(["review", "export-bank", str(out), "--bank", "graded", "--json"], home)
        assert result.exit_code == 0, result.output
        return dict(json.loads(result.stdout))

    # Category A waits for a second reviewer; not indecent never enters.
    first = export()
    assert first == {
        "bank": "graded", "added": 2, "already_in_bank": 0, "not_indecent": 1, "awaiting_confirmation": 1,
        "videos_without_frames": 0,
    }  # fmt: skip
    with GradeBook(out) as book:
        assert book.confirm([ids["chelsea"]], "pc-jones") == 1
    assert export() == {**first, "added": 1, "already_in_bank": 2, "awaiting_confirmation": 0}
    # The reports were written again with the grades, the manifest over the new files, anchored in the audit log.
    report = json.loads((out / "report.json").read_text())
    graded = {Path(i["path"]).stem: (i["grade"] or {}).get("category") for i in report["items"]}
    assert graded == {"coffee": None, "chelsea": "A", "rocket": "B", "astronaut": "B", "camera": "not-indecent"}
    assert report["items"][0]["grade"] is None or report["items"][0]["grade"]["reviewer"] == "pc-smith"
    assert report["summary"]["graded_by_category"] == {"A": {"files": 1, "unique": 1}, "B": {"files": 2, "unique": 2}}
    assert report["summary"]["by_category"] == {"uncategorised": {"files": 1, "unique": 1}}  # matched apart
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["files"]["report.json"] == hashlib.sha256((out / "report.json").read_bytes()).hexdigest()
    assert manifest["case_id"] == "OP-GRADE-1" and "reviewed_at" in manifest
    vics = json.loads((out / "case.vics.json").read_text())["value"][0]["Media"]
    by_sha1 = {record["SHA1"]: record for record in vics}
    chelsea = next(i for i in report["items"] if Path(i["path"]).stem == "chelsea")
    assert by_sha1[chelsea["sha1"]]["Category"] == category_to_vics("uk", "A")
    assert by_sha1[chelsea["sha1"]]["Comments"].startswith("graded A by pc-smith at")
    assert len(vics) == 4  # the matched coffee and the three graded indecent; not the camera
    verified = invoke(["audit", "verify", "--manifest", str(out / "manifest.json")], home)
    assert verified.exit_code == 0, verified.output
    exported = invoke(["bank", "export", "graded", "--format", "csv"], home).stdout
    assert "graded A in case OP-GRADE-1 by pc-smith at" in exported and "confirmed by pc-jones" in exported
    # The next scan of the same evidence finds the graded pictures, in their grades.
    again = case["out"].parent / "again"
    done = invoke(["scan", str(case["evidence"]), "--case", "OP-GRADE-2", "--out", str(again), "--workers", "1"], home)
    assert done.exit_code == 0, done.output
    items = {Path(i["path"]).stem: i for i in json.loads((again / "report.json").read_text())["items"]}
    assert {name: items[name]["category"] for name in PHOTOS} == {
        "coffee": "uncategorised", "chelsea": "A", "rocket": "B", "astronaut": "B", "camera": None,
    }  # fmt: skip
    assert {m["bank"] for m in items["chelsea"]["matches"]} == {"graded"}


def test_a_folder_that_is_not_a_case_is_refused(tmp_path: Path) -> None:
    result = invoke(["review", "export-bank", str(tmp_path), "--bank", "graded"], tmp_path / "home")
    assert result.exit_code == 2 and "no report.json in" in result.output
