"""Every scored prediction, labelled or not, is in its hour's and day's all-scores histogram."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.db import connection, transaction
from django.db.models import Sum

from factory.services import model_create
from monitoring.ingest.partitions import partitions_ensure
from monitoring.ingest.services import records_ingest
from monitoring.metrics.estimates import labelled_histogram
from monitoring.metrics.series import sketch_windows
from monitoring.models import HourlyAggregate, Label, Prediction, Sketch, SketchKind
from monitoring.pipeline.aggregate import aggregates_refresh
from monitoring.pipeline.join import outcomes_join
from monitoring.pipeline.sketches import sketches_refresh
from monitoring.stats.estimate import all_score_histogram
from tests.conftest import NOW

pytestmark = pytest.mark.django_db(transaction=True)


def test_all_scores_hold_every_scored_prediction_by_predicted_class_and_judged():
    # given predictions over two days, a third of them labelled, some without a score
    model = model_create(name="scores", task="binary_classification", positive_class="yes")
    rng = np.random.default_rng(5)
    n = 300
    scores = rng.uniform(size=n).round(4)
    predicted = rng.uniform(size=n) < 0.4
    unscored = np.arange(n) % 10 == 0
    judged = np.arange(n) % 3 == 0
    predictions = [
        {
            "prediction_id": f"p-{i}",
            "timestamp": (NOW + timedelta(minutes=9 * i)).isoformat(),
            "model_version": "1",
            "prediction": "yes" if predicted[i] else "no",
            "score": None if unscored[i] else float(scores[i]),
        }
        for i in range(n)
    ]
    ingest_with_outcomes(model, predictions, judged)

    # when the jobs aggregate them
    outcomes_join(model_id=model.pk)
    aggregates_refresh(model_id=model.pk)

    # then the whole span's histogram is that of the raw scored rows
    scope = {"start": None, "end": None, "version": None, "segment": None}
    windows = sketch_windows(
        model=model,
        kind=SketchKind.ALL_SCORES,
        scope=scope,
        granularity=None,
        key=lambda _: "all",
    )
    kept = ~unscored
    raw = all_score_histogram(scores[kept], predicted[kept], judged[kept])
    stored = windows["all"]
    for name in ("predicted_positive", "predicted_negative", "judged_positive", "judged_negative"):
        np.testing.assert_array_equal(getattr(stored, name), getattr(raw, name), err_msg=name)
    np.testing.assert_allclose(stored.score_sums, raw.score_sums, rtol=1e-12)
    # and every hour with a scored prediction has one, as does each day
    rows = Sketch.objects.filter(model=model, kind=SketchKind.ALL_SCORES)
    assert sum(rows.filter(period="hour").values_list("n", flat=True)) == kept.sum()
    assert sum(rows.filter(period="day").values_list("n", flat=True)) == kept.sum()


@pytest.mark.parametrize("path", ["pandas", "sql"])
def test_a_label_left_by_a_deleted_prediction_is_not_read_as_another_rows_outcome(path):
    # given scored predictions, half of them labelled "yes", and label rows left behind by a
    # deleted model's predictions whose ids the new predictions were given again (labels have
    # no foreign key), on unlabelled rows: another model's, from another hour, saying "no"
    if path == "sql" and connection.vendor != "postgresql":
        pytest.skip("the set-based path is PostgreSQL's")
    model = model_create(name="own", task="binary_classification", positive_class="yes")
    gone = model_create(name="gone", task="binary_classification", positive_class="yes")
    n = 120
    scores = np.linspace(0.01, 0.99, n).round(4)
    judged = np.arange(n) % 2 == 0
    predictions = [
        {
            "prediction_id": f"p-{i}",
            "timestamp": (NOW + timedelta(minutes=20 * i)).isoformat(),
            "model_version": "1",
            "prediction": "yes" if scores[i] >= 0.5 else "no",
            "score": float(scores[i]),
        }
        for i in range(n)
    ]
    ingest_with_outcomes(model, predictions, judged)
    with transaction.atomic():
        partitions_ensure([NOW - timedelta(days=30 + n / 24), NOW - timedelta(days=30)])
    ids = dict(Prediction.objects.filter(model=model).values_list("prediction_id", "id"))
    Label.objects.bulk_create(
        Label(
            prediction_id=ids[f"p-{i}"],
            model=gone,
            outcome_ref_id=0,
            outcome="no",
            observed_at=NOW - timedelta(days=30),
            delay_s=60.0,
            correct=False,
            hour=NOW - timedelta(days=30, hours=i),
        )
        for i in range(n)
        if not judged[i]
    )

    # when the jobs aggregate them, by the path
    outcomes_join(model_id=model.pk)
    aggregates_refresh(model_id=model.pk)
    hours = sorted(
        set(Sketch.objects.filter(model=model, period="hour").values_list("start", flat=True))
    )
    sketches_refresh(model=model, hours=hours, path=path)

    # then the judged rows are the model's own labelled rows, and only they calibrate
    scope = {"start": None, "end": None, "version": None, "segment": None}
    windows = sketch_windows(
        model=model, kind=SketchKind.ALL_SCORES, scope=scope, granularity=None, key=lambda _: "all"
    )
    raw = all_score_histogram(scores, scores >= 0.5, judged)
    for name in ("judged_positive", "judged_negative"):
        np.testing.assert_array_equal(
            getattr(windows["all"], name), getattr(raw, name), err_msg=name
        )
    reference = labelled_histogram(model, None, NOW - timedelta(days=1), NOW + timedelta(days=3))
    assert int(reference.positives.sum()) == judged.sum()
    assert int(reference.negatives.sum()) == 0
    # and the hours' counts too
    counts = HourlyAggregate.objects.filter(model=model).aggregate(
        n_labelled=Sum("labelled"), n_judged=Sum("judged"), n_tp=Sum("tp"), n_fn=Sum("fn")
    )
    assert counts["n_labelled"] == counts["n_judged"] == judged.sum()
    assert counts["n_tp"] + counts["n_fn"] == judged.sum()


def ingest_with_outcomes(model, predictions: list[dict], judged) -> None:
    """The predictions, and a "yes" three days on for each judged one."""
    outcomes = [
        {
            "prediction_id": record["prediction_id"],
            "observed_at": (NOW + timedelta(days=3)).isoformat(),
            "outcome": "yes",
        }
        for record, is_judged in zip(predictions, judged, strict=True)
        if is_judged
    ]
    records_ingest(model=model, kind="predictions", records=predictions, enqueue_jobs=False)
    records_ingest(model=model, kind="outcomes", records=outcomes, enqueue_jobs=False)
