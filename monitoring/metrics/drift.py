"""Drift of a version's features against its baseline, from stored histograms only.

The baseline is, in order: an explicit window (`reference_start`/`reference_end`), the
version's registered reference, or the version's first `FREEZE_DAYS` days of predictions.
Both sides are on the version's fixed bins (monitoring.pipeline.bins), so every statistic is
computed by monitoring.stats from bin counts, the same code the benchmark times.
"""

from __future__ import annotations

import hashlib
import math
import pickle
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.core.cache import cache
from django.db import transaction
from django.db.models import Max, Min, Sum

from common.time import HOUR
from factory.models import MLModel, ModelVersion
from factory.services import audit_record
from monitoring.metrics.registry import output_metrics
from monitoring.metrics.sketches import sketches_read
from monitoring.metrics.windows import window_start, windows_between
from monitoring.models import HourlyAggregate, SketchKind
from monitoring.pipeline.bins import FREEZE_DAYS, UNKNOWN, Bins, bins_load, version_profile
from monitoring.pipeline.sketches import categorical_merge
from monitoring.stats.codec import histogram_decode
from monitoring.stats.compare import bootstrap_variance
from monitoring.stats.drift import (
    NO_SETTINGS,
    DriftSettings,
    FeatureDrift,
    categorical_feature_drift,
    dataset_drift,
    drift_settings_parse,
    numeric_feature_drift,
)
from monitoring.stats.histograms import (
    NumericHistogram,
    NumericReference,
    counts_resample,
    histogram_resample,
    merge_histograms,
)
from monitoring.stats.profile import (
    CategoricalReference,
    FeatureReference,
    deciles_from_histogram,
)
from monitoring.stats.quality import out_of_range

DEFAULT_CURRENT = timedelta(days=7)
HEAVY = ("reference", "lineage")  # read only when needed: a raw reference can be megabytes


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
        model=version.model,
        kind=kind,
        name=None,
        start=start,
        end=end,
        version_ids=[version.pk],
        segment=segment,
    )


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


def drift_settings_set(*, model: MLModel, settings: dict, actor: str = "") -> MLModel:
    """Store a model's drift overrides (already validated), audited with before and after."""

    before = model.drift_settings
    model.drift_settings = settings
    with transaction.atomic():
        model.save(update_fields=["drift_settings"])
        audit_record(
            model=model,
            actor=actor,
            action="model.drift_settings",
            subject=model.name,
            before=before,
            after=settings,
        )
    return model


def model_drift_settings(model: MLModel) -> DriftSettings:
    """The model's stored overrides (validated when they were set)."""
    return drift_settings_parse(model.drift_settings) if model.drift_settings else NO_SETTINGS


def feature_drift(
    name: str,
    reference,
    current,
    *,
    settings: DriftSettings = NO_SETTINGS,
    with_p_value: bool = True,
) -> FeatureDrift | None:
    """One feature's test, with the model's override if any; None when the two sides are not
    on the same bins."""
    if isinstance(current, NumericHistogram):
        if not isinstance(reference, NumericReference):
            return None
        if reference.edges.shape != current.edges.shape or (reference.edges != current.edges).any():
            return None  # a new reference whose hours are not re-aggregated yet
        override = settings.override_for(name, "numerical")
        return numeric_feature_drift(
            name=name,
            reference=reference,
            current=current,
            with_p_value=with_p_value,
            **_chosen(override),
        )
    if not isinstance(reference, CategoricalReference):
        return None
    override = settings.override_for(name, "categorical")
    return categorical_feature_drift(
        name=name,
        ref_counts=reference.counts,
        cur_counts=current.counts,
        missing_cur=current.missing,
        **_chosen(override),
    )


def _chosen(override) -> dict:
    if override is None:
        return {"method": None, "threshold": None}
    return {"method": override.method, "threshold": override.threshold}


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


def drift_side(
    *,
    model: MLModel,
    feature: str,
    version: str,
    start: datetime | None,
    end: datetime | None,
    segment: str | None,
) -> tuple[FeatureDrift | None, float | None]:
    """One version's drift test of a feature over [start, end) and the bootstrap variance of
    its statistic (the current window's bin counts resampled, the baseline held fixed)."""
    chosen = version_pick(model, version)
    bins = bins_load(chosen.pk)
    if feature not in bins:
        raise DriftError(f"version {chosen.version} has no feature {feature!r}")
    baseline = baseline_resolve(model=model, version=chosen, bins=bins)
    current = window_features(
        version=chosen, bins={feature: bins[feature]}, start=start, end=end, segment=segment
    )[feature]
    reference = baseline.features.get(feature)
    settings = model_drift_settings(model)
    result = feature_drift(feature, reference, current, settings=settings)
    if result is None or result.statistic is None or not math.isfinite(result.statistic):
        return result, None

    def replicate(rng) -> float | None:
        resampled = (
            histogram_resample(current, rng)
            if isinstance(current, NumericHistogram)
            else CategoricalReference(counts_resample(current.counts, rng), current.missing)
        )
        again = feature_drift(feature, reference, resampled, settings=settings, with_p_value=False)
        return None if again is None else again.statistic

    return result, bootstrap_variance(replicate)


# --- model outputs: score and prediction ---

MULTICLASS_NOTE = (
    "class counts of all predictions are not aggregated (only those with outcomes, in the "
    "confusion counts), so multiclass prediction drift is not computed"
)
OUTPUT_METRICS = output_metrics()


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
    totals: dict[str, NumericHistogram | CategoricalReference]  # only for a single feature
    summaries: dict[str, SpanSummary]


@dataclass(frozen=True)
class SpanSummary:
    """What the data-quality section needs of a feature's windows, without their histograms:
    values outside the baseline's range (numerical) or the category counts (categorical)."""

    kind: str
    n: int = 0
    below: int = 0
    above: int = 0
    ranged: bool = False  # the baseline's bins match, so below/above mean something
    counts: dict[str, int] = field(default_factory=dict)

    def __add__(self, other: SpanSummary) -> SpanSummary:
        counts = dict(self.counts)
        for key, count in other.counts.items():
            counts[key] = counts.get(key, 0) + count
        return SpanSummary(
            self.kind,
            self.n + other.n,
            self.below + other.below,
            self.above + other.above,
            self.ranged or other.ranged,
            counts,
        )


def span_summary(reference, current: NumericHistogram | CategoricalReference) -> SpanSummary:
    if isinstance(current, NumericHistogram):
        if (
            not isinstance(reference, NumericReference)
            or reference.edges.shape != current.edges.shape
        ):
            return SpanSummary("numerical", current.n)
        below, above = out_of_range(reference.histogram, current)
        return SpanSummary("numerical", current.n, below, above, ranged=True)
    return SpanSummary("categorical", current.n, counts=dict(current.counts))


CELL_CACHE_S = 3600


def window_cells(
    *, name: str, bins: Bins, reference, parts: dict[datetime, list[bytes]], settings, scope: str
) -> dict[datetime, tuple[FeatureDrift | None, SpanSummary]]:
    """Each window's test of a feature and its summary, cached under a digest of the window's
    stored sketches, the baseline and the settings: once a window stops changing it is never
    tested again, so new data costs only the windows it touched."""
    keys = {}
    for window, datas in parts.items():
        digest = hashlib.sha256(repr((name, scope, window.isoformat())).encode())
        for data in sorted(datas):
            digest.update(data)
        keys[window] = "canary:drift-cell:" + digest.hexdigest()
    found = cache.get_many(list(keys.values()))
    cells, missing = {}, {}
    for window, key in keys.items():
        if key in found:
            cells[window] = found[key]
            continue
        merged = merge_feature(bins, parts[window])
        cells[window] = (
            feature_drift(name, reference, merged, settings=settings),
            span_summary(reference, merged),
        )
        missing[key] = cells[window]
    if missing:
        cache.set_many(missing, CELL_CACHE_S)
    return cells


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

    chosen = version_pick(model, version)
    bins = {n: b for n, b in bins_load(chosen.pk).items() if feature in (None, n)}
    if feature is not None and not bins:
        raise DriftError(f"version {chosen.version} has no feature {feature!r}")
    baseline = baseline_resolve(model=model, version=chosen, bins=bins)
    settings = model_drift_settings(model)
    grouped: dict[tuple[str, datetime], list[bytes]] = {}
    for kind in (SketchKind.NUMERICAL, SketchKind.CATEGORICAL):
        for row in sketches_read(
            model=model,
            kind=kind,
            name=feature,
            start=start,
            end=end,
            version_ids=[chosen.pk],
            segment=segment,
            hourly=granularity == "hour",
        ):
            grouped.setdefault((row.name, window_start(row.start, granularity)), []).append(
                bytes(row.data)
            )
    starts = [moment for _, moment in grouped]
    first = start or min(starts, default=None)
    last = (end - timedelta(microseconds=1)) if end else max(starts, default=None)
    windows = []
    if first is not None and last is not None:
        windows = list(windows_between(first, last, granularity))
    features, totals, summaries = {}, {}, {}
    for name in sorted(bins):
        feature_bins = bins[name]
        if feature_bins.kind == UNKNOWN:
            feature_bins = Bins(name, "categorical", feature_bins.edges)
        reference = baseline.features.get(name)
        parts = {w: grouped[(name, w)] for w in windows if (name, w) in grouped}
        cells = window_cells(
            name=name,
            bins=feature_bins,
            reference=reference,
            parts=parts,
            settings=settings,
            scope=hashlib.sha256(
                pickle.dumps((chosen.pk, granularity, feature_bins, reference, settings))
            ).hexdigest(),
        )
        features[name] = [cells[w][0] if w in cells else None for w in windows]
        summaries[name] = sum(
            (summary for _, summary in cells.values()), SpanSummary(feature_bins.kind)
        )
        if feature is not None:  # the feature page draws the whole span's distribution
            totals[name] = merge_feature(
                feature_bins, [d for datas in parts.values() for d in datas]
            )
    shares = [
        dataset_drift(
            [r[i] for r in features.values() if r[i] is not None],
            share_threshold=settings.share_threshold,
        ).share_drifted
        for i in range(len(windows))
    ]
    return DriftSeries(chosen.version, baseline, windows, features, shares, totals, summaries)
