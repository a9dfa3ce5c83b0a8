"""What the rows page shows beside the rows: the segments to pick from, and the value of the
metric the page was opened for (a chart point, an alert) over the rows' window and scope."""

from __future__ import annotations

from dashboard.sections.base import model_segments
from factory.models import MLModel
from monitoring.alerts.links import why_path
from monitoring.metrics.drift import DriftError
from monitoring.metrics.explain import explainable
from monitoring.metrics.measures import Measure
from monitoring.metrics.registry import metric_find
from monitoring.metrics.rows import RowFilter
from monitoring.metrics.series import metric_window
from monitoring.metrics.windows import MetricError


def rows_page_extras(*, model: MLModel, filters: RowFilter, metric: str) -> dict:
    return {
        "segments": model_segments(model),
        "slice_metric": slice_metric_text(model=model, filters=filters, metric=metric),
        "why_url": rows_why_url(model=model, filters=filters, metric=metric),
    }


def rows_why_url(*, model: MLModel, filters: RowFilter, metric: str) -> str:
    """A chart point's rows lead on to why its window differed from the one before: the
    "Why?" page for the point's metric, window, version and segment; "" when there is no
    window or the metric is not one explain takes."""
    entry = metric_find(metric) if metric else None
    if entry is None or not explainable(entry) or not (filters.start and filters.end):
        return ""
    return why_path(
        model.name,
        metric=metric,
        start=filters.start,
        end=filters.end,
        version=filters.version,
        segment=filters.segment,
    )


def slice_metric_text(*, model: MLModel, filters: RowFilter, metric: str) -> str:
    """ "ROC AUC of these predictions: 0.6003 (95% interval ...) over n = 170.", or "" when the
    page was not opened for a metric or its window does not fall on whole hours."""
    entry = metric_find(metric) if metric else None
    if entry is None:
        return ""
    try:
        measure = metric_window(
            model=model,
            metric=metric,
            start=filters.start,
            end=filters.end,
            version=filters.version,
            segment=filters.segment,
        )
    except (MetricError, DriftError):
        return ""
    return metric_words(entry.label, entry.format, measure, narrowed=row_filters_narrow(filters))


def metric_words(label: str, number, measure: Measure, *, narrowed: bool) -> str:
    if measure.value is None:
        return f"{label} of these predictions: no value (n = {measure.n:,})."
    text = f"{label} of these predictions: {number(measure.value)}"
    if measure.low is not None and measure.high is not None:
        text += f" (95% interval {number(measure.low)} to {number(measure.high)})"
    text += f", from n = {measure.n:,} observations."
    if narrowed:
        text += " It covers the window, version and segment; the other filters narrow the rows."
    return text


def row_filters_narrow(filters: RowFilter) -> bool:
    """Whether filters beyond window, version and segment select fewer rows than the value."""
    return filters.labelled is not None or bool(filters.feature)
