"""Storage on a real SQLite file and the real PostgreSQL: migrations applied
on first use, safely when several processes start at once."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from childsafe.errors import StorageError, UsageError
from childsafe.store import Base, audit_events, head_revision, record_audit, schema_revision
from childsafe.store import open_database as _open_database


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


def _open_in_child(url: str) -> str | None:
    engine = _open_database(url)
    revision = schema_revision(engine)
    engine.dispose()
    return revision


@pytest.mark.slow
def test_processes_starting_at_once_migrate_once(database_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        revisions = pool.map(_open_in_child, [database_url] * 4)
    assert revisions == [head_revision()] * 4


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


def _append_in_child(url: str) -> None:
    engine = _open_database(url)
    for number in range(10):
        record_audit(engine, "test", {"n": number})
    engine.dispose()


@pytest.mark.slow
def test_concurrent_appends_keep_one_chain(database_url: str) -> None:
    from childsafe.store import verify_audit_chain

    open_database(database_url)
    context = multiprocessing.get_context("spawn")
    with context.Pool(3) as pool:
        pool.map(_append_in_child, [database_url] * 3)
    report = verify_audit_chain(open_database(database_url))
    assert (report.events, report.intact) == (30, True)
