"""``childsafe scan`` end to end on a generated case: exact counts, archives,
hostile input, read-only evidence, resume after SIGKILL."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from builders import bomb_png
from PIL import Image, ImageEnhance
from support import run_cli


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


def _set_up_banks(known: Path, env: dict[str, str], evidence: Path) -> None:
    assert run_cli(["bank", "create", "police", "--scheme", "uk"], env).returncode == 0
    for name, category in (("coffee.jpg", "A"), ("chelsea.png", "B"), ("astronaut.jpg", "C")):
        added = run_cli(["bank", "add", "police", str(known / name), "--category", category], env)
        assert added.returncode == 0, added.stderr
    # Threshold 0: the suppress entry silences this one near-duplicate, not its neighbours.
    assert (
        run_cli(["bank", "create", "false-positives", "--kind", "suppress", "--pdq-threshold", "0"], env).returncode
        == 0
    )
    assert (
        run_cli(["bank", "add", "false-positives", str(evidence / "edits" / "astronaut-bright-fp.jpg")], env).returncode
        == 0
    )


@pytest.mark.slow
def test_scan_of_a_generated_case_gives_the_exact_counts(
    tmp_path: Path, photos: dict[str, Image.Image], cli_env: dict[str, str]
) -> None:
    evidence, known = build_case(tmp_path, photos)
    _set_up_banks(known, cli_env, evidence)
    before = _tree_digest(evidence)
    out = tmp_path / "case-out"
    result = run_cli(
        ["scan", str(evidence), "--case", "OP-TEST-1", "--out", str(out), "--workers", "2", "--json"],
        cli_env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert _tree_digest(evidence) == before, "the evidence changed during the scan"
    assert sorted(p.name for p in out.iterdir()) == [
        "case.vics.json",
        "items.csv",
        "manifest.json",
        "report.html",
        "report.json",
    ]

    report = json.loads((out / "report.json").read_text())
    assert report["summary"] == {
        "files": 21,
        "images": 12,
        "videos": 0,
        "errors": 5,
        "matched_files": 7,
        "matched_unique": 5,
        "unmatched_images": 5,
        "by_category": {"A": {"files": 3, "unique": 2}, "B": {"files": 3, "unique": 2}, "C": {"files": 1, "unique": 1}},
    }
    items = {item["path"]: item for item in report["items"]}
    assert list(items) == sorted(items)
    assert items["photos/holiday.txt"]["mime"] == "image/png" and items["photos/holiday.txt"]["category"] == "B"
    assert items["archives/outer.tar.gz!/inner.zip!/deep/coffee.jpg"]["category"] == "A"
    assert items["archives/outer.tar.gz!/inner.zip!/../../escape.jpg"]["category"] == "B"
    assert not (tmp_path / "escape.jpg").exists() and not (evidence.parent.parent / "escape.jpg").exists()
    (rotated,) = [m for m in items["edits/chelsea-rot90.png"]["matches"] if m["signal"] == "pdq"]
    assert rotated["transform"] != "none"
    assert items["edits/astronaut-bright-fp.jpg"]["matches"] == []
    assert items["archives/zeros.zip!/zeros.bin"]["size"] == 64 << 20
    assert "decompression" in items["bad/bomb.png"]["error"] or "pixel" in items["bad/bomb.png"]["error"]
    assert "symbolic link" in items["bad/loop-a"]["error"]
    assert items["bad/random.bin"]["error"] is None and items["bad/random.jpg"]["error"]
    assert {d["sha1"] for d in report["duplicates"]} == {
        items["photos/coffee.jpg"]["sha1"],
        items["photos/holiday.txt"]["sha1"],
    }
    assert [b["name"] for b in report["banks"]] == ["false-positives", "police"]

    manifest = json.loads((out / "manifest.json").read_text())
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
    assert {b["name"]: b["entries"] for b in manifest["banks"]} == {"false-positives": 1, "police": 3}
    assert (
        manifest["command"][-6:] == ["--case", "OP-TEST-1", "--out", str(out), "--workers", "2"][-6:]
        or "scan" in manifest["command"]
    )

    rows = list(csv.DictReader(io.StringIO((out / "items.csv").read_text())))
    assert len(rows) == 21 and {r["category"] for r in rows} == {"A", "B", "C", ""}
    html = (out / "report.html").read_text()
    assert "<img" not in html and "OP-TEST-1" in html and "../../escape.jpg" in html
    vics = json.loads((out / "case.vics.json").read_text())
    media = vics["value"][0]["Media"]
    assert vics["value"][0]["CaseNumber"] == "OP-TEST-1" and len(media) == 5
    coffee = next(m for m in media if m["SHA1"] == items["photos/coffee.jpg"]["sha1"])
    assert sorted(f["FilePath"] + "/" + f["FileName"] for f in coffee["MediaFiles"]) == [
        "archives/outer.tar.gz!/inner.zip!/deep/coffee.jpg",
        "photos/coffee.jpg",
    ]

    # Same evidence, same banks: the same items; the scan is in the audit log.
    again = run_cli(
        ["scan", str(evidence), "--case", "OP-TEST-1", "--out", str(tmp_path / "again"), "--workers", "1"],
        cli_env,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "again" / "report.json").read_text())["items"] == report["items"]
    audit = [
        json.loads(line)
        for line in run_cli(["audit", "list", "--action", "scan", "--json"], cli_env).stdout.splitlines()
    ]
    assert len(audit) == 2 and audit[0]["detail"]["case_id"] == "OP-TEST-1"
    assert audit[0]["detail"]["files"] == manifest["files"]  # the reports the event records are the manifest's
    assert json.loads(run_cli(["audit", "verify", "--json"], cli_env).stdout)["intact"] is True
    anchored = run_cli(["audit", "verify", "--manifest", str(out / "manifest.json"), "--json"], cli_env)
    assert anchored.returncode == 0 and json.loads(anchored.stdout)["anchor"] == manifest["audit"]
    # Deleting the last events (both scans') is caught by the first scan's manifest, not by the chain alone.
    with sqlite3.connect(Path(cli_env["CHILDSAFE_HOME"]) / "childsafe.db") as db:
        db.execute("DELETE FROM audit_events WHERE id >= (SELECT MIN(id) FROM audit_events WHERE action = 'scan')")
    assert run_cli(["audit", "verify"], cli_env).returncode == 0
    truncated = run_cli(["audit", "verify", "--manifest", str(out / "manifest.json")], cli_env)
    assert truncated.returncode == 1 and "deleted" in truncated.stdout + truncated.stderr


def test_scan_refuses_bad_requests(tmp_path: Path, cli_env: dict[str, str]) -> None:
    evidence = tmp_path / "evidence"
    _write(evidence / "a.txt", b"hello")
    missing = run_cli(["scan", str(tmp_path / "nothing"), "--case", "C", "--out", str(tmp_path / "o1")], cli_env)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    inside = run_cli(["scan", str(evidence), "--case", "C", "--out", str(evidence / "out")], cli_env)
    assert inside.returncode == 2 and "outside the evidence" in inside.stderr
    assert not (evidence / "out").exists()
    full = tmp_path / "full"
    _write(full / "x", b"")
    busy = run_cli(["scan", str(evidence), "--case", "C", "--out", str(full)], cli_env)
    assert busy.returncode == 2 and "not empty" in busy.stderr
    nothing = run_cli(["scan", str(evidence), "--case", "C", "--out", str(tmp_path / "o2"), "--resume"], cli_env)
    assert nothing.returncode == 2 and "no interrupted scan" in nothing.stderr
    single = run_cli(["scan", str(evidence / "a.txt"), "--case", "C", "--out", str(tmp_path / "o3"), "--json"], cli_env)
    assert single.returncode == 0 and json.loads(single.stdout)["summary"]["files"] == 1


@pytest.mark.slow
def test_a_killed_scan_resumes_to_the_same_report(
    tmp_path: Path, photos: dict[str, Image.Image], cli_env: dict[str, str]
) -> None:
    evidence = tmp_path / "evidence"
    base = photos["coffee"]
    for number in range(80):
        variant = ImageEnhance.Brightness(base).enhance(0.6 + number / 100).rotate(number * 4.5)
        _write(evidence / f"dir{number % 4}" / f"photo{number:03d}.jpg", _jpeg(variant, 85))
    known = tmp_path / "known"
    _write(known / "coffee.jpg", _jpeg(base))
    run_cli(["bank", "create", "police", "--scheme", "uk"], cli_env)
    run_cli(["bank", "add", "police", str(known / "coffee.jpg"), "--category", "A"], cli_env)
    reference = run_cli(
        ["scan", str(evidence), "--case", "R", "--out", str(tmp_path / "reference"), "--workers", "1"],
        cli_env,
        timeout=300,
    )
    assert reference.returncode == 0, reference.stderr

    out = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "childsafe", "scan", str(evidence), "--case", "R", "--out", str(out), "--workers", "1"],
        env=cli_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    state = out / ".childsafe-scan" / "state.sqlite"
    deadline = time.monotonic() + 120
    done = 0
    while time.monotonic() < deadline and done < 20:
        time.sleep(0.05)
        if state.exists():
            try:
                with sqlite3.connect(state, timeout=1) as db:
                    done = db.execute("SELECT COUNT(*) FROM done").fetchone()[0]
            except sqlite3.Error:
                pass
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert 20 <= done < 81, f"the scan was not caught part way ({done} done)"
    assert not (out / "manifest.json").exists()
    if (out / "report.json").exists():  # rewritten as the scan goes (every 60 s): marked so
        assert json.loads((out / "report.json").read_text())["status"] == "incomplete"

    resumed = run_cli(
        ["scan", str(evidence), "--case", "R", "--out", str(out), "--workers", "2", "--resume", "--json"],
        cli_env,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    figures = json.loads(resumed.stdout)
    assert figures["done_before"] >= 19 and figures["read_now"] == 80 - figures["done_before"]
    final = json.loads((out / "report.json").read_text())
    expected = json.loads((tmp_path / "reference" / "report.json").read_text())
    assert final["items"] == expected["items"] and final["summary"] == expected["summary"]
    assert final["summary"]["matched_files"] >= 1
    assert not (out / ".childsafe-scan").exists()
