"""Enforcement figures from case events: "90 search warrants in the last 12
months, 85 offenders charged, 235 live cases, referrals up 100%".

A force exports its case events as ``case_id,date,event,area`` (event one of
``EVENTS``); importing is all or nothing and idempotent (a row already held
adds nothing), so the same export can be loaded again after a correction.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, and_, func, select

from childsafe.errors import InputFormatError, UsageError
from childsafe.store import upsert
from childsafe.store.models import CaseEvent

__all__ = ["EVENTS", "CaseImport", "CaseStats", "case_stats", "import_cases", "monthly_events"]

EVENTS = ("referral", "opened", "warrant", "charged", "closed")


@dataclass(frozen=True)
class CaseImport:
    """What ``cases import`` prints."""

    rows: int
    added: int
    total: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CaseStats:
    """docs/spec.md's ``cases stats`` answer."""

    referrals: int
    referrals_previous: int
    referrals_change_pct: float | None
    warrants: int
    charged: int
    live_cases: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _read_rows(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    header = [cell.strip().lower() for cell in rows[0]] if rows else []
    if header[:4] != ["case_id", "date", "event", "area"]:
        raise InputFormatError(f"{path.name}: line 1: the header must be case_id,date,event,area")
    records = []
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        where = f"{path.name}: line {number}"
        if len(row) < 4 or not row[0].strip() or not row[3].strip():
            raise InputFormatError(f"{where}: expected case_id,date,event,area, none empty")
        case_id, day, event, area = (cell.strip() for cell in row[:4])
        try:
            date.fromisoformat(day)
        except ValueError:
            raise InputFormatError(f"{where}: {day!r:.40} is not a date (YYYY-MM-DD)") from None
        if event.lower() not in EVENTS:
            raise InputFormatError(f"{where}: unknown event {event!r:.40}: use one of {', '.join(EVENTS)}")
        if len(case_id) > 100 or len(area) > 100:
            raise InputFormatError(f"{where}: case_id and area are at most 100 characters")
        records.append({"case_id": case_id, "day": date.fromisoformat(day).isoformat(), "event": event.lower(),
                        "area": area})  # fmt: skip
    return records


def import_cases(engine: Engine, path: Path) -> CaseImport:
    """Add the file's case events; rows already held add nothing. A bad row
    names the file and line and changes nothing."""
    records = _read_rows(path)
    count = select(func.count()).select_from(CaseEvent)
    with engine.begin() as connection:
        before = connection.scalar(count) or 0
        for offset in range(0, len(records), 5000):
            connection.execute(upsert(engine, CaseEvent).on_conflict_do_nothing(), records[offset : offset + 5000])
        total = connection.scalar(count) or 0
    return CaseImport(len(records), total - before, total)


def _count_events(engine: Engine, event: str, first: date, last: date, area: str | None) -> int:
    """Distinct cases with ``event`` on a day in [first, last]."""
    query = select(func.count(func.distinct(CaseEvent.case_id))).where(
        CaseEvent.event == event, CaseEvent.day >= first.isoformat(), CaseEvent.day <= last.isoformat()
    )
    if area is not None:
        query = query.where(CaseEvent.area == area)
    with engine.connect() as connection:
        return int(connection.scalar(query) or 0)


def case_stats(engine: Engine, first: date, last: date, area: str | None = None) -> CaseStats:
    """Referrals, warrants and charges in [first, last] (both days included),
    referrals in the same-length period just before, and the cases opened
    and not closed on ``last``."""
    if last < first:
        raise UsageError(f"{{field}}, the last day ({last}), is before the first ({first})", field="last")
    length = (last - first).days + 1
    referrals = _count_events(engine, "referral", first, last, area)
    previous = _count_events(engine, "referral", first - timedelta(days=length), first - timedelta(days=1), area)
    change = (referrals - previous) / previous * 100 if previous else None
    opened = select(CaseEvent.case_id).where(CaseEvent.event == "opened", CaseEvent.day <= last.isoformat())
    closed = select(CaseEvent.case_id).where(CaseEvent.event == "closed", CaseEvent.day <= last.isoformat())
    if area is not None:
        opened = opened.where(CaseEvent.area == area)
        closed = closed.where(CaseEvent.area == area)
    live = select(func.count(func.distinct(CaseEvent.case_id))).where(
        and_(CaseEvent.case_id.in_(opened), CaseEvent.case_id.not_in(closed))
    )
    with engine.connect() as connection:
        live_cases = int(connection.scalar(live) or 0)
    return CaseStats(
        referrals=referrals,
        referrals_previous=previous,
        referrals_change_pct=change,
        warrants=_count_events(engine, "warrant", first, last, area),
        charged=_count_events(engine, "charged", first, last, area),
        live_cases=live_cases,
    )


def monthly_events(engine: Engine, first: date, last: date, area: str | None = None) -> dict[str, dict[str, int]]:
    """Distinct cases per month (``YYYY-MM``) and event in [first, last], for the report's chart."""
    month = func.substr(CaseEvent.day, 1, 7)
    query = (
        select(month, CaseEvent.event, func.count(func.distinct(CaseEvent.case_id)))
        .where(CaseEvent.day >= first.isoformat(), CaseEvent.day <= last.isoformat())
        .group_by(month, CaseEvent.event)
    )
    if area is not None:
        query = query.where(CaseEvent.area == area)
    figures: dict[str, dict[str, int]] = {}
    with engine.connect() as connection:
        for key, event, number in connection.execute(query):
            figures.setdefault(str(key), {})[str(event)] = int(number)
    return figures
