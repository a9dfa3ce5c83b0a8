"""Drift of a version's features against its baseline, from stored histograms only.

The baseline is, in order: an explicit window (`reference_start`/`reference_end`), the
version's registered reference, or the version's first `FREEZE_DAYS` days of predictions.
Both sides are on the version's fixed bins (monitoring.bins), so every statistic is computed
by monitoring.stats from bin counts, the same code the benchmark times.
"""

from __future__ import annotations

import hashlib
import math
import pickle
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from django.core.cache import cache
from django.db import transaction
from django.db.models import Max, Min, Sum

from factory.models import MLModel, ModelVersion
from monitoring.bins import FREEZE_DAYS, UNKNOWN, Bins, bins_load, version_profile
from monitoring.models import HourlyAggregate, SketchKind
from monitoring.sketches import categorical_merge, sketches_read
from monitoring.stats.codec import histogram_decode
from monitoring.stats.compare import bootstrap_variance
from monitoring.stats.drift import (
    NO_SETTINGS,
    DriftSettings,
    FeatureDrift,
    categorical_feature_drift,
    dataset_drift,
    drift_settings_parse,
    mean_shift_drift,
    numeric_feature_drift,
)
from monitoring.stats.histograms import (
    NumericHistogram,
    NumericReference,
    counts_resample,
    histogram_resample,
    merge_histograms,
)
from monitoring.stats.moments import Moments
from monitoring.stats.profile import (
    CategoricalReference,
    FeatureReference,
    ProfileError,
    category_key,
    deciles_from_histogram,
    profile_outputs,
)
from monitoring.stats.quality import out_of_range

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


def drift_settings_set(*, model: MLModel, settings: dict, actor: str = "") -> MLModel:
    """Store a model's drift overrides (already validated), audited with before and after."""
    from factory.services import audit_record

    before = model.drift_settings
    model.drift_settings = settings
    with transaction.atomic():
        model.save(update_fields=["drift_settings"])
        audit_record(
            model=model, actor=actor, action="model.drift_settings", subject=model.name,
            before=before, after=settings,
        )  # fmt: skip
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
            name=name, reference=reference, current=current, with_p_value=with_p_value,
            **_chosen(override),
        )  # fmt: skip
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
    settings = model_drift_settings(model)
    results = []
    for name in sorted(current):
        result = feature_drift(name, baseline.features.get(name), current[name], settings=settings)
        results.append((name, current[name], result))
    tested = [r for _, _, r in results if r is not None]
    dataset = dataset_drift(tested, share_threshold=settings.share_threshold)
    return {
        "model": model.name,
        "version": chosen.version,
        "reference": {
            "kind": baseline.kind, "start": baseline.start, "end": baseline.end, "n": baseline.n,
        },
        "current": {
            "start": start, "end": end, "n": predictions_count(chosen, start, end, segment),
        },
        "features": [feature_json(name, cur, r, settings) for name, cur, r in results],
        "outputs": outputs_drift(
            model=model, version=chosen, baseline=baseline, window=(start, end, segment)
        ),
        "share_drifted": dataset.share_drifted,
        "share_threshold": dataset.share_threshold,
        "dataset_drifted": dataset.drifted,
    }  # fmt: skip


def feature_json(
    name: str, current, result: FeatureDrift | None, settings: DriftSettings = NO_SETTINGS
) -> dict:
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
        body["note"] = settings.misfit(name, kind)
        if result.statistic is None or math.isnan(result.statistic):
            body["note"] = "no values on one side"
        elif math.isinf(result.statistic):
            body["statistic"] = None  # JSON has no infinity
            body["note"] = "categories the reference never had: the statistic is infinite"
    return nan_to_none(body)


def nan_to_none(body: dict) -> dict:
    """JSON has no NaN: a window of only missing values, or a test on a single class."""
    for key in ("statistic", "p_value", "psi", "unseen_share", "max_error"):
        if isinstance(body[key], float) and math.isnan(body[key]):
            body[key] = None
    return body


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
OUTPUT_METRICS = {"score": "mean_score", "prediction": "mean_prediction"}


def outputs_drift(*, model: MLModel, version: ModelVersion, baseline: Baseline, window) -> list:
    """Score and prediction drift against the reference's ``score``/``prediction`` entries (or
    the baseline window's), from the hourly sums the metrics use.

    Binary: the positive share of predictions (the categorical default test on positive/other,
    exact) and the score's mean shift; regression: the prediction's mean shift; multiclass: a
    note saying why not.
    """
    if model.task == "multiclass_classification":
        return [_output_json("prediction", "categorical", None, MULTICLASS_NOTE)]
    names = ("score", "prediction") if model.task == "binary_classification" else ("prediction",)
    start, end, segment = window
    references = _output_references(model, version, baseline, names)
    out = []
    for name in names:
        reference = references.get(name)
        if model.task == "binary_classification" and name == "prediction":
            current = _window_measure(model, version, "positive_rate", start, end, segment)
            k, n = current.successes or 0, current.n
            out.append(_positive_share_drift(model, reference, k, n))
            continue
        current = _window_measure(model, version, OUTPUT_METRICS[name], start, end, segment)
        out.append(_mean_shift_json(name, reference, current.moments))
    return out


def _window_measure(model, version, metric, start, end, segment):
    from monitoring.metrics import metric_window

    return metric_window(
        model=model, metric=metric, start=start, end=end, version=version.version,
        segment=segment,
    )  # fmt: skip


def _output_references(model, version, baseline: Baseline, names) -> dict:
    """Per output: Moments (numbers) or (positives, n) for a binary prediction; absent if the
    baseline has no such entry."""
    binary = model.task == "binary_classification"
    if baseline.kind == "window":
        refs: dict = {}
        for name in names:
            metric = "positive_rate" if binary and name == "prediction" else OUTPUT_METRICS[name]
            window = _window_measure(model, version, metric, baseline.start, baseline.end, None)
            refs[name] = (
                (window.successes or 0, window.n) if metric == "positive_rate" else (window.moments)
            )
        return refs
    data = ModelVersion.objects.filter(pk=version.pk).values_list("reference", flat=True).first()
    try:
        parsed = profile_outputs(
            data or {}, prediction_kind="categorical" if binary else "numerical"
        )
    except ProfileError:
        return {}
    refs = {}
    for name, reference in parsed.items():
        if isinstance(reference, NumericReference):
            histogram = reference.histogram
            refs[name] = Moments(histogram.n, float(histogram.sums.sum()), histogram.sum_sq)
        elif binary and name == "prediction":
            positive = category_key(model.positive_class)
            refs[name] = (reference.counts.get(positive, 0), reference.n)
    return refs


def _positive_share_drift(model, reference, k: int, n: int) -> dict:
    if not isinstance(reference, tuple):
        return _output_json("prediction", "categorical", None, "the reference has no predictions")
    k_ref, n_ref = reference
    if n == 0:
        return _output_json("prediction", "categorical", None, "no predictions in the window")
    positive = category_key(model.positive_class)
    result = categorical_feature_drift(
        name="prediction",
        ref_counts={positive: k_ref, "other": n_ref - k_ref},
        cur_counts={positive: k, "other": n - k},
    )
    return _output_json("prediction", "categorical", result, None)


def _mean_shift_json(name: str, reference, current: Moments | None) -> dict:
    if not isinstance(reference, Moments) or reference.n == 0:
        return _output_json(name, "numerical", None, f"the reference has no {name}")
    result = mean_shift_drift(name=name, reference=reference, current=current or Moments())
    note = "no values in the window" if result.statistic is None else None
    return _output_json(name, "numerical", result, note)


def _output_json(name: str, kind: str, result: FeatureDrift | None, note: str | None) -> dict:
    body = {
        "name": name, "kind": kind, "method": None, "statistic": None, "p_value": None,
        "threshold": None, "drifted": None, "psi": None, "n_reference": 0, "n_current": 0,
        "missing_current": 0, "unseen_share": None, "max_error": None, "note": note,
    }  # fmt: skip
    if result is not None:
        body.update(
            method=result.method, statistic=result.statistic, p_value=result.p_value,
            threshold=result.threshold, drifted=result.drifted, psi=result.psi,
            n_reference=result.n_ref, n_current=result.n_cur,
        )  # fmt: skip
    return nan_to_none(body)


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
            self.kind, self.n + other.n, self.below + other.below, self.above + other.above,
            self.ranged or other.ranged, counts,
        )  # fmt: skip


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
    from monitoring.metrics import WINDOW, window_start

    chosen = version_pick(model, version)
    bins = {n: b for n, b in bins_load(chosen.pk).items() if feature in (None, n)}
    if feature is not None and not bins:
        raise DriftError(f"version {chosen.version} has no feature {feature!r}")
    baseline = baseline_resolve(model=model, version=chosen, bins=bins)
    settings = model_drift_settings(model)
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
    features, totals, summaries = {}, {}, {}
    for name in sorted(bins):
        feature_bins = bins[name]
        if feature_bins.kind == UNKNOWN:
            feature_bins = Bins(name, "categorical", feature_bins.edges)
        reference = baseline.features.get(name)
        parts = {w: grouped[(name, w)] for w in windows if (name, w) in grouped}
        cells = window_cells(
            name=name, bins=feature_bins, reference=reference, parts=parts, settings=settings,
            scope=hashlib.sha256(
                pickle.dumps((chosen.pk, granularity, feature_bins, reference, settings))
            ).hexdigest(),
        )  # fmt: skip
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
