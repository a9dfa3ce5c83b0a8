"""Every scored prediction, labelled or not, is in its hour's and day's all-scores histogram."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from factory.services import model_create
from monitoring.ingest.services import records_ingest
from monitoring.metrics.series import sketch_windows
from monitoring.models import Sketch, SketchKind
from monitoring.pipeline.aggregate import aggregates_refresh
from monitoring.pipeline.join import outcomes_join
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
    outcomes = [
        {
            "prediction_id": f"p-{i}",
            "observed_at": (NOW + timedelta(days=3)).isoformat(),
            "outcome": "yes",
        }
        for i in range(n)
        if judged[i]
    ]
    records_ingest(model=model, kind="predictions", records=predictions, enqueue_jobs=False)
    records_ingest(model=model, kind="outcomes", records=outcomes, enqueue_jobs=False)

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
