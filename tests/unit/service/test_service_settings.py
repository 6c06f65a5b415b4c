"""The service's parts in-process: rate limits shared by processes through
the database, who sees match details, and the service's settings."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_rate_limits_are_shared_by_processes(database_url: str) -> None:
    from childsafe.service.limits import SharedRateLimiter, limiter_engine
    from childsafe.store import open_database

    open_database(database_url).dispose()
    # Two limiters with their own engines: two worker processes, or two machines.
    first, second = (SharedRateLimiter(limiter_engine(database_url), rate=1, burst=3) for _ in range(2))
    try:
        assert [first.take("key:a"), second.take("key:a"), first.take("key:a")] == [0, 0, 0]
        assert second.take("key:a") >= 1 and first.take("key:a") >= 1  # the burst of 3 is spent, in both
        assert first.take("key:b", cost=10) == 0  # a batch bigger than what is left goes through ...
        assert second.take("key:b") >= 8  # ... and leaves a debt every process waits out
        leasing, other = (SharedRateLimiter(limiter_engine(database_url), 0.1, 100, lease=10) for _ in range(2))
        assert [leasing.take("key:c") for _ in range(95)] == [0] * 95  # 10 leases of 10 taken from the bucket
        assert other.take("key:c") >= 1  # so the other process finds it empty, with 5 left in the lease
        assert [leasing.take("key:c") for _ in range(6)] == [0] * 5 + [10]
    finally:
        for limiter in (first, second, leasing, other):
            limiter.engine.dispose()


def test_a_locked_sqlite_database_does_not_stall_rate_limits(tmp_path: Path) -> None:
    import sqlalchemy as sa

    from childsafe.service.limits import SharedRateLimiter, limiter_engine
    from childsafe.store import open_database

    url = f"sqlite:///{tmp_path / 'childsafe.db'}"
    importer = open_database(url)
    limiter = SharedRateLimiter(limiter_engine(url), rate=1, burst=2)
    try:
        # A writer holds the lock, as a long bank import does.
        with importer.connect().execution_options(sqlite_immediate=True) as connection, connection.begin():
            assert [limiter.take("key:a") for _ in range(3)][:2] == [0, 0]  # counted in this process meanwhile
            assert limiter.take("key:a") >= 1
        with importer.connect() as connection:
            assert connection.scalar(sa.text("SELECT count(*) FROM rate_limits")) == 0
    finally:
        limiter.engine.dispose()
        importer.dispose()


def test_match_details_are_withheld_by_role() -> None:
    from childsafe.config import MATCH_DETAILS_LEVELS, ServiceOptions
    from childsafe.errors import UsageError
    from childsafe.index import Match
    from childsafe.service.context import MATCH_DETAILS, shown_matches

    match = Match("police", "7", "vic-1", "pdq", "ab" * 32, 4, "A", "none")
    assert [(m["value"], m["source_id"], m["category"]) for m in shown_matches([match], "matcher")] == [
        (None, None, "A")
    ]
    assert shown_matches([match], "curator")[0]["value"] == "ab" * 32
    assert shown_matches([match], "matcher", "all")[0]["source_id"] == "vic-1"
    assert shown_matches([match], "admin", "none")[0]["value"] is None
    assert ServiceOptions.from_env({"CHILDSAFE_MATCH_DETAILS": "ALL"}).match_details == "all"
    with pytest.raises(UsageError, match="CHILDSAFE_MATCH_DETAILS must be one of"):
        ServiceOptions.from_env({"CHILDSAFE_MATCH_DETAILS": "matcher"})
    with pytest.raises(UsageError, match="CHILDSAFE_MAX_JSON_BYTES must be a number"):
        ServiceOptions.from_env({"CHILDSAFE_MAX_JSON_BYTES": "8M"})
    assert tuple(MATCH_DETAILS) == MATCH_DETAILS_LEVELS  # every accepted value says who sees details


def test_service_settings_of_the_webhook_loop_and_decoding_are_checked() -> None:
    from childsafe.config import ServiceOptions
    from childsafe.errors import UsageError

    options = ServiceOptions.from_env(
        {
            "CHILDSAFE_WEBHOOK_POLL_SECONDS": "0.2",
            "CHILDSAFE_WEBHOOK_BACKOFF_SECONDS": "5",
            "CHILDSAFE_DECODE_PROCESSES": "3",
        }
    )
    assert (options.webhook_poll_seconds, options.webhook_backoff_seconds, options.decode_processes) == (0.2, 5.0, 3)
    assert ServiceOptions.from_env({}).decode_processes == 1
    with pytest.raises(UsageError, match="CHILDSAFE_WEBHOOK_POLL_SECONDS must be a number"):
        ServiceOptions.from_env({"CHILDSAFE_WEBHOOK_POLL_SECONDS": "soon"})
    with pytest.raises(UsageError, match="CHILDSAFE_DECODE_PROCESSES must be a number"):
        ServiceOptions.from_env({"CHILDSAFE_DECODE_PROCESSES": "1.5"})
    with pytest.raises(UsageError, match="CHILDSAFE_WEBHOOK_BACKOFF_SECONDS must be above 0"):
        ServiceOptions.from_env({"CHILDSAFE_WEBHOOK_BACKOFF_SECONDS": "0"})
