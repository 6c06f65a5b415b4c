"""Measurement: before-after rate ratios checked against scipy's own tests,
interrupted time series checked on simulated data with a known effect, case
figures, bad input, and the reports rendered and turned into pictures."""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import pytest
from scipy.stats import binomtest

from childsafe.measure.rates import before_after, describe_change
from childsafe.measure.series import Period, interrupted_series


def test_rate_ratio_agrees_with_scipys_binomial_test() -> None:
    result = before_after(100, 171)
    assert result.rate_ratio == pytest.approx(1.71)
    assert result.percent_change == pytest.approx(71)
    reference = binomtest(171, 271, 0.5)
    interval = reference.proportion_ci(method="exact")
    assert result.p_value == pytest.approx(reference.pvalue)
    assert result.ci95[0] == pytest.approx(interval.low / (1 - interval.low))
    assert result.ci95[1] == pytest.approx(interval.high / (1 - interval.high))
    assert describe_change(result, "Help-seeking") == "Help-seeking rose 71% (95% CI 33% to 121%; p < 0.001)."


def test_periods_of_different_length_compare_rates_per_day() -> None:
    # 90 events in 30 days, then 90 in 60 days: the rate halved.
    result = before_after(90, 90, before_days=30, after_days=60)
    assert result.rate_ratio == pytest.approx(0.5)
    assert result.p_value == pytest.approx(binomtest(90, 180, 60 / 90).pvalue)
    assert result.ci95[0] < 0.5 < result.ci95[1]
    assert describe_change(result).startswith("The rate fell 50%")


def test_ratio_of_rate_ratios_with_a_control() -> None:
    from scipy.stats import fisher_exact
    from scipy.stats.contingency import odds_ratio

    result = before_after(100, 180, control_before=200, control_after=220)
    assert result.rate_ratio == pytest.approx((180 / 100) / (220 / 200))
    table = [[180, 100], [220, 200]]
    interval = odds_ratio(table, kind="conditional").confidence_interval()
    assert result.ci95 == pytest.approx((interval.low, interval.high))
    assert result.p_value == pytest.approx(fisher_exact(table).pvalue)
    assert "control" in result.method


def _simulated(weeks: int, level: float, rng: np.random.Generator, seasonal: bool = False) -> list[Period]:
    """Weekly counts with a known level change at week ``weeks // 2`` and no trend change."""
    first = date(2023, 1, 2)
    periods = []
    for week in range(weeks):
        day = first + timedelta(weeks=week)
        mean = 30 * math.exp(0.003 * week) * (level if week >= weeks // 2 else 1)
        if seasonal:
            mean *= math.exp(0.25 * math.sin(2 * math.pi * day.timetuple().tm_yday / 365.25))
        periods.append(Period(day, int(rng.poisson(rng.gamma(10, mean / 10))), 7.0))  # overdispersed
    return periods


def test_series_finds_a_known_level_change() -> None:
    rng = np.random.default_rng(7)
    periods = _simulated(120, 1.5, rng, seasonal=True)
    result = interrupted_series(periods, periods[60].start, region="GB")
    assert result.seasonality is True and result.dispersion > 1
    low, high = result.level_change.ci95
    assert low < 1.5 < high and low > 1.1
    assert result.trend_change.ci95[0] < 1 < result.trend_change.ci95[1]
    assert result.counterfactual[:60] == pytest.approx(result.fitted[:60])
    assert all(c < f for c, f in zip(result.counterfactual[60:], result.fitted[60:], strict=True))


@pytest.mark.slow
def test_series_intervals_cover_the_truth_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(20261129)
    runs, covered, covered_trend = 300, 0, 0
    for _ in range(runs):
        periods = _simulated(60, 1.3, rng)
        result = interrupted_series(periods, periods[30].start)
        covered += result.level_change.ci95[0] <= 1.3 <= result.level_change.ci95[1]
        covered_trend += result.trend_change.ci95[0] <= 1.0 <= result.trend_change.ci95[1]
    # 95% nominal; with 300 runs the share falls in 0.91-0.98 unless the intervals are wrong.
    assert 0.91 <= covered / runs <= 0.985, covered / runs
    assert 0.91 <= covered_trend / runs <= 0.985, covered_trend / runs


def test_comparative_series_with_a_control_region() -> None:
    rng = np.random.default_rng(3)
    treated = _simulated(80, 1.6, rng)
    control = _simulated(80, 1.0, rng)
    result = interrupted_series(treated, treated[40].start, control, "GB-WLS", "GB-SCT")
    assert result.level_change.ci95[0] < 1.6 < result.level_change.ci95[1]
    assert "control GB-SCT" in result.method and result.control_observed
