"""The model page's first screen: is the model healthy, and what changed?

Health in words, the open alerts (critical first), the headline metrics of the latest complete
window with their intervals and trend, and what changed in the span (versions that began
serving, rollouts, features drifting, how far the labels have arrived). Everything here reads
what the page has already loaded (the scope's sums, the alerts, the drift section), plus one
grouped query for the versions' first hours. `page` is the model page being built
(dashboard.sections.model.ModelPage, not imported: that module imports this one).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import numpy as np
from django.utils.timesince import timesince

from dashboard.charts import sparkline_points
from dashboard.sections.base import window_leading
from monitoring.alerts.links import metric_chart_id
from monitoring.metrics.maturity import LabelMaturity
from monitoring.metrics.registry import (
    COUNT,
    HEADLINES,
    HIGHER,
    LOWER,
    POISSON,
    SECONDS,
    SHARE,
    SUM,
    metric_find,
    metric_get,
)
from monitoring.metrics.series import Point
from monitoring.metrics.traffic import version_starts
from monitoring.metrics.windows import MetricError
from monitoring.models import Alert, AlertState, Severity
from monitoring.stats.performance import poisson_bounds
from monitoring.stats.sensitivity import z_sum

HEALTH_WORDS = {
    "firing": "Needs attention",
    "warning": "Watch",
    "no_data": "No recent data",
    "ok": "Healthy",
}
Z95 = 1.959963984540054


@dataclass
class Headline:
    metric: str
    label: str
    value: str
    interval: str  # "66.0% to 76.1%", or "" for a metric without one
    window: str  # "day of 27 Nov"
    n: int
    coverage: str  # "labels 83% in" while a window's labels still arrive
    trend: str  # against the window before, and whether it is beyond the noise
    tone: str  # "better", "worse" or "" (no change beyond the noise, or no good direction)
    sparkline: str  # an SVG polyline's points
    chart_id: str


def summary_section(page, *, maturity: LabelMaturity, now: datetime) -> dict:
    alerts = open_alerts(page.model)
    return {
        "health": page.model.health,
        "health_words": HEALTH_WORDS.get(page.model.health, page.model.health),
        "health_sentence": health_sentence(page.model, alerts, now),
        "alerts": alerts,
        "headlines": headlines(page, now=now),
        "changes": changes(page, now=now),
        "labels": labels_sentence(page, maturity=maturity, now=now),
    }


def open_alerts(model) -> list[Alert]:
    """Open alerts, critical first, then firing before pending, the most recent first."""
    alerts = list(
        Alert.objects.filter(model=model)
        .exclude(state=AlertState.RESOLVED)
        .select_related("rule")
        .order_by("-started_at")
    )
    for alert in alerts:
        alert.metric_entry = metric_find(alert.rule.metric)
        alert.value_text = value_text(alert.rule.metric, alert.value)
        alert.bounds_text = bounds_text(alert)
    rank = {Severity.CRITICAL: 0}
    alerts.sort(key=lambda a: (rank.get(a.rule.severity, 1), a.state != AlertState.FIRING))
    return alerts


def value_text(metric: str, value: float | None) -> str:
    if value is None:
        return "no value"
    entry = metric_find(metric)
    return entry.format(value) if entry else f"{value:.4g}"


def bounds_text(alert: Alert) -> str:
    """Where the value had to be, in the metric's unit ("at least 80.0%")."""
    metric = alert.rule.metric
    low, high = alert.lower, alert.upper
    if low is not None and high is not None:
        return f"{value_text(metric, low)} to {value_text(metric, high)}"
    if low is not None:
        return f"at least {value_text(metric, low)}"
    if high is not None:
        return f"at most {value_text(metric, high)}"
    return "no bounds yet"


def health_sentence(model, alerts: list[Alert], now: datetime) -> str:
    firing = [a for a in alerts if a.state == AlertState.FIRING]
    pending = [a for a in alerts if a.state == AlertState.PENDING]
    critical = [a for a in alerts if a.rule.severity == Severity.CRITICAL]
    seen = model.last_prediction_at
    last = f"last prediction {timesince(seen, now)} ago" if seen else "no prediction yet"
    if firing:
        text = f"{len(firing)} alert{'s' * (len(firing) != 1)} firing"
        text += f", {len(critical)} of them critical" if critical else ""
        text += f", {len(pending)} more pending" if pending else ""
        return f"{text}; {last}."
    if pending:
        return (
            f"{len(pending)} alert{'s' * (len(pending) != 1)} pending (outside the bounds, not yet"
            f" for long enough to fire); {last}."
        )
    if model.health == "no_data":
        return f"No data in the last day: {last}."
    return f"No open alert; {last}."


# --- headline metrics ---------------------------------------------------------------------------


def headlines(page, *, now: datetime) -> list[Headline]:
    """The task's headline metrics, then the volume, each in its latest complete window; for a
    metric counted over labelled rows, the latest with at least half the span's usual count
    (whose labels have largely arrived), so a day with 1% of its labels is not the news."""
    granularity = page.scope.granularity
    volume = {p.start: p.n for p in page.points("predictions")}
    leading = window_leading(page.scope.first, granularity)
    found = []
    for metric in (*HEADLINES.get(page.model.task, ()), "predictions"):
        try:
            points = page.points(metric)
        except MetricError:
            continue
        if metric_get(metric).kind in (COUNT, SUM) and leading is not None:
            points = [p for p in points if p.start != leading.start]  # a part-day: no dip
        complete = [p for p in points if p.end <= now and p.value is not None and p.n]
        if not complete:
            continue
        labelled = complete[-1].n < volume.get(complete[-1].start, 0)
        if labelled:
            usual = statistics.median(p.n for p in complete)
            complete = [p for p in complete if p.n >= usual / 2]
        found.append(headline(metric, points, complete, granularity, labelled=labelled))
    return found


# The window a headline is compared with: a day with the same day a week before (weekdays
# differ), an hour with the same hour a day before, a week with the week before.
TREND_LAG = {
    "hour": (timedelta(days=1), "the same hour a day before"),
    "day": (timedelta(days=7), "the same day a week before"),
    "week": (timedelta(weeks=1), "the week before"),
}


def with_count_intervals(entry, points: list[Point]) -> list[Point]:
    """A count's windows with the exact Poisson interval of each (counts are stored without
    one), so its headline, like every other, says whether a change is beyond the noise."""
    if entry.interval != POISSON:
        return points
    counts = np.array([0 if p.value is None else round(p.value) for p in points], dtype=float)
    low, high = poisson_bounds(counts)
    return [
        p if p.value is None else replace(p, ci_low=lo, ci_high=hi)
        for p, lo, hi in zip(points, low.tolist(), high.tolist(), strict=True)
    ]


def headline(
    metric: str, points: list[Point], chosen: list[Point], granularity: str, *, labelled: bool
) -> Headline:
    entry = metric_find(metric)
    points, chosen = with_count_intervals(entry, points), with_count_intervals(entry, chosen)
    last = chosen[-1]
    interval = ""
    if last.ci_low is not None and last.ci_high is not None:
        interval = f"{entry.format(last.ci_low)} to {entry.format(last.ci_high)}"
    coverage = ""
    if labelled and last.label_coverage is not None and last.label_coverage < 1:
        coverage = f"labels {last.label_coverage:.0%} in"
    lag, lag_words = TREND_LAG[granularity]
    before = next((p for p in chosen if p.start == last.start - lag), None)
    trend, tone = trend_text(entry, last, before, lag_words)
    upto = [p.value for p in points if p.start <= last.start]
    return Headline(
        metric=metric,
        label=entry.label,
        value=entry.format(last.value),
        interval=interval,
        window=window_text(last, granularity),
        n=last.n,
        coverage=coverage,
        trend=trend,
        tone=tone,
        sparkline=sparkline_points(upto),
        chart_id=metric_chart_id(metric),
    )


def window_text(p: Point, granularity: str) -> str:
    if granularity == "hour":
        return f"hour from {p.start:%-d %b %H:%M} UTC"
    if granularity == "week":
        return f"week of {p.start:%-d %b}"
    return f"day of {p.start:%-d %b}"


def trend_text(entry, last: Point, before: Point | None, before_words: str) -> tuple[str, str]:
    """The change from an earlier window, and whether it is beyond the two windows' noise
    (the difference against its 95% interval, from each window's own interval) and their
    minimum detectable effect (the change seen 80% of the time at the 5% level)."""
    if before is None:
        return f"no value for {before_words}", ""
    change = last.value - before.value
    if not change:
        return f"unchanged on {before_words}", ""
    direction = "up" if change > 0 else "down"
    text = f"{direction} {change_size(entry, abs(change))} on {before_words}"
    noise = change_noise(last, before)
    if noise is None:
        return text, ""
    detectable = noise / Z95 * z_sum()
    mde = change_size(entry, detectable)
    if abs(change) <= noise:
        return f"{text}, within the noise (±{change_size(entry, noise)}; {mde} detectable)", ""
    better = (change > 0) == (entry.good == HIGHER) if entry.good in (HIGHER, LOWER) else None
    tone = "" if better is None else ("better" if better else "worse")
    text += f", beyond the noise (±{change_size(entry, noise)})"
    if abs(change) < detectable:
        return f"{text} but under the {mde} these windows reliably show", tone
    return f"{text} and the {mde} these windows reliably show", tone


def change_size(entry, size: float) -> str:
    """A difference of two values: of shares in percentage points, else in the metric's unit
    to three figures."""
    if entry.unit == SHARE:
        return f"{size * 100:.1f} points"
    return entry.format(size) if entry.unit in (COUNT, SECONDS) else f"{size:.3g}"


def change_noise(last: Point, before: Point) -> float | None:
    """Half the 95% interval of the difference of two windows, from their own intervals."""
    if None in (last.ci_low, last.ci_high, before.ci_low, before.ci_high):
        return None
    se_last = (last.ci_high - last.ci_low) / (2 * Z95)
    se_before = (before.ci_high - before.ci_low) / (2 * Z95)
    return Z95 * math.hypot(se_last, se_before)


# --- what changed -------------------------------------------------------------------------------


def changes(page, *, now: datetime) -> list[tuple[datetime, str]]:
    """What changed in the span, latest first: versions that began serving, rollouts and
    features drifting (in complete windows)."""
    start, _ = page.scope.span(now)

    def inside(at: datetime | None) -> bool:
        return at is not None and (start is None or at >= start) and at <= now

    found = [
        (first, f"Version {version} began serving (its first prediction)")
        for version, first in version_starts(page.model)
        if inside(first)
    ]
    found += [(at, f"Rollout: {label}") for at, label in page.events if inside(at)]
    for row in (page.drift or {}).get("rows", []):
        if row.get("since") and inside(row["since"]):
            found.append((row["since"], f"{row['name']} drifting from its reference"))
    return sorted(found, key=lambda change: change[0], reverse=True)


def labels_sentence(page, *, maturity: LabelMaturity, now: datetime) -> str:
    """How far the labels have arrived: how long they usually take, read from the Kaplan-Meier
    curve of every prediction's delay (those still without an outcome counted as waiting, not
    left out, which would make the wait look shorter than it is), and the complete windows
    still under the model's maturity."""
    usual = maturity.arrival_words
    if usual is None:
        return "No labels yet: performance metrics appear once outcomes arrive."
    granularity = page.scope.granularity
    points = page.points("label_coverage")
    waiting = [
        p
        for p in points
        if p.end <= now
        and p.label_coverage is not None
        and not maturity.of_window(start=p.start, end=p.end, coverage=p.label_coverage).mature
    ]
    usual = f"Labels usually arrive within {usual.removeprefix('about ')}"
    share = f"{maturity.threshold:.0%} of a window's expected outcomes"
    if not waiting:
        return f"{usual} ({share}); every complete {granularity} has its labels."
    low = min(p.label_coverage for p in waiting)
    high = max(p.label_coverage for p in waiting)
    count = len(waiting)
    return (
        f"{usual} ({share}): the last {count} complete "
        f"{granularity}{'s' * (count != 1)} still wait for theirs ({low:.0%} to {high:.0%} "
        "labelled so far), so their performance is provisional."
    )
