"""Counting without personal data: one number per day, region, list and
outcome. Nothing about a request is stored but that it happened: no text,
no address, no identifier, no time finer than the day."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select

from childsafe.store import upsert
from childsafe.store.models import DeterCount

__all__ = ["OUTCOMES", "UNKNOWN_REGION", "count", "deter_stats"]

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


def deter_stats(engine: Engine) -> list[dict[str, Any]]:
    """Every counter, oldest day first; counts below 10 are shown as ``"<10"``."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(DeterCount).order_by(DeterCount.day, DeterCount.region, DeterCount.list_name, DeterCount.outcome)
        ).all()
    stats = []
    for row in rows:
        number = int(row._mapping["count"])  # (Row.count is tuple's method)
        stats.append({"day": row.day, "region": row.region, "list": row.list_name, "outcome": row.outcome,
                      "count": number if number >= 10 else "<10"})  # fmt: skip
    return stats
