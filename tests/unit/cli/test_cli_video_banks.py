"""Video banks, in-process: vPDQ files imported (``--format vpdq``), videos
added with ``bank add``, round trips through CSV and VICS, and videos found
by ``match`` and ``scan`` by their frames, with the percentages and time
ranges, and a frame matching a known still picture. Videos are made here
from benign generated scenes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from builders import panning_frames, video_of, zip_of
from disk_builders import ext4_image, need
from PIL import Image
from support import invoke

from childsafe.signals.vpdq import parse_vpdq, vpdq_digest

#: Three unrelated scenes of 6 s at 25 frames a second.
SCENES = {seed: panning_frames(150, seed=seed) for seed in (0, 1, 2)}


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Known videos (as files), their vPDQ files, and the queries."""
    root = tmp_path_factory.mktemp("video-banks")
    known = root / "known"
    known.mkdir()
    for seed in (0, 1):
        (known / f"scene{seed}.mp4").write_bytes(video_of(SCENES[seed], 25))
    queries = root / "queries"
    queries.mkdir()
    # A re-encoded copy of scene 0 in another codec and container, a 3-second clip of scene 1,
    # and an unrelated scene.
    (queries / "copy.avi").write_bytes(video_of(SCENES[0], 25, codec="mpeg4", container="avi", bitrate=400_000))
    (queries / "clip.mp4").write_bytes(video_of(SCENES[1][50:125], 25))
    (queries / "other.mp4").write_bytes(video_of(SCENES[2], 25))
    home = root / "home"
    result = invoke(["hash", str(known), "--vpdq-out", str(root / "frames"), "--json"], home)
    assert result.exit_code == 0, result.output
    # Hotlines name the files after the video's id: V004.vpdq.txt.
    (root / "frames" / "scene0.mp4.vpdq.txt").rename(root / "frames" / "V004.vpdq.txt")
    return root


def _ok(args: list[str], home: Path) -> str:
    result = invoke(args, home)
    assert result.exit_code == 0, result.output
    return result.stdout


def _matched(home: Path, path: Path) -> dict[str, list[dict[str, Any]]]:
    lines = [json.loads(line) for line in _ok(["match", str(path), "--json"], home).splitlines()]
    return {Path(item["path"]).name: item["matches"] for item in lines}


def test_a_vpdq_file_is_one_entry_named_after_the_file_and_finds_a_re_encoded_copy(
    videos: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    frames = videos / "frames" / "V004.vpdq.txt"
    args = ["bank", "import", "known", str(frames), "--format", "vpdq", "--scheme", "uk", "--category", "A", "--json"]
    printed = _ok(args, home)
    assert json.loads(printed)["added"] == 1
    shown = json.loads(_ok(["bank", "show", "known", "--json"], home))
    assert shown["entries"] == 1 and shown["signals"]["vpdq"] == 1
    found = _matched(home, videos / "queries")
    [match] = found["copy.avi"]
    assert (match["bank"], match["source_id"], match["signal"], match["category"]) == ("known", "V004", "vpdq", "A")
    assert match["value"] == vpdq_digest(parse_vpdq(frames.read_text()))
    assert match["query_percent"] >= 80.0 and match["compared_percent"] >= 80.0
    assert match["query_ranges"][0][0] == 0.0 and match["query_ranges"][-1][1] >= 5.0
    assert found["clip.mp4"] == [] and found["other.mp4"] == []
    # Importing the same file again adds nothing: the entry is known by its frames' digest.
    assert json.loads(_ok(["bank", "import", "known", str(frames), "--format", "vpdq", "--json"], home))["added"] == 0


def test_a_video_added_by_bank_add_finds_a_clip_of_it_and_not_the_other_way(videos: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    _ok(["bank", "create", "known", "--scheme", "uk"], home)
    _ok(["bank", "add", "known", str(videos / "known" / "scene1.mp4"), "--category", "B"], home)
    found = _matched(home, videos / "queries")
    [match] = found["clip.mp4"]
    assert (match["signal"], match["category"], match["source_id"]) == ("vpdq", "B", "scene1.mp4")
    # All of the clip is in the known video; a third of the video is in the clip.
    assert match["query_percent"] == 100.0 and 30.0 <= match["compared_percent"] <= 70.0
    assert found["copy.avi"] == [] and found["other.mp4"] == []
    # The file itself matches by its digests too.
    exact = _matched(home, videos / "known" / "scene1.mp4")["scene1.mp4"]
    assert {m["signal"] for m in exact} == {"md5", "sha1", "sha256", "vpdq"}


def test_video_entries_survive_csv_and_vics_round_trips(videos: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    _ok(["bank", "import", "known", str(videos / "frames" / "V004.vpdq.txt"), "--format", "vpdq"], home)
    for file_format in ("csv", "vics"):
        exported = tmp_path / f"known.{file_format}"
        _ok(["bank", "export", "known", "--format", file_format, "--out", str(exported)], home)
        if file_format == "vics":
            [record] = json.loads(exported.read_text())["value"]
            assert record["MediaID"] == "V004" and len(record["MediaFiles"]) == 6
            assert record["MediaFiles"][1]["Timestamp"] == 1.0
        _ok(["bank", "import", f"again-{file_format}", str(exported), "--format", file_format], home)
        [match] = [m for m in _matched(home, videos / "queries" / "copy.avi")["copy.avi"] if m["bank"] != "known"]
        assert (match["bank"], match["source_id"], match["signal"]) == (f"again-{file_format}", "V004", "vpdq")
        _ok(["bank", "delete", f"again-{file_format}"], home)
    # Exported again from the copy, the entry has the same identity: importing into the first bank adds nothing.
    again = json.loads(_ok(["bank", "import", "known", str(tmp_path / "known.csv"), "--json"], home))
    assert again["added"] == 0


def test_a_csv_names_vpdq_files_beside_it(videos: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    listing = videos / "frames" / "list.csv"
    listing.write_text("id,category,vpdq\nV004,A,V004.vpdq.txt\n")
    _ok(["bank", "import", "hotline", str(listing), "--scheme", "uk", "--json"], home)
    [match] = _matched(home, videos / "queries" / "copy.avi")["copy.avi"]
    assert (match["source_id"], match["category"], match["signal"]) == ("V004", "A", "vpdq")
    listing.write_text("id,vpdq\nV005,missing.vpdq.txt\n")
    result = invoke(["bank", "import", "hotline", str(listing)], home)
    assert result.exit_code == 2 and "line 2: cannot read the vPDQ file 'missing.vpdq.txt'" in result.output


def test_a_digest_without_its_frames_or_a_bad_vpdq_file_is_refused(videos: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    listing = tmp_path / "list.txt"
    listing.write_text(f"vpdq {'ab' * 32}\n")
    result = invoke(["bank", "import", "b", str(listing)], home)
    assert result.exit_code == 2 and "line 1: a vpdq value needs the video's frame hashes" in result.output
    bad = tmp_path / "V9.vpdq.txt"
    bad.write_text("0,100," + "ab" * 32 + ",0.000\n1,100,nothex,1.000\n")
    result = invoke(["bank", "import", "b", str(bad), "--format", "vpdq"], home)
    assert result.exit_code == 2 and "line 2: the PDQ hash is not 64 hexadecimal characters" in result.output
    assert "b" not in _ok(["bank", "list"], home).split()  # nothing half-imported, not even the bank


def test_a_frame_of_a_video_matching_a_known_picture_is_a_match_with_its_time(videos: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    still = tmp_path / "still.png"
    Image.fromarray(SCENES[2][75]).save(still)  # the frame at 3 s of the unrelated scene
    _ok(["bank", "create", "stills", "--scheme", "uk"], home)
    _ok(["bank", "add", "stills", str(still), "--category", "C"], home)
    found = _matched(home, videos / "queries")
    [match] = found["other.mp4"]
    assert (match["signal"], match["transform"], match["category"], match["timestamp"]) == ("pdq", "frame", "C", 3.0)
    assert match["distance"] <= 31 and "query_percent" not in match
    assert found["copy.avi"] == [] and found["clip.mp4"] == []


def test_a_scan_counts_matched_videos_apart_by_category(videos: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    _ok(["bank", "create", "known", "--scheme", "uk"], home)
    _ok(["bank", "add", "known", str(videos / "known" / "scene0.mp4"), "--category", "A"], home)
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    for name in ("copy.avi", "other.mp4"):
        (evidence / name).write_bytes((videos / "queries" / name).read_bytes())
    Image.fromarray(np.asarray(SCENES[0][0])).save(evidence / "frame.png")  # a picture: not counted as a video
    out = tmp_path / "case"
    _ok(["scan", str(evidence), "--case", "OP-VIDEO-1", "--out", str(out), "--workers", "1"], home)
    report = json.loads((out / "report.json").read_text())
    summary = report["summary"]
    assert (summary["videos"], summary["matched_files"]) == (2, 1)
    assert summary["by_category"] == {"A": {"files": 1, "unique": 1}}
    assert summary["videos_by_category"] == {"A": {"files": 1, "unique": 1}}
    items = {item["path"]: item for item in report["items"]}
    [match] = items["copy.avi"]["matches"]
    assert match["signal"] == "vpdq" and match["query_percent"] >= 80.0
    assert items["copy.avi"]["vpdq"]["frames"] == 6
    page = (out / "report.html").read_text()
    assert f"{match['query_percent']:g}% of this video" in page and "<h2>Videos by category</h2>" in page
    # A contact sheet for the unmatched video only: a known video's frames never reach the disk.
    sheets = sorted(path.name for path in (out / "contact-sheets").iterdir())
    assert sheets == [items["other.mp4"]["id"] + ".jpg"]
    sheet = out / "contact-sheets" / sheets[0]
    with Image.open(sheet) as picture:
        assert (picture.format, picture.size) == ("JPEG", (960, 576))  # 20 tiles of 192 x 144, 5 a row
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["contact_sheets"] == {f"contact-sheets/{sheets[0]}": hashlib.sha256(sheet.read_bytes()).hexdigest()}


def test_a_bank_set_to_find_compilations_finds_a_known_video_inside_one(videos: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    rule = ["--vpdq-query-percent", "0", "--vpdq-compared-percent", "80"]
    shown = json.loads(_ok(["bank", "create", "whole", *rule, "--json"], home))
    assert (shown["vpdq_query_percent"], shown["vpdq_compared_percent"]) == (0.0, 80.0)
    _ok(["bank", "create", "default"], home)
    for bank in ("whole", "default"):
        _ok(["bank", "add", bank, str(videos / "known" / "scene1.mp4")], home)
    compilation = tmp_path / "compilation.mp4"
    compilation.write_bytes(video_of(SCENES[2] + SCENES[1] + SCENES[2], 25))
    [match] = _matched(home, compilation)["compilation.mp4"]
    assert (match["bank"], match["signal"], match["compared_percent"]) == ("whole", "vpdq", 100.0)
    assert match["query_percent"] < 50.0  # most of the compilation is something else: Meta's default finds nothing
    result = invoke(["bank", "create", "bad", "--vpdq-compared-percent", "120"], home)
    assert result.exit_code == 2 and "--vpdq-compared-percent must be a percentage (0-100), got 120" in result.output


def test_a_video_inside_an_archive_is_hashed_from_memory_matched_and_its_sheet_named_by_its_id(
    videos: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    _ok(["bank", "create", "known", "--scheme", "uk"], home)
    _ok(["bank", "add", "known", str(videos / "known" / "scene0.mp4"), "--category", "B"], home)
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    members = [(name, (videos / "queries" / name).read_bytes()) for name in ("copy.avi", "other.mp4")]
    (evidence / "phone.zip").write_bytes(zip_of(members))
    out = tmp_path / "case"
    _ok(["scan", str(evidence), "--case", "OP-VIDEO-2", "--out", str(out), "--workers", "1"], home)
    items = {item["path"]: item for item in json.loads((out / "report.json").read_text())["items"]}
    [match] = items["phone.zip!/copy.avi"]["matches"]
    assert (match["signal"], match["category"]) == ("vpdq", "B")
    unmatched = items["phone.zip!/other.mp4"]
    assert unmatched["error"] is None and unmatched["vpdq"]["frames"] == 6
    assert "/" in unmatched["id"]  # a member's id has its place in the archive
    assert [path.name for path in (out / "contact-sheets").iterdir()] == [unmatched["id"].replace("/", "-") + ".jpg"]
    # Over the limit for reading from memory: digests only, and the item says so (never a silent "no match").
    small = tmp_path / "small"
    result = invoke(["scan", str(evidence), "--case", "OP-VIDEO-3", "--out", str(small)], home,
                    env={"CHILDSAFE_VIDEO_KEEP_BYTES": "1000"})  # fmt: skip
    assert result.exit_code == 0, result.output
    items = {item["path"]: item for item in json.loads((small / "report.json").read_text())["items"]}
    assert "cannot be read twice is over the 1,000-byte limit" in items["phone.zip!/copy.avi"]["error"]
    assert items["phone.zip!/copy.avi"]["vpdq"] is None and not (small / "contact-sheets").exists()


def test_videos_in_a_disk_image_deleted_ones_too_are_matched_by_their_frames(videos: Path, tmp_path: Path) -> None:
    need("mkfs.ext4", "debugfs")
    home = tmp_path / "home"
    _ok(["bank", "create", "known", "--scheme", "uk"], home)
    _ok(["bank", "add", "known", str(videos / "known" / "scene0.mp4"), "--category", "A"], home)
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    copy, other = ((videos / "queries" / name).read_bytes() for name in ("copy.avi", "other.mp4"))
    card = ext4_image(tmp_path / "card.img", 16, {"DCIM/copy.avi": copy, "DCIM/other.mp4": other}, ("DCIM/copy.avi",))
    card.rename(evidence / "card.img")  # without the folder it was made from
    out = tmp_path / "case"
    _ok(["scan", str(evidence), "--case", "OP-VIDEO-4", "--out", str(out), "--workers", "1"], home)
    report = json.loads((out / "report.json").read_text())
    found = {item["path"]: item for item in report["items"] if item["media_type"] == "video"}
    assert sorted(found) == ["card.img!/DCIM/copy.avi", "card.img!/DCIM/other.mp4"]
    [deleted] = [item for item in found.values() if item["state"] == "deleted"]
    [match] = deleted["matches"]
    assert (match["signal"], match["category"]) == ("vpdq", "A") and deleted["vpdq"]["frames"] == 6
    [kept] = [item for path, item in found.items() if path.endswith("DCIM/other.mp4")]
    assert kept["state"] == "allocated" and kept["matches"] == [] and kept["vpdq"]["frames"] == 6
    assert report["summary"]["videos_by_category"] == {"A": {"files": 1, "unique": 1}}
    assert [path.name for path in (out / "contact-sheets").iterdir()] == [kept["id"].replace("/", "-") + ".jpg"]
