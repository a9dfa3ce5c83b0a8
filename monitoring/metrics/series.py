"""Metric time series, summed from hourly aggregates into hour, day or week windows."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

from django.db import connection
from django.db.models import Count, F, Max, Min, Sum
from django.db.models.functions import TruncHour

from common.sql import hour_of
from factory.models import MLModel, ModelVersion, Task
from monitoring.metrics.drift import (
    DriftError,
    baseline_resolve,
    feature_drift,
    merge_feature,
    model_drift_settings,
    version_pick,
)
from monitoring.metrics.sketches import period_cover, sketches_read
from monitoring.metrics.windows import EPOCH, TRUNC, WINDOW, MetricError, window_check, window_start
from monitoring.models import (
    FeatureBins,
    HourlyAggregate,
    HourlyValue,
    QuarantinedRecord,
    Sketch,
    SketchKind,
)
from monitoring.pipeline.aggregate import SCALAR_FIELDS
from monitoring.pipeline.bins import bins_load
from monitoring.pipeline.sketches import confusion_merge
from monitoring.stats.auc import auc_from_histogram
from monitoring.stats.codec import counts_decode, score_histogram_decode
from monitoring.stats.compare import f1_variance, macro_f1_variance, rmse_variance
from monitoring.stats.delay import delay_median_variance, delay_quantile
from monitoring.stats.moments import Estimate, Moments, mean_estimate
from monitoring.stats.performance import (
    BinaryCounts,
    confusion_matrix_from_counts,
    f1_estimate,
    multiclass_metrics,
    wilson_interval,
)

COUNT_FIELDS = ("predictions", "scored", "score_sum", "score_sq_sum", "labelled", "correct")
SUM_FIELDS = (*COUNT_FIELDS, "delay_s_sum", *SCALAR_FIELDS)
BASE_METRICS = (
    "predictions",
    "label_coverage",
    "label_delay_p50",
    "mean_score",
    "mean_prediction",
    "quarantined",
)
TASK_METRICS = {
    Task.BINARY: (
        "accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "log_loss",
        "brier",
        "positive_rate",
    ),
    Task.MULTICLASS: ("accuracy", "macro_f1"),
    Task.REGRESSION: ("mae", "rmse", "mape", "bias"),
}
PREFIXES = ("value:", "value_sum:", "missing_rate:", "drift:")
# The kind of sketch a metric is computed from, beside the hourly sums.
SKETCH_OF = {
    "roc_auc": SketchKind.SCORE,
    "macro_f1": SketchKind.CONFUSION,
    "label_delay_p50": SketchKind.DELAY,
}
# Metrics that are proportions (Wilson) and means (normal) of per-row values: comparable.
PROPORTIONS = ("label_coverage", "accuracy", "precision", "recall", "positive_rate")
MEANS = ("mean_score", "mean_prediction", "log_loss", "brier", "mae", "mape", "bias")


@dataclass
class Point:
    start: datetime
    end: datetime
    value: float | None
    n: int
    ci_low: float | None
    ci_high: float | None
    label_coverage: float | None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Measure:
    """A window's value, with what comparisons and sensitivity need: k of n, or moments."""

    value: float | None
    n: int
    low: float | None = None
    high: float | None = None
    successes: int | None = None
    moments: Moments | None = None
    auc: tuple[int, int] | None = None  # roc_auc: (positives, negatives)
    variance: float | None = None  # delta-method variance of the value (compare)


def metric_names(model: MLModel) -> list[str]:
    names = list(BASE_METRICS) + list(TASK_METRICS.get(model.task, ()))
    names += [f"value:{name}" for name in value_names(model)]
    names += [f"value_sum:{name}" for name in value_names(model)]
    for feature in feature_names(model):
        names += [f"missing_rate:{feature}", f"drift:{feature}"]
    return names


def value_names(model: MLModel) -> list[str]:
    return sorted(HourlyValue.objects.filter(model=model).values_list("name", flat=True).distinct())


def feature_names(model: MLModel) -> list[str]:
    return sorted(FeatureBins.objects.filter(model=model).values_list("name", flat=True).distinct())


def metric_check(model: MLModel, metric: str) -> None:
    if metric == UNMATCHED_OUTCOMES:
        return
    prefix, _, rest = metric.partition(":")
    if f"{prefix}:" in PREFIXES and rest:
        return
    for names in TASK_METRICS.values():
        if metric in names and metric not in TASK_METRICS.get(model.task, ()):
            fits = " or ".join(t.replace("_", " ") for t, n in TASK_METRICS.items() if metric in n)
            task_name = model.task.replace("_", " ")
            raise MetricError(f"{metric} needs a {fits} model; {model.name} is a {task_name}")
    if metric not in BASE_METRICS + TASK_METRICS.get(model.task, ()):
        known = ", ".join(metric_names(model))
        raise MetricError(f"unknown metric {metric!r}; this model has: {known}")


def filtered(queryset, *, model, start, end, version, segment):
    queryset = queryset.filter(model=model)
    if start:
        queryset = queryset.filter(hour__gte=start)
    if end:
        queryset = queryset.filter(hour__lt=end)
    if version:
        queryset = queryset.filter(version__version=version)
    if segment is not None:
        queryset = queryset.filter(segment=segment)
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
    metric_check(model, metric)
    window_check(granularity, start, end)
    if metric == UNMATCHED_OUTCOMES:
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
    measures = window_measures(
        model=model,
        metric=metric,
        scope=scope,
        granularity=granularity,
        key=lambda moment: window_start(moment, granularity),
    )
    return points_fill(metric, measures, first, last, granularity)


def points_fill(metric: str, measures: dict, first: datetime, last: datetime, granularity: str):
    """Every window from first to last, those without data with the metric's empty value."""
    points = []
    moment, step = window_start(first, granularity), WINDOW[granularity]
    while moment <= last:
        measure, coverage = measures.get(moment, (empty_measure(metric), None))
        points.append(
            Point(
                moment, moment + step, measure.value, measure.n, measure.low, measure.high, coverage
            )
        )
        moment += step
    return points


def metric_window(
    *,
    model: MLModel,
    metric: str,
    start: datetime | None = None,
    end: datetime | None = None,
    version: str | None = None,
    segment: str | None = None,
) -> Measure:
    """The metric over one window [start, end) (compare)."""
    metric_check(model, metric)
    window_check("hour", start, end)
    scope = {"model": model, "start": start, "end": end, "version": version, "segment": segment}
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    measures = window_measures(
        model=model, metric=metric, scope=scope, granularity=None, key=lambda _: epoch
    )
    return measures.get(epoch, (empty_measure(metric), None))[0]


def window_measures(*, model, metric, scope, granularity, key, sums=None, extra=None) -> dict:
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
                fields = ("count", "total", "total_sq")
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

    def extra(self, metric: str, granularity: str | None) -> dict | None:
        prefix, _, name = metric.partition(":")
        return self.windows(granularity, name) if prefix in ("value", "value_sum") else None

    def series(self, metric: str, granularity: str = "day") -> list[Point]:
        """As `metric_series` over the set's scope."""
        metric_check(self.model, metric)
        window_check(granularity, self.scope["start"], self.scope["end"])
        start, end = self.scope["start"], self.scope["end"]
        known = self.base("", "hour" if granularity == "hour" else "day")
        first = start or min(known, default=None)
        last = (end - timedelta(microseconds=1)) if end else max(known, default=None)
        if first is None or last is None:
            return []
        measures = window_measures(
            model=self.model,
            metric=metric,
            scope=self.scope,
            granularity=granularity,
            key=lambda moment: window_start(moment, granularity),
            sums=self.windows(granularity),
            extra=self.extra(metric, granularity),
        )
        return points_fill(metric, measures, first, last, granularity)

    def total(self, metric: str) -> Measure:
        """As `metric_window` over the set's scope."""
        metric_check(self.model, metric)
        measures = window_measures(
            model=self.model,
            metric=metric,
            scope=self.scope,
            granularity=None,
            key=lambda _: EPOCH,
            sums=self.windows(None),
            extra=self.extra(metric, None),
        )
        return measures.get(EPOCH, (empty_measure(metric), None))[0]


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


def window_extras(*, model, metric, scope, granularity, key) -> dict:
    """Per window, what a metric needs beyond the hourly sums (merged sketches, values)."""
    prefix, _, name = metric.partition(":")
    if prefix in ("value", "value_sum"):
        values = filtered(HourlyValue.objects.filter(name=name), **scope)
        return window_sums(values, key, ("count", "total", "total_sq"), granularity)
    if metric == "quarantined":
        return quarantined_windows(model, scope, key)
    if prefix == "drift":
        return drift_windows(
            model=model, feature=name, scope=scope, granularity=granularity, key=key
        )
    if prefix == "missing_rate":
        return missing_windows(
            model=model, feature=name, scope=scope, granularity=granularity, key=key
        )
    kinds = (SKETCH_OF[metric],) if metric in SKETCH_OF else ()
    rows = []
    for kind in kinds:
        rows += sketches_read(
            model=model,
            kind=kind,
            name="",
            start=scope["start"],
            end=scope["end"],
            version_ids=version_ids(model, scope),
            segment=scope["segment"],
            hourly=granularity == "hour",
        )
    grouped: dict[datetime, list] = defaultdict(list)
    for row in rows:
        grouped[key(row.start)].append(row)
    return {moment: merge_rows(metric, items) for moment, items in grouped.items()}


def version_ids(model: MLModel, scope: dict) -> list[int] | None:
    if not scope["version"]:
        return None
    return list(
        ModelVersion.objects.filter(model=model, version=scope["version"]).values_list(
            "id", flat=True
        )
    )


def merge_rows(metric: str, rows: list):
    datas = [bytes(row.data) for row in rows]
    if metric == "roc_auc":
        return sum((score_histogram_decode(d) for d in datas[1:]), score_histogram_decode(datas[0]))
    if metric == "macro_f1":
        return confusion_merge(datas)
    return sum(counts_decode(d) for d in datas)  # label_delay_p50


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
    cover = period_cover(scope["start"], scope["end"], hourly=granularity == "hour")
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
    """The feature's drift statistic per window (the model's override or the default test)."""

    try:
        version = version_pick(model, scope["version"])
    except DriftError as error:
        raise MetricError(str(error)) from None
    bins = bins_load(version.pk)
    if feature not in bins:
        raise MetricError(f"version {version.version} has no feature {feature!r}")
    try:
        baseline = baseline_resolve(model=model, version=version, bins=bins)
    except DriftError as error:
        raise MetricError(str(error)) from None
    kind = SketchKind.NUMERICAL if bins[feature].kind == "numerical" else SketchKind.CATEGORICAL
    rows = sketches_read(
        model=model,
        kind=kind,
        name=feature,
        start=scope["start"],
        end=scope["end"],
        version_ids=[version.pk],
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
            feature, reference, merge_feature(bins[feature], datas), settings=settings
        )
        for moment, datas in grouped.items()
    }


def empty_measure(metric: str) -> Measure:
    return Measure(0 if metric in ("predictions", "quarantined") else None, 0)


def metric_value(metric: str, sums: dict, extra) -> Measure:
    """The metric of one window from its sums (and its merged sketch, for some)."""
    prefix, _, _ = metric.partition(":")
    judged = sums["judged"]
    tn = judged - sums["tp"] - sums["fp"] - sums["fn"]
    if metric == "predictions":
        return Measure(sums["predictions"], sums["predictions"])
    if metric == "quarantined":
        return Measure(extra or 0, extra or 0)
    if metric == "label_coverage":
        return proportion(sums["labelled"], sums["predictions"])
    if metric == "accuracy":
        return proportion(sums["correct"], judged)
    if metric == "precision":
        return proportion(sums["tp"], sums["tp"] + sums["fp"])
    if metric == "recall":
        return proportion(sums["tp"], sums["tp"] + sums["fn"])
    if metric == "positive_rate":
        return proportion(sums["predicted_positive"], sums["predictions"])
    if metric == "f1":
        counts = BinaryCounts(sums["tp"], sums["fp"], tn, sums["fn"])
        measure = from_estimate(f1_estimate(counts))
        measure.variance = f1_variance(counts)
        return measure
    if metric in MOMENTS:
        return mean(moments_of(metric, sums))
    if metric == "rmse":
        return rmse(sums)
    if metric == "roc_auc":
        return auc_measure(extra)
    if metric == "macro_f1":
        result = multiclass_metrics(extra) if extra else None
        value = result.macro_f1 if result else None
        measure = Measure(value, result.n if result else 0)
        if extra:
            measure.variance = macro_f1_variance(confusion_matrix_from_counts(extra)[0])
        return measure
    if metric == "label_delay_p50":
        n = int(extra.sum()) if extra is not None else 0
        measure = Measure(delay_quantile(extra) if n else None, n)
        measure.variance = delay_median_variance(extra) if n else None
        return measure
    if prefix in ("value", "value_sum"):
        return value_measure(prefix, extra)
    if prefix == "missing_rate":
        extra = extra or {"missing": 0, "present": 0}
        return proportion(extra["missing"], extra["missing"] + extra["present"])
    if prefix == "drift":
        return drift_measure(extra)
    raise MetricError(f"unknown metric {metric!r}")


MOMENTS = {
    "mean_score": ("scored", "score_sum", "score_sq_sum"),
    "mean_prediction": ("predicted_num", "prediction_sum", "prediction_sq_sum"),
    "log_loss": ("probabilistic", "log_loss_sum", "log_loss_sq_sum"),
    "brier": ("probabilistic", "brier_sum", "brier_sq_sum"),
    "bias": ("regressed", "error_sum", "error_sq_sum"),
    "mae": ("regressed", "abs_error_sum", "error_sq_sum"),  # |e|^2 = e^2
    "mape": ("ape_n", "ape_sum", "ape_sq_sum"),
    "mse": ("regressed", "error_sq_sum", "error_fourth_sum"),
}


def moments_of(metric: str, sums: dict) -> Moments:
    n, total, total_sq = MOMENTS[metric]
    return Moments(sums[n], sums[total], sums[total_sq])


def rmse(sums: dict) -> Measure:
    mse = mean_estimate(moments_of("mse", sums))
    if mse is None:
        return Measure(None, 0)
    return Measure(
        math.sqrt(mse.value),
        mse.n,
        finite(math.sqrt(max(mse.low, 0.0))),
        finite(math.sqrt(mse.high)),
        variance=rmse_variance(moments_of("mse", sums)),
    )


def auc_measure(histogram) -> Measure:
    result = auc_from_histogram(histogram) if histogram is not None else None
    if result is None:
        n = int(histogram.positives.sum() + histogram.negatives.sum()) if histogram else 0
        return Measure(None, n)
    n = result.n_pos + result.n_neg
    measure = Measure(result.value, n, finite(result.low), finite(result.high))
    measure.auc = (result.n_pos, result.n_neg)
    return measure


def value_measure(prefix: str, values: dict | None) -> Measure:
    values = values or {"count": 0, "total": 0.0, "total_sq": 0.0}
    measure = mean(Moments(values["count"], values["total"], values["total_sq"]))
    if prefix == "value" or measure.value is None:
        return measure
    n = measure.n  # the sum's interval is n times the mean's
    scale = lambda v: None if v is None else v * n  # noqa: E731
    return Measure(values["total"], n, scale(measure.low), scale(measure.high))


def drift_measure(result) -> Measure:
    if result is None or result.statistic is None:
        return Measure(None, result.n_cur if result else 0)
    return Measure(result.statistic, result.n_cur)


def proportion(successes: int, n: int) -> Measure:
    measure = from_estimate(wilson_interval(successes, n))
    measure.successes = successes if n else None
    return measure


def mean(m: Moments) -> Measure:
    measure = from_estimate(mean_estimate(m))
    measure.moments = m
    return measure


def from_estimate(estimate: Estimate | None) -> Measure:
    if estimate is None:
        return Measure(None, 0)
    return Measure(estimate.value, estimate.n, finite(estimate.low), finite(estimate.high))


def finite(value: float) -> float | None:
    return None if value is None or math.isnan(value) else value


UNMATCHED_OUTCOMES = "unmatched_outcomes"


def unmatched_outcome_hours(model_id: int) -> dict[datetime, int]:
    """Outcomes still waiting for their prediction, counted by the hour the first one came."""
    with connection.cursor() as cursor:
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


def as_utc(hour) -> datetime:
    if isinstance(hour, str):  # SQLite hands back text
        hour = datetime.fromisoformat(hour)
    return hour if hour.tzinfo else hour.replace(tzinfo=UTC)


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
    points, step = [], WINDOW[granularity]
    moment = window_start(first, granularity)
    while moment <= last:
        count = windows.get(moment, 0)
        points.append(Point(moment, moment + step, count, count, None, None, None))
        moment += step
    return points
