"""The change-log follower on PostgreSQL, where change seqs can commit out of
order: two connections write changes the way ``childsafe.banks`` does, and
the one that took the lower seq commits last."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, insert

from childsafe.banks import create_bank
from childsafe.banks.catalogue import entry_key, get_bank
from childsafe.banks.changes import ChangeOp, log_change
from childsafe.index import Matcher, index_root
from childsafe.store import open_database
from childsafe.store.models import BankEntry, EntrySignal, utc_now

pytestmark = pytest.mark.postgres


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    engine = open_database(postgres_url)
    yield engine
    engine.dispose()


def _md5(name: str) -> str:
    return hashlib.md5(name.encode()).hexdigest()


def _add_entry(connection: Connection, bank_id: int, md5: str) -> None:
    """Add an md5 entry inside the caller's open transaction, logged as
    ``add_entries`` logs it (entry first, then the change)."""
    entry_id = connection.execute(
        insert(BankEntry).values(bank_id=bank_id, entry_key=entry_key([("md5", md5)]), added_at=utc_now())
    ).inserted_primary_key[0]  # type: ignore[index]
    connection.execute(insert(EntrySignal).values(bank_id=bank_id, entry_id=entry_id, signal="md5", value=md5))
    log_change(connection, bank_id, ChangeOp.ADD, [entry_id])


def _found(matcher: Matcher, md5: str) -> bool:
    matcher.sync()
    return bool(matcher.lookup([("md5", md5)])[0])


def _police_bank(engine: Engine) -> int:
    create_bank(engine, "police")
    with engine.connect() as probe:
        return get_bank(probe, "police").id


def test_a_change_that_commits_after_a_later_one_is_still_seen(engine: Engine, tmp_path: Path) -> None:
    bank_id = _police_bank(engine)
    matcher = Matcher(engine, index_root(tmp_path, str(engine.url)))
    matcher.sync()
    with engine.connect() as first, engine.connect() as second:
        first.begin()
        _add_entry(first, bank_id, _md5("first"))  # takes the lower seq
        second.begin()
        _add_entry(second, bank_id, _md5("second"))  # the higher one
        second.commit()
        assert _found(matcher, _md5("second"))
        assert not _found(matcher, _md5("first"))
        first.commit()
    assert _found(matcher, _md5("first"))
    assert _found(matcher, _md5("second"))


def test_a_matcher_started_while_a_change_is_uncommitted_sees_it_and_saves_no_index_past_it(
    engine: Engine, tmp_path: Path
) -> None:
    bank_id = _police_bank(engine)
    root = index_root(tmp_path, str(engine.url))
    with engine.connect() as first, engine.connect() as second:
        first.begin()
        _add_entry(first, bank_id, _md5("first"))
        second.begin()
        _add_entry(second, bank_id, _md5("second"))
        second.commit()
        started = Matcher(engine, root)  # builds the bank's index and saves it
        assert _found(started, _md5("second"))
        first.commit()
    assert _found(started, _md5("first"))
    # A matcher that starts now, from the index saved while the gap was open,
    # replays the log from before the gap.
    assert _found(Matcher(engine, root), _md5("first"))


def test_a_gap_left_by_a_rolled_back_change_is_given_up_once_it_can_no_longer_be_filled(
    engine: Engine, tmp_path: Path
) -> None:
    bank_id = _police_bank(engine)
    matcher = Matcher(engine, index_root(tmp_path, str(engine.url)))
    matcher.follower.gap_min_age = 3600  # a loaded machine may take the default 10 s between two syncs
    matcher.sync()
    with engine.connect() as failed, engine.connect() as second:
        failed.begin()
        _add_entry(failed, bank_id, _md5("failed"))
        second.begin()
        _add_entry(second, bank_id, _md5("second"))
        second.commit()
        assert _found(matcher, _md5("second"))
        failed.rollback()
    assert len(matcher.follower._gaps) == 1
    assert not _found(matcher, _md5("failed"))
    assert len(matcher.follower._gaps) == 1  # kept for gap_min_age seconds, by the database's clock
    matcher.follower.gap_min_age = 0
    # Given up once no transaction older than the gap runs on the server: other
    # test processes on the same PostgreSQL may hold one open for a moment.
    deadline = time.monotonic() + 60
    matcher.sync()
    while matcher.follower._gaps and time.monotonic() < deadline:
        time.sleep(0.2)
        matcher.sync()
    assert matcher.follower._gaps == []  # the next sync is one query over the high-water mark only
