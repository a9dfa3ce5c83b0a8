"""Metric time series, summed from hourly aggregates into hour, day or week windows."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from django.db.models import F, Max, Min, Sum
from django.db.models.functions import Trunc

from factory.models import MLModel, Task
from monitoring.models import HourlyAggregate, HourlyValue
from monitoring.stats.moments import Estimate, Moments, mean_estimate
from monitoring.stats.performance import wilson_interval

WINDOW = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}
COUNT_FIELDS = ("predictions", "scored", "score_sum", "score_sq_sum", "labelled", "correct")
BASE_METRICS = ("predictions", "label_coverage", "mean_score")
CLASSIFICATION_METRICS = ("accuracy",)


class MetricError(ValueError):
    """A metric, window or filter the model cannot answer; the message says why."""


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


def metric_names(model: MLModel) -> list[str]:
    names = list(BASE_METRICS)
    if model.task != Task.REGRESSION:
        names += CLASSIFICATION_METRICS
    names += [f"value:{name}" for name in value_names(model)]
    return names


def value_names(model: MLModel) -> list[str]:
    return sorted(HourlyValue.objects.filter(model=model).values_list("name", flat=True).distinct())


def metric_check(model: MLModel, metric: str) -> None:
    if metric.startswith("value:") and len(metric) > len("value:"):
        return
    if metric in CLASSIFICATION_METRICS and model.task == Task.REGRESSION:
        raise MetricError(f"{metric} needs a classification model; {model.name} is a regression")
    if metric not in BASE_METRICS + CLASSIFICATION_METRICS:
        known = ", ".join(metric_names(model))
        raise MetricError(f"unknown metric {metric!r}; this model has: {known}")


def window_start(moment: datetime, granularity: str) -> datetime:
    hour = moment.replace(minute=0, second=0, microsecond=0)
    if granularity == "hour":
        return hour
    day = hour.replace(hour=0)
    if granularity == "day":
        return day
    return day - timedelta(days=day.weekday())  # weeks start on Monday


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


def window_sums(queryset, granularity: str, fields) -> dict[datetime, dict]:
    # The database sums whole windows (weeks start on Monday there too), so a page reads one
    # row per window instead of one per hour.
    window = F("hour") if granularity == "hour" else Trunc("hour", granularity)
    per_window = (
        queryset.annotate(window=window)
        .values("window")
        .annotate(**{f: Sum(f) for f in fields})
        .order_by("window")
    )
    windows: dict[datetime, dict] = defaultdict(lambda: dict.fromkeys(fields, 0))
    for row in per_window:
        sums = windows[window_start(row["window"], granularity)]
        for f in fields:
            sums[f] += row[f] or 0
    return windows


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
    if granularity not in WINDOW:
        raise MetricError("granularity must be hour, day or week")
    if start and end and start >= end:
        raise MetricError("start must be before end")
    scope = {"model": model, "start": start, "end": end, "version": version, "segment": segment}
    counts = filtered(HourlyAggregate.objects, **scope)
    sums = window_sums(counts, granularity, COUNT_FIELDS)
    value_sums = {}
    if metric.startswith("value:"):
        values = filtered(HourlyValue.objects.filter(name=metric[6:]), **scope)
        value_sums = window_sums(values, granularity, ("count", "total", "total_sq"))
    span = counts.aggregate(first=Min("hour"), last=Max("hour"))
    first = start or span["first"]
    last = (end - timedelta(microseconds=1)) if end else span["last"]
    if first is None or last is None:
        return []
    points = []
    moment, step = window_start(first, granularity), WINDOW[granularity]
    while moment <= last:
        window = sums.get(moment) or dict.fromkeys(COUNT_FIELDS, 0)
        points.append(point(metric, moment, step, window, value_sums.get(moment)))
        moment += step
    return points


def point(metric: str, start: datetime, step: timedelta, sums: dict, values: dict | None) -> Point:
    coverage = sums["labelled"] / sums["predictions"] if sums["predictions"] else None
    value, n, low, high = metric_value(metric, sums, values)
    return Point(start, start + step, value, n, low, high, coverage)


def metric_value(metric: str, sums: dict, values: dict | None):
    """(value, n, ci_low, ci_high) of one window."""
    if metric == "predictions":
        return sums["predictions"], sums["predictions"], None, None
    if metric == "label_coverage":
        return proportion(sums["labelled"], sums["predictions"])
    if metric == "accuracy":
        return proportion(sums["correct"], sums["labelled"])
    if metric == "mean_score":
        return mean(sums["scored"], sums["score_sum"], sums["score_sq_sum"])
    values = values or {"count": 0, "total": 0.0, "total_sq": 0.0}
    return mean(values["count"], values["total"], values["total_sq"])


def proportion(successes: int, n: int):
    return estimate_tuple(wilson_interval(successes, n))


def mean(n: int, total: float, total_sq: float):
    return estimate_tuple(mean_estimate(Moments(n, total, total_sq)))


def estimate_tuple(estimate: Estimate | None):
    if estimate is None:
        return None, 0, None, None
    return estimate.value, estimate.n, finite(estimate.low), finite(estimate.high)


def finite(value: float) -> float | None:
    return None if math.isnan(value) else value
