"""Banks and their file formats: import, export, round trips, atomic failure."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, func, select
from support import DATA

from childsafe.banks import bank_info, create_bank, export_bank, import_bank_file, list_banks
from childsafe.errors import InputFormatError, UsageError
from childsafe.signals.vpdq import parse_vpdq
from childsafe.store.models import EntryVideo

MD5 = ["0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210", "00112233445566778899aabbccddeeff"]
SHA1 = ["da39a3ee5e6b4b0d3255bfef95601890afd80709", "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12"]
PDQ = ["f8f8f0cee0f4a84f06370a22038f67f0b36e2ed596221e1d33e6b39c4e9c9b22", "0" * 63 + "1"]
SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _export(engine: Engine, name: str, fmt: str) -> str:
    out = io.StringIO()
    export_bank(engine, name, fmt, out)
    return out.getvalue()


def _entries(engine: Engine, name: str) -> list[tuple[object, ...]]:
    """A bank's content independent of ids: (sorted signals, category, source id,
    note), without the vpdq column, empty in banks of pictures."""
    header, *lines = _export(engine, name, "csv").splitlines()
    video = header.split(",").index("vpdq")
    rows = [line.split(",") for line in lines]
    assert all(row[video] == "" for row in rows)
    return sorted(tuple(row[:video] + row[video + 1 :]) for row in rows)


TEXT_LIST = (DATA / "text" / "hash-list.txt").read_text()  # every line shape a text list may have


def test_text_import_reads_every_line_shape(engine: Engine, tmp_path: Path) -> None:
    path = _write(tmp_path, "list.txt", TEXT_LIST)
    result = import_bank_file(engine, "uk-list", path, create={"scheme": "uk"})
    assert result.to_dict() == {"bank": "uk-list", "added": 5, "updated": 0, "removed": 0, "rejected": 0}
    info = bank_info(engine, "uk-list")
    assert info.signals == {"md5": 2, "pdq": 1, "sha1": 1, "sha256": 1}
    assert (info.scheme, info.imports[0]["file"], info.imports[0]["format"]) == ("uk", "list.txt", "text")
    import hashlib

    assert info.imports[0]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_reimport_adds_nothing_and_replace_makes_the_bank_equal_to_the_file(engine: Engine, tmp_path: Path) -> None:
    path = _write(tmp_path, "list.txt", TEXT_LIST)
    import_bank_file(engine, "b", path, create={"scheme": "uk"})
    again = import_bank_file(engine, "b", path)
    assert (again.added, again.updated, again.removed) == (0, 0, 0)
    changed = _write(tmp_path, "changed.txt", f"md5 {MD5[1]} C\n{MD5[2]}\n")
    merged = import_bank_file(engine, "b", changed)
    assert (merged.added, merged.updated, merged.removed) == (1, 1, 0)
    replaced = import_bank_file(engine, "b", changed, replace=True)
    assert (replaced.added, replaced.updated, replaced.removed) == (0, 0, 4)
    assert bank_info(engine, "b").entries == 2
    assert _export(engine, "b", "text").splitlines()[1:] == [f"md5 {MD5[1]} C", f"md5 {MD5[2]}"]


BAD_LINES = [
    (f"{MD5[0]}\nmd5 {MD5[1][:-1]}\n", "line 2: md5 value must be 32 hexadecimal characters"),
    (f"{MD5[0]}\n\n{MD5[1][:-1]}x\n", "line 3: md5 value must be 32 hexadecimal"),
    (f"{MD5[0]}\nnot-a-hash\n", "line 2: not a hash: 'not-a-hash'"),
    (f"{MD5[0]}\nmd5 {'g' * 32}\n", "line 2: md5 value must be 32 hexadecimal"),
    (f"phash {MD5[0]}\n", "line 1: unknown signal 'phash'"),
    (f"{PDQ[0]}\n", "line 1: a bare 64-hex hash may be sha256 or pdq"),
    (f"{MD5[0]}\n{MD5[1]}\nmd5 {MD5[0].upper()}\n", "line 3: duplicate of line 1"),
    (f"md5 {MD5[0]} Z\n", "line 1: category 'Z' is not in the 'uk' scheme"),
]


@pytest.mark.parametrize(("text", "message"), BAD_LINES, ids=[m.split(":")[1].strip()[:30] for _, m in BAD_LINES])
def test_a_bad_line_names_file_and_line_and_changes_nothing(
    engine: Engine, tmp_path: Path, text: str, message: str
) -> None:
    good = _write(tmp_path, "good.txt", f"md5 {MD5[2]} A\n")
    import_bank_file(engine, "b", good, create={"scheme": "uk"})
    before = (_entries(engine, "b"), bank_info(engine, "b").imports)
    bad = _write(tmp_path, "bad.txt", text)
    with pytest.raises(InputFormatError) as error:
        import_bank_file(engine, "b", bad)
    assert str(error.value).startswith(f"bad.txt: {message}")
    assert (_entries(engine, "b"), bank_info(engine, "b").imports) == before
    with pytest.raises(InputFormatError):
        import_bank_file(engine, "new-bank", bad, create={"scheme": "uk"})
    assert [b.name for b in list_banks(engine)] == ["b"]  # not even created


def test_csv_import_with_any_column_order_and_several_values(engine: Engine, tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "list.csv",
        f"Note,PDQ,id,MD5,category,extra\n"
        f"first,{PDQ[0]} {PDQ[1]},vic-1,{MD5[0]},A1,x\n"
        f'"with, comma",,vic-2,{MD5[1].upper()},b2,y\n',
    )
    result = import_bank_file(engine, "n", path, create={"scheme": "ncmec"})
    assert (result.added, result.rejected) == (2, 0)
    assert _entries(engine, "n") == sorted(
        [
            (MD5[0], "", "", f"{PDQ[1]} {PDQ[0]}", "A1", "vic-1", "first"),
            (MD5[1], "", "", "", "B2", "vic-2", '"with', ' comma"'),
        ]
    )


@pytest.mark.parametrize("version", ["1", "2"])
def test_vics_hash_sets_of_both_versions(engine: Engine, version: str) -> None:
    path = DATA / "vics" / f"hash-set-v{version}.json"
    result = import_bank_file(engine, "caid", path, create={"scheme": "uk"})
    assert (result.added, result.rejected) == (2, 1)  # PhotoDNA-only records cannot be used
    assert _entries(engine, "caid") == sorted(
        [(MD5[0], SHA1[0], "", "", "A", "101", ""), (MD5[1], "", "", PDQ[0], "C", "102", "")]
    )
    assert bank_info(engine, "caid").imports[0]["format"] == "vics"


def test_vics_case_export_and_us_profile(engine: Engine, tmp_path: Path) -> None:
    case = {
        "@odata.context": "http://example.invalid/2.0/$metadata#Cases",
        "value": [
            {
                "CaseNumber": "2026-001",
                "Media": [{"MediaID": "m1", "Category": 2, "SHA1": SHA1[1], "MediaFiles": [{"FileName": "a.jpg"}]}],
            }
        ],
    }
    path = _write(tmp_path, "case.json", json.dumps(case))
    result = import_bank_file(engine, "us", path, create={"scheme": "us-vics"})
    assert result.added == 1
    assert _entries(engine, "us") == [("", SHA1[1], "", "", "2", "m1", "")]


@pytest.mark.parametrize("fmt", ["csv", "vics", "text"])
def test_an_export_reimported_gives_the_same_bank(engine: Engine, tmp_path: Path, fmt: str) -> None:
    if fmt == "text":  # text keeps one signal a line: use single-signal entries
        source = _write(tmp_path, "s.txt", f"md5 {MD5[0]} A\nsha1 {SHA1[0]}\npdq {PDQ[1]} C\n")
    else:
        source = _write(
            tmp_path,
            "s.csv",
            f"md5,sha1,pdq,category,id,note\n{MD5[0]},{SHA1[0]},{PDQ[0]} {PDQ[1]},A,10,a note\n{MD5[1]},,,,,\n,,{PDQ[1]},C,x-3,\n",
        )
    import_bank_file(engine, "original", source, create={"scheme": "uk"})
    exported = _write(tmp_path, f"export.{fmt}", _export(engine, "original", fmt))
    import_bank_file(engine, "copy", exported, file_format=fmt, create={"scheme": "uk"})
    assert _entries(engine, "copy") == _entries(engine, "original")
    again = import_bank_file(engine, "copy", exported, file_format=fmt)
    assert again.added == 0


def test_ncmec_categories_survive_a_vics_round_trip(engine: Engine, tmp_path: Path) -> None:
    source = _write(tmp_path, "n.csv", f"md5,category\n{MD5[0]},A2\n{MD5[1]},B1\n")
    import_bank_file(engine, "n", source, create={"scheme": "ncmec"})
    exported = _write(tmp_path, "n.json", _export(engine, "n", "vics"))
    import_bank_file(engine, "n2", exported, create={"scheme": "ncmec"})
    assert _entries(engine, "n2") == _entries(engine, "n")


VICS_BAD = [
    ("not json at all", "not valid JSON"),
    ('{"odata.metadata": "x", "items": []}', 'not a VICS file: it has no top-level "value" list'),
    ('{"value": [{"MediaID": 1, "MD5": "abc"}]}', "record 1 (MediaID 1): md5 value must be 32"),
    ('{"value": [{"MD5": "' + MD5[0] + '"}, {"MD5": "' + MD5[0] + '"}]}', "record 2: duplicate of record 1"),
    ('{"value": [{"MD5": "' + MD5[0] + '", "Category": "one"}]}', "record 1: VICS Category must be a number"),
]


@pytest.mark.parametrize(("text", "message"), VICS_BAD, ids=[m[:25] for _, m in VICS_BAD])
def test_bad_vics_files_are_clear_errors(engine: Engine, tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, "bad.json", text)
    with pytest.raises(InputFormatError, match="^bad.json: " + message.replace("(", r"\(").replace(")", r"\)")):
        import_bank_file(engine, "v", path, file_format="vics", create={"scheme": "uk"})
    assert list_banks(engine) == []


def test_a_2gb_file_that_is_not_a_hash_list_fails_fast(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "disk.img"
    with open(path, "wb") as handle:  # sparse: takes no disk space
        handle.truncate(2 * 1024**3)
    with pytest.raises(InputFormatError, match="line 1: longer than"):
        import_bank_file(engine, "b", path)
    random_path = tmp_path / "random.bin"
    random_path.write_bytes(os.urandom(1 << 20))
    with pytest.raises(InputFormatError, match="not UTF-8 text|longer than|not a hash"):
        import_bank_file(engine, "b", random_path)


def test_bank_settings_are_checked(engine: Engine) -> None:
    with pytest.raises(UsageError, match="unknown category scheme"):
        create_bank(engine, "x", scheme="eu")
    with pytest.raises(UsageError, match="between 0 and 63"):
        create_bank(engine, "x", pdq_threshold=64)
    with pytest.raises(UsageError, match="bad bank name"):
        create_bank(engine, "../x")
    create_bank(engine, "x")
    with pytest.raises(UsageError, match="already exists"):
        create_bank(engine, "x")


def test_every_bank_and_key_change_leaves_an_audit_event(engine: Engine, tmp_path: Path) -> None:
    from childsafe.actions.keys import create_api_key, revoke_api_key
    from childsafe.banks import BankAction, NewEntry, add_entries, delete_bank, remove_entry
    from childsafe.store import audit_events, verify_audit_chain

    # allow_private: the admin setting that skips the destination check, so the test looks up no DNS name.
    hook = BankAction(
        "webhook", "https://hooks.example.org/in?token=t0ps3cret", "signing-secret-0123", allow_private=True
    )
    create_bank(engine, "hooked", scheme="uk", action=hook, actor="api:curator-key")
    import_bank_file(engine, "listed", _write(tmp_path, "list.txt", TEXT_LIST), create={"scheme": "uk"})
    with pytest.raises(InputFormatError):  # a failed import changes nothing, and leaves no event
        import_bank_file(engine, "listed", _write(tmp_path, "bad.txt", "not-a-hash\n"))
    ids = add_entries(engine, "hooked", [NewEntry([("md5", MD5[0])], "A"), NewEntry([("md5", MD5[1])])]).ids
    add_entries(engine, "hooked", [NewEntry([("md5", MD5[0])], "A")])  # already there: no change, no event
    remove_entry(engine, "hooked", ids[0])
    delete_bank(engine, "hooked")
    key = create_api_key(engine, "platform", "matcher")
    revoke_api_key(engine, "platform", actor="admin")
    events = [(e.action, e.actor, e.detail) for e in audit_events(engine)]
    me = events[1][1]
    assert events == [
        ("bank.create", "api:curator-key", {"bank": "hooked", "scheme": "uk", "kind": "match", "pdq_threshold": None,
                                            "action": "webhook", "webhook_host": "hooks.example.org"}),
        ("bank.create", me, {"bank": "listed", "scheme": "uk", "kind": "match", "pdq_threshold": None,
                             "action": "none"}),
        ("bank.import", me, {"bank": "listed", "file": "list.txt", "format": "text", "replace": False, "added": 5,
                             "updated": 0, "removed": 0, "rejected": 0, "sha256": events[2][2]["sha256"]}),
        ("bank.add", me, {"bank": "hooked", "added": 2, "given": 2, "first_ids": ids}),
        ("bank.remove", me, {"bank": "hooked", "entry_id": ids[0]}),
        ("bank.delete", me, {"bank": "hooked", "kind": "match", "entries": 1, "action": "webhook",
                             "webhook_host": "hooks.example.org"}),
        ("apikey.create", me, {"name": "platform", "role": "matcher"}),
        ("apikey.revoke", "admin", {"name": "platform", "role": "matcher"}),
    ]  # fmt: skip
    assert len(events[2][2]["sha256"]) == 64
    text = json.dumps(events)
    assert key not in text and "t0ps3cret" not in text and "signing-secret" not in text
    assert verify_audit_chain(engine).intact


def test_every_format_module_is_registered() -> None:
    import pkgutil

    import childsafe.banks.formats as formats_package
    from childsafe.banks.formats import format_names

    modules = {m.name for m in pkgutil.iter_modules(formats_package.__path__)} - {"base", "registry"}
    assert modules == set(format_names()) == {"text", "csv", "vics", "vpdq"}


def _frames_text(seed: int, count: int) -> str:
    rng = np.random.default_rng(seed)
    return "".join(f"{n * 25},{90 - n},{rng.bytes(32).hex()},{n:.3f}\n" for n in range(count))


def test_video_entries_keep_their_frames_through_every_path_and_format(engine: Engine, tmp_path: Path) -> None:
    """A vPDQ file (the straight path on SQLite), then a CSV naming one and
    holding another inline, a re-import (the staged path) and a --replace:
    the frames are kept exactly, their digest identifies the entry."""
    first = _write(tmp_path, "V1.vpdq.txt", _frames_text(1, 5))
    (tmp_path / "V2.vpdq.txt").write_text(_frames_text(2, 3))
    assert import_bank_file(engine, "videos", first, file_format="vpdq", create={"scheme": "uk"}).added == 1
    inline = json.dumps([f"{f.pdq},{f.quality},{f.timestamp:.3f}" for f in parse_vpdq(_frames_text(3, 4))])
    listing = tmp_path / "list.csv"
    with open(listing, "w", newline="") as handle:
        csv.writer(handle).writerows([["id", "category", "vpdq"], ["V2", "A", "V2.vpdq.txt"], ["V3", "", inline]])
    result = import_bank_file(engine, "videos", listing)
    assert (result.added, result.updated) == (2, 0)
    assert import_bank_file(engine, "videos", listing).added == 0  # the same frames: the same entries
    exported = json.loads(_export(engine, "videos", "vics"))["value"]
    by_id = {record["MediaID"]: record for record in exported}
    assert set(by_id) == {"V1", "V2", "V3"} and by_id["V2"]["Category"] == 1  # A in the UK profile
    frames = [
        (m["FrameNumber"], m["AlternativeHashes"][0]["Quality"], m["AlternativeHashes"][0]["HashValue"], m["Timestamp"])
        for m in by_id["V1"]["MediaFiles"]
    ]
    assert frames == [(f.frame, f.quality, f.pdq, f.timestamp) for f in parse_vpdq(_frames_text(1, 5))]
    # Replaced by the CSV alone: V1 goes, its frames with it; V2 and V3 stay.
    assert import_bank_file(engine, "videos", listing, replace=True).removed == 1
    assert {r["MediaID"] for r in json.loads(_export(engine, "videos", "vics"))["value"]} == {"V2", "V3"}
    assert bank_info(engine, "videos").signals == {"vpdq": 2}
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(EntryVideo)) == 2
