"""Evidently's DataDriftPreset on two Parquet files; run by bench/drift.py in .venv-bench.

Prints one JSON object: seconds, peak memory (MB) and per column Evidently's method,
statistic and verdict, found in the report's metric results.
"""

from __future__ import annotations

import json
import re
import resource
import sys
import time

import pandas as pd


def column_results(snapshot) -> dict:
    """{column: {"method", "statistic", "drifted"}} from an Evidently 0.7 snapshot."""
    out = {}
    data = snapshot.dict()
    for metric in data.get("metrics", []):
        name = str(metric.get("metric_name") or metric.get("metric_id") or "")
        config = metric.get("config") or {}
        column = config.get("column")
        value = metric.get("value")
        if not column or not isinstance(value, int | float) or "ValueDrift" not in name:
            continue
        method = str(config.get("method") or "")
        threshold = config.get("threshold")
        match = re.search(r"method=([^,)]+)", name)
        method = method or (match.group(1) if match else "")
        p_value_method = "p_value" in method.lower() or "chi" in method.lower()
        drifted = value < threshold if p_value_method else value >= threshold
        out[column] = {
            "method": method,
            "statistic": float(value),
            "threshold": threshold,
            "drifted": bool(drifted),
        }
    return out


def main(reference_path: str, current_path: str) -> None:
    from evidently import Report
    from evidently.presets import DataDriftPreset

    reference, current = pd.read_parquet(reference_path), pd.read_parquet(current_path)
    started = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(current, reference)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, "columns": column_results(snapshot)}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
