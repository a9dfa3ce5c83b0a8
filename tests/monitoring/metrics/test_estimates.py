"""Estimated performance through the metrics API, against scikit-learn on the raw rows, and
held against the truth: covered under covariate shift, caught out by a concept shift."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score

from factory.services import model_create, version_register
from monitoring.alerts.defaults import alert_rules_default_create
from monitoring.ingest.services import records_ingest
from monitoring.jobs import jobs_run
from monitoring.models import AlertRule
from monitoring.stats.auc import SCORE_BINS, score_bin_index
from monitoring.stats.estimate import bin_centres
from tests.conftest import NOW

pytestmark = pytest.mark.django_db
URL = "/api/v1/models/churn/metrics"
DAY = NOW.replace(hour=0)


def rows(rng, n: int, shift: float = 0.0, concept: bool = False):
    """Scores whose inputs drift with ``shift``; outcomes from P(positive | score) =
    score**1.5, or (a concept shift) its mirror image."""
    scores = np.clip(rng.beta(2 + 3 * shift, 2, size=n), 0.0005, 0.9995).round(4)
    chance = (1 - scores) ** 1.5 if concept else scores**1.5
    outcome = (rng.uniform(size=n) < chance).astype(int)
    return scores, (scores >= 0.5).astype(int), outcome


def ingest(model, start, scores, predicted, outcome, labelled, prefix: str, version: str = "1"):
    n = scores.size
    step = timedelta(days=1) / n
    predictions = [
        {
            "prediction_id": f"{prefix}-{i}",
            "timestamp": (start + step * i).isoformat(),
            "model_version": version,
            "prediction": int(predicted[i]),
            "score": float(scores[i]),
        }
        for i in range(n)
    ]
    outcomes = [
        {
            "prediction_id": f"{prefix}-{i}",
            "observed_at": (start + timedelta(days=2)).isoformat(),
            "outcome": int(outcome[i]),
        }
        for i in range(n)
        if labelled[i]
    ]
    records_ingest(model=model, kind="predictions", records=predictions, enqueue_jobs=False)
    records_ingest(model=model, kind="outcomes", records=outcomes, enqueue_jobs=False)


def isotonic_on_bins(scores, outcome) -> IsotonicRegression:
    index = score_bin_index(scores, SCORE_BINS)
    count = np.bincount(index, minlength=SCORE_BINS)
    positives = np.bincount(index, weights=outcome, minlength=SCORE_BINS)
    present = count > 0
    return IsotonicRegression(out_of_bounds="clip").fit(
        bin_centres()[present], positives[present] / count[present], sample_weight=count[present]
    )


def independent(scores, predicted, p) -> dict[str, float]:
    """Expected confusion counts and weighted ROC AUC of raw rows with calibrated chances p."""
    tp, fp = p[predicted == 1].sum(), (1 - p[predicted == 1]).sum()
    fn, tn = p[predicted == 0].sum(), (1 - p[predicted == 0]).sum()
    return {
        "accuracy": (tp + tn) / scores.size,
        "precision": tp / (tp + fp),
        "recall": tp / (tp + fn),
        "f1": 2 * tp / (2 * tp + fp + fn),
        "roc_auc": roc_auc_score(
            np.r_[np.ones(scores.size), np.zeros(scores.size)],
            np.r_[scores, scores],
            sample_weight=np.r_[p, 1 - p],
        ),
    }


@pytest.fixture
def churn(db):
    return model_create(name="churn", task="binary_classification", positive_class=1)


def test_estimates_from_reference_rows_equal_sklearn_on_the_raw_rows(writer, churn):
    # given a version registered with held-out rows that carry their outcomes
    rng = np.random.default_rng(11)
    ref_scores, _, ref_outcome = rows(rng, 4000)
    reference = {
        "rows": [
            {
                "features": {"x": float(s)},
                "prediction": int(s >= 0.5),
                "score": float(s),
                "outcome": int(o),
            }
            for s, o in zip(ref_scores, ref_outcome, strict=True)
        ]
    }
    version_register(model=churn, version="1", lineage={"code_version": "a"}, reference=reference)
    # and three days of predictions with drifting inputs, a third of them labelled
    days = []
    for d in range(3):
        scores, predicted, outcome = rows(rng, 600, shift=d / 2)
        labelled = np.arange(scores.size) % 3 == 0
        ingest(churn, DAY + timedelta(days=d), scores, predicted, outcome, labelled, f"d{d}")
        days.append((scores, predicted))

    # when the jobs run
    jobs_run(model_id=churn.pk)

    # then every day's estimate is the independent computation on its raw rows
    calibrate = isotonic_on_bins(ref_scores, ref_outcome).predict
    for metric in ("accuracy", "precision", "recall", "f1", "roc_auc"):
        body = writer.get(URL, {"metric": f"estimated:{metric}", "granularity": "day"}).json()
        assert [p["n"] for p in body["points"]] == [600, 600, 600]
        for point, (scores, predicted) in zip(body["points"], days, strict=True):
            p = calibrate(bin_centres()[score_bin_index(scores)])
            assert point["value"] == pytest.approx(
                independent(scores, predicted, p)[metric], abs=1e-3
            )
            assert point["ci_low"] <= point["value"] <= point["ci_high"]
        # and the answer names the reference that calibrated it
        assert body["reference"] == [
            {
                "version": "1",
                "calibrated_on": "1",
                "source": "reference_rows",
                "start": None,
                "end": None,
                "labelled": 4000,
            }
        ]


def test_a_planted_concept_shift_takes_the_gap_out_of_its_interval(writer, churn):
    # given three weeks of fully labelled days; the inputs drift from day 7 on, and from
    # day 14 on the relation between scores and outcomes is turned round
    rng = np.random.default_rng(12)
    realised: dict[int, np.ndarray] = {}
    for d in range(18):
        scores, predicted, outcome = rows(rng, 480, shift=max(d - 7, 0) / 10, concept=d >= 14)
        ingest(
            churn,
            DAY + timedelta(days=d),
            scores,
            predicted,
            outcome,
            np.ones(scores.size, bool),
            f"d{d}",
        )
        realised[d] = predicted == outcome

    jobs_run(model_id=churn.pk)  # the first 7 days are labelled: they calibrate

    estimated = writer.get(URL, {"metric": "estimated:accuracy", "granularity": "hour"}).json()
    assert estimated["reference"][0]["source"] == "first_days"
    hours = estimated["points"]
    # then under covariate shift alone the realised accuracy of each hour is in its interval
    # in at least 90% of the hours
    before = [
        (p, realised[i // 24][(i % 24) * 20 : (i % 24 + 1) * 20].mean())
        for i, p in enumerate(hours)
        if i < 14 * 24
    ]
    inside = [p["ci_low"] <= value <= p["ci_high"] for p, value in before]
    assert sum(inside) / len(inside) >= 0.9
    # and the daily gap stays inside its interval before the shift, and leaves it within two
    # days of it
    gap = writer.get(URL, {"metric": "estimation_gap:accuracy", "granularity": "day"}).json()
    outside = [not (p["ci_low"] <= p["value"] <= p["ci_high"]) for p in gap["points"]]
    assert sum(outside[:14]) <= 1
    assert any(outside[14:16])
    first = gap["points"][14]
    assert first["value"] == pytest.approx(
        realised[14].mean() - estimated_day(writer, 14), abs=1e-9
    )


def estimated_day(writer, day: int) -> float:
    body = writer.get(URL, {"metric": "estimated:accuracy", "granularity": "day"}).json()
    return body["points"][day]["value"]


def test_estimates_name_what_they_cannot_answer(writer, churn):
    assert writer.get(URL, {"metric": "estimated:mae"}).status_code == 400
    body = writer.get(URL, {"metric": "estimated:log_loss"}).json()
    assert "estimated:log_loss" in body["detail"]


def test_new_binary_models_get_a_band_rule_on_the_estimated_roc_auc(churn):
    alert_rules_default_create(model=churn)
    rule = AlertRule.objects.get(model=churn, metric="estimated:roc_auc")
    assert rule.kind == "band"


def test_alert_rules_can_watch_estimates_and_gaps(writer, churn):
    for metric in ("estimated:accuracy", "estimation_gap:f1"):
        answer = writer.post(
            "/api/v1/models/churn/alert-rules",
            {"metric": metric, "kind": "band", "k": 3},
            format="json",
        )
        assert answer.status_code == 201, answer.json()


def test_the_estimation_reference_setting_calibrates_every_version(writer, churn):
    # given two labelled days and a third without outcomes
    rng = np.random.default_rng(13)
    labelled_scores, labelled_outcomes = [], []
    for d in range(3):
        scores, predicted, outcome = rows(rng, 500)
        ingest(
            churn,
            DAY + timedelta(days=d),
            scores,
            predicted,
            outcome,
            np.full(scores.size, d < 2),
            f"d{d}",
        )
        if d < 2:
            labelled_scores.append(scores)
            labelled_outcomes.append(outcome)
        last = (scores, predicted)

    # when the model's estimation reference is set to the labelled days
    window = {"start": DAY.isoformat(), "end": (DAY + timedelta(days=2)).isoformat()}
    answer = writer.patch("/api/v1/models/churn", {"estimation_reference": window}, format="json")
    assert answer.status_code == 200 and answer.json()["estimation_reference"] == window
    jobs_run(model_id=churn.pk)

    # then the unlabelled day is estimated on that window's calibration
    body = writer.get(URL, {"metric": "estimated:roc_auc", "granularity": "day"}).json()
    assert body["reference"][0]["source"] == "estimation_reference"
    assert body["reference"][0]["labelled"] == 1000
    calibrate = isotonic_on_bins(np.concatenate(labelled_scores), np.concatenate(labelled_outcomes))
    scores, predicted = last
    p = calibrate.predict(bin_centres()[score_bin_index(scores)])
    expected = independent(scores, predicted, p)["roc_auc"]
    assert body["points"][2]["value"] == pytest.approx(expected, abs=1e-3)


def test_an_estimation_reference_without_an_offset_is_a_400_naming_it(writer, churn):
    window = {"start": "2026-03-01T00:00:00", "end": "2026-03-03T00:00:00Z"}
    answer = writer.patch("/api/v1/models/churn", {"estimation_reference": window}, format="json")
    assert answer.status_code == 400
    assert "offset" in answer.content.decode() and "start" in answer.content.decode()


def test_a_new_canary_is_estimated_on_productions_calibration_from_its_first_hour(writer, churn):
    # given production (version 1) calibrated on its reference rows, and a canary (version 2)
    # with a few hours of predictions, no reference and no outcomes
    rng = np.random.default_rng(14)
    ref_scores, _, ref_outcome = rows(rng, 3000)
    reference = {
        "rows": [
            {"features": {"x": float(s)}, "score": float(s), "outcome": int(o)}
            for s, o in zip(ref_scores, ref_outcome, strict=True)
        ]
    }
    version_register(model=churn, version="1", lineage={"code_version": "a"}, reference=reference)
    scores, predicted, outcome = rows(rng, 400)
    ingest(churn, DAY, scores, predicted, outcome, np.zeros(400, bool), "v1")
    canary_scores, canary_predicted, _ = rows(rng, 100, shift=0.5)
    ingest(
        churn,
        DAY + timedelta(days=1),
        canary_scores,
        canary_predicted,
        outcome[:100],
        np.zeros(100, bool),
        "v2",
        version="2",
    )

    jobs_run(model_id=churn.pk)

    # then the canary's estimate uses production's calibration, and says so
    body = writer.get(
        URL, {"metric": "estimated:accuracy", "granularity": "day", "version": "2"}
    ).json()
    assert body["reference"] == [
        {
            "version": "2",
            "calibrated_on": "1",
            "source": "reference_rows",
            "start": None,
            "end": None,
            "labelled": 3000,
        }
    ]
    point = next(p for p in body["points"] if p["n"])
    p = isotonic_on_bins(ref_scores, ref_outcome).predict(
        bin_centres()[score_bin_index(canary_scores)]
    )
    expected = independent(canary_scores, canary_predicted, p)["accuracy"]
    assert point["n"] == 100 and point["value"] == pytest.approx(expected, abs=1e-3)
