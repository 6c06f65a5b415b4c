"""Measurement: before-after rate ratios checked against scipy's own tests,
interrupted time series checked on simulated data with a known effect, case
figures, bad input, and the reports rendered and turned into pictures."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest
from support import run_cli

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


def _write_series(path: Path, rows: list[tuple[str, str, int]]) -> Path:
    path.write_text("date,region,count\n" + "".join(f"{d},{r},{c}\n" for d, r, c in rows))
    return path


def _monthly_rows(region: str, counts: list[int]) -> list[tuple[str, str, int]]:
    return [(f"{2024 + i // 12}-{i % 12 + 1:02d}-01", region, count) for i, count in enumerate(counts)]


def test_evaluate_commands(tmp_path: Path, cli_env: dict[str, str]) -> None:
    answer = json.loads(
        run_cli(["evaluate", "before-after", "--before", "100", "--after", "171", "--json"], cli_env).stdout
    )
    assert set(answer) == {"rate_ratio", "percent_change", "ci95", "p_value", "method"}
    assert answer["rate_ratio"] == pytest.approx(1.71)
    plain = run_cli(["evaluate", "before-after", "--before", "100", "--after", "171"], cli_env)
    assert plain.stdout.strip() == "The rate rose 71% (95% CI 33% to 121%; p < 0.001)."
    rng = np.random.default_rng(11)
    counts = [int(rng.poisson(50 if i < 12 else 80)) for i in range(24)]
    controls = [int(rng.poisson(60)) for _ in range(24)]
    csv_file = _write_series(tmp_path / "help.csv", _monthly_rows("GB-WLS", counts) + _monthly_rows("GB-SCT", controls))
    plot = tmp_path / "series.png"
    done = run_cli(["evaluate", "series", str(csv_file), "--start", "2025-01-01", "--region", "GB-WLS",
                    "--control", "GB-SCT", "--plot", str(plot), "--json"], cli_env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    series = json.loads(done.stdout)
    assert series["periods_before"] == 12 and series["periods_after"] == 12 and series["control"] == "GB-SCT"
    assert series["level_change"]["ci95"][0] < series["level_change"]["ratio"] < series["level_change"]["ci95"][1]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


BAD_INPUT = {
    "negative count": (["--before", "-3", "--after", "5"], "0 or more"),
    "zero before": (["--before", "0", "--after", "5"], "--before is 0"),
    "half a control": (["--before", "3", "--after", "5", "--control-before", "4"], "give both control counts"),
}


@pytest.mark.parametrize("arguments,message", list(BAD_INPUT.values()), ids=list(BAD_INPUT))
def test_bad_before_after_input(arguments: list[str], message: str, cli_env: dict[str, str]) -> None:
    done = run_cli(["evaluate", "before-after", *arguments], cli_env)
    assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1


BAD_SERIES = {
    "a count that is not whole": ("date,region,count\n2024-01-01,GB,4.5\n", "not a whole number"),
    "a negative count": ("date,region,count\n2024-01-01,GB,-4\n", "not a whole number"),
    "dates out of order": ("date,region,count\n2024-02-01,GB,4\n2024-01-01,GB,5\n", "sort the rows by date"),
    "a duplicate period": ("date,region,count\n2024-01-01,GB,4\n2024-01-01,GB,5\n", "one row a period"),
    "not a date": ("date,region,count\n01/02/2024,GB,4\n", "not a date"),
    "no header": ("2024-01-01,GB,4\n", "header"),
}


@pytest.mark.parametrize("content,message", list(BAD_SERIES.values()), ids=list(BAD_SERIES))
def test_bad_series_input(content: str, message: str, tmp_path: Path, cli_env: dict[str, str]) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    done = run_cli(["evaluate", "series", str(path), "--start", "2024-01-15"], cli_env)
    assert done.returncode == 2 and message in done.stderr and "bad.csv: line" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_campaign_date_outside_the_data_is_refused(tmp_path: Path, cli_env: dict[str, str]) -> None:
    path = _write_series(tmp_path / "help.csv", _monthly_rows("GB", list(range(10, 34))))
    done = run_cli(["evaluate", "series", str(path), "--start", "2027-01-01"], cli_env)
    assert done.returncode == 2 and "leaves 24 periods before and 0 after" in done.stderr


CASES = """case_id,date,event,area
C1,2025-01-10,referral,North
C1,2025-01-20,opened,North
C1,2025-02-01,warrant,North
C1,2025-03-01,charged,North
C2,2025-02-15,referral,North
C2,2025-02-20,opened,North
C2,2025-03-20,closed,North
C3,2025-03-05,referral,South
C3,2025-03-06,opened,South
C3,2025-03-07,warrant,South
C4,2024-12-20,referral,North
"""


def test_cases_import_and_stats(tmp_path: Path, cli_env: dict[str, str]) -> None:
    events = tmp_path / "cases.csv"
    events.write_text(CASES)
    first = json.loads(run_cli(["cases", "import", str(events), "--json"], cli_env).stdout)
    assert first == {"rows": 11, "added": 11, "total": 11}
    again = json.loads(run_cli(["cases", "import", str(events), "--json"], cli_env).stdout)
    assert again["added"] == 0 and again["total"] == 11  # idempotent
    stats = json.loads(
        run_cli(["cases", "stats", "--from", "2025-01-01", "--to", "2025-03-31", "--json"], cli_env).stdout
    )
    assert stats == {"referrals": 3, "referrals_previous": 1, "referrals_change_pct": 200.0, "warrants": 2,
                     "charged": 1, "live_cases": 2}  # fmt: skip
    north = json.loads(
        run_cli(
            ["cases", "stats", "--from", "2025-01-01", "--to", "2025-03-31", "--area", "North", "--json"], cli_env
        ).stdout
    )
    assert north["referrals"] == 2 and north["live_cases"] == 1 and north["warrants"] == 1
    early = json.loads(
        run_cli(["cases", "stats", "--from", "2024-01-01", "--to", "2024-06-30", "--json"], cli_env).stdout
    )
    assert early["referrals"] == 0 and early["referrals_change_pct"] is None
    bad = tmp_path / "bad.csv"
    bad.write_text("case_id,date,event,area\nC9,2025-01-01,arrested,North\n")
    refused = run_cli(["cases", "import", str(bad)], cli_env)
    assert refused.returncode == 2 and "bad.csv: line 2: unknown event 'arrested'" in refused.stderr
    assert (
        json.loads(run_cli(["cases", "import", str(events), "--json"], cli_env).stdout)["total"] == 11
    )  # nothing half-added


@pytest.mark.slow
def test_reports_render_as_html_and_pdf(tmp_path: Path, cli_env: dict[str, str]) -> None:
    rng = np.random.default_rng(5)
    counts = [int(rng.poisson(40 if i < 18 else 65)) for i in range(36)]
    series = _write_series(tmp_path / "help.csv", _monthly_rows("GB-WLS", counts))
    campaign = tmp_path / "campaign"
    done = run_cli(["report", "campaign", str(series), "--start", "2025-07-01", "--region", "GB-WLS",
                    "--subject", "Help-seeking", "--out", str(campaign)], cli_env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    html = (campaign / "report.html").read_text()
    assert "Help-seeking rose" in html and "data:image/png;base64," in html and '<html lang="en">' in html
    assert json.loads((campaign / "figures.json").read_text())["periods_after"] == 18
    events = tmp_path / "cases.csv"
    events.write_text(CASES)
    run_cli(["cases", "import", str(events)], cli_env)
    enforcement = tmp_path / "enforcement"
    done = run_cli(
        ["report", "enforcement", "--from", "2025-01-01", "--to", "2025-03-31", "--out", str(enforcement)], cli_env
    )
    assert done.returncode == 0, done.stderr
    assert "2 search warrants, 1 person charged, 2 live cases" in (enforcement / "report.html").read_text()
    assert not [p for p in campaign.iterdir() if p.name.startswith(".")]  # no partial files left
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (Debian's poppler-utils) is not installed; ./run tests installs it as root")
    for folder in (campaign, enforcement):
        subprocess.run(["pdftoppm", "-png", "-r", "50", str(folder / "report.pdf"), str(folder / "page")], check=True)
        page = folder / "page-1.png"
        assert page.stat().st_size > 10_000  # a page with a chart on it, kept with the test's output to look at


def test_a_warning_campaign_evaluated_from_childsafes_own_counters(cli_env: dict[str, str]) -> None:
    from childsafe.config import Settings
    from childsafe.store import open_database
    from childsafe.store.models import DeterCount

    engine = open_database(Settings.from_env(cli_env).database_url)
    rng = np.random.default_rng(2)
    first = date(2026, 1, 5)  # a Monday
    rows = []
    for day_number in range(16 * 7):
        day = first + timedelta(days=day_number)
        rate = 6 if day_number < 8 * 7 else 11  # help clicks a day, before and after 2 March
        for region in ("GB", "NL"):
            rows.append({"day": day.isoformat(), "region": region, "list_name": "kw", "outcome": "help_clicked",
                         "count": int(rng.poisson(rate if region == "GB" else 6))})  # fmt: skip
    with engine.begin() as connection:
        connection.execute(DeterCount.__table__.insert(), rows)
    engine.dispose()
    done = run_cli(["evaluate", "series", "--counters", "help_clicked", "--region", "GB", "--control", "NL",
                    "--start", "2026-03-02", "--json"], cli_env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["periods_before"] == 8 and answer["periods_after"] == 8
    low, high = answer["level_change"]["ci95"]
    assert low < 11 / 6 < high and low > 1
    missing = run_cli(["evaluate", "series", "--counters", "abandoned", "--start", "2026-03-02"], cli_env)
    assert missing.returncode == 2 and "no 'abandoned' counts" in missing.stderr
