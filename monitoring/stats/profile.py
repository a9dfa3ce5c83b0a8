"""Reference profiles: the JSON form of a reference, to and from the statistics' own types.

A profile is what a version registers as its drift baseline when it does not send raw rows,
and what the client library produces (format shared with the model factory)::

    {"format": "canary-profile/1", "rows": N,
     "features": {NAME: FEATURE}, "score": FEATURE | None, "prediction": FEATURE | None}

A numerical FEATURE is ``{"kind": "numerical", "edges", "counts", "at_edges", "sums",
"sum_sq", "missing", "deciles"}`` (the fields of `NumericHistogram` plus the deciles of
`NumericReference`); a categorical one is ``{"kind": "categorical", "counts": {value: n},
"missing"}``. Category values are keyed by `category_key`, the same text the ingestion uses
for labels, so a reference's 1, 1.0 and true meet the current window's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from monitoring.stats.histograms import (
    DEFAULT_FINE_BINS,
    NumericHistogram,
    NumericReference,
    decile_edges,
    is_missing,
    numeric_bin_edges,
    numeric_histogram,
)

PROFILE_FORMAT = "canary-profile/1"


class ProfileError(ValueError):
    """A profile or raw reference that cannot be read; the message says where."""


@dataclass(frozen=True)
class CategoricalReference:
    counts: dict[str, int]
    missing: int = 0

    @property
    def n(self) -> int:
        return sum(self.counts.values())


FeatureReference = NumericReference | CategoricalReference


def category_key(value: Any) -> str:
    """One text per category: booleans as 1/0, integral floats as integers (as labels are)."""
    if isinstance(value, bool | np.bool_):
        return "1" if value else "0"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def is_numeric_value(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def feature_kind(values: Iterable[Any]) -> str | None:
    """numerical if every present value is a number, else categorical; None if all missing."""
    present = [v for v in values if not is_missing(v)]
    if not present:
        return None
    return "numerical" if all(is_numeric_value(v) for v in present) else "categorical"


def as_finite_float(value: Any) -> float:
    """The value as a finite float; NaN if it is not a number or outside float range (a
    401-digit integer stored past validation must not stop a profile)."""
    if not is_numeric_value(value):
        return np.nan
    try:
        number = float(value)
    except OverflowError:
        return np.nan
    return number if math.isfinite(number) else np.nan


def numeric_values(values: Iterable[Any]) -> np.ndarray:
    """Floats, with NaN for missing values, values that are not numbers and numbers outside
    float range."""
    return np.array([as_finite_float(v) for v in values], dtype=float)


def out_of_range_count(values: Iterable[Any]) -> int:
    """How many values are numbers a float cannot hold (or infinities)."""
    return sum(1 for v in values if is_numeric_value(v) and np.isnan(as_finite_float(v)))


def categorical_reference(values: Iterable[Any]) -> CategoricalReference:
    counts: dict[str, int] = {}
    missing = 0
    for value in values:
        if is_missing(value):
            missing += 1
        else:
            key = category_key(value)
            counts[key] = counts.get(key, 0) + 1
    return CategoricalReference(counts, missing)


# --- to and from JSON ---


def numeric_to_json(reference: NumericReference) -> dict:
    h = reference.histogram
    return {
        "kind": "numerical",
        "edges": h.edges.tolist(),
        "counts": h.counts.tolist(),
        "at_edges": h.at_edges.tolist(),
        "sums": h.sums.tolist(),
        "sum_sq": float(h.sum_sq),
        "missing": int(h.missing),
        "deciles": reference.deciles.tolist(),
    }


def categorical_to_json(reference: CategoricalReference) -> dict:
    return {"kind": "categorical", "counts": dict(reference.counts), "missing": reference.missing}


def feature_to_json(reference: FeatureReference) -> dict:
    if isinstance(reference, NumericReference):
        return numeric_to_json(reference)
    return categorical_to_json(reference)


def feature_from_json(data: Mapping, where: str) -> FeatureReference:
    if not isinstance(data, Mapping):
        raise ProfileError(f"{where} must be an object")
    kind = data.get("kind")
    if kind == "categorical":
        counts = data.get("counts")
        if not isinstance(counts, Mapping) or not all(_is_count(c) for c in counts.values()):
            raise ProfileError(f"{where}.counts must map each category to a count")
        return CategoricalReference(
            {str(k): int(c) for k, c in counts.items()}, _count(data, "missing", where)
        )
    if kind == "numerical":
        return _numeric_from_json(data, where)
    raise ProfileError(f"{where}.kind must be numerical or categorical")


def _numeric_from_json(data: Mapping, where: str) -> NumericReference:
    try:
        edges = np.asarray(data["edges"], dtype=float)
        counts = np.asarray(data["counts"], dtype=np.int64)
        at_edges = np.asarray(data["at_edges"], dtype=np.int64)
        sums = np.asarray(data["sums"], dtype=float)
        deciles = np.asarray(data.get("deciles", []), dtype=float)
        sum_sq = float(data["sum_sq"])
    except (KeyError, TypeError, ValueError) as error:
        raise ProfileError(f"{where} lacks or mangles a numerical field: {error}") from None
    if edges.ndim != 1 or np.any(np.diff(edges) <= 0) or not np.all(np.isfinite(edges)):
        raise ProfileError(f"{where}.edges must be finite and strictly increasing")
    size = edges.size + 1
    if counts.shape != (size,) or sums.shape != (size,) or at_edges.shape != (edges.size,):
        raise ProfileError(
            f"{where}: counts and sums need {size} entries (edges + 1), at_edges {edges.size}"
        )
    if np.any(counts < 0) or np.any(at_edges < 0):
        raise ProfileError(f"{where}: counts cannot be negative")
    histogram = NumericHistogram(
        edges, counts, at_edges, sums, sum_sq, _count(data, "missing", where)
    )
    return NumericReference(histogram, deciles_on_edges(edges, deciles))


def deciles_on_edges(edges: np.ndarray, deciles: np.ndarray) -> np.ndarray:
    """Deciles moved onto the nearest fine edge, so that decile counts re-bin exactly."""
    if edges.size == 0 or deciles.size == 0:
        return np.array([], dtype=float)
    nearest = np.clip(np.searchsorted(edges, deciles), 0, edges.size - 1)
    below = np.clip(nearest - 1, 0, edges.size - 1)
    closer = np.where(
        np.abs(edges[below] - deciles) < np.abs(edges[nearest] - deciles), below, nearest
    )
    return np.unique(edges[closer])


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _count(data: Mapping, key: str, where: str) -> int:
    value = data.get(key, 0)
    if not _is_count(value):
        raise ProfileError(f"{where}.{key} must be a count (a whole number >= 0)")
    return value


@dataclass(frozen=True)
class Profile:
    rows: int
    features: dict[str, FeatureReference]


def profile_from_json(data: Mapping, *, edges: Mapping[str, np.ndarray] | None = None) -> Profile:
    """Read a registered reference: a canary-profile/1 object or raw ``{"rows": [...]}``.

    Raw rows' numerical features are binned on ``edges`` where given (a model's fixed bins),
    else on their own fine quantiles; a profile keeps the edges it was sent with."""
    if not isinstance(data, Mapping):
        raise ProfileError("reference must be an object")
    if data.get("format") == PROFILE_FORMAT:
        features = data.get("features") or {}
        if not isinstance(features, Mapping):
            raise ProfileError("reference.features must be an object")
        parsed = {
            str(name): feature_from_json(feature, f"reference.features.{name}")
            for name, feature in features.items()
        }
        return Profile(_count(data, "rows", "reference"), parsed)
    rows = data.get("rows")
    if isinstance(rows, list):
        return profile_from_rows(rows, edges=edges)
    raise ProfileError(
        f'reference must be {{"format": "{PROFILE_FORMAT}", ...}} or {{"rows": [...]}}'
    )


def profile_outputs(data: Mapping, *, prediction_kind: str) -> dict[str, FeatureReference]:
    """The reference's model outputs, ``score`` and ``prediction``, where it has them.

    A profile carries them as FEATURE entries; raw rows carry ``score`` and ``prediction`` per
    row. ``prediction_kind`` (categorical for classifiers, numerical for regression) decides
    how raw predictions are profiled, since 0/1 labels would otherwise look numerical.
    """
    if not isinstance(data, Mapping):
        return {}
    if data.get("format") == PROFILE_FORMAT:
        return {
            name: feature_from_json(data[name], f"reference.{name}")
            for name in ("score", "prediction")
            if data.get(name) is not None
        }
    rows = data.get("rows")
    if not isinstance(rows, list):
        return {}
    outputs: dict[str, FeatureReference] = {}
    columns = {
        name: [row.get(name) if isinstance(row, Mapping) else None for row in rows]
        for name in ("score", "prediction")
    }
    kinds = {"score": "numerical", "prediction": prediction_kind}
    for name, values in columns.items():
        if all(is_missing(v) for v in values):
            continue
        if kinds[name] == "numerical":
            outputs[name] = numeric_reference_on(numeric_values(values))
        else:
            outputs[name] = categorical_reference(values)
    return outputs


def profile_from_rows(
    rows: list, *, n_bins: int = DEFAULT_FINE_BINS, edges: Mapping[str, np.ndarray] | None = None
) -> Profile:
    """Profile raw reference rows ``{"features": {...}, "prediction", "score"}``, numerical
    features on the given fixed ``edges`` where a feature has them."""
    edges = edges or {}
    columns: dict[str, list] = {}
    for i, row in enumerate(rows):
        features = row.get("features") if isinstance(row, Mapping) else None
        if features is not None and not isinstance(features, Mapping):
            raise ProfileError(f"reference.rows[{i}].features must be an object")
        for name in features or {}:
            columns.setdefault(str(name), [])
    for name, values in columns.items():
        values.extend((row.get("features") or {}).get(name) for row in rows)
    features: dict[str, FeatureReference] = {}
    for name, values in columns.items():
        kind = feature_kind(values)
        if kind == "numerical":
            features[name] = numeric_reference_on(
                numeric_values(values), edges=edges.get(name), n_bins=n_bins
            )
        elif kind == "categorical":
            features[name] = categorical_reference(values)
    return Profile(len(rows), features)


def numeric_reference_on(
    values: np.ndarray, *, edges: np.ndarray | None = None, n_bins: int = DEFAULT_FINE_BINS
) -> NumericReference:
    """A numerical reference on the given fine edges (default: the values' own quantiles)."""
    if edges is None:
        edges = numeric_bin_edges(values, n_bins)
    deciles = deciles_on_edges(edges, decile_edges(values))
    return NumericReference(numeric_histogram(values, edges), deciles)


def deciles_from_histogram(histogram: NumericHistogram) -> np.ndarray:
    """Deciles of a binned sample, as the smallest fine edge whose ECDF reaches each tenth.

    Exact (equal to ``np.quantile(..., method="inverted_cdf")``) whenever the true decile is an
    edge, as it is for the sample the edges were drawn from; otherwise the next edge up.
    """
    n = histogram.n
    if n == 0 or histogram.edges.size == 0:
        return np.array([], dtype=float)
    cumulative = np.cumsum(histogram.counts)[:-1]
    position = np.searchsorted(cumulative, np.arange(1, 10) / 10 * n - 1e-9 * n, side="left")
    return np.unique(histogram.edges[np.clip(position, 0, histogram.edges.size - 1)])
