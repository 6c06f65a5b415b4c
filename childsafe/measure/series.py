"""Interrupted time series: did counts change when a campaign started?

A segmented regression on weekly or monthly counts (statsmodels GLM):

    log E[count] = log(days) + b0 + b1 t + b2 after + b3 (t - t0) after [+ seasonality]

``exp(b2)`` is the level change at the start (a rate ratio) and ``exp(b3)``
the change in trend per period. Counts of people are overdispersed, so the
Poisson fit's standard errors are scaled by the Pearson dispersion
(quasi-Poisson; never scaled below Poisson's). With at least two years of
data, annual seasonality enters as Fourier terms. With a control region the
two series are fitted together and the effects are the treated region's
changes beyond the control's (comparative interrupted time series).
"""

from __future__ import annotations

import calendar
import csv
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import statsmodels.api as sm
from sqlalchemy import Engine, func, select

from childsafe.errors import InputFormatError, UsageError
from childsafe.measure.rates import BeforeAfter, before_after
from childsafe.store.models import DeterCount

__all__ = [
    "MIN_PERIODS",
    "Effect",
    "Period",
    "SeriesResult",
    "campaign_series",
    "deterrence_series",
    "interrupted_series",
    "read_series_csv",
    "whole_period_change",
]

#: Periods needed on each side of the start to fit a level and a trend.
MIN_PERIODS = 4
#: Data spanning this many days or more get annual seasonality terms.
SEASONAL_DAYS = 2 * 365


@dataclass(frozen=True)
class Period:
    """One row of a series: the count in the period starting on ``start``, ``days`` long."""

    start: date
    count: int
    days: float


@dataclass(frozen=True)
class Effect:
    """A rate ratio with its 95% interval."""

    ratio: float
    ci95: tuple[float, float]

    def to_dict(self) -> dict[str, Any]:
        return {"ratio": self.ratio, "percent_change": (self.ratio - 1) * 100, "ci95": list(self.ci95)}


@dataclass
class SeriesResult:
    """The effects, how they were estimated, and the lines to draw."""

    level_change: Effect
    trend_change: Effect
    method: str
    dispersion: float
    seasonality: bool
    region: str | None
    control: str | None
    dates: list[date]
    observed: list[int]
    fitted: list[float]
    counterfactual: list[float]
    start: date
    control_observed: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON answer (the lines themselves are left to the plot)."""
        before = sum(1 for d in self.dates if d < self.start)
        return {
            "level_change": self.level_change.to_dict(),
            "trend_change_per_period": self.trend_change.to_dict(),
            "method": self.method,
            "dispersion": self.dispersion,
            "seasonality": self.seasonality,
            "region": self.region,
            "control": self.control,
            "start": self.start.isoformat(),
            "periods_before": before,
            "periods_after": len(self.dates) - before,
        }


def _days_in_month(day: date) -> int:
    return calendar.monthrange(day.year, day.month)[1]


def read_series_csv(path: Path, regions: Sequence[str] = ()) -> dict[str, list[Period]]:
    """The file's series by region (each of ``regions`` must be there), checked:
    ``date,region,count[,days]``, one row a period, dates in order, counts
    whole and not negative. Without ``days``, months (dates on the 1st) get
    their length in days and other periods count as equal."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    if not rows or [cell.strip().lower() for cell in rows[0][:3]] != ["date", "region", "count"]:
        raise InputFormatError(f"{path.name}: line 1: the header must be date,region,count[,days]")
    has_days = len(rows[0]) > 3 and rows[0][3].strip().lower() == "days"
    series: dict[str, list[tuple[date, int, float | None]]] = {}
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        where = f"{path.name}: line {number}"
        if len(row) < 3:
            raise InputFormatError(f"{where}: expected date,region,count")
        try:
            day = date.fromisoformat(row[0].strip())
        except ValueError:
            raise InputFormatError(f"{where}: {row[0]!r:.40} is not a date (YYYY-MM-DD)") from None
        name = row[1].strip()
        text = row[2].strip()
        if not text.isdigit():
            raise InputFormatError(f"{where}: count {text!r:.40} is not a whole number 0 or more")
        days: float | None = None
        if has_days and len(row) > 3 and row[3].strip():
            try:
                days = float(row[3])
            except ValueError:
                days = -1
            if not days > 0 or not math.isfinite(days):
                raise InputFormatError(f"{where}: days {row[3]!r:.40} is not a number more than 0")
        rows_so_far = series.setdefault(name, [])
        if rows_so_far and day == rows_so_far[-1][0]:
            raise InputFormatError(f"{where}: a second row for {name} on {day}: one row a period")
        if rows_so_far and day < rows_so_far[-1][0]:
            raise InputFormatError(f"{where}: {day} comes after {rows_so_far[-1][0]}: sort the rows by date")
        rows_so_far.append((day, int(text), days))
    for region in regions:
        if region not in series:
            known = ", ".join(sorted(series)) or "none"
            raise UsageError(f"{path.name}: no rows for region {region!r} (regions in the file: {known})")
    result = {}
    for name, items in series.items():
        monthly = all(day.day == 1 for day, _, _ in items)
        result[name] = [
            Period(day, count, days if days is not None else (_days_in_month(day) if monthly else 1.0))
            for day, count, days in items
        ]
    return result


def deterrence_series(engine: Engine, outcome: str, region: str | None, period: str = "week") -> list[Period]:
    """childsafe's own prevention counters (``deter_counts``) as a series: the
    ``outcome``'s counts summed over lists (and regions, unless ``region``) per
    week (from Monday) or calendar month, from the first to the last period
    with a count; periods with none are 0."""
    if period not in ("week", "month"):
        raise UsageError(f"{{field}} must be week or month, not {period!r}", field="period")
    query = select(DeterCount.day, func.sum(DeterCount.count)).where(DeterCount.outcome == outcome)
    if region is not None:
        query = query.where(DeterCount.region == region.upper())
    with engine.connect() as connection:
        daily = {
            date.fromisoformat(day): int(total) for day, total in connection.execute(query.group_by(DeterCount.day))
        }
    if not daily:
        raise UsageError(f"no {outcome!r} counts{' for ' + region if region else ''} in the prevention counters")

    def period_start(day: date) -> date:
        return day - timedelta(days=day.weekday()) if period == "week" else day.replace(day=1)

    def next_start(day: date) -> date:
        return day + timedelta(days=7) if period == "week" else (day + timedelta(days=32)).replace(day=1)

    totals: dict[date, int] = {}
    for day, total in daily.items():
        totals[period_start(day)] = totals.get(period_start(day), 0) + total
    periods = []
    current, last = min(totals), max(totals)
    while current <= last:
        days = 7.0 if period == "week" else float(_days_in_month(current))
        periods.append(Period(current, totals.get(current, 0), days))
        current = next_start(current)
    return periods


def whole_period_change(periods: Sequence[Period], start: date) -> BeforeAfter:
    """The rate ratio of all the periods from ``start`` against all before it (per day)."""
    before = [p for p in periods if p.start < start]
    after = [p for p in periods if p.start >= start]
    return before_after(
        sum(p.count for p in before), sum(p.count for p in after),
        sum(p.days for p in before) or 1.0, sum(p.days for p in after) or 1.0,
    )  # fmt: skip


def _design(dates: Sequence[date], start: date, seasonal: bool, harmonics: int) -> np.ndarray:
    t = np.arange(len(dates), dtype=float)
    after = np.array([d >= start for d in dates], dtype=float)
    first_after = int(np.argmax(after))
    columns = [np.ones_like(t), t, after, (t - first_after) * after]
    if seasonal:
        year_fraction = np.array([d.timetuple().tm_yday / 365.25 for d in dates])
        for k in range(1, harmonics + 1):
            columns += [np.sin(2 * np.pi * k * year_fraction), np.cos(2 * np.pi * k * year_fraction)]
    design: np.ndarray = np.column_stack(columns)
    return design


def _check_start(periods: Sequence[Period], start: date, name: str) -> None:
    before = sum(1 for p in periods if p.start < start)
    after = len(periods) - before
    if before < MIN_PERIODS or after < MIN_PERIODS:
        first, last = periods[0].start, periods[-1].start
        raise UsageError(
            f"{{field}} {start} leaves {before} periods before and {after} after in {name} ({first} to {last}):"
            f" at least {MIN_PERIODS} are needed on each side",
            field="start",
        )


def interrupted_series(
    periods: Sequence[Period],
    start: date,
    control: Sequence[Period] | None = None,
    region: str | None = None,
    control_region: str | None = None,
) -> SeriesResult:
    """Fit the segmented regression (see the module's docstring)."""
    _check_start(periods, start, region or "the series")
    dates = [p.start for p in periods]
    span = (dates[-1] - dates[0]).days
    seasonal = span >= SEASONAL_DAYS
    spacing = span / max(1, len(dates) - 1)
    harmonics = 2 if spacing < 20 else 1  # weekly data can show a sharper yearly shape than monthly
    design = _design(dates, start, seasonal, harmonics)
    counts = np.array([p.count for p in periods], dtype=float)
    offset = np.log([p.days for p in periods])
    if control is None:
        x, y, off = design, counts, offset
        level_column, trend_column = 2, 3
    else:
        if [p.start for p in control] != dates:
            raise UsageError(f"the control {control_region} must have the same periods as {region}")
        _check_start(control, start, control_region or "the control")
        # Rows: the treated series, then the control. Treated-only columns carry the effects.
        base = design
        treated = np.concatenate([np.ones(len(dates)), np.zeros(len(dates))])
        stacked = np.vstack([base, base])
        extra = stacked[:, :4] * treated[:, None]
        x = np.column_stack([stacked, extra])
        y = np.concatenate([counts, [p.count for p in control]])
        off = np.concatenate([offset, np.log([p.days for p in control])])
        level_column, trend_column = base.shape[1] + 2, base.shape[1] + 3
    if y.sum() == 0:
        raise UsageError("every count is 0: there is nothing to model")
    model = sm.GLM(y, x, family=sm.families.Poisson(), offset=off)
    first_fit = model.fit()
    dispersion = float(first_fit.pearson_chi2 / max(1, first_fit.df_resid))
    fit = model.fit(scale=max(1.0, dispersion))
    params, errors = np.asarray(fit.params), np.asarray(fit.bse)

    def effect(column: int) -> Effect:
        estimate, error = float(params[column]), float(errors[column])
        return Effect(math.exp(estimate), (math.exp(estimate - 1.96 * error), math.exp(estimate + 1.96 * error)))

    fitted_all = np.exp(x @ params + off)
    without = x.copy()
    without[:, [level_column, trend_column]] = 0  # the treated region's changes undone
    counterfactual_all = np.exp(without @ params + off)
    n = len(dates)
    method = (
        "segmented quasi-Poisson regression (Poisson GLM, errors scaled by Pearson dispersion)"
        + (", annual Fourier seasonality" if seasonal else "")
        + (f", comparative with control {control_region}" if control is not None else "")
    )
    return SeriesResult(
        level_change=effect(level_column),
        trend_change=effect(trend_column),
        method=method,
        dispersion=dispersion,
        seasonality=seasonal,
        region=region,
        control=control_region,
        dates=dates,
        observed=[p.count for p in periods],
        fitted=[float(v) for v in fitted_all[:n]],
        counterfactual=[float(v) for v in counterfactual_all[:n]],
        start=start,
        control_observed=[p.count for p in control] if control is not None else [],
    )


def campaign_series(
    start: date,
    file: Path | None,
    counters: str | None,
    period: str,
    region: str | None,
    control: str | None,
    open_engine: Callable[[], Engine],
) -> tuple[SeriesResult, BeforeAfter]:
    """A campaign's series fitted at ``start`` (:func:`interrupted_series`) and
    its whole-period rate ratio (:func:`whole_period_change`).

    The counts come from exactly one source: ``file`` (a CSV file of
    :func:`read_series_csv`; ``region`` may be left out when it holds one) or
    ``counters``, an outcome of childsafe's own prevention counters
    (:func:`deterrence_series` per ``period``), read from the database that
    ``open_engine`` opens (called only then). ``control`` is a region without
    the campaign, from the same source."""
    if (file is None) == (counters is None):
        raise UsageError(
            "give a FILE.csv or {field} OUTCOME (childsafe's own prevention counters), not both", field="counters"
        )
    if file is not None:
        series = read_series_csv(file, [name for name in (region, control) if name is not None])
        if region is None:
            if len(series) > 1:
                raise UsageError(f"{file.name} holds {len(series)} regions: choose one with {{field}}", field="region")
            region = next(iter(series))
        treated, controls = series[region], series[control] if control else None
    else:
        engine = open_engine()
        treated = deterrence_series(engine, str(counters), region, period)
        controls = deterrence_series(engine, str(counters), control, period) if control else None
    result = interrupted_series(treated, start, controls, region, control)
    return result, whole_period_change(treated, start)
