"""Index snapshots for replicas (``Matcher.write_snapshot``,
``CHILDSAFE_INDEX_SNAPSHOT``): a new matcher starts from the snapshot and
replays the change log since; the newer of its own save and the snapshot
wins; a damaged snapshot, or one of a bank since recreated, is not used."""

from __future__ import annotations

import shutil
from pathlib import Path

import sqlalchemy as sa

from childsafe.banks import NewEntry, add_entries, create_bank, delete_bank
from childsafe.index import Matcher, index_root

MD5S = [f"{number:032x}" for number in range(1, 301)]


def _bank(engine: sa.Engine, name: str = "police") -> None:
    create_bank(engine, name, scheme="uk")
    add_entries(engine, name, [NewEntry([("md5", value)], "A") for value in MD5S])


def _matched(matcher: Matcher, values: list[str]) -> list[bool]:
    return [bool(found) for found in matcher.lookup([("md5", value) for value in values])]


def test_a_replica_starts_from_the_snapshot_and_replays_the_changes_since(engine: sa.Engine, tmp_path: Path) -> None:
    _bank(engine)
    snapshot = tmp_path / "snapshot"
    written = Matcher(engine, tmp_path / "writer").write_snapshot(snapshot)
    assert [(bank["bank"], bank["sizes"]["md5"]) for bank in written["banks"]] == [("police", 300)]
    later = f"{999:032x}"
    add_entries(engine, "police", [NewEntry([("md5", later)], "B")])
    replica = Matcher(engine, index_root(tmp_path / "replica", str(engine.url)), snapshot)
    replica.sync()
    assert replica.follower.loaded_from == {"snapshot": 1}
    assert _matched(replica, [MD5S[0], MD5S[-1], later, "f" * 32]) == [True, True, True, False]
    assert list(snapshot.glob("bank-*@*")) == [snapshot / f"bank-{replica.banks.popitem()[0]}@{written['seq']}"]


def test_the_newer_save_wins_and_a_damaged_or_stale_snapshot_is_not_used(engine: sa.Engine, tmp_path: Path) -> None:
    _bank(engine)
    snapshot = tmp_path / "snapshot"
    Matcher(engine, tmp_path / "writer").write_snapshot(snapshot)
    own = index_root(tmp_path / "replica", str(engine.url))
    add_entries(engine, "police", [NewEntry([("md5", f"{998:032x}")])])
    Matcher(engine, own).write_snapshot(own)  # its own save is newer than the snapshot
    replica = Matcher(engine, own, snapshot)
    replica.sync()
    assert replica.follower.loaded_from == {"saved": 1}
    # A damaged snapshot gives way: built from the database.
    (folder,) = snapshot.glob("bank-*@*")
    (folder / "meta.json").write_text("{not json")
    fresh = Matcher(engine, tmp_path / "fresh", snapshot)
    fresh.sync()
    assert fresh.follower.loaded_from == {"built": 1}
    assert _matched(fresh, [MD5S[5], f"{998:032x}"]) == [True, True]
    # A bank deleted and made again under the same name is another bank: its old snapshot is not used.
    shutil.rmtree(snapshot)
    Matcher(engine, tmp_path / "writer").write_snapshot(snapshot)
    delete_bank(engine, "police")
    create_bank(engine, "police", scheme="uk")
    again = Matcher(engine, tmp_path / "again", snapshot)
    again.sync()
    assert again.follower.loaded_from == {"built": 1}
    assert _matched(again, [MD5S[5]]) == [False]


def test_a_scan_starts_from_the_snapshot_too(tmp_path: Path) -> None:
    from builders import coffee, jpeg_of_image, write_file

    from childsafe.config import Settings
    from childsafe.store import open_database
    from childsafe.triage import ScanRequest, scan_evidence

    writer = Settings.from_env({"CHILDSAFE_HOME": str(tmp_path / "writer")})
    engine = open_database(writer.database_url)
    _bank(engine)
    snapshot = tmp_path / "snapshot"
    Matcher(engine, tmp_path / "writer-index").write_snapshot(snapshot)
    engine.dispose()
    # Another machine: its own CHILDSAFE_HOME, the same database, the snapshot.
    scanner = Settings.from_env(
        {"CHILDSAFE_HOME": str(tmp_path / "scanner"), "CHILDSAFE_DATABASE_URL": writer.database_url,
         "CHILDSAFE_INDEX_SNAPSHOT": str(snapshot)}
    )  # fmt: skip
    write_file(tmp_path / "evidence" / "photo.jpg", jpeg_of_image(coffee()))
    result = scan_evidence(ScanRequest(tmp_path / "evidence", "S", tmp_path / "out", workers=1), scanner)
    assert result.summary.files == 1
    assert not list((tmp_path / "scanner").glob("index/*/bank-*"))  # nothing built: the snapshot was enough
