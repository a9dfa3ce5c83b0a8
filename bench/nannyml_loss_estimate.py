"""NannyML's DLE on a Parquet file of regression rows; run by bench/loss_estimate.py in
.venv-bench.

    .venv-bench/bin/python bench/nannyml_loss_estimate.py ROWS.parquet REFERENCE_END

The rows have `timestamp`, `prediction`, `outcome` and the features (every other column;
text columns are categorical); those before REFERENCE_END (an ISO moment) are the reference
DLE is fitted on (LightGBM with NannyML's default settings), the others are estimated a day a
chunk. Prints one JSON object: the seconds of fit and estimate, and per chunk (its first day)
the estimated MAE and RMSE.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")  # else ~20 s offline

import pandas as pd


def main(path: str, reference_end: str) -> None:
    import nannyml as nml

    rows = pd.read_parquet(path)
    for name in rows.columns:
        if rows[name].dtype == object:
            rows[name] = rows[name].astype("category")
    end = pd.Timestamp(reference_end)
    reference, analysis = rows[rows["timestamp"] < end], rows[rows["timestamp"] >= end]
    features = [c for c in rows.columns if c not in ("timestamp", "prediction", "outcome")]
    started = time.perf_counter()
    estimator = nml.DLE(
        feature_column_names=features,
        y_pred="prediction",
        y_true="outcome",
        timestamp_column_name="timestamp",
        metrics=["mae", "rmse"],
        chunk_period="D",
        tune_hyperparameters=False,
    )
    estimator.fit(reference)
    result = estimator.estimate(analysis.drop(columns=["outcome"])).filter(period="analysis")
    seconds = time.perf_counter() - started
    frame = result.to_df()
    chunks = {}
    for _, row in frame.iterrows():
        day = pd.Timestamp(row[("chunk", "start_date")]).strftime("%Y-%m-%d")
        chunks[day] = {
            "mae": float(row[("mae", "value")]),
            "rmse": float(row[("rmse", "value")]),
        }
    print(json.dumps({"seconds": seconds, "chunks": chunks}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
