"""Estimated performance before the outcomes: Canary's, from its aggregates, against NannyML's
CBPE on the raw rows, in the same run.

    make bench-deps   # NannyML lives in .venv-bench, apart from the app
    DATABASE_URL=postgres://.../canary_bench .venv/bin/python bench/estimate.py \
        [--rows 1000000] [--days 30] [--reference-days 7]

A binary classifier's rows over `--days` days: its scores are not calibrated (the true
probability is a distortion of the score), and the customers drift after the reference days
(more high scores), with no concept shift. The reference days are ingested with their
outcomes and named the model's estimation reference; the later days without. Each later day
is a chunk: Canary's `estimated:roc_auc` and `estimated:accuracy` per day (read from stored
aggregates with empty caches) and NannyML's CBPE per day (fitted on the reference rows) are
each held against the realised value of the day, computed with scikit-learn from the outcomes
that were drawn but not sent. Prints one JSON object on the last line: `canary_s`,
`canary_aggregate_s` (the jobs' time to aggregate the rows), `nannyml_s`, `speedup`
(`nannyml_s` over `canary_s`), `canary_mae` and `nannyml_mae` (mean absolute error of the
estimated ROC AUC against the realised, per chunk), the same for accuracy, and
`max_difference` (largest gap between the two estimates of ROC AUC). Goal: `speedup` at least
20 with `canary_mae` at most 1.1 times `nannyml_mae`.

    ... bench/estimate.py --task multiclass [--rows 300000]

The same for a three-class model that logs per-class `scores` (`score:CLASS` columns): its
scores are not calibrated either, and its customers drift after the reference days. Canary's
`estimated:accuracy` and `estimated:macro_f1` per day against NannyML's multiclass CBPE
(`accuracy`, and `f1`, which NannyML macro-averages); the last line names `max_difference`
(largest gap between the two estimates of accuracy, goal at most 0.01), the same for macro F1,
and each estimate's mean absolute error against the realised values (scikit-learn).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import ROOT, django_setup, frames_ingest, model_delete

NAME = "bench-estimate"
GOAL_SPEEDUP = 20
GOAL_MAE_RATIO = 1.1
GOAL_MULTICLASS_DIFFERENCE = 0.01
CLASSES = ("a", "b", "c")


def frames(rows: int, days: int, reference_days: int, seed: int = 11):
    """Predictions, the reference's outcomes, and every row's drawn outcome (for the truth)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    start = pd.Timestamp.now("UTC").floor("D") - pd.Timedelta(days=days + 1)
    offsets = np.sort(rng.uniform(0, days * 86400, rows))
    at = start + pd.to_timedelta(offsets, unit="s")
    later = offsets >= reference_days * 86400
    # Covariate shift: after the reference, more customers of high scores.
    logit = rng.normal(-0.8, 1.3, rows) + np.where(later, 0.6 * offsets / (days * 86400), 0.0)
    score = (1 / (1 + np.exp(-logit))).round(4)
    truth = 1 / (1 + np.exp(-(1.4 * logit + 0.3)))  # the scores are not calibrated
    outcome = (rng.uniform(size=rows) < truth).astype(int)
    ids = np.char.add("e-", np.arange(rows).astype(str))
    predictions = pd.DataFrame(
        {
            "prediction_id": ids,
            "timestamp": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "model_version": "1.0",
            "prediction": (score >= 0.5).astype(int),
            "score": score,
            "segment": "all",
            "x": rng.normal(0, 1, rows).round(3),
        }
    )
    outcomes = pd.DataFrame(
        {
            "prediction_id": ids,
            "observed_at": (at + pd.Timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "outcome": outcome,
        }
    )[~later]
    truth_rows = pd.DataFrame(
        {
            "timestamp": at,
            "score": score,
            "prediction": (score >= 0.5).astype(int),
            "outcome": outcome,
        }
    )
    return predictions, outcomes, truth_rows, start + pd.Timedelta(days=reference_days)


def multiclass_frames(rows: int, days: int, reference_days: int, seed: int = 12):
    """Three classes' softmax scores, over-confident (the true chances are the scores'
    logits shrunk), the first class growing after the reference days: predictions with a
    `score:CLASS` column per class, the reference's outcomes, and every row's truth."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    start = pd.Timestamp.now("UTC").floor("D") - pd.Timedelta(days=days + 1)
    offsets = np.sort(rng.uniform(0, days * 86400, rows))
    at = start + pd.to_timedelta(offsets, unit="s")
    later = offsets >= reference_days * 86400
    drift = np.where(later, 0.8 * offsets / (days * 86400), 0.0)
    logits = rng.normal(0, 1.6, (rows, 3)) + np.column_stack([drift, 0 * drift, -drift])
    scores = softmax(logits).round(4)
    scores[:, 2] = (1 - scores[:, 0] - scores[:, 1]).round(4)
    truth = softmax(0.7 * logits + np.array([0.2, 0.0, -0.2]))
    outcome = (rng.uniform(size=(rows, 1)) > np.cumsum(truth, axis=1)).sum(axis=1)
    labels = np.array(CLASSES)
    predicted = labels[scores.argmax(axis=1)]
    ids = np.char.add("m-", np.arange(rows).astype(str))
    columns = {f"score:{label}": scores[:, k] for k, label in enumerate(CLASSES)}
    predictions = pd.DataFrame(
        {
            "prediction_id": ids,
            "timestamp": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "model_version": "1.0",
            "prediction": predicted,
            **columns,
            "segment": "all",
        }
    )
    outcomes = pd.DataFrame(
        {
            "prediction_id": ids,
            "observed_at": (at + pd.Timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "outcome": labels[np.minimum(outcome, 2)],
        }
    )
    truth_rows = pd.DataFrame(
        {"timestamp": at, **columns, "prediction": predicted, "outcome": outcomes["outcome"]}
    )
    return predictions, outcomes[~later], truth_rows, start + pd.Timedelta(days=reference_days)


def softmax(logits):
    import numpy as np

    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def realised_multiclass(truth_rows, reference_end) -> dict[str, dict]:
    """Each later day's accuracy and macro F1 on its rows (scikit-learn)."""
    from sklearn.metrics import accuracy_score, f1_score

    later = truth_rows[truth_rows["timestamp"] >= reference_end]
    out = {}
    for day, rows in later.groupby(later["timestamp"].dt.strftime("%Y-%m-%d")):
        out[day] = {
            "accuracy": accuracy_score(rows["outcome"], rows["prediction"]),
            "macro_f1": f1_score(rows["outcome"], rows["prediction"], average="macro"),
        }
    return out


def realised(truth_rows, reference_end) -> dict[str, dict]:
    """Each later day's ROC AUC and accuracy on its rows (scikit-learn)."""
    from sklearn.metrics import accuracy_score, roc_auc_score

    later = truth_rows[truth_rows["timestamp"] >= reference_end]
    out = {}
    for day, rows in later.groupby(later["timestamp"].dt.strftime("%Y-%m-%d")):
        out[day] = {
            "roc_auc": roc_auc_score(rows["outcome"], rows["score"]),
            "accuracy": accuracy_score(rows["outcome"], rows["prediction"]),
        }
    return out


def canary_estimates(
    model, reference_start, reference_end, metrics=("roc_auc", "accuracy")
) -> tuple[dict, float, float]:
    """Canary's estimate of each day after the reference, from the stored aggregates with
    empty caches; and the seconds of the jobs (aggregation, calibration) and of the reading."""
    from django.core.cache import cache

    from monitoring.jobs import jobs_run
    from monitoring.metrics.estimates import estimation_reference_set
    from monitoring.metrics.series import metric_series

    estimation_reference_set(
        model=model,
        window={"start": reference_start.isoformat(), "end": reference_end.isoformat()},
    )
    started = time.perf_counter()
    report = jobs_run(model_id=model.pk)
    aggregate_s = time.perf_counter() - started
    assert not report.failed, report.failures
    cache.clear()
    started = time.perf_counter()
    series = {
        metric: metric_series(
            model=model, metric=f"estimated:{metric}", granularity="day", start=reference_end
        )
        for metric in metrics
    }
    read_s = time.perf_counter() - started
    out: dict[str, dict] = {}
    for metric, points in series.items():
        for point in points:
            if point.value is not None:
                out.setdefault(f"{point.start:%Y-%m-%d}", {})[metric] = point.value
    return out, aggregate_s, read_s


def nannyml_estimates(truth_rows, reference_end) -> tuple[dict, float]:
    """NannyML's CBPE per day in .venv-bench: binary, or multiclass when the rows have
    `score:CLASS` columns."""
    python = ROOT / ".venv-bench" / "bin" / "python"
    if not python.exists():
        sys.exit("NannyML is not installed: run `make bench-deps` first.")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rows.parquet"
        truth_rows.to_parquet(path)
        done = subprocess.run(
            [
                str(python),
                str(ROOT / "bench" / "nannyml_estimate.py"),
                str(path),
                reference_end.isoformat(),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    return answer["chunks"], answer["seconds"]


def mae(estimates: dict, truth: dict, metric: str) -> float:
    gaps = [abs(estimates[day][metric] - truth[day][metric]) for day in truth if day in estimates]
    return sum(gaps) / len(gaps) if gaps else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--task", choices=("binary", "multiclass"), default="binary")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--reference-days", type=int, default=7)
    args = parser.parse_args()
    django_setup()
    if args.task == "multiclass":
        print(json.dumps(multiclass_run(args.rows or 300_000, args.days, args.reference_days)))
        return
    args.rows = args.rows or 1_000_000
    from factory.services import model_create

    predictions, outcomes, truth_rows, reference_end = frames(
        args.rows, args.days, args.reference_days
    )
    model_delete(NAME)
    model = model_create(name=NAME, task="binary_classification", positive_class=1)
    frames_ingest(model, predictions, outcomes)
    log(f"ingested {len(predictions):,} predictions and {len(outcomes):,} reference outcomes")
    reference_start = truth_rows["timestamp"].min().floor("D")
    canary, aggregate_s, canary_s = canary_estimates(model, reference_start, reference_end)
    log(f"canary: jobs {aggregate_s:.1f} s, estimates {canary_s:.3f} s")
    nannyml, nannyml_s = nannyml_estimates(truth_rows, reference_end)
    log(f"nannyml: {nannyml_s:.1f} s")
    truth = realised(truth_rows, reference_end)
    days = [day for day in truth if day in canary and day in nannyml]
    result = {
        "rows": args.rows,
        "chunks": len(days),
        "canary_s": round(canary_s, 3),
        "canary_aggregate_s": round(aggregate_s, 1),
        "nannyml_s": round(nannyml_s, 2),
        "speedup": round(nannyml_s / canary_s, 1),
        "canary_mae": round(mae(canary, truth, "roc_auc"), 4),
        "nannyml_mae": round(mae(nannyml, truth, "roc_auc"), 4),
        "canary_accuracy_mae": round(mae(canary, truth, "accuracy"), 4),
        "nannyml_accuracy_mae": round(mae(nannyml, truth, "accuracy"), 4),
        "max_difference": round(
            max(abs(canary[d]["roc_auc"] - nannyml[d]["roc_auc"]) for d in days), 4
        ),
    }
    result["goal_met"] = (
        result["speedup"] >= GOAL_SPEEDUP
        and result["canary_mae"] <= GOAL_MAE_RATIO * result["nannyml_mae"]
    )
    print(json.dumps(result))


def multiclass_run(rows: int, days: int, reference_days: int) -> dict:
    """The multiclass agreement: Canary's estimates per day against NannyML's, and both
    against the realised values."""
    from factory.services import model_create

    predictions, outcomes, truth_rows, reference_end = multiclass_frames(rows, days, reference_days)
    model_delete(f"{NAME}-multiclass")
    model = model_create(name=f"{NAME}-multiclass", task="multiclass_classification")
    frames_ingest(model, predictions, outcomes)
    log(f"ingested {len(predictions):,} predictions and {len(outcomes):,} reference outcomes")
    reference_start = truth_rows["timestamp"].min().floor("D")
    canary, aggregate_s, canary_s = canary_estimates(
        model, reference_start, reference_end, metrics=("accuracy", "macro_f1")
    )
    log(f"canary: jobs {aggregate_s:.1f} s, estimates {canary_s:.3f} s")
    nannyml, nannyml_s = nannyml_estimates(truth_rows, reference_end)
    log(f"nannyml: {nannyml_s:.1f} s")
    truth = realised_multiclass(truth_rows, reference_end)
    days_ = [day for day in truth if day in canary and day in nannyml]

    def largest_gap(metric: str) -> float:
        return round(max(abs(canary[d][metric] - nannyml[d][metric]) for d in days_), 4)

    result = {
        "task": "multiclass",
        "rows": rows,
        "chunks": len(days_),
        "canary_s": round(canary_s, 3),
        "canary_aggregate_s": round(aggregate_s, 1),
        "nannyml_s": round(nannyml_s, 2),
        "speedup": round(nannyml_s / canary_s, 1),
        "canary_accuracy_mae": round(mae(canary, truth, "accuracy"), 4),
        "nannyml_accuracy_mae": round(mae(nannyml, truth, "accuracy"), 4),
        "canary_macro_f1_mae": round(mae(canary, truth, "macro_f1"), 4),
        "nannyml_macro_f1_mae": round(mae(nannyml, truth, "macro_f1"), 4),
        "max_difference": largest_gap("accuracy"),
        "max_macro_f1_difference": largest_gap("macro_f1"),
    }
    result["goal_met"] = result["max_difference"] <= GOAL_MULTICLASS_DIFFERENCE
    return result


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
