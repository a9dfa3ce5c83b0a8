"""The feature page's metric by the feature's slices over time: its deciles (or categories, and
missing) by day, as a heatmap, so a data scientist sees in which part of the feature, and from
which day, performance broke. Read from the stored day slice rows (monitoring.metrics.explain),
never raw rows; the metrics offered are those explain decomposes additively.
"""

from __future__ import annotations

from datetime import datetime

from dashboard.charts import plain, slice_heatmap_figure
from dashboard.sections.base import Chart, Scope, chart_events, scope_suffix
from factory.models import MLModel
from monitoring.metrics.explain import explain_keys, feature_slice_days, sliced_daily
from monitoring.metrics.registry import HEADLINES, metric_get


def slice_metrics(model: MLModel) -> list[str]:
    """The metrics the picker offers: those explain decomposes exactly (means and shares) of
    the hourly sums (a business value's per-slice sums are not drawn by day yet)."""
    return [key for key in explain_keys(model) if sliced_daily(metric_get(key))]


def slice_metric_default(model: MLModel) -> str | None:
    """The model's first headline metric the heatmap can show, else the first it can."""
    offered = slice_metrics(model)
    headline = [key for key in HEADLINES.get(model.task, ()) if key in offered]
    return (headline or offered or [None])[0]


def slice_heatmap(
    *, model: MLModel, feature: str, metric: str, scope: Scope, now: datetime
) -> Chart | None:
    """The heatmap, or None when no day of the span has a slice row of the feature."""
    start, end = scope.span(now)
    found = feature_slice_days(
        model=model,
        feature=feature,
        metric=metric,
        start=start,
        end=end,
        version=scope.version,
        segment=scope.segment,
    )
    if not found.days or not any(v is not None for row in found.values for v in row):
        return None
    entry = metric_get(metric)
    cut = "decile" if found.numerical else "value"
    title = plain(f"{entry.label} by {feature} {cut}, per day") + plain(scope_suffix(scope))
    hover = [
        [
            plain(f"{day:%Y-%m-%d}, {feature} {name}: ")
            + (f"{entry.format(value)} (n = {n:,})" if value is not None else "no value")
            for day, value, n in zip(found.days, values, counts, strict=True)
        ]
        for name, values, counts in zip(found.slices, found.values, found.n, strict=True)
    ]
    figure = slice_heatmap_figure(
        title=title,
        x=[day.isoformat() for day in found.days],
        rows=[plain(name) for name in found.slices],
        values=[[None if v is None else round(v, 6) for v in row] for row in found.values],
        hover=hover,
        y_title=plain(f"{feature} ({cut}s)"),
        good=entry.good,
        unit=entry.unit,
        events=chart_events(model),
    )
    return Chart("feature-slices", metric, title, figure, heatmap_summary(title, found, entry))


def heatmap_summary(title: str, found, entry) -> str:
    """The chart's text alternative: its size, and the weakest cell of the last day."""
    last = [(row[-1], name) for name, row in zip(found.slices, found.values, strict=True)]
    known = [(value, name) for value, name in last if value is not None]
    text = f"{title}: {len(found.slices)} slices over {len(found.days)} days"
    if not known:
        return text + "."
    worst = min(known) if entry.good != "lower" else max(known)
    return text + (
        f"; on the last day ({found.days[-1]:%Y-%m-%d}) the weakest is {worst[1]} at "
        f"{entry.format(worst[0])}."
    )
