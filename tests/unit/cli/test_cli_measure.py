"""``childsafe evaluate``, ``cases`` and ``report`` in-process: figures as
JSON and as a sentence, bad input as one line and exit 2, reports rendered
and turned into pictures."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support import invoke


def _write_series(path: Path, rows: list[tuple[str, str, int]]) -> Path:
    path.write_text("date,region,count\n" + "".join(f"{d},{r},{c}\n" for d, r, c in rows))
    return path


def _monthly_rows(region: str, counts: list[int]) -> list[tuple[str, str, int]]:
    return [(f"{2024 + i // 12}-{i % 12 + 1:02d}-01", region, count) for i, count in enumerate(counts)]


def _json(args: list[str], home: Path) -> Any:
    result = invoke(args, home)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_before_after_as_json(home: Path) -> None:
    answer = _json(["evaluate", "before-after", "--before", "100", "--after", "171", "--json"], home)
    assert set(answer) == {"rate_ratio", "percent_change", "ci95", "p_value", "method"}
    assert answer["rate_ratio"] == pytest.approx(1.71)


def test_before_after_as_a_sentence(home: Path) -> None:
    plain = invoke(["evaluate", "before-after", "--before", "100", "--after", "171"], home)
    assert plain.stdout.strip() == "The rate rose 71% (95% CI 33% to 121%; p < 0.001)."


def test_series_with_a_control_region_and_a_plot(home: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    counts = [int(rng.poisson(50 if i < 12 else 80)) for i in range(24)]
    controls = [int(rng.poisson(60)) for _ in range(24)]
    csv_file = _write_series(tmp_path / "help.csv", _monthly_rows("GB-WLS", counts) + _monthly_rows("GB-SCT", controls))
    plot = tmp_path / "series.png"
    series = _json(["evaluate", "series", str(csv_file), "--start", "2025-01-01", "--region", "GB-WLS",
                    "--control", "GB-SCT", "--plot", str(plot), "--json"], home)  # fmt: skip
    assert series["periods_before"] == 12 and series["periods_after"] == 12 and series["control"] == "GB-SCT"
    assert series["level_change"]["ci95"][0] < series["level_change"]["ratio"] < series["level_change"]["ci95"][1]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


BAD_INPUT = {
    "negative count": (["--before", "-3", "--after", "5"], "0 or more"),
    "zero before": (["--before", "0", "--after", "5"], "--before is 0"),
    "half a control": (["--before", "3", "--after", "5", "--control-before", "4"], "give both control counts"),
}


@pytest.mark.parametrize("arguments,message", list(BAD_INPUT.values()), ids=list(BAD_INPUT))
def test_bad_before_after_input(arguments: list[str], message: str, home: Path) -> None:
    done = invoke(["evaluate", "before-after", *arguments], home)
    assert done.exit_code == 2 and message in done.stderr and done.stderr.count("\n") == 1


BAD_SERIES = {
    "a count that is not whole": ("date,region,count\n2024-01-01,GB,4.5\n", "not a whole number"),
    "a negative count": ("date,region,count\n2024-01-01,GB,-4\n", "not a whole number"),
    "dates out of order": ("date,region,count\n2024-02-01,GB,4\n2024-01-01,GB,5\n", "sort the rows by date"),
    "a duplicate period": ("date,region,count\n2024-01-01,GB,4\n2024-01-01,GB,5\n", "one row a period"),
    "not a date": ("date,region,count\n01/02/2024,GB,4\n", "not a date"),
    "no header": ("2024-01-01,GB,4\n", "header"),
}


@pytest.mark.parametrize("content,message", list(BAD_SERIES.values()), ids=list(BAD_SERIES))
def test_bad_series_input(content: str, message: str, tmp_path: Path, home: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    done = invoke(["evaluate", "series", str(path), "--start", "2024-01-15"], home)
    assert done.exit_code == 2 and message in done.stderr and "bad.csv: line" in done.stderr
    assert done.stderr.count("\n") == 1


def test_a_campaign_date_outside_the_data_is_refused(tmp_path: Path, home: Path) -> None:
    path = _write_series(tmp_path / "help.csv", _monthly_rows("GB", list(range(10, 34))))
    done = invoke(["evaluate", "series", str(path), "--start", "2027-01-01"], home)
    assert done.exit_code == 2 and "leaves 24 periods before and 0 after" in done.stderr


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
QUARTER = ["--from", "2025-01-01", "--to", "2025-03-31"]


@pytest.fixture
def cases(home: Path, tmp_path: Path) -> Path:
    """The case events file (11 rows), imported into ``home``."""
    events = tmp_path / "cases.csv"
    events.write_text(CASES)
    assert _json(["cases", "import", str(events), "--json"], home) == {"rows": 11, "added": 11, "total": 11}
    return events


def test_importing_case_events_again_adds_nothing(home: Path, cases: Path) -> None:
    again = _json(["cases", "import", str(cases), "--json"], home)
    assert again["added"] == 0 and again["total"] == 11


def test_case_figures_of_a_quarter(home: Path, cases: Path) -> None:
    stats = _json(["cases", "stats", *QUARTER, "--json"], home)
    assert stats == {"referrals": 3, "referrals_previous": 1, "referrals_change_pct": 200.0, "warrants": 2,
                     "charged": 1, "live_cases": 2}  # fmt: skip


def test_case_figures_of_one_area(home: Path, cases: Path) -> None:
    north = _json(["cases", "stats", *QUARTER, "--area", "North", "--json"], home)
    assert north["referrals"] == 2 and north["live_cases"] == 1 and north["warrants"] == 1


def test_case_figures_of_a_period_without_cases(home: Path, cases: Path) -> None:
    early = _json(["cases", "stats", "--from", "2024-01-01", "--to", "2024-06-30", "--json"], home)
    assert early["referrals"] == 0 and early["referrals_change_pct"] is None


def test_an_unknown_event_refuses_the_whole_file(home: Path, cases: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("case_id,date,event,area\nC9,2025-01-01,arrested,North\n")
    refused = invoke(["cases", "import", str(bad)], home)
    assert refused.exit_code == 2 and "bad.csv: line 2: unknown event 'arrested'" in refused.stderr
    assert _json(["cases", "import", str(cases), "--json"], home)["total"] == 11  # nothing half-added


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A campaign report and an enforcement report, each in its folder."""
    home, folder = tmp_path_factory.mktemp("home"), tmp_path_factory.mktemp("reports")
    rng = np.random.default_rng(5)
    counts = [int(rng.poisson(40 if i < 18 else 65)) for i in range(36)]
    series = _write_series(folder / "help.csv", _monthly_rows("GB-WLS", counts))
    campaign = folder / "campaign"
    done = invoke(["report", "campaign", str(series), "--start", "2025-07-01", "--region", "GB-WLS",
                   "--subject", "Help-seeking", "--out", str(campaign)], home)  # fmt: skip
    assert done.exit_code == 0, done.output
    events = folder / "cases.csv"
    events.write_text(CASES)
    assert invoke(["cases", "import", str(events)], home).exit_code == 0
    enforcement = folder / "enforcement"
    done = invoke(["report", "enforcement", *QUARTER, "--out", str(enforcement)], home)
    assert done.exit_code == 0, done.output
    return {"campaign": campaign, "enforcement": enforcement}


@pytest.mark.slow
def test_a_campaign_report_is_html_with_its_chart(reports: dict[str, Path]) -> None:
    html = (reports["campaign"] / "report.html").read_text()
    assert "Help-seeking rose" in html and "data:image/png;base64," in html and '<html lang="en">' in html
    assert json.loads((reports["campaign"] / "figures.json").read_text())["periods_after"] == 18


@pytest.mark.slow
def test_an_enforcement_report_states_the_figures(reports: dict[str, Path]) -> None:
    html = (reports["enforcement"] / "report.html").read_text()
    assert "2 search warrants, 1 person charged, 2 live cases" in html


@pytest.mark.slow
def test_a_report_leaves_no_partial_files(reports: dict[str, Path]) -> None:
    assert not [p for p in reports["campaign"].iterdir() if p.name.startswith(".")]


@pytest.mark.slow
@pytest.mark.parametrize("report", ["campaign", "enforcement"])
def test_a_report_pdf_turns_into_a_page_with_a_chart(reports: dict[str, Path], report: str) -> None:
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (Debian's poppler-utils) is not installed; ./run tests installs it as root")
    folder = reports[report]
    subprocess.run(["pdftoppm", "-png", "-r", "50", str(folder / "report.pdf"), str(folder / "page")], check=True)
    assert (folder / "page-1.png").stat().st_size > 10_000  # kept with the test's output to look at


@pytest.fixture
def help_clicks(home: Path) -> Path:
    """16 weeks of childsafe's own help-click counters, GB rising after 2 March 2026, NL flat."""
    from childsafe.config import Settings
    from childsafe.store import open_database
    from childsafe.store.models import DeterCount

    engine = open_database(Settings.from_env({"CHILDSAFE_HOME": str(home)}).database_url)
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
    return home


def test_a_warning_campaign_is_evaluated_from_childsafes_own_counters(help_clicks: Path) -> None:
    answer = _json(["evaluate", "series", "--counters", "help_clicked", "--region", "GB", "--control", "NL",
                    "--start", "2026-03-02", "--json"], help_clicks)  # fmt: skip
    assert answer["periods_before"] == 8 and answer["periods_after"] == 8
    low, high = answer["level_change"]["ci95"]
    assert low < 11 / 6 < high and low > 1


def test_counters_never_kept_are_exit_2(help_clicks: Path) -> None:
    missing = invoke(["evaluate", "series", "--counters", "abandoned", "--start", "2026-03-02"], help_clicks)
    assert missing.exit_code == 2 and "no 'abandoned' counts" in missing.stderr
