"""A real ``childsafe scan`` process killed with SIGKILL part way resumes
to the very report an uninterrupted scan gives."""

from __future__ import annotations

import io
import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import skimage.data
from disk_builders import standard_disk
from PIL import Image, ImageEnhance
from support import invoke, run_cli


def _jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _evidence(tmp_path: Path, home: Path) -> Path:
    """80 photos in four folders, and a bank knowing one of them."""
    evidence = tmp_path / "evidence"
    base = Image.fromarray(skimage.data.coffee())
    for number in range(80):
        variant = ImageEnhance.Brightness(base).enhance(0.6 + number / 100).rotate(number * 4.5)
        _write(evidence / f"dir{number % 4}" / f"photo{number:03d}.jpg", _jpeg(variant, 85))
    known = tmp_path / "known"
    _write(known / "coffee.jpg", _jpeg(base))
    assert invoke(["bank", "create", "police", "--scheme", "uk"], home).exit_code == 0
    assert invoke(["bank", "add", "police", str(known / "coffee.jpg"), "--category", "A"], home).exit_code == 0
    return evidence


def _kill_part_way(
    evidence: Path, out: Path, env: dict[str, str], workers: str, enough: Callable[[list[bytes]], bool]
) -> list[bytes]:
    """Start a real scan, SIGKILL it once the keys of the tasks done are ``enough``; those keys."""
    process = subprocess.Popen(
        [sys.executable, "-m", "childsafe", "scan", str(evidence), "--case", "R", "--out", str(out)]
        + ["--workers", workers],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    state = out / ".childsafe-scan" / "state.sqlite"
    deadline = time.monotonic() + 120
    done: list[bytes] = []
    while time.monotonic() < deadline and not enough(done):
        time.sleep(0.05)
        if state.exists():
            try:
                with sqlite3.connect(state, timeout=1) as db:
                    done = [bytes(row[0]) for row in db.execute("SELECT task FROM done")]
            except sqlite3.Error:
                pass
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / "manifest.json").exists()
    return done


@pytest.mark.slow
def test_a_killed_scan_resumes_to_the_same_report(tmp_path: Path, cli_env: dict[str, str]) -> None:
    home = Path(cli_env["CHILDSAFE_HOME"])  # set up in this process; the scan that is killed is a real one
    evidence = _evidence(tmp_path, home)
    reference = invoke(
        ["scan", str(evidence), "--case", "R", "--out", str(tmp_path / "reference"), "--workers", "1"], home
    )
    assert reference.exit_code == 0, reference.output

    out = tmp_path / "killed"
    done = len(_kill_part_way(evidence, out, cli_env, "1", lambda done: len(done) >= 20))
    assert 20 <= done < 81, f"the scan was not caught part way ({done} done)"
    # (A partial report.json, written every 60 s and marked incomplete, is checked by
    # tests/e2e/test_hostile_evidence.py with --report-every 0: here it is seldom written at all.)

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


@pytest.mark.slow
def test_a_scan_killed_after_sharing_disk_images_over_workers_resumes_them_shared_with_fewer_workers(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    home = Path(cli_env["CHILDSAFE_HOME"])
    evidence = _evidence(tmp_path, home)
    for number in (1, 2):  # named to be read first: each is read in two shares by two workers
        disk = standard_disk(tmp_path / f"build-{number}", f"a-disk-{number}.dd")
        disk.path.rename(evidence / disk.path.name)
    reference = invoke(
        ["scan", str(evidence), "--case", "R", "--out", str(tmp_path / "reference"), "--workers", "1"], home
    )
    assert reference.exit_code == 0, reference.output

    out = tmp_path / "killed"
    done = _kill_part_way(evidence, out, cli_env, "2", lambda done: sum(b"\0share " in key for key in done) == 4)
    assert sum(b"\0share " in key for key in done) == 4, done  # both images, both shares: read first
    assert len(done) < 84, "the scan was not caught part way"
    # Resumed with one worker, the images are still known by their shares: not read again, not reported twice.
    resumed = run_cli(
        ["scan", str(evidence), "--case", "R", "--out", str(out), "--workers", "1", "--resume", "--json"],
        cli_env,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    final = json.loads((out / "report.json").read_text())
    expected = json.loads((tmp_path / "reference" / "report.json").read_text())
    assert final["items"] == expected["items"] and final["summary"] == expected["summary"]
