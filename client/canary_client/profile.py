"""A reference profile from a DataFrame, so a training pipeline need not send raw rows.

The format (`canary-profile/1`) is what the server's drift statistics read:
numerical features as fine histograms on the reference's quantiles plus its deciles (the same
edges and counts as the server's `numeric_bin_edges`/`numeric_histogram`, bins closed on the
right and open at both ends), categorical ones as counts per value. NumPy and pandas are needed
here only (`pip install canary-client[profile]`).
"""

from __future__ import annotations

PROFILE_FORMAT = "canary-profile/1"
FINE_BINS = 1000


def label_text(value) -> str:
    """The server's one text form per category: 1, 1.0 and True all read "1"."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def numerical_feature(values, n_bins: int = FINE_BINS) -> dict:
    import numpy as np

    array = np.asarray(values, dtype=float).ravel()
    present = array[~np.isnan(array)]
    if present.size:
        deciles = np.unique(np.quantile(present, np.arange(1, 10) / 10))
        quantiles = np.quantile(present, np.arange(n_bins + 1) / n_bins, method="inverted_cdf")
        edges = np.union1d(quantiles, deciles)
    else:
        deciles = edges = np.array([], dtype=float)
    index = np.searchsorted(edges, present, side="left")
    size = edges.size + 1
    on_edge = index < edges.size
    on_edge[on_edge] = edges[index[on_edge]] == present[on_edge]
    return {
        "kind": "numerical",
        "edges": edges.tolist(),
        "counts": np.bincount(index, minlength=size).astype(int).tolist(),
        "at_edges": np.bincount(index[on_edge], minlength=size)[: edges.size].astype(int).tolist(),
        "sums": np.bincount(index, weights=present, minlength=size).tolist(),
        "sum_sq": float(np.dot(present, present)),
        "missing": int(array.size - present.size),
        "deciles": deciles.tolist(),
    }


def categorical_feature(values) -> dict:
    import pandas as pd

    series = pd.Series(values, dtype=object)
    missing = series.isna()
    counts: dict[str, int] = {}
    for value, count in series[~missing].map(_python).map(label_text).value_counts().items():
        counts[value] = int(count)
    return {"kind": "categorical", "counts": counts, "missing": int(missing.sum())}


def _python(value):
    return value.item() if hasattr(value, "item") else value


def is_numerical(series) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def column_profile(series, categorical: bool) -> dict:
    return categorical_feature(series) if categorical else numerical_feature(series)


def reference_profile(
    df,
    *,
    prediction: str | None = "prediction",
    score: str | None = "score",
    categorical: tuple[str, ...] = (),
    prediction_kind: str = "categorical",
) -> dict:
    """Profile a reference DataFrame: every column but `prediction` and `score` is a feature.

    Numeric columns are numerical unless named in `categorical`; others are categorical.
    `prediction_kind` is "categorical" (classification) or "numerical" (regression).
    """
    special = {name for name in (prediction, score) if name}
    features = {
        str(name): column_profile(df[name], name in categorical or not is_numerical(df[name]))
        for name in df.columns
        if name not in special
    }
    return {
        "format": PROFILE_FORMAT,
        "rows": len(df),
        "features": features,
        "score": numerical_feature(df[score]) if score and score in df else None,
        "prediction": column_profile(df[prediction], prediction_kind == "categorical")
        if prediction and prediction in df
        else None,
    }
