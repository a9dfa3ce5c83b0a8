"""Why a metric moved between a baseline window and a current one (`GET .../explain`).

Along each dimension (segments and versions from the hourly aggregates; each feature's slices
from the stored day sums of `SliceDay`), with w a slice's share of the metric's n and v its value, a
mean-type metric's change splits exactly into each slice's mix effect
(w_cur - w_base) * (v_base - V_base) and within effect w_cur * (v_cur - v_base): summed over
one dimension, w_cur * v_cur adds up to V_cur and w_base * v_base to V_base, so the effects
add up to V_cur - V_base. Other metrics computed from sums (F1, RMSE) get each slice's impact
instead: the change minus the change without that slice. ROC AUC is one of them: each slice's
is computed from its judged scores in `SCORE_BINS` bins by outcome (the segments' and versions'
from the hourly score sketches, grouped into the same bins), its p-value by DeLong on those
bins, and its impact from the window's AUC in the same bins, so that binning cancels out of
it; the windows' values are the metrics API's (its 1,000 bins). A business value's mean
(`value:NAME`) is a mean over its labels: its slices' sums come from the hourly values
(segments, versions) and the slices' stored value sums. Macro F1 is ranked by impact from
each slice's confusion counts (the hourly confusion sketches, the slices' stored counts), its
p-value a z-test on their delta-method variances. Everything is read from aggregates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
from django.db.models import F, Max, Sum

from factory.models import MLModel, ModelVersion
from monitoring.metrics.measures import Measure
from monitoring.metrics.registry import (
    AUC,
    MEAN,
    METRICS,
    PROPORTION,
    SUMS,
    VALUES,
    Metric,
    metric_get,
)
from monitoring.metrics.reports import compare_sides
from monitoring.metrics.series import (
    VALUE_FIELDS,
    filtered,
    metric_check,
    metric_value,
    metric_window,
    value_names,
    version_ids,
)
from monitoring.metrics.sketches import sketches_read
from monitoring.metrics.windows import MetricError
from monitoring.models import (
    SLICE_COUNT_FIELDS,
    SLICE_SUM_FIELDS,
    HourlyAggregate,
    HourlyValue,
    SketchKind,
    SliceBins,
)
from monitoring.pipeline.codec import confusion_merge
from monitoring.pipeline.slice_aggregates import (
    MISSING,
    OTHER,
    SCORE_BINS,
    VALUE_STATISTICS,
    SliceSums,
    added_up,
    confusion_complete,
    scores_complete,
    values_complete,
    window_slices,
)
from monitoring.stats.auc import ScoreHistogram, coarsened, delong_variance_of_histogram
from monitoring.stats.codec import score_histogram_decode
from monitoring.stats.multiple import benjamini_hochberg

DAY = timedelta(days=1)
WINDOW_DAYS = 7
TOP_CATEGORIES = 50  # a categorical dimension's slices: these, then (other), plus (missing)
IMPACT_METRICS = ("f1", "macro_f1", "rmse", "roc_auc")  # not means over their n: by impact
ALPHA, POWER = 0.05, 0.8


def additive(metric: Metric) -> bool:
    """A mean over its n: from the hourly sums, or a business value's mean per label."""
    return metric.source in (SUMS, VALUES) and metric.kind in (PROPORTION, MEAN)


def explainable(metric: Metric) -> bool:
    return additive(metric) or metric.key in IMPACT_METRICS


@dataclass
class Window:
    start: datetime
    end: datetime
    value: float | None = None
    n: int = 0


@dataclass
class Driver:
    dimension: str
    slice: str
    share_baseline: float
    share_current: float
    value_baseline: float | None
    value_current: float | None
    mix_effect: float | None = None
    within_effect: float | None = None
    impact: float | None = None
    p_value: float | None = None
    q_value: float | None = None

    @property
    def effect(self) -> float:
        if self.impact is not None:
            return self.impact
        return (self.mix_effect or 0.0) + (self.within_effect or 0.0)


@dataclass
class Explanation:
    metric: str
    baseline: Window
    current: Window
    change: float
    dimensions: list[dict] = field(default_factory=list)
    drivers: list[Driver] = field(default_factory=list)


# --- windows ---


def midnight_check(name: str, moment: datetime | None) -> None:
    if moment is not None and (moment.hour, moment.minute, moment.second, moment.microsecond) != (
        0,
        0,
        0,
        0,
    ):
        raise MetricError(f"{name} must be midnight UTC (explain's windows are whole days)")


def whole_days(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The whole UTC days that hold [start, end): how an hour's window (an alert's, a chart
    point's) is explained, since explain reads day aggregates."""
    first = start.replace(hour=0, minute=0, second=0, microsecond=0)
    last = end.replace(hour=0, minute=0, second=0, microsecond=0)
    return first, last if last >= end and last > first else last + DAY


def windows_of(
    model: MLModel,
    start: datetime | None,
    end: datetime | None,
    baseline_start: datetime | None,
    baseline_end: datetime | None,
) -> tuple[Window, Window]:
    """(baseline, current). Defaults: the current window is the 7 whole days before the model's
    last prediction day, the baseline the days of the same length just before it."""
    for name, moment in (
        ("start", start),
        ("end", end),
        ("baseline_start", baseline_start),
        ("baseline_end", baseline_end),
    ):
        midnight_check(name, moment)
    if end is None:
        last = HourlyAggregate.objects.filter(model=model).aggregate(last=Max("hour"))["last"]
        if last is None:
            raise MetricError(f"model {model.name} has no predictions yet")
        end = last.replace(hour=0) if start is None else start + WINDOW_DAYS * DAY
    start = start or end - WINDOW_DAYS * DAY
    baseline_end = baseline_end or start
    baseline_start = baseline_start or baseline_end - (end - start)
    for name, low, high in (("", start, end), ("baseline_", baseline_start, baseline_end)):
        if low >= high:
            raise MetricError(f"{name}start must be before {name}end")
    return Window(baseline_start, baseline_end), Window(start, end)


# --- the sums per slice ---

# A slice's sums by field; for ROC AUC also its score bins under SCORES (positives per bin,
# then negatives: the layout of `SCORE_FIELDS`); for a business value its count, sum and sum
# of squares under VALUE_SUMS; for macro F1 its {(outcome, prediction): count} under CONFUSION.
Sums = dict[str, float | np.ndarray | dict]
SCORES = "score_bins"
VALUE_SUMS = "value_sums"
CONFUSION = "confusion"


def confusion_metric(metric: Metric) -> bool:
    return metric.sketch == SketchKind.CONFUSION


def hourly_slices(model, window: Window, scope: dict, by: str) -> dict[str, Sums]:
    """A segment's or version's sums over the window, from the hourly aggregates."""
    queryset = filtered(
        HourlyAggregate.objects, model=model, start=window.start, end=window.end, **scope
    )
    rows = (
        queryset.annotate(slice=F(by))
        .values("slice")
        .annotate(**{f: Sum(f) for f in SLICE_SUM_FIELDS})
    )
    return {str(row.pop("slice")): row for row in rows.order_by()}


def scoped_slices(model, start: datetime | None, end: datetime | None, scope: dict) -> SliceSums:
    """The stored day entries of [start, end) (either open) in the scope's version and
    segment."""
    sums = window_slices(model, start, end)
    wanted = np.ones(len(sums), dtype=bool)
    if scope["version"]:
        ids = ModelVersion.objects.filter(model=model, version=scope["version"]).values("pk")
        wanted &= np.isin(sums.version, [row["pk"] for row in ids])
    if scope["segment"] is not None:
        wanted &= sums.segment == scope["segment"]
    return sums.take(np.flatnonzero(wanted))


def feature_slices(picked: SliceSums, metric: Metric) -> dict[str, dict[str, Sums]]:
    """{feature: {slice: sums}} over the window's stored slice sums (``picked``), with the
    parts beyond the sums the metric reads (score bins, a value's sums, confusion counts)."""
    out: dict[str, dict[str, Sums]] = {}
    if not len(picked):
        return out
    _, totals = added_up(picked, (picked.feature, picked.slice))
    parts = entry_parts(totals, metric)
    for i, (feature, slice_, row) in enumerate(
        zip(totals.feature.tolist(), totals.slice.tolist(), totals.sums.tolist(), strict=True)
    ):
        out.setdefault(feature, {})[slice_] = sums_of(row) | {
            key: part[i] for key, part in parts.items()
        }
    return out


def entry_parts(entries: SliceSums, metric: Metric) -> dict[str, list]:
    """Per entry, what the metric reads beyond the sums, by the key it takes in `Sums`."""
    if metric.kind == AUC:
        return {SCORES: list(entries.scores.toarray())}
    if metric.source == VALUES:
        keys = [(metric.name, statistic) for statistic in VALUE_STATISTICS]
        columns = np.column_stack([entries.values.column(key) for key in keys])
        return {VALUE_SUMS: list(columns)}
    if confusion_metric(metric):
        matrix, keys = entries.confusion.matrix.tocsr(), entries.confusion.keys
        tables = [
            {
                keys[column]: round(count)
                for column, count in zip(
                    matrix.indices[matrix.indptr[i] : matrix.indptr[i + 1]].tolist(),
                    matrix.data[matrix.indptr[i] : matrix.indptr[i + 1]].tolist(),
                    strict=True,
                )
                if round(count)
            }
            for i in range(len(entries))
        ]
        return {CONFUSION: tables}
    return {}


def sums_of(row: list[float], scores: np.ndarray | None = None) -> Sums:
    """A stored slice's sums by field, counts as integers (and its score bins if given)."""
    sums: Sums = {
        name: round(value) if name in SLICE_COUNT_FIELDS else value
        for name, value in zip(SLICE_SUM_FIELDS, row, strict=True)
    }
    if scores is not None:
        sums[SCORES] = scores
    return sums


def fields_of(*sides: Sums | None) -> list[str]:
    extra = {f for side in sides if side for f in side} - set(SLICE_SUM_FIELDS)
    return [*SLICE_SUM_FIELDS, *sorted(extra)]


def plus(x, y, sign: int = 1):
    """x + sign * y for a sum, an array of bins or sums, or a table of counts (a dict)."""
    if isinstance(x, dict) or isinstance(y, dict):
        out = dict(x or {})
        for key, count in (y or {}).items():
            out[key] = out.get(key, 0) + sign * count
        return {key: count for key, count in out.items() if count}
    return x + sign * y


def add(a: Sums | None, b: Sums | None) -> Sums:
    return {f: plus((a or {}).get(f, 0), (b or {}).get(f, 0)) for f in fields_of(a, b)}


def subtract(a: Sums, b: Sums | None) -> Sums:
    return {f: plus(a[f], (b or {}).get(f, 0), -1) for f in a}


def incomplete_days(picked: SliceSums, complete: np.ndarray) -> list[str]:
    """The days of the stored slices that are not ``complete`` (aggregated before a part)."""
    unknown = ~complete
    days = np.unique(picked.start[unknown] - picked.start[unknown] % 86400)
    return [datetime.fromtimestamp(day, UTC).date().isoformat() for day in days.tolist()]


def days_without_scores(picked: SliceSums) -> list[str]:
    """The days whose stored slices were aggregated before they held score bins."""
    return incomplete_days(picked, scores_complete(picked))


def parts_check(picked: SliceSums, metric: Metric, name: str) -> None:
    """A 400 naming the window's days whose slices were aggregated before they held what
    the metric reads beyond the sums (they would read as zero: a wrong answer)."""
    if metric.kind == AUC:
        complete, what = scores_complete(picked), "their scores"
    elif metric.source == VALUES:
        complete, what = values_complete(picked), "business values"
    elif confusion_metric(metric):
        complete, what = confusion_complete(picked), "confusion counts"
    else:
        return
    missing = incomplete_days(picked, complete)
    if missing:
        raise MetricError(
            f"{metric.key} by feature slice: the {name} window's days {', '.join(missing)} "
            f"were aggregated before slices kept {what}; run `manage.py aggregates_backfill` "
            "(while their raw rows are kept) to explain them"
        )


def hourly_parts(model, metric: Metric, window: Window, scope: dict, by: str) -> dict[str, Sums]:
    """Each segment's or version's business value sums (from the hourly values) or confusion
    counts (from the hourly confusion sketches) over the window, under their `Sums` key."""
    if metric.source == VALUES:
        rows = filtered(
            HourlyValue.objects.filter(name=metric.name),
            model=model,
            start=window.start,
            end=window.end,
            **scope,
        )
        grouped = rows.annotate(slice=F(by)).values("slice")
        totals = grouped.annotate(**{f: Sum(f) for f in VALUE_FIELDS}).order_by()
        return {
            str(row["slice"]): {VALUE_SUMS: np.array([row[f] for f in VALUE_FIELDS], dtype=float)}
            for row in totals
        }
    datas = sketch_datas(model, SketchKind.CONFUSION, window, scope, by)
    return {key: {CONFUSION: confusion_merge(items)} for key, items in datas.items()}


def sketch_datas(model, kind: str, window: Window, scope: dict, by: str) -> dict[str, list]:
    """The hourly sketches of a kind over the window, their data per segment or version."""
    rows = sketches_read(
        model=model,
        kind=kind,
        start=window.start,
        end=window.end,
        version_ids=version_ids(model, scope),
        segment=scope["segment"],
    )
    names = dict(ModelVersion.objects.filter(model=model).values_list("pk", "version"))
    datas: dict[str, list[bytes]] = {}
    for row in rows:
        key = row.segment if by == "segment" else names[row.version_id]
        datas.setdefault(key, []).append(bytes(row.data))
    return datas


def with_parts(slices: dict[str, Sums], parts: dict[str, Sums], metric: Metric):
    empty = {CONFUSION: {}} if confusion_metric(metric) else {VALUE_SUMS: np.zeros(3)}
    return {name: sums | parts.get(name, empty) for name, sums in slices.items()}


def sketch_score_bins(model, window: Window, scope: dict, by: str) -> dict[str, np.ndarray]:
    """Each segment's or version's judged scores in `SCORE_BINS` bins by outcome over the
    window, from the hourly score sketches (those ROC AUC is charted from), coarsened."""
    out: dict[str, np.ndarray] = {}
    for key, items in sketch_datas(model, SketchKind.SCORE, window, scope, by).items():
        for data in items:
            histogram = coarsened(score_histogram_decode(data), SCORE_BINS)
            bins = np.concatenate([histogram.positives, histogram.negatives]).astype(float)
            out[key] = out.get(key, 0) + bins
    return out


def with_scores(slices: dict[str, Sums], bins: dict[str, np.ndarray]) -> dict[str, Sums]:
    empty = np.zeros(2 * SCORE_BINS)
    return {name: sums | {SCORES: bins.get(name, empty)} for name, sums in slices.items()}


def histogram_of(sums: Sums) -> ScoreHistogram:
    bins = np.asarray(sums[SCORES], dtype=float)
    return ScoreHistogram(bins[:SCORE_BINS], bins[SCORE_BINS:], np.zeros(SCORE_BINS))


def measure_of(metric: Metric, sums: Sums) -> Measure:
    """The metric of a slice's sums; ROC AUC from its score bins, with DeLong's variance; a
    business value from its sums; macro F1 from its confusion counts."""
    if metric.source == VALUES:
        count, total, total_sq = np.asarray(sums.get(VALUE_SUMS, np.zeros(3))).tolist()
        values = {"count": round(count), "total": total, "total_sq": total_sq}
        return metric_value(metric, sums, values)
    if confusion_metric(metric):
        return metric_value(metric, sums, sums.get(CONFUSION) or None)
    if metric.kind != AUC:
        return metric_value(metric, sums, None)
    histogram = histogram_of(sums)
    measure = metric_value(metric, sums, histogram)
    measure.variance = delong_variance_of_histogram(histogram)
    return measure


def comparison_of(metric: Metric) -> str:
    """How a slice's two windows are tested: DeLong's variances (delta) for ROC AUC."""
    return "delta" if metric.kind == AUC else metric.comparison


def top_categories(
    base: dict[str, Sums], cur: dict[str, Sums]
) -> tuple[dict[str, Sums], dict[str, Sums]]:
    """The `TOP_CATEGORIES` most frequent categories over both windows, the rest summed into
    `(other)`; `(missing)` kept."""
    totals: dict[str, float] = {}
    for side in (base, cur):
        for name, sums in side.items():
            if name not in (OTHER, MISSING):
                totals[name] = totals.get(name, 0) + sums["predictions"]
    kept = set(sorted(totals, key=lambda name: (-totals[name], name))[:TOP_CATEGORIES])
    out = []
    for side in (base, cur):
        merged: dict[str, Sums] = {}
        for name, sums in side.items():
            key = name if name in kept or name == MISSING else OTHER
            merged[key] = add(merged.get(key), sums)
        out.append(merged)
    return out[0], out[1]


# --- the decomposition ---


def slice_driver(
    metric: Metric,
    dimension: str,
    name: str,
    sides: tuple[Sums | None, Sums | None],
    totals: tuple,
) -> Driver:
    """One slice's shares, values, effects and p-value; ``totals`` are the dimension's
    (baseline Measure, current Measure)."""
    base_total, cur_total = totals
    base = measure_of(metric, sides[0]) if sides[0] else None
    cur = measure_of(metric, sides[1]) if sides[1] else None
    v_base = base.value if base and base.n else None
    v_cur = cur.value if cur and cur.n else None
    w_base = share_of(metric, base, v_base, base_total)
    w_cur = share_of(metric, cur, v_cur, cur_total)
    driver = Driver(dimension, name, w_base, w_cur, v_base, v_cur)
    if v_base is not None and v_cur is not None:
        comparison = compare_sides(comparison_of(metric), base, cur, alpha=ALPHA, power=POWER)
        driver.p_value = comparison.p_value if comparison else None
    if additive(metric):
        anchor = base_total.value if v_base is None else v_base
        driver.mix_effect = (w_cur - w_base) * (anchor - base_total.value)
        driver.within_effect = w_cur * (v_cur - anchor) if v_cur is not None else 0.0
    else:
        without = [
            measure_of(metric, subtract(whole, part))
            for whole, part in ((totals[0].sums, sides[0]), (totals[1].sums, sides[1]))
        ]
        change = cur_total.value - base_total.value
        # A slice that is a whole window (a version that served only one of them): without
        # it nothing is left to change, and the whole change is its impact.
        rest = None in (without[0].value, without[1].value)
        driver.impact = change if rest else change - (without[1].value - without[0].value)
    return driver


def share_of(metric: Metric, measure: Measure | None, value: float | None, total) -> float:
    """A slice's share of the dimension's n. For an additive metric it weighs the effects,
    and a slice without a value has none; a ranked slice's is of the n its metric counts,
    valued or not (an AUC of one outcome has none)."""
    if measure is None or (value is None and additive(metric)):
        return 0.0
    return measure.n / total.n


@dataclass
class Total:
    """A dimension's whole in one window: the Measure's value and n, and its sums."""

    value: float
    n: int
    sums: Sums


def dimension_drivers(
    metric: Metric, dimension: str, base: dict[str, Sums], cur: dict[str, Sums]
) -> tuple[dict, list[Driver]]:
    totals = []
    for side in (base, cur):
        sums = add(None, None)
        for part in side.values():
            sums = add(sums, part)
        measure = measure_of(metric, sums)
        valued = measure.n and measure.value is not None
        totals.append(Total(measure.value, measure.n, sums) if valued else None)
    if None in totals:
        return {}, []
    drivers = [
        slice_driver(metric, dimension, name, (base.get(name), cur.get(name)), tuple(totals))
        for name in sorted(set(base) | set(cur))
    ]
    effects = {"dimension": dimension, "mix_effect": None, "within_effect": None}
    if additive(metric):
        effects["mix_effect"] = float(sum(d.mix_effect for d in drivers))
        effects["within_effect"] = float(sum(d.within_effect for d in drivers))
    return effects, drivers


def window_measure(metric: Metric, model, window: Window, scope: dict, name: str) -> Window:
    """The window's value and n; ROC AUC's as the metrics API gives it."""
    sums = add(None, None)
    for part in hourly_slices(model, window, scope, "segment").values():
        sums = add(sums, part)
    if metric.kind == AUC or metric.source != SUMS:
        measure = metric_window(
            model=model, metric=metric.key, start=window.start, end=window.end, **scope
        )
    else:
        measure = metric_value(metric, sums, None)
    if not measure.n or measure.value is None:
        what = "labelled predictions" if sums["predictions"] else "predictions"
        what += " of both outcomes" if metric.kind == AUC and sums["predictions"] else ""
        raise MetricError(
            f"the {name} window {window.start.date()} .. {window.end.date()} has no {what} "
            f"for {metric.key}"
        )
    return Window(window.start, window.end, measure.value, measure.n)


def explain(
    *,
    model: MLModel,
    metric: str,
    start: datetime | None = None,
    end: datetime | None = None,
    baseline_start: datetime | None = None,
    baseline_end: datetime | None = None,
    version: str | None = None,
    segment: str | None = None,
) -> Explanation:
    entry = metric_check(model, metric)
    if not explainable(entry):
        raise MetricError(f"explain takes {', '.join(explain_keys(model))}; not {metric}")
    base_window, cur_window = windows_of(model, start, end, baseline_start, baseline_end)
    scope = {"version": version, "segment": segment}
    baseline = window_measure(entry, model, base_window, scope, "baseline")
    current = window_measure(entry, model, cur_window, scope, "current")
    dimensions = {
        "segment": [hourly_slices(model, w, scope, "segment") for w in (baseline, current)],
        "version": [
            hourly_slices(model, w, scope, "version__version") for w in (baseline, current)
        ],
    }
    for dimension, by in (("segment", "segment"), ("version", "version__version")):
        dimensions[dimension] = [
            hourly_with_parts(model, entry, slices, w, scope, by)
            for slices, w in zip(dimensions[dimension], (baseline, current), strict=True)
        ]
    picked = [scoped_slices(model, w.start, w.end, scope) for w in (baseline, current)]
    for entries, name in zip(picked, ("baseline", "current"), strict=True):
        parts_check(entries, entry, name)
    per_feature = [feature_slices(entries, entry) for entries in picked]
    for name in sorted(set(per_feature[0]) | set(per_feature[1])):
        base, cur = per_feature[0].get(name, {}), per_feature[1].get(name, {})
        dimensions[f"feature:{name}"] = list(top_categories(base, cur))
    answer = Explanation(entry.key, baseline, current, current.value - baseline.value)
    for dimension, (base, cur) in dimensions.items():
        effects, drivers = dimension_drivers(entry, dimension, base, cur)
        if effects:
            answer.dimensions.append(effects)
            answer.drivers += drivers
    q_values_fill(answer.drivers)
    answer.drivers.sort(key=lambda d: (-abs(d.effect), d.dimension, d.slice))
    return answer


def hourly_with_parts(model, metric: Metric, slices, window: Window, scope: dict, by: str):
    """A segment's or version's sums with what the metric reads beyond them."""
    if metric.kind == AUC:
        short = "segment" if by == "segment" else "version"
        return with_scores(slices, sketch_score_bins(model, window, scope, short))
    if metric.source == VALUES or confusion_metric(metric):
        return with_parts(slices, hourly_parts(model, metric, window, scope, by), metric)
    return slices


def q_values_fill(drivers: list[Driver]) -> None:
    """Benjamini-Hochberg over every slice of the answer that has a p-value."""
    tested = [d for d in drivers if d.p_value is not None]
    q_values = benjamini_hochberg(np.array([d.p_value for d in tested], dtype=float))
    for driver, q in zip(tested, q_values.tolist(), strict=True):
        driver.q_value = q


def explain_keys(model: MLModel) -> list[str]:
    """The metric keys explain takes for this model: its task's, then its business values'."""
    fixed = [m.key for m in METRICS if m.fits(model.task) and explainable(m) and m.listed]
    return fixed + [f"value:{name}" for name in value_names(model)]


# --- one feature's slices day by day (the feature page's heatmap) ---


@dataclass
class SliceDays:
    """A metric in each slice of one feature, day by day: values[i][j] is slice i on day j
    (None where the slice had nothing to compute it from), n the observations behind it."""

    metric: str
    feature: str
    days: list[datetime]
    slices: list[str]
    values: list[list[float | None]]
    n: list[list[int]]
    numerical: bool  # slices are deciles (else categories)


def feature_slice_days(
    *,
    model: MLModel,
    feature: str,
    metric: str,
    start: datetime | None,
    end: datetime | None,
    version: str | None = None,
    segment: str | None = None,
) -> SliceDays:
    """The metric per slice of the feature (its deciles or categories, and missing) per day,
    from the stored day slice rows (one grouped read, never raw rows). Categories past the
    TOP_CATEGORIES most frequent over the span are summed into `(other)`."""
    entry = metric_check(model, metric)
    if not sliced_daily(entry):
        keys = ", ".join(k for k in explain_keys(model) if sliced_daily(metric_get(k)))
        raise MetricError(f"metric {metric!r}: the slices of a feature show {keys}")
    scope = {"version": version, "segment": segment}
    entries = scoped_slices(model, start, end, scope)
    entries = entries.take(np.flatnonzero(entries.feature == feature))
    cells: dict[tuple[str, datetime], Sums] = {}
    if len(entries):
        _, totals = added_up(entries, (entries.slice, entries.start))
        for slice_, day, row in zip(
            totals.slice.tolist(), totals.start.tolist(), totals.sums.tolist(), strict=True
        ):
            cells[(slice_, datetime.fromtimestamp(day, UTC))] = sums_of(row)
    kind = SliceBins.objects.filter(model=model, name=feature).values_list("kind", flat=True)
    numerical = kind.first() == "numerical"
    names = slices_ordered(cells, numerical=numerical)
    merged: dict[tuple[str, datetime], Sums] = {}
    for (name, day), sums in cells.items():
        key = (name if name in names else OTHER, day)
        merged[key] = add(merged.get(key), sums)
    days = sorted({day for _, day in merged})
    shown = [name for name in (*names, OTHER) if any((name, day) in merged for day in days)]
    measures = [[cell_measure(entry, merged.get((name, day))) for day in days] for name in shown]
    return SliceDays(
        metric=entry.key,
        feature=feature,
        days=days,
        slices=shown,
        values=[[m.value if m.n else None for m in row] for row in measures],
        n=[[int(m.n) for m in row] for row in measures],
        numerical=numerical,
    )


def sliced_daily(metric: Metric) -> bool:
    """Whether the feature page's heatmap shows it: the additive metrics of the hourly sums."""
    return additive(metric) and metric.source == SUMS


def cell_measure(metric: Metric, sums: Sums | None):
    return metric_value(metric, sums if sums else add(None, None), None)


def slices_ordered(cells: dict[tuple[str, datetime], Sums], *, numerical: bool) -> list[str]:
    """A numerical feature's deciles from the lowest ("(-inf, a)" first), else the
    TOP_CATEGORIES most frequent categories; `(missing)` last, `(other)` left to the caller."""
    totals: dict[str, float] = {}
    for (name, _), sums in cells.items():
        totals[name] = totals.get(name, 0) + sums["predictions"]
    named = [name for name in totals if name not in (OTHER, MISSING)]
    if numerical:
        ordered = sorted(named, key=decile_low)
    else:
        ordered = sorted(named, key=lambda name: (-totals[name], name))[:TOP_CATEGORIES]
    return ordered + ([MISSING] if MISSING in totals else [])


def decile_low(name: str) -> float:
    """The lower edge of a decile's label ("[3.5, 7)" -> 3.5; "(-inf, 3.5)" -> -inf)."""
    try:
        return float(name[1:].partition(",")[0])
    except ValueError:
        return float("inf")
