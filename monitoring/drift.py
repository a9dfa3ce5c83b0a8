"""Drift of a version's features against its baseline, from stored histograms only.

The baseline is, in order: an explicit window (`reference_start`/`reference_end`), the
version's registered reference, or the version's first `FREEZE_DAYS` days of predictions.
Both sides are on the version's fixed bins (monitoring.bins), so every statistic is computed
by monitoring.stats from bin counts, the same code the benchmark times.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from django.db.models import Max, Min, Sum

from factory.models import MLModel, ModelVersion
from monitoring.bins import FREEZE_DAYS, UNKNOWN, Bins, bins_load, version_profile
from monitoring.models import HourlyAggregate, SketchKind
from monitoring.sketches import categorical_merge, sketches_read
from monitoring.stats.codec import histogram_decode
from monitoring.stats.drift import (
    FeatureDrift,
    categorical_feature_drift,
    dataset_drift,
    numeric_feature_drift,
)
from monitoring.stats.histograms import NumericHistogram, NumericReference, merge_histograms
from monitoring.stats.profile import CategoricalReference, FeatureReference, deciles_from_histogram

DEFAULT_CURRENT = timedelta(days=7)
HEAVY = ("reference", "lineage")  # read only when needed: a raw reference can be megabytes
HOUR = timedelta(hours=1)


class DriftError(ValueError):
    """A drift question that cannot be answered; the message says why."""


@dataclass(frozen=True)
class Baseline:
    kind: str  # training or window
    start: datetime | None
    end: datetime | None
    n: int
    features: dict[str, FeatureReference]


def version_pick(model: MLModel, version: str | None) -> ModelVersion:
    """The named version, or the one with the latest predictions."""
    if version:
        found = ModelVersion.objects.filter(model=model, version=version).defer(*HEAVY).first()
        if found is None:
            raise DriftError(f"{model.name} has no version {version!r}")
        return found
    latest = (
        HourlyAggregate.objects.filter(model=model)
        .order_by("-hour", "-version_id")
        .values_list("version_id", flat=True)
        .first()
    )
    if latest is None:
        raise DriftError(f"{model.name} has no predictions yet")
    return ModelVersion.objects.defer(*HEAVY).get(pk=latest)


def predictions_count(version: ModelVersion, start, end, segment: str | None = None) -> int:
    rows = HourlyAggregate.objects.filter(version=version)
    if start:
        rows = rows.filter(hour__gte=start)
    if end:
        rows = rows.filter(hour__lt=end)
    if segment is not None:
        rows = rows.filter(segment=segment)
    return rows.aggregate(n=Sum("predictions"))["n"] or 0


def window_features(
    *, version: ModelVersion, bins: dict[str, Bins], start, end, segment: str | None
) -> dict[str, NumericHistogram | CategoricalReference]:
    """Every feature's merged histogram (or category counts) over [start, end)."""
    merged: dict[str, NumericHistogram | CategoricalReference] = {}
    for kind in (SketchKind.NUMERICAL, SketchKind.CATEGORICAL):
        rows = sketches_read_all(version, kind, start, end, segment)
        for name, feature in bins.items():
            if feature.kind == UNKNOWN:
                feature = Bins(name, "categorical", feature.edges)
            if kind != (SketchKind.NUMERICAL if feature.kind == "numerical" else "categorical"):
                continue
            datas = [row.data for row in rows if row.name == name]
            merged[name] = merge_feature(feature, datas)
    return merged


def sketches_read_all(version, kind, start, end, segment):
    """Sketch rows of every feature of one kind (one query)."""
    return sketches_read(
        model=version.model, kind=kind, name=None, start=start, end=end,
        version_ids=[version.pk], segment=segment,
    )  # fmt: skip


def merge_feature(bins: Bins, datas: list[bytes]) -> NumericHistogram | CategoricalReference:
    if bins.kind == "numerical":
        histograms = [histogram_decode(data, bins.edges) for data in datas]
        if not histograms:
            return merge_histograms([_empty(bins)])
        return merge_histograms(histograms)
    counts, missing = categorical_merge(datas)
    return CategoricalReference(counts, missing)


def _empty(bins: Bins) -> NumericHistogram:
    import numpy as np

    size = bins.edges.size
    return NumericHistogram(
        bins.edges, np.zeros(size + 1, np.int64), np.zeros(size, np.int64), np.zeros(size + 1), 0.0
    )


def baseline_resolve(
    *,
    model: MLModel,
    version: ModelVersion,
    bins: dict[str, Bins],
    reference_start: datetime | None = None,
    reference_end: datetime | None = None,
) -> Baseline:
    if reference_start or reference_end:
        if not (reference_start and reference_end):
            raise DriftError("give both reference_start and reference_end, or neither")
        if reference_start >= reference_end:
            raise DriftError("reference_start must be before reference_end")
        return window_baseline(version, bins, reference_start, reference_end)
    if ModelVersion.objects.filter(pk=version.pk, reference__isnull=False).exists():
        stored = {name: b.reference for name, b in bins.items() if b.reference is not None}
        if stored:  # frozen from this reference: no JSON to parse
            rows = max(b.reference_rows for b in bins.values())
            return Baseline("training", None, None, rows, stored)
        profile = version_profile(ModelVersion.objects.get(pk=version.pk))
        if profile is not None:
            return Baseline("training", None, None, profile.rows, dict(profile.features))
    first = HourlyAggregate.objects.filter(version=version).aggregate(t=Min("hour"))["t"]
    if first is None:
        raise DriftError(f"version {version.version} has no predictions and no reference")
    return window_baseline(version, bins, first, first + timedelta(days=FREEZE_DAYS))


def window_baseline(version, bins, start, end) -> Baseline:
    features = {}
    for name, merged in window_features(
        version=version, bins=bins, start=start, end=end, segment=None
    ).items():
        if isinstance(merged, NumericHistogram):
            features[name] = NumericReference(merged, deciles_from_histogram(merged))
        else:
            features[name] = merged
    return Baseline("window", start, end, predictions_count(version, start, end), features)


def feature_drift(name: str, reference, current) -> FeatureDrift | None:
    """One feature's test; None when the two sides are not on the same bins."""
    if isinstance(current, NumericHistogram):
        if not isinstance(reference, NumericReference):
            return None
        if reference.edges.shape != current.edges.shape or (reference.edges != current.edges).any():
            return None  # a new reference whose hours are not re-aggregated yet
        return numeric_feature_drift(name=name, reference=reference, current=current)
    if not isinstance(reference, CategoricalReference):
        return None
    return categorical_feature_drift(
        name=name,
        ref_counts=reference.counts,
        cur_counts=current.counts,
        missing_cur=current.missing,
    )


def current_window(version: ModelVersion, start, end) -> tuple[datetime, datetime]:
    if start and end:
        if start >= end:
            raise DriftError("start must be before end")
        return start, end
    last = HourlyAggregate.objects.filter(version=version).aggregate(t=Max("hour"))["t"]
    if last is None:
        raise DriftError(f"version {version.version} has no predictions")
    end = end or last + HOUR
    return start or end - DEFAULT_CURRENT, end


def drift_report(
    *,
    model: MLModel,
    start: datetime | None = None,
    end: datetime | None = None,
    reference_start: datetime | None = None,
    reference_end: datetime | None = None,
    version: str | None = None,
    segment: str | None = None,
) -> dict:
    """The drift endpoint's answer (API.md, drift)."""
    chosen = version_pick(model, version)
    bins = bins_load(chosen.pk)
    baseline = baseline_resolve(
        model=model, version=chosen, bins=bins,
        reference_start=reference_start, reference_end=reference_end,
    )  # fmt: skip
    start, end = current_window(chosen, start, end)
    current = window_features(version=chosen, bins=bins, start=start, end=end, segment=segment)
    results = []
    for name in sorted(current):
        result = feature_drift(name, baseline.features.get(name), current[name])
        results.append((name, current[name], result))
    tested = [r for _, _, r in results if r is not None]
    dataset = dataset_drift(tested)
    return {
        "model": model.name,
        "version": chosen.version,
        "reference": {
            "kind": baseline.kind, "start": baseline.start, "end": baseline.end, "n": baseline.n,
        },
        "current": {
            "start": start, "end": end, "n": predictions_count(chosen, start, end, segment),
        },
        "features": [feature_json(name, cur, r) for name, cur, r in results],
        "share_drifted": dataset.share_drifted,
        "dataset_drifted": dataset.drifted,
    }  # fmt: skip


def feature_json(name: str, current, result: FeatureDrift | None) -> dict:
    kind = "numerical" if isinstance(current, NumericHistogram) else "categorical"
    missing = current.missing
    present = current.n
    body = {
        "name": name, "kind": kind, "method": None, "statistic": None, "p_value": None,
        "threshold": None, "drifted": None, "psi": None, "n_reference": 0, "n_current": present,
        "missing_current": missing, "unseen_share": None, "max_error": None,
        "note": "no reference for this feature" if result is None else None,
    }  # fmt: skip
    if result is not None:
        data = asdict(result)
        body.update({k: data[k] for k in ("method", "statistic", "p_value", "threshold")})
        body.update(
            drifted=result.drifted, psi=result.psi, n_reference=result.n_ref,
            unseen_share=result.unseen_share, max_error=result.max_error,
        )  # fmt: skip
        if result.statistic is None or math.isnan(result.statistic):
            body["note"] = "no values on one side"
        elif math.isinf(result.statistic):
            body["statistic"] = None  # JSON has no infinity
            body["note"] = "categories the reference never had: the statistic is infinite"
    for key in ("statistic", "p_value", "psi", "unseen_share", "max_error"):
        if isinstance(body[key], float) and math.isnan(body[key]):
            body[key] = None  # JSON has no NaN: a window with only missing values
    return body


# --- drift over time (the model page's heatmap, the feature page) ----------------------------


@dataclass(frozen=True)
class DriftSeries:
    """Each feature's test per window against the version's baseline, as `drift_report` computes
    it for one window; None where the window has no values. `totals` merge the whole span."""

    version: str
    baseline: Baseline
    windows: list[datetime]
    features: dict[str, list[FeatureDrift | None]]
    shares: list[float | None]  # the share of tested features that drifted, per window
    totals: dict[str, NumericHistogram | CategoricalReference]


def drift_series(
    *,
    model: MLModel,
    granularity: str,
    start: datetime | None = None,
    end: datetime | None = None,
    version: str | None = None,
    segment: str | None = None,
    feature: str | None = None,
) -> DriftSeries:
    """Drift per window of every feature (or of one), from one read of the stored sketches."""
    from monitoring.metrics import WINDOW, window_start

    chosen = version_pick(model, version)
    bins = {n: b for n, b in bins_load(chosen.pk).items() if feature in (None, n)}
    if feature is not None and not bins:
        raise DriftError(f"version {chosen.version} has no feature {feature!r}")
    baseline = baseline_resolve(model=model, version=chosen, bins=bins)
    grouped: dict[tuple[str, datetime], list[bytes]] = {}
    for kind in (SketchKind.NUMERICAL, SketchKind.CATEGORICAL):
        for row in sketches_read(
            model=model, kind=kind, name=feature, start=start, end=end,
            version_ids=[chosen.pk], segment=segment, hourly=granularity == "hour",
        ):  # fmt: skip
            grouped.setdefault((row.name, window_start(row.start, granularity)), []).append(
                bytes(row.data)
            )
    starts = [moment for _, moment in grouped]
    first = start or min(starts, default=None)
    last = (end - timedelta(microseconds=1)) if end else max(starts, default=None)
    windows = []
    if first is not None and last is not None:
        moment = window_start(first, granularity)
        while moment <= last:
            windows.append(moment)
            moment += WINDOW[granularity]
    features, totals = {}, {}
    for name in sorted(bins):
        feature_bins = bins[name]
        if feature_bins.kind == UNKNOWN:
            feature_bins = Bins(name, "categorical", feature_bins.edges)
        reference = baseline.features.get(name)
        merged = {w: merge_feature(feature_bins, grouped[(name, w)]) for w in windows
                  if (name, w) in grouped}  # fmt: skip
        features[name] = [
            feature_drift(name, reference, merged[w]) if w in merged else None for w in windows
        ]
        totals[name] = parts_sum(feature_bins, list(merged.values()))
    shares = [
        dataset_drift([r[i] for r in features.values() if r[i] is not None]).share_drifted
        for i in range(len(windows))
    ]
    return DriftSeries(chosen.version, baseline, windows, features, shares, totals)


def parts_sum(bins: Bins, parts: list) -> NumericHistogram | CategoricalReference:
    """Windows' merged histograms (or category counts) added up into one."""
    if bins.kind == "numerical":
        return merge_histograms(parts) if parts else _empty(bins)
    counts: dict[str, int] = {}
    for part in parts:
        for key, count in part.counts.items():
            counts[key] = counts.get(key, 0) + count
    return CategoricalReference(counts, sum(part.missing for part in parts))
