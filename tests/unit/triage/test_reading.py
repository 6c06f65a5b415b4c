"""Reading one piece of evidence under budgets and poison positions
(``childsafe/triage/reading.py``), on archives built in the test."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Hashable
from pathlib import Path

import numpy as np
import pytest
from builders import tar_of as _tar_of_bytes_names
from builders import zip_of as _zip

from childsafe.errors import UsageError
from childsafe.media import MediaLimits, ScanBudgets
from childsafe.triage.reading import ScannedItem, read_task
from childsafe.triage.sources import Task


def _tar(members: list[tuple[str, bytes]]) -> bytes:
    return _tar_of_bytes_names([(name.encode(), data) for name, data in members])


def _read(
    tmp_path: Path,
    data: bytes,
    budgets: ScanBudgets | None = None,
    poisoned: dict[Hashable, str] | None = None,
    keys: list[Hashable] | None = None,
    name: str = "evidence.bin",
) -> dict[str, ScannedItem]:
    path = tmp_path / name
    path.write_bytes(data)
    task = Task(str(path), name, len(data), None)
    progress = keys.append if keys is not None else (lambda key: None)
    items = list(read_task(task, MediaLimits(), budgets, progress, poisoned))
    labels = [item.hashes.path for item in items]
    assert len(labels) == len(set(labels))
    return {item.hashes.path: item for item in items}


def test_members_of_one_name_have_their_own_positions(tmp_path: Path) -> None:
    path = tmp_path / "a.tar"
    path.write_bytes(_tar([("a.txt", b"one"), ("a.txt", b"two")]))
    scanned = list(read_task(Task(str(path), "a.tar", path.stat().st_size, None), MediaLimits()))
    assert [(s.hashes.path, s.position) for s in scanned] == [
        ("a.tar!/a.txt", (0,)),
        ("a.tar!/a.txt", (1,)),
        ("a.tar", ()),
    ]
    assert scanned[0].hashes.sha1 == hashlib.sha1(b"one").hexdigest()
    assert scanned[1].hashes.sha1 == hashlib.sha1(b"two").hexdigest()


def test_member_over_its_size_budget_fails_alone(tmp_path: Path) -> None:
    budgets = ScanBudgets(max_member_bytes=1 << 20)
    data = _zip([("big.bin", bytes(3 << 20)), ("small.txt", b"fine")])
    items = _read(tmp_path, data, budgets, name="a.zip")
    big = items["a.zip!/big.bin"]
    assert big.hashes.error is not None and "CHILDSAFE_MAX_MEMBER_BYTES" in big.hashes.error
    assert big.hashes.sha1 is None
    assert items["a.zip!/small.txt"].hashes.sha1 == hashlib.sha1(b"fine").hexdigest()
    assert items["a.zip"].hashes.error is None


def test_member_over_its_expansion_ratio_fails_alone(tmp_path: Path) -> None:
    budgets = ScanBudgets(max_ratio=50, ratio_floor_bytes=1 << 20)
    # Random bytes make the file large, so the file as a whole stays within its ratio.
    noise = np.random.default_rng(1).bytes(2 << 20)
    data = _zip([("zeros.bin", bytes(8 << 20)), ("noise.bin", noise), ("ok.txt", b"fine")])
    items = _read(tmp_path, data, budgets, name="a.zip")
    assert "CHILDSAFE_MAX_RATIO" in (items["a.zip!/zeros.bin"].hashes.error or "")
    assert items["a.zip!/ok.txt"].hashes.error is None


def test_archive_over_its_budget_stops_and_says_where(tmp_path: Path) -> None:
    budgets = ScanBudgets(max_container_bytes=5 << 20)
    filler = [bytes([n]) * (3 << 20) for n in range(3)]
    inner = gzip.compress(_tar([("one.bin", filler[0]), ("two.bin", filler[1]), ("three.bin", filler[2])]))
    outer = _tar([("inner.tar.gz", inner), ("after.txt", b"still read")])
    items = _read(tmp_path, outer, budgets, name="outer.tar")
    assert items["outer.tar!/inner.tar.gz!/one.bin"].hashes.error is None
    two = items["outer.tar!/inner.tar.gz!/two.bin"].hashes
    assert "CHILDSAFE_MAX_CONTAINER_BYTES" in (two.error or "") and two.sha1 is None
    assert "outer.tar!/inner.tar.gz!/three.bin" not in items
    # The gzip stream's budget was spent (its member, the tar, expands past 5 MiB): it and the tar in it stop...
    assert "members after 2 not read" in (items["outer.tar!/inner.tar.gz"].hashes.error or "")
    # ...but the tar on disk holding it goes on.
    assert items["outer.tar!/after.txt"].hashes.error is None
    assert items["outer.tar"].hashes.error is None


def test_a_file_that_expands_too_far_stops_as_a_whole(tmp_path: Path) -> None:
    budgets = ScanBudgets(max_ratio=10, ratio_floor_bytes=1 << 20)
    nest = _zip([("level.zip", _zip([(f"zeros{n}.bin", bytes(1 << 20)) for n in range(4)])), ("after.txt", b"x")])
    items = _read(tmp_path, nest, budgets, name="nest.zip")
    assert "archive expands more times the size of its file" in (items["nest.zip"].hashes.error or "")
    assert items["nest.zip"].hashes.sha1 == hashlib.sha1(nest).hexdigest()
    assert "nest.zip!/after.txt" not in items  # everything in the file stops


def test_member_count_budget_counts_exactly(tmp_path: Path) -> None:
    members = [(f"m{n}.txt", b"x") for n in range(3)]
    exact = _read(tmp_path, _zip(members), ScanBudgets(max_members=3), name="a.zip")
    assert exact["a.zip"].hashes.error is None and len(exact) == 4
    over = _read(tmp_path, _zip([*members, ("m3.txt", b"x")]), ScanBudgets(max_members=3), name="b.zip")
    assert "CHILDSAFE_MAX_MEMBERS" in (over["b.zip"].hashes.error or "") and len(over) == 4


def test_archives_deeper_than_the_depth_budget_are_digested_not_opened(tmp_path: Path) -> None:
    nested = _zip([("c.txt", b"deep")])
    for level in "ba":
        nested = _zip([(f"{level}.zip", nested)])
    items = _read(tmp_path, nested, ScanBudgets(max_depth=2), name="top.zip")
    deepest = items["top.zip!/a.zip!/b.zip"]
    assert "CHILDSAFE_MAX_DEPTH" in (deepest.hashes.error or "") and deepest.hashes.sha1 is not None
    assert not any(label.endswith("c.txt") for label in items)


def test_progress_names_each_item_and_each_listing(tmp_path: Path) -> None:
    keys: list[Hashable] = []
    _read(tmp_path, _zip([("a.txt", b"a"), ("b.txt", b"b")]), keys=keys, name="a.zip")
    assert keys == [(), ("listing", 0), (0,), ("listing", 1), (1,), ("listing", 2)]


def test_a_poisoned_member_is_digested_only_then_not_read(tmp_path: Path) -> None:
    picture = bytes(range(256)) * 10
    data = _tar([("a.txt", b"a"), ("b.png", picture), ("c.txt", b"c")])
    crashed = {(1,): "decoder crashed (signal SIGSEGV)"}
    items = _read(tmp_path, data, poisoned=dict(crashed), name="a.tar")
    poisoned = items["a.tar!/b.png"].hashes
    assert poisoned.error == "decoder crashed (signal SIGSEGV); digests only, not decoded or opened"
    assert poisoned.sha1 == hashlib.sha1(picture).hexdigest()
    assert items["a.tar!/c.txt"].hashes.error is None
    again = _read(tmp_path, data, poisoned={**crashed, (1, "digests"): "time limit: no progress for 1 s"}, name="a.tar")
    assert again["a.tar!/b.png"].hashes.error == "time limit: no progress for 1 s; not read"
    assert again["a.tar!/b.png"].hashes.sha1 is None and again["a.tar!/c.txt"].hashes.error is None


def test_an_archive_that_hung_while_listed_stops_at_that_member(tmp_path: Path) -> None:
    data = _zip([("a.txt", b"a"), ("b.txt", b"b"), ("c.txt", b"c")])
    items = _read(tmp_path, data, poisoned={("listing", 2): "time limit: no progress for 1 s"}, name="a.zip")
    assert set(items) == {"a.zip", "a.zip!/a.txt", "a.zip!/b.txt"}
    assert items["a.zip"].hashes.error == "time limit: no progress for 1 s while listing member 3; the rest not read"
    assert items["a.zip"].hashes.sha1 == hashlib.sha1(data).hexdigest()


def test_a_poisoned_file_on_disk_is_digested_only(tmp_path: Path) -> None:
    data = _zip([("a.txt", b"a")])
    items = _read(tmp_path, data, poisoned={(): "decoder crashed (signal SIGSEGV)"}, name="a.zip")
    assert list(items) == ["a.zip"] and items["a.zip"].hashes.sha1 == hashlib.sha1(data).hexdigest()


def test_budget_settings_are_read_and_checked() -> None:
    budgets = ScanBudgets.from_env({"CHILDSAFE_MAX_RATIO": "50", "CHILDSAFE_ITEM_SECONDS": "2.5"})
    assert budgets.max_ratio == 50 and budgets.item_seconds == 2.5
    assert budgets.max_members == ScanBudgets().max_members
    with pytest.raises(UsageError, match="CHILDSAFE_MAX_MEMBERS must be a number"):
        ScanBudgets.from_env({"CHILDSAFE_MAX_MEMBERS": "many"})
    with pytest.raises(UsageError, match="CHILDSAFE_MAX_DEPTH must be above 0"):
        ScanBudgets.from_env({"CHILDSAFE_MAX_DEPTH": "0"})
