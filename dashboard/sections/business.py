"""The business page: what each business value is worth, told so that noise is never news.

A sentence that compares two windows compares mature ones only (their outcomes have mostly
arrived), says whether the change is beyond its interval and the smallest change two such
windows can show (the minimum detectable effect), and the page names the largest real change
of the period, the total and the value per known result, the open business alerts and how
mature the latest windows are.

Label maturity is the model's (monitoring.metrics.maturity): a window is mature once the share
of its expected outcomes arrived (its coverage over the Kaplan-Meier curve's expected final
coverage) reaches the model's `label_maturity`; an immature window says that share, as its
chart does, and its value is "not yet known" to the headline.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone

from dashboard.charts import Immature, metric_figure, plain
from dashboard.sections.base import Chart, chart_events, window_partial
from factory.models import MLModel
from monitoring.alerts.links import alert_url
from monitoring.alerts.messages import alert_title
from monitoring.metrics.maturity import (
    LabelMaturity,
    WindowMaturity,
    label_maturity_get,
    wait_words,
    window_projection,
)
from monitoring.metrics.measures import Measure
from monitoring.metrics.registry import metric_get
from monitoring.metrics.series import (
    Point,
    metric_measures,
    metric_names,
    metric_series,
    metric_window,
)
from monitoring.models import Alert, AlertState
from monitoring.stats.compare import Comparison, compare_means

ALPHA = 0.05  # a change is beyond its interval when its 95% interval leaves out zero
BUSINESS_FAMILIES = ("value", "value_sum")


# --- label maturity ----------------------------------------------------------------------


@dataclass
class Maturity:
    """The model's label maturity (monitoring.metrics.maturity) as the page's sentences ask it."""

    curve: LabelMaturity

    @property
    def now(self) -> datetime:
        return self.curve.now

    @property
    def known(self) -> bool:
        return self.curve.known

    @property
    def mature_within(self) -> str:
        """How long until the threshold's share of a window's expected outcomes are in."""
        after_s = self.curve.mature_after_s
        return "an unknown time" if after_s is None else wait_words(after_s)

    def of(self, point: Point) -> WindowMaturity:
        return self.curve.of_window(start=point.start, end=point.end, coverage=point.label_coverage)

    def is_mature(self, point: Point) -> bool:
        return self.of(point).mature


def maturity_get(*, model: MLModel, now: datetime) -> Maturity:
    return Maturity(label_maturity_get(model=model, now=now))


# --- comparing windows ---------------------------------------------------------------------


@dataclass
class Change:
    """Two consecutive complete windows of a value, compared (Welch's test)."""

    before: Point
    after: Point
    comparison: Comparison

    @property
    def beyond_interval(self) -> bool:
        return self.comparison.p_value < ALPHA

    @property
    def beyond_noise(self) -> bool:
        """Beyond its interval and at least the minimum detectable effect: a real change."""
        return self.beyond_interval and self.comparison.powered


def changes_of(points: list[Point], measures: dict[datetime, Measure]) -> list[Change]:
    """Each pair of consecutive windows that both have a mean to compare."""
    changes = []
    for before, after in itertools.pairwise(points):
        sides = [measures.get(p.start) for p in (before, after)]
        if any(side is None or side.moments is None for side in sides):
            continue
        comparison = compare_means(baseline=sides[0].moments, candidate=sides[1].moments)
        if comparison is not None:
            changes.append(Change(before, after, comparison))
    return changes


# --- the sentences ---------------------------------------------------------------------------


def number(value: float) -> str:
    return f"{value:,.2f}"


def window_name(point: Point, granularity: str) -> str:
    return f"the {granularity} of {point.start:%-d %B %Y}"


def interval_text(point: Point) -> str:
    if point.ci_low is None or point.ci_high is None:
        return f"{point.n:,} known results"
    return (
        f"95% interval {number(point.ci_low)} to {number(point.ci_high)}; {point.n:,} known results"
    )


def share_words(maturity: Maturity, point: Point) -> str:
    share = maturity.of(point).share
    return f"{share or 0:.0%} of its expected outcomes so far"


def change_words(change: Change) -> str:
    """ "down 10.50 from 34.80" or "up 1.20 from 33.60"."""
    c = change.comparison
    direction = "up" if c.difference > 0 else "down"
    return f"{direction} {number(abs(c.difference))} from {number(c.baseline)}"


def against_words(change: Change, granularity: str) -> str:
    """A real change by its direction; anything less only as a difference, never as "up"."""
    c = change.comparison
    if change.beyond_noise:
        return f"{change_words(change)} the {granularity} before"
    return (
        f"against {number(c.baseline)} the {granularity} before (a difference of "
        f"{c.difference:+,.2f})"
    )


def verdict_words(change: Change, granularity: str) -> str:
    c = change.comparison
    smallest = f"the smallest change two such {granularity}s can show ({number(c.mde)})"
    if change.beyond_noise:
        return (
            f"a real change, beyond its interval ({number(c.low)} to {number(c.high)}) and "
            f"{smallest}"
        )
    if change.beyond_interval:
        return (
            f"beyond its interval ({number(c.low)} to {number(c.high)}) but smaller than "
            f"{smallest}: a hint, not yet news"
        )
    return f"within the noise: its interval ({number(c.low)} to {number(c.high)}) holds zero"


def headline_sentence(name: str, changes: list[Change], maturity: Maturity, granularity: str):
    """The latest two mature windows compared, or why there are none to compare; a newer
    window still immature is said to be not yet known, never compared."""
    mature = [c for c in changes if maturity.is_mature(c.before) and maturity.is_mature(c.after)]
    if not mature:
        return (
            f"Not yet known: no two mature {granularity}s to compare yet. A {granularity} is "
            f"compared once {maturity.curve.threshold:.0%} of its expected outcomes are in, "
            f"which takes {maturity.mature_within}."
        )
    latest = mature[-1]
    after = latest.after
    return pending_sentence(changes, after, maturity, granularity) + (
        f"In {window_name(after, granularity)}, the latest mature one, the average {name} per "
        f"known result was {number(after.value)} ({interval_text(after)}): "
        f"{against_words(latest, granularity)}, {verdict_words(latest, granularity)}."
    )


def pending_sentence(
    changes: list[Change], latest: Point, maturity: Maturity, granularity: str
) -> str:
    """The windows after the latest mature one, not yet known, each with its share arrived:
    "The weeks of 16 November (61% of its expected outcomes so far) and 23 November 2026
    (25% ...) are not yet known. " """
    newer = [c.after for c in changes if c.after.start > latest.start]
    if not newer:
        return ""
    named = [f"{p.start:%-d %B %Y} ({share_words(maturity, p)})" for p in newer]
    if len(named) == 1:
        return f"The {granularity} of {named[0]} is not yet known. "
    listed = f"{', '.join(named[:-1])} and {named[-1]}"
    return f"The {granularity}s of {listed} are not yet known. "


def largest_change_sentence(changes: list[Change], maturity: Maturity, granularity: str) -> str:
    real = [c for c in changes if c.beyond_noise]
    if not real:
        return f"No change from one {granularity} to the next in the period is beyond the noise."
    largest = max(real, key=lambda c: abs(c.comparison.difference))
    c = largest.comparison
    text = (
        f"The largest real change of the period: {'up' if c.difference > 0 else 'down'} from "
        f"{number(c.baseline)} to {number(c.candidate)} between "
        f"{window_name(largest.before, granularity)} and the next"
    )
    if not maturity.is_mature(largest.after):
        text += f" (not mature yet: {share_words(maturity, largest.after)}, so it may still move)"
    return text + "."


def maturity_sentence(points: list[Point], maturity: Maturity, granularity: str) -> str:
    if maturity.curve.curve is None:
        return "No outcome has arrived yet, so no window can be judged."
    if not maturity.known:
        return (
            "Too few outcomes have arrived to tell how many are still to come: every "
            f"{granularity} is taken as it stands."
        )
    young = [p for p in points if p.n and not maturity.is_mature(p)]
    final = maturity.curve.final_coverage
    text = (
        f"About {final:.0%} of predictions get an outcome in the end; a {granularity} is mature "
        f"once {maturity.curve.threshold:.0%} of its expected outcomes are in, which takes "
        f"{maturity.mature_within}."
    )
    if not young:
        return text + f" Every {granularity} shown is mature."
    shares = ", ".join(f"{p.start:%-d %b} {maturity.of(p).share or 0:.0%}" for p in young)
    label = f"{granularity}s are" if len(young) > 1 else f"{granularity} is"
    return (
        text + f" The last {len(young)} {label} not mature yet (shaded; share of their expected "
        f"outcomes arrived so far: {shares}): shown, never compared."
    )


def total_sentence(name: str, total: Measure, projection: Projection | None) -> str:
    if total.value is None or total.moments is None:
        return ""
    moments = total.moments
    text = (
        f"Over the period: {name} {number(moments.total)} in all from {moments.n:,} known "
        f"results, {number(moments.mean)} per known result."
    )
    if projection is None:
        return text
    p = projection
    label = f"{p.granularity}s" if p.windows > 1 else p.granularity
    return text + (
        f" That total is incomplete: the last {p.windows} {label}, {number(p.known)} so far, "
        f"project to {number(p.value)} once their outcomes are in (95% interval "
        f"{number(p.low)} to {number(p.high)})."
    )


@dataclass
class Projection:
    """The sums of the immature windows, known so far and projected to full maturity."""

    windows: int
    granularity: str
    known: float
    value: float
    low: float
    high: float


def sum_projection(
    model: MLModel, metric: str, granularity: str, maturity: Maturity
) -> Projection | None:
    """A value's sum over the immature windows, projected: each window's known sum over the
    share of its expected outcomes arrived (monitoring.metrics.maturity), summed."""
    sums = metric_series(
        model=model, metric=f"value_sum:{metric_get(metric).name}", granularity=granularity
    )
    young = [p for p in sums if p.value is not None and not maturity.is_mature(p)]
    projected = [window_projection(maturity.curve, p) for p in young]
    projected = [(p.value, *x) for p, x in zip(young, projected, strict=True) if x is not None]
    if not projected:
        return None
    known, value, low, high = (sum(column) for column in zip(*projected, strict=True))
    return Projection(len(projected), granularity, known, value, low, high)


# --- the page ---------------------------------------------------------------------------------


@dataclass
class Kpi:
    name: str
    metric: str
    headline: str
    largest_change: str
    total: str
    chart: Chart
    points: list[Point]
    changes: list[Change] = field(default_factory=list)


@dataclass
class BusinessPage:
    kpis: list[Kpi]
    alerts: list[dict]
    maturity: str


def business_page_get(*, model: MLModel, granularity: str, now: datetime | None = None):
    now = now or timezone.now()
    maturity = maturity_get(model=model, now=now)
    events = chart_events(model)
    kpis = [
        kpi
        for metric in metric_names(model)
        if metric_get(metric).family == "value"
        for kpi in [kpi_get(model, metric, granularity, maturity, events)]
        if kpi
    ]
    points = kpis[0].points if kpis else []
    return BusinessPage(
        kpis=kpis,
        alerts=business_alerts(model),
        maturity=maturity_sentence(points, maturity, granularity) if kpis else "",
    )


def kpi_get(
    model: MLModel, metric: str, granularity: str, maturity: Maturity, events=()
) -> Kpi | None:
    name = metric_get(metric).name
    points = metric_series(model=model, metric=metric, granularity=granularity)
    if not any(p.value is not None for p in points):
        return None
    complete = [p for p in points if p.end <= maturity.now]
    changes = changes_of(
        complete, metric_measures(model=model, metric=metric, granularity=granularity)
    )
    title = plain(f"Average {name} per known result, per {granularity}")
    figure = metric_figure(
        title=title,
        points=points,
        y_title=plain(f"average {name} per known result"),
        immature=[
            Immature(p.start.isoformat(), p.end.isoformat(), maturity.of(p).share)
            for p in points
            if not maturity.is_mature(p)
        ],
        events=events,
        partial=window_partial(points[-1].start, granularity, maturity.now),
    )
    chart = Chart(f"kpi-{name}", metric, title, figure, kpi_caption(title, points, granularity))
    return Kpi(
        name=name,
        metric=metric,
        headline=headline_sentence(name, changes, maturity, granularity),
        largest_change=largest_change_sentence(changes, maturity, granularity),
        total=total_sentence(
            name,
            total_measure(model, metric),
            sum_projection(model, metric, granularity, maturity),
        ),
        chart=chart,
        points=points,
        changes=changes,
    )


def kpi_caption(title: str, points: list[Point], granularity: str) -> str:
    """The chart's own words (the text alternative too): its span and its latest window."""
    known = [p for p in points if p.value is not None]
    if not known:
        return f"{title}: no value yet."
    last = known[-1]
    return (
        f"{title}: {len(points)} {granularity}s; the latest, {window_name(last, granularity)}, "
        f"{number(last.value)} ({interval_text(last)})."
    )


def total_measure(model: MLModel, metric: str) -> Measure:
    return metric_window(model=model, metric=metric)


def business_alerts(model: MLModel) -> list[dict]:
    """The open alerts on business values, critical first."""
    open_alerts = Alert.objects.filter(model=model).exclude(state=AlertState.RESOLVED)
    alerts = [
        a
        for a in open_alerts.select_related("rule", "model")
        if a.rule.metric.partition(":")[0] in BUSINESS_FAMILIES
    ]
    alerts.sort(key=lambda a: (a.rule.severity != "critical", a.started_at))
    return [{"alert": a, "title": alert_title(a), "url": alert_url(a)} for a in alerts]


def business_rows(kpis: list[Kpi]) -> list[list]:
    """The KPI table behind the CSV export: one row per value and window."""
    return [
        [kpi.name, p.start.isoformat(), p.end.isoformat(), p.value, p.ci_low, p.ci_high, p.n]
        for kpi in kpis
        for p in kpi.points
    ]
