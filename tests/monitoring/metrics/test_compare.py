"""Compare endpoint for F1, macro F1, RMSE, the label delay median and drift statistics:
values against scikit-learn/SciPy on the same rows, intervals against an independent delta
method or a bootstrap of the raw rows."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as sk

from factory.models import ModelVersion
from factory.services import model_create
from monitoring.jobs import jobs_run
from tests.monitoring.metrics.test_statistics import (
    DAY0,
    generated,
    ingest,
    outcomes_of,
    predictions_of,
    reference_rows,
)
from tests.monitoring.stats.test_stats_compare_delta import (
    bootstrap_sd,
    multinomial_delta_variance,
)

pytestmark = pytest.mark.django_db
Z = stats.norm.ppf(0.975)
VERSIONS = {"baseline": "1.0.0", "candidate": "2.0.0"}


def compare(client, model: str, metric: str) -> dict:
    response = client.get(f"/api/v1/models/{model}/compare", {"metric": metric, **VERSIONS})
    assert response.status_code == 200, response.content
    return response.json()


def assert_normal_interval(body: dict, expected_difference: float, variances) -> None:
    se = np.sqrt(sum(variances))
    assert body["difference"] == pytest.approx(expected_difference, abs=1e-9)
    assert body["ci_low"] == pytest.approx(expected_difference - Z * se, abs=1e-6)
    assert body["ci_high"] == pytest.approx(expected_difference + Z * se, abs=1e-6)
    assert body["p_value"] == pytest.approx(
        2 * stats.norm.sf(abs(expected_difference) / se), rel=1e-5
    )
    assert body["mde"] == pytest.approx((Z + stats.norm.ppf(0.8)) * se, rel=1e-5)
    assert body["powered"] is bool(abs(expected_difference) >= body["mde"])


@pytest.fixture
def two_binary_versions(model):
    base, cand = generated(700, seed=21), generated(700, seed=22, shift=4.0)
    cand["id"] = "c" + cand["id"]
    cand["prediction"] = np.where(np.arange(700) % 6 == 0, 1 - cand.outcome, cand.prediction)
    cand["delay_s"] = (cand["delay_s"] * 1.5).round()
    for version, reference_seed in (("1.0.0", 31), ("2.0.0", 32)):
        ModelVersion.objects.create(
            model=model,
            version=version,
            reference={"rows": reference_rows(generated(800, seed=reference_seed))},
        )
    ingest(model, "predictions", predictions_of(base, "1.0.0") + predictions_of(cand, "2.0.0"))
    ingest(model, "outcomes", outcomes_of(base) + outcomes_of(cand))
    jobs_run(model_id=model.pk)
    references = {v: generated(800, seed=s) for v, s in (("1.0.0", 31), ("2.0.0", 32))}
    return base, cand, references


def f1_cells(frame) -> np.ndarray:
    y, p = frame.outcome.to_numpy(), frame.prediction.to_numpy()
    return np.array(
        [
            np.sum((y == 1) & (p == 1)),
            np.sum((y == 0) & (p == 1)),
            np.sum((y == 0) & (p == 0)),
            np.sum((y == 1) & (p == 0)),
        ],
        dtype=float,
    )


def test_f1_difference_with_a_delta_method_interval(writer, two_binary_versions):
    base, cand, _ = two_binary_versions
    body = compare(writer, "churn", "f1")
    f1 = [sk.f1_score(f.outcome, f.prediction) for f in (base, cand)]
    variances = [
        multinomial_delta_variance(lambda p: 2 * p[0] / (2 * p[0] + p[1] + p[3]), f1_cells(f))
        for f in (base, cand)
    ]
    assert body["baseline"]["value"] == pytest.approx(f1[0], abs=1e-12)
    assert_normal_interval(body, f1[1] - f1[0], variances)


def test_label_delay_median_difference_and_its_interval(writer, two_binary_versions):
    base, cand, _ = two_binary_versions
    body = compare(writer, "churn", "label_delay_p50")
    medians = [float(np.median(f.delay_s)) for f in (base, cand)]
    # the binned median is within 2.4% of the exact one (monitoring.stats.delay)
    assert body["baseline"]["value"] == pytest.approx(medians[0], rel=0.025)
    assert body["candidate"]["value"] == pytest.approx(medians[1], rel=0.025)
    boot = [
        bootstrap_sd(len(f), lambda i, f=f: np.median(f.delay_s.to_numpy()[i]))
        for f in (base, cand)
    ]
    half_width = (body["ci_high"] - body["ci_low"]) / 2
    assert half_width == pytest.approx(Z * np.sqrt(boot[0] ** 2 + boot[1] ** 2), rel=0.3)
    assert body["powered"] is bool(abs(body["difference"]) >= body["mde"])


def test_drift_statistics_compare_with_a_bootstrap_interval(writer, two_binary_versions):
    base, cand, references = two_binary_versions
    body = compare(writer, "churn", "drift:age")
    # each version's KS statistic against its own reference (800 rows: KS, exact)
    ks = [
        stats.ks_2samp(references[v]["age"].dropna(), f["age"].dropna()).statistic
        for v, f in (("1.0.0", base), ("2.0.0", cand))
    ]
    assert body["baseline"]["value"] == pytest.approx(ks[0], abs=1e-12)
    assert body["difference"] == pytest.approx(ks[1] - ks[0], abs=1e-12)
    # the interval's width against a bootstrap of the raw current rows
    boot = []
    for version, frame in (("1.0.0", base), ("2.0.0", cand)):
        ref, cur = references[version]["age"].dropna().to_numpy(), frame["age"].to_numpy()
        boot.append(
            bootstrap_sd(
                cur.size,
                lambda i, ref=ref, cur=cur: (
                    stats.ks_2samp(ref, cur[i], nan_policy="omit").statistic
                ),
                draws=200,
            )
        )
    half_width = (body["ci_high"] - body["ci_low"]) / 2
    assert half_width == pytest.approx(Z * np.sqrt(boot[0] ** 2 + boot[1] ** 2), rel=0.3)
    assert body["ci_low"] < body["difference"] < body["ci_high"]


def test_drift_compare_refuses_two_different_tests_until_an_override(writer, model):
    for version, rows in (("1.0.0", 800), ("2.0.0", 1500)):  # KS below 1000 rows, Wasserstein above
        ModelVersion.objects.create(
            model=model,
            version=version,
            reference={"rows": reference_rows(generated(rows, seed=rows))},
        )
        frame = generated(300, seed=rows + 1)
        frame["id"] = version + frame["id"]
        ingest(model, "predictions", predictions_of(frame, version))
    jobs_run(model_id=model.pk)
    params = {"metric": "drift:age", **VERSIONS}
    refused = writer.get("/api/v1/models/churn/compare", params)
    assert refused.status_code == 400 and "different methods" in refused.json()["detail"]
    writer.patch(
        "/api/v1/models/churn",
        {"drift": {"features": {"age": {"method": "wasserstein"}}}},
        format="json",
    )
    assert writer.get("/api/v1/models/churn/compare", params).status_code == 200


def regression_side(model, version: str, seed: int, noise: float):
    rng = np.random.default_rng(seed)
    actual = rng.normal(100, 20, 500).round(2)
    predicted = (actual + rng.standard_t(4, 500) * noise).round(2)
    at = DAY0.isoformat()
    ids = [f"{version}-{i}" for i in range(500)]
    ingest(
        model,
        "predictions",
        [
            {"prediction_id": i, "timestamp": at, "model_version": version, "prediction": float(p)}
            for i, p in zip(ids, predicted, strict=True)
        ],
    )
    ingest(
        model,
        "outcomes",
        [
            {
                "prediction_id": i,
                "observed_at": (DAY0 + timedelta(hours=1)).isoformat(),
                "outcome": float(a),
            }
            for i, a in zip(ids, actual, strict=True)
        ],
    )
    return actual, predicted


def test_rmse_difference_with_a_delta_method_interval(writer, db):
    model = model_create(name="price", task="regression")
    sides = [regression_side(model, "1.0.0", 1, 5.0), regression_side(model, "2.0.0", 2, 4.0)]
    jobs_run(model_id=model.pk)
    body = compare(writer, "price", "rmse")
    rmse = [np.sqrt(sk.mean_squared_error(a, p)) for a, p in sides]
    variances = []
    for actual, predicted in sides:
        squared = (predicted - actual) ** 2
        variances.append(np.var(squared, ddof=1) / squared.size / (4 * squared.mean()))
    assert_normal_interval(body, rmse[1] - rmse[0], variances)


def test_macro_f1_difference_with_a_delta_method_interval(writer, db):
    model = model_create(name="topic", task="multiclass_classification")
    labels = ["a", "b", "c"]
    frames = []
    for version, accuracy in (("1.0.0", 0.7), ("2.0.0", 0.8)):
        rng = np.random.default_rng(len(version) + int(accuracy * 10))
        actual = rng.choice(labels, 600, p=[0.5, 0.3, 0.2])
        predicted = np.where(rng.uniform(size=600) < accuracy, actual, rng.choice(labels, 600))
        at = DAY0.isoformat()
        ingest(
            model,
            "predictions",
            [
                {
                    "prediction_id": f"{version}-{i}",
                    "timestamp": at,
                    "model_version": version,
                    "prediction": p,
                }
                for i, p in enumerate(predicted)
            ],
        )
        ingest(
            model,
            "outcomes",
            [
                {"prediction_id": f"{version}-{i}", "observed_at": at, "outcome": a}
                for i, a in enumerate(actual)
            ],
        )
        frames.append((actual, predicted))
    jobs_run(model_id=model.pk)
    body = compare(writer, "topic", "macro_f1")

    def macro(p):
        cells = p.reshape(3, 3)
        return float(np.mean(2 * np.diag(cells) / (cells.sum(axis=0) + cells.sum(axis=1))))

    values, variances = [], []
    for actual, predicted in frames:
        values.append(sk.f1_score(actual, predicted, average="macro"))
        matrix = sk.confusion_matrix(actual, predicted, labels=labels).astype(float)
        variances.append(multinomial_delta_variance(macro, matrix.ravel()))
    assert_normal_interval(body, values[1] - values[0], variances)


def test_counts_are_not_compared(writer, two_binary_versions):
    response = writer.get("/api/v1/models/churn/compare", {"metric": "predictions", **VERSIONS})
    assert response.status_code == 400 and "not an estimate" in response.json()["detail"]
