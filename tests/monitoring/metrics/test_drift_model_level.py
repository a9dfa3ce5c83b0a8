"""Drift over the model's whole traffic under a running canary (API.md, drift).

Two models receive the same predictions; they differ only in which version served the very
last one. Without a version, drift pools every version's predictions in both windows, so both
models answer alike, and each test equals SciPy's on the pooled raw rows. With a version, the
answer is that version's rows against its own registered reference, counted on the model's
bins. Ages are whole numbers, so every value lies on one of the model's fixed edges and the
binned tests are the exact ones.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from factory.models import MLModel
from factory.services import model_create, version_register
from monitoring.ingest.services import records_ingest
from monitoring.jobs import jobs_run
from monitoring.metrics.drift import drift_settings_set
from monitoring.models import FeatureBins
from tests.conftest import prediction

pytestmark = pytest.mark.django_db
START = datetime(2026, 10, 1, tzinfo=UTC)
PLANS = ["basic", "plus", "premium"]
V1, V2 = "1.0.0", "2.0.0"
ALONE_DAYS, CANARY_DAYS, PER_DAY = 7, 14, 100
CANARY_SHARE = 0.4  # of each canary day's predictions: 1.0.0 keeps serving most
PSI = {"numerical": {"method": "psi"}, "categorical": {"method": "psi"}}


def ages(rng, mean: float, n: int) -> np.ndarray:
    return np.clip(np.round(rng.normal(mean, 10, n)), 30, 50).astype(int)


def plans(rng, p: list[float], n: int) -> np.ndarray:
    return rng.choice(PLANS, n, p=p)


def reference_rows(age: np.ndarray, plan: np.ndarray) -> dict:
    return {
        "rows": [
            {"features": {"age": int(a), "plan": str(p)}} for a, p in zip(age, plan, strict=True)
        ]
    }


def canary_traffic(seed: int = 5) -> tuple[pd.DataFrame, dict]:
    """1.0.0 alone for a week, then 1.0.0 and 2.0.0 interleaved for two (2.0.0's customers
    older and on dearer plans). Returns the rows and each version's reference values."""
    rng = np.random.default_rng(seed)
    references = {
        V1: (ages(rng, 40, 800), plans(rng, [0.5, 0.3, 0.2], 800)),
        V2: (ages(rng, 42, 600), plans(rng, [0.4, 0.3, 0.3], 600)),
    }
    rows = []
    for day in range(ALONE_DAYS + CANARY_DAYS):
        for j in range(PER_DAY):
            canary = day >= ALONE_DAYS and rng.uniform() < CANARY_SHARE
            version = V2 if canary else V1
            age = ages(rng, 44 if canary else 40, 1)[0]
            plan = plans(rng, [0.3, 0.3, 0.4] if canary else [0.5, 0.3, 0.2], 1)[0]
            at = START + timedelta(days=day, minutes=j)  # two hours a day: a quick job
            segment = "web" if rng.uniform() < 0.6 else "mobile"
            rows.append((at, version, segment, int(age), str(plan)))
    frame = pd.DataFrame(rows, columns=["at", "version", "segment", "age", "plan"])
    return frame, references


def served(model, frame: pd.DataFrame, references: dict) -> None:
    for version, (age, plan) in references.items():
        version_register(
            model=model, version=version, lineage={}, reference=reference_rows(age, plan)
        )
    records = [
        prediction(
            i,
            at=row.at,
            model_version=row.version,
            segment=row.segment,
            features={"age": row.age, "plan": row.plan},
        )
        for i, row in enumerate(frame.itertuples())
    ]
    records_ingest(model=model, kind="predictions", records=records, enqueue_jobs=False)
    jobs_run(model_id=model.pk)


def last_served_by(frame: pd.DataFrame, version: str) -> pd.DataFrame:
    """The same traffic with its last prediction served by ``version``."""
    frame = frame.copy()
    frame.loc[frame.index[-1], "version"] = version
    return frame


@pytest.fixture
def canary(db):
    """`churn`, whose last prediction 2.0.0 served, and `churn-b`, whose 1.0.0 did; their
    predictions are otherwise the same."""
    frame, references = canary_traffic()
    for name, last in (("churn", V2), ("churn-b", V1)):
        model = model_create(name=name, task="binary_classification", positive_class=1)
        served(model, last_served_by(frame, last), references)
    return last_served_by(frame, V2), references


def drift(client, model: str = "churn", **query) -> tuple[int, dict]:
    response = client.get(f"/api/v1/models/{model}/drift", query)
    return response.status_code, response.json()


def current_rows(frame: pd.DataFrame, body: dict) -> pd.DataFrame:
    start, end = (pd.Timestamp(body["current"][side]) for side in ("start", "end"))
    return frame[(frame["at"] >= start) & (frame["at"] < end)]


def by_name(body: dict) -> dict:
    return {feature["name"]: feature for feature in body["features"]}


def psi_expected(reference: np.ndarray, current: np.ndarray) -> float:
    """PSI on the reference's deciles (DESIGN.md), proportions floored at 1e-4."""
    edges = np.unique(np.quantile(reference, np.arange(1, 10) / 10))
    ref = np.bincount(np.searchsorted(edges, reference), minlength=edges.size + 1)
    cur = np.bincount(np.searchsorted(edges, current), minlength=edges.size + 1)
    ref, cur = np.maximum(ref / ref.sum(), 1e-4), np.maximum(cur / cur.sum(), 1e-4)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def category_counts(values) -> np.ndarray:
    return np.array([int(np.sum(np.asarray(values) == plan)) for plan in PLANS], dtype=float)


def categorical_psi_expected(reference, current) -> float:
    ref, cur = category_counts(reference), category_counts(current)
    ref, cur = np.maximum(ref / ref.sum(), 1e-4), np.maximum(cur / cur.sum(), 1e-4)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def assert_tests_as_scipy(body: dict, reference: tuple, current: pd.DataFrame, psi: bool):
    """Each feature's answer against SciPy (or the PSI formula) on the raw values."""
    ref_age, ref_plan = reference
    age, plan = by_name(body)["age"], by_name(body)["plan"]
    assert (age["n_reference"], age["n_current"]) == (len(ref_age), len(current))
    if psi:
        assert (age["method"], plan["method"]) == ("psi", "psi")
        assert age["statistic"] == pytest.approx(psi_expected(ref_age, current["age"]), rel=1e-9)
        expected = categorical_psi_expected(ref_plan, current["plan"])
        assert plan["statistic"] == pytest.approx(expected, rel=1e-9)
        return
    ks = stats.ks_2samp(ref_age, current["age"].to_numpy())
    assert age["method"] == "ks" and age["max_error"] == 0
    assert age["statistic"] == pytest.approx(ks.statistic, rel=1e-12)
    assert age["p_value"] == pytest.approx(ks.pvalue, rel=1e-6)
    assert age["drifted"] == (ks.pvalue < 0.05)
    observed = category_counts(current["plan"])
    expected = category_counts(ref_plan) / len(ref_plan) * observed.sum()
    chi2 = stats.chisquare(observed, expected)
    assert plan["method"] == "chisquare"
    assert plan["statistic"] == pytest.approx(chi2.statistic, rel=1e-9)
    assert plan["p_value"] == pytest.approx(chi2.pvalue, rel=1e-9)


@pytest.mark.parametrize("settings", [None, PSI], ids=["default tests", "psi"])
def test_without_a_version_drift_pools_every_version_whoever_served_last(
    canary, client_with, settings
):
    # given: a running canary, and the model's drift settings
    frame, references = canary
    if settings:
        for name in ("churn", "churn-b"):
            drift_settings_set(model=MLModel.objects.get(name=name), settings=settings)
    client = client_with("read")
    # when
    status, body = drift(client, "churn")
    status_b, body_b = drift(client, "churn-b")
    # then: the same answer whichever version served the last prediction...
    assert (status, status_b) == (200, 200)
    assert {**body, "model": None} == {**body_b, "model": None}
    assert body["version"] is None and body["versions"] == [V1, V2]
    # ...against the reference of the version that served most of the current window...
    training = {"kind": "training", "start": None, "end": None, "n": 800, "version": V1}
    assert body["reference"] == training
    current = current_rows(frame, body)
    assert set(current["version"]) == {V1, V2}
    assert body["current"]["n"] == len(current)
    # ...and each test is SciPy's on the pooled raw rows.
    assert_tests_as_scipy(body, references[V1], current, psi=settings is not None)


@pytest.mark.parametrize("version", [V1, V2])
def test_a_version_alone_is_its_own_rows_against_its_own_reference(canary, client_with, version):
    frame, references = canary
    span = {"start": day(ALONE_DAYS + 7), "end": day(ALONE_DAYS + CANARY_DAYS)}
    # when
    status, body = drift(client_with("read"), version=version, **span)
    # then
    assert status == 200, body
    assert (body["version"], body["versions"]) == (version, [version])
    size = len(references[version][0])
    assert body["reference"] == {
        "kind": "training",
        "start": None,
        "end": None,
        "n": size,
        "version": version,
    }
    current = current_rows(frame, body)
    current = current[current["version"] == version]
    assert body["current"]["n"] == len(current)
    assert_tests_as_scipy(body, references[version], current, psi=False)


def test_the_versions_histograms_add_up_to_the_whole_traffic(canary, client_with):
    # given: one set of bins for the model, whatever the version
    assert FeatureBins.objects.filter(model__name="churn", name="age").count() == 1
    span = {"start": day(ALONE_DAYS), "end": day(ALONE_DAYS + CANARY_DAYS)}
    client = client_with("read")
    # when
    _, whole = drift(client, **span)
    sides = [drift(client, version=version, **span)[1] for version in (V1, V2)]
    # then: counts add up, feature by feature
    assert whole["current"]["n"] == sum(side["current"]["n"] for side in sides) == 1400
    for name in ("age", "plan"):
        counts = [by_name(side)[name]["n_current"] for side in sides]
        assert by_name(whole)[name]["n_current"] == sum(counts)


def test_drift_per_window_pools_every_version_whoever_served_last(canary, client_with):
    frame, references = canary
    client = client_with("read")
    query = {"metric": "drift:age", "granularity": "day"}
    # when
    points = client.get("/api/v1/models/churn/metrics", query).json()["points"]
    points_b = client.get("/api/v1/models/churn-b/metrics", query).json()["points"]
    # then
    assert [(p["start"], p["value"]) for p in points] == [
        (p["start"], p["value"]) for p in points_b
    ]
    by_day = frame.groupby(frame["at"].dt.floor("D"))["age"]
    expected = [stats.ks_2samp(references[V1][0], ages).statistic for _, ages in by_day]
    assert [p["value"] for p in points] == pytest.approx(expected, rel=1e-12)


def test_an_empty_side_is_a_400_naming_it_and_the_versions_looked_at(canary, client_with):
    client = client_with("read")
    # a reference window before any prediction, the whole traffic
    status, body = drift(
        client, reference_start=day(-14), reference_end=day(-7), start=day(0), end=day(7)
    )
    assert status == 400
    assert body["detail"] == (
        f"the reference window {day(-14)} to {day(-7)} holds no predictions "
        f"(versions looked at: {V1}, {V2})"
    )
    # a current window the canary did not serve, one version
    status, body = drift(client, version=V2, start=day(0), end=day(7))
    assert status == 400
    assert body["detail"] == (
        f"the current window {day(0)} to {day(7)} holds no predictions (versions looked at: {V2})"
    )
    # a segment nobody served, the whole traffic
    status, body = drift(client, segment="tablet")
    assert status == 400
    assert "in segment 'tablet' holds no predictions" in body["detail"]
    assert f"(versions looked at: {V1}, {V2})" in body["detail"]


def day(n: int) -> str:
    return (START + timedelta(days=n)).isoformat()
