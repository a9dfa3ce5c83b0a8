"""Histograms per model, version, segment and hour (and day), written for dirty hours.

One dirty hour's predictions (with their labels) are read at a time, a bounded batch: at
100,000 predictions an hour with 25 features that is about 200 MB of Python objects at peak.
Each (version, segment) of the hour gets a score histogram, a label-delay histogram, a
multiclass confusion table, and per feature a histogram on the version's fixed bins (or
category counts), each with its missing count. Day rows are the sums of their hours,
rewritten whenever one of the day's hours is, so a month reads 30 rows per feature, not 720.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd
from django.db.models import Q

from factory.models import MLModel, ModelVersion, Task
from monitoring.bins import UNKNOWN, Bins, bins_ensure
from monitoring.models import Period, Prediction, Sketch, SketchKind
from monitoring.sketch_codec import (
    categorical_encode,
    categorical_merge,
    confusion_encode,
    confusion_merge,
)
from monitoring.stats.auc import score_histogram
from monitoring.stats.codec import (
    counts_encode,
    histogram_encode,
    score_histogram_encode,
    sparse_merge,
)
from monitoring.stats.delay import delay_counts
from monitoring.stats.histograms import numeric_histogram
from monitoring.stats.profile import category_key

HOUR, DAY = timedelta(hours=1), timedelta(days=1)


# --- writing ---


def hour_frame(model: MLModel, start: datetime) -> pd.DataFrame:
    rows = Prediction.objects.filter(
        model_id=model.pk, timestamp__gte=start, timestamp__lt=start + HOUR
    ).values_list(
        "version_id", "segment", "prediction", "score", "features", "label__outcome",
        "label__delay_s",
    )  # fmt: skip
    columns = ["version_id", "segment", "prediction", "score", "features", "outcome", "delay_s"]
    return pd.DataFrame.from_records(list(rows), columns=columns)


def group_sketches(
    *, model: MLModel, group: pd.DataFrame, bins: dict[str, Bins], features: pd.DataFrame
) -> list[tuple[str, str, int, int, bytes]]:
    """(kind, name, n, missing, data) of one version and segment in one hour."""
    out = []
    judged = group[group["outcome"].notna()]
    if model.task == Task.BINARY:
        scored = judged[judged["score"].notna()]
        if len(scored):
            positive = _positive(model)
            actual = (scored["outcome"] == positive).to_numpy()
            histogram = score_histogram(actual, scored["score"].to_numpy(float), positive=True)
            out.append((SketchKind.SCORE, "", len(scored), 0, score_histogram_encode(histogram)))
    if model.task == Task.MULTICLASS and len(judged):
        pairs = judged.groupby(["outcome", "prediction"]).size()
        out.append((SketchKind.CONFUSION, "", len(judged), 0, confusion_encode(pairs.to_dict())))
    delays = group["delay_s"].dropna().to_numpy(float)
    if delays.size:
        out.append((SketchKind.DELAY, "", delays.size, 0, counts_encode(delay_counts(delays))))
    for name, feature in bins.items():
        column = features[name] if name in features else pd.Series([None] * len(group))
        out.append(feature_sketch(feature, column))
    return out


def feature_sketch(bins: Bins, column: pd.Series) -> tuple[str, str, int, int, bytes]:
    if bins.kind == "numerical":
        values = pd.to_numeric(column, errors="coerce").to_numpy(float)
        histogram = numeric_histogram(values, bins.edges)
        return (SketchKind.NUMERICAL, bins.name, histogram.n, histogram.missing,
                histogram_encode(histogram))  # fmt: skip
    present = column[column.notna()]
    keys = present.map(category_key).value_counts() if bins.kind != UNKNOWN else pd.Series()
    counts = {str(k): int(c) for k, c in keys.items()}
    missing = int(len(column) - len(present))
    data = categorical_encode(counts, missing)
    return SketchKind.CATEGORICAL, bins.name, len(present), missing, data


def _positive(model: MLModel) -> str:
    from monitoring.aggregate import positive_label

    return positive_label(model)


def hour_sketches(
    model: MLModel, start: datetime, versions: dict[int, ModelVersion]
) -> list[Sketch]:
    frame = hour_frame(model, start)
    sketches = []
    for (version_id, segment), group in frame.groupby(["version_id", "segment"], sort=False):
        group = group.reset_index(drop=True)
        features = pd.DataFrame.from_records([f or {} for f in group["features"]])
        present = {c for c in features.columns if features[c].notna().any()}
        if version_id not in versions:
            versions[version_id] = ModelVersion.objects.get(pk=version_id)
        bins = bins_ensure(
            version=versions[version_id], names=set(features.columns), present=present
        )
        for kind, name, n, missing, data in group_sketches(
            model=model, group=group, bins=bins, features=features
        ):
            sketches.append(
                Sketch(
                    model_id=model.pk, version_id=version_id, segment=segment,
                    period=Period.HOUR, start=start, kind=kind, name=name, n=n, missing=missing,
                    data=data,
                )
            )  # fmt: skip
    return sketches


def day_sketches(model: MLModel, day: datetime) -> list[Sketch]:
    """A day's rows: the sum of its hour rows, per version, segment, kind and name."""
    groups: dict[tuple, list] = {}
    for row in Sketch.objects.filter(
        model=model, period=Period.HOUR, start__gte=day, start__lt=day + DAY
    ).values_list("version_id", "segment", "kind", "name", "n", "missing", "data"):
        groups.setdefault(row[:4], []).append(row[4:])
    sketches = []
    for (version_id, segment, kind, name), items in groups.items():
        datas = [bytes(data) for _, _, data in items]
        if kind == SketchKind.CATEGORICAL:
            data = categorical_encode(*categorical_merge(datas))
        elif kind == SketchKind.CONFUSION:
            data = confusion_encode(confusion_merge(datas))
        else:
            data = sparse_merge(datas)
        sketches.append(
            Sketch(
                model=model, version_id=version_id, segment=segment, period=Period.DAY,
                start=day, kind=kind, name=name, n=sum(item[0] for item in items),
                missing=sum(item[1] for item in items), data=data,
            )
        )  # fmt: skip
    return sketches


def sketches_refresh(*, model: MLModel, hours: list[datetime]) -> None:
    """Rewrite the sketches of the given hours, then of the days they fall in."""
    versions: dict[int, ModelVersion] = {}
    for hour in hours:
        Sketch.objects.filter(model=model, period=Period.HOUR, start=hour).delete()
        Sketch.objects.bulk_create(hour_sketches(model, hour, versions), 500)
    for day in sorted({hour.replace(hour=0) for hour in hours}):
        Sketch.objects.filter(model=model, period=Period.DAY, start=day).delete()
        Sketch.objects.bulk_create(day_sketches(model, day), 500)


# --- reading ---


@dataclass(frozen=True)
class SketchRow:
    start: datetime
    period: str
    version_id: int
    segment: str
    kind: str
    name: str
    n: int
    data: bytes


def day_floor(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def period_cover(start: datetime | None, end: datetime | None, *, hourly: bool = False):
    """Rows covering [start, end): whole days from day rows, the ragged ends from hour rows."""
    hours = Q(period=Period.HOUR)
    if start:
        hours &= Q(start__gte=start)
    if end:
        hours &= Q(start__lt=end)
    first_day = day_floor(start) + DAY if start and start != day_floor(start) else start
    last_day = day_floor(end) if end else None
    if hourly or (first_day and last_day and first_day >= last_day):
        return hours
    days = Q(period=Period.DAY)
    ragged = Q(pk__in=[])
    if first_day:
        days &= Q(start__gte=first_day)
        ragged |= Q(start__lt=first_day)
    if last_day:
        days &= Q(start__lt=last_day)
        ragged |= Q(start__gte=last_day)
    return days | (hours & ragged)


def sketches_read(
    *,
    model: MLModel,
    kind: str,
    name: str | None = "",
    start: datetime | None,
    end: datetime | None,
    version_ids: list[int] | None = None,
    segment: str | None = None,
    hourly: bool = False,
) -> list[SketchRow]:
    """Sketch rows of one kind (one feature, or every feature when name is None)."""
    rows = Sketch.objects.filter(model=model, kind=kind)
    if name is not None:
        rows = rows.filter(name=name)
    if version_ids is not None:
        rows = rows.filter(version_id__in=version_ids)
    if segment is not None:
        rows = rows.filter(segment=segment)
    fields = ("start", "period", "version_id", "segment", "kind", "name", "n", "data")
    cover = period_cover(start, end, hourly=hourly)
    return [SketchRow(*row) for row in rows.filter(cover).values_list(*fields)]
