"""A drill-down slice against the reference: per feature, both distributions summarised and
the drift test between them (monitoring.stats, on the model's fixed bins and the version's baseline,
as the drift endpoint does; only the current side comes from the slice's raw rows)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from django.db.models import QuerySet

from factory.models import MLModel, ModelVersion
from monitoring.metrics.drift import (
    Baseline,
    DriftError,
    DriftScope,
    baseline_resolve,
    feature_drift,
)
from monitoring.pipeline.bins import HEAVY, UNKNOWN, Bins, bins_load
from monitoring.stats.drift import FeatureDrift
from monitoring.stats.histograms import NumericHistogram, NumericReference, numeric_histogram
from monitoring.stats.profile import CategoricalReference, category_key

# The slice side is read from raw rows, newest first, at most this many: with 25 features
# about 10 MB of Python objects and well under a second, however large the slice.
SLICE_MAX_ROWS = 20_000
TOP_CATEGORIES = 3


@dataclass
class FeatureSide:
    n: int
    missing: int
    text: str  # "mean 31.2, sd 4.1" or "basic 50%, standard 30%, premium 20%"


@dataclass
class FeatureComparison:
    name: str
    kind: str
    reference: FeatureSide | None
    current: FeatureSide
    drift: FeatureDrift | None
    note: str = ""


@dataclass
class SliceComparison:
    version: str
    baseline: Baseline
    rows: int  # the slice rows compared
    capped: bool  # True when the slice has more rows than were read
    features: list[FeatureComparison]

    @property
    def drifted(self) -> list[str]:
        return [f.name for f in self.features if f.drift is not None and f.drift.drifted]


class SliceError(ValueError):
    """The slice cannot be compared; the message says why."""


def slice_version(model: MLModel, rows: QuerySet, version: str | None) -> ModelVersion:
    """The filter's version, else the version of the slice's newest row (whose baseline the
    slice is set against)."""
    if version:
        found = ModelVersion.objects.filter(model=model, version=version).defer(*HEAVY).first()
        if found is None:
            raise SliceError(f"{model.name} has no version {version!r}")
        return found
    newest = rows.order_by("-timestamp", "-id").values_list("version_id", flat=True).first()
    if newest is None:
        raise SliceError("the slice has no rows")
    return ModelVersion.objects.defer(*HEAVY).get(pk=newest)


def numeric_side(histogram: NumericHistogram) -> FeatureSide:
    text = f"mean {histogram.mean:.4g}, sd {histogram.std:.4g}" if histogram.n else "no values"
    return FeatureSide(histogram.n, histogram.missing, text)


def categorical_side(reference: CategoricalReference) -> FeatureSide:
    total = reference.n
    if not total:
        return FeatureSide(0, reference.missing, "no values")
    top = sorted(reference.counts.items(), key=lambda item: (-item[1], item[0]))
    text = ", ".join(f"{name} {count / total:.0%}" for name, count in top[:TOP_CATEGORIES])
    more = len(top) - TOP_CATEGORIES
    return FeatureSide(total, reference.missing, text + (f" and {more} more" if more > 0 else ""))


def side_of(value) -> FeatureSide | None:
    if isinstance(value, NumericReference):
        return numeric_side(value.histogram)
    if isinstance(value, NumericHistogram):
        return numeric_side(value)
    if isinstance(value, CategoricalReference):
        return categorical_side(value)
    return None


def slice_features(bins: dict[str, Bins], rows: list[dict | None]) -> dict:
    """Each feature of the slice on the model's bins, as the hourly aggregation bins them."""
    frame = pd.DataFrame.from_records([r or {} for r in rows])
    features = {}
    for name, feature in bins.items():
        column = frame[name] if name in frame else pd.Series([None] * len(rows), dtype=object)
        if feature.kind == "numerical":
            values = pd.to_numeric(column, errors="coerce").to_numpy(float)
            features[name] = numeric_histogram(values, feature.edges)
            continue
        present = column[column.notna()]
        keys = present.map(category_key).value_counts() if feature.kind != UNKNOWN else {}
        counts = {str(k): int(c) for k, c in dict(keys).items()}
        features[name] = CategoricalReference(counts, int(len(column) - len(present)))
    return features


def slice_compare(*, model: MLModel, rows: QuerySet, version: str | None) -> SliceComparison:
    """The slice (Prediction rows already filtered) against the version's baseline."""
    chosen = slice_version(model, rows, version)
    bins = bins_load(model.pk)
    if not bins:
        raise SliceError(f"{model.name} has no features to compare")
    try:
        baseline = baseline_resolve(scope=DriftScope(model, chosen, (chosen,)), bins=bins)
    except DriftError as error:
        raise SliceError(str(error)) from None
    picked = rows.filter(version=chosen).order_by("-timestamp", "-id")
    features_rows = list(picked.values_list("features", flat=True)[: SLICE_MAX_ROWS + 1])
    capped = len(features_rows) > SLICE_MAX_ROWS
    features_rows = features_rows[:SLICE_MAX_ROWS]
    if not features_rows:
        raise SliceError(f"the slice has no rows of version {chosen.version}")
    current = slice_features(bins, features_rows)
    compared = []
    for name in sorted(current):
        reference = baseline.features.get(name)
        result = feature_drift(name, reference, current[name])
        note = "" if result is not None else "no reference on the same bins"
        if result is not None and result.statistic is None:
            note = "no values on one side"
        kind = "numerical" if isinstance(current[name], NumericHistogram) else "categorical"
        compared.append(
            FeatureComparison(name, kind, side_of(reference), side_of(current[name]), result, note)
        )
    return SliceComparison(chosen.version, baseline, len(features_rows), capped, compared)
