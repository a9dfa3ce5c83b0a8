"""The "Why?" page's sections: the change in one sentence, the drivers in plain words with a
link to their rows and to their feature's page, and a waterfall of mix against within for
each dimension. Every value comes from one `explain` answer (stored aggregates only)."""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import reverse
from django.utils.http import urlencode

from dashboard.charts import BAR, BOUND, LINE, layout, plain
from dashboard.sections.base import Chart
from monitoring.metrics.explain import Explanation
from monitoring.metrics.explain_words import (
    FEATURE,
    change_sentence,
    driver_sentence,
    q_words,
    telling,
)
from monitoring.metrics.registry import SHARE, Metric, metric_get
from monitoring.pipeline.slice_aggregates import MISSING, OTHER

DRIVERS_SHOWN = 10
SIGNIFICANT_Q = 0.05
DIMENSIONS_SHOWN = 8  # the waterfall's groups: the dimensions whose within effect is largest


@dataclass
class DriverView:
    sentence: str  # "2.2 points of them within region r0, where it fell from 0.74 to 0.63"
    q: str
    significant: bool  # q below SIGNIFICANT_Q
    rows_url: str  # "" when the rows page cannot select the slice (missing, other)
    feature_url: str  # "" for segments and versions


def slice_query(dimension: str, name: str) -> dict[str, str] | None:
    """The rows page's filters that select one slice; None when it has none for it."""
    if dimension in ("segment", "version"):
        return {dimension: name}
    if name in (MISSING, OTHER):
        return None
    feature = dimension.removeprefix(FEATURE)
    if not (name[:1] in "[(" and name.endswith(")")):
        return {"feature": feature, "category": name}
    low, high = name[1:-1].split(", ")
    query = {"feature": feature}
    query.update({"min": low} if low != "-inf" else {})
    query.update({"max": high} if high != "inf" else {})
    return query


def driver_rows_url(model: str, answer: Explanation, scope: dict, dimension: str, name: str):
    query = slice_query(dimension, name)
    if query is None:
        return ""
    window = {"start": answer.current.start.isoformat(), "end": answer.current.end.isoformat()}
    narrowed = {k: v for k, v in scope.items() if v is not None and k not in query}
    full = {"metric": answer.metric, **window, **narrowed, **query}
    return reverse("dashboard:rows", kwargs={"name": model}) + "?" + urlencode(full)


def feature_url(model: str, dimension: str) -> str:
    if not dimension.startswith(FEATURE):
        return ""
    feature = dimension.removeprefix(FEATURE)
    return reverse("dashboard:feature", kwargs={"name": model, "feature": feature})


def driver_views(model: str, answer: Explanation, scope: dict) -> list[DriverView]:
    """The largest drivers that moved the metric the way it went, in words and links."""
    metric = metric_get(answer.metric)
    shown = [d for d in answer.drivers if telling(d, answer.change)][:DRIVERS_SHOWN]
    return [
        DriverView(
            sentence=driver_sentence(metric, d, answer.change, answer.baseline.value),
            q=q_words(d.q_value),
            significant=d.q_value is not None and d.q_value < SIGNIFICANT_Q,
            rows_url=driver_rows_url(model, answer, scope, d.dimension, d.slice),
            feature_url=feature_url(model, d.dimension),
        )
        for d in shown
    ]


def dimension_words(dimension: str) -> str:
    if dimension == "segment":
        return "Segments"
    if dimension == "version":
        return "Versions"
    return dimension.removeprefix(FEATURE)


def in_unit(metric: Metric, value: float) -> float:
    """A share's effects in points, so the bars read as the sentences do."""
    return value * 100 if metric.unit == SHARE else value


def telling_dimensions(answer: Explanation) -> list[dict]:
    """The dimensions worth a group of bars, most concentrated first (the largest effect of
    one of its slices): not those with one slice holding the whole of both windows (one
    version, say), which carry all of the change and tell nothing."""
    largest: dict[str, float] = {}
    whole = set()
    for driver in answer.drivers:
        largest[driver.dimension] = max(largest.get(driver.dimension, 0.0), abs(driver.effect))
        if driver.share_baseline == 1.0 and driver.share_current == 1.0:
            whole.add(driver.dimension)
    dimensions = [
        d for d in answer.dimensions if d["mix_effect"] is not None and d["dimension"] not in whole
    ]
    dimensions.sort(key=lambda d: (-largest.get(d["dimension"], 0.0), d["dimension"]))
    return dimensions[:DIMENSIONS_SHOWN]


def waterfall_chart(answer: Explanation) -> Chart | None:
    """Per dimension: the baseline value, its mix effect, its within effect and the current
    value, as one waterfall with a group per dimension (each group adds up to the change)."""
    metric = metric_get(answer.metric)
    dimensions = telling_dimensions(answer)
    if not dimensions:
        return None
    base, cur = in_unit(metric, answer.baseline.value), in_unit(metric, answer.current.value)
    groups, steps, values, measures = [], [], [], []
    for effects in dimensions:
        name = plain(dimension_words(effects["dimension"]))
        mix, within = (
            in_unit(metric, effects["mix_effect"]),
            in_unit(metric, effects["within_effect"]),
        )
        groups += [name] * 4
        steps += ["baseline", "mix", "within", "current"]
        values += [base, mix, within, cur]
        measures += ["absolute", "relative", "relative", "total"]
    unit = "points" if metric.unit == SHARE else metric.label
    figure = {
        "data": [
            {
                "type": "waterfall",
                "x": [groups, steps],
                "y": values,
                "measure": measures,
                "increasing": {"marker": {"color": LINE}},
                "decreasing": {"marker": {"color": BOUND}},
                "totals": {"marker": {"color": BAR}},
                "connector": {"line": {"color": "#9ca3af", "width": 1}},
                "hovertemplate": "%{x}: %{y:.4g}<extra></extra>",
            }
        ],
        "layout": layout(
            title=plain(f"{metric.label}: mix against within, per dimension"),
            x_title="",
            y_title=plain(f"{metric.label} ({'%' if metric.unit == SHARE else unit})"),
        ),
    }
    figure["layout"]["height"] = 380
    figure["layout"]["yaxis"]["range"] = value_range(values, measures)
    summary = (
        f"For each dimension, the change of {metric.label} from the baseline to the current "
        "window split into mix (the slices' shares moved) and within (the metric moved inside "
        f"the slices): {len(dimensions)} dimension{'s' if len(dimensions) > 1 else ''} shown."
    )
    return Chart("why-waterfall", answer.metric, figure["layout"]["title"]["text"], figure, summary)


def value_range(values: list[float], measures: list[str]) -> list[float]:
    """The y axis around where the bars end (not from 0: the effects are small against it)."""
    ends, running = [], 0.0
    for value, measure in zip(values, measures, strict=True):
        running = value if measure != "relative" else running + value
        ends.append(running)
    low, high = min(ends), max(ends)
    pad = max(high - low, abs(high) * 0.01, 1e-9) * 0.25
    return [low - pad, high + pad]


def why_sections(*, model: str, answer: Explanation, scope: dict) -> dict:
    drivers = driver_views(model, answer, scope)
    return {
        "answer": answer,
        "sentence": change_sentence(answer),
        "drivers": drivers,
        "any_significant": any(d.significant for d in drivers),
        "waterfall": waterfall_chart(answer),
    }
