"""Score and prediction drift against the reference's score/prediction entries (raw rows or a
client profile) and against a baseline window, checked with SciPy on the same rows."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from canary_client import reference_profile
from scipy import stats

from factory.models import ModelVersion
from factory.services import model_create
from monitoring.jobs import jobs_run
from tests.monitoring.metrics.test_statistics import DAY0, generated, ingest, predictions_of

pytestmark = pytest.mark.django_db
WINDOW = {"start": DAY0.isoformat(), "end": (DAY0 + timedelta(days=2)).isoformat()}


def shifted(frame, by: float):
    frame = frame.copy()
    frame["score"] = np.clip(frame["score"] + by, 0, 1).round(4)
    frame["prediction"] = (frame["score"] >= 0.5).astype(int)
    return frame


def outputs_of(client, **params) -> dict:
    response = client.get("/api/v1/models/churn/drift", {**WINDOW, **params})
    assert response.status_code == 200, response.content
    return {o["name"]: o for o in response.json()["outputs"]}


def expected_score(reference, current) -> tuple[float, float]:
    statistic = abs(current.mean() - reference.mean()) / np.std(reference)
    return statistic, stats.ttest_ind(current, reference, equal_var=False).pvalue


def assert_outputs(outputs, reference, current) -> None:
    score = outputs["score"]
    statistic, p_value = expected_score(reference["score"], current["score"])
    assert score["method"] == "mean_shift" and score["threshold"] == 0.1
    assert score["statistic"] == pytest.approx(statistic, rel=1e-9)
    assert score["p_value"] == pytest.approx(p_value, rel=1e-6)
    assert score["drifted"] is bool(statistic >= 0.1)
    prediction = outputs["prediction"]
    k_ref, n_ref = int(reference["prediction"].sum()), len(reference)
    k, n = int(current["prediction"].sum()), len(current)
    chi = stats.chisquare([k, n - k], [k_ref / n_ref * n, (n_ref - k_ref) / n_ref * n])
    assert prediction["method"] == "chisquare" and prediction["n_reference"] == n_ref
    assert prediction["statistic"] == pytest.approx(chi.statistic, rel=1e-9)
    assert prediction["p_value"] == pytest.approx(chi.pvalue, rel=1e-6, abs=1e-300)
    assert prediction["drifted"] is bool(chi.pvalue < 0.05)


def test_binary_outputs_against_raw_reference_rows(writer, model):
    reference = generated(800, seed=1)
    rows = [
        {"features": {"age": None}, "score": float(s), "prediction": int(p)}
        for s, p in zip(reference["score"], reference["prediction"], strict=True)
    ]
    ModelVersion.objects.create(model=model, version="1.0.0", reference={"rows": rows})
    current = shifted(generated(1500, seed=2), 0.08)
    ingest(model, "predictions", predictions_of(current))
    jobs_run(model_id=model.pk)
    outputs = outputs_of(writer)
    assert_outputs(outputs, reference, current)
    assert outputs["score"]["drifted"] is True and outputs["prediction"]["drifted"] is True


def test_binary_outputs_against_a_client_profile(writer, model):
    reference = generated(900, seed=3)
    profile = reference_profile(reference[["age", "plan", "score", "prediction"]])
    ModelVersion.objects.create(model=model, version="1.0.0", reference=profile)
    current = generated(1200, seed=4)  # the same process: no drift expected
    ingest(model, "predictions", predictions_of(current))
    jobs_run(model_id=model.pk)
    outputs = outputs_of(writer)
    assert_outputs(outputs, reference, current)
    assert outputs["score"]["drifted"] is False


def test_a_reference_without_outputs_says_so(writer, model):
    reference = generated(300, seed=5)
    profile = reference_profile(reference[["age", "plan"]])
    ModelVersion.objects.create(model=model, version="1.0.0", reference=profile)
    ingest(model, "predictions", predictions_of(generated(200, seed=6)))
    jobs_run(model_id=model.pk)
    outputs = outputs_of(writer)
    assert outputs["score"]["statistic"] is None
    assert outputs["score"]["note"] == "the reference has no score"
    assert outputs["prediction"]["note"] == "the reference has no predictions"


def test_outputs_against_a_baseline_window(writer, model):
    # given: no registered reference; day 1 is the baseline window, day 2 the current one
    frame = generated(2000, seed=7)
    day1 = frame[frame["at"] < DAY0 + timedelta(days=1)]
    day2 = shifted(frame[frame["at"] >= DAY0 + timedelta(days=1)], 0.1)
    ingest(model, "predictions", predictions_of(day1) + predictions_of(day2))
    jobs_run(model_id=model.pk)
    # when
    outputs = outputs_of(
        writer,
        reference_start=DAY0.isoformat(),
        reference_end=(DAY0 + timedelta(days=1)).isoformat(),
        start=(DAY0 + timedelta(days=1)).isoformat(),
    )
    # then: the baseline's moments come from the same hourly sums (sample-free, exact)
    statistic, _ = expected_score(day1["score"], day2["score"])
    assert outputs["score"]["statistic"] == pytest.approx(statistic, rel=1e-9)
    assert outputs["prediction"]["n_reference"] == len(day1)


def test_regression_prediction_drift_is_a_mean_shift(writer, db):
    model = model_create(name="price", task="regression")
    rng = np.random.default_rng(8)
    reference = rng.normal(100, 20, 700)
    current = rng.normal(104, 20, 600)
    rows = [{"features": {"x": 1.0}, "prediction": float(v)} for v in reference]
    ModelVersion.objects.create(model=model, version="1", reference={"rows": rows})
    at = DAY0.isoformat()
    ingest(
        model,
        "predictions",
        [
            {
                "prediction_id": f"r{i}",
                "timestamp": at,
                "model_version": "1",
                "prediction": float(v),
                "features": {"x": 1.0},
            }
            for i, v in enumerate(current)
        ],
    )
    jobs_run(model_id=model.pk)
    body = writer.get("/api/v1/models/price/drift", WINDOW).json()
    (prediction,) = body["outputs"]
    statistic, p_value = expected_score(reference, current)
    assert prediction["name"] == "prediction" and prediction["method"] == "mean_shift"
    assert prediction["statistic"] == pytest.approx(statistic, rel=1e-9)
    assert prediction["p_value"] == pytest.approx(p_value, rel=1e-6)


def test_multiclass_prediction_drift_is_explained_not_guessed(writer, db):
    model = model_create(name="topic", task="multiclass_classification")
    ingest(
        model,
        "predictions",
        [
            {
                "prediction_id": "m1",
                "timestamp": DAY0.isoformat(),
                "model_version": "1",
                "prediction": "a",
                "features": {"x": 1.0},
            }
        ],
    )
    jobs_run(model_id=model.pk)
    body = writer.get("/api/v1/models/topic/drift", WINDOW).json()
    (prediction,) = body["outputs"]
    assert prediction["statistic"] is None and "not computed" in prediction["note"]
