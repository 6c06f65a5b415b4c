"""Before and after: did the rate of something (help-seeking, say) change?

Counts of independent events over a period are Poisson. Given the total
``N + M`` over both periods, the after-period count is binomial with
``p = D2 * RR / (D1 + D2 * RR)``, where RR is the rate ratio and D1, D2 the
periods' lengths; so an exact interval for ``p`` (Clopper-Pearson) is an
exact interval for RR, and the binomial test of ``p = D2 / (D1 + D2)`` tests
RR = 1. With a control region, the ratio of the two rate ratios is the odds
ratio of the 2x2 table of counts, with Fisher's exact conditional interval
and test.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from scipy.stats import binomtest, fisher_exact
from scipy.stats.contingency import odds_ratio

from childsafe.errors import UsageError

__all__ = ["BeforeAfter", "before_after", "change_sentence", "describe_change", "percent_text"]


@dataclass(frozen=True)
class BeforeAfter:
    """docs/spec.md's answer to ``evaluate before-after``."""

    rate_ratio: float
    percent_change: float
    ci95: tuple[float, float]
    p_value: float
    method: str

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["ci95"] = list(self.ci95)
        return record


def _count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageError(f"{{field}} must be a whole number of events, 0 or more (got {value!r})", field=name)
    return value


def _ratio_from_share(share: float, before_days: float, after_days: float) -> float:
    """The rate ratio for the after-period's share of the events."""
    if share >= 1:
        return float("inf")
    return share / (1 - share) * before_days / after_days


def before_after(
    before: int,
    after: int,
    before_days: float = 1.0,
    after_days: float = 1.0,
    control_before: int | None = None,
    control_after: int | None = None,
) -> BeforeAfter:
    """The rate ratio after/before (per day when the periods differ in length),
    its exact 95% interval and two-sided p-value; with control counts, the
    ratio of the rate ratios (treated / control)."""
    before, after = _count("before", before), _count("after", after)
    for name, days in (("before_days", before_days), ("after_days", after_days)):
        if not days > 0:  # NaN too
            raise UsageError(f"{{field}} must be more than 0 days (got {days!r})", field=name)
    if (control_before is None) != (control_after is None):
        missing = "control_before" if control_before is None else "control_after"
        raise UsageError("{field} is missing: give both control counts (before and after), or neither", field=missing)
    if before == 0:
        raise UsageError(
            "{field} is 0: a rate ratio needs at least one event before (compare counts instead)", field="before"
        )
    if control_before is None or control_after is None:
        test = binomtest(after, before + after, after_days / (before_days + after_days))
        interval = test.proportion_ci(confidence_level=0.95, method="exact")
        ratio = (after / after_days) / (before / before_days)
        low = _ratio_from_share(interval.low, before_days, after_days)
        high = _ratio_from_share(interval.high, before_days, after_days)
        method = "rate ratio, exact conditional binomial test and Clopper-Pearson interval"
        return BeforeAfter(ratio, (ratio - 1) * 100, (low, high), float(test.pvalue), method)
    control_before = _count("control_before", control_before)
    control_after = _count("control_after", control_after)
    if control_before == 0 or control_after == 0:
        raise UsageError("a control count is 0: the control's rate ratio is undefined")
    # Rows: region; columns: after, before. The period lengths cancel out.
    table = [[after, before], [control_after, control_before]]
    ratio = (after / before) / (control_after / control_before)
    interval = odds_ratio(table, kind="conditional").confidence_interval(confidence_level=0.95)
    p_value = float(fisher_exact(table).pvalue)
    method = "ratio of rate ratios (treated / control), Fisher's exact conditional test and interval"
    return BeforeAfter(ratio, (ratio - 1) * 100, (float(interval.low), float(interval.high)), p_value, method)


def percent_text(ratio: float) -> str:
    """A rate ratio as a percent change: 1.71 -> "71%", 0.8 -> "-20%"."""
    if ratio == float("inf"):
        return "infinity"
    return f"{(ratio - 1) * 100:+.0f}%".replace("+", "")


def change_sentence(subject: str, ratio: float, ci95: tuple[float, float], p_value: float | None = None) -> str:
    """One plain sentence about a rate ratio: "Help-seeking rose 71% (95% CI 33% to 121%; p < 0.001)."."""
    change = (ratio - 1) * 100
    verb = "rose" if change > 0 else "fell" if change < 0 else "did not change"
    size = "" if change == 0 else f" {abs(change):.0f}%"
    low, high = ci95
    test = "" if p_value is None else "; p < 0.001" if p_value < 0.001 else f"; p = {p_value:.3f}"
    return f"{subject} {verb}{size} (95% CI {percent_text(low)} to {percent_text(high)}{test})."


def describe_change(result: BeforeAfter, subject: str = "The rate") -> str:
    """``evaluate before-after``'s sentence: the rate ratio, its interval and p-value."""
    return change_sentence(subject, result.rate_ratio, result.ci95, result.p_value)
