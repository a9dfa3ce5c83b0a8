"""Drift of 20 numerical and 5 categorical features: Evidently, Canary on raw arrays, and
Canary from stored aggregates through the drift endpoint's service.

    DATABASE_URL=postgres://.../canary_bench .venv/bin/python bench/drift.py [--rows 1000000]

(a) Evidently's DataDriftPreset runs in .venv-bench (`make bench-deps`) as a subprocess;
(b) Canary's default tests on the raw arrays (exact KS/Wasserstein on sorted arrays, NumPy);
(c) the reference profile and the current window's hourly and daily histograms are stored
    with the aggregation's own functions, then `drift_report` (what the API calls) is timed.
The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
START = datetime(2026, 1, 5, tzinfo=UTC)
CATEGORIES = [f"c{i}" for i in range(8)]


def generate(rows: int, n_num: int, n_cat: int, seed: int, shifted: bool) -> pd.DataFrame:
    """Some features shift in the current data: numbers by 0.3 std, categories by their mix."""
    rng = np.random.default_rng(seed)
    columns = {}
    for i in range(n_num):
        shift = 0.3 if shifted and i % 4 == 0 else 0.0
        columns[f"num_{i}"] = rng.normal(10 * i + shift * (1 + i), 1 + i, rows)
    base = np.linspace(1, 2, len(CATEGORIES))
    for i in range(n_cat):
        weights = base[::-1] if shifted and i % 2 == 0 else base
        columns[f"cat_{i}"] = rng.choice(CATEGORIES, rows, p=weights / weights.sum())
    return pd.DataFrame(columns)


def timed(function, repeat: int = 1):
    """(result, median seconds, peak MB): timed without tracemalloc, which slows Python down."""
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - started)
    tracemalloc.start()
    result = function()
    peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return result, statistics.median(seconds), peak_mb


def canary_raw(reference: pd.DataFrame, current: pd.DataFrame) -> dict:
    from monitoring.stats import categorical_feature_drift_raw, numeric_feature_drift_raw

    out = {}
    for name in reference.columns:
        if name.startswith("num_"):
            result = numeric_feature_drift_raw(
                name=name,
                ref_values=reference[name].to_numpy(),
                cur_values=current[name].to_numpy(),
            )
        else:
            result = categorical_feature_drift_raw(
                name=name,
                ref_values=reference[name].to_numpy(),
                cur_values=current[name].to_numpy(),
            )
        out[name] = {
            "method": result.method,
            "statistic": result.statistic,
            "drifted": result.drifted,
        }
    return out


def django_setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.test_settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def store_aggregates(reference: pd.DataFrame, current: pd.DataFrame, hours: int):
    """The version's reference profile and the current window's hour and day sketches."""
    from factory.models import MLModel, ModelVersion
    from factory.services import model_create
    from monitoring.models import HourlyAggregate, Period, Sketch
    from monitoring.pipeline.bins import Bins, bins_ensure
    from monitoring.pipeline.sketch_groups import feature_sketch
    from monitoring.pipeline.sketches import day_sketches
    from monitoring.stats.profile import (
        PROFILE_FORMAT,
        categorical_reference,
        feature_to_json,
        numeric_reference_on,
    )

    MLModel.objects.filter(name="bench-drift").delete()
    model = model_create(name="bench-drift", task="binary_classification", positive_class=1)
    features = {}
    for name in reference.columns:
        column = reference[name].to_numpy()
        features[name] = feature_to_json(
            numeric_reference_on(column)
            if name.startswith("num_")
            else categorical_reference_fast(column, categorical_reference)
        )
    profile = {
        "format": PROFILE_FORMAT,
        "rows": len(reference),
        "features": features,
        "score": None,
        "prediction": None,
    }
    version = ModelVersion.objects.create(model=model, version="1", reference=profile)
    bins: dict[str, Bins] = bins_ensure(model=model, names=set(reference.columns), present={})
    chunks = np.array_split(np.arange(len(current)), hours)
    sketches, aggregates = [], []
    for h, index in enumerate(chunks):
        hour = START + timedelta(hours=h)
        part = current.iloc[index]
        aggregates.append(
            HourlyAggregate(model=model, version=version, hour=hour, predictions=len(part))
        )
        for name, feature in bins.items():
            kind, fname, n, missing, data = feature_sketch(
                feature, part[name].reset_index(drop=True)
            )
            sketches.append(
                Sketch(
                    model=model,
                    version=version,
                    period=Period.HOUR,
                    start=hour,
                    kind=kind,
                    name=fname,
                    n=n,
                    missing=missing,
                    data=data,
                )
            )
    HourlyAggregate.objects.bulk_create(aggregates)
    Sketch.objects.bulk_create(sketches, 1000)
    days = sorted({(START + timedelta(hours=h)).replace(hour=0) for h in range(hours)})
    for day in days:
        Sketch.objects.bulk_create(day_sketches(model, day), 1000)
    return model


def categorical_reference_fast(column: np.ndarray, make):
    values, counts = np.unique(column, return_counts=True)
    from monitoring.stats.profile import CategoricalReference

    del make  # same result as categorical_reference, counted by NumPy
    return CategoricalReference({str(v): int(c) for v, c in zip(values, counts, strict=True)}, 0)


def canary_aggregates(model, hours: int) -> dict:
    from monitoring.metrics.drift_report import drift_report

    report = drift_report(model=model, start=START, end=START + timedelta(hours=hours))
    return {
        f.name: {"method": f.method, "statistic": f.statistic, "drifted": f.drifted}
        for f in report.features
    }


def evidently(reference: pd.DataFrame, current: pd.DataFrame) -> dict | None:
    python = ROOT / ".venv-bench" / "bin" / "python"
    if not python.exists():
        return None
    with tempfile.TemporaryDirectory() as folder:
        ref_path, cur_path = Path(folder) / "ref.parquet", Path(folder) / "cur.parquet"
        reference.to_parquet(ref_path)
        current.to_parquet(cur_path)
        done = subprocess.run(
            [str(python), str(ROOT / "bench" / "evidently_drift.py"), str(ref_path), str(cur_path)],
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


METHOD_NAMES = {
    "wasserstein": "wasserstein",
    "jensenshannon": "jensenshannon",
    "ks": "K-S",
    "chisquare": "chi",
}


# Evidently's Jensen-Shannon uses SciPy's default natural log; ours is base 2 (DESIGN.md), in
# [0, 1]. The same distance in base e is ours times sqrt(ln 2).
EVIDENTLY_SCALE = {"jensenshannon": float(np.sqrt(np.log(2)))}


def disagreement(ours: dict, theirs: dict, *, evidently: bool = True) -> tuple[dict, bool | None]:
    """Largest |ours - Evidently's| per method (on the same log base), and whether every
    shared verdict agrees."""
    worst: dict[str, float] = {}
    agree = True
    for name, mine in ours.items():
        other = theirs.get(name)
        if other is None:
            continue
        their_method = other["method"].lower().replace("-", "").replace(" ", "")
        if METHOD_NAMES.get(mine["method"], "?").lower().replace("-", "") not in their_method:
            continue
        scale = EVIDENTLY_SCALE.get(mine["method"], 1.0) if evidently else 1.0
        error = abs(mine["statistic"] * scale - other["statistic"])
        worst[mine["method"]] = max(worst.get(mine["method"], 0.0), error)
        agree &= mine["drifted"] == other["drifted"]
    return worst, (agree if worst else None)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--numerical", type=int, default=20)
    parser.add_argument("--categorical", type=int, default=5)
    parser.add_argument("--hours", type=int, default=24 * 7, help="hours the current spans")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-evidently", action="store_true")
    args = parser.parse_args()

    reference = generate(args.rows, args.numerical, args.categorical, 1, shifted=False)
    current = generate(args.rows, args.numerical, args.categorical, 2, shifted=True)
    theirs = None if args.skip_evidently else evidently(reference, current)

    raw, raw_s, raw_mb = timed(lambda: canary_raw(reference, current), args.repeat)

    django_setup()
    started = time.perf_counter()
    store_aggregates(reference, current, args.hours)
    store_s = time.perf_counter() - started
    from factory.models import MLModel

    model = MLModel.objects.get(name="bench-drift")
    canary_aggregates(model, args.hours)  # warm: imports, connection
    agg, agg_s, agg_mb = timed(lambda: canary_aggregates(model, args.hours), args.repeat)

    figures = {
        "rows": args.rows,
        "features": args.numerical + args.categorical,
        "hours": args.hours,
        "raw_s": raw_s,
        "raw_peak_mb": raw_mb,
        "aggregates_s": agg_s,
        "aggregates_peak_mb": agg_mb,
        "store_aggregates_s": store_s,
        "raw_vs_aggregates_verdicts_agree": all(
            raw[n]["drifted"] == agg[n]["drifted"] for n in raw
        ),
        "raw_vs_aggregates_max_difference": disagreement(raw, agg, evidently=False)[0],
        "evidently_s": None,
        "evidently_peak_mb": None,
        "raw_speedup": None,
        "aggregates_speedup": None,
        "verdicts_agree": None,
        "max_disagreement": None,
    }
    if theirs:
        worst, agree = disagreement(agg, theirs["columns"])
        figures.update(
            evidently_s=theirs["seconds"],
            evidently_peak_mb=theirs["peak_mb"],
            raw_speedup=theirs["seconds"] / raw_s,
            aggregates_speedup=theirs["seconds"] / agg_s,
            verdicts_agree=agree,
            max_disagreement=worst,
            raw_max_disagreement=disagreement(raw, theirs["columns"])[0],
        )
    MLModel.objects.filter(name="bench-drift").delete()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
