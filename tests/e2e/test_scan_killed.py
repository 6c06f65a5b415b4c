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
from pathlib import Path

import pytest
import skimage.data
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


@pytest.mark.slow
def test_a_killed_scan_resumes_to_the_same_report(tmp_path: Path, cli_env: dict[str, str]) -> None:
    evidence = tmp_path / "evidence"
    base = Image.fromarray(skimage.data.coffee())
    for number in range(80):
        variant = ImageEnhance.Brightness(base).enhance(0.6 + number / 100).rotate(number * 4.5)
        _write(evidence / f"dir{number % 4}" / f"photo{number:03d}.jpg", _jpeg(variant, 85))
    known = tmp_path / "known"
    _write(known / "coffee.jpg", _jpeg(base))
    home = Path(cli_env["CHILDSAFE_HOME"])  # set up in this process; the scan that is killed is a real one
    assert invoke(["bank", "create", "police", "--scheme", "uk"], home).exit_code == 0
    assert invoke(["bank", "add", "police", str(known / "coffee.jpg"), "--category", "A"], home).exit_code == 0
    reference = invoke(
        ["scan", str(evidence), "--case", "R", "--out", str(tmp_path / "reference"), "--workers", "1"], home
    )
    assert reference.exit_code == 0, reference.output

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
