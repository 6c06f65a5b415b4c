"""``childsafe scan`` in-process: requests it refuses, one file as evidence,
and the manifest's audit anchor catching deleted events."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from support import invoke


@pytest.fixture
def evidence(tmp_path: Path) -> Path:
    folder = tmp_path / "evidence"
    folder.mkdir()
    (folder / "a.txt").write_bytes(b"hello")
    return folder


def test_missing_evidence_is_exit_2(home: Path, tmp_path: Path) -> None:
    missing = invoke(["scan", str(tmp_path / "nothing"), "--case", "C", "--out", str(tmp_path / "o1")], home)
    assert missing.exit_code == 2 and "does not exist" in missing.stderr


def test_an_output_folder_inside_the_evidence_is_refused_and_not_made(home: Path, evidence: Path) -> None:
    inside = invoke(["scan", str(evidence), "--case", "C", "--out", str(evidence / "out")], home)
    assert inside.exit_code == 2 and "outside the evidence" in inside.stderr
    assert not (evidence / "out").exists()


def test_an_output_folder_that_is_not_empty_is_refused(home: Path, evidence: Path, tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_bytes(b"")
    busy = invoke(["scan", str(evidence), "--case", "C", "--out", str(tmp_path / "full")], home)
    assert busy.exit_code == 2 and "not empty" in busy.stderr


def test_resume_without_an_interrupted_scan_is_refused(home: Path, evidence: Path, tmp_path: Path) -> None:
    nothing = invoke(["scan", str(evidence), "--case", "C", "--out", str(tmp_path / "o2"), "--resume"], home)
    assert nothing.exit_code == 2 and "no interrupted scan" in nothing.stderr


def test_one_file_may_be_the_evidence(home: Path, evidence: Path, tmp_path: Path) -> None:
    single = invoke(["scan", str(evidence / "a.txt"), "--case", "C", "--out", str(tmp_path / "o3"), "--json"], home)
    assert single.exit_code == 0 and json.loads(single.stdout)["summary"]["files"] == 1


def test_deleted_events_are_caught_by_the_manifest_not_the_chain(home: Path, evidence: Path, tmp_path: Path) -> None:
    for out in ("first", "second"):
        assert invoke(["scan", str(evidence), "--case", "C", "--out", str(tmp_path / out)], home).exit_code == 0
    # Deleting the last events (both scans') leaves a shorter chain, whole in itself.
    with sqlite3.connect(home / "childsafe.db") as db:
        db.execute("DELETE FROM audit_events WHERE id >= (SELECT MIN(id) FROM audit_events WHERE action = 'scan')")
    assert invoke(["audit", "verify"], home).exit_code == 0
    truncated = invoke(["audit", "verify", "--manifest", str(tmp_path / "first" / "manifest.json")], home)
    assert truncated.exit_code == 1 and "deleted" in truncated.output
