"""The drift and data-quality sections of the model page, and the feature page's content.

Every drift number here comes from `monitoring.metrics.drift.drift_series`: the stored sketches
merged per window and tested by the same functions as the drift API, against the same baseline.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from datetime import datetime

import numpy as np
from django.db.models import Count, Q, Sum
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from common.numbers import finite
from dashboard.charts import (
    distribution_figure,
    heatmap_figure,
    partial_decorate,
    plain,
    threshold_figure,
)
from dashboard.sections.base import (
    Chart,
    Scope,
    chart_events,
    model_segments,
    scope_suffix,
    window_partial,
)
from factory.models import MLModel, ModelVersion
from monitoring.metrics.drift import (
    DriftError,
    DriftSeries,
    drift_series,
    feature_drift,
    merge_feature,
    readable,
)
from monitoring.metrics.sketches import period_cover, sketches_read
from monitoring.metrics.windows import WINDOW, MetricError, window_start
from monitoring.models import HourlyAggregate, QuarantinedRecord, Sketch, SketchKind
from monitoring.pipeline.bins import bins_load
from monitoring.stats.drift import (
    DATASET_DRIFT_SHARE,
    P_VALUE_METHODS,
    FeatureDrift,
    method_name,
)
from monitoring.stats.histograms import NumericHistogram, NumericReference
from monitoring.stats.quality import coarse_shares, unseen_categories

SCORE_CAP = 10.0  # an infinite statistic (new categories) is drawn as ten times the threshold
DISPLAY_BINS = 24
TOP_CATEGORIES = 20


def drift_score(result: FeatureDrift | None) -> float | None:
    """The statistic against its threshold, 1 at the threshold, so that tests of different
    methods share one colour scale: statistic / threshold for distances, and
    log p / log threshold for tests decided by their p-value."""
    if result is None or result.statistic is None or math.isnan(result.statistic):
        return None
    if result.method in P_VALUE_METHODS:
        if finite(result.p_value) is None:
            return None
        p_value = max(result.p_value, 1e-300)
        return min(math.log10(p_value) / math.log10(result.threshold), SCORE_CAP)
    if math.isinf(result.statistic):
        return SCORE_CAP
    return min(result.statistic / result.threshold, SCORE_CAP)


def finite_statistic(result: FeatureDrift | None) -> float | None:
    return finite(result.statistic) if result is not None else None


def statistic_text(result: FeatureDrift | None) -> str:
    if result is None:
        return "no values"
    if result.statistic is None:
        return "no values on one side"
    if math.isnan(result.statistic):
        return f"{method_name(result.method)} not defined (no spread to compare)"
    value = (
        "infinite (new categories)" if math.isinf(result.statistic) else f"{result.statistic:.4g}"
    )
    text = f"{method_name(result.method)} {value}"
    if result.p_value is not None:
        text += f", p = {result.p_value:.3g}"
    verdict = "drifted" if result.drifted else "no drift"
    return f"{text} ({verdict} at {threshold_text(result)}; n = {result.n_cur:,})"


def threshold_text(result: FeatureDrift) -> str:
    if result.method in P_VALUE_METHODS:
        return f"p < {result.threshold:g}"
    return f"{method_name(result.method)} ≥ {result.threshold:g}"


def feature_url(model: MLModel, feature: str, scope: Scope) -> str:
    url = reverse("dashboard:feature", kwargs={"name": model.name, "feature": feature})
    query = {**scope.query(), "days": "all" if scope.days is None else scope.days}
    return f"{url}?{urlencode(query)}"


def series_for(*, model: MLModel, scope: Scope, now: datetime, feature: str | None = None):
    start, end = scope.span(now)
    return drift_series(
        model=model,
        granularity=scope.granularity,
        start=start,
        end=end,
        version=scope.version,
        segment=scope.segment,
        feature=feature,
    )


def since(
    results: list[FeatureDrift | None], windows: list[datetime], current: datetime
) -> datetime | None:
    """The start of the latest unbroken run of drifted windows, if the latest tested drifted.
    Windows from `current` on (the window in progress) are not over, so not judged."""
    first = None
    for result, window in zip(reversed(results), reversed(windows), strict=True):
        if result is None or result.drifted is None or window >= current:
            continue
        if not result.drifted:
            break
        first = window
    return first


# --- model page: drift -----------------------------------------------------------------------


def drift_section(*, model: MLModel, scope: Scope, now: datetime | None = None) -> dict | None:
    """The feature-by-window heatmap, the drifted share over time and one row per feature."""
    now = now or timezone.now()
    try:
        series, served_by = serving_series(model=model, scope=scope, now=now)
    except (DriftError, MetricError):
        return None
    if not series.features or not series.windows:
        return None
    x = [w.isoformat() for w in series.windows]
    names = list(series.features)
    current = window_start(now, scope.granularity)
    rows = [feature_row(model, scope, series, name, current) for name in names]
    suffix = plain(scope_suffix(Scope(scope.granularity, None, scope.segment)))
    versions = sorted({v for names in served_by for v in names})
    which = versions_text(tuple(versions))
    title = plain(f"Drift of {which} per feature and {scope.granularity}") + suffix
    events = chart_events(model)
    heatmap = heatmap_figure(
        title=title,
        x=x,
        rows=[plain(n) for n in names],
        scores=[[drift_score(r) for r in series.features[n]] for n in names],
        statistics=[[finite_statistic(r) for r in series.features[n]] for n in names],
        hover=[
            [
                plain(f"{n}, {w:%Y-%m-%d %H:%M}, {versions_text(v)}: {statistic_text(r)}")
                for w, v, r in zip(series.windows, served_by, series.features[n], strict=True)
            ]
            for n in names
        ],
        row_urls=[row["url"] for row in rows],
        events=events,
    )
    drifting = [row for row in rows if row["since"]]
    summary = f"{title}: {len(names)} features over {len(x)} windows; "
    summary += (
        "drifting now: "
        + ", ".join(f"{r['name']} since {r['since']:%Y-%m-%d %H:%M} UTC" for r in drifting)
        if drifting
        else "no feature drifts in its latest tested window"
    )
    share_title = plain(f"Share of features drifted per {scope.granularity}") + suffix
    shares = threshold_figure(
        title=share_title,
        x=x,
        y=series.shares,
        y_title="features drifted (share)",
        threshold=(f"dataset drift at {DATASET_DRIFT_SHARE:.0%}", DATASET_DRIFT_SHARE),
        events=events,
    )
    shares["layout"]["yaxis"].update(range=[-0.02, 1.02], tickformat=".0%")
    half = WINDOW[scope.granularity] / 2  # a heatmap's cell is centred on its window's start
    span = [(series.windows[0] - half).isoformat(), (series.windows[-1] + half).isoformat()]
    heatmap["layout"]["xaxis"]["range"] = span  # its cells, not the hatching's hidden axis
    partial = window_partial(series.windows[-1], scope.granularity, now)
    if partial is not None:
        partial_decorate(
            heatmap, replace(partial, start=partial.start - half, end=partial.end - half)
        )
        partial_decorate(shares, partial)
    complete = zip(series.shares, series.windows, strict=True)
    known = [share for share, window in complete if share is not None and window < current]
    share_summary = f"{share_title}: " + (
        f"{known[-1]:.0%} of the tested features drifted in the latest complete window."
        if known
        else "no window could be tested."
    )
    return {
        "series": series,
        "version": series.version,
        "baseline": series.baseline,
        "versions": versions,
        "rows": rows,
        "heatmap": Chart("drift-heatmap", "drift", title, heatmap, summary + "."),
        "shares": Chart("drift-share", "drift", share_title, shares, share_summary),
    }


def serving_series(
    *, model: MLModel, scope: Scope, now, feature: str | None = None
) -> tuple[DriftSeries, list[tuple[str, ...]]]:
    """The drift per window of the picked version, or, without one, of the model's whole
    traffic (every version's predictions on the model's bins) against one baseline; the
    list names the versions that served each window."""
    series = series_for(model=model, scope=scope, now=now, feature=feature)
    if scope.version:
        return series, [(series.version,)] * len(series.windows)
    return series, window_versions(model, scope, series.windows, now)


def window_versions(model: MLModel, scope: Scope, windows: list[datetime], now) -> list:
    """The versions with predictions in each window, from the hourly counts."""
    start, end = scope.span(now)
    served = HourlyAggregate.objects.filter(model=model, predictions__gt=0)
    served = served.filter(hour__gte=start) if start else served
    served = served.filter(hour__lt=end) if end else served
    if scope.segment is not None:
        served = served.filter(segment=scope.segment)
    by_window: dict[datetime, set[str]] = {}
    for hour, version in served.values_list("hour", "version__version").distinct():
        by_window.setdefault(window_start(hour, scope.granularity), set()).add(version)
    return [tuple(sorted(by_window.get(window, ()))) for window in windows]


def versions_text(names: tuple[str, ...]) -> str:
    if not names:
        return "no version"
    return f"version {names[0]}" if len(names) == 1 else f"versions {', '.join(names)}"


def feature_row(
    model: MLModel, scope: Scope, series: DriftSeries, name: str, current: datetime
) -> dict:
    results = series.features[name]
    # the window in progress is not over: shown on the charts, hatched, but not judged here
    complete = [r for r, w in zip(results, series.windows, strict=True) if w < current]
    tested = [r for r in complete if r is not None and r.drifted is not None]
    latest = next((r for r in reversed(complete) if r is not None), None)
    return {
        "name": name,
        "url": feature_url(model, name, scope),
        "latest": latest,
        "latest_text": statistic_text(latest) if latest else "no values in the span",
        "drifted": sum(bool(r.drifted) for r in tested),
        "tested": len(tested),
        "since": since(results, series.windows, current),
    }


# --- model page: data quality ----------------------------------------------------------------


def quality_section(
    *, model: MLModel, scope: Scope, now: datetime | None = None, drift: dict | None = None
) -> dict | None:
    """Missing rates, unseen categories, out-of-range values and quarantined rows."""
    now = now or timezone.now()
    start, end = scope.span(now)
    missing = missing_rates(model=model, scope=scope, start=start, end=end)
    against = drift_against(drift["series"]) if drift else {}
    for row in missing:
        row.update(against.get(row["name"], {}))
        row["url"] = feature_url(model, row["name"], scope)
    quarantined = quarantine_reasons(model=model, start=start, end=end)
    if not missing and not quarantined:
        return None
    return {
        "features": missing,
        "quarantined": quarantined,
        "quarantined_total": sum(q["n"] for q in quarantined),
        "version": drift["version"] if drift else None,
    }


def missing_rates(*, model: MLModel, scope: Scope, start, end) -> list[dict]:
    """Rows without a value per feature over the scope: one grouped sum over the sketches."""
    rows = Sketch.objects.filter(
        model=model, kind__in=(SketchKind.NUMERICAL, SketchKind.CATEGORICAL)
    ).filter(period_cover(start, end))
    if scope.version:
        rows = rows.filter(version__version=scope.version)
    if scope.segment is not None:
        rows = rows.filter(segment=scope.segment)
    sums = rows.values("name").annotate(missing=Sum("missing"), present=Sum("n")).order_by("name")
    out = []
    for row in sums:
        total = row["missing"] + row["present"]
        rate = row["missing"] / total if total else None
        text = "" if rate is None else f"{rate:.2%}"
        out.append(
            {
                "name": row["name"],
                "missing": row["missing"],
                "rows": total,
                "missing_rate": rate,
                "missing_text": text,
            }
        )
    return out


def drift_against(series: DriftSeries) -> dict[str, dict]:
    """Per feature of the drift version: out-of-range values or unseen categories."""
    out = {}
    for name, summary in series.summaries.items():
        reference = series.baseline.features.get(name)
        if summary.kind == "numerical" and summary.ranged:
            low, high = reference.edges[0], reference.edges[-1]
            out[name] = {
                "below": summary.below,
                "above": summary.above,
                "numeric_n": summary.n,
                "low": f"{low:.4g}",
                "high": f"{high:.4g}",
            }
        elif summary.kind != "numerical" and reference is not None:
            counts = getattr(reference, "counts", None)
            if counts is None:
                continue
            unseen = unseen_categories(counts, summary.counts)
            out[name] = {
                "unseen": list(unseen.items())[:5],
                "unseen_total": sum(unseen.values()),
                "unseen_kinds": len(unseen),
                "categorical_n": summary.n,
            }
    return out


def quarantine_reasons(*, model: MLModel, start, end) -> list[dict]:
    records = QuarantinedRecord.objects.filter(model=model)
    if start:
        records = records.filter(created_at__gte=start)
    if end:
        records = records.filter(created_at__lt=end)
    counts = (
        records.values("code")
        .annotate(n=Count("id"), waiting=Count("id", filter=Q(resolved_at__isnull=True)))
        .order_by("-n", "code")
    )
    url = reverse("dashboard:quarantine", kwargs={"name": model.name})
    return [{**row, "url": f"{url}?{urlencode({'code': row['code']})}"} for row in counts]


# --- feature page ----------------------------------------------------------------------------


def feature_page_get(*, model: MLModel, feature: str, scope: Scope, now=None) -> dict:
    """One feature: its distribution against the reference, its drift over time, per segment."""
    now = now or timezone.now()
    series, served_by = serving_series(model=model, scope=scope, now=now, feature=feature)
    results = series.features[feature]
    reference = series.baseline.features.get(feature)
    current = series.totals[feature]
    suffix = plain(scope_suffix(Scope(scope.granularity, None, scope.segment)))
    page = {
        "feature": feature,
        "version": series.version,
        "versions": sorted({v for names in served_by for v in names}),
        "baseline": series.baseline,
        "kind": "numerical" if isinstance(current, NumericHistogram) else "categorical",
        "overall": feature_drift(feature, reference, current) if reference is not None else None,
        "since": since(results, series.windows, window_start(now, scope.granularity)),
    }
    page["distribution"] = distribution_chart(feature, reference, current, series.version, suffix)
    page["over_time"] = drift_time_chart(
        feature, series, served_by, scope, suffix, events=chart_events(model)
    )
    page["segments"] = segment_rows(
        model=model, feature=feature, scope=scope, series=series, now=now
    )
    return page


def distribution_chart(
    feature: str, reference, current, version: str | None, suffix: str
) -> Chart | None:
    if reference is None:
        return None
    which = f"version {version}" if version else "every version"
    title = plain(f"{feature}: reference against the span shown ({which})") + suffix
    if isinstance(current, NumericHistogram) and isinstance(reference, NumericReference):
        low, high = float(reference.edges[0]), float(reference.edges[-1])
        edges = np.linspace(low, high, DISPLAY_BINS + 1) if high > low else np.array([low, low + 1])
        labels = [f"{a:.3g} to {b:.3g}" for a, b in itertools.pairwise(edges)]
        ref = coarse_shares(reference.histogram, edges)
        cur = coarse_shares(current, edges)
        x_title = plain(f"{feature} (values beyond the reference range in the outer bars)")
    else:
        ref_counts, cur_counts = getattr(reference, "counts", {}), current.counts
        keys = sorted(
            set(ref_counts) | set(cur_counts),
            key=lambda k: (-ref_counts.get(k, 0), -cur_counts.get(k, 0), k),
        )
        keys = keys[:TOP_CATEGORIES]
        ref_total, cur_total = sum(ref_counts.values()) or 1, sum(cur_counts.values()) or 1
        labels = [plain(k) for k in keys]
        ref = np.array([ref_counts.get(k, 0) / ref_total for k in keys])
        cur = np.array([cur_counts.get(k, 0) / cur_total for k in keys])
        x_title = plain(f"{feature} (the {len(keys)} most common categories)")
    figure = distribution_figure(
        title=title,
        labels=labels,
        reference=[round(float(v), 6) for v in ref],
        current=[round(float(v), 6) for v in cur],
        x_title=x_title,
    )
    biggest = int(np.argmax(np.abs(cur - ref))) if len(labels) else 0
    summary = f"{title}: {len(labels)} bars; " + (
        f"the largest difference is at {labels[biggest]}: {ref[biggest]:.1%} of the reference, "
        f"{cur[biggest]:.1%} of the current values."
        if labels
        else "no values."
    )
    return Chart("feature-distribution", "distribution", title, figure, summary)


def drift_time_chart(
    feature: str, series: DriftSeries, served_by: list, scope: Scope, suffix: str, events=()
) -> Chart:
    results = series.features[feature]
    method = next((r for r in results if r is not None), None)
    by_p = method is not None and method.method in P_VALUE_METHODS
    values = [finite(r.p_value) if by_p and r is not None else finite_statistic(r) for r in results]
    name = method_name(method.method) if method else "drift statistic"
    y_title = f"{name} p-value (drift below the line)" if by_p else f"{name} (drift above the line)"
    # Without a picked version the page's first line lists the versions: the title stays short.
    which = f"version {series.version}" if series.version else "every version"
    title = plain(f"{feature}: {name} per {scope.granularity}, {which}") + suffix
    threshold = None
    if method is not None:
        threshold = (f"threshold {method.threshold:g}", method.threshold)
    figure = threshold_figure(
        title=title,
        x=[w.isoformat() for w in series.windows],
        y=values,
        y_title=plain(y_title),
        threshold=threshold,
        hover=[
            plain(f"{w:%Y-%m-%d %H:%M}, {versions_text(v)}: {statistic_text(r)}")
            for w, v, r in zip(series.windows, served_by, results, strict=True)
        ],
        events=events,
    )
    if by_p:
        figure["layout"]["yaxis"]["type"] = "log"
    tested = [(w, r) for w, r in zip(series.windows, results, strict=True) if r is not None]
    summary = f"{title}: " + (
        f"{sum(bool(r.drifted) for _, r in tested)} of {len(tested)} windows drifted; latest "
        f"({tested[-1][0]:%Y-%m-%d %H:%M} UTC) {statistic_text(tested[-1][1])}."
        if tested
        else "no window has values."
    )
    return Chart("feature-drift", "drift", title, figure, summary)


def segment_rows(*, model: MLModel, feature: str, scope: Scope, series: DriftSeries, now):
    """The feature's drift over the whole span in each segment (the picker's choices), from
    one read of its sketches in every segment, against the page's baseline."""
    start, end = scope.span(now)
    bins = readable(bins_load(model.pk)[feature])
    kind = SketchKind.NUMERICAL if bins.kind == "numerical" else SketchKind.CATEGORICAL
    datas: dict[str, list[bytes]] = {segment: [] for segment in model_segments(model)}
    version_ids = None
    if series.version is not None:
        version_ids = [bins_version_id(model, series.version)]
    for row in sketches_read(
        model=model, kind=kind, name=feature, start=start, end=end, version_ids=version_ids
    ):
        datas.setdefault(row.segment, []).append(bytes(row.data))
    reference = series.baseline.features.get(feature)
    rows = []
    for segment, parts in sorted(datas.items()):
        current = merge_feature(bins, parts)
        result = feature_drift(feature, reference, current) if reference is not None else None
        in_segment = Scope(scope.granularity, scope.version, segment, scope.days)
        query = {**in_segment.query(), "days": "all" if scope.days is None else scope.days}
        rows.append(
            {
                "segment": segment,
                "result": result,
                "text": statistic_text(result),
                "current": segment == scope.segment,
                "query": urlencode(query),
            }
        )
    return rows


def bins_version_id(model: MLModel, version: str) -> int:
    return ModelVersion.objects.filter(model=model, version=version).values_list("pk", flat=True)[0]
