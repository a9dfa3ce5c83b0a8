"""Histograms per model, version, segment and hour (and day), written for dirty hours.

Each (version, segment) of a dirty hour gets a score histogram, a label-delay histogram, a
multiclass confusion table, and per feature a histogram on the version's fixed bins (or
category counts), each with its missing count. Day rows are the sums of their hours,
rewritten whenever one of the day's hours is, so a month reads 30 rows per feature, not 720.

Two paths read the rows, and both fill the same `GroupColumns` for `group_sketches`:
- sql (PostgreSQL): monitoring.sketch_sql, one statement per chunk of dirty hours (about
  SQL_CHUNK_PREDICTIONS predictions), the JSON extraction done by the database;
- pandas (SQLite, the embedded default): one hour's rows at a time, read into Python.
Before either, the pass's new feature names are found and their bins frozen, so every hour
of a pass is binned on the same edges whichever path bins it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from django.db import connection
from django.db.models import Q, Sum

from factory.models import MLModel, ModelVersion, Task
from monitoring.bins import UNKNOWN, Bins, bins_ensure
from monitoring.models import FeatureBins, HourlyAggregate, Period, Prediction, Sketch, SketchKind
from monitoring.sketch_codec import (
    categorical_encode,
    categorical_merge,
    confusion_encode,
    confusion_merge,
)
from monitoring.sql import db_datetime, is_postgres
from monitoring.stats.auc import score_histogram
from monitoring.stats.codec import (
    counts_encode,
    histogram_encode,
    score_histogram_encode,
    sparse_merge,
)
from monitoring.stats.delay import delay_counts
from monitoring.stats.histograms import is_missing, numeric_histogram
from monitoring.stats.profile import category_key, numeric_values

HOUR, DAY = timedelta(hours=1), timedelta(days=1)


def hour_ranges(hours: list[datetime]) -> list[tuple[datetime, datetime]]:
    """Contiguous [start, end) ranges covering the given hours."""
    ranges: list[list[datetime]] = []
    for hour in sorted(hours):
        if ranges and ranges[-1][1] == hour:
            ranges[-1][1] = hour + HOUR
        else:
            ranges.append([hour, hour + HOUR])
    return [(start, end) for start, end in ranges]


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


@dataclass
class GroupColumns:
    """What the sketches of one version and segment in one hour are made of, whichever path
    read it: both paths fill this and `group_sketches` turns it into sketches."""

    rows: int
    scores: np.ndarray  # judged, scored predictions (binary): their scores
    actual: np.ndarray  # ... and whether their outcome is the positive class
    pairs: Counter  # judged predictions: (outcome, prediction) counts
    delays: np.ndarray  # labelled predictions: label delays
    numbers: dict[str, np.ndarray]  # numerical features: their JSON numbers
    categories: dict[str, Counter]  # categorical features: counts per category key
    present: dict[str, int]  # categorical and unknown features: values that are not null


def group_sketches(
    *, model: MLModel, bins: dict[str, Bins], group: GroupColumns
) -> list[tuple[str, str, int, int, bytes]]:
    """(kind, name, n, missing, data) of one version and segment in one hour.

    A numerical feature counts JSON numbers only (as its edges were frozen from); any other
    value is missing. A categorical one counts every present value by its `category_key`.
    """
    out = []
    if model.task == Task.BINARY and group.scores.size:
        histogram = score_histogram(group.actual, group.scores, positive=True)
        out.append((SketchKind.SCORE, "", group.scores.size, 0, score_histogram_encode(histogram)))
    if model.task == Task.MULTICLASS and group.pairs:
        judged = sum(group.pairs.values())
        out.append((SketchKind.CONFUSION, "", judged, 0, confusion_encode(dict(group.pairs))))
    if group.delays.size:
        counts = counts_encode(delay_counts(group.delays))
        out.append((SketchKind.DELAY, "", group.delays.size, 0, counts))
    for name, feature in bins.items():
        if feature.kind == "numerical":
            values = group.numbers.get(name, np.array([]))
            histogram = numeric_histogram(values, feature.edges)
            histogram = replace(histogram, missing=group.rows - histogram.n)
            data = histogram_encode(histogram)
            out.append((SketchKind.NUMERICAL, name, histogram.n, histogram.missing, data))
        else:
            n = group.present.get(name, 0)
            counts = group.categories.get(name, {}) if feature.kind != UNKNOWN else {}
            data = categorical_encode(dict(counts), group.rows - n)
            out.append((SketchKind.CATEGORICAL, name, n, group.rows - n, data))
    return out


def feature_sketch(bins: Bins, column) -> tuple[str, str, int, int, bytes]:
    """The sketch of one feature's values (a list or Series; None or NaN is missing)."""
    values = [None if is_missing(value) else value for value in column]
    group = frame_columns(pd.DataFrame({"features": [{bins.name: v} for v in values],
                                        "outcome": None, "score": None, "delay_s": None,
                                        "prediction": None}), {bins.name: bins}, "1")  # fmt: skip
    empty = MLModel(task=Task.REGRESSION)
    return group_sketches(model=empty, bins={bins.name: bins}, group=group)[0]


def frame_columns(group: pd.DataFrame, bins: dict[str, Bins], positive: str) -> GroupColumns:
    """The pandas path's reading of one group's rows."""
    judged = group[group["outcome"].notna()]
    scored = judged[judged["score"].notna()]
    features = [f or {} for f in group["features"]]
    numbers, categories, present = {}, {}, {}
    for name, feature in bins.items():
        column = [row.get(name) for row in features]
        if feature.kind == "numerical":
            values = numeric_values(column)
            numbers[name] = values[~np.isnan(values)]
        else:
            values = [value for value in column if not is_missing(value)]
            present[name] = len(values)
            categories[name] = Counter(category_key(value) for value in values)
    return GroupColumns(
        rows=len(group),
        scores=scored["score"].to_numpy(float),
        actual=(scored["outcome"] == positive).to_numpy(bool),
        pairs=Counter(zip(judged["outcome"], judged["prediction"], strict=True)),
        delays=group["delay_s"].dropna().to_numpy(float),
        numbers=numbers, categories=categories, present=present,
    )  # fmt: skip


def _positive(model: MLModel) -> str:
    from monitoring.aggregate import positive_label

    return positive_label(model)


def hour_sketches(
    model: MLModel, start: datetime, bins: dict[int, dict[str, Bins]]
) -> dict[tuple, list[tuple[str, str, int, int, bytes]]]:
    """The pandas path: one hour's sketches from its rows read into Python."""
    frame = hour_frame(model, start)
    sketches = {}
    for (version_id, segment), group in frame.groupby(["version_id", "segment"], sort=False):
        features = bins.get(version_id, {})
        columns = frame_columns(group, features, _positive(model))
        sketches[(version_id, segment, start)] = group_sketches(
            model=model, bins=features, group=columns
        )
    return sketches


def features_seen(model_id: int, hours: list[datetime]) -> dict[int, tuple[set, set]]:
    """Per version in the hours: the feature names seen that have no bins (or bins of an
    unknown kind), and those of them with a value somewhere.

    On PostgreSQL the names with bins are removed from each row's JSON before its keys are
    listed, so the usual pass, with no new feature, lists no key at all.
    """
    stored = FeatureBins.objects.filter(model_id=model_id).exclude(kind=UNKNOWN)
    known = list(stored.values_list("version_id", "name"))
    seen: dict[int, tuple[set, set]] = {}
    with connection.cursor() as cursor:
        for start, end in hour_ranges(hours):
            if is_postgres():
                cursor.execute(
                    """WITH known AS (
                        SELECT version_id, array_agg(name) AS names
                        FROM unnest(%s::bigint[], %s::text[]) AS t(version_id, name)
                        GROUP BY version_id)
                    SELECT p.version_id, e.key, MAX(CASE WHEN jsonb_typeof(e.value) = 'null'
                        THEN 0 ELSE 1 END)
                    FROM monitoring_prediction p
                    LEFT JOIN known k ON k.version_id = p.version_id
                    CROSS JOIN LATERAL jsonb_each(
                        CASE WHEN k.names IS NULL THEN p.features ELSE p.features - k.names END
                    ) e
                    WHERE p.model_id = %s AND p.timestamp >= %s AND p.timestamp < %s
                    GROUP BY p.version_id, e.key""",
                    [[v for v, _ in known], [n for _, n in known], model_id, start, end],
                )
            else:
                cursor.execute(
                    """SELECT p.version_id, e.key, MAX(CASE WHEN e.type = 'null' THEN 0 ELSE 1
                        END)
                    FROM monitoring_prediction p, json_each(p.features) e
                    WHERE p.model_id = %s AND p.timestamp >= %s AND p.timestamp < %s
                    GROUP BY p.version_id, e.key""",
                    [model_id, db_datetime(start), db_datetime(end)],
                )
            for version_id, name, present in cursor.fetchall():
                names, with_value = seen.setdefault(version_id, (set(), set()))
                names.add(name)
                if present:
                    with_value.add(name)
    return seen


def hours_bins(model: MLModel, hours: list[datetime]) -> dict[int, dict[str, Bins]]:
    """The frozen bins of every version with predictions in the hours, freezing new features
    first: every hour of a pass is then binned on the same edges, whichever path bins it."""
    seen = features_seen(model.pk, hours)
    # The hours' counts are already rewritten in this transaction: their versions are there.
    counted = HourlyAggregate.objects.filter(model=model, hour__in=hours)
    version_ids = set(seen) | set(counted.values_list("version_id", flat=True).distinct())
    nothing: tuple[set, set] = (set(), set())
    return {
        version.pk: bins_ensure(version=version, names=seen.get(version.pk, nothing)[0],
                                present=seen.get(version.pk, nothing)[1])
        for version in ModelVersion.objects.filter(pk__in=version_ids).defer("lineage")
    }  # fmt: skip


SQL_CHUNK_PREDICTIONS = 200_000  # rows per statement: a few arrays of 200k values per feature


def hour_chunks(model: MLModel, hours: list[datetime]) -> list[list[datetime]]:
    """Dirty hours in groups of about SQL_CHUNK_PREDICTIONS predictions (their hourly counts
    are already rewritten in this transaction)."""
    sizes = dict(
        HourlyAggregate.objects.filter(model=model, hour__in=hours)
        .values("hour").annotate(n=Sum("predictions")).values_list("hour", "n")
    )  # fmt: skip
    chunks, current, rows = [], [], 0
    for hour in hours:
        size = sizes.get(hour, 0)
        if current and rows + size > SQL_CHUNK_PREDICTIONS:
            chunks.append(current)
            current, rows = [], 0
        current.append(hour)
        rows += size
    return [*chunks, current] if current else chunks


def sketches_compute(
    model: MLModel, hours: list[datetime], bins: dict[int, dict[str, Bins]], path: str
) -> Iterator[dict[tuple, list[tuple[str, str, int, int, bytes]]]]:
    """The sketches of the hours, a chunk at a time: an hour (pandas) or a bounded number of
    predictions (sql), so memory does not grow with the number of dirty hours."""
    if path == "pandas":
        for hour in hours:
            yield hour_sketches(model, hour, bins)
        return
    from monitoring.sketch_sql import chunk_sketches

    for chunk in hour_chunks(model, hours):
        yield chunk_sketches(model=model, hours=chunk, bins=bins, positive=_positive(model))


SKETCH_COLUMNS = ("model_id", "version_id", "segment", "period", "start", "kind", "name", "n",
                  "missing", "data")  # fmt: skip


def sketches_write(rows: list[tuple]) -> None:
    """Insert sketch rows (values in SKETCH_COLUMNS order): COPY on PostgreSQL."""
    if not is_postgres():
        Sketch.objects.bulk_create(
            [Sketch(**dict(zip(SKETCH_COLUMNS, row, strict=True))) for row in rows], 1000
        )
        return
    with connection.cursor() as cursor:
        sql = f"COPY monitoring_sketch ({', '.join(SKETCH_COLUMNS)}) FROM STDIN"
        with cursor.cursor.copy(sql) as copy:
            for row in rows:
                copy.write_row(row)


def day_rows(model: MLModel, day: datetime) -> list[tuple]:
    """A day's rows: the sums of its hour rows, per version, segment, kind and name."""
    groups: dict[tuple, list] = {}
    for row in Sketch.objects.filter(
        model=model, period=Period.HOUR, start__gte=day, start__lt=day + DAY
    ).values_list("version_id", "segment", "kind", "name", "n", "missing", "data"):
        groups.setdefault(row[:4], []).append(row[4:])
    out = []
    for (version_id, segment, kind, name), items in groups.items():
        datas = [bytes(data) for _, _, data in items]
        if kind == SketchKind.CATEGORICAL:
            data = categorical_encode(*categorical_merge(datas))
        elif kind == SketchKind.CONFUSION:
            data = confusion_encode(confusion_merge(datas))
        else:
            data = sparse_merge(datas)
        n, missing = sum(item[0] for item in items), sum(item[1] for item in items)
        out.append((model.pk, version_id, segment, Period.DAY, day, kind, name, n, missing, data))
    return out


def day_sketches(model: MLModel, day: datetime) -> list[Sketch]:
    return [Sketch(**dict(zip(SKETCH_COLUMNS, row, strict=True))) for row in day_rows(model, day)]


def sketches_refresh(*, model: MLModel, hours: list[datetime], path: str | None = None) -> None:
    """Rewrite the sketches of the given hours, then of the days they fall in.

    ``path`` is ``sql`` (set-based, PostgreSQL only; its default there) or ``pandas`` (the
    rows read into Python an hour at a time; SQLite's). Both write the same sketches.
    """
    if not hours:
        return
    path = path or ("sql" if is_postgres() else "pandas")
    bins = hours_bins(model, hours)
    Sketch.objects.filter(model=model, period=Period.HOUR, start__in=hours).delete()
    for computed in sketches_compute(model, hours, bins, path):
        sketches_write(
            [
                (model.pk, version_id, segment, Period.HOUR, hour, *sketch)
                for (version_id, segment, hour), items in computed.items()
                for sketch in items
            ]
        )
    days = sorted({hour.replace(hour=0) for hour in hours})
    Sketch.objects.filter(model=model, period=Period.DAY, start__in=days).delete()
    for day in days:
        sketches_write(day_rows(model, day))


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
