"""Counting without personal data: one number per day, region, list and
outcome. Nothing about a request is stored but that it happened: no text,
no address, no identifier, no time finer than the day."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Engine, func, select

from childsafe.store import upsert
from childsafe.store.models import DeterCount

__all__ = ["OUTCOMES", "UNKNOWN_REGION", "SMALL_COUNT", "count", "deter_stats", "deter_totals", "shown_count"]

#: What can happen after a check: the warning was shown, a help link on it was
#: followed, or the person left the search (reported by the host or the page).
OUTCOMES = ("shown", "help_clicked", "abandoned")
#: Counted in place of a region that is not an ISO 3166 code (ISO's "unknown").
UNKNOWN_REGION = "ZZ"
_REGION = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")


def count(engine: Engine, region: str, list_name: str, outcome: str) -> None:
    """Add one to today's counter for (region, list, outcome): nothing else is kept."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    region = region.strip().upper()
    day = datetime.now(UTC).date().isoformat()
    key = {
        "day": day,
        "region": region if _REGION.match(region) else UNKNOWN_REGION,
        "list_name": list_name[:100],
        "outcome": outcome,
    }
    with engine.begin() as connection:
        connection.execute(
            upsert(engine, DeterCount)
            .values(**key, count=1)
            .on_conflict_do_update(
                index_elements=["day", "region", "list_name", "outcome"], set_={"count": DeterCount.count + 1}
            )
        )


#: Counts below this are shown as ``"<10"``: a small number can point to a person.
SMALL_COUNT = 10


def shown_count(number: int) -> int | str:
    """A count as it may be shown: ``"<10"`` below ``SMALL_COUNT``."""
    return number if number >= SMALL_COUNT else f"<{SMALL_COUNT}"


def deter_stats(engine: Engine) -> list[dict[str, Any]]:
    """Every counter, oldest day first; counts below 10 are shown as ``"<10"``."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(DeterCount).order_by(DeterCount.day, DeterCount.region, DeterCount.list_name, DeterCount.outcome)
        ).all()
    return [
        {"day": row.day, "region": row.region, "list": row.list_name, "outcome": row.outcome,
         "count": shown_count(int(row._mapping["count"]))}  # (Row.count is tuple's method)
        for row in rows
    ]  # fmt: skip


def deter_totals(engine: Engine, first_day: date) -> list[dict[str, Any]]:
    """The counters from ``first_day`` on, added up by region and outcome;
    totals below 10 shown as ``"<10"`` (suppressed after adding, so that a
    total is never the sum of shown numbers a reader could subtract)."""
    total = func.sum(DeterCount.count)
    with engine.connect() as connection:
        rows = connection.execute(
            select(DeterCount.region, DeterCount.outcome, total)
            .where(DeterCount.day >= first_day.isoformat())
            .group_by(DeterCount.region, DeterCount.outcome)
            .order_by(DeterCount.region, DeterCount.outcome)
        ).all()
    return [
        {"region": region, "outcome": outcome, "count": shown_count(int(number))} for region, outcome, number in rows
    ]
