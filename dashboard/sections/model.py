"""What the dashboard pages show, as selectors: one per page section.

A section selector returns None when its data does not exist (yet), and the page leaves the
section out. Everything here reads aggregates, apart from the label-delay distribution (one
grouped COUNT over labels) and the drill-down rows, which are the raw evidence by design.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
from django.core.cache import cache
from django.db.models import Count, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from dashboard.charts import (
    Immature,
    Marker,
    Partial,
    Projected,
    bar_figure,
    line_figure,
    metric_figure,
    plain,
    sparkline_points,
)
from dashboard.sections.base import (
    HOUR_S,
    Chart,
    Scope,
    cached,
    chart_events,
    model_segments,
    model_versions,
    rollout_annotations,
    scope_suffix,
    window_leading,
    window_partial,
)
from dashboard.sections.drift import drift_section, quality_section
from dashboard.sections.summary import bounds_text, summary_section, value_text
from factory.models import MLModel, Task
from monitoring.alerts.links import metric_chart_id
from monitoring.alerts.warnings import rule_warnings
from monitoring.metrics.maturity import LabelMaturity, label_maturity_get, window_projection
from monitoring.metrics.registry import (
    OVERVIEW,
    SUM,
    VALUES,
    metric_find,
    metric_get,
    metric_label,
)
from monitoring.metrics.reports import Sensitivity, comparable, sensitivity_from
from monitoring.metrics.selectors import models_with_health
from monitoring.metrics.series import (
    Point,
    SeriesSet,
    metric_names,
    metric_series,
    version_ids,
)
from monitoring.metrics.sketches import sketches_read
from monitoring.metrics.windows import WINDOW, MetricError
from monitoring.models import Alert, AlertRule, AlertState, RuleKind, SketchKind
from monitoring.pipeline.failures import MonitoringHealth, monitoring_health_get
from monitoring.stats.codec import counts_decode
from monitoring.stats.delay import DELAY_BINS
from monitoring.stats.delay import DELAY_EDGES_S as FINE_DELAY_EDGES_S

HEALTHS = ("ok", "warning", "firing", "no_data")
ESTIMATE_NOTE = (
    "Dashed: estimated from the scores alone, before the outcomes arrive; its band is where the "
    "realised value should fall while scores mean what they meant on the reference. A solid line "
    "leaving the band says that relation has changed."
)
# Regression is estimated from a model of the errors (monitoring.stats.direct_loss).
LOSS_ESTIMATE_NOTE = (
    "Dashed: estimated before the outcomes arrive, from a model of the errors fitted on the "
    "reference's labelled predictions; its band is where the realised value should fall while "
    "errors depend on the inputs as they did on the reference. A solid line leaving the band "
    "says that relation has changed."
)
SPARKLINE_DAYS = 14
# Label delay bins, in seconds, and how they read.
DELAY_EDGES_S = (
    0,
    3600,
    6 * 3600,
    86400,
    2 * 86400,
    4 * 86400,
    7 * 86400,
    14 * 86400,
    30 * 86400,
    90 * 86400,
)
DELAY_LABELS = (
    "< 1 h",
    "1 to 6 h",
    "6 to 24 h",
    "1 to 2 d",
    "2 to 4 d",
    "4 to 7 d",
    "7 to 14 d",
    "14 to 30 d",
    "30 to 90 d",
    "≥ 90 d",
)
# The chart's summary: the delay 90% of the labels that arrived took (of labelled rows only; how
# long outcomes take, the unlabelled counted, is the Kaplan-Meier curve's: summary.py).
MATURE_QUANTILE = 0.9


def metric_text(metric: str) -> tuple[str, str]:
    """(title, axis title) of a metric, in words: the registry's label, and with its unit."""
    entry = metric_find(metric)
    return (entry.label, entry.axis) if entry else (metric, metric)


WINDOWS_WORD = {"hour": "hourly", "day": "daily", "week": "weekly"}


def chart_summary(
    title: str, points: list[Point], granularity: str, metric: str = "", now: datetime | None = None
) -> str:
    """The text alternative of a chart: its span, its latest complete window's value (in the
    metric's unit) and, when one is under way, the window in progress."""
    now = now or timezone.now()
    known = [p for p in points if p.value is not None and p.end <= now]
    text = f"{title}: {len(points)} {WINDOWS_WORD.get(granularity, granularity)} windows"
    if not known:
        return f"{text}; no complete window with a value yet."
    entry = metric_find(metric)
    number = entry.format if entry else (lambda value: f"{value:.4g}")
    last = known[-1]
    text += f"; latest complete ({last.start:%Y-%m-%d %H:%M} UTC) "
    text += f"{number(last.value)} over n = {last.n:,}"
    if last.ci_low is not None and last.ci_high is not None:
        text += f", 95% interval {number(last.ci_low)} to {number(last.ci_high)}"
    if points[-1].end > now:
        text += f". The {granularity} in progress is hatched and judged once it ends"
    return text + "."


# --- overview -------------------------------------------------------------------------------


def overview_models(*, search: str = "", health: str = "", now: datetime | None = None):
    """Models with health, last prediction, open alert count and headline sparkline."""
    models = MLModel.objects.annotate(
        open_alerts=Count("alerts", filter=~Q(alerts__state=AlertState.RESOLVED), distinct=True),
        version_count=Count("versions", distinct=True),
    )
    if search:
        models = models.filter(name__icontains=search)
    models = models_with_health(models)
    if health:
        models = [m for m in models if m.health == health]
    now = now or timezone.now()
    for model in models:
        model.sparkline = sparkline(model=model, now=now)
    return models


def sparkline(*, model: MLModel, now: datetime) -> dict:
    metric = OVERVIEW.get(model.task, "predictions")
    start = (now - timedelta(days=SPARKLINE_DAYS - 1)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    points = metric_series(model=model, metric=metric, granularity="day", start=start, end=now)
    values = [p.value for p in points]
    known = [v for v in values if v is not None]
    title = metric_label(metric)
    latest = f"latest {metric_get(metric).format(known[-1])}" if known else "no value yet"
    return {
        "metric": metric,
        "points": sparkline_points(values),
        "label": f"{title}, last {SPARKLINE_DAYS} days: {latest}",
    }


# --- model page -----------------------------------------------------------------------------


@dataclass
class ModelPage:
    model: MLModel
    scope: Scope
    versions: list[str]
    segments: list[str]
    sections: dict[str, list[Chart]] = field(default_factory=dict)
    delay: dict | None = None
    alerts: list[Alert] = field(default_factory=list)
    rules: list[AlertRule] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    events: list[tuple] = field(default_factory=list)  # (time, label): rollouts
    marks: list[tuple] = field(default_factory=list)  # (time, label): versions' starts, rollouts
    series: SeriesSet | None = None  # the scope's hourly sums, read once for every chart
    drift: dict | None = None
    quality: dict | None = None
    monitoring: MonitoringHealth | None = None  # the model's jobs: failing or not
    summary: dict | None = None  # the first screen: health, open alerts, headlines, changes
    windows: dict[str, list[Point]] = field(default_factory=dict)  # cached series, by metric

    def points(self, metric: str) -> list[Point]:
        """The metric's windows at the page's granularity: cached ones, else read now."""
        if metric not in self.windows:
            self.windows[metric] = self.series.series(metric, self.scope.granularity)
        return self.windows[metric]


def model_page_get(*, model: MLModel, scope: Scope, now: datetime | None = None) -> ModelPage:
    """The model page's sections. A new section (drift, data quality, versions) is one more
    selector returning its charts, or nothing when its data does not exist, plus its block in
    templates/dashboard/model.html, which renders only the sections present."""
    now = now or timezone.now()
    (model,) = models_with_health([model])
    page = ModelPage(model, scope, model_versions(model), model_segments(model))
    page.monitoring = monitoring_health_get(model_id=model.pk)
    if scope.version and scope.version not in page.versions:
        raise MetricError(f"{model.name} has no version {scope.version!r}")
    page.rules = list(AlertRule.objects.filter(model=model))
    for rule in page.rules:
        rule.warnings = rule_warnings_cached(rule)
        rule.silenced = rule.is_silenced(now)
    alerts = Alert.objects.filter(model=model).select_related("rule")
    page.alerts = list(alerts.prefetch_related("notifications")[:50])
    for alert in page.alerts:
        alert.value_text = value_text(alert.rule.metric, alert.value)
        alert.bounds_text = bounds_text(alert)
        alert.told_text = told_text(list(alert.notifications.all()))
    page.events = rollout_annotations(model)
    page.marks = chart_events(model)
    page.metrics = metric_names(model)
    page.delay = label_delay_section(model=model, scope=scope, now=now)
    maturity = label_maturity_get(
        model=model, now=now, version=scope.version, segment=scope.segment
    )
    start, end = scope.span(now)
    page.series = SeriesSet(
        model=model, start=start, end=end, version=scope.version, segment=scope.segment
    )
    packed = cached(page_key("windows", page), lambda: windows_pack(charted_windows(page)))
    page.windows = windows_unpack(packed)
    sections = {
        "performance": performance_charts(page, maturity=maturity, now=now),
        "business": business_charts(page, maturity=maturity, now=now),
        "volume": volume_charts(page),
    }
    page.sections = {name: charts for name, charts in sections.items() if charts}
    charts = page.sections.get("performance", []) + page.sections.get("business", [])
    notes = cached(
        hourly_key("sensitivity", page, charts, now),
        lambda: {c.metric: sensitivity_note(page.series, c.metric) for c in charts},
        seconds=HOUR_S,
    )
    for chart in charts:
        chart.note = notes.get(chart.metric, "")
    page.drift = cached(
        page_key("drift", page), lambda: drift_section(model=model, scope=scope, now=now)
    )
    page.quality = quality_section(model=model, scope=scope, now=now, drift=page.drift)
    page.summary = summary_section(page, maturity=maturity, now=now)
    return page


def told_text(notifications: list) -> str:
    """Who was told what, in one line: the first message, then how many reminders, resolved
    messages and failures followed (messages, one per change, channel and target)."""
    if not notifications:
        return ""
    sent = [n for n in notifications if n.sent_at]
    parts = []
    firing = sorted((n for n in sent if n.kind == "firing"), key=lambda n: n.sent_at)
    if firing:
        channels = ", ".join(sorted({n.channel.replace("email", "e-mail") for n in firing}))
        parts.append(f"told by {channels} {firing[0].sent_at:%Y-%m-%d %H:%M}")
    for kind, word in (("reminder", "reminder"), ("resolved", "resolved message")):
        count = sum(n.kind == kind for n in sent)
        parts += [f"{count} {word}{'s' * (count != 1)}"] if count else []
    failed = sum(bool(n.error) and not n.sent_at for n in notifications)
    due = sum(not n.error and not n.sent_at for n in notifications)
    parts += [f"{failed} failing"] if failed else []
    parts += [f"{due} due"] if due else []
    return "; ".join(parts)


VOLUME_METRICS = ("predictions", "label_coverage", "mean_score")


def charted_windows(page: ModelPage) -> dict[str, list[Point]]:
    """Every charted metric's windows, computed together so the page can keep them (with an
    hourly month, reading them is most of the page's time) until its data change."""
    metrics = [m for m in page.metrics if metric_get(m).tasks or metric_get(m).source == VALUES]
    estimates = [f"estimated:{m}" for m in metrics if metric_find(f"estimated:{m}")]
    found = {}
    for metric in (*metrics, *estimates, *VOLUME_METRICS):
        try:
            found[metric] = page.series.series(metric, page.scope.granularity)
        except MetricError:  # a metric the model's task or data cannot answer: no chart
            continue
    return found


def windows_pack(windows: dict[str, list[Point]]) -> dict[str, list[tuple]]:
    """Points as tuples of numbers (times as POSIX seconds): an hourly month of every chart
    unpickles in a tenth of the time Point objects take."""
    return {
        metric: [
            (
                p.start.timestamp(),
                p.end.timestamp(),
                p.value,
                p.n,
                p.ci_low,
                p.ci_high,
                p.label_coverage,
            )
            for p in points
        ]
        for metric, points in windows.items()
    }


def windows_unpack(packed: dict[str, list[tuple]]) -> dict[str, list[Point]]:
    """The Points again; each window's times made once for every metric."""
    times: dict[float, datetime] = {}

    def moment(seconds: float) -> datetime:
        if seconds not in times:
            times[seconds] = datetime.fromtimestamp(seconds, UTC)
        return times[seconds]

    return {
        metric: [Point(moment(start), moment(end), *rest) for start, end, *rest in rows]
        for metric, rows in packed.items()
    }


WARNINGS_CACHE_S = 300


def page_key(section: str, page: ModelPage) -> str:
    """A cache key for a section of the page that changes only with its data: the scope, and
    the sums over the whole scope, which any new prediction, label or aggregated hour
    changes. Each read of the page computes those sums anyway."""
    total = page.series.total_sums()
    scope = page.series.scope
    where = (page.model.pk, page.scope.granularity, scope["version"], scope["segment"])
    text = repr((section, where, scope["start"], scope["end"], sorted(total.items())))
    return f"canary:{section}:" + hashlib.sha256(text.encode()).hexdigest()


def hourly_key(section: str, page: ModelPage, charts: list[Chart], now: datetime) -> str:
    """A cache key for a section that moves with the traffic, not with each prediction (what
    the traffic can show, over weeks of windows): the scope, the charts, the order of
    magnitude of the predictions and labels in scope (a model's first data shows at once)
    and the hour, so that it is computed once an hour at most, not after every prediction."""
    where = (page.model.pk, page.scope.granularity, page.scope.version, page.scope.segment)
    total = page.series.total_sums()
    scale = [len(str(round(total.get(name) or 0))) for name in ("predictions", "labelled")]
    hour = now.replace(minute=0, second=0, microsecond=0)
    text = repr((section, where, page.scope.days, [c.metric for c in charts], scale, hour))
    return f"canary:{section}:" + hashlib.sha256(text.encode()).hexdigest()


def rule_warnings_cached(rule: AlertRule) -> list[str]:
    """A rule's noise warnings, cached like the label delays: they read a few weeks of windows
    per rule and move slowly. The key holds every field of the rule, so an edit shows at once."""
    fields = {f.attname: getattr(rule, f.attname) for f in rule._meta.concrete_fields}
    key = "canary:warnings:" + hashlib.sha256(repr(sorted(fields.items())).encode()).hexdigest()
    cached = cache.get(key)
    if cached is None:
        cached = rule_warnings(rule=rule, labelled=True)
        cache.set(key, cached, WARNINGS_CACHE_S)
    return cached


def rows_url(model: MLModel, scope: Scope, metric: str) -> str:
    query = urlencode({"metric": metric, **scope.query()})
    return reverse("dashboard:rows", kwargs={"name": model.name}) + "?" + query


def estimate_points(page: ModelPage, metric: str) -> list[Point]:
    """The metric's estimate before the outcomes, where the model's task has one."""
    estimated = f"estimated:{metric}"
    entry = metric_find(estimated)
    if entry is None or not entry.fits(page.model.task):
        return []
    try:
        return page.points(estimated)
    except MetricError:
        return []


def series_chart(
    page: ModelPage, metric: str, *, maturity: LabelMaturity | None = None, now=None
) -> Chart | None:
    try:
        points = page.points(metric)
    except MetricError:
        return None
    estimate = estimate_points(page, metric)
    shown = [p for p in (*points, *estimate) if p.value is not None and p.n]
    if not shown:
        return None
    now = now or timezone.now()
    entry = metric_get(metric)
    title = plain(f"{entry.label} per {page.scope.granularity}{scope_suffix(page.scope)}")
    url = rows_url(page.model, page.scope, metric)
    figure = metric_figure(
        title=title,
        points=points,
        y_title=plain(entry.axis),
        unit=entry.unit,
        bounds=rule_bounds(page.rules, metric, page.scope),
        markers=alert_markers(page.alerts, metric, page.scope),
        immature=immature_windows(points, maturity, incomplete=entry.kind == SUM)
        if maturity is not None and entry.realised
        else (),
        projected=projections(points, maturity) if maturity and entry.kind == SUM else (),
        events=page.marks,
        rows_url=url,
        partial=window_partial(points[-1].start, page.scope.granularity, now),
        estimate=estimate,
        leading=leading_in(points, page.scope),
    )
    summary = chart_summary(title, points, page.scope.granularity, metric, now)
    if any(p.value is not None for p in estimate):
        regression = page.model.task == Task.REGRESSION
        summary += f" {LOSS_ESTIMATE_NOTE if regression else ESTIMATE_NOTE}"
    return Chart(metric_chart_id(metric), metric, title, figure, summary, url)


def leading_in(points: list[Point], scope: Scope) -> Partial | None:
    """The model's partial first window, if the chart shows it."""
    leading = window_leading(scope.first, scope.granularity)
    return leading if leading and points and points[0].start == leading.start else None


def applies(item, scope: Scope) -> bool:
    """Whether a rule (or an alert's rule) watches the scope the page shows."""
    return item.version == scope.version and item.segment == scope.segment


def rule_bounds(rules, metric: str, scope: Scope) -> list[tuple[str, float]]:
    bounds = []
    number = metric_get(metric).format
    for rule in rules:
        if rule.metric == metric and rule.kind == RuleKind.STATIC and applies(rule, scope):
            for side, value in (("lower", rule.lower), ("upper", rule.upper)):
                if value is not None:
                    bounds.append((f"rule #{rule.pk}: {side} bound {number(value)}", value))
    return bounds


def alert_markers(alerts, metric: str, scope: Scope) -> list[Marker]:
    return [
        Marker(a.window_start.isoformat(), a.value, f"alert {a.state}: {a.get_direction_display()}")
        for a in alerts
        if a.rule.metric == metric and a.value is not None and applies(a.rule, scope)
    ]


def immature_windows(
    points: list[Point], maturity: LabelMaturity, *, incomplete: bool = False
) -> list[Immature]:
    """Complete windows under the model's label maturity, with the share of their expected
    outcomes arrived (a sum over them `incomplete`). The window in progress is drawn as
    partial instead."""
    shaded = []
    for p in points:
        if p.end > maturity.now or p.label_coverage is None:
            continue
        window = maturity.of_window(start=p.start, end=p.end, coverage=p.label_coverage)
        if not window.mature:
            shaded.append(
                Immature(p.start.isoformat(), p.end.isoformat(), window.share, incomplete)
            )
    return shaded


def projections(points: list[Point], maturity: LabelMaturity) -> list[Projected]:
    """The sums of the complete immature windows projected to full maturity."""
    projected = []
    for p in points:
        if p.end > maturity.now or p.value is None:
            continue
        if maturity.of_window(start=p.start, end=p.end, coverage=p.label_coverage).mature:
            continue
        if (sum_at_maturity := window_projection(maturity, p)) is not None:
            projected.append(Projected(p.start.isoformat(), *sum_at_maturity))
    return projected


def performance_charts(page: ModelPage, *, maturity: LabelMaturity, now) -> list[Chart]:
    """The metrics of the model's task. Per-feature metrics (drift, missing rates) have their
    own sections and feature pages; those of every task, the volume section."""
    metrics = [m for m in page.metrics if metric_get(m).tasks]
    charts = [series_chart(page, m, maturity=maturity, now=now) for m in metrics]
    return [c for c in charts if c]


def business_charts(page: ModelPage, *, maturity: LabelMaturity, now) -> list[Chart]:
    """Business values, their immature windows shaded: a sum there is marked incomplete."""
    metrics = [m for m in page.metrics if metric_get(m).source == VALUES]
    charts = [series_chart(page, m, maturity=maturity, now=now) for m in metrics]
    return [c for c in charts if c]


def volume_charts(page: ModelPage) -> list[Chart]:
    charts = [series_chart(page, m) for m in VOLUME_METRICS]
    charts = [c for c in charts if c]
    coverage = cohort_coverage_chart(page)
    return charts + ([coverage] if coverage else [])


def cohort_coverage_chart(page: ModelPage) -> Chart | None:
    """Label coverage by cohort age: how complete the labels are, days after prediction."""
    points = page.series.series("label_coverage", "day")
    points = [p for p in points if p.value is not None]
    if not points:
        return None
    now = timezone.now()
    ages = [round((now - p.start).total_seconds() / 86400, 1) for p in points]
    coverage = [round(p.value * 100, 2) for p in points]
    title = "Label coverage by cohort age" + plain(scope_suffix(page.scope))
    figure = line_figure(
        title=title,
        x=ages,
        y=coverage,
        x_title="cohort age (days since the day began)",
        y_title="labelled (%)",
    )
    summary = f"{title}: the youngest day cohort ({ages[-1]} days) is {coverage[-1]}% labelled"
    summary += f", the oldest ({ages[0]} days) {coverage[0]}%."
    return Chart("cohort-coverage", "label_coverage", title, figure, summary)


SENSITIVITY_CHANGE = 0.05  # the relative change whose time to be seen the note gives
PER = {
    "hour": "from one hour to the next",
    "day": "from one day to the next",
    "week": "from one week to the next",
}


def sensitivity_note(series: SeriesSet, metric: str) -> str:
    """The sensitivity endpoint's answer for hour, day and week windows, in one sentence."""
    kind = comparable_kind(metric)
    if kind is None:
        return ""
    window = series.total(metric)
    reports = {
        g: sensitivity_from(
            metric=metric, granularity=g, kind=kind, window=window, points=series.series(metric, g)
        )
        for g in WINDOW
    }
    if reports["day"].mde_absolute is None:
        return ""
    size = f"about {reports['day'].n_per_window:,.0f} observations a day"
    changes = [
        f"{change_text(kind, r.mde_absolute)} {PER[g]}"
        for g, r in reports.items()
        if r.mde_absolute is not None
    ]
    text = f"At current traffic ({size}), the smallest change this chart can show is "
    text += ", ".join(changes[:-1]) + (" and " if len(changes) > 1 else "") + changes[-1] + "."
    effect = change_text(kind, abs(window.value) * SENSITIVITY_CHANGE)
    wait = time_to_see(reports)
    text += (
        f" A {SENSITIVITY_CHANGE:.0%} change ({effect}) shows once {wait} of data can be set"
        f" against the {wait} before."
        if wait
        else f" A {SENSITIVITY_CHANGE:.0%} change ({effect}) needs more data than this traffic"
        " gives in weeks."
    )
    return text


def comparable_kind(metric: str) -> str | None:
    try:
        kind = comparable(metric)
    except MetricError:
        return None
    return kind if kind in ("proportion", "mean") else None


def change_text(kind: str, value: float) -> str:
    if kind == "proportion":
        return f"{value * 100:.2g} points" if value < 0.1 else f"{value * 100:.0f} points"
    return f"{value:.3g}"


def time_to_see(reports: dict[str, Sensitivity]) -> str:
    """The windows needed on each side for the relative change, in the handiest unit."""
    hours, days, weeks = (
        reports[g].windows_to_detect[SENSITIVITY_CHANGE] for g in ("hour", "day", "week")
    )
    if hours is not None and hours <= 48:
        return f"{hours} hour{'s' * (hours != 1)}"
    if days is not None and days <= 21:
        return f"{days} day{'s' * (days != 1)}"
    if weeks is not None:
        return f"{weeks} week{'s' * (weeks != 1)}"
    return ""


def label_delay_section(*, model: MLModel, scope: Scope, now: datetime) -> dict | None:
    """The label delay distribution (one grouped COUNT) and the delay most labels arrive within."""
    start, _ = scope.span(now)
    values = delay_counts(model=model, scope=scope, start=start)
    total = sum(values)
    if total == 0:
        return None
    title = "Label delay" + plain(scope_suffix(scope))
    figure = bar_figure(
        title=title,
        labels=list(DELAY_LABELS),
        values=values,
        x_title="delay from prediction to outcome",
        y_title="labels (count)",
    )
    median_bin = quantile_bin(values, 0.5)
    mature_bin = quantile_bin(values, MATURE_QUANTILE)
    summary = (
        f"{title}: {total} labels; half arrive within {DELAY_LABELS[median_bin]}, "
        f"{MATURE_QUANTILE:.0%} within {DELAY_LABELS[mature_bin]}."
    )
    chart = Chart("label-delay", "label_delay", title, figure, summary)
    return {"chart": chart, "total": total}


def delay_counts(*, model: MLModel, scope: Scope, start: datetime | None) -> list[int]:
    """Labels per delay bin of the chart, from the stored label-delay sketches (50 log bins a
    decade, by prediction hour), so the chart stays when raw labels are removed. A fine bin
    counts in the chart bin that holds its upper edge: a delay of exactly a day is "1 to 2 d",
    and one within a fine bin's width (4.7%) below a chart edge counts above it."""
    rows = sketches_read(
        model=model,
        kind=SketchKind.DELAY,
        start=start,
        end=None,
        version_ids=version_ids(model, {"version": scope.version}),
        segment=scope.segment,
    )
    fine = sum((counts_decode(bytes(row.data)) for row in rows), np.zeros(DELAY_BINS, np.int64))
    upper = np.append(FINE_DELAY_EDGES_S, np.inf)  # fine bin i holds (edge i-1, edge i]
    chart_bin = np.searchsorted(DELAY_EDGES_S, upper, side="left") - 1
    return np.bincount(chart_bin, weights=fine, minlength=len(DELAY_EDGES_S)).astype(int).tolist()


def quantile_bin(counts: list[int], q: float) -> int:
    running, target = 0, q * sum(counts)
    for index, count in enumerate(counts):
        running += count
        if running >= target:
            return index
    return len(counts) - 1
