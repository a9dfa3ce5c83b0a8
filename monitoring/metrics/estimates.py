"""Estimated performance before the outcomes: each version's calibration, chosen and frozen
once, and a window's estimate from its all-scores histograms (monitoring.stats.estimate).

A version's calibration comes from, in order: the model's `estimation_reference` window, the
version's registered reference rows that carry an `outcome`, the version's first 7 days of
predictions once their labels are in (label coverage at least `MATURE_COVERAGE`). The first
found is frozen (a `Calibration` row) by the jobs, and stays until the model's estimation
reference is set again. A version with none of its own yet (a new canary) borrows the
production version's, unfrozen, and the answer says so.

A multiclass model's references are per class (the `class_score` sketches, or the reference
rows' `scores`): each class is calibrated against the rest, and the calibration holds one
block of rates per class.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from django.db import transaction
from django.db.models import Min, Sum
from django.utils.dateparse import parse_datetime

from common.time import as_utc, day_floor
from factory.models import MLModel, ModelVersion, Rollout, RolloutKind, Task
from factory.services import audit_record
from monitoring.ingest.records import canonical_label, positive_label
from monitoring.metrics.sketches import sketches_read
from monitoring.models import (
    Calibration,
    CalibrationSource,
    ErrorModel,
    HourlyAggregate,
    SketchKind,
)
from monitoring.stats.auc import ScoreHistogram, score_histogram
from monitoring.stats.codec import all_score_histogram_decode, score_histogram_decode
from monitoring.stats.estimate import (
    ClassVersioned,
    Versioned,
    bin_centres,
    calibration_fit,
    multiclass_calibration_fit,
)

FIRST_DAYS = timedelta(days=7)
# The share of the first days' predictions with an outcome that makes them a reference. The
# label maturity of issue 13 (Kaplan-Meier) replaces this plain coverage once it lands.
MATURE_COVERAGE = 0.8


@dataclass(frozen=True)
class CalibrationInUse:
    """A version's calibration as an answer names it."""

    version: str  # the version estimated
    calibrated_on: str  # the version whose reference calibrated it (itself, or production's)
    source: str
    start: datetime | None
    end: datetime | None
    labelled: int
    rates: np.ndarray | dict[str, np.ndarray]  # multiclass: per class

    def as_reference(self) -> dict:
        return {
            "version": self.version,
            "calibrated_on": self.calibrated_on,
            "source": self.source,
            "start": self.start,
            "end": self.end,
            "labelled": self.labelled,
        }


# A reference: a binary model's labelled score histogram, or a multiclass model's per class.
Reference = ScoreHistogram | dict[str, ScoreHistogram]


def labelled_histogram(
    model: MLModel, version_ids: list[int] | None, start: datetime, end: datetime
) -> Reference | None:
    """The labelled score histogram of the versions (None: all) over [start, end), from the
    sketches; a multiclass model's per class."""
    multiclass = model.task == Task.MULTICLASS
    rows = sketches_read(
        model=model,
        kind=SketchKind.CLASS_SCORE if multiclass else SketchKind.SCORE,
        name=None if multiclass else "",
        start=start,
        end=end,
        version_ids=version_ids,
    )
    by_class: dict[str, list[ScoreHistogram]] = defaultdict(list)
    for row in rows:
        by_class[row.name].append(score_histogram_decode(bytes(row.data)))
    summed = {name: sum(parts[1:], parts[0]) for name, parts in by_class.items()}
    if multiclass:
        return summed or None
    return summed.get("")


def estimation_window(model: MLModel) -> tuple[datetime, datetime] | None:
    setting = model.estimation_reference or {}
    start, end = (
        parse_datetime(setting.get("start") or ""),
        parse_datetime(setting.get("end") or ""),
    )
    return (as_utc(start), as_utc(end)) if start and end else None


def reference_rows_histogram(model: MLModel, version: ModelVersion) -> Reference | None:
    """The registered reference rows that carry a score (multiclass: scores) and an outcome,
    binned."""
    rows = (version.reference or {}).get("rows") if isinstance(version.reference, dict) else None
    if model.task == Task.MULTICLASS:
        return reference_rows_class_histograms(rows or [])
    positive = positive_label(model)
    scored = [
        (row["score"], canonical_label(row["outcome"]) == positive)
        for row in rows or []
        if isinstance(row, dict)
        and isinstance(row.get("score"), int | float)
        and not isinstance(row.get("score"), bool)
        and row.get("outcome") is not None
    ]
    if not scored:
        return None
    scores, actual = zip(*scored, strict=True)
    return score_histogram(np.array(actual), np.array(scores, dtype=float), positive=True)


def reference_rows_class_histograms(rows: list) -> dict[str, ScoreHistogram] | None:
    """Per class, the labelled reference rows' scores of that class by whether the outcome is
    it (a class a row's scores leave out scored 0, as in the aggregates)."""
    scored = [
        (row["scores"], canonical_label(row["outcome"]))
        for row in rows
        if isinstance(row, dict)
        and isinstance(row.get("scores"), dict)
        and row.get("outcome") is not None
    ]
    if not scored:
        return None
    labels = sorted({str(label) for scores, _ in scored for label in scores})
    frame = pd.DataFrame([scores for scores, _ in scored], columns=labels).fillna(0.0)
    outcomes = np.array([outcome for _, outcome in scored], dtype=object)
    return {
        label: score_histogram(outcomes == label, frame[label].to_numpy(float), positive=True)
        for label in labels
    }


def first_days(version: ModelVersion, now: datetime) -> tuple[datetime, datetime] | None:
    """The version's first 7 days, once they are over and their labels are in."""
    counts = HourlyAggregate.objects.filter(version=version)
    first = counts.aggregate(first=Min("hour"))["first"]
    if first is None:
        return None
    start = day_floor(as_utc(first))
    end = start + FIRST_DAYS
    if now < end:
        return None
    window = counts.filter(hour__gte=start, hour__lt=end).aggregate(
        n=Sum("predictions"), labelled=Sum("labelled")
    )
    if not window["n"] or window["labelled"] / window["n"] < MATURE_COVERAGE:
        return None
    return start, end


def calibration_choose(model: MLModel, version: ModelVersion, now: datetime) -> Calibration | None:
    """The version's calibration from the first reference that has labelled scores."""
    window = estimation_window(model)
    if window is not None:
        histogram = labelled_histogram(model, [version.pk], *window)
        if histogram is None:  # the version did not serve then: the model's traffic did
            histogram = labelled_histogram(model, None, *window)
        if made := calibration_make(version, histogram, CalibrationSource.SETTING, window):
            return made
    made = calibration_make(
        version, reference_rows_histogram(model, version), CalibrationSource.REFERENCE_ROWS
    )
    if made:
        return made
    days = first_days(version, now)
    if days is not None:
        histogram = labelled_histogram(model, [version.pk], *days)
        return calibration_make(version, histogram, CalibrationSource.FIRST_DAYS, days)
    return None


def calibration_make(
    version: ModelVersion,
    histogram: Reference | None,
    source: str,
    window: tuple[datetime, datetime] | None = None,
) -> Calibration | None:
    if isinstance(histogram, dict):
        return class_calibration_make(version, histogram, source, window)
    rates = calibration_fit(histogram) if histogram is not None else None
    if rates is None:
        return None
    start, end = window or (None, None)
    return Calibration(
        model_id=version.model_id,
        version=version,
        source=source,
        reference_start=start,
        reference_end=end,
        labelled=labelled_count(histogram),
        rates=rates.astype("<f8").tobytes(),
    )


def labelled_count(histogram: ScoreHistogram) -> int:
    return int(histogram.positives.sum() + histogram.negatives.sum())


def class_calibration_make(
    version: ModelVersion,
    histograms: dict[str, ScoreHistogram],
    source: str,
    window: tuple[datetime, datetime] | None,
) -> Calibration | None:
    """A multiclass calibration: each class's rates against the rest, one block per class."""
    fitted = multiclass_calibration_fit(histograms)
    if not fitted:
        return None
    labels = sorted(fitted)
    start, end = window or (None, None)
    return Calibration(
        model_id=version.model_id,
        version=version,
        source=source,
        reference_start=start,
        reference_end=end,
        # every labelled row is in each class's histogram
        labelled=max(labelled_count(histogram) for histogram in histograms.values()),
        rates=np.concatenate([fitted[label] for label in labels]).astype("<f8").tobytes(),
        classes=labels,
    )


def calibration_rates(calibration: Calibration) -> np.ndarray | dict[str, np.ndarray]:
    """The stored rates: one array, or a multiclass calibration's per class."""
    rates = np.frombuffer(bytes(calibration.rates), "<f8")
    if calibration.classes is None:
        return rates
    blocks = rates.reshape(len(calibration.classes), -1)
    return dict(zip(calibration.classes, blocks, strict=True))


def calibrations_freeze(*, model_id: int, now: datetime) -> int:
    """Freeze a calibration for each version of a classification model that has none yet and
    whose reference is ready; returns how many were frozen (the jobs run it after
    aggregation)."""
    model = MLModel.objects.get(pk=model_id)
    if model.task not in (Task.BINARY, Task.MULTICLASS):
        return 0
    frozen = Calibration.objects.filter(model=model).values_list("version_id", flat=True)
    versions = ModelVersion.objects.filter(model=model).exclude(pk__in=list(frozen))
    made = [c for v in versions if (c := calibration_choose(model, v, now)) is not None]
    Calibration.objects.bulk_create(made, ignore_conflicts=True)
    return len(made)


@transaction.atomic
def estimation_reference_set(*, model: MLModel, window: dict | None, actor: str = "") -> None:
    """Store the model's estimation reference window (or clear it), audited, and forget every
    frozen calibration and error model: the next jobs choose each version's again, this
    window first."""
    before = model.estimation_reference
    model.estimation_reference = window
    model.save(update_fields=["estimation_reference"])
    Calibration.objects.filter(model=model).delete()
    ErrorModel.objects.filter(model=model).delete()
    audit_record(
        model=model,
        actor=actor,
        action="model.estimation_reference",
        subject=model.name,
        before=before,
        after=window,
    )


def production_version_id(model: MLModel, calibrated: dict[int, Calibration]) -> int | None:
    """The calibrated version in production: the latest full rollout's, else the calibrated
    version that served the most predictions."""
    full = Rollout.objects.filter(
        model=model, kind=RolloutKind.ROLLOUT, active=True, traffic_percent__gte=100
    )
    for version_id in full.order_by("-id").values_list("version_id", flat=True):
        if version_id in calibrated:
            return version_id
    served = (
        HourlyAggregate.objects.filter(model=model, version_id__in=list(calibrated))
        .values("version_id")
        .annotate(n=Sum("predictions"))
        .order_by("-n", "version_id")
    )
    row = served.first()
    return row["version_id"] if row else None


def calibrations_in_use(model: MLModel) -> dict[int, CalibrationInUse]:
    """{version id: its calibration}, own or borrowed from production; uncalibrated versions
    are absent."""
    names = dict(ModelVersion.objects.filter(model=model).values_list("pk", "version"))
    calibrated = {c.version_id: c for c in Calibration.objects.filter(model=model)}
    production = production_version_id(model, calibrated) if calibrated else None
    out = {}
    for version_id, name in names.items():
        own = calibrated.get(version_id)
        used = own or calibrated.get(production)
        if used is None:
            continue
        out[version_id] = CalibrationInUse(
            version=name,
            calibrated_on=names[used.version_id],
            source=used.source,
            start=used.reference_start,
            end=used.reference_end,
            labelled=used.labelled,
            rates=calibration_rates(used),
        )
    return out


def estimate_windows(*, model, scope, granularity, key, version_ids) -> dict:
    """{window: [Versioned]}: each calibrated version's all-scores histogram per window; a
    multiclass model's [ClassVersioned], a histogram per class."""
    calibrations = calibrations_in_use(model)
    ids = [v for v in calibrations if version_ids is None or v in version_ids]
    multiclass = model.task == Task.MULTICLASS
    rows = sketches_read(
        model=model,
        kind=SketchKind.CLASS_ALL if multiclass else SketchKind.ALL_SCORES,
        name=None if multiclass else "",
        start=scope["start"],
        end=scope["end"],
        version_ids=ids,
        segment=scope["segment"],
        hourly=granularity == "hour",
    )
    grouped: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for row in rows:
        histogram = all_score_histogram_decode(row.data)
        grouped[key(row.start)][row.version_id][row.name].append(histogram)
    return {
        moment: [
            window_part(calibrations[version_id].rates, by_class)
            for version_id, by_class in versions.items()
        ]
        for moment, versions in grouped.items()
    }


def window_part(rates, by_class: dict[str, list]) -> Versioned | ClassVersioned:
    """A version's histograms in a window, summed, with its calibration. A class its
    multiclass calibration has not seen is taken at its raw scores (rates: the bin centres)."""
    summed = {name: sum(parts[1:], parts[0]) for name, parts in by_class.items()}
    if not isinstance(rates, dict):
        return Versioned(summed[""], rates)
    return ClassVersioned(
        {
            name: Versioned(histogram, rates.get(name, bin_centres()))
            for name, histogram in summed.items()
        }
    )


def estimate_references(model: MLModel, version: str | None) -> list[dict]:
    """What calibrated each version in scope (the answer's `reference`)."""
    return [
        used.as_reference()
        for used in calibrations_in_use(model).values()
        if version is None or used.version == version
    ]
