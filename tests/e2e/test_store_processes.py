"""Storage opened by several processes at once (spawned, on SQLite and the
real PostgreSQL): migrations applied once, one audit chain."""

from __future__ import annotations

import multiprocessing

import pytest

from childsafe.store import head_revision, open_database, record_audit, schema_revision, verify_audit_chain


def _open_in_child(url: str) -> str | None:
    engine = open_database(url)
    revision = schema_revision(engine)
    engine.dispose()
    return revision


@pytest.mark.slow
def test_processes_starting_at_once_migrate_once(database_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        revisions = pool.map(_open_in_child, [database_url] * 4)
    assert revisions == [head_revision()] * 4


def _append_in_child(url: str) -> None:
    engine = open_database(url)
    for number in range(10):
        record_audit(engine, "test", {"n": number})
    engine.dispose()


@pytest.mark.slow
def test_concurrent_appends_keep_one_chain(database_url: str) -> None:
    open_database(database_url).dispose()
    context = multiprocessing.get_context("spawn")
    with context.Pool(3) as pool:
        pool.map(_append_in_child, [database_url] * 3)
    engine = open_database(database_url)
    try:
        report = verify_audit_chain(engine)
    finally:
        engine.dispose()
    assert (report.events, report.intact) == (30, True)
