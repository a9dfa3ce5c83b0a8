"""Benchmark: one alert evaluation run over the demo model (defaults + a static rule).

Baseline: reading each rule's metric series once (`metric_series`, the aggregates read an
evaluation cannot avoid). Run: `python bench/alerts_evaluate.py [runs]` from the repository
root; it builds a throwaway test database (SQLite by default, DATABASE_URL for PostgreSQL).
The last line is one JSON object.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.test_settings")


def timed(function, runs: int) -> float:
    samples = []
    for _ in range(runs):
        began = time.perf_counter()
        function()
        samples.append(time.perf_counter() - began)
    return statistics.median(samples) * 1000


def main(runs: int) -> dict:
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import setup_test_environment

    setup_test_environment()
    name = connection.creation.create_test_db(verbosity=0, keepdb=False)
    try:
        from monitoring.alerts.evaluate import rules_evaluate
        from monitoring.alerts.judge import EXTRA_LOOKBACK_WINDOWS
        from monitoring.demo import demo_create
        from monitoring.metrics.series import metric_series
        from monitoring.metrics.windows import MetricError
        from monitoring.models import AlertEvaluation, AlertRule

        now = datetime(2026, 3, 10, 12, tzinfo=UTC)
        model = demo_create(now=now)
        rules = list(AlertRule.objects.filter(model=model))

        def read_series():
            for rule in rules:
                with contextlib.suppress(MetricError):  # metrics not on this branch yet
                    metric_series(
                        model=model,
                        metric=rule.metric,
                        granularity=rule.granularity,
                        start=now - timedelta(days=EXTRA_LOOKBACK_WINDOWS + 17),
                        end=now,
                    )

        baseline_ms = timed(read_series, runs)
        evaluate_ms = timed(lambda: rules_evaluate(model_id=model.pk, now=now), runs)
        return {
            "benchmark": "alerts_evaluate",
            "database": connection.vendor,
            "rules": len(rules),
            "runs": runs,
            "evaluations_recorded": AlertEvaluation.objects.count(),
            "baseline_series_read_ms": round(baseline_ms, 1),
            "evaluate_run_ms": round(evaluate_ms, 1),
            "evaluate_per_rule_ms": round(evaluate_ms / len(rules), 1),
            "ratio_to_baseline": round(evaluate_ms / baseline_ms, 2),
        }
    finally:
        connection.creation.destroy_test_db(name, verbosity=0)


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)))
