"""The pictures: observed counts with the fitted line and the counterfactual,
and enforcement events by month. Drawn to be read in greyscale (a council
report is often printed that way): black and greys, told apart by marker,
line style and hatching, never by colour alone.

Figures are made with matplotlib's object interface (``Figure``), not
pyplot, so no global figure state is kept between calls.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from childsafe.errors import UsageError
from childsafe.fileio import atomic_binary_file
from childsafe.measure.series import SeriesResult

__all__ = [
    "draw_series",
    "draw_enforcement",
    "draw_grouped_bars",
    "figure_png",
    "series_figure",
    "enforcement_figure",
]


def draw_series(axes: Axes, result: SeriesResult, subject: str) -> None:
    """Observed counts (dots), the fitted model (solid), and after the start
    what the model says would have happened without it (dashed)."""
    after = [i for i, day in enumerate(result.dates) if day >= result.start]
    dates = np.array(result.dates, dtype="datetime64[D]")
    start = np.datetime64(result.start, "D")
    axes.plot(dates, result.observed, "o", color="black", markersize=3.5, label=f"{subject} (observed)")
    if result.control_observed:
        axes.plot(dates, result.control_observed, "^", color="0.55", markersize=3.5,
                  label=f"control: {result.control} (observed)")  # fmt: skip
    axes.plot(dates, result.fitted, "-", color="black", linewidth=1.6, label="fitted model")
    first = after[0] - 1 if after and after[0] > 0 else 0
    axes.plot(dates[first:], result.counterfactual[first:], "--", color="0.35", linewidth=1.6,
              label="expected without the campaign")  # fmt: skip
    axes.axvline(
        start,  # type: ignore[arg-type]
        color="0.25",
        linestyle=":",
        linewidth=1.2,
    )
    axes.annotate("start", (start, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -12),
                  textcoords="offset points", fontsize=8, color="0.25")  # fmt: skip
    axes.set_ylim(bottom=0)
    axes.set_ylabel("count per period")
    locator = AutoDateLocator()  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    axes.grid(axis="y", color="0.88", linewidth=0.8)
    axes.legend(frameon=False, fontsize=8, loc="upper left")


def series_figure(result: SeriesResult, path: Path, title: str, subject: str) -> None:
    """The interrupted time series as a PNG at ``path``."""
    figure = Figure(figsize=(8, 4.2), dpi=150, layout="constrained")
    axes = figure.add_subplot()
    draw_series(axes, result, subject)
    axes.set_title(title, fontsize=11, loc="left")
    _save(figure, path)


_EVENT_STYLES = {"referral": ("white", "///"), "warrant": ("0.65", ""), "charged": ("black", "")}
_EVENT_LABELS = {"referral": "referrals", "warrant": "warrants", "charged": "charged"}
#: Greyscale fills for series with no style of their own, in turn (fill, hatching).
_BAR_STYLES = [("black", ""), ("white", "///"), ("0.65", ""), ("white", "..."), ("0.4", "\\\\"), ("white", "")]


def draw_grouped_bars(
    axes: Axes,
    counts: Mapping[str, Mapping[str, int]],
    series: Mapping[str, str],
    ylabel: str,
    styles: Mapping[str, tuple[str, str]] | None = None,
) -> None:
    """Counts per period as grouped bars: one bar a series (``series`` maps
    each to its legend label), periods in order along the axis."""
    periods = sorted(counts)
    width = 0.8 / max(1, len(series))
    for k, (name, label) in enumerate(series.items()):
        colour, hatch = (styles or {}).get(name) or _BAR_STYLES[k % len(_BAR_STYLES)]
        values = [counts[period].get(name, 0) for period in periods]
        positions = [i + (k - (len(series) - 1) / 2) * width for i in range(len(periods))]
        axes.bar(positions, values, width, color=colour, edgecolor="black", hatch=hatch, linewidth=0.7, label=label)
    axes.set_xticks(range(len(periods)), periods, rotation=45, ha="right", fontsize=8)
    axes.set_ylabel(ylabel)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylim(top=max(1, axes.get_ylim()[1]) * 1.15)  # room for the legend above the bars
    axes.grid(axis="y", color="0.88", linewidth=0.8)
    axes.set_axisbelow(True)
    axes.legend(frameon=False, fontsize=8, ncols=min(6, max(1, len(series))), loc="upper left")


def draw_enforcement(axes: Axes, monthly: Mapping[str, Mapping[str, int]]) -> None:
    """Referrals, warrants and charges per month as grouped bars."""
    draw_grouped_bars(axes, monthly, _EVENT_LABELS, "cases", _EVENT_STYLES)


def figure_png(draw: Callable[[Axes], None], title: str, size: tuple[float, float] = (8, 4.2)) -> bytes:
    """A chart drawn by ``draw`` as PNG bytes (for a page that serves it)."""
    figure = Figure(figsize=size, dpi=100, layout="constrained")
    axes = figure.add_subplot()
    draw(axes)
    axes.set_title(title, fontsize=11, loc="left")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def enforcement_figure(monthly: Mapping[str, Mapping[str, int]], path: Path, title: str) -> None:
    """Events by month as a PNG at ``path``."""
    figure = Figure(figsize=(8, 4.2), dpi=150, layout="constrained")
    axes = figure.add_subplot()
    draw_enforcement(axes, monthly)
    axes.set_title(title, fontsize=11, loc="left")
    _save(figure, path)


def _save(figure: Figure, path: Path) -> None:
    """A PNG written through a temporary neighbour: complete or absent."""
    try:
        with atomic_binary_file(path) as handle:
            figure.savefig(handle, format="png")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
