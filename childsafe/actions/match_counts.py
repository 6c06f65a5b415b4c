"""Counting what the service matched, for the dashboard: one number per day,
bank and category, nothing about the upload, the hash or the caller.

Counting is in memory first (``MatchTally.add``, a dictionary update under a
lock) and saved to ``match_counts`` every few seconds by the service's
background loop (``save``), so that answering a match costs no database
write. A service killed between two saves loses at most those seconds'
counts; a stopped service saves them on the way out.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import Engine, select

from childsafe.index import Match
from childsafe.store import upsert
from childsafe.store.models import MatchCount

__all__ = ["MatchTally", "DailyMatches", "recent_matches"]

_EPOCH = date(1970, 1, 1)


@dataclass
class MatchTally:
    """Matches counted since the last save, by (day, bank, category)."""

    _counts: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    #: Today (UTC) as days since 1970 and as ISO text, worked out once a day:
    #: this runs on every matching answer, and ``datetime.now().date()`` costs half of it.
    _day: tuple[int, str] = (-1, "")

    def add(self, matches: Iterable[Match]) -> None:
        """Count one answer's matches (each bank's entry once per answer)."""
        found = {(match.bank, match.entry_id, match.category or "") for match in matches}
        if not found:
            return
        number = int(time.time() // 86400)
        if number != self._day[0]:
            self._day = (number, (_EPOCH + timedelta(days=number)).isoformat())
        day = self._day[1]
        with self._lock:
            for bank, _, category in found:
                self._counts[(day, bank, category)] += 1

    def save(self, engine: Engine) -> int:
        """Add the counts to the database and start again; the number of
        matches saved. Counts that could not be written are kept for the next save."""
        with self._lock:
            counts, self._counts = self._counts, Counter()
        if not counts:
            return 0
        try:
            with engine.begin() as connection:
                for (day, bank, category), number in sorted(counts.items()):
                    statement = upsert(engine, MatchCount).values(day=day, bank=bank, category=category, count=number)
                    connection.execute(
                        statement.on_conflict_do_update(
                            index_elements=["day", "bank", "category"],
                            set_={"count": MatchCount.count + number},
                        )
                    )
        except Exception:
            with self._lock:
                self._counts.update(counts)
            raise
        return sum(counts.values())


@dataclass(frozen=True)
class DailyMatches:
    """Matches of one day, bank and category."""

    day: str
    bank: str
    category: str | None
    count: int


def recent_matches(engine: Engine, first_day: date) -> list[DailyMatches]:
    """The saved match counts from ``first_day`` on, oldest first."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(MatchCount)
            .where(MatchCount.day >= first_day.isoformat())
            .order_by(MatchCount.day, MatchCount.bank, MatchCount.category)
        ).all()
    return [
        DailyMatches(row.day, row.bank, row.category or None, int(row._mapping["count"]))  # (Row.count is tuple's)
        for row in rows
    ]
