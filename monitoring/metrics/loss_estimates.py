"""Estimated MAE and RMSE of regression models before the outcomes (direct loss estimation):
each version's error model, chosen and frozen once, and a window's estimate from the sums the
jobs stored (`SketchKind.LOSS`).

A version's error model is fitted on the labelled rows of, in order: the model's
`estimation_reference` window, the version's registered reference rows that carry a numeric
`outcome`, the version's first 7 days once their labels are in (the references of
monitoring.metrics.estimates). The jobs apply it to every row of the version's dirty hours,
so a newly frozen model marks the version's hours dirty, and they are aggregated again in the
same run. A version with none of its own yet borrows the production version's model, and the
answer says so.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

import numpy as np

from common.sql import is_postgres
from factory.models import MLModel, ModelVersion, Task
from monitoring.metrics.estimates import estimation_window, first_days, production_version_id
from monitoring.metrics.sketches import sketches_read
from monitoring.models import CalibrationSource, ErrorModel, HourlyAggregate, SketchKind
from monitoring.pipeline.bins import UNKNOWN, Bins, bins_load, version_hours_mark_dirty
from monitoring.pipeline.chunk_rows import Categories, categories_of, rows_load, rows_select
from monitoring.pipeline.error_models import inputs_of
from monitoring.stats.codec import sparse_decode
from monitoring.stats.direct_loss import (
    Inputs,
    LossSums,
    error_model_fit,
    inputs_concat,
    inputs_take,
)
from monitoring.stats.profile import as_finite_float, numeric_values

MAX_FIT_ROWS = 200_000  # labelled rows an error model is fitted on (a seeded sample beyond)
SEED = 20261202


def categorical(column: Categories) -> tuple[np.ndarray, list[str]]:
    return column.codes, column.keys


def reference_rows_inputs(version: ModelVersion, bins: dict[str, Bins]):
    """The registered reference rows with a numeric prediction and outcome, as the error
    model's inputs and outcomes; None without any."""
    rows = (version.reference or {}).get("rows") if isinstance(version.reference, dict) else None
    judged = [
        row
        for row in rows or []
        if isinstance(row, dict)
        and not np.isnan(as_finite_float(row.get("prediction")))
        and not np.isnan(as_finite_float(row.get("outcome")))
    ]
    if not judged:
        return None
    features = [row["features"] if isinstance(row.get("features"), dict) else {} for row in judged]
    inputs = Inputs(
        np.array([float(row["prediction"]) for row in judged]),
        {
            name: numeric_values([f.get(name) for f in features])
            for name, b in bins.items()
            if b.kind == "numerical"
        },
        {
            name: categorical(categories_of([f.get(name) for f in features]))
            for name, b in bins.items()
            if b.kind not in ("numerical", UNKNOWN)
        },
    )
    return inputs, np.array([float(row["outcome"]) for row in judged])


def window_inputs(
    model: MLModel, version_ids: list[int] | None, bins: dict[str, Bins], window
) -> tuple[Inputs, np.ndarray] | None:
    """The labelled predictions of the versions (None: all) over the window, read a day at a
    time from the raw rows; at most `MAX_FIT_ROWS` of them, a seeded sample."""
    start, end = window
    counted = HourlyAggregate.objects.filter(model=model, hour__gte=start, hour__lt=end)
    if version_ids is not None:
        counted = counted.filter(version_id__in=version_ids)
    hours = sorted(set(counted.filter(labelled__gt=0).values_list("hour", flat=True)))
    read = rows_select if is_postgres() else rows_load
    parts, outcomes = [], []
    for day in range(0, len(hours), 24):
        rows = read(model=model, hours=hours[day : day + 24], bins={0: bins}, positive="")
        keep = ~np.isnan(rows.outcome_num)
        if version_ids is not None:
            keep &= np.isin(rows.version, version_ids)
        parts.append(inputs_take(inputs_of(rows), keep))
        outcomes.append(rows.outcome_num[keep])
    if not parts or not sum(len(part) for part in parts):
        return None
    inputs, outcome = inputs_concat(parts), np.concatenate(outcomes)
    if len(inputs) > MAX_FIT_ROWS:
        keep = np.zeros(len(inputs), bool)
        keep[np.random.default_rng(SEED).choice(len(inputs), MAX_FIT_ROWS, replace=False)] = True
        inputs, outcome = inputs_take(inputs, keep), outcome[keep]
    return inputs, outcome


def error_model_make(
    version: ModelVersion, labelled, source: str, window: tuple[datetime, datetime] | None = None
) -> ErrorModel | None:
    fitted = error_model_fit(*labelled) if labelled is not None else None
    if fitted is None:
        return None
    start, end = window or (None, None)
    return ErrorModel(
        model_id=version.model_id,
        version=version,
        fitted_on=version,
        source=source,
        reference_start=start,
        reference_end=end,
        labelled=len(labelled[0]),
        terms=fitted.as_json(),
    )


def error_model_choose(model: MLModel, version: ModelVersion, now: datetime) -> ErrorModel | None:
    """The version's own error model from the first reference with labelled rows."""
    bins = {name: b for name, b in bins_load(version.model_id).items() if b.kind != UNKNOWN}
    window = estimation_window(model)
    if window is not None:
        labelled = window_inputs(model, [version.pk], bins, window)
        if labelled is None:  # the version did not serve then: the model's traffic did
            labelled = window_inputs(model, None, bins, window)
        if made := error_model_make(version, labelled, CalibrationSource.SETTING, window):
            return made
    labelled = reference_rows_inputs(version, bins)
    if made := error_model_make(version, labelled, CalibrationSource.REFERENCE_ROWS):
        return made
    days = first_days(version, now)
    if days is None:
        return None
    labelled = window_inputs(model, [version.pk], bins, days)
    return error_model_make(version, labelled, CalibrationSource.FIRST_DAYS, days)


def error_models_freeze(*, model_id: int, now: datetime) -> int:
    """Fit an error model for each version of a regression model that has none of its own
    and whose reference is ready, lend production's to the others, and mark the hours of
    every version whose model changed dirty; returns how many changed (the jobs run it after
    aggregation, and aggregate again when it is not 0)."""
    model = MLModel.objects.get(pk=model_id)
    if model.task != Task.REGRESSION:
        return 0
    stored = {row.version_id: row for row in ErrorModel.objects.filter(model=model)}
    versions = ModelVersion.objects.filter(model=model).defer("lineage")
    changed = []
    for version in versions:
        row = stored.get(version.pk)
        if row is not None and row.fitted_on_id == version.pk:
            continue
        made = error_model_choose(model, version, now)
        if made is not None:
            stored[version.pk] = made
            changed.append(version)
    own = {v: row for v, row in stored.items() if row.fitted_on_id == v}
    production = production_version_id(model, own) if own else None
    for version in versions:
        row = stored.get(version.pk)
        if production is None or (row is not None and row.fitted_on_id == version.pk):
            continue
        lent = own[production]
        if row is None or row.fitted_on_id != production or row.terms != lent.terms:
            stored[version.pk] = borrowed(version, lent)
            changed.append(version)
    for version in changed:
        ErrorModel.objects.filter(version=version).delete()
        stored[version.pk].save()
        version_hours_mark_dirty(version)
    return len(changed)


def borrowed(version: ModelVersion, lent: ErrorModel) -> ErrorModel:
    return ErrorModel(
        model_id=version.model_id,
        version=version,
        fitted_on_id=lent.fitted_on_id,
        source=lent.source,
        reference_start=lent.reference_start,
        reference_end=lent.reference_end,
        labelled=lent.labelled,
        terms=lent.terms,
    )


def loss_windows(*, model, scope, granularity, key, version_ids) -> dict:
    """{window: LossSums}: the stored sums of the versions in scope, added up per window."""
    rows = sketches_read(
        model=model,
        kind=SketchKind.LOSS,
        start=scope["start"],
        end=scope["end"],
        version_ids=version_ids,
        segment=scope["segment"],
        hourly=granularity == "hour",
    )
    windows: dict = defaultdict(lambda: None)
    for row in rows:
        (values,), _ = sparse_decode(bytes(row.data))
        sums = LossSums(values)
        moment = key(row.start)
        windows[moment] = sums if windows[moment] is None else windows[moment] + sums
    return dict(windows)


def loss_references(model: MLModel, version: str | None) -> list[dict]:
    """What fitted each version's error model (the answer's `reference`), in the shape of
    the calibrations' (`calibrated_on`: the version whose reference it was fitted on)."""
    names = dict(ModelVersion.objects.filter(model=model).values_list("pk", "version"))
    return [
        {
            "version": names[row.version_id],
            "calibrated_on": names[row.fitted_on_id],
            "source": row.source,
            "start": row.reference_start,
            "end": row.reference_end,
            "labelled": row.labelled,
        }
        for row in ErrorModel.objects.filter(model=model).order_by("version_id")
        if version is None or names[row.version_id] == version
    ]
