"""Drift of a model's features against a baseline, from stored histograms only.

A drift question covers one version's predictions, or (no version) the model's whole traffic:
every version's, in both windows. Sketches of every version are on the model's fixed bins
(monitoring.pipeline.bins), so the whole traffic is the sum of its versions' sketches.

The baseline is, in order: an explicit window (`reference_start`/`reference_end`), the
registered reference of the version (without one: of the version that served most of the
current window), or the first `FREEZE_DAYS` days of predictions in scope. Every statistic is
computed by monitoring.stats from bin counts, the same code the benchmark times.
"""

from __future__ import annotations

import hashlib
import math
import pickle
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import numpy as np
from django.core.cache import cache
from django.db import transaction
from django.db.models import Max, Min, Sum

from common.time import HOUR
from factory.models import MLModel, ModelVersion
from factory.services import audit_record
from monitoring.metrics.registry import output_metrics
from monitoring.metrics.sketches import SketchStamp, sketch_data, sketch_stamps, sketches_read
from monitoring.metrics.windows import window_start, windows_between
from monitoring.models import HourlyAggregate, SketchKind
from monitoring.pipeline.bins import (
    FREEZE_DAYS,
    HEAVY,
    UNKNOWN,
    Bins,
    bins_load,
    references_load,
)
from monitoring.pipeline.sketches import categorical_merge
from monitoring.stats.codec import histograms_decode
from monitoring.stats.compare import bootstrap_variance
from monitoring.stats.drift import (
    NO_SETTINGS,
    DriftSettings,
    FeatureDrift,
    categorical_feature_drift,
    categorical_feature_drift_rows,
    dataset_drift,
    drift_settings_parse,
    numeric_feature_drift,
    numeric_feature_drift_rows,
)
from monitoring.stats.histograms import (
    HistogramRows,
    NumericHistogram,
    NumericReference,
    counts_resample,
    histogram_resample,
    rows_group_sum,
)
from monitoring.stats.profile import (
    CategoricalReference,
    FeatureReference,
    deciles_from_histogram,
)
from monitoring.stats.quality import out_of_range, out_of_range_rows

DEFAULT_CURRENT = timedelta(days=7)
CELL_CACHE_S = 3600  # how long a window's test (or a baseline) is kept once computed


class DriftError(ValueError):
    """A drift question that cannot be answered; the message says why."""


@dataclass(frozen=True)
class Baseline:
    kind: str  # training or window
    start: datetime | None
    end: datetime | None
    n: int
    features: dict[str, FeatureReference]
    version: str | None = None  # whose registered reference (training)


@dataclass(frozen=True)
class DriftScope:
    """Whose predictions a drift answer covers: one version's, or (``version`` None) the
    model's whole traffic, every version's."""

    model: MLModel
    version: ModelVersion | None
    versions: tuple[ModelVersion, ...]  # the versions looked at

    @property
    def version_ids(self) -> list[int] | None:
        """The versions to read, None for every version of the model."""
        return None if self.version is None else [self.version.pk]

    @property
    def label(self) -> str | None:
        return None if self.version is None else self.version.version

    def hours(self):
        """The scope's hourly counts."""
        rows = HourlyAggregate.objects.filter(model=self.model)
        return rows if self.version is None else rows.filter(version=self.version)

    def looked_at(self) -> str:
        return ", ".join(v.version for v in self.versions) or "none"


def drift_scope(model: MLModel, version: str | None) -> DriftScope:
    """The named version, or every version of the model."""
    if version:
        found = ModelVersion.objects.filter(model=model, version=version).defer(*HEAVY).first()
        if found is None:
            raise DriftError(f"{model.name} has no version {version!r}")
        return DriftScope(model, found, (found,))
    versions = tuple(ModelVersion.objects.filter(model=model).defer(*HEAVY).order_by("pk"))
    if not HourlyAggregate.objects.filter(model=model).exists():
        raise DriftError(f"{model.name} has no predictions yet")
    return DriftScope(model, None, versions)


def predictions_count(scope: DriftScope, start, end, segment: str | None = None) -> int:
    rows = scope.hours()
    if start:
        rows = rows.filter(hour__gte=start)
    if end:
        rows = rows.filter(hour__lt=end)
    if segment is not None:
        rows = rows.filter(segment=segment)
    return rows.aggregate(n=Sum("predictions"))["n"] or 0


def window_features(
    *, scope: DriftScope, bins: dict[str, Bins], start, end, segment: str | None
) -> dict[str, NumericHistogram | CategoricalReference]:
    """Every feature's merged histogram (or category counts) over [start, end): the sum of
    the scope's versions' sketches, all on the model's bins."""
    merged: dict[str, NumericHistogram | CategoricalReference] = {}
    for kind in (SketchKind.NUMERICAL, SketchKind.CATEGORICAL):
        rows = sketches_read(
            model=scope.model,
            kind=kind,
            name=None,
            start=start,
            end=end,
            version_ids=scope.version_ids,
            segment=segment,
        )
        for name, feature in bins.items():
            feature = readable(feature)
            if kind != (SketchKind.NUMERICAL if feature.kind == "numerical" else "categorical"):
                continue
            datas = [row.data for row in rows if row.name == name]
            merged[name] = merge_feature(feature, datas)
    return merged


def readable(bins: Bins) -> Bins:
    """Bins as their sketches read: a feature of unknown kind has missing counts only."""
    return Bins(bins.name, "categorical", bins.edges) if bins.kind == UNKNOWN else bins


def merge_feature(bins: Bins, datas: list[bytes]) -> NumericHistogram | CategoricalReference:
    if bins.kind == "numerical":
        return histograms_decode(datas, bins.edges).total()
    counts, missing = categorical_merge(datas)
    return CategoricalReference(counts, missing)


def serving_version(scope: DriftScope, start, end, segment=None) -> ModelVersion | None:
    """The scope's version, or the one that served most predictions in [start, end) (the
    lowest id among equals), so the answer does not depend on who served the last one."""
    if scope.version is not None:
        return scope.version
    rows = scope.hours()
    if start:
        rows = rows.filter(hour__gte=start)
    if end:
        rows = rows.filter(hour__lt=end)
    if segment is not None:
        rows = rows.filter(segment=segment)
    top = (
        rows.values("version_id")
        .annotate(n=Sum("predictions"))
        .order_by("-n", "version_id")
        .values_list("version_id", flat=True)
        .first()
    )
    return next((v for v in scope.versions if v.pk == top), None)


def baseline_resolve(
    *,
    scope: DriftScope,
    bins: dict[str, Bins],
    current: tuple | None = None,
    reference_start: datetime | None = None,
    reference_end: datetime | None = None,
) -> Baseline:
    """What the scope's windows are set against (module docstring); ``current`` is the
    (start, end, segment) whose main version's reference is the default."""
    if reference_start or reference_end:
        if not (reference_start and reference_end):
            raise DriftError("give both reference_start and reference_end, or neither")
        if reference_start >= reference_end:
            raise DriftError("reference_start must be before reference_end")
        return window_baseline(scope, bins, reference_start, reference_end)
    owner = serving_version(scope, *(current or (None, None)))
    references = references_load(owner, bins) if owner is not None else None
    if references is not None and references.features:
        stored = {n: f for n, f in references.features.items() if f is not None}
        return Baseline("training", None, None, references.rows, stored, owner.version)
    first = scope.hours().aggregate(t=Min("hour"))["t"]
    if first is None:
        raise DriftError(
            f"no predictions and no reference (versions looked at: {scope.looked_at()})"
        )
    return window_baseline(scope, bins, first, first + timedelta(days=FREEZE_DAYS))


FEATURE_KINDS = (SketchKind.NUMERICAL, SketchKind.CATEGORICAL)


def window_baseline(scope: DriftScope, bins, start, end) -> Baseline:
    """A window of the scope's own predictions as its baseline, cached under a digest of
    the window's stored sketches and the bins: a page after new data does not merge the
    baseline's days again unless one of them changed."""
    stamps = sketch_stamps(
        model=scope.model,
        kinds=FEATURE_KINDS,
        name=None,
        start=start,
        end=end,
        version_ids=scope.version_ids,
        segment=None,
    )
    digest = hashlib.sha256(pickle.dumps((scope.model.pk, scope.version_ids, start, end, bins)))
    for stamp_digest in sorted(stamp.digest for stamp in stamps):
        digest.update(stamp_digest.encode())
    key = "canary:baseline:" + digest.hexdigest()
    baseline = cache.get(key)
    if baseline is None:
        baseline = window_baseline_merged(scope, bins, start, end)
        cache.set(key, baseline, CELL_CACHE_S)
    return baseline


def window_baseline_merged(scope: DriftScope, bins, start, end) -> Baseline:
    features = {}
    for name, merged in window_features(
        scope=scope, bins=bins, start=start, end=end, segment=None
    ).items():
        if isinstance(merged, NumericHistogram):
            features[name] = NumericReference(merged, deciles_from_histogram(merged))
        else:
            features[name] = merged
    return Baseline("window", start, end, predictions_count(scope, start, end), features)


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


def current_window(scope: DriftScope, start, end) -> tuple[datetime, datetime]:
    if start and end:
        if start >= end:
            raise DriftError("start must be before end")
        return start, end
    last = scope.hours().aggregate(t=Max("hour"))["t"]
    if last is None:
        raise DriftError(f"no predictions (versions looked at: {scope.looked_at()})")
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
    scope = drift_scope(model, version)
    bins = bins_load(model.pk)
    if feature not in bins:
        raise DriftError(f"{model.name} has no feature {feature!r}")
    baseline = baseline_resolve(scope=scope, bins=bins)
    current = window_features(
        scope=scope, bins={feature: bins[feature]}, start=start, end=end, segment=segment
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
    """Each feature's test per window against the baseline, as `drift_report` computes it for
    one window; None where the window has no values. `totals` merge the whole span."""

    version: str | None  # None: every version's traffic
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


Cell = tuple[FeatureDrift | None, SpanSummary]


# Cells are cached a block at a time: an hourly month is 30 cache entries per feature and
# version instead of 720 (each key costs a lookup, a check and an unpickling), and new data
# tests again only the day of hours it falls in. Days and weeks are few: one cell a block.
BLOCK = {"hour": "day", "day": "day", "week": "week"}


@dataclass(frozen=True)
class FeatureWindows:
    """One feature's stored sketches per window, and what its tests are set against."""

    name: str
    bins: Bins
    reference: object  # NumericReference, CategoricalReference or None
    stamps: dict[datetime, list[SketchStamp]]
    scope: str  # a digest of what, beside the sketches, a window's test depends on

    def block_key(self, windows: list[datetime]) -> str:
        """The key of these windows' cells: a digest of their stored sketches and scope."""
        text = repr((self.name, self.scope, [w.isoformat() for w in windows]))
        digest = hashlib.sha256(text.encode())
        for window in windows:
            for stamp in sorted(self.stamps[window], key=lambda stamp: stamp.digest):
                digest.update(stamp.digest.encode())
        return "canary:drift-cells:" + digest.hexdigest()

    def blocks(self, granularity: str) -> dict[datetime, list[datetime]]:
        """The windows with sketches, by the start of their block."""
        blocks: dict[datetime, list[datetime]] = {}
        for window in self.stamps:
            blocks.setdefault(window_start(window, BLOCK[granularity]), []).append(window)
        return blocks


def windows_cells(
    features: list[FeatureWindows], settings: DriftSettings, granularity: str
) -> dict[str, dict[datetime, Cell]]:
    """Each feature's test and summary per window, cached a block of windows at a time under a
    digest of the block's stored sketches, the baseline and the settings: once a block stops
    changing it is never tested again, so new data costs only the blocks it touched. The
    rest are read from the cache in one round trip, and what is missing is read from the
    database in one query and tested for all its windows at once."""
    blocks = {
        (f.name, start): windows
        for f in features
        for start, windows in f.blocks(granularity).items()
    }
    by_name = {f.name: f for f in features}
    keys = {block: by_name[block[0]].block_key(windows) for block, windows in blocks.items()}
    found = cache.get_many(list(keys.values()))
    cells: dict[str, dict[datetime, Cell]] = {f.name: {} for f in features}
    missing: dict[str, list[datetime]] = {}
    for (name, start), key in keys.items():
        if key in found:
            cells[name].update(cells_unpack(found[key]))
        else:
            missing.setdefault(name, []).append(start)
    if not missing:
        return cells
    datas = sketch_data(
        [
            s.pk
            for name, starts in missing.items()
            for start in starts
            for w in blocks[(name, start)]
            for s in by_name[name].stamps[w]
        ]
    )
    computed = {}
    for name, starts in missing.items():
        feature = by_name[name]
        windows = [w for start in starts for w in blocks[(name, start)]]
        parts = [[datas[s.pk] for s in feature.stamps[w]] for w in windows]
        fresh = dict(zip(windows, feature_cells(feature, parts, settings), strict=True))
        cells[name].update(fresh)
        for start in starts:
            computed[keys[(name, start)]] = cells_pack({w: fresh[w] for w in blocks[(name, start)]})
    cache.set_many(computed, CELL_CACHE_S)
    return cells


def cells_pack(cells: dict[datetime, Cell]) -> list[tuple]:
    """A block's cells as tuples of plain values: a month of hourly cells unpickles in a
    fraction of the time its dataclasses take."""
    return [
        (
            window.timestamp(),  # a float: a datetime with its zone unpickles ten times slower
            None if drift is None else astuple_shallow(drift),
            astuple_shallow(summary),
        )
        for window, (drift, summary) in cells.items()
    ]


def cells_unpack(packed: list[tuple]) -> dict[datetime, Cell]:
    return {
        moment(seconds): (None if drift is None else FeatureDrift(*drift), SpanSummary(*summary))
        for seconds, drift, summary in packed
    }


@lru_cache(maxsize=65536)
def moment(seconds: float) -> datetime:
    """A window's start from its POSIX seconds; the same windows recur in every feature."""
    return datetime.fromtimestamp(seconds, UTC)


def astuple_shallow(instance) -> tuple:
    return tuple(getattr(instance, f.name) for f in fields(instance))


def feature_cells(feature: FeatureWindows, parts: list[list[bytes]], settings) -> list[Cell]:
    """The test and summary of each window (its sketches' data in `parts`), all at once."""
    if not parts:
        return []
    name, bins, reference = feature.name, feature.bins, feature.reference
    if bins.kind == "numerical":
        current = windows_histograms(bins, parts)
        results = features_drift_rows(name, reference, current, settings)
        return list(zip(results, numeric_summaries(reference, current), strict=True))
    merged = [CategoricalReference(*categorical_merge(datas)) for datas in parts]
    results = features_drift_rows(name, reference, merged, settings)
    summaries = [span_summary(reference, counts) for counts in merged]
    return list(zip(results, summaries, strict=True))


def windows_histograms(bins: Bins, parts: list[list[bytes]]) -> HistogramRows:
    """Each window's histogram: every sketch decoded in one pass, summed by window."""
    window_of = np.repeat(np.arange(len(parts)), [len(datas) for datas in parts])
    decoded = histograms_decode([data for datas in parts for data in datas], bins.edges)
    return rows_group_sum(decoded, window_of, len(parts))


def features_drift_rows(
    name: str, reference, current: HistogramRows | list[CategoricalReference], settings
) -> list[FeatureDrift | None]:
    """`feature_drift` of each window, all at once; None for all when the reference is not
    of the windows' kind or bins."""
    if isinstance(current, HistogramRows):
        if not isinstance(reference, NumericReference) or not np.array_equal(
            reference.edges, current.edges
        ):
            return [None] * len(current.counts)
        return numeric_feature_drift_rows(
            name=name,
            reference=reference,
            current=current,
            **_chosen(settings.override_for(name, "numerical")),
        )
    if not isinstance(reference, CategoricalReference):
        return [None] * len(current)
    return categorical_feature_drift_rows(
        name=name,
        ref_counts=reference.counts,
        cur_counts=[c.counts for c in current],
        missing_cur=[c.missing for c in current],
        **_chosen(settings.override_for(name, "categorical")),
    )


def numeric_summaries(reference, current: HistogramRows) -> list[SpanSummary]:
    """`span_summary` of each window's histogram."""
    n = current.n
    if not isinstance(reference, NumericReference) or reference.edges.shape != current.edges.shape:
        return [SpanSummary("numerical", int(count)) for count in n]
    below, above = out_of_range_rows(reference.histogram, current)
    return [
        SpanSummary("numerical", int(count), int(low), int(high), ranged=True)
        for count, low, high in zip(n, below, above, strict=True)
    ]


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
    """Drift per window of every feature (or of one), from one read of the stored sketches;
    without a version, of the model's whole traffic against the baseline of the version that
    served most of the span."""
    scope = drift_scope(model, version)
    bins = {n: b for n, b in bins_load(model.pk).items() if feature in (None, n)}
    if feature is not None and not bins:
        raise DriftError(f"{model.name} has no feature {feature!r}")
    baseline = baseline_resolve(scope=scope, bins=bins, current=(start, end, segment))
    settings = model_drift_settings(model)
    grouped: dict[tuple[str, datetime], list[SketchStamp]] = {}
    window_of: dict[datetime, datetime] = {}  # a few hundred starts behind thousands of rows
    for stamp in sketch_stamps(
        model=model,
        kinds=FEATURE_KINDS,
        name=feature,
        start=start,
        end=end,
        version_ids=scope.version_ids,
        segment=segment,
        hourly=granularity == "hour",
    ):
        if stamp.start not in window_of:
            window_of[stamp.start] = window_start(stamp.start, granularity)
        grouped.setdefault((stamp.name, window_of[stamp.start]), []).append(stamp)
    starts = [moment for _, moment in grouped]
    first = start or min(starts, default=None)
    last = (end - timedelta(microseconds=1)) if end else max(starts, default=None)
    windows = []
    if first is not None and last is not None:
        windows = list(windows_between(first, last, granularity))
    where = (scope.version_ids, granularity, settings)
    tested = [
        feature_windows(name, bins[name], baseline, grouped, windows, where)
        for name in sorted(bins)
    ]
    cells = windows_cells(tested, settings, granularity)
    features, summaries = {}, {}
    for one in tested:
        found = cells[one.name]
        features[one.name] = [found[w][0] if w in found else None for w in windows]
        summaries[one.name] = sum(
            (summary for _, summary in found.values()), SpanSummary(one.bins.kind)
        )
    totals = {}
    if feature is not None:  # the feature page draws the whole span's distribution
        (one,) = tested
        datas = sketch_data([s.pk for stamps in one.stamps.values() for s in stamps])
        totals[feature] = merge_feature(one.bins, list(datas.values()))
    shares = [
        dataset_drift(
            [r[i] for r in features.values() if r[i] is not None],
            share_threshold=settings.share_threshold,
        ).share_drifted
        for i in range(len(windows))
    ]
    return DriftSeries(scope.label, baseline, windows, features, shares, totals, summaries)


def feature_windows(
    name: str, bins: Bins, baseline: Baseline, grouped, windows, where
) -> FeatureWindows:
    """A feature's sketches per window of the span, and the digest of everything else its
    tests depend on: `where` (versions, granularity, settings), its bins and its baseline."""
    bins = readable(bins)
    reference = baseline.features.get(name)
    scope = hashlib.sha256()
    for part in (*where, bins, reference):
        # Each part pickled alone: in one pickle, arrays the bins and a fresh reference share
        # would be written once, and a reference read back from the cache would not match.
        scope.update(pickle.dumps(part))
    stamps = {w: grouped[(name, w)] for w in windows if (name, w) in grouped}
    return FeatureWindows(name, bins, reference, stamps, scope.hexdigest())
