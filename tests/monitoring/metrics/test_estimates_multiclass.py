"""Multiclass estimated accuracy and macro F1 through the metrics API, against an independent
computation on the raw rows (scikit-learn's IsotonicRegression per class, one against the
rest), and held against the truth."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import accuracy_score

from factory.services import model_create, version_register
from monitoring.alerts.defaults import alert_rules_default_create
from monitoring.ingest.services import records_ingest
from monitoring.jobs import jobs_run
from monitoring.models import AlertRule
from monitoring.stats.auc import SCORE_BINS, score_bin_index
from monitoring.stats.estimate import bin_centres
from tests.conftest import NOW

pytestmark = pytest.mark.django_db
URL = "/api/v1/models/iris/metrics"
DAY = NOW.replace(hour=0)
CLASSES = np.array(["a", "b", "c"])


def rows(rng, n: int, shift: float = 0.0, concept: bool = False):
    """Softmax scores of three classes whose inputs drift with ``shift`` (class a grows); the
    outcome drawn from the scores sharpened (p**2, renormalised: the model is under-confident),
    or, under a concept shift, from the scores of the classes turned round."""
    logits = rng.normal(size=(n, 3)) * 1.5 + np.array([shift, 0.0, -shift])
    scores = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    scores = scores.round(4)
    scores[:, 2] = (1 - scores[:, 0] - scores[:, 1]).round(4)
    chance = scores[:, ::-1] if concept else scores
    chance = chance**2 / (chance**2).sum(axis=1, keepdims=True)
    outcome = (rng.uniform(size=(n, 1)) > np.cumsum(chance, axis=1)).sum(axis=1)
    return scores, scores.argmax(axis=1), np.minimum(outcome, 2)


def ingest(model, start, scores, predicted, outcome, labelled, prefix: str):
    n = len(scores)
    step = timedelta(days=1) / n
    predictions = [
        {
            "prediction_id": f"{prefix}-{i}",
            "timestamp": (start + step * i).isoformat(),
            "model_version": "1",
            "prediction": CLASSES[predicted[i]],
            "scores": dict(zip(CLASSES.tolist(), scores[i].tolist(), strict=True)),
        }
        for i in range(n)
    ]
    outcomes = [
        {
            "prediction_id": f"{prefix}-{i}",
            "observed_at": (start + timedelta(days=2)).isoformat(),
            "outcome": CLASSES[outcome[i]],
        }
        for i in range(n)
        if labelled[i]
    ]
    receipt = records_ingest(
        model=model, kind="predictions", records=predictions, enqueue_jobs=False
    )
    assert receipt.rejected == 0
    records_ingest(model=model, kind="outcomes", records=outcomes, enqueue_jobs=False)


def calibrators(scores, outcome) -> list[IsotonicRegression]:
    """Each class's isotonic fit against the rest, on the score bins the aggregates keep: the
    share of the class among each bin's rows, weighted by the bin's rows."""
    fitted = []
    for k in range(3):
        index = score_bin_index(scores[:, k], SCORE_BINS)
        count = np.bincount(index, minlength=SCORE_BINS)
        positives = np.bincount(index, weights=outcome == k, minlength=SCORE_BINS)
        present = count > 0
        fitted.append(
            IsotonicRegression(out_of_bounds="clip").fit(
                bin_centres()[present],
                positives[present] / count[present],
                sample_weight=count[present],
            )
        )
    return fitted


def independent(scores, predicted, fitted) -> dict[str, float]:
    """Expected confusion counts of raw rows: each class's calibrated chance per row, all
    scaled so that the expected members of all classes add up to the rows."""
    chance = np.column_stack(
        [fitted[k].predict(bin_centres()[score_bin_index(scores[:, k])]) for k in range(3)]
    )
    chance *= len(scores) / chance.sum()
    mine = predicted[:, None] == np.arange(3)
    tp = (chance * mine).sum(axis=0)
    predicted_count = mine.sum(axis=0)
    actual = chance.sum(axis=0)
    f1 = 2 * tp / (predicted_count + actual)
    return {"accuracy": tp.sum() / len(scores), "macro_f1": f1.mean()}


@pytest.fixture
def iris(db):
    return model_create(name="iris", task="multiclass_classification")


def test_estimates_from_reference_rows_equal_sklearn_on_the_raw_rows(writer, iris):
    # given a version registered with held-out rows that carry their outcomes
    rng = np.random.default_rng(21)
    ref_scores, _, ref_outcome = rows(rng, 3000)
    reference = {
        "rows": [
            {
                "features": {"x": float(s[0])},
                "scores": dict(zip(CLASSES.tolist(), s.tolist(), strict=True)),
                "outcome": CLASSES[o],
            }
            for s, o in zip(ref_scores, ref_outcome, strict=True)
        ]
    }
    version_register(model=iris, version="1", lineage={"code_version": "a"}, reference=reference)
    # and three days of predictions with drifting inputs, a third of them labelled
    days = []
    for d in range(3):
        scores, predicted, outcome = rows(rng, 600, shift=d / 2)
        labelled = np.arange(len(scores)) % 3 == 0
        ingest(iris, DAY + timedelta(days=d), scores, predicted, outcome, labelled, f"d{d}")
        days.append((scores, predicted))

    # when the jobs run
    jobs_run(model_id=iris.pk)

    # then every day's estimate is the independent computation on its raw rows
    fitted = calibrators(ref_scores, ref_outcome)
    for metric in ("accuracy", "macro_f1"):
        body = writer.get(URL, {"metric": f"estimated:{metric}", "granularity": "day"}).json()
        assert [p["n"] for p in body["points"]] == [600, 600, 600]
        for point, (scores, predicted) in zip(body["points"], days, strict=True):
            expected = independent(scores, predicted, fitted)[metric]
            assert point["value"] == pytest.approx(expected, abs=1e-3)
            assert point["ci_low"] < point["value"] < point["ci_high"]
        assert body["reference"] == [
            {
                "version": "1",
                "calibrated_on": "1",
                "source": "reference_rows",
                "start": None,
                "end": None,
                "labelled": 3000,
            }
        ]


def test_first_days_calibrate_and_a_concept_shift_takes_the_gap_out_of_its_interval(writer, iris):
    # given twelve fully labelled days: the inputs drift from day 7 on, and from day 9 on
    # the relation between scores and outcomes is turned round
    rng = np.random.default_rng(22)
    realised, first_week, served = {}, [], {}
    for d in range(12):
        scores, predicted, outcome = rows(rng, 400, shift=max(d - 7, 0) / 4, concept=d >= 9)
        labelled = np.ones(len(scores), bool)
        ingest(iris, DAY + timedelta(days=d), scores, predicted, outcome, labelled, f"d{d}")
        realised[d] = accuracy_score(outcome, predicted)
        served[d] = (scores, predicted)
        if d < 7:
            first_week.append((scores, outcome))

    jobs_run(model_id=iris.pk)

    # then the first 7 days calibrate: day 8's estimate is theirs, computed independently
    estimated = writer.get(URL, {"metric": "estimated:accuracy", "granularity": "day"}).json()
    assert estimated["reference"][0]["source"] == "first_days"
    fitted = calibrators(
        np.concatenate([s for s, _ in first_week]), np.concatenate([o for _, o in first_week])
    )
    assert estimated["points"][8]["value"] == pytest.approx(
        independent(*served[8], fitted)["accuracy"], abs=1e-3
    )
    # and the gap is realised minus estimated, inside its interval under covariate shift
    # alone and outside it from the concept shift on
    gap = writer.get(URL, {"metric": "estimation_gap:accuracy", "granularity": "day"}).json()
    points = gap["points"]
    for d in range(12):
        assert points[d]["value"] == pytest.approx(
            realised[d] - estimated["points"][d]["value"], abs=1e-9
        )
    outside = [not (p["ci_low"] <= p["value"] <= p["ci_high"]) for p in points]
    assert sum(outside[:9]) <= 1
    assert all(outside[9:])


def test_estimated_macro_f1_gap_is_realised_minus_estimated(writer, iris):
    rng = np.random.default_rng(23)
    for d in range(8):
        scores, predicted, outcome = rows(rng, 300)
        ingest(
            iris, DAY + timedelta(days=d), scores, predicted, outcome, np.ones(300, bool), f"d{d}"
        )
    jobs_run(model_id=iris.pk)
    realised = writer.get(URL, {"metric": "macro_f1", "granularity": "day"}).json()["points"]
    estimated = writer.get(URL, {"metric": "estimated:macro_f1", "granularity": "day"}).json()
    gap = writer.get(URL, {"metric": "estimation_gap:macro_f1", "granularity": "day"}).json()
    for r, e, g in zip(realised, estimated["points"], gap["points"], strict=True):
        assert g["value"] == pytest.approx(r["value"] - e["value"], abs=1e-9)


def test_multiclass_estimates_name_what_they_cannot_answer(writer, iris):
    body = writer.get(URL, {"metric": "estimated:precision"})
    assert body.status_code == 400 and "estimated:precision" in body.json()["detail"]
    assert writer.get(URL, {"metric": "estimated:roc_auc"}).status_code == 400


def test_binary_models_have_no_estimated_macro_f1(writer, model):
    answer = writer.get("/api/v1/models/churn/metrics", {"metric": "estimated:macro_f1"})
    assert answer.status_code == 400


def test_new_multiclass_models_get_a_band_rule_on_the_estimated_accuracy(iris):
    alert_rules_default_create(model=iris)
    assert AlertRule.objects.get(model=iris, metric="estimated:accuracy").kind == "band"


def test_alert_rules_can_watch_multiclass_estimates_and_gaps(writer, iris, model):
    for metric in ("estimated:macro_f1", "estimation_gap:accuracy"):
        answer = writer.post(
            "/api/v1/models/iris/alert-rules",
            {"metric": metric, "kind": "band", "k": 3},
            format="json",
        )
        assert answer.status_code == 201, answer.json()
    # and a binary model has no estimated macro F1 to watch
    answer = writer.post(
        "/api/v1/models/churn/alert-rules",
        {"metric": "estimated:macro_f1", "kind": "band", "k": 3},
        format="json",
    )
    assert answer.status_code == 400 and "estimated:macro_f1" in answer.content.decode()
