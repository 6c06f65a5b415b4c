"""A sharded index (``CHILDSAFE_INDEX_SHARD=K/N``, ``index/shards.py``):
each shard holds exactly the entries whose id is K modulo N, when built,
as entries are added and removed, and when saved; a shard's save or
snapshot is never loaded by another shard or by a whole index; the
settings are checked, each wrong value with one line saying what to set."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import sqlalchemy as sa

from childsafe.banks import NewEntry, add_entries, create_bank
from childsafe.banks.entries import remove_entry
from childsafe.config import Settings
from childsafe.errors import UnavailableError, UsageError
from childsafe.index import Matcher, index_root, open_matcher
from childsafe.index.shards import IndexPart

RANDOM = random.Random(21)
PDQS = [f"{RANDOM.getrandbits(256):064x}" for _ in range(60)]
MD5S = [f"{number:032x}" for number in range(1, 61)]


def _bank(engine: sa.Engine) -> None:
    create_bank(engine, "police", scheme="uk")
    add_entries(
        engine, "police", [NewEntry([("md5", md5), ("pdq", pdq)], "A") for md5, pdq in zip(MD5S, PDQS, strict=True)]
    )


def _found(matcher: Matcher, pdqs: list[str] = PDQS, md5s: list[str] = MD5S) -> set[tuple[int, str, str]]:
    """(entry id, signal, value) of every hit of every query, as a shard answers its front."""
    queries = [("pdq", value) for value in pdqs] + [("md5", value) for value in md5s]
    return {
        (int(entry_id), str(signal), str(value))
        for hits in matcher.shard_search(queries).results
        for _, entry_id, signal, value, _ in hits
    }


def _shards(engine: sa.Engine, tmp_path: Path, count: int = 2) -> list[Matcher]:
    shards = []
    for number in range(count):
        shard = Matcher(engine, tmp_path / f"shard-{number}", part=IndexPart(number, count))
        shard.sync()
        shards.append(shard)
    return shards


def test_each_shard_holds_exactly_its_entries_when_built_added_and_removed(engine: sa.Engine, tmp_path: Path) -> None:
    _bank(engine)
    whole = Matcher(engine, tmp_path / "whole")
    whole.sync()
    shards = _shards(engine, tmp_path)

    def check(pdqs: list[str] = PDQS, md5s: list[str] = MD5S) -> set[tuple[int, str, str]]:
        everything = _found(whole, pdqs, md5s)
        parts = [_found(shard, pdqs, md5s) for shard in shards]
        for number, part in enumerate(parts):
            assert part and {entry_id % 2 for entry_id, _, _ in part} == {number}
        assert parts[0] | parts[1] == everything and not parts[0] & parts[1]
        return everything

    assert len(check()) == 120  # every entry's PDQ hash and md5, once, in one shard
    sizes = [shard.sizes() for shard in shards]
    assert sizes[0]["pdq"]["size"] + sizes[1]["pdq"]["size"] == 60
    assert sizes[0]["vpdq"]["size"] == 0  # the front keeps the videos

    # Adds from the change log go to their own shard only; so do removals.
    extra_pdq, extra_md5 = f"{RANDOM.getrandbits(256):064x}", "f" * 32
    add_entries(engine, "police", [NewEntry([("md5", extra_md5), ("pdq", extra_pdq)], "B")])
    (gone,) = whole.lookup([("md5", MD5S[0])])
    remove_entry(engine, "police", int(gone[0].entry_id))
    for matcher in (whole, *shards):
        matcher.sync()
    after = check([*PDQS, extra_pdq], [*MD5S, extra_md5])
    assert len(after) == 120 and int(gone[0].entry_id) not in {entry_id for entry_id, _, _ in after}
    assert (max(entry_id for entry_id, _, _ in after), "md5", extra_md5) in after

    # Saved and loaded again, each shard still holds its own entries (and its save is named as its own).
    for number, shard in enumerate(shards):
        shard.write_snapshot(shard.root)
        assert [path.name.split("@")[0] for path in shard.root.glob("bank-*")] == [
            f"bank-{next(iter(shard.banks))}-shard-{number}-of-2"
        ]
    reloaded = _shards(engine, tmp_path)
    assert [matcher.follower.loaded_from for matcher in reloaded] == [{"saved": 1}, {"saved": 1}]
    assert [_found(matcher) for matcher in reloaded] == [_found(shard) for shard in shards]


def test_a_shards_snapshot_is_not_loaded_by_another_shard_nor_by_a_whole_index(
    engine: sa.Engine, tmp_path: Path
) -> None:
    _bank(engine)
    snapshot = tmp_path / "snapshot"
    Matcher(engine, tmp_path / "writer", part=IndexPart(0, 2)).write_snapshot(snapshot)

    same = Matcher(engine, index_root(tmp_path / "same", str(engine.url)), snapshot, IndexPart(0, 2))
    same.sync()
    assert same.follower.loaded_from == {"snapshot": 1}
    other = Matcher(engine, index_root(tmp_path / "other", str(engine.url)), snapshot, IndexPart(1, 2))
    other.sync()
    assert other.follower.loaded_from == {"built": 1}
    assert {entry_id % 2 for entry_id, _, _ in _found(other)} == {1}
    four = Matcher(engine, index_root(tmp_path / "four", str(engine.url)), snapshot, IndexPart(0, 4))
    four.sync()
    assert four.follower.loaded_from == {"built": 1}
    whole = Matcher(engine, index_root(tmp_path / "whole", str(engine.url)), snapshot)
    whole.sync()
    assert whole.follower.loaded_from == {"built": 1}
    assert all(whole.lookup([("md5", value) for value in MD5S]))

    # Renamed to look like a whole index's save, it is still refused: the part is written inside it.
    (save,) = snapshot.glob("bank-*")
    save.rename(snapshot / save.name.replace("-shard-0-of-2", ""))
    renamed = Matcher(engine, index_root(tmp_path / "renamed", str(engine.url)), snapshot)
    renamed.sync()
    assert renamed.follower.loaded_from == {"built": 1}


def test_a_shard_refuses_to_match_on_its_own(engine: sa.Engine, tmp_path: Path) -> None:
    _bank(engine)
    shard = Matcher(engine, tmp_path / "shard", part=IndexPart(1, 2))
    shard.sync()
    with pytest.raises(UnavailableError, match="holds index shard 1/2 only"):
        shard.lookup([("md5", MD5S[1])])
    settings = Settings.from_env({"CHILDSAFE_HOME": str(tmp_path), "CHILDSAFE_INDEX_SHARD": "1/2"})
    with pytest.raises(UsageError, match="cannot match on its own"):
        open_matcher(engine, settings)
    assert open_matcher(engine, settings, part_only=True).part == IndexPart(1, 2)


@pytest.mark.parametrize("value", ["2/2", "-1/2", "1", "a/b", "1/0", "0/2/3"])
def test_a_bad_shard_setting_is_one_line_saying_what_to_set(value: str, tmp_path: Path) -> None:
    with pytest.raises(UsageError) as refused:
        Settings.from_env({"CHILDSAFE_HOME": str(tmp_path), "CHILDSAFE_INDEX_SHARD": value})
    assert "CHILDSAFE_INDEX_SHARD must be K/N with 0 <= K < N" in str(refused.value)
    assert "\n" not in str(refused.value)


def test_the_front_settings_are_checked(tmp_path: Path) -> None:
    home = {"CHILDSAFE_HOME": str(tmp_path)}
    assert Settings.from_env({**home, "CHILDSAFE_INDEX_SHARD": " 3/4 "}).index_shard == (3, 4)
    urls = "http://10.0.0.1:8100/, http://10.0.0.2:8100"
    front = Settings.from_env({**home, "CHILDSAFE_INDEX_SHARDS": urls, "CHILDSAFE_INDEX_SHARDS_KEY": "cs_k"})
    assert front.index_shards == ("http://10.0.0.1:8100", "http://10.0.0.2:8100")
    assert "cs_k" not in repr(front)
    with pytest.raises(UsageError, match="needs CHILDSAFE_INDEX_SHARDS_KEY"):
        Settings.from_env({**home, "CHILDSAFE_INDEX_SHARDS": urls})
    with pytest.raises(UsageError, match="http\\(s\\) URLs"):
        Settings.from_env({**home, "CHILDSAFE_INDEX_SHARDS": "10.0.0.1:8100", "CHILDSAFE_INDEX_SHARDS_KEY": "k"})
    with pytest.raises(UsageError, match="not both"):
        Settings.from_env(
            {**home, "CHILDSAFE_INDEX_SHARDS": urls, "CHILDSAFE_INDEX_SHARDS_KEY": "k", "CHILDSAFE_INDEX_SHARD": "0/2"}
        )
