"""Estimated MAE and RMSE of regression models (direct loss estimation) through the metrics
API, against scikit-learn's splines and ridge fitted on the raw rows, and held against the
truth: covered under covariate shift, caught out by a concept shift."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, SplineTransformer

from factory.models import MLModel
from factory.services import model_create, version_register
from monitoring.ingest.services import records_ingest
from monitoring.jobs import jobs_run
from monitoring.models import Alert, AlertState
from tests.conftest import NOW

pytestmark = pytest.mark.django_db
URL = "/api/v1/models/prices/metrics"
DAY = NOW.replace(hour=0)
CATEGORIES = np.array(["a", "b", "c"])


def rows(rng, n: int, shift: float = 0.0, concept: float = 1.0) -> dict[str, np.ndarray]:
    """Inputs that drift with ``shift``; the error's spread is a sum of effects of the inputs
    (times ``concept``, a concept shift when not 1); the model predicts the mean."""
    x1 = rng.normal(shift, 1.0, n)
    x2 = rng.uniform(0, 1, n) ** (1 + shift)
    cat = CATEGORIES[rng.choice(3, n, p=[0.5 - shift / 3, 0.3, 0.2 + shift / 3])]
    spread = 0.4 + 0.3 * np.abs(x1) + 0.6 * x2 + (cat == "c") * 0.5
    prediction = (10 + 2 * x1 + x2).round(6)
    outcome = (prediction + rng.normal(0, 1, n) * spread * concept).round(6)
    return {
        "x1": x1.round(6),
        "x2": x2.round(6),
        "cat": cat,
        "prediction": prediction,
        "outcome": outcome,
    }


def features(data: dict, i: int) -> dict:
    return {"x1": float(data["x1"][i]), "x2": float(data["x2"][i]), "cat": str(data["cat"][i])}


def ingest(model, start, data, labelled, prefix: str, version: str = "1"):
    n = data["prediction"].size
    step = timedelta(days=1) / n
    predictions = [
        {
            "prediction_id": f"{prefix}-{i}",
            "timestamp": (start + step * i).isoformat(),
            "model_version": version,
            "prediction": float(data["prediction"][i]),
            "features": features(data, i),
        }
        for i in range(n)
    ]
    outcomes = [
        {
            "prediction_id": f"{prefix}-{i}",
            "observed_at": (start + timedelta(days=2)).isoformat(),
            "outcome": float(data["outcome"][i]),
        }
        for i in range(n)
        if labelled[i]
    ]
    records_ingest(model=model, kind="predictions", records=predictions, enqueue_jobs=False)
    records_ingest(model=model, kind="outcomes", records=outcomes, enqueue_jobs=False)


def design(data: dict) -> pd.DataFrame:
    return pd.DataFrame({key: data[key] for key in ("prediction", "x1", "x2", "cat")})


def sklearn_error_model(reference: dict):
    """scikit-learn's fit of the same model: piecewise-linear splines with knots at the
    reference's minimum, deciles and maximum, one-hot categories, ridge regression."""
    error = reference["prediction"] - reference["outcome"]
    fitted = []
    for target in (np.abs(error), error**2):
        pipeline = make_pipeline(
            ColumnTransformer(
                [
                    (
                        "splines",
                        SplineTransformer(
                            n_knots=11, degree=1, knots="quantile", extrapolation="constant"
                        ),
                        ["prediction", "x1", "x2"],
                    ),
                    ("levels", OneHotEncoder(handle_unknown="ignore"), ["cat"]),
                ]
            ),
            Ridge(alpha=1.0),
        )
        fitted.append(pipeline.fit(design(reference), target))
    absolute, squared = fitted
    a, s = (np.maximum(m.predict(design(reference)), 0) for m in fitted)
    spread_abs = np.sum((np.abs(error) - a) ** 2) / np.sum(a**2)
    spread_sq = np.sum((error**2 - s) ** 2) / np.sum(s**2)
    # the standard errors of the fitted mean levels
    level_abs = np.sqrt(np.sum((np.abs(error) - a) ** 2)) / error.size
    level_sq = np.sqrt(np.sum((error**2 - s) ** 2)) / error.size
    return absolute, squared, (spread_abs, level_abs), (spread_sq, level_sq)


def independent(error_model, data: dict) -> dict[str, tuple[float, float, float]]:
    """(value, low, high) of the estimated MAE and RMSE of rows, by scikit-learn's model."""
    absolute, squared, (spread_abs, level_abs), (spread_sq, level_sq) = error_model
    a = np.maximum(absolute.predict(design(data)), 0)
    s = np.maximum(squared.predict(design(data)), 0)
    n = a.size
    z = scipy.stats.norm.ppf(0.975)
    mae_half = z * np.sqrt(spread_abs * np.sum(a**2) / n**2 + level_abs**2)
    mse_half = z * np.sqrt(spread_sq * np.sum(s**2) / n**2 + level_sq**2)
    mse = s.mean()
    return {
        "mae": (a.mean(), a.mean() - mae_half, a.mean() + mae_half),
        "rmse": (np.sqrt(mse), np.sqrt(mse - mse_half), np.sqrt(mse + mse_half)),
    }


def reference_register(model, reference: dict) -> None:
    """Version 1, registered with the reference rows and their outcomes."""
    rows = [
        {
            "features": features(reference, i),
            "prediction": float(reference["prediction"][i]),
            "outcome": float(reference["outcome"][i]),
        }
        for i in range(reference["prediction"].size)
    ]
    version_register(
        model=model, version="1", lineage={"code_version": "a"}, reference={"rows": rows}
    )


@pytest.fixture
def prices(db):
    return model_create(name="prices", task="regression")


def test_estimates_from_reference_rows_equal_sklearn_on_the_raw_rows(writer, prices):
    # given a version registered with held-out rows that carry their outcomes
    rng = np.random.default_rng(21)
    reference = rows(rng, 3000)
    reference_register(prices, reference)
    # and three days of predictions with drifting inputs, a third of them labelled
    days = []
    for d in range(3):
        data = rows(rng, 400, shift=d / 4)
        ingest(prices, DAY + timedelta(days=d), data, np.arange(400) % 3 == 0, f"d{d}")
        days.append(data)

    # when the jobs run
    jobs_run(model_id=prices.pk)

    # then every day's estimate and interval are scikit-learn's on its raw rows
    error_model = sklearn_error_model(reference)
    for metric in ("mae", "rmse"):
        body = writer.get(URL, {"metric": f"estimated:{metric}", "granularity": "day"}).json()
        assert [p["n"] for p in body["points"]] == [400, 400, 400]
        for point, data in zip(body["points"], days, strict=True):
            value, low, high = independent(error_model, data)[metric]
            assert point["value"] == pytest.approx(value, abs=1e-3)
            assert point["ci_low"] == pytest.approx(low, abs=1e-3)
            assert point["ci_high"] == pytest.approx(high, abs=1e-3)
        # and the answer names the reference the error model was fitted on
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
    # and a day's gap is its realised MAE minus the estimate on its labelled rows alone
    gap = writer.get(URL, {"metric": "estimation_gap:mae", "granularity": "day"}).json()
    judged = {key: values[np.arange(400) % 3 == 0] for key, values in days[1].items()}
    realised = np.abs(judged["prediction"] - judged["outcome"]).mean()
    estimated = independent(error_model, judged)["mae"]
    assert gap["points"][1]["n"] == judged["prediction"].size
    assert gap["points"][1]["value"] == pytest.approx(realised - estimated[0], abs=1e-3)
    assert gap["points"][1]["ci_low"] == pytest.approx(estimated[1] - estimated[0], abs=1e-3)


def test_a_planted_concept_shift_takes_the_gap_out_of_its_interval(writer, prices):
    # given 18 fully labelled days; the inputs drift from day 7 on, and from day 14 on the
    # errors are half as large again for the same inputs
    rng = np.random.default_rng(22)
    realised: dict[int, np.ndarray] = {}
    for d in range(18):
        data = rows(rng, 960, shift=max(d - 7, 0) / 14, concept=1.5 if d >= 14 else 1.0)
        ingest(prices, DAY + timedelta(days=d), data, np.ones(960, bool), f"d{d}")
        realised[d] = np.abs(data["prediction"] - data["outcome"])

    jobs_run(model_id=prices.pk)  # the first 7 days are labelled: they fit the error model

    estimated = writer.get(URL, {"metric": "estimated:mae", "granularity": "hour"}).json()
    assert estimated["reference"][0]["source"] == "first_days"
    hours = estimated["points"]
    # then under covariate shift alone each hour's realised MAE is in its interval in at
    # least 90% of the hours
    before = [
        (p, realised[i // 24][(i % 24) * 40 : (i % 24 + 1) * 40].mean())
        for i, p in enumerate(hours)
        if i < 14 * 24
    ]
    inside = [p["ci_low"] <= value <= p["ci_high"] for p, value in before]
    assert sum(inside) / len(inside) >= 0.9
    # and the daily gap stays inside its interval before the shift (a 95% interval leaves
    # 0.7 of 14 days out on average; 2 is allowed), and leaves it within two days of it
    gap = writer.get(URL, {"metric": "estimation_gap:mae", "granularity": "day"}).json()
    outside = [not (p["ci_low"] <= p["value"] <= p["ci_high"]) for p in gap["points"]]
    assert sum(outside[:14]) <= 2
    assert all(outside[14:16])
    daily = writer.get(URL, {"metric": "estimated:mae", "granularity": "day"}).json()["points"]
    assert gap["points"][14]["value"] == pytest.approx(
        realised[14].mean() - daily[14]["value"], abs=1e-9
    )


def test_a_canary_without_a_reference_borrows_productions_error_model(writer, prices):
    # given version 1 with labelled reference rows, and a canary 2 without any
    rng = np.random.default_rng(23)
    reference = rows(rng, 1000)
    reference_register(prices, reference)
    ingest(prices, DAY, rows(rng, 200), np.zeros(200, bool), "v1", version="1")
    canary = rows(rng, 100, shift=0.5)
    ingest(prices, DAY, canary, np.zeros(100, bool), "v2", version="2")

    jobs_run(model_id=prices.pk)

    # then the canary is estimated from its first hours, on version 1's error model
    body = writer.get(URL, {"metric": "estimated:mae", "granularity": "day", "version": "2"}).json()
    expected = independent(sklearn_error_model(reference), canary)["mae"][0]
    assert body["points"][0]["value"] == pytest.approx(expected, abs=1e-3)
    assert body["reference"] == [
        {
            "version": "2",
            "calibrated_on": "1",
            "source": "reference_rows",
            "start": None,
            "end": None,
            "labelled": 1000,
        }
    ]


def test_regression_estimates_name_what_they_cannot_answer(writer, prices):
    assert writer.get(URL, {"metric": "estimated:accuracy"}).status_code == 400
    body = writer.get(URL, {"metric": "estimated:mape"}).json()
    assert "estimated:mape" in body["detail"]


def test_the_schema_says_what_a_regression_estimate_was_fitted_on(writer, db):
    schema = writer.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    text = schema.content.decode()
    assert "regression: what its error model of absolute and squared errors was fitted on" in text


def test_the_estimation_reference_setting_fits_the_error_model_and_rules_watch_it(writer, prices):
    # given two labelled days and a third without outcomes, and no reference rows
    rng = np.random.default_rng(24)
    days = [rows(rng, 500, shift=d / 4) for d in range(3)]
    for d, data in enumerate(days):
        ingest(prices, DAY + timedelta(days=d), data, np.full(500, d < 2), f"d{d}")
    jobs_run(model_id=prices.pk)
    before = writer.get(URL, {"metric": "estimated:mae", "granularity": "day"}).json()
    assert before["reference"] == [] and all(p["value"] is None for p in before["points"])

    # when the model's estimation reference is set to the labelled days, and a rule watches
    # the estimated MAE
    window = {"start": DAY.isoformat(), "end": (DAY + timedelta(days=2)).isoformat()}
    answer = writer.patch("/api/v1/models/prices", {"estimation_reference": window}, format="json")
    assert answer.status_code == 200
    rule = {"metric": "estimated:mae", "kind": "static", "upper": 0.1, "min_count": 20}
    assert writer.post("/api/v1/models/prices/alert-rules", rule, format="json").status_code == 201
    jobs_run(model_id=prices.pk, now=DAY + timedelta(days=3))

    # then the unlabelled day is estimated on an error model fitted on that window's rows
    body = writer.get(URL, {"metric": "estimated:mae", "granularity": "day"}).json()
    assert body["reference"][0]["source"] == "estimation_reference"
    assert body["reference"][0]["labelled"] == 1000
    labelled = {key: np.concatenate([days[0][key], days[1][key]]) for key in days[0]}
    expected = independent(sklearn_error_model(labelled), days[2])["mae"][0]
    assert body["points"][2]["value"] == pytest.approx(expected, abs=1e-3)
    # and the rule on it fires: the estimated MAE is above its bound
    alert = Alert.objects.get(rule__metric="estimated:mae")
    assert alert.state == AlertState.FIRING and alert.direction == "too_high"


def test_a_new_regression_models_default_rule_fires_when_its_estimated_error_climbs(writer):
    # given a regression model made through the API, with its default rules, and a version
    # registered with labelled reference rows
    body = {"name": "prices", "task": "regression"}
    assert writer.post("/api/v1/models", body, format="json").status_code == 201
    rng = np.random.default_rng(25)
    reference = rows(rng, 2000)
    prices = MLModel.objects.get(name="prices")
    reference_register(prices, reference)
    # and six days without any outcome, the last one's inputs moved where errors are larger
    for d in range(6):
        data = rows(rng, 400, shift=1.5 if d == 5 else 0.0)
        ingest(prices, DAY + timedelta(days=d), data, np.zeros(400, bool), f"d{d}")

    # when the jobs run at the end of the sixth day
    jobs_run(model_id=prices.pk, now=DAY + timedelta(days=6))

    # then the default band on the estimated MAE fires, too high, before any outcome
    alert = Alert.objects.get(rule__metric="estimated:mae")
    assert alert.rule.is_default
    assert (alert.state, alert.direction) == (AlertState.FIRING, "too_high")
    daily = writer.get(URL, {"metric": "estimated:mae", "granularity": "day"}).json()["points"]
    assert alert.value == pytest.approx(daily[5]["value"])
    assert alert.value > max(p["value"] for p in daily[:5])
