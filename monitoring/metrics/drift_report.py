"""The drift answer of the API and the version page: every feature and output of a window
against its baseline, for one version or for the model's whole traffic."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from factory.models import MLModel, ModelVersion
from monitoring.metrics.drift import (
    MULTICLASS_NOTE,
    OUTPUT_METRICS,
    Baseline,
    DriftError,
    DriftScope,
    baseline_resolve,
    current_window,
    drift_scope,
    feature_drift,
    model_drift_settings,
    predictions_count,
    window_features,
)
from monitoring.metrics.series import metric_window
from monitoring.pipeline.bins import bins_load
from monitoring.stats.drift import (
    NO_SETTINGS,
    DriftSettings,
    FeatureDrift,
    categorical_feature_drift,
    dataset_drift,
    mean_shift_drift,
)
from monitoring.stats.histograms import NumericHistogram, NumericReference
from monitoring.stats.moments import Moments
from monitoring.stats.profile import ProfileError, category_key, profile_outputs


@dataclass(frozen=True)
class ReferenceWindow:
    """What the current window is set against: a version's registered reference
    (``training``, no start or end; ``version`` says whose) or a baseline window."""

    kind: str
    start: datetime | None
    end: datetime | None
    n: int
    version: str | None = None


@dataclass(frozen=True)
class CurrentWindow:
    start: datetime
    end: datetime
    n: int


@dataclass(frozen=True)
class ColumnDrift:
    """One feature's or output's test against its reference. The numbers are the test's own:
    NaN where a side has no values, infinite for a chi-square on a category the reference never
    had; ``note`` says why a number is missing or odd."""

    name: str
    kind: str  # numerical or categorical
    method: str | None = None
    statistic: float | None = None
    p_value: float | None = None
    threshold: float | None = None
    drifted: bool | None = None
    psi: float | None = None
    n_reference: int = 0
    n_current: int = 0
    missing_current: int = 0
    unseen_share: float | None = None
    max_error: float | None = None
    note: str | None = None


@dataclass(frozen=True)
class DriftReport:
    """A version's (or, ``version`` None, every version's) features and outputs in a window
    against the baseline (API.md, drift)."""

    model: str
    version: str | None
    versions: list[str]  # the versions looked at
    reference: ReferenceWindow
    current: CurrentWindow
    features: list[ColumnDrift]
    outputs: list[ColumnDrift]
    share_drifted: float | None
    share_threshold: float
    dataset_drifted: bool | None


def drift_report(
    *,
    model: MLModel,
    start: datetime | None = None,
    end: datetime | None = None,
    reference_start: datetime | None = None,
    reference_end: datetime | None = None,
    version: str | None = None,
    segment: str | None = None,
) -> DriftReport:
    scope = drift_scope(model, version)
    bins = bins_load(model.pk)
    start, end = current_window(scope, start, end)
    baseline = baseline_resolve(
        scope=scope,
        bins=bins,
        current=(start, end, segment),
        reference_start=reference_start,
        reference_end=reference_end,
    )
    current_n = predictions_count(scope, start, end, segment)
    sides_check(scope, baseline, (start, end, segment), current_n)
    current = window_features(scope=scope, bins=bins, start=start, end=end, segment=segment)
    settings = model_drift_settings(model)
    results = []
    for name in sorted(current):
        result = feature_drift(name, baseline.features.get(name), current[name], settings=settings)
        results.append((name, current[name], result))
    tested = [r for _, _, r in results if r is not None]
    dataset = dataset_drift(tested, share_threshold=settings.share_threshold)
    return DriftReport(
        model=model.name,
        version=scope.label,
        versions=[v.version for v in scope.versions],
        reference=ReferenceWindow(
            baseline.kind, baseline.start, baseline.end, baseline.n, baseline.version
        ),
        current=CurrentWindow(start, end, current_n),
        features=[column_drift(name, cur, r, settings) for name, cur, r in results],
        outputs=outputs_drift(
            model=model, scope=scope, baseline=baseline, window=(start, end, segment)
        ),
        share_drifted=dataset.share_drifted,
        share_threshold=dataset.share_threshold,
        dataset_drifted=dataset.drifted,
    )


def sides_check(scope: DriftScope, baseline: Baseline, window: tuple, current_n: int):
    """DriftError naming the side without a single prediction (API.md: a 400, never a 200
    of null statistics)."""
    start, end, segment = window
    where = "" if segment is None else f" in segment {segment!r}"
    looked_at = f"(versions looked at: {scope.looked_at()})"
    if baseline.n == 0:
        raise DriftError(
            f"the reference window {baseline.start.isoformat()} to {baseline.end.isoformat()} "
            f"holds no predictions {looked_at}"
        )
    if current_n == 0:
        raise DriftError(
            f"the current window {start.isoformat()} to {end.isoformat()}{where} holds no "
            f"predictions {looked_at}"
        )


def column_drift(
    name: str, current, result: FeatureDrift | None, settings: DriftSettings = NO_SETTINGS
) -> ColumnDrift:
    """One feature's row: its current counts, and its test where the baseline has it."""
    kind = "numerical" if isinstance(current, NumericHistogram) else "categorical"
    if result is None:
        return ColumnDrift(
            name,
            kind,
            n_current=current.n,
            missing_current=current.missing,
            note="no reference for this feature",
        )
    return tested(
        name,
        kind,
        result,
        n_current=current.n,
        missing_current=current.missing,
        unseen_share=result.unseen_share,
        max_error=result.max_error,
        note=feature_note(name, kind, result, settings),
    )


def tested(name: str, kind: str, result: FeatureDrift, **more) -> ColumnDrift:
    """A column's row with its test's numbers, and whatever else the caller knows of it."""
    return ColumnDrift(
        name,
        kind,
        method=result.method,
        statistic=result.statistic,
        p_value=result.p_value,
        threshold=result.threshold,
        drifted=result.drifted,
        psi=result.psi,
        n_reference=result.n_ref,
        **more,
    )


def feature_note(name: str, kind: str, result: FeatureDrift, settings: DriftSettings) -> str | None:
    """Why a statistic is missing or infinite, else whether the override fits the feature."""
    if result.statistic is None or math.isnan(result.statistic):
        return "no values on one side"
    if math.isinf(result.statistic):
        return "categories the reference never had: the statistic is infinite"
    return settings.misfit(name, kind)


def outputs_drift(
    *, model: MLModel, scope: DriftScope, baseline: Baseline, window
) -> list[ColumnDrift]:
    """Score and prediction drift against the reference's ``score``/``prediction`` entries (or
    the baseline window's), from the hourly sums the metrics use.

    Binary: the positive share of predictions (the categorical default test on positive/other,
    exact) and the score's mean shift; regression: the prediction's mean shift; multiclass: a
    note saying why not.
    """
    if model.task == "multiclass_classification":
        return [_output_drift("prediction", "categorical", None, MULTICLASS_NOTE)]
    names = ("score", "prediction") if model.task == "binary_classification" else ("prediction",)
    start, end, segment = window
    references = _output_references(model, scope, baseline, names)
    out = []
    for name in names:
        reference = references.get(name)
        if model.task == "binary_classification" and name == "prediction":
            current = _window_measure(model, scope, "positive_rate", start, end, segment)
            k, n = current.successes or 0, current.n
            out.append(_positive_share_drift(model, reference, k, n))
            continue
        current = _window_measure(model, scope, OUTPUT_METRICS[name], start, end, segment)
        out.append(_mean_shift_drift(name, reference, current.moments))
    return out


def _window_measure(model, scope: DriftScope, metric, start, end, segment):
    return metric_window(
        model=model,
        metric=metric,
        start=start,
        end=end,
        version=scope.label,
        segment=segment,
    )


def _output_references(model, scope: DriftScope, baseline: Baseline, names) -> dict:
    """Per output: Moments (numbers) or (positives, n) for a binary prediction; absent if the
    baseline has no such entry."""
    binary = model.task == "binary_classification"
    if baseline.kind == "window":
        refs: dict = {}
        for name in names:
            metric = "positive_rate" if binary and name == "prediction" else OUTPUT_METRICS[name]
            window = _window_measure(model, scope, metric, baseline.start, baseline.end, None)
            refs[name] = (
                (window.successes or 0, window.n) if metric == "positive_rate" else (window.moments)
            )
        return refs
    owner = ModelVersion.objects.filter(model=model, version=baseline.version)
    data = owner.values_list("reference", flat=True).first()
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


def _positive_share_drift(model, reference, k: int, n: int) -> ColumnDrift:
    if not isinstance(reference, tuple):
        return _output_drift("prediction", "categorical", None, "the reference has no predictions")
    k_ref, n_ref = reference
    if n == 0:
        return _output_drift("prediction", "categorical", None, "no predictions in the window")
    positive = category_key(model.positive_class)
    result = categorical_feature_drift(
        name="prediction",
        ref_counts={positive: k_ref, "other": n_ref - k_ref},
        cur_counts={positive: k, "other": n - k},
    )
    return _output_drift("prediction", "categorical", result, None)


def _mean_shift_drift(name: str, reference, current: Moments | None) -> ColumnDrift:
    if not isinstance(reference, Moments) or reference.n == 0:
        return _output_drift(name, "numerical", None, f"the reference has no {name}")
    result = mean_shift_drift(name=name, reference=reference, current=current or Moments())
    note = "no values in the window" if result.statistic is None else None
    return _output_drift(name, "numerical", result, note)


def _output_drift(
    name: str, kind: str, result: FeatureDrift | None, note: str | None
) -> ColumnDrift:
    if result is None:
        return ColumnDrift(name, kind, note=note)
    return tested(name, kind, result, n_current=result.n_cur, note=note)
