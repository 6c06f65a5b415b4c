"""The typed records of a scan: matches saved in the scan state and read back
by field name, and the case summary, whose JSON keeps the docs/spec.md key order
(with ``by_state`` only when the evidence held a disk image)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from childsafe.errors import InputFormatError
from childsafe.index import Match
from childsafe.signals import FileHashes
from childsafe.triage.case import summarise
from childsafe.triage.provenance import Location, Provenance, State
from childsafe.triage.reading import ScannedItem
from childsafe.triage.records import CaseSummary, CategoryCount, StateCount
from childsafe.triage.state import ScanState

_MATCH = Match(
    bank="purple-umbrella",
    entry_id="7",
    source_id=None,
    signal="pdq",
    value="f" * 64,
    distance=3,
    category="B",
    transform="rot90",
)


def _hashes(path: str, sha1: str) -> FileHashes:
    return FileHashes(path, 10, "image", "image/jpeg", "0" * 32, sha1, "0" * 64, None, None, None)


def test_match_from_dict_reads_back_what_to_dict_wrote() -> None:
    assert Match.from_dict(json.loads(json.dumps(_MATCH.to_dict()))) == _MATCH


def test_match_from_dict_refuses_an_unknown_field() -> None:
    with pytest.raises(InputFormatError, match="unknown field.* score"):
        Match.from_dict({**_MATCH.to_dict(), "score": 0.9})


def test_match_from_dict_refuses_a_missing_field() -> None:
    record = _MATCH.to_dict()
    del record["transform"]
    with pytest.raises(InputFormatError, match="missing field.* transform"):
        Match.from_dict(record)


def test_scan_state_gives_back_saved_matches_as_match_records(tmp_path: Path) -> None:
    state = ScanState(tmp_path)
    try:
        state.save_task("a.jpg", [(ScannedItem(_hashes("a.jpg", "1" * 40), None), [_MATCH])])
        (item,) = state.items()
    finally:
        state.close()
    assert item.matches == [_MATCH]


def test_case_summary_json_keeps_the_spec_key_order() -> None:
    summary = CaseSummary(1, 2, 3, 4, 5, 6, 7, {"B": CategoryCount(8, 9), "uncategorised": CategoryCount(10, 11)})
    assert json.dumps(summary.to_dict()) == (
        '{"files": 1, "images": 2, "videos": 3, "errors": 4, "matched_files": 5, "matched_unique": 6,'
        ' "unmatched_images": 7, "by_category": {"B": {"files": 8, "unique": 9},'
        ' "uncategorised": {"files": 10, "unique": 11}}, "videos_by_category": {},'
        ' "graded_by_category": {}}'
    )


def test_summarise_counts_each_item_under_its_most_severe_category(tmp_path: Path) -> None:
    worse = Match(**{**_MATCH.to_dict(), "entry_id": "8", "category": "A"})
    unlabelled = Match(**{**_MATCH.to_dict(), "category": None})
    state = ScanState(tmp_path)
    try:
        state.save_task("a.jpg", [(ScannedItem(_hashes("a.jpg", "1" * 40), None), [_MATCH, worse])])
        state.save_task("b.jpg", [(ScannedItem(_hashes("b.jpg", "1" * 40), None), [_MATCH])])
        state.save_task("c.jpg", [(ScannedItem(_hashes("c.jpg", "2" * 40), None), [unlabelled])])
        state.save_task("d.jpg", [(ScannedItem(_hashes("d.jpg", "3" * 40), None), [])])
        summary = summarise(state.items(), {"purple-umbrella": "uk"})
    finally:
        state.close()
    assert summary == CaseSummary(
        files=4,
        images=4,
        videos=0,
        errors=0,
        matched_files=3,
        matched_unique=2,
        unmatched_images=1,
        by_category={"A": CategoryCount(1, 1), "B": CategoryCount(1, 1), "uncategorised": CategoryCount(1, 1)},
    )
    assert list(summary.by_category) == ["A", "B", "uncategorised"]


def test_case_summary_json_has_by_state_after_by_category_only_when_set() -> None:
    summary = CaseSummary(
        1, 1, 0, 0, 1, 1, 0, {"B": CategoryCount(1, 1)}, by_state={"deleted": StateCount(files=1, matched=1)}
    )
    assert json.dumps(summary.to_dict()) == (
        '{"files": 1, "images": 1, "videos": 0, "errors": 0, "matched_files": 1, "matched_unique": 1,'
        ' "unmatched_images": 0, "by_category": {"B": {"files": 1, "unique": 1}}, "videos_by_category": {},'
        ' "graded_by_category": {}, "by_state": {"deleted": {"files": 1, "matched": 1}}}'
    )
    assert "by_state" not in CaseSummary(0, 0, 0, 0, 0, 0, 0, {}).to_dict()


def test_summarise_counts_items_of_disk_images_by_state_in_state_order(tmp_path: Path) -> None:
    def found(state: State) -> Provenance:
        return Provenance(state, Location("exhibit.E01", partition=1, offset=1 << 20, filesystem="fat16"))

    state = ScanState(tmp_path)
    try:
        state.save_task("loose.jpg", [(ScannedItem(_hashes("loose.jpg", "0" * 40), None), [_MATCH])])
        state.save_task(
            "exhibit.E01",
            [
                (ScannedItem(_hashes("exhibit.E01!/p1/a.jpg", "1" * 40), None, (0,), provenance=found("deleted")), []),
                (
                    ScannedItem(_hashes("exhibit.E01!/p1/b.jpg", "2" * 40), None, (1,), provenance=found("allocated")),
                    [],
                ),
                (
                    ScannedItem(_hashes("exhibit.E01!/p1/c.jpg", "3" * 40), None, (2,), provenance=found("deleted")),
                    [_MATCH],
                ),
            ],
        )
        summary = summarise(state.items(), {"purple-umbrella": "uk"})
    finally:
        state.close()
    assert summary.by_state == {"allocated": StateCount(1, 0), "deleted": StateCount(2, 1)}
    assert list(summary.by_state) == ["allocated", "deleted"]
