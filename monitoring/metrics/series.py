"""Metric time series, summed from hourly aggregates into hour, day or week windows.

What each metric is, and how a window's value comes from the sums, is the registry's
(monitoring.metrics.registry); this module reads the sums and sketches it names.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, F, Max, Min, Sum
from django.db.models.functions import TruncHour

from common.sql import hour_of, reading_cursor
from common.time import as_utc
from factory.models import MLModel, ModelVersion
from monitoring.metrics.drift import (
    DriftError,
    baseline_resolve,
    drift_scope,
    feature_drift,
    merge_feature,
    model_drift_settings,
    readable,
)
from monitoring.metrics.estimates import estimate_windows
from monitoring.metrics.loss_estimates import loss_windows
from monitoring.metrics.measures import Measure
from monitoring.metrics.registry import (
    BY_KEY,
    COUNT,
    DRIFT,
    ESTIMATES,
    GAPS,
    MISSING,
    QUARANTINE,
    SKETCH,
    UNMATCHED,
    VALUES,
    Metric,
    metric_family_keys,
    metric_find,
    metric_keys,
)
from monitoring.metrics.sketches import period_cover, sketches_read
from monitoring.metrics.traffic import shared_cells
from monitoring.metrics.windows import (
    EPOCH,
    TRUNC,
    WINDOW,
    MetricError,
    window_check,
    window_start,
    windows_between,
    windows_span_check,
)
from monitoring.models import (
    FeatureBins,
    HourlyAggregate,
    HourlyValue,
    Outcome,
    QuarantinedRecord,
    Sketch,
    SketchKind,
)
from monitoring.pipeline.aggregate import SCALAR_FIELDS
from monitoring.pipeline.bins import bins_load
from monitoring.pipeline.sketches import confusion_merge
from monitoring.stats.codec import (
    all_score_histogram_decode,
    counts_decode,
    score_histogram_decode,
)
from monitoring.stats.direct_loss import LOSS_METRICS

COUNT_FIELDS = ("predictions", "scored", "score_sum", "score_sq_sum", "labelled", "correct")
SUM_FIELDS = (*COUNT_FIELDS, "delay_s_sum", *SCALAR_FIELDS)
VALUE_FIELDS = ("count", "total", "total_sq")


@dataclass
class Point:
    start: datetime
    end: datetime
    value: float | None
    n: int
    ci_low: float | None
    ci_high: float | None
    label_coverage: float | None


def metric_names(model: MLModel) -> list[str]:
    """Every metric the model offers: the fixed ones of its task, its values' and features'."""
    families = metric_family_keys(values=value_names(model), features=feature_names(model))
    return metric_keys(model.task) + families


def value_names(model: MLModel) -> list[str]:
    return sorted(HourlyValue.objects.filter(model=model).values_list("name", flat=True).distinct())


def feature_names(model: MLModel) -> list[str]:
    return sorted(FeatureBins.objects.filter(model=model).values_list("name", flat=True).distinct())


def metric_check(model: MLModel, metric: str) -> Metric:
    """The metric of a key, if the model can answer it; MetricError says why not."""
    entry = metric_find(metric)
    if entry is None or entry.no_data_only:
        known = ", ".join(metric_names(model))
        raise MetricError(f"unknown metric {metric!r}; this model has: {known}")
    if not entry.fits(model.task):
        fits = " or ".join(task.replace("_", " ") for task in entry.tasks)
        task_name = model.task.replace("_", " ")
        raise MetricError(f"{metric} needs a {fits} model; {model.name} is a {task_name}")
    return entry


def filtered(queryset, *, model, start, end, version, segment, shared_with=None):
    """Aggregate rows of the scope; `shared_with` keeps the hours and segments where that
    version served too (a comparison on the traffic two versions shared)."""
    queryset = queryset.filter(model=model)
    if start:
        queryset = queryset.filter(hour__gte=start)
    if end:
        queryset = queryset.filter(hour__lt=end)
    if version:
        queryset = queryset.filter(version__version=version)
    if segment is not None:
        queryset = queryset.filter(segment=segment)
    if shared_with:
        queryset = queryset.filter(shared_cells(model, shared_with))
    return queryset


def window_sums(queryset, key: Callable, fields, granularity: str | None) -> dict[datetime, dict]:
    """Field sums per window, summed by the database (one row per window, not per hour).

    ``granularity`` None sums the whole range into one window.
    """
    totals = {f: Sum(f) for f in fields}
    if granularity is None:
        row = queryset.aggregate(**totals)
        return {} if row[fields[0]] is None else {key(None): {f: row[f] or 0 for f in fields}}
    column = F("hour") if granularity == "hour" else TRUNC[granularity]("hour")
    rows = queryset.annotate(window=column).values("window").annotate(**totals).order_by()
    return {key(row["window"]): {f: row[f] or 0 for f in fields} for row in rows}


def metric_series(
    *,
    model: MLModel,
    metric: str,
    granularity: str = "day",
    start: datetime | None = None,
    end: datetime | None = None,
    version: str | None = None,
    segment: str | None = None,
) -> list[Point]:
    """Every window from start to end (default: the data's span), empty ones with value None."""
    entry = metric_check(model, metric)
    window_check(granularity, start, end)
    if entry.source == UNMATCHED:
        if version or segment is not None:
            raise MetricError("unmatched outcomes have no version or segment: no prediction yet")
        return unmatched_outcome_series(model=model, granularity=granularity, start=start, end=end)
    scope = {"model": model, "start": start, "end": end, "version": version, "segment": segment}
    counts = filtered(HourlyAggregate.objects, **scope)
    span = counts.aggregate(first=Min("hour"), last=Max("hour"))
    first = start or span["first"]
    last = (end - timedelta(microseconds=1)) if end else span["last"]
    if first is None or last is None:
        return []
    windows_span_check(first, last, granularity)
    measures = window_measures(
        model=model,
        metric=entry,
        scope=scope,
        granularity=granularity,
        key=lambda moment: window_start(moment, granularity),
    )
    return points_fill(entry, measures, first, last, granularity)


def metric_measures(
    *, model: MLModel, metric: str, granularity: str, start=None, end=None
) -> dict[datetime, Measure]:
    """{window start: Measure} of the windows with data: what comparing two windows needs
    (k of n, or moments), in one read of the aggregates."""
    entry = metric_check(model, metric)
    window_check(granularity, start, end)
    scope = {"model": model, "start": start, "end": end, "version": None, "segment": None}
    measures = window_measures(
        model=model,
        metric=entry,
        scope=scope,
        granularity=granularity,
        key=lambda moment: window_start(moment, granularity),
    )
    return {moment: measure for moment, (measure, _) in measures.items()}


def points_fill(metric: Metric, measures: dict, first: datetime, last: datetime, granularity: str):
    """Every window from first to last, those without data with the metric's empty value."""
    points, step = [], WINDOW[granularity]
    for moment in windows_between(first, last, granularity):
        measure, coverage = measures.get(moment, (empty_measure(metric), None))
        points.append(
            Point(
                moment, moment + step, measure.value, measure.n, measure.low, measure.high, coverage
            )
        )
    return points


def metric_window(
    *,
    model: MLModel,
    metric: str,
    start: datetime | None = None,
    end: datetime | None = None,
    version: str | None = None,
    segment: str | None = None,
    shared_with: str | None = None,
) -> Measure:
    """The metric over one window [start, end) (compare); `shared_with` keeps the hours and
    segments that version served too."""
    entry = metric_check(model, metric)
    window_check("hour", start, end)
    scope = {
        "model": model,
        "start": start,
        "end": end,
        "version": version,
        "segment": segment,
        "shared_with": shared_with,
    }
    measures = window_measures(
        model=model, metric=entry, scope=scope, granularity=None, key=lambda _: EPOCH
    )
    return measures.get(EPOCH, (empty_measure(entry), None))[0]


def window_measures(
    *, model, metric: Metric, scope, granularity, key, sums=None, extra=None
) -> dict:
    """{window key: (Measure, label coverage)} for the windows that have data.

    ``sums`` (and ``extra``) are the windows' sums when the caller has them already
    (SeriesSet)."""
    if sums is None:
        queryset = filtered(HourlyAggregate.objects, **scope)
        sums = window_sums(queryset, key, SUM_FIELDS, granularity)
    if extra is None:
        extra = window_extras(
            model=model, metric=metric, scope=scope, granularity=granularity, key=key
        )
    measures = {}
    for moment in set(sums) | set(extra):
        window = sums.get(moment) or dict.fromkeys(SUM_FIELDS, 0)
        coverage = window["labelled"] / window["predictions"] if window["predictions"] else None
        measures[moment] = (metric_value(metric, window, extra.get(moment)), coverage)
    return measures


class SeriesSet:
    """Many metrics over one scope from a single read of the sums (the model page).

    The sums are read once per base window, grouped by the database (one row per day of the
    scope, or per hour for hourly charts, however many predictions it holds), and added up to
    weeks and to the whole scope here, so a page of twenty charts costs one query for the
    sums, plus one per metric that needs more than sums (merged sketches) and one per business
    value. Values equal `metric_series`' own.
    """

    def __init__(self, *, model, start=None, end=None, version=None, segment=None):
        self.model = model
        self.scope = {
            "model": model,
            "start": start,
            "end": end,
            "version": version,
            "segment": segment,
        }
        self._windows: dict[tuple, dict] = {}

    def base(self, source: str, granularity: str) -> dict[datetime, dict]:
        """Sums per hour or day, read once: the aggregates (source "") or a business value."""
        if (source, granularity) not in self._windows:
            if source:
                rows = filtered(HourlyValue.objects.filter(name=source), **self.scope)
                fields = VALUE_FIELDS
            else:
                rows, fields = filtered(HourlyAggregate.objects, **self.scope), SUM_FIELDS
            self._windows[(source, granularity)] = window_sums(rows, as_utc, fields, granularity)
        return self._windows[(source, granularity)]

    def windows(self, granularity: str | None, source: str = "") -> dict[datetime, dict]:
        """The sums per window (granularity None: one window, the scope)."""
        if granularity in ("hour", "day"):
            return self.base(source, granularity)
        if (source, granularity) not in self._windows:
            self._windows[(source, granularity)] = rollup(self.base(source, "day"), granularity)
        return self._windows[(source, granularity)]

    def total_sums(self) -> dict:
        """Every sum over the whole scope."""
        return self.windows(None).get(EPOCH, {})

    def extra(self, metric: Metric, granularity: str | None) -> dict | None:
        return self.windows(granularity, metric.name) if metric.source == VALUES else None

    def series(self, metric: str, granularity: str = "day") -> list[Point]:
        """As `metric_series` over the set's scope."""
        entry = metric_check(self.model, metric)
        window_check(granularity, self.scope["start"], self.scope["end"])
        start, end = self.scope["start"], self.scope["end"]
        known = self.base("", "hour" if granularity == "hour" else "day")
        first = start or min(known, default=None)
        last = (end - timedelta(microseconds=1)) if end else max(known, default=None)
        if first is None or last is None:
            return []
        windows_span_check(first, last, granularity)
        measures = window_measures(
            model=self.model,
            metric=entry,
            scope=self.scope,
            granularity=granularity,
            key=lambda moment: window_start(moment, granularity),
            sums=self.windows(granularity),
            extra=self.extra(entry, granularity),
        )
        return points_fill(entry, measures, first, last, granularity)

    def total(self, metric: str) -> Measure:
        """As `metric_window` over the set's scope."""
        entry = metric_check(self.model, metric)
        measures = window_measures(
            model=self.model,
            metric=entry,
            scope=self.scope,
            granularity=None,
            key=lambda _: EPOCH,
            sums=self.windows(None),
            extra=self.extra(entry, None),
        )
        return measures.get(EPOCH, (empty_measure(entry), None))[0]


def rollup(hours: dict[datetime, dict], granularity: str | None) -> dict[datetime, dict]:
    """Hourly sums added up per window (granularity None: all into one)."""
    rolled: dict[datetime, dict] = {}
    for hour, sums in hours.items():
        key = EPOCH if granularity is None else window_start(hour, granularity)
        into = rolled.get(key)
        if into is None:
            rolled[key] = dict(sums)
        else:
            for name, value in sums.items():
                into[name] += value
    return rolled


def window_extras(*, model, metric: Metric, scope, granularity, key) -> dict:
    """Per window, what a metric needs beyond the hourly sums (merged sketches, values)."""
    if metric.source == VALUES:
        values = filtered(HourlyValue.objects.filter(name=metric.name), **scope)
        return window_sums(values, key, VALUE_FIELDS, granularity)
    if metric.source == QUARANTINE:
        return quarantined_windows(model, scope, key)
    reader = {DRIFT: drift_windows, MISSING: missing_windows}.get(metric.source)
    if reader is not None:
        return reader(
            model=model, feature=metric.name, scope=scope, granularity=granularity, key=key
        )
    if metric.source == SKETCH:
        return sketch_windows(
            model=model, kind=metric.sketch, scope=scope, granularity=granularity, key=key
        )
    if metric.source in (ESTIMATES, GAPS):
        return estimate_extras(
            model=model, metric=metric, scope=scope, granularity=granularity, key=key
        )
    return {}


def estimate_extras(*, model, metric: Metric, scope, granularity, key) -> dict:
    """Per window, the calibrated versions' all-scores histograms; for a gap, beside the
    realised value (from the window's sums, or its labelled score histogram for ROC AUC).
    Regression: the window's loss sums, which hold the realised errors as well."""
    if metric.name in LOSS_METRICS:
        windows = loss_windows(
            model=model,
            scope=scope,
            granularity=granularity,
            key=key,
            version_ids=version_ids(model, scope),
        )
        return {moment: (metric.name, sums) for moment, sums in windows.items()}
    windows = estimate_windows(
        model=model,
        scope=scope,
        granularity=granularity,
        key=key,
        version_ids=version_ids(model, scope),
    )
    if metric.source == ESTIMATES:
        return {moment: (metric.name, parts) for moment, parts in windows.items()}
    realised = BY_KEY[metric.name]
    measures = window_measures(
        model=model, metric=realised, scope=scope, granularity=granularity, key=key
    )
    return {
        moment: (metric.name, measures[moment][0], parts)
        for moment, parts in windows.items()
        if moment in measures
    }


def sketch_windows(*, model, kind: str, scope, granularity, key) -> dict:
    """The model's sketches of a kind, merged per window."""
    rows = sketches_read(
        model=model,
        kind=kind,
        name="",
        start=scope["start"],
        end=scope["end"],
        version_ids=version_ids(model, scope),
        segment=scope["segment"],
        hourly=granularity == "hour",
        shared_with=scope.get("shared_with"),
    )
    grouped: dict[datetime, list] = defaultdict(list)
    for row in rows:
        grouped[key(row.start)].append(bytes(row.data))
    return {moment: SKETCH_MERGE[kind](datas) for moment, datas in grouped.items()}


def version_ids(model: MLModel, scope: dict) -> list[int] | None:
    if not scope["version"]:
        return None
    return list(
        ModelVersion.objects.filter(model=model, version=scope["version"]).values_list(
            "id", flat=True
        )
    )


def score_histograms_merge(datas: list[bytes]):
    return sum((score_histogram_decode(d) for d in datas[1:]), score_histogram_decode(datas[0]))


def all_score_histograms_merge(datas: list[bytes]):
    histograms = [all_score_histogram_decode(d) for d in datas]
    return sum(histograms[1:], histograms[0])


def counts_merge(datas: list[bytes]):
    return sum(counts_decode(d) for d in datas)


SKETCH_MERGE = {
    SketchKind.SCORE: score_histograms_merge,
    SketchKind.ALL_SCORES: all_score_histograms_merge,
    SketchKind.CONFUSION: confusion_merge,
    SketchKind.DELAY: counts_merge,
}


def missing_windows(*, model, feature, scope, granularity, key) -> dict:
    """{window: {"missing", "present"}} of a feature, summed by the database, nothing decoded."""
    rows = Sketch.objects.filter(
        model=model, kind__in=(SketchKind.NUMERICAL, SketchKind.CATEGORICAL), name=feature
    )
    ids = version_ids(model, scope)
    if ids is not None:
        rows = rows.filter(version_id__in=ids)
    if scope["segment"] is not None:
        rows = rows.filter(segment=scope["segment"])
    hourly = granularity == "hour"
    if scope.get("shared_with"):  # shared hours need hour rows
        rows, hourly = rows.filter(shared_cells(model, scope["shared_with"], at="start")), True
    cover = period_cover(scope["start"], scope["end"], hourly=hourly)
    per_start = rows.filter(cover).values("start").annotate(m=Sum("missing"), p=Sum("n"))
    windows: dict = defaultdict(lambda: {"missing": 0, "present": 0})
    for row in per_start:
        window = windows[key(row["start"])]
        window["missing"] += row["m"]
        window["present"] += row["p"]
    return dict(windows)


def quarantined_windows(model: MLModel, scope: dict, key) -> dict:
    rows = QuarantinedRecord.objects.filter(model=model)
    if scope["start"]:
        rows = rows.filter(created_at__gte=scope["start"])
    if scope["end"]:
        rows = rows.filter(created_at__lt=scope["end"])
    per_hour = rows.annotate(hour=TruncHour("created_at")).values("hour").annotate(n=Count("id"))
    windows: dict[datetime, int] = defaultdict(int)
    for row in per_hour:
        windows[key(row["hour"])] += row["n"]
    return dict(windows)


def drift_windows(*, model, feature, scope, granularity, key) -> dict:
    """The feature's drift statistic per window (the model's override or the default test):
    the version's, or without one the model's whole traffic (every version's sketches)."""

    try:
        drifting = drift_scope(model, scope["version"])
        bins = bins_load(model.pk)
        if feature not in bins:
            raise DriftError(f"{model.name} has no feature {feature!r}")
        span = (scope["start"], scope["end"], scope["segment"])
        baseline = baseline_resolve(scope=drifting, bins=bins, current=span)
    except DriftError as error:
        raise MetricError(str(error)) from None
    feature_bins = readable(bins[feature])
    kind = SketchKind.NUMERICAL if feature_bins.kind == "numerical" else SketchKind.CATEGORICAL
    rows = sketches_read(
        model=model,
        kind=kind,
        name=feature,
        start=scope["start"],
        end=scope["end"],
        version_ids=drifting.version_ids,
        segment=scope["segment"],
        hourly=granularity == "hour",
    )
    grouped: dict[datetime, list] = defaultdict(list)
    for row in rows:
        grouped[key(row.start)].append(row.data)
    reference = baseline.features.get(feature)
    settings = model_drift_settings(model)
    return {
        moment: feature_drift(
            feature, reference, merge_feature(feature_bins, datas), settings=settings
        )
        for moment, datas in grouped.items()
    }


def empty_measure(metric: Metric) -> Measure:
    """A window without data: no value, and a count of zero."""
    return Measure(0 if metric.kind == COUNT else None, 0)


def metric_value(metric: Metric, sums: dict, extra) -> Measure:
    """The metric of one window from its sums (and its merged sketch, for some)."""
    if metric.compute is None:
        raise MetricError(f"unknown metric {metric.key!r}")
    return metric.compute(sums, extra)


def unmatched_outcome_hours(model_id: int) -> dict[datetime, int]:
    """Outcomes still waiting for their prediction, counted by the hour the first one came."""
    with reading_cursor(Outcome) as cursor:
        cursor.execute(
            f"""
            SELECT {hour_of("first_at")}, COUNT(*) FROM (
                SELECT o.prediction_id, MIN(o.observed_at) AS first_at
                FROM monitoring_outcome o
                WHERE o.model_id = %s AND NOT EXISTS (
                    SELECT 1 FROM monitoring_prediction p
                    WHERE p.model_id = o.model_id AND p.prediction_id = o.prediction_id)
                GROUP BY o.prediction_id
            ) waiting GROUP BY 1
            """,
            [model_id],
        )
        rows = cursor.fetchall()
    return {as_utc(hour): count for hour, count in rows}


def unmatched_outcome_series(
    *, model: MLModel, granularity: str, start: datetime | None, end: datetime | None
) -> list[Point]:
    """Per window of first arrival: how many predictions have outcomes but no prediction yet.

    The windows are their ages: a count far in the past is an outcome waiting that long.
    """
    hours = unmatched_outcome_hours(model.pk)
    hours = {h: n for h, n in hours.items() if (not start or h >= start) and (not end or h < end)}
    if not hours and not (start and end):
        return []
    windows: dict[datetime, int] = defaultdict(int)
    for hour, count in hours.items():
        windows[window_start(hour, granularity)] += count
    first = start or min(hours)
    last = (end - timedelta(microseconds=1)) if end else max(hours)
    step = WINDOW[granularity]
    return [
        Point(
            moment, moment + step, windows.get(moment, 0), windows.get(moment, 0), None, None, None
        )
        for moment in windows_between(first, last, granularity)
    ]
