"""Estimated MAE and RMSE before the outcomes: Canary's direct loss estimation, from its
aggregates, against NannyML's DLE on the raw rows, in the same run.

    make bench-deps   # NannyML lives in .venv-bench, apart from the app
    DATABASE_URL=postgres://.../canary_bench .venv/bin/python bench/loss_estimate.py \
        [--rows 300000] [--days 30] [--reference-days 7]

A regression model's rows over `--days` days: its errors' spread depends on two numerical
features and a categorical one (each on its own, no interaction), and the inputs drift after
the reference days, with no concept shift. The reference days are ingested with their
outcomes and named the model's estimation reference; the later days without. Each later day
is a chunk: Canary's `estimated:mae` and `estimated:rmse` per day (read from stored
aggregates with empty caches) and NannyML's DLE per day (LightGBM fitted on the same
reference rows) are each held against the realised value of the day, computed from the
outcomes that were drawn but not sent. Prints one JSON object on the last line: `canary_s`,
`canary_aggregate_s` (the jobs' time: aggregation, the error model's fit and the second
aggregation that applies it), `nannyml_s`, `max_relative_difference` (largest
|canary - nannyml| / nannyml of the daily MAE estimates; goal at most 0.05), the same for
RMSE, and each estimator's mean absolute error against the realised MAE and RMSE per chunk.
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

NAME = "bench-loss-estimate"
GOAL_RELATIVE_DIFFERENCE = 0.05
CATEGORIES = ("north", "south", "east", "west")


def frames(rows: int, days: int, reference_days: int, seed: int = 13):
    """Predictions, the reference's outcomes, and every row's drawn outcome (for the truth)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    start = pd.Timestamp.now("UTC").floor("D") - pd.Timedelta(days=days + 1)
    offsets = np.sort(rng.uniform(0, days * 86400, rows))
    at = start + pd.to_timedelta(offsets, unit="s")
    later = offsets >= reference_days * 86400
    drift = np.where(later, offsets / (days * 86400), 0.0)  # 0 over the reference, then to 1
    size = rng.lognormal(0.0 + 0.4 * drift, 0.5, rows)
    age = rng.uniform(0, 30, rows) + 10 * drift
    region = np.array(CATEGORIES)[
        (rng.uniform(size=rows) ** (1 + drift) * len(CATEGORIES)).astype(int)
    ]
    spread = (
        2
        + 3 * np.sqrt(size)
        + 0.1 * age
        + np.select([region == "north", region == "south"], [0.0, 2.0], 4.0)
    )
    prediction = (50 + 20 * size + 0.5 * age).round(3)
    outcome = (prediction + rng.normal(0, 1, rows) * spread).round(3)
    ids = np.char.add("r-", np.arange(rows).astype(str))
    features = {"size": size.round(4), "age": age.round(3), "region": region}
    predictions = pd.DataFrame(
        {
            "prediction_id": ids,
            "timestamp": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "model_version": "1.0",
            "prediction": prediction,
            "segment": "all",
            **features,
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
        {"timestamp": at, "prediction": prediction, "outcome": outcome, **features}
    )
    return predictions, outcomes, truth_rows, start + pd.Timedelta(days=reference_days)


def realised(truth_rows, reference_end) -> dict[str, dict]:
    """Each later day's MAE and RMSE on its rows (scikit-learn)."""
    from sklearn.metrics import mean_absolute_error, root_mean_squared_error

    later = truth_rows[truth_rows["timestamp"] >= reference_end]
    out = {}
    for day, rows in later.groupby(later["timestamp"].dt.strftime("%Y-%m-%d")):
        out[day] = {
            "mae": mean_absolute_error(rows["outcome"], rows["prediction"]),
            "rmse": root_mean_squared_error(rows["outcome"], rows["prediction"]),
        }
    return out


def canary_estimates(model, reference_start, reference_end) -> tuple[dict, float, float]:
    """Canary's estimate of each day after the reference, from the stored aggregates with
    empty caches; and the seconds of the jobs and of the reading."""
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
        for metric in ("mae", "rmse")
    }
    read_s = time.perf_counter() - started
    out: dict[str, dict] = {}
    for metric, points in series.items():
        for point in points:
            if point.value is not None:
                out.setdefault(f"{point.start:%Y-%m-%d}", {})[metric] = point.value
    return out, aggregate_s, read_s


def nannyml_estimates(truth_rows, reference_end) -> tuple[dict, float]:
    python = ROOT / ".venv-bench" / "bin" / "python"
    if not python.exists():
        sys.exit("NannyML is not installed: run `make bench-deps` first.")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rows.parquet"
        truth_rows.to_parquet(path)
        done = subprocess.run(
            [
                str(python),
                str(ROOT / "bench" / "nannyml_loss_estimate.py"),
                str(path),
                reference_end.isoformat(),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    return answer["chunks"], answer["seconds"]


def mean_error(estimates: dict, truth: dict, metric: str, days: list[str]) -> float:
    return sum(abs(estimates[day][metric] - truth[day][metric]) for day in days) / len(days)


def largest_relative(canary: dict, nannyml: dict, metric: str, days: list[str]) -> float:
    return max(abs(canary[d][metric] - nannyml[d][metric]) / nannyml[d][metric] for d in days)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--reference-days", type=int, default=7)
    args = parser.parse_args()
    django_setup()
    from factory.services import model_create

    predictions, outcomes, truth_rows, reference_end = frames(
        args.rows, args.days, args.reference_days
    )
    model_delete(NAME)
    model = model_create(name=NAME, task="regression")
    frames_ingest(model, predictions, outcomes)
    log(f"ingested {len(predictions):,} predictions and {len(outcomes):,} reference outcomes")
    reference_start = truth_rows["timestamp"].min().floor("D")
    canary, aggregate_s, canary_s = canary_estimates(model, reference_start, reference_end)
    log(f"canary: jobs {aggregate_s:.1f} s, estimates {canary_s:.3f} s")
    nannyml, nannyml_s = nannyml_estimates(truth_rows, reference_end)
    log(f"nannyml: {nannyml_s:.1f} s")
    truth = realised(truth_rows, reference_end)
    days = [day for day in truth if day in canary and day in nannyml]
    for day in days:
        log(
            f"{day}: MAE realised {truth[day]['mae']:.3f}, canary {canary[day]['mae']:.3f}, "
            f"nannyml {nannyml[day]['mae']:.3f}"
        )
    result = {
        "rows": args.rows,
        "chunks": len(days),
        "canary_s": round(canary_s, 3),
        "canary_aggregate_s": round(aggregate_s, 1),
        "nannyml_s": round(nannyml_s, 2),
        "max_relative_difference": round(largest_relative(canary, nannyml, "mae", days), 4),
        "max_relative_difference_rmse": round(largest_relative(canary, nannyml, "rmse", days), 4),
        "canary_mae_error": round(mean_error(canary, truth, "mae", days), 4),
        "nannyml_mae_error": round(mean_error(nannyml, truth, "mae", days), 4),
        "canary_rmse_error": round(mean_error(canary, truth, "rmse", days), 4),
        "nannyml_rmse_error": round(mean_error(nannyml, truth, "rmse", days), 4),
    }
    result["goal_met"] = result["max_relative_difference"] <= GOAL_RELATIVE_DIFFERENCE
    print(json.dumps(result))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
