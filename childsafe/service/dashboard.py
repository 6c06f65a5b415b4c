"""What the service's dashboard page shows (``GET /dashboard``), gathered
for one signed-in key: each part only if the key's role may see it.

- banks and their sizes, and the size of the loaded index (role ``curate``);
- matches answered recently, by bank and category, and a chart of them by
  day (``curate``; counted by ``actions.match_counts``);
- the prevention counters added up by region and outcome, with counts below
  10 shown as "<10" (``deter``);
- a campaign chart: ``childsafe evaluate series --counters`` on the
  prevention counters, drawn only when no period holds a count from 1 to 9
  (``deter``).

The charts are the report charts (``measure.plots``), served as PNG.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Engine

from childsafe.actions.keys import role_allows
from childsafe.actions.match_counts import recent_matches
from childsafe.banks import BankInfo, list_banks
from childsafe.deter.counters import OUTCOMES, SMALL_COUNT, deter_totals
from childsafe.errors import UsageError
from childsafe.measure.plots import draw_grouped_bars, draw_series, figure_png
from childsafe.measure.reports import campaign_page
from childsafe.measure.series import SeriesResult, campaign_series

__all__ = [
    "CampaignQuery",
    "CampaignView",
    "BankMatches",
    "DashboardView",
    "dashboard_view",
    "matches_chart",
    "campaign_chart",
    "RECENT_DAYS",
    "OUTCOME_SUBJECTS",
]

#: The days the match and prevention tables cover (today included).
RECENT_DAYS = 30
#: What each prevention outcome counts, as a chart's subject.
OUTCOME_SUBJECTS = {"shown": "Warnings shown", "help_clicked": "Help links followed", "abandoned": "Searches abandoned"}
NO_CATEGORY = "none"


@dataclass(frozen=True)
class CampaignQuery:
    """A campaign to evaluate on the prevention counters."""

    start: date
    outcome: str
    region: str | None = None
    period: str = "week"

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise UsageError(
                f"{{field}} must be one of {', '.join(OUTCOMES)}, not {self.outcome!r:.40}", field="outcome"
            )
        if self.period not in ("week", "month"):
            raise UsageError(f"{{field}} must be week or month, not {self.period!r:.40}", field="period")

    def as_query(self) -> dict[str, str]:
        """The query string that asks for this campaign again."""
        query = {"start": self.start.isoformat(), "outcome": self.outcome, "period": self.period}
        return query | ({"region": self.region} if self.region else {})


@dataclass(frozen=True)
class CampaignView:
    """A campaign's figures, or why it cannot be shown."""

    query: CampaignQuery
    headlines: list[str]
    rows: list[tuple[str, str]]
    problem: str | None = None


@dataclass(frozen=True)
class BankMatches:
    """Matches of one bank and category in the last 7 days and in ``RECENT_DAYS``."""

    bank: str
    category: str
    last_7_days: int
    recent: int


@dataclass(frozen=True)
class DashboardView:
    """Everything the page shows; ``None`` for a part the key's role may not see."""

    key_name: str
    role: str
    today: date
    banks: list[BankInfo] | None
    index_sizes: Mapping[str, Any] | None
    matches: list[BankMatches] | None
    prevention: list[dict[str, Any]] | None
    campaign: CampaignView | None

    @property
    def sees_anything(self) -> bool:
        return self.banks is not None or self.prevention is not None


def dashboard_view(
    engine: Engine,
    index_sizes: Mapping[str, Any],
    key_name: str,
    role: str,
    today: date,
    campaign: CampaignQuery | None = None,
) -> DashboardView:
    """The dashboard of a key called ``key_name`` with ``role``, on ``today`` (UTC)."""
    curates, deters = role_allows(role, "curate"), role_allows(role, "deter")
    first = today - timedelta(days=RECENT_DAYS - 1)
    return DashboardView(
        key_name,
        role,
        today,
        banks=list_banks(engine) if curates else None,
        index_sizes=index_sizes if curates else None,
        matches=_bank_matches(engine, today) if curates else None,
        prevention=deter_totals(engine, first) if deters else None,
        campaign=_campaign_view(engine, campaign) if deters and campaign else None,
    )


def _bank_matches(engine: Engine, today: date) -> list[BankMatches]:
    week = (today - timedelta(days=6)).isoformat()
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for day in recent_matches(engine, today - timedelta(days=RECENT_DAYS - 1)):
        counts = totals[(day.bank, day.category or NO_CATEGORY)]
        counts[1] += day.count
        if day.day >= week:
            counts[0] += day.count
    return [BankMatches(bank, category, week_, recent) for (bank, category), (week_, recent) in sorted(totals.items())]


def matches_chart(engine: Engine, today: date) -> bytes:
    """Matches a day over ``RECENT_DAYS``, a bar a category, as PNG."""
    first = today - timedelta(days=RECENT_DAYS - 1)
    daily: dict[str, dict[str, int]] = {(first + timedelta(days=k)).strftime("%m-%d"): {} for k in range(RECENT_DAYS)}
    categories: set[str] = set()
    for day in recent_matches(engine, first):
        label, category = date.fromisoformat(day.day).strftime("%m-%d"), day.category or NO_CATEGORY
        daily[label][category] = daily[label].get(category, 0) + day.count
        categories.add(category)
    series = {category: f"category {category}" for category in sorted(categories)}
    return figure_png(
        lambda axes: draw_grouped_bars(axes, daily, series, "matches"),
        f"Matches a day, {first:%-d %b} to {today:%-d %b %Y} (UTC)",
    )


def _campaign(engine: Engine, query: CampaignQuery) -> tuple[SeriesResult, CampaignView]:
    """The fitted series and what the page says of it; a ``UsageError``
    when it cannot be fitted or has small counts to hide."""
    result, overall = campaign_series(
        query.start, None, query.outcome, query.period, query.region, None, lambda: engine
    )
    small = [str(day) for day, count in zip(result.dates, result.observed, strict=True) if 0 < count < SMALL_COUNT]
    if small:
        raise UsageError(
            f"{len(small)} {query.period}(s) hold fewer than {SMALL_COUNT} (first: {small[0]}), which the dashboard "
            "does not show; choose month, or all regions"
        )
    page = campaign_page(result, overall, OUTCOME_SUBJECTS[query.outcome])
    return result, CampaignView(query, page.headlines, page.rows)


def _campaign_view(engine: Engine, query: CampaignQuery) -> CampaignView:
    try:
        return _campaign(engine, query)[1]
    except UsageError as problem:
        return CampaignView(query, [], [], problem=str(problem))


def campaign_chart(engine: Engine, query: CampaignQuery) -> bytes:
    """The campaign's interrupted time series chart as PNG (``UsageError`` as ``_campaign``)."""
    result, _ = _campaign(engine, query)
    subject = OUTCOME_SUBJECTS[query.outcome]
    title = f"{subject}, {result.region or 'all regions'}: campaign from {result.start:%-d %B %Y}"
    return figure_png(lambda axes: draw_series(axes, result, subject), title)
