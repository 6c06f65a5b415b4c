"""Match counts for the dashboard: one per answer and bank entry, added up
across saves (and across processes, which each save their own), and kept
in memory when a save fails."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from childsafe.actions.match_counts import DailyMatches, MatchTally, recent_matches
from childsafe.index import Match


def _match(bank: str, entry: str, category: str | None, signal: str = "md5") -> Match:
    return Match(bank, entry, None, signal, "0" * 32, 0, category, "original")


def test_counts_are_one_per_answer_and_entry_and_add_up_across_saves(engine: sa.Engine) -> None:
    today = datetime.now(UTC).date()
    tally, other_process = MatchTally(), MatchTally()
    # One upload matching entry e1 by md5 and by PDQ is one match of e1.
    tally.add([_match("police", "e1", "A"), _match("police", "e1", "A", "pdq"), _match("iwf", "e9", None)])
    tally.add([_match("police", "e2", "A")])
    tally.add([])
    other_process.add([_match("police", "e1", "A")])
    assert tally.save(engine) == 3
    assert other_process.save(engine) == 1
    assert tally.save(engine) == 0  # nothing new
    day = today.isoformat()
    assert recent_matches(engine, today) == [DailyMatches(day, "iwf", None, 1), DailyMatches(day, "police", "A", 3)]


def test_counts_that_could_not_be_saved_are_kept_for_the_next_save(engine: sa.Engine) -> None:
    tally = MatchTally()
    tally.add([_match("police", "e1", "B")])
    with engine.begin() as connection:
        connection.execute(sa.text("ALTER TABLE match_counts RENAME TO match_counts_away"))
    with pytest.raises((sa.exc.OperationalError, sa.exc.ProgrammingError)):
        tally.save(engine)
    with engine.begin() as connection:
        connection.execute(sa.text("ALTER TABLE match_counts_away RENAME TO match_counts"))
    assert tally.save(engine) == 1
    assert [row.count for row in recent_matches(engine, datetime.now(UTC).date())] == [1]
