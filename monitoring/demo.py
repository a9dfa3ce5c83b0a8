"""Demo data: a churn model with four weeks of traffic, late outcomes and a change halfway."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np

from factory.manifest import VersionRegisterSerializer
from factory.models import MLModel
from factory.services import model_create, version_register
from monitoring.alerts.defaults import alert_rules_default_create
from monitoring.alerts.evaluate import rules_evaluate
from monitoring.ingest.services import records_ingest
from monitoring.models import AlertRule
from monitoring.pipeline.aggregate import aggregates_refresh
from monitoring.pipeline.join import outcomes_join

DEMO_MODEL = "churn"
DEMO_DAYS = 28
PREDICTIONS_PER_DAY = 600
PLANS = np.array(["basic", "standard", "premium"])
INGEST_CHUNK = 5000  # records per ingestion call, as a client would send them


def progress_silent(text: str) -> None:
    """The default progress report of demo_create: none."""


TRAINING_ROWS = 5000
DRIFT_THRESHOLD = 0.1  # DESIGN.md: the default tests' threshold for references over 1000 rows


def demo_features(rng: np.random.Generator, n: int, changed) -> dict[str, np.ndarray]:
    """Tenure drifts to newer customers where `changed`; plan and charges never move."""
    return {
        "tenure_months": np.where(changed, rng.gamma(2.0, 6.0, n), rng.gamma(3.0, 8.0, n)).round(1),
        "plan": rng.choice(PLANS, n, p=[0.5, 0.3, 0.2]),
        "monthly_charges": rng.normal(60, 15, n).round(2),
    }


def demo_lineage(rng: np.random.Generator, now: datetime, version: str) -> dict:
    """Lineage and reference rows of a version trained on the month before the demo starts.

    Both versions are trained on data before the drift, so their reference is the old
    customer mix: drift is measured against what the model learned from.
    """
    features = demo_features(rng, TRAINING_ROWS, changed=np.zeros(TRAINING_ROWS, dtype=bool))
    score = 1 / (1 + np.exp(-(1.5 - 0.08 * features["tenure_months"])))
    rows = [
        {
            "features": {name: values[i].item() for name, values in features.items()},
            "prediction": int(score[i] >= 0.5),
            "score": round(float(score[i]), 4),
        }
        for i in range(TRAINING_ROWS)
    ]
    trained_until = now - timedelta(days=DEMO_DAYS)
    lineage = {
        "training_data": {
            "uri": f"s3://demo/churn/train-{version}.parquet",
            "sha256": "0" * 64,
            "rows": TRAINING_ROWS * 60,
            "start": (trained_until - timedelta(days=60)).isoformat(),
            "end": trained_until.isoformat(),
        },
        "code_version": f"git:demo-{version}",
        "parameters": {"model": "logistic regression", "C": 1.0},
        "validation": {"scheme": "kfold", "k": 5, "metrics": {"roc_auc": 0.86, "accuracy": 0.87}},
        "compute": {"instance": "demo", "duration_s": 60},
    }
    return {"version": version, "lineage": lineage, "reference": {"rows": rows}}


def demo_predictions(rng: np.random.Generator, now: datetime) -> list[dict]:
    """Predictions over the last DEMO_DAYS days; from halfway, tenure drifts and accuracy drops."""
    n = DEMO_DAYS * PREDICTIONS_PER_DAY
    start = now - timedelta(days=DEMO_DAYS)
    offsets = np.sort(rng.uniform(0, DEMO_DAYS * 86400, n))
    changed = offsets > DEMO_DAYS * 86400 / 2
    features = demo_features(rng, n, changed)
    tenure, plan, charges = features["tenure_months"], features["plan"], features["monthly_charges"]
    score = 1 / (1 + np.exp(-(1.5 - 0.08 * tenure + rng.normal(0, 0.8, n))))
    records = []
    for i in range(n):
        records.append(
            {
                "prediction_id": f"demo-{i}",
                "timestamp": (start + timedelta(seconds=float(offsets[i]))).isoformat(),
                "model_version": "1.1.0" if changed[i] else "1.0.0",
                "prediction": int(score[i] >= 0.5),
                "score": round(float(score[i]), 4),
                "segment": "web" if i % 3 else "mobile",
                "features": {
                    "tenure_months": float(tenure[i]),
                    "plan": str(plan[i]),
                    "monthly_charges": float(charges[i]),
                },
            }
        )
    return records


def demo_outcomes(rng: np.random.Generator, predictions: list[dict], now: datetime) -> list[dict]:
    """Outcomes 1 to 14 days after each prediction, only those already known by now."""
    outcomes = []
    half = len(predictions) // 2
    for i, record in enumerate(predictions):
        delay = timedelta(days=float(rng.uniform(1, 14)))
        observed = datetime.fromisoformat(record["timestamp"]) + delay
        if observed > now:
            continue
        error_rate = 0.12 if i < half else 0.30
        churned = record["prediction"] if rng.random() > error_rate else 1 - record["prediction"]
        outcomes.append(
            {
                "prediction_id": record["prediction_id"],
                "observed_at": observed.isoformat(),
                "outcome": churned,
                "values": {"revenue": 0.0 if churned else round(float(rng.normal(60, 10)), 2)},
            }
        )
    return outcomes


def demo_create(
    *,
    now: datetime | None = None,
    seed: int = 7,
    progress: Callable[[str], None] = progress_silent,
) -> MLModel | None:
    """Create the demo model and its data; None if it exists already. `progress` hears what
    is being done, a line at a time (the demo command shows it)."""
    if MLModel.objects.filter(name=DEMO_MODEL).exists():
        return None
    now = now or datetime.now(UTC)
    rng = np.random.default_rng(seed)
    model = model_create(
        name=DEMO_MODEL,
        task="binary_classification",
        positive_class=1,
        description="Demo: which subscribers will cancel this month.",
        owners=["data-science@example.com"],
        on_call=["oncall@example.com"],
    )
    alert_rules_default_create(model=model)
    training = np.random.default_rng(seed + 1)  # apart, so the traffic is the same as before
    for version in ("1.0.0", "1.1.0"):
        body = VersionRegisterSerializer(data=demo_lineage(training, now, version))
        body.is_valid(raise_exception=True)
        version_register(model=model, actor="demo", **body.validated_data)
    AlertRule.objects.create(
        model=model,
        metric="accuracy",
        kind="static",
        lower=0.8,
        min_count=100,
        granularity="day",
        severity="critical",
    )
    # One drift rule per feature at the default test's threshold (normed Wasserstein or
    # Jensen-Shannon >= 0.1 against the training reference): only tenure should fire. Weekly,
    # as drift is usually watched: a day's ~600 rows put the normed Wasserstein distance of an
    # unchanged feature at 0.05-0.12, so a daily rule at 0.1 would fire on noise.
    for feature in ("tenure_months", "plan", "monthly_charges"):
        AlertRule.objects.create(
            model=model,
            metric=f"drift:{feature}",
            kind="static",
            upper=DRIFT_THRESHOLD,
            min_count=100,
            granularity="week",
        )
    predictions = demo_predictions(rng, now)
    records_ingest_chunked(model, "predictions", predictions, progress)
    records_ingest_chunked(model, "outcomes", demo_outcomes(rng, predictions, now), progress)
    progress(f"evaluating the alert rules at the end of each of the past {DEMO_DAYS - 2} days")
    demo_history_evaluate(model=model, now=now)
    return model


def records_ingest_chunked(model: MLModel, kind: str, records: list[dict], progress) -> None:
    for start in range(0, len(records), INGEST_CHUNK):
        chunk = records[start : start + INGEST_CHUNK]
        records_ingest(model=model, kind=kind, records=chunk, source="demo", enqueue_jobs=False)
        progress(f"{kind}: {start + len(chunk):,} of {len(records):,} stored")


def demo_history_evaluate(*, model: MLModel, now: datetime) -> None:
    """Evaluate the rules at the end of every past day, as the beat schedule would have.

    The alerts then open when the change happened (and band baselines freeze before it),
    instead of a single evaluation today seeing four weeks at once. The replay records no
    message (no reminder of the past): the next `jobs_run` tells what still fires, in one
    e-mail. (The replay sees outcomes that arrived after each day; the demo accepts that
    shortcut.)
    """
    outcomes_join(model_id=model.pk)
    aggregates_refresh(model_id=model.pk)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    # From the end of the first whole day: the data starts mid-day DEMO_DAYS ago, and a part
    # of a day is not judged (monitoring.alerts.judge.whole_windows).
    for days_ago in range(DEMO_DAYS - 2, 0, -1):
        rules_evaluate(model_id=model.pk, now=today - timedelta(days=days_ago), replay=True)
