"""Graded videos into a bank by their frames (``review export-bank``): a real
scan keeps an unmatched video's vPDQ frame hashes in ``case.sqlite`` (never
in the reports), the export adds them as ``bank add`` adds a video, and the
next scan finds a re-encoded copy. A case scanned before frames were kept
exports its videos by their digests and says so; a resumed scan keeps the
frames of the pieces done before it was stopped. Videos are generated from
benign scikit-image pictures."""

from __future__ import annotations

import json
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import skimage.data
from builders import panning_frames, video_of
from PIL import Image
from support import invoke

from childsafe.config import Settings
from childsafe.review import GradeBook, load_review_items
from childsafe.triage import ScanProgress, ScanRequest, scan_evidence
from childsafe.triage.state import CASE_STORE, STATE_FOLDER, ScanState

#: Scenes of 6 s at 25 frames a second: vPDQ hashes one frame a second of each.
UNKNOWN, KNOWN = panning_frames(150, seed=1), panning_frames(150, seed=2)


def _ok(args: list[str], home: Path) -> str:
    result = invoke(args, home)
    assert result.exit_code == 0, result.output
    return result.stdout


def _scan(evidence: Path, case: str, out: Path, home: Path) -> dict[str, dict[str, Any]]:
    """Scan ``evidence`` into ``out``; its report's items by file name."""
    _ok(["scan", str(evidence), "--case", case, "--out", str(out), "--workers", "1"], home)
    return {Path(item["path"]).name: item for item in json.loads((out / "report.json").read_text())["items"]}


@pytest.fixture
def graded(tmp_path: Path) -> dict[str, Any]:
    """A scan against a bank knowing a picture and a video, with an unknown
    video and a damaged one (no frame can be hashed) left for review, both graded B."""
    home, evidence, out = tmp_path / "home", tmp_path / "evidence", tmp_path / "case"
    evidence.mkdir()
    (evidence / "unknown.mp4").write_bytes(video_of(UNKNOWN, 25))
    (evidence / "known.mp4").write_bytes(video_of(KNOWN, 25))
    (evidence / "damaged.mp4").write_bytes(video_of(UNKNOWN[:50], 25)[:1500])  # its header, no frame
    Image.fromarray(skimage.data.coffee()).save(tmp_path / "coffee.jpg", quality=90)
    _ok(["bank", "create", "known", "--scheme", "uk"], home)
    _ok(["bank", "add", "known", str(tmp_path / "coffee.jpg"), str(evidence / "known.mp4"), "--category", "C"], home)
    items = _scan(evidence, "OP-VIDEO-1", out, home)
    assert items["known.mp4"]["matches"] and items["damaged.mp4"]["media_type"] == "video"
    assert items["damaged.mp4"]["vpdq"] is None and items["unknown.mp4"]["vpdq"]["frames"] >= 6
    ids = {Path(item.label).name: item.id for item in load_review_items(out)}
    assert sorted(ids) == ["damaged.mp4", "unknown.mp4"]
    with GradeBook(out) as book:
        book.grade([ids["unknown.mp4"], ids["damaged.mp4"]], "B", "pc-smith")
    return {"home": home, "out": out, "ids": ids, "items": items, "tmp": tmp_path}


def test_a_graded_video_enters_by_its_frames_and_the_next_scan_finds_a_re_encoded_copy(
    graded: dict[str, Any],
) -> None:
    home, out, ids, items = graded["home"], graded["out"], graded["ids"], graded["items"]
    # The case keeps the unknown video's frames, and only its: not the matched video's, nor the damaged one's.
    with closing(ScanState.of_case(out)) as store:
        frames = store.frames(ids["unknown.mp4"])
        assert frames is not None and frames.digest() == items["unknown.mp4"]["vpdq"]["digest"]
        assert store.frames(ids["damaged.mp4"]) is None and store.frames(items["known.mp4"]["id"]) is None
    # The frames never reach the reports (nor any other output but the item store).
    outputs = [path for path in out.rglob("*") if path.is_file() and path.name != CASE_STORE]
    assert {"report.json", "manifest.json"} <= {path.name for path in outputs}
    assert not any(bytes(row).hex().encode() in path.read_bytes() for path in outputs for row in frames.hashes)

    def export() -> dict[str, Any]:
        return dict(json.loads(_ok(["review", "export-bank", str(out), "--bank", "graded", "--json"], home)))

    first = export()
    assert first == {
        "bank": "graded", "added": 2, "already_in_bank": 0, "not_indecent": 0, "awaiting_confirmation": 0,
        "videos_without_frames": 1,
    }  # fmt: skip
    assert export() == {**first, "added": 0, "already_in_bank": 2}  # idempotent
    shown = json.loads(_ok(["bank", "show", "graded", "--json"], home))
    assert shown["entries"] == 2 and shown["signals"]["vpdq"] == 1
    exported = _ok(["bank", "export", "graded", "--format", "csv"], home)
    assert "graded B in case OP-VIDEO-1 by pc-smith at" in exported

    # The next case holds the unknown video re-encoded: other bytes, codec, container and bitrate.
    evidence = graded["tmp"] / "evidence-2"
    evidence.mkdir()
    (evidence / "copy.avi").write_bytes(video_of(UNKNOWN, 25, codec="mpeg4", container="avi", bitrate=400_000))
    again = _scan(evidence, "OP-VIDEO-2", graded["tmp"] / "case-2", home)
    copy = again["copy.avi"]
    assert copy["sha1"] != items["unknown.mp4"]["sha1"]
    assert [(m["bank"], m["signal"], m["category"]) for m in copy["matches"]] == [("graded", "vpdq", "B")]
    assert copy["matches"][0]["source_id"] == f"OP-VIDEO-1:{ids['unknown.mp4']}"
    assert copy["matches"][0]["query_percent"] >= 80.0


def test_a_case_from_before_frames_were_kept_exports_its_videos_by_digests_and_says_so(
    graded: dict[str, Any],
) -> None:
    home, ids = graded["home"], graded["ids"]
    old = graded["tmp"] / "old-case"
    shutil.copytree(graded["out"], old)
    with sqlite3.connect(old / CASE_STORE) as db:  # as an older childsafe left it: no table of frames
        db.execute("DROP TABLE item_frames")
    printed = _ok(["review", "export-bank", str(old), "--bank", "old"], home)
    assert "2 graded items added" in printed
    assert "2 graded videos entered by their digests only" in printed and "scan the evidence again" in printed
    entries = _ok(["bank", "export", "old", "--format", "csv"], home)
    assert "vpdq" not in json.loads(_ok(["bank", "show", "old", "--json"], home))["signals"]
    assert graded["items"]["unknown.mp4"]["sha256"] in entries
    with closing(ScanState.of_case(old)) as store:
        assert store.frames(ids["unknown.mp4"]) is None


def test_a_resumed_scan_keeps_the_frames_of_what_it_read_before(tmp_path: Path) -> None:
    home, evidence, out = tmp_path / "home", tmp_path / "evidence", tmp_path / "case"
    evidence.mkdir()
    (evidence / "a.mp4").write_bytes(video_of(UNKNOWN, 25))
    (evidence / "b.mp4").write_bytes(video_of(KNOWN, 25))
    settings = Settings.from_env({"CHILDSAFE_HOME": str(home)})
    request = ScanRequest(evidence, "OP-RESUME", out, workers=1)

    def stop(progress: ScanProgress) -> None:
        raise KeyboardInterrupt  # the investigator stops the scan after its first video

    with pytest.raises(KeyboardInterrupt):
        scan_evidence(request, settings, stop)
    with closing(ScanState(out)) as state:
        assert len(state.done_tasks()) == 1
        [before] = list(state.items())
        kept = state.frames(before.id)
        assert kept is not None and kept.digest() == (before.vpdq or {})["digest"]
    assert (out / STATE_FOLDER).is_dir() and not (out / CASE_STORE).exists()

    result = scan_evidence(ScanRequest(evidence, "OP-RESUME", out, workers=1, resume=True), settings)
    assert (result.done_before, result.read_now) == (1, 1)
    with closing(ScanState.of_case(out)) as store:
        stored = {item.hashes.path: item for item in store.items()}
        assert sorted(Path(label).name for label in stored) == ["a.mp4", "b.mp4"]
        for item in stored.values():
            frames = store.frames(item.id)
            assert frames is not None and frames.digest() == (item.vpdq or {})["digest"]
        resumed = store.frames(before.id)
        assert resumed is not None and resumed.to_columns() == kept.to_columns()
