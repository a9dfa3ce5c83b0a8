"""Metrics, drift, compare and sensitivity from stored aggregates, against SciPy and sklearn
computed here on the same raw rows."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance
from sklearn import metrics as sk

from factory.models import ModelVersion
from factory.services import model_create
from monitoring.ingest.services import records_ingest
from monitoring.jobs import jobs_run
from tests.conftest import NOW

pytestmark = pytest.mark.django_db
DAY0 = NOW.replace(hour=0)  # a Tuesday: both days fall in one week
PLANS = ["basic", "pro", "team"]


def ingest(model, kind, records):
    return records_ingest(model=model, kind=kind, records=records, enqueue_jobs=False)


def generated(n: int, seed: int, *, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    score = rng.uniform(0, 1, n).round(4)  # ties, as real scores have
    frame = pd.DataFrame(
        {
            "id": [f"{seed}-{i}" for i in range(n)],
            "at": [DAY0 + timedelta(minutes=int(m)) for m in rng.integers(0, 2 * 1440, n)],
            "score": score,
            "prediction": (score >= 0.5).astype(int),
            "outcome": (rng.uniform(0, 1, n) < score).astype(int),
            "age": rng.normal(40 + shift, 10, n).round(1),
            "plan": rng.choice(PLANS, n, p=[0.5, 0.3, 0.2]),
            "delay_s": rng.exponential(86400, n).round(),
        }
    )
    frame.loc[rng.uniform(0, 1, n) < 0.1, "age"] = np.nan
    return frame


def predictions_of(frame: pd.DataFrame, version: str = "1.0.0") -> list[dict]:
    return [
        {
            "prediction_id": row.id,
            "timestamp": row.at.isoformat(),
            "model_version": version,
            "prediction": int(row.prediction),
            "score": float(row.score),
            "features": {
                "age": None if np.isnan(row.age) else float(row.age),
                "plan": row.plan,
                "empty": None,
            },
        }
        for row in frame.itertuples()
    ]


def outcomes_of(frame: pd.DataFrame) -> list[dict]:
    return [
        {
            "prediction_id": row.id,
            "observed_at": (row.at + timedelta(seconds=row.delay_s)).isoformat(),
            "outcome": int(row.outcome),
        }
        for row in frame.itertuples()
    ]


def reference_rows(frame: pd.DataFrame) -> list[dict]:
    return [
        {"features": {"age": None if np.isnan(a) else a, "plan": p}}
        for a, p in zip(frame["age"], frame["plan"], strict=True)
    ]


def reference_and_shifted_stored(model) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Version 1.0.0 with an 800-row reference, and 1500 predictions shifted by 3 joined and
    aggregated: the data of the drift tests that need no outcomes."""
    reference = generated(800, seed=1)
    ModelVersion.objects.create(
        model=model, version="1.0.0", reference={"rows": reference_rows(reference)}
    )
    current = generated(1500, seed=2, shift=3.0)
    ingest(model, "predictions", predictions_of(current))
    jobs_run(model_id=model.pk)
    return reference, current


@pytest.fixture
def stored(model):
    reference = generated(800, seed=1)
    ModelVersion.objects.create(
        model=model, version="1.0.0", reference={"rows": reference_rows(reference)}
    )
    current = generated(1500, seed=2, shift=3.0)
    current.loc[:9, "plan"] = "gold"  # a category the reference never had
    ingest(model, "predictions", predictions_of(current))
    labelled = current.iloc[:1200]
    ingest(model, "outcomes", outcomes_of(labelled))
    jobs_run(model_id=model.pk)
    return reference, current, labelled


def one_window(client, metric: str, **params) -> dict:
    url = "/api/v1/models/churn/metrics"
    response = client.get(url, {"metric": metric, "granularity": "week", **params})
    assert response.status_code == 200, response.content
    (point,) = response.json()["points"]
    return point


def test_binary_metrics_equal_sklearn_on_the_raw_rows(writer, stored):
    _, _, labelled = stored
    y, pred, score = labelled["outcome"], labelled["prediction"], labelled["score"]
    expected = {
        "accuracy": sk.accuracy_score(y, pred),
        "precision": sk.precision_score(y, pred),
        "recall": sk.recall_score(y, pred),
        "f1": sk.f1_score(y, pred),
        "log_loss": sk.log_loss(y, score),
        "brier": sk.brier_score_loss(y, score),
    }
    for metric, value in expected.items():
        point = one_window(writer, metric)
        assert point["value"] == pytest.approx(value, abs=1e-9), metric
        assert point["ci_low"] <= point["value"] <= point["ci_high"]
    auc = one_window(writer, "roc_auc")
    assert auc["value"] == pytest.approx(sk.roc_auc_score(y, score), abs=0.002)
    assert auc["n"] == len(labelled)


def test_prediction_and_label_metrics_equal_pandas(writer, stored):
    _, current, labelled = stored
    assert one_window(writer, "predictions")["value"] == len(current)
    assert one_window(writer, "label_coverage")["value"] == pytest.approx(1200 / 1500)
    assert one_window(writer, "positive_rate")["value"] == pytest.approx(current.prediction.mean())
    assert one_window(writer, "mean_score")["value"] == pytest.approx(current.score.mean())
    delay = one_window(writer, "label_delay_p50")["value"]
    assert delay == pytest.approx(np.median(labelled["delay_s"]), rel=0.024)
    missing = one_window(writer, "missing_rate:age")
    assert missing["value"] == pytest.approx(current["age"].isna().mean(), abs=1e-12)
    assert one_window(writer, "missing_rate:empty")["value"] == 1.0


def test_drift_statistics_equal_scipy_on_the_raw_arrays(writer, stored):
    reference, current, _ = stored
    body = writer.get(
        "/api/v1/models/churn/drift",
        {"start": DAY0.isoformat(), "end": (DAY0 + timedelta(days=2)).isoformat()},
    ).json()
    training = {"kind": "training", "start": None, "end": None, "n": 800, "version": "1.0.0"}
    assert body["reference"] == training
    assert body["current"]["n"] == 1500
    features = {f["name"]: f for f in body["features"]}

    age = features["age"]  # a reference of 800 rows: KS, exact from the histograms
    ks = stats.ks_2samp(reference["age"].dropna(), current["age"].dropna())
    assert age["method"] == "ks" and age["statistic"] == pytest.approx(ks.statistic, abs=1e-12)
    assert age["p_value"] == pytest.approx(ks.pvalue, rel=1e-6)
    assert age["drifted"] is True and age["missing_current"] == current["age"].isna().sum()

    plan = features["plan"]  # unseen "gold": chi-square is infinite, reported, not dropped
    assert plan["method"] == "chisquare" and plan["p_value"] == 0.0 and plan["drifted"] is True
    assert plan["unseen_share"] == pytest.approx(10 / 1500)
    ref_counts = reference["plan"].value_counts()
    cur_counts = current["plan"].value_counts()
    ref_p = np.array([ref_counts[p] for p in PLANS] + [0]) / len(reference)
    cur_p = np.array([cur_counts[p] for p in PLANS] + [10]) / len(current)
    ref_f, cur_f = np.maximum(ref_p, 1e-4), np.maximum(cur_p, 1e-4)
    assert plan["psi"] == pytest.approx(np.sum((cur_f - ref_f) * np.log(cur_f / ref_f)), abs=1e-12)

    empty = features["empty"]
    assert empty["statistic"] is None and empty["drifted"] is None
    assert empty["missing_current"] == 1500
    assert body["dataset_drifted"] is True and body["share_drifted"] == 1.0


def test_wasserstein_and_jensen_shannon_from_a_window_baseline(writer, model):
    rng = np.random.default_rng(7)
    first = generated(1500, seed=3)
    later = generated(1500, seed=4, shift=4.0)
    later["at"] = later["at"] + timedelta(days=7)
    later["plan"] = rng.choice(PLANS, 1500, p=[0.2, 0.3, 0.5])
    ingest(model, "predictions", predictions_of(first) + predictions_of(later))
    jobs_run(model_id=model.pk)
    params = {
        "reference_start": DAY0.isoformat(),
        "reference_end": (DAY0 + timedelta(days=2)).isoformat(),
        "start": (DAY0 + timedelta(days=7)).isoformat(),
        "end": (DAY0 + timedelta(days=9)).isoformat(),
    }
    body = writer.get("/api/v1/models/churn/drift", params).json()
    assert body["reference"]["kind"] == "window" and body["reference"]["n"] == 1500
    features = {f["name"]: f for f in body["features"]}
    ref_age, cur_age = first["age"].dropna(), later["age"].dropna()
    expected = stats.wasserstein_distance(ref_age, cur_age) / np.std(ref_age)
    assert features["age"]["method"] == "wasserstein"
    assert features["age"]["statistic"] == pytest.approx(expected, abs=0.011)
    ref_p = first["plan"].value_counts().reindex(PLANS).to_numpy() / 1500
    cur_p = later["plan"].value_counts().reindex(PLANS).to_numpy() / 1500
    js = distance.jensenshannon(np.append(ref_p, 0), np.append(cur_p, 0), base=2)
    assert features["plan"]["method"] == "jensenshannon"
    assert features["plan"]["statistic"] == pytest.approx(js, abs=1e-12)

    # Without a reference, the baseline is the version's first 7 days.
    default = writer.get("/api/v1/models/churn/drift", {k: params[k] for k in ("start", "end")})
    assert default.json()["reference"]["kind"] == "window"
    assert default.json()["reference"]["n"] == 1500


def test_late_outcomes_update_their_old_window(writer, stored):
    _, current, _ = stored
    late = current.iloc[1200:]
    ingest(model_for(writer), "outcomes", outcomes_of(late))
    jobs_run(model_id=model_for(writer).pk)
    point = one_window(writer, "recall")
    assert point["value"] == pytest.approx(sk.recall_score(current.outcome, current.prediction))
    auc = one_window(writer, "roc_auc")["value"]
    assert auc == pytest.approx(sk.roc_auc_score(current.outcome, current.score), abs=0.002)


def model_for(_client):
    from factory.models import MLModel

    return MLModel.objects.get(name="churn")


def test_empty_window_and_a_single_class(writer, model):
    frame = generated(50, seed=5)
    frame["outcome"] = 1
    ingest(model, "predictions", predictions_of(frame))
    ingest(model, "outcomes", outcomes_of(frame))
    jobs_run(model_id=model.pk)
    assert one_window(writer, "roc_auc")["value"] is None  # one class: undefined, not 0
    assert one_window(writer, "recall")["value"] == pytest.approx(frame.prediction.mean())
    later = {
        "start": (DAY0 + timedelta(days=20)).isoformat(),
        "end": (DAY0 + timedelta(days=21)).isoformat(),
        "granularity": "day",
    }
    points = writer.get("/api/v1/models/churn/metrics", {"metric": "f1", **later}).json()
    assert points["points"][0]["value"] is None and points["points"][0]["n"] == 0
    drift = writer.get("/api/v1/models/churn/drift", later)  # an empty side is named
    assert drift.status_code == 400 and "the current window" in drift.json()["detail"]


def test_regression_metrics_equal_sklearn_and_roc_auc_is_refused(writer, db):
    model_create(name="price", task="regression")
    rng = np.random.default_rng(11)
    actual = rng.normal(100, 20, 300).round(2)
    predicted = (actual + rng.normal(2, 5, 300)).round(2)
    actual[:5] = 0.0  # MAPE leaves these out
    at = DAY0.isoformat()
    ids = [f"r-{i}" for i in range(300)]
    ingest(
        model_for_name("price"),
        "predictions",
        [
            {"prediction_id": i, "timestamp": at, "model_version": "1", "prediction": float(p)}
            for i, p in zip(ids, predicted, strict=True)
        ],
    )
    ingest(
        model_for_name("price"),
        "outcomes",
        [
            {"prediction_id": i, "observed_at": at, "outcome": float(a)}
            for i, a in zip(ids, actual, strict=True)
        ],
    )
    jobs_run(model_id=model_for_name("price").pk)
    url = "/api/v1/models/price/metrics"

    def value(metric):
        return writer.get(url, {"metric": metric, "granularity": "week"}).json()["points"][0]

    nonzero = actual != 0
    assert value("mae")["value"] == pytest.approx(sk.mean_absolute_error(actual, predicted))
    assert value("rmse")["value"] == pytest.approx(
        np.sqrt(sk.mean_squared_error(actual, predicted))
    )
    assert value("mape")["value"] == pytest.approx(
        sk.mean_absolute_percentage_error(actual[nonzero], predicted[nonzero])
    )
    assert value("bias")["value"] == pytest.approx(np.mean(predicted - actual))
    assert value("mean_prediction")["value"] == pytest.approx(predicted.mean())
    refused = writer.get(url, {"metric": "roc_auc"})
    assert refused.status_code == 400 and "binary classification model" in refused.json()["detail"]


def model_for_name(name):
    from factory.models import MLModel

    return MLModel.objects.get(name=name)


def test_multiclass_macro_f1_equals_sklearn(writer, db):
    model = model_create(name="topic", task="multiclass_classification")
    rng = np.random.default_rng(3)
    actual = rng.choice(["a", "b", "c"], 400)
    predicted = np.where(rng.uniform(size=400) < 0.7, actual, rng.choice(["a", "b", "c"], 400))
    at = DAY0.isoformat()
    ingest(
        model,
        "predictions",
        [
            {"prediction_id": f"m{i}", "timestamp": at, "model_version": "1", "prediction": p}
            for i, p in enumerate(predicted)
        ],
    )
    ingest(
        model,
        "outcomes",
        [{"prediction_id": f"m{i}", "observed_at": at, "outcome": a} for i, a in enumerate(actual)],
    )
    jobs_run(model_id=model.pk)
    url = "/api/v1/models/topic/metrics"
    body = writer.get(url, {"metric": "macro_f1", "granularity": "week"}).json()
    assert body["points"][0]["value"] == pytest.approx(
        sk.f1_score(actual, predicted, average="macro"), abs=1e-12
    )
    accuracy = writer.get(url, {"metric": "accuracy", "granularity": "week"}).json()
    assert accuracy["points"][0]["value"] == pytest.approx(sk.accuracy_score(actual, predicted))


def test_compare_versions_equals_a_chi_square_test(writer, model):
    base, cand = generated(600, seed=8), generated(600, seed=9)
    cand["id"] = "c" + cand["id"]
    cand["prediction"] = np.where(np.arange(600) % 20 == 0, 1 - cand.outcome, cand.outcome)
    ingest(model, "predictions", predictions_of(base, "1.0.0") + predictions_of(cand, "2.0.0"))
    ingest(model, "outcomes", outcomes_of(base) + outcomes_of(cand))
    jobs_run(model_id=model.pk)
    params = {"metric": "accuracy", "baseline": "1.0.0", "candidate": "2.0.0"}
    body = writer.get("/api/v1/models/churn/compare", params).json()
    k = [int((f.prediction == f.outcome).sum()) for f in (base, cand)]
    table = [[k[0], 600 - k[0]], [k[1], 600 - k[1]]]
    chi2 = stats.chi2_contingency(table, correction=False)
    assert body["difference"] == pytest.approx((k[1] - k[0]) / 600)
    assert body["p_value"] == pytest.approx(chi2.pvalue, rel=1e-9)
    assert body["baseline"]["n"] == 600 and body["powered"] is True

    auc = writer.get("/api/v1/models/churn/compare", {**params, "metric": "roc_auc"}).json()
    assert auc["baseline"]["value"] == pytest.approx(
        sk.roc_auc_score(base.outcome, base.score), abs=0.002
    )
    bad = writer.get("/api/v1/models/churn/compare", {**params, "metric": "predictions"})
    assert bad.status_code == 400 and "cannot be compared" in bad.json()["detail"]


def test_sensitivity_follows_the_mde_formula(writer, stored):
    _, _, labelled = stored
    body = writer.get(
        "/api/v1/models/churn/sensitivity", {"metric": "accuracy", "granularity": "day"}
    ).json()
    per_day = labelled.groupby(labelled["at"].map(lambda t: t.date())).size()
    n = per_day.mean()
    p = (labelled.prediction == labelled.outcome).mean()
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert body["n_per_window"] == pytest.approx(n)
    assert body["mde_absolute"] == pytest.approx(z * np.sqrt(p * (1 - p)) * np.sqrt(2 / n))
    assert body["windows_to_detect"]["0.01"] > body["windows_to_detect"]["0.1"] >= 1


@pytest.mark.parametrize(
    ("path", "params", "fragment"),
    [
        ("metrics", {"metric": "drift:nope"}, "no feature"),
        ("metrics", {"metric": "macro_f1"}, "multiclass"),
        ("drift", {"reference_start": "2026-03-01T00:00:00Z"}, "both reference_start"),
        ("drift", {"start": "2026-03-02T00:00:00Z", "end": "2026-03-01T00:00:00Z"}, "before"),
        ("drift", {"version": "9.9"}, "no version"),
        ("compare", {"metric": "accuracy", "baseline": "1.0.0"}, "candidate parameter"),
        ("sensitivity", {"metric": "accuracy", "alpha": "2"}, "alpha must be"),
        ("sensitivity", {"metric": "accuracy", "granularity": "year"}, "granularity"),
    ],
)
def test_bad_questions_are_400_with_a_reason(writer, stored, path, params, fragment):
    response = writer.get(f"/api/v1/models/churn/{path}", params)
    assert response.status_code == 400, response.content
    assert fragment in response.json()["detail"]


def test_drift_metric_per_window_matches_the_drift_endpoint(writer, stored):
    day = {"start": DAY0.isoformat(), "end": (DAY0 + timedelta(days=1)).isoformat()}
    point = writer.get(
        "/api/v1/models/churn/metrics", {"metric": "drift:age", "granularity": "day", **day}
    ).json()["points"][0]
    drift = writer.get("/api/v1/models/churn/drift", day).json()
    age = next(f for f in drift["features"] if f["name"] == "age")
    assert point["value"] == pytest.approx(age["statistic"], abs=1e-12)


def test_new_endpoints_are_in_the_openapi_schema(writer, db):
    schema = writer.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    text = schema.content.decode()
    for path in ("drift", "compare", "sensitivity"):
        assert f"/api/v1/models/{{model}}/{path}" in text


def test_a_reference_registered_later_refreezes_the_bins_and_reaggregates(writer, model):
    current = generated(600, seed=12, shift=2.0)
    ingest(model, "predictions", predictions_of(current))
    jobs_run(model_id=model.pk)
    assert writer.get("/api/v1/models/churn/drift").json()["reference"]["kind"] == "window"

    # given: the version's reference arrives after its predictions were aggregated
    reference = generated(700, seed=13)
    ModelVersion.objects.filter(model=model, version="1.0.0").update(
        reference={"rows": reference_rows(reference)}
    )
    # when: the next jobs run sees the new reference
    jobs_run(model_id=model.pk)

    # then: every stored hour is on the reference's bins, and KS is scipy's on the raw values
    window = {"start": DAY0.isoformat(), "end": (DAY0 + timedelta(days=2)).isoformat()}
    body = writer.get("/api/v1/models/churn/drift", window).json()
    assert body["reference"]["kind"] == "training" and body["reference"]["n"] == 700
    age = next(f for f in body["features"] if f["name"] == "age")
    ks = stats.ks_2samp(reference["age"].dropna(), current["age"].dropna())
    assert age["statistic"] == pytest.approx(ks.statistic, abs=1e-12)
    assert age["n_current"] == current["age"].notna().sum()
