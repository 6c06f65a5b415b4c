"""Measurement: ``childsafe evaluate before-after|series``, ``cases
import|stats`` and ``report campaign|enforcement``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from childsafe.cli._common import (
    CommandContext,
    JsonOption,
    command_context,
    date_option,
    errors_to_exit_codes,
    print_json,
    sub_app,
)

if TYPE_CHECKING:
    from childsafe.measure.rates import BeforeAfter
    from childsafe.measure.series import SeriesResult

__all__ = ["cases_app", "evaluate_app", "report_app"]

evaluate_app = sub_app("Did a campaign change a count? Before-after rate ratios and interrupted time series.")
cases_app = sub_app("Case events and the enforcement figures counted from them.")
report_app = sub_app(
    "Printable reports (HTML and PDF) for a council or commissioner, and referrals to NCMEC and the NCA."
)


SubjectOption = Annotated[str, typer.Option("--subject", help="What is counted, for the sentences: 'Help-seeking'.")]


@evaluate_app.command("before-after")
def evaluate_before_after_command(
    before: Annotated[int, typer.Option("--before", help="Events in the period before.")],
    after: Annotated[int, typer.Option("--after", help="Events in the period after.")],
    before_days: Annotated[float, typer.Option("--before-days", help="Length of the period before.")] = 1.0,
    after_days: Annotated[float, typer.Option("--after-days", help="Length of the period after.")] = 1.0,
    control_before: Annotated[
        int | None, typer.Option("--control-before", help="A control region's events before.")
    ] = None,
    control_after: Annotated[
        int | None, typer.Option("--control-after", help="The control region's events after.")
    ] = None,
    subject: SubjectOption = "The rate",
    json_output: JsonOption = False,
) -> None:
    """The rate ratio of two periods with its exact 95% interval and p-value (with a control: the ratio of ratios)."""
    from childsafe.measure.rates import before_after, describe_change

    with errors_to_exit_codes():
        result = before_after(before, after, before_days, after_days, control_before, control_after)
    if json_output:
        print_json(result.to_dict())
    else:
        print(describe_change(result, subject))


def _campaign_series(
    context: CommandContext,
    file: Path | None,
    counters: str | None,
    period: str,
    start_text: str,
    region: str | None,
    control: str | None,
) -> tuple[SeriesResult, BeforeAfter]:
    from childsafe.measure.series import campaign_series

    start = date_option("--start", start_text)
    return campaign_series(start, file, counters, period, region, control, lambda: context.engine)


FileArgument = Annotated[Path | None, typer.Argument(help="Counts as date,region,count[,days] (one row a period).")]
CountersOption = Annotated[
    str | None,
    typer.Option("--counters", help="Use childsafe's prevention counters for this outcome instead of a file."),
]
PeriodOption = Annotated[str, typer.Option("--period", help="With --counters: week or month.")]
StartOption = Annotated[str, typer.Option("--start", help="The campaign's first day (YYYY-MM-DD).")]
RegionOption = Annotated[str | None, typer.Option("--region", help="The region to evaluate.")]
ControlOption = Annotated[str | None, typer.Option("--control", help="A control region without the campaign.")]


@evaluate_app.command("series")
def evaluate_series_command(
    start: StartOption,
    file: FileArgument = None,
    region: RegionOption = None,
    control: ControlOption = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Draw the series, fit and counterfactual to this PNG.")
    ] = None,
    counters: CountersOption = None,
    period: PeriodOption = "week",
    subject: SubjectOption = "Count",
    json_output: JsonOption = False,
) -> None:
    """Interrupted time series: the level and trend change at --start, with 95% intervals."""
    from childsafe.measure.plots import series_figure
    from childsafe.measure.rates import percent_text

    with command_context() as context:
        result, _ = _campaign_series(context, file, counters, period, start, region, control)
        if plot is not None:
            title = f"{subject}, {result.region or 'all regions'}: start {result.start}"
            series_figure(result, plot, title, subject)
    if json_output:
        print_json(result.to_dict())
        return
    level, trend = result.level_change, result.trend_change
    print(f"Level change at {result.start}: {percent_text(level.ratio)} "
          f"(95% CI {percent_text(level.ci95[0])} to {percent_text(level.ci95[1])})")  # fmt: skip
    print(f"Trend change per period: {percent_text(trend.ratio)} "
          f"(95% CI {percent_text(trend.ci95[0])} to {percent_text(trend.ci95[1])})")  # fmt: skip
    print(f"Method: {result.method}; overdispersion {result.dispersion:.2f}")


@cases_app.command("import")
def cases_import_command(
    file: Annotated[Path, typer.Argument(help="Case events: case_id,date,event,area.")], json_output: JsonOption = False
) -> None:
    """Add case events (referral, opened, warrant, charged, closed); rows already held add nothing."""
    from childsafe.measure.cases import import_cases

    with command_context() as context:
        imported = import_cases(context.engine, file)
    if json_output:
        print_json(imported.to_dict())
    else:
        print(f"{imported.added} new case events ({imported.rows} rows read); {imported.total} held")


FromOption = Annotated[str, typer.Option("--from", help="First day (YYYY-MM-DD).")]
ToOption = Annotated[str, typer.Option("--to", help="Last day (YYYY-MM-DD), included.")]
AreaOption = Annotated[str | None, typer.Option("--area", help="Only this area.")]
#: The library's names of a period's days, as these commands' options.
PERIOD_OPTIONS = {"first": "--from", "last": "--to"}


@cases_app.command("stats")
def cases_stats_command(
    first: FromOption, last: ToOption, area: AreaOption = None, json_output: JsonOption = False
) -> None:
    """Referrals (and their change on the period before), warrants, charges and live cases."""
    from childsafe.measure.cases import case_stats

    with command_context(PERIOD_OPTIONS) as context:
        stats = case_stats(context.engine, date_option("--from", first), date_option("--to", last), area)
    if json_output:
        print_json(stats.to_dict())
        return
    change = "n/a" if stats.referrals_change_pct is None else f"{stats.referrals_change_pct:+.1f}%"
    print(f"referrals {stats.referrals} (previous period {stats.referrals_previous}, {change}); "
          f"warrants {stats.warrants}; charged {stats.charged}; live cases {stats.live_cases}")  # fmt: skip


OutOption = Annotated[Path, typer.Option("--out", help="Folder for report.html, report.pdf, chart.png, figures.json.")]


@report_app.command("campaign")
def report_campaign_command(
    out: OutOption,
    start: StartOption,
    file: FileArgument = None,
    region: RegionOption = None,
    control: ControlOption = None,
    counters: CountersOption = None,
    period: PeriodOption = "week",
    subject: SubjectOption = "Help-seeking",
    title: Annotated[str | None, typer.Option("--title", help="The report's title.")] = None,
) -> None:
    """A campaign's evaluation as an HTML page and a PDF, with the chart."""
    from childsafe.measure.reports import campaign_page, write_report

    with command_context() as context:
        result, overall = _campaign_series(context, file, counters, period, start, region, control)
        files = write_report(campaign_page(result, overall, subject, title), out)
    print(f"wrote {', '.join(str(path) for path in files)}")


@report_app.command("enforcement")
def report_enforcement_command(out: OutOption, first: FromOption, last: ToOption, area: AreaOption = None) -> None:
    """Enforcement figures for a period as an HTML page and a PDF, with events by month."""
    from childsafe.measure.cases import case_stats, monthly_events
    from childsafe.measure.reports import enforcement_page, write_report

    with command_context(PERIOD_OPTIONS) as context:
        engine = context.engine
        start, end = date_option("--from", first), date_option("--to", last)
        stats = case_stats(engine, start, end, area)
        files = write_report(enforcement_page(stats, monthly_events(engine, start, end, area), start, end, area), out)
    print(f"wrote {', '.join(str(path) for path in files)}")
