"""Storage on a real SQLite file and the real PostgreSQL: migrations applied
on first use, safely when several processes start at once."""

from __future__ import annotations

import json
import os
import pwd
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from childsafe.errors import StorageError, UsageError
from childsafe.store import (
    AuditAnchor,
    Base,
    audit_events,
    audit_head,
    head_revision,
    record_audit,
    schema_revision,
    verify_audit_chain,
)
from childsafe.store import open_database as _open_database
from childsafe.store.audit import GENESIS


@pytest.fixture(autouse=True)
def _dispose_engines() -> Iterator[None]:
    """Close every engine a test opened (unclosed connections are errors here)."""
    opened.clear()
    yield
    for engine in opened:
        engine.dispose()


opened: list[sa.Engine] = []


def open_database(url: str) -> sa.Engine:
    engine = _open_database(url)
    opened.append(engine)
    return engine


def test_first_use_creates_the_schema_at_the_newest_migration(database_url: str) -> None:
    engine = open_database(database_url)
    assert schema_revision(engine) == head_revision()
    tables = set(sa.inspect(engine).get_table_names())
    assert {"alembic_version", "audit_events"} <= tables


def test_opening_again_changes_nothing(database_url: str) -> None:
    engine = open_database(database_url)
    record_audit(engine, "test.first", {"n": 1}, actor="tester")
    again = open_database(database_url)
    events = audit_events(again)
    assert [(e.action, e.actor, e.detail) for e in events] == [("test.first", "tester", {"n": 1})]


def test_models_and_migrations_agree(database_url: str) -> None:
    engine = open_database(database_url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_audit_events_filter_by_action(database_url: str) -> None:
    engine = open_database(database_url)
    record_audit(engine, "a", {})
    record_audit(engine, "b", {"x": "y"})
    record_audit(engine, "a", {"k": [1, 2]})
    assert [e.detail for e in audit_events(engine, "a")] == [{}, {"k": [1, 2]}]
    assert all(e.at is not None for e in audit_events(engine))


def test_bad_database_urls_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a database URL"):
        open_database("not a url")
    with pytest.raises(UsageError, match="must be sqlite"):
        open_database("mysql://localhost/x")
    with pytest.raises(StorageError, match="cannot open database"):
        open_database("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    (tmp_path / "file").write_text("")
    with pytest.raises(StorageError):
        open_database(f"sqlite:///{tmp_path / 'file' / 'x.db'}")


def test_audit_chain_detects_changed_and_deleted_events(database_url: str) -> None:
    from childsafe.store import verify_audit_chain

    engine = open_database(database_url)
    for number in range(5):
        record_audit(engine, "scan", {"case": f"C{number}", "evidence": "/mnt/x"}, actor="analyst")
    report = verify_audit_chain(engine)
    assert (report.events, report.intact) == (5, True)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE audit_events SET actor = 'someone else' WHERE id = 3"))
    changed = verify_audit_chain(engine)
    assert (changed.intact, changed.first_broken) == (False, 3)
    assert "changed" in str(changed.reason)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE audit_events SET actor = 'analyst' WHERE id = 3"))
        connection.execute(sa.text("DELETE FROM audit_events WHERE id = 2"))
    deleted = verify_audit_chain(engine)
    assert (deleted.intact, deleted.first_broken) == (False, 3)
    assert "deleted or inserted" in str(deleted.reason)


def _chain_of_five(database_url: str) -> tuple[sa.Engine, list[AuditAnchor]]:
    engine = open_database(database_url)
    anchors = [record_audit(engine, "scan", {"case": f"C{n}"}, actor="analyst") for n in range(5)]
    return engine, anchors


def test_each_append_returns_the_anchor_of_the_log(database_url: str) -> None:
    engine = open_database(database_url)
    assert audit_head(engine) == AuditAnchor(0, GENESIS)
    assert verify_audit_chain(engine, AuditAnchor(0, GENESIS)).intact
    engine, anchors = _chain_of_five(database_url)
    assert [a.events for a in anchors] == [1, 2, 3, 4, 5]
    assert [a.head for a in anchors] == [e.entry_hash for e in audit_events(engine)]
    assert audit_head(engine) == anchors[-1]
    report = verify_audit_chain(engine, anchors[2])
    assert report.intact and report.head == anchors[-1] and report.anchor == anchors[2]
    assert report.to_dict()["anchor"] == {"events": 3, "head": anchors[2].head}


def test_an_event_without_a_hash_breaks_the_chain(database_url: str) -> None:
    engine, _ = _chain_of_five(database_url)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE audit_events SET entry_hash = '' WHERE id = 2"))
    report = verify_audit_chain(engine)
    assert (report.intact, report.first_broken, report.events) == (False, 2, 5)
    assert "event 2 has no hash" in str(report.reason)
    with engine.begin() as connection:  # the first event too: no "written before the chain" excuse
        connection.execute(sa.text("UPDATE audit_events SET entry_hash = '', prev_hash = '' WHERE id = 1"))
    assert verify_audit_chain(engine).first_broken == 1


def test_reordered_events_break_the_chain(database_url: str) -> None:
    engine, _ = _chain_of_five(database_url)
    columns = "at, actor, action, detail, prev_hash, entry_hash"
    with engine.begin() as connection:  # swap events 2 and 3, each intact in itself
        rows = {r[0]: r[1:] for r in connection.execute(sa.text(f"SELECT id, {columns} FROM audit_events"))}
        connection.execute(sa.text("DELETE FROM audit_events WHERE id IN (2, 3)"))
        for new_id, old_id in ((2, 3), (3, 2)):
            connection.execute(
                sa.text(f"INSERT INTO audit_events (id, {columns}) VALUES (:id, :at, :actor, :action, :detail,"
                        " :prev_hash, :entry_hash)"),
                {"id": new_id, **dict(zip(columns.split(", "), rows[old_id], strict=True))}
                | {"detail": json.dumps(rows[old_id][3])},
            )  # fmt: skip
    report = verify_audit_chain(engine)
    assert (report.intact, report.first_broken) == (False, 2)
    assert "reordered" in str(report.reason)


def test_deleting_the_newest_events_is_caught_by_the_anchor(database_url: str) -> None:
    engine, anchors = _chain_of_five(database_url)
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM audit_events WHERE id > 3"))
    assert verify_audit_chain(engine).intact  # a shorter chain is whole: only an anchor shows the loss
    assert verify_audit_chain(engine, anchors[2]).intact
    short = verify_audit_chain(engine, anchors[4])
    assert not short.intact
    assert short.reason == "the log holds 3 events but the manifest anchors 5 (events deleted?)"
    for number in range(2):  # the gap filled with new events: the count matches, the hash does not
        record_audit(engine, "scan", {"case": f"X{number}"}, actor="analyst")
    replaced = verify_audit_chain(engine, anchors[4])
    assert (replaced.intact, replaced.events) == (False, 5)
    assert str(replaced.reason).startswith("event 5 is not the anchored one")
    assert not verify_audit_chain(engine, AuditAnchor(0, "f" * 64)).intact


def test_the_actor_is_the_os_user_whatever_the_environment_says(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("USER", "LOGNAME", "LNAME", "USERNAME"):
        monkeypatch.setenv(name, "someone-else")
    engine = open_database(database_url)
    record_audit(engine, "test", {})
    assert audit_events(engine)[0].actor == pwd.getpwuid(os.geteuid()).pw_name != "someone-else"
