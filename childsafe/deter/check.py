"""``deter check``: does a search or link seek abuse material? If so, the
warning to show and the help to offer, and one more in the counters.

The answer never says which term matched (the lists are confidential), and
nothing about the request is stored but a count.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any

from sqlalchemy import Engine, select

from childsafe.deter.resources import HelpResource, resources_for
from childsafe.deter.terms import TermMatcher
from childsafe.deter.urls import UrlMatcher
from childsafe.store import upsert
from childsafe.store.models import DeterCount

__all__ = ["check", "count", "deter_stats", "warning_text"]


def warning_text(lang: str) -> dict[str, str]:
    """Title and body of the warning in ``lang`` (English where there is no reviewed text)."""
    folder = files("childsafe.deter").joinpath("data")
    for candidate in (lang.lower(), "en"):
        resource = folder.joinpath(f"warning-{candidate}.json")
        if resource.is_file():
            data = json.loads(resource.read_text(encoding="utf-8"))
            return {"title": data["title"], "body": data["body"]}
    raise FileNotFoundError("warning-en.json is missing from the package")


def count(engine: Engine, region: str, list_name: str, outcome: str) -> None:
    """Add one to today's counter for (region, list, outcome): nothing else is kept."""
    day = datetime.now(UTC).date().isoformat()
    key = {"day": day, "region": region.upper()[:10], "list_name": list_name[:100], "outcome": outcome}
    with engine.begin() as connection:
        connection.execute(
            upsert(engine, DeterCount)
            .values(**key, count=1)
            .on_conflict_do_update(
                index_elements=["day", "region", "list_name", "outcome"], set_={"count": DeterCount.count + 1}
            )
        )


def check(
    engine: Engine,
    terms: TermMatcher,
    urls: UrlMatcher,
    resources: list[HelpResource],
    text: str | None,
    url: str | None,
    region: str = "GB",
    lang: str = "en",
) -> dict[str, Any]:
    """SPEC's check answer; an interception is counted as ``shown``."""
    matched: dict[str, str] | None = None
    if text:
        name = terms.match(text)
        if name:
            matched = {"kind": "term", "list": name}
    if matched is None and url:
        name = urls.match(url)
        if name:
            matched = {"kind": "url", "list": name}
    if matched is None:
        return {"intercept": False, "matched": None, "warning": None}
    count(engine, region, matched["list"], "shown")
    warning = {**warning_text(lang), "resources": [r.to_dict() for r in resources_for(region, resources)]}
    return {"intercept": True, "matched": matched, "warning": warning}


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
