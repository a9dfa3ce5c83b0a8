from collections import Counter
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from factory.models import MLModel, Task
from monitoring.models import SketchKind
from monitoring.pipeline.bins import UNKNOWN, Bins
from monitoring.pipeline.codec import categorical_encode, confusion_encode
from monitoring.stats.auc import score_histogram
from monitoring.stats.codec import counts_encode, histogram_encode, score_histogram_encode
from monitoring.stats.delay import delay_counts
from monitoring.stats.histograms import is_missing, numeric_histogram
from monitoring.stats.profile import category_key, numeric_values, out_of_range_count


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
    group = frame_columns(
        pd.DataFrame(
            {
                "features": [{bins.name: v} for v in values],
                "outcome": None,
                "score": None,
                "delay_s": None,
                "prediction": None,
            }
        ),
        {bins.name: bins},
        "1",
    )
    empty = MLModel(task=Task.REGRESSION)
    return group_sketches(model=empty, bins={bins.name: bins}, group=group)[0]


def number_range_check(name: str, column: list) -> None:
    """Fail the hour on a number a float cannot hold, as PostgreSQL's float8 cast fails the
    sql path's chunk: both paths leave such an hour out, recorded, rather than bin it."""
    bad = out_of_range_count(column)
    if bad:
        raise ValueError(f"feature {name!r} holds {bad} numbers outside float range")


def frame_columns(group: pd.DataFrame, bins: dict[str, Bins], positive: str) -> GroupColumns:
    """The pandas path's reading of one group's rows."""
    judged = group[group["outcome"].notna()]
    scored = judged[judged["score"].notna()]
    features = [f or {} for f in group["features"]]
    numbers, categories, present = {}, {}, {}
    for name, feature in bins.items():
        column = [row.get(name) for row in features]
        if feature.kind == "numerical":
            number_range_check(name, column)
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
        numbers=numbers,
        categories=categories,
        present=present,
    )
