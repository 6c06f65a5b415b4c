"""Printable reports for a council or a police and crime commissioner: an
HTML page (one self-contained file, the chart inside it) and a PDF of the
same content (drawn by matplotlib, so no browser or office suite is needed).

A report folder is written whole or not at all: every file is made in a
temporary folder first and moved in only when all of them are done.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from matplotlib.axes import Axes
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from childsafe import __version__
from childsafe.measure.cases import CaseStats
from childsafe.measure.plots import draw_enforcement, draw_series, enforcement_figure, series_figure
from childsafe.measure.rates import BeforeAfter, change_sentence, describe_change
from childsafe.measure.series import SeriesResult

__all__ = ["ReportPage", "campaign_page", "enforcement_page", "write_report"]

_templates = Environment(loader=PackageLoader("childsafe.measure", "templates"), autoescape=select_autoescape(["html"]))


@dataclass
class ReportPage:
    """What a report says, independent of how it is printed."""

    title: str
    subtitle: str
    headlines: list[str]
    rows: list[tuple[str, str]]
    notes: list[str]
    caption: str
    image_alt: str
    draw: Callable[[Axes], None]  # the chart, on the axes given
    save_chart: Callable[[Path], None]  # the chart as a PNG
    figures: dict[str, Any]  # the numbers, as JSON


def campaign_page(result: SeriesResult, overall: BeforeAfter, subject: str, title: str | None = None) -> ReportPage:
    """The campaign report: the level and trend change, the whole-period rate
    ratio, the chart, and how they were made."""
    where = result.region or "all regions"
    title = title or f"{subject} before and after {result.start:%-d %B %Y} ({where})"
    figures = result.to_dict() | {"overall": overall.to_dict(), "subject": subject}
    before = figures["periods_before"]
    headlines = [
        describe_change(overall, subject)[:-1]
        + f", per day, in the {figures['periods_after']} periods from the start against the {before} before.",
        change_sentence("At the start, the level", result.level_change.ratio, result.level_change.ci95),
    ]
    rows = [
        ("Periods before / after", f"{before} / {figures['periods_after']}"),
        ("Rate ratio, after / before (exact 95% CI)",
         f"{overall.rate_ratio:.2f} ({overall.ci95[0]:.2f} to {overall.ci95[1]:.2f})"),
        ("p-value (exact)", "< 0.001" if overall.p_value < 0.001 else f"{overall.p_value:.3f}"),
        ("Level change at the start (95% CI)",
         f"{result.level_change.ratio:.2f} ({result.level_change.ci95[0]:.2f} to {result.level_change.ci95[1]:.2f})"),
        ("Trend change per period (95% CI)",
         f"{result.trend_change.ratio:.3f} ({result.trend_change.ci95[0]:.3f} to {result.trend_change.ci95[1]:.3f})"),
        ("Overdispersion (Pearson)", f"{result.dispersion:.2f}"),
        ("Seasonality in the model", "yes" if result.seasonality else "no (less than two years of data)"),
    ]  # fmt: skip
    if result.control:
        rows.append(("Control region", result.control))
    notes = [
        "The rate ratio compares the events per day after the start with those before; its interval and "
        "p-value are exact (conditional binomial), so they hold for small counts too.",
        "The level and trend changes come from a segmented regression on the period counts: a line before the "
        f"start, and a jump and a change of slope after it. Method: {result.method}.",
        "The dashed line is what the model expects had the earlier trend gone on. A rise is evidence of a change "
        "at the start, not proof the campaign caused it: anything else that changed then would show the same way"
        + (", which is why a control region is compared." if result.control else "; a control region helps."),
    ]
    return ReportPage(
        title=title,
        subtitle=f"{subject}, {result.dates[0]:%-d %b %Y} to {result.dates[-1]:%-d %b %Y}",
        headlines=headlines,
        rows=rows,
        notes=notes,
        caption="Dots: observed counts. Solid line: the fitted model. Dashed line: expected without the campaign. "
        "Dotted line: the start.",
        image_alt=f"Chart of {subject.lower()} per period with the fitted trend and the expected counts without the campaign",
        draw=lambda axes: draw_series(axes, result, subject),
        save_chart=lambda path: series_figure(result, path, title, subject),
        figures=figures,
    )


def _plural(number: int, one: str, many: str) -> str:
    return f"{number} {one if number == 1 else many}"


def enforcement_page(
    stats: CaseStats, monthly: Mapping[str, Mapping[str, int]], first: date, last: date, area: str | None
) -> ReportPage:
    """The enforcement report: the figures a force publishes, with events by month."""
    where = area or "all areas"
    change = (
        f"referrals {'up' if stats.referrals_change_pct >= 0 else 'down'} {abs(stats.referrals_change_pct):.0f}% "
        "on the period before"
        if stats.referrals_change_pct is not None
        else "no referrals in the period before to compare with"
    )
    headlines = [
        f"{first:%-d %B %Y} to {last:%-d %B %Y}: {_plural(stats.warrants, 'search warrant', 'search warrants')}, "
        f"{_plural(stats.charged, 'person', 'people')} charged, "
        f"{_plural(stats.live_cases, 'live case', 'live cases')}; {_plural(stats.referrals, 'referral', 'referrals')} ({change})."
    ]
    rows = [
        ("Referrals", str(stats.referrals)),
        ("Referrals, same length of time before", str(stats.referrals_previous)),
        ("Change in referrals", "n/a" if stats.referrals_change_pct is None else f"{stats.referrals_change_pct:+.1f}%"),
        ("Search warrants", str(stats.warrants)),
        ("Charged", str(stats.charged)),
        (f"Live cases on {last:%-d %b %Y}", str(stats.live_cases)),
    ]
    notes = [
        "Each figure counts distinct cases with that event in the period (both end days included). Live cases "
        "are cases opened on or before the last day and not closed by then.",
        "Counts come from the force's case events as imported with childsafe cases import; a case is named "
        "only by the force's own reference.",
    ]
    title = f"Enforcement figures, {where}"
    return ReportPage(
        title=title,
        subtitle=f"{first:%-d %B %Y} to {last:%-d %B %Y}",
        headlines=headlines,
        rows=rows,
        notes=notes,
        caption="Referrals (hatched), search warrants (grey) and people charged (black) by month.",
        image_alt="Bar chart of referrals, search warrants and charges by month",
        draw=lambda axes: draw_enforcement(axes, monthly),
        save_chart=lambda path: enforcement_figure(monthly, path, title),
        figures={
            "from": first.isoformat(),
            "to": last.isoformat(),
            "area": area,
            **stats.to_dict(),
            "monthly": monthly,
        },
    )


def _write_pdf(page: ReportPage, path: Path) -> None:
    """The page on one A4 sheet: title, headline sentences, chart, table, notes."""
    figure = Figure(figsize=(8.27, 11.69))
    y = 0.955

    def text(line: str, size: float, weight: str = "normal", width: int = 95, gap: float = 0.006) -> None:
        nonlocal y
        for wrapped in textwrap.wrap(line, width) or [""]:
            figure.text(0.07, y, wrapped, fontsize=size, weight=weight, va="top")
            y -= size / 72 / 11.69 * 1.45
        y -= gap

    text(page.title, 15, "bold", width=70)
    text(page.subtitle, 10, width=100, gap=0.012)
    for sentence in page.headlines:
        text(sentence, 11, "bold", width=85)
    chart_height = 0.33
    axes = figure.add_axes((0.1, y - chart_height, 0.84, chart_height - 0.02))
    page.draw(axes)
    y -= chart_height + 0.03
    for label, value in page.rows:
        figure.text(0.07, y, label, fontsize=9, va="top")
        figure.text(0.93, y, value, fontsize=9, va="top", ha="right")
        y -= 0.019
    y -= 0.01
    for note in page.notes:
        text(note, 8.5, width=120)
    text(f"Made by childsafe {__version__} on {datetime.now(UTC):%Y-%m-%d}.", 7.5)
    with PdfPages(path, metadata={"Title": page.title, "Creator": f"childsafe {__version__}"}) as pdf:
        pdf.savefig(figure)


def write_report(page: ReportPage, out: Path) -> list[Path]:
    """report.html, report.pdf, chart.png and figures.json in ``out``,
    written whole or not at all. Returns the files' paths."""
    out.mkdir(parents=True, exist_ok=True)
    names = ["report.html", "report.pdf", "chart.png", "figures.json"]
    with tempfile.TemporaryDirectory(dir=out, prefix=".report-") as folder:
        staging = Path(folder)
        page.save_chart(staging / "chart.png")
        html = _templates.get_template("report.html").render(
            title=page.title, subtitle=page.subtitle, headlines=page.headlines, rows=page.rows, notes=page.notes,
            caption=page.caption, image_alt=page.image_alt, version=__version__,
            image=base64.b64encode((staging / "chart.png").read_bytes()).decode("ascii"),
            made=f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        )  # fmt: skip
        (staging / "report.html").write_text(html, encoding="utf-8")
        _write_pdf(page, staging / "report.pdf")
        (staging / "figures.json").write_text(json.dumps(page.figures, indent=2, default=str) + "\n", encoding="utf-8")
        for name in names:
            os.replace(staging / name, out / name)
    return [out / name for name in names]
