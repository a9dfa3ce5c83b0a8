"""NannyML's CBPE on a Parquet file of rows; run by bench/estimate.py in .venv-bench.

    .venv-bench/bin/python bench/nannyml_estimate.py ROWS.parquet REFERENCE_END

The rows have `timestamp`, `score`, `prediction` and `outcome`; those before REFERENCE_END (an
ISO moment) are the reference CBPE is fitted on, the others are estimated a day a chunk. Prints
one JSON object: the seconds of fit and estimate, and per chunk (its first day) the estimated
ROC AUC and accuracy. Rows with `score:CLASS` columns instead of `score` are a multiclass
model's: its CBPE estimates accuracy and macro F1 (NannyML's multiclass `f1`, macro-averaged),
reported as `accuracy` and `macro_f1`.
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
    end = pd.Timestamp(reference_end)
    reference, analysis = rows[rows["timestamp"] < end], rows[rows["timestamp"] >= end]
    started = time.perf_counter()
    classes = {c[len("score:") :]: c for c in rows.columns if c.startswith("score:")}
    names = {"roc_auc": "roc_auc", "accuracy": "accuracy"}
    if classes:
        names = {"accuracy": "accuracy", "f1": "macro_f1"}
    estimator = nml.CBPE(
        y_pred_proba=classes or "score",
        y_pred="prediction",
        y_true="outcome",
        timestamp_column_name="timestamp",
        metrics=list(names),
        chunk_period="D",
        problem_type="classification_multiclass" if classes else "classification_binary",
    )
    estimator.fit(reference)
    result = estimator.estimate(analysis.drop(columns=["outcome"])).filter(period="analysis")
    seconds = time.perf_counter() - started
    frame = result.to_df()
    chunks = {}
    for _, row in frame.iterrows():
        day = pd.Timestamp(row[("chunk", "start_date")]).strftime("%Y-%m-%d")
        chunks[day] = {ours: float(row[(theirs, "value")]) for theirs, ours in names.items()}
    print(json.dumps({"seconds": seconds, "chunks": chunks}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
