"""An explanation told in words, said once for the alert e-mail, the webhook, the alert page and
the "Why?" page: the change in one sentence, each driver as a sentence, and the top drivers of
an alert as short lines that carry their effect and q-value.

A share metric's changes are told in points (0.74 to 0.63 is 11.0 points), any other metric's
in its own unit; values are told as the registry formats them, shares with two decimals as a
person reading a chart of them would say them ("fell from 0.74 to 0.63")."""

from __future__ import annotations

from monitoring.metrics.explain import DAY, Driver, Explanation, Window
from monitoring.metrics.registry import SCORE, SHARE, Metric, metric_get
from monitoring.pipeline.slice_aggregates import MISSING, OTHER

FEATURE = "feature:"
TOP_ALERT_DRIVERS = 3  # an alert's message carries at most these


def value_words(metric: Metric, value: float | None) -> str:
    if value is None:
        return "no value"
    if metric.unit in (SHARE, SCORE):
        return f"{value:.2f}"
    return metric.format(value)


def amount_words(metric: Metric, amount: float) -> str:
    """A size of change, without its sign: "11.0 points", "0.031"."""
    if metric.unit == SHARE:
        return f"{abs(amount) * 100:.1f} points"
    return f"{abs(amount):.3g}"


def signed_amount_words(metric: Metric, amount: float) -> str:
    sign = "-" if amount < 0 else "+"
    return f"{sign}{amount_words(metric, amount)}"


def moved(change: float) -> str:
    return "rose" if change > 0 else "fell" if change < 0 else "stayed"


def slice_words(dimension: str, name: str) -> str:
    """A slice as a person names it: "segment “app”", "version 1.1.0", "region r0",
    "income in [40000, 52000)", "region missing"."""
    if dimension == "segment":
        return f"segment “{name}”" if name else "the segment without a name"
    if dimension == "version":
        return f"version {name}"
    feature = dimension.removeprefix(FEATURE)
    if name == MISSING:
        return f"{feature} missing"
    if name == OTHER:
        return f"{feature}'s less frequent values"
    if name[:1] in "[(" and name.endswith(")"):
        return f"{feature} in {name}"
    return f"{feature} {name}"


def change_sentence(answer: Explanation) -> str:
    """ "Accuracy fell 11.0 points: 0.85 from 2026-03-02 to 2026-03-08, 0.74 from 2026-03-09
    to 2026-03-15." """
    metric = metric_get(answer.metric)
    base, cur = answer.baseline, answer.current
    how = (
        "did not change"
        if answer.change == 0
        else f"{moved(answer.change)} {amount_words(metric, answer.change)}"
    )
    return (
        f"{metric.label} {how}: {value_words(metric, base.value)} {days_words(base)}, "
        f"{value_words(metric, cur.value)} {days_words(cur)}."
    )


def days_words(window: Window) -> str:
    """A window of whole days: "on 2026-03-02", "from 2026-03-02 to 2026-03-08"."""
    last = window.end - DAY
    if last <= window.start:
        return f"on {window.start:%Y-%m-%d}"
    return f"from {window.start:%Y-%m-%d} to {last:%Y-%m-%d}"


def main_part(driver: Driver) -> tuple[str, float]:
    """("within" | "mix" | "impact", its size): what the driver's effect mostly is."""
    if driver.impact is not None:
        return "impact", driver.impact
    if abs(driver.within_effect or 0.0) >= abs(driver.mix_effect or 0.0):
        return "within", driver.within_effect or 0.0
    return "mix", driver.mix_effect or 0.0


def driver_sentence(metric: Metric, driver: Driver, change: float, baseline: float) -> str:
    """One driver, after the change sentence: "2.2 of them within region r0, where it fell
    from 0.74 to 0.63"."""
    part, size = main_part(driver)
    lead = amount_words(metric, size) + (" of them" if size * change > 0 else " the other way")
    where = slice_words(driver.dimension, driver.slice)
    there = values_words(metric, driver)
    if part == "within":
        return f"{lead} within {where}, where it {there}"
    if part == "mix":
        return (
            f"{lead} from the mix: {share_words(driver)}, {against_words(metric, driver, baseline)}"
        )
    return f"{lead} with {where} (without it the change is smaller by that), where it {there}"


def values_words(metric: Metric, driver: Driver) -> str:
    base, cur = driver.value_baseline, driver.value_current
    if base is None:
        return f"was {value_words(metric, cur)} (not in the baseline)"
    if cur is None:
        return f"was {value_words(metric, base)} (not in the current window)"
    if base == cur:
        return f"stayed at {value_words(metric, base)}"
    return f"{moved(cur - base)} from {value_words(metric, base)} to {value_words(metric, cur)}"


def share_words(driver: Driver) -> str:
    where = slice_words(driver.dimension, driver.slice)
    grew = "grew" if driver.share_current > driver.share_baseline else "shrank"
    shares = f"{driver.share_baseline:.0%} to {driver.share_current:.0%}"
    return f"{where} {grew} from {shares} of the window"


def against_words(metric: Metric, driver: Driver, baseline: float) -> str:
    return (
        f"and its {metric.label} was {value_words(metric, driver.value_baseline)} against "
        f"{value_words(metric, baseline)} overall"
    )


def q_words(q_value: float | None) -> str:
    if q_value is None:
        return "not tested"
    return "q < 0.001" if q_value < 0.001 else f"q = {q_value:.2g}"


def driver_line(metric: Metric, driver: Driver) -> str:
    """A driver in a message's few words, with its effect and q-value: "Within region south:
    -8.1 points (Accuracy fell from 0.90 to 0.65 there), q = 0.003"."""
    part, size = main_part(driver)
    where = slice_words(driver.dimension, driver.slice)
    effect = signed_amount_words(metric, size)
    q = q_words(driver.q_value)
    if part == "mix":
        return f"Mix of {where}: {effect} ({share_words(driver)}), {q}"
    head = "Within" if part == "within" else "With"
    return f"{head} {where}: {effect} ({metric.label} {values_words(metric, driver)} there), {q}"


def telling(driver: Driver, change: float) -> bool:
    """Whether a driver says something about the change: it moves the metric the way the
    change went, and it is not a whole window (one version serving both: all of the change,
    and nothing learned)."""
    whole = driver.share_baseline == 1.0 and driver.share_current == 1.0
    return not whole and driver.effect * change > 0


def top_drivers(answer: Explanation, count: int = TOP_ALERT_DRIVERS) -> list[Driver]:
    return [d for d in answer.drivers if telling(d, answer.change)][:count]


def driver_lines(answer: Explanation, count: int = TOP_ALERT_DRIVERS) -> list[str]:
    metric = metric_get(answer.metric)
    return [driver_line(metric, d) for d in top_drivers(answer, count)]
