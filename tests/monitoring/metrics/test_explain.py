"""`explain` against independent computations on the raw rows.

Generated data with planted effects, aggregated by the real pipeline (PostgreSQL's one-pass
path, and SQLite's reader where the embedded default runs); the answer compared with pandas on
the same rows: the within-slice drop found where it was planted, a population shift put on
mix, effects adding up to the change, p-values equal to SciPy's tests on the slices' rows,
q-values equal to SciPy's Benjamini-Hochberg, and the same answer once the raw rows are gone.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from canary_client import CanaryClient, CanaryError
from django.core.management import call_command
from django.db import connection
from scipy import stats

from accounts.services import api_key_create
from config.celery import app
from factory.services import model_create
from monitoring.ingest.services import records_ingest
from monitoring.metrics.explain import dimension_drivers, explain, q_values_fill
from monitoring.metrics.registry import metric_get
from monitoring.metrics.windows import MetricError
from monitoring.models import (
    SLICE_SUM_FIELDS,
    HourlyAggregate,
    Label,
    Prediction,
    SliceDay,
    SliceHour,
)
from monitoring.pipeline.aggregate import aggregates_refresh
from monitoring.pipeline.backfill import range_aggregate
from monitoring.pipeline.join import outcomes_join
from monitoring.pipeline.slice_aggregates import (
    MISSING,
    SliceSums,
    columns_of,
    slices_decode,
)
from monitoring.stats.multiple import benjamini_hochberg
from tests.conftest import need_service

pytestmark = pytest.mark.django_db(transaction=True)

BASE_START = datetime(2026, 3, 2, tzinfo=UTC)
CUR_START = BASE_START + timedelta(days=7)
REGIONS = ["north", "south", "east", "west"]


def planted_rows(n: int, *, seed: int) -> pd.DataFrame:
    """Two weeks of predictions. In the current week, region "south" is less accurate
    (within effect) and segment "app" grows from 30% to 60% of traffic while it is less
    accurate throughout (mix effect)."""
    rng = np.random.default_rng(seed)
    current = np.arange(n) >= n // 2
    minutes = rng.integers(0, 7 * 24 * 60, n)
    at = [
        (CUR_START if c else BASE_START) + timedelta(minutes=int(m))
        for c, m in zip(current, minutes, strict=True)
    ]
    app_share = np.where(current, 0.6, 0.3)
    segment = np.where(rng.uniform(size=n) < app_share, "app", "web")
    region = rng.choice(REGIONS, n)
    income = rng.normal(50_000, 15_000, n)
    accuracy = np.where(segment == "app", 0.7, 0.9) - np.where(
        current & (region == "south"), 0.25, 0.0
    )
    prediction = rng.integers(0, 2, n)
    correct = rng.uniform(size=n) < accuracy
    outcome = np.where(correct, prediction, 1 - prediction)
    labelled = rng.uniform(size=n) < 0.9
    return pd.DataFrame(
        {
            "id": [f"p-{i}" for i in range(n)],
            "at": at,
            "segment": segment,
            "region": np.where(rng.uniform(size=n) < 0.05, None, region),
            "income": np.where(rng.uniform(size=n) < 0.05, np.nan, income),
            "prediction": prediction,
            "score": np.round(rng.uniform(size=n), 4),
            "outcome": np.where(labelled, outcome, -1),
            "current": current,
        }
    )


def ingest(model, frame: pd.DataFrame) -> None:
    predictions, outcomes = [], []
    for row in frame.itertuples():
        features = {"region": row.region}
        if not np.isnan(row.income):
            features["income"] = float(row.income)
        predictions.append(
            {
                "prediction_id": row.id,
                "timestamp": row.at.isoformat(),
                "model_version": "1.0.0" if row.at < CUR_START + timedelta(days=3) else "1.1.0",
                "prediction": int(row.prediction),
                "score": float(row.score),
                "segment": row.segment,
                "features": features,
            }
        )
        if row.outcome >= 0:
            outcomes.append(
                {
                    "prediction_id": row.id,
                    "observed_at": (row.at + timedelta(hours=1)).isoformat(),
                    "outcome": int(row.outcome),
                }
            )
    records_ingest(model=model, kind="predictions", records=predictions, enqueue_jobs=False)
    records_ingest(model=model, kind="outcomes", records=outcomes, enqueue_jobs=False)
    outcomes_join(model_id=model.pk)
    aggregates_refresh(model_id=model.pk)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return planted_rows(6000, seed=7)


@pytest.fixture
def planted(frame):
    model = model_create(name="why", task="binary_classification", positive_class=1)
    ingest(model, frame)
    return model


def answer_of(model, metric="accuracy"):
    return explain(
        model=model,
        metric=metric,
        start=CUR_START,
        end=CUR_START + timedelta(days=7),
        baseline_start=BASE_START,
        baseline_end=CUR_START,
    )


def pandas_effects(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Mix and within effects of accuracy per slice of ``column``, on the raw rows."""
    judged = frame[frame.outcome >= 0].assign(
        correct=lambda f: (f.prediction == f.outcome).astype(float),
        slice=lambda f: f[column].fillna(MISSING).astype(str),
    )
    base, cur = judged[~judged.current], judged[judged.current]
    total_base = base.correct.mean()
    table = pd.DataFrame(
        {
            "w_base": base.groupby("slice").size() / len(base),
            "w_cur": cur.groupby("slice").size() / len(cur),
            "v_base": base.groupby("slice").correct.mean(),
            "v_cur": cur.groupby("slice").correct.mean(),
        }
    ).fillna({"w_base": 0.0, "w_cur": 0.0})
    anchor = table.v_base.fillna(total_base)
    table["mix"] = (table.w_cur - table.w_base) * (anchor - total_base)
    table["within"] = (table.w_cur * (table.v_cur - anchor)).fillna(0.0)
    return table


def drivers_of(answer, dimension: str) -> dict:
    return {d.slice: d for d in answer.drivers if d.dimension == dimension}


def test_explain_matches_pandas_on_the_raw_rows(planted, frame):
    answer = answer_of(planted)
    judged = frame[frame.outcome >= 0]
    correct = judged.prediction == judged.outcome
    assert answer.baseline.value == pytest.approx(correct[~judged.current].mean(), abs=1e-12)
    assert answer.current.value == pytest.approx(correct[judged.current].mean(), abs=1e-12)
    for column, dimension in (("region", "feature:region"), ("segment", "segment")):
        expected = pandas_effects(frame, column)
        drivers = drivers_of(answer, dimension)
        assert set(drivers) == set(expected.index)
        for name, row in expected.iterrows():
            driver = drivers[name]
            assert driver.share_baseline == pytest.approx(row.w_base, abs=1e-12)
            assert driver.share_current == pytest.approx(row.w_cur, abs=1e-12)
            assert driver.mix_effect == pytest.approx(row.mix, abs=1e-12)
            assert driver.within_effect == pytest.approx(row.within, abs=1e-12)


def test_effects_add_up_to_the_change_in_every_dimension(planted):
    for metric in ("accuracy", "positive_rate", "label_coverage", "mean_score", "brier"):
        answer = answer_of(planted, metric)
        dimensions = {d["dimension"] for d in answer.dimensions}
        assert {"segment", "version", "feature:region", "feature:income"} <= dimensions
        for effects in answer.dimensions:
            total = effects["mix_effect"] + effects["within_effect"]
            assert total == pytest.approx(answer.change, abs=1e-9), (metric, effects)
            shares = [d for d in answer.drivers if d.dimension == effects["dimension"]]
            assert sum(d.share_baseline for d in shares) == pytest.approx(1.0, abs=1e-12)
            assert sum(d.share_current for d in shares) == pytest.approx(1.0, abs=1e-12)


def test_the_planted_causes_are_found(planted):
    answer = answer_of(planted)
    top = next(d for d in answer.drivers if d.dimension.startswith("feature:"))
    assert (top.dimension, top.slice) == ("feature:region", "south")
    assert top.within_effect < -0.04 and top.q_value < 0.05
    dimensions = {d["dimension"]: d for d in answer.dimensions}
    # The shift of traffic to the worse segment is mix; regions' population did not move.
    assert dimensions["segment"]["mix_effect"] < -0.03
    assert abs(dimensions["feature:region"]["mix_effect"]) < 0.01
    assert drivers_of(answer, "segment")["app"].mix_effect < -0.02
    income = drivers_of(answer, "feature:income")
    assert len(income) == 11 and MISSING in income  # ten deciles and missing


def test_p_values_and_q_values_equal_scipy_on_the_slices_rows(planted, frame):
    answer = answer_of(planted)
    judged = frame[frame.outcome >= 0]
    for name, driver in drivers_of(answer, "feature:region").items():
        rows = judged[judged.region.fillna(MISSING) == name]
        table = [
            [(r.prediction == r.outcome).sum(), (r.prediction != r.outcome).sum()]
            for r in (rows[~rows.current], rows[rows.current])
        ]
        chi2 = stats.chi2_contingency(table, correction=False)  # = the pooled z-test
        assert driver.p_value == pytest.approx(chi2.pvalue, rel=1e-9)
    scores = answer_of(planted, "mean_score")
    for name, driver in drivers_of(scores, "segment").items():
        rows = frame[frame.segment == name]
        welch = stats.ttest_ind(
            rows[rows.current].score, rows[~rows.current].score, equal_var=False
        )
        assert driver.p_value == pytest.approx(welch.pvalue, rel=1e-6)
    p_values = np.array([d.p_value for d in answer.drivers if d.p_value is not None])
    q_values = [d.q_value for d in answer.drivers if d.p_value is not None]
    np.testing.assert_allclose(q_values, stats.false_discovery_control(p_values), rtol=1e-12)


def test_benjamini_hochberg_equals_scipy():
    rng = np.random.default_rng(1)
    for size in (1, 2, 7, 50, 400):
        p_values = np.concatenate([rng.uniform(size=size), rng.uniform(0, 1e-3, size)])
        np.testing.assert_allclose(
            benjamini_hochberg(p_values), stats.false_discovery_control(p_values), rtol=1e-12
        )


def test_non_additive_metrics_rank_slices_by_impact(planted, frame):
    answer = answer_of(planted, "f1")
    assert all(d.mix_effect is None and d.impact is not None for d in answer.drivers)
    from sklearn.metrics import f1_score

    judged = frame[frame.outcome >= 0]
    south = judged.region == "south"

    def f1_of(rows):
        return f1_score(rows.outcome, rows.prediction)

    change = f1_of(judged[judged.current]) - f1_of(judged[~judged.current])
    without = f1_of(judged[judged.current & ~south]) - f1_of(judged[~judged.current & ~south])
    assert answer.change == pytest.approx(change, abs=1e-12)
    driver = drivers_of(answer, "feature:region")["south"]
    assert driver.impact == pytest.approx(change - without, abs=1e-12)
    assert [abs(d.impact) for d in answer.drivers] == sorted(
        (abs(d.impact) for d in answer.drivers), reverse=True
    )


def test_the_answer_reads_aggregates_only(planted):
    before = answer_of(planted)
    Label.objects.filter(model=planted).delete()
    Prediction.objects.filter(model=planted).delete()
    assert HourlyAggregate.objects.filter(model=planted).exists()
    assert answer_of(planted) == before


def test_bad_requests_say_what_is_wrong(planted):
    with pytest.raises(MetricError, match="midnight UTC"):
        explain(model=planted, metric="accuracy", start=CUR_START + timedelta(hours=3))
    with pytest.raises(MetricError, match=r"explain takes .*accuracy"):
        explain(model=planted, metric="label_delay_p50")
    with pytest.raises(MetricError, match=r"baseline window .* no predictions"):
        explain(
            model=planted,
            metric="accuracy",
            start=CUR_START,
            baseline_start=BASE_START - timedelta(days=30),
            baseline_end=BASE_START - timedelta(days=20),
        )


def stored(model, document: str) -> SliceSums:
    """Every stored slice entry of the model: its days' sums, or its hours'."""
    table, column = (SliceDay, "sums") if document == "sums" else (SliceHour, "entries")
    rows = table.objects.filter(model=model).values_list(column, flat=True)
    return SliceSums.concat([slices_decode(data) for data in rows])


def test_slice_sums_add_up_to_the_hourly_aggregates(planted):
    judged = sum(HourlyAggregate.objects.filter(model=planted).values_list("judged", flat=True))
    column = SLICE_SUM_FIELDS.index("judged")
    for document in ("sums", "hours"):
        entries = stored(planted, document)
        for feature in ("region", "income"):
            assert entries.sums[entries.feature == feature, column].sum() == judged


def test_the_api_and_the_client_answer_it(planted, live_server):
    key = api_key_create(name="reader", scopes=["read"], model_names=[])
    canary = CanaryClient(live_server.url, key)
    window = {
        "start": CUR_START.isoformat(),
        "end": (CUR_START + timedelta(days=7)).isoformat(),
        "baseline_start": BASE_START.isoformat(),
        "baseline_end": CUR_START.isoformat(),
    }
    answer = canary.explain("why", "accuracy", **window)
    expected = answer_of(planted)
    assert answer["change"] == pytest.approx(expected.change, abs=1e-12)
    assert answer["baseline"]["n"] == expected.baseline.n
    top = answer["drivers"][0]
    assert (top["dimension"], top["slice"]) == (
        expected.drivers[0].dimension,
        expected.drivers[0].slice,
    )
    assert set(top) == {
        "dimension",
        "slice",
        "share_baseline",
        "share_current",
        "value_baseline",
        "value_current",
        "mix_effect",
        "within_effect",
        "impact",
        "p_value",
        "q_value",
    }
    # The defaults: the 7 whole days before the last prediction day, and the 7 before them.
    default = canary.explain("why", "accuracy")
    assert default["current"]["end"].startswith("2026-03-15T00:00:00")
    assert default["baseline"]["start"].startswith("2026-03-01T00:00:00")
    with pytest.raises(CanaryError) as error:
        canary.explain("why", "accuracy", start="2026-03-09T06:00:00Z")
    assert error.value.status == 400 and "midnight UTC" in str(error.value.problem)
    schema = canary.request("GET", "/api/v1/schema/?format=json")
    assert "/api/v1/models/{model}/explain" in schema["paths"]


def test_the_backfill_builds_the_slices_of_hours_aggregated_before_them(planted, monkeypatch):
    monkeypatch.setitem(app.conf, "task_always_eager", True)  # the ranges run here, in turn
    before = answer_of(planted)
    days = SliceDay.objects.filter(model=planted).count()
    SliceDay.objects.filter(model=planted).delete()  # as after migrating to 0010
    SliceHour.objects.filter(model=planted).delete()
    bare = answer_of(planted)
    assert not any(d["dimension"].startswith("feature:") for d in bare.dimensions)

    call_command("aggregates_backfill", "--model", "why", stdout=io.StringIO())

    assert SliceDay.objects.filter(model=planted).count() == days
    assert answer_of(planted) == before


def slice_rows(model) -> dict[tuple, np.ndarray]:
    """Every stored entry (days' and hours') by its key: its sums, then its score bins."""
    out = {}
    for document in ("sums", "hours"):
        entries = stored(model, document)
        keys = zip(*columns_of(entries)[:5], strict=True)
        rows = np.hstack([entries.sums, entries.scores.toarray()])
        for key, sums in zip(keys, rows, strict=True):
            out[(document, *key)] = sums
    return out


def test_both_readers_write_the_same_slice_rows(planted):
    need_service("PostgreSQL (DATABASE_URL)", connection.vendor == "postgresql")
    by_sql = slice_rows(planted)  # whole days summed from the chunk's rows
    SliceDay.objects.filter(model=planted).delete()
    SliceHour.objects.filter(model=planted).delete()
    end = CUR_START + timedelta(days=7)
    range_aggregate(model_id=planted.pk, start=BASE_START, end=end, path="pandas")  # SQLite's
    by_pandas = slice_rows(planted)  # an hour at a time, days summed from the stored hours
    assert by_pandas.keys() == by_sql.keys()
    for key, sums in by_sql.items():
        np.testing.assert_allclose(by_pandas[key], sums, rtol=1e-12, atol=1e-9, err_msg=str(key))


def simulated_sides(rng, *, drop: float, slices: int = 10, n: int = 2000):
    """Accuracy sums of ``slices`` slices of ``n`` labelled predictions a window each, all at
    0.9 (as the demo model); the first slice ``drop`` lower in the current window."""
    sides = []
    for current in (False, True):
        side = {}
        for i in range(slices):
            size = int(rng.poisson(n))
            p = 0.9 - (drop if current and i == 0 else 0.0)
            side[f"s{i}"] = dict.fromkeys(SLICE_SUM_FIELDS, 0) | {
                "judged": size,
                "correct": int(rng.binomial(size, p)),
            }
        sides.append(side)
    return sides


def test_q_values_keep_false_leads_rare_and_find_a_five_point_drop():
    """The statistics on sums alone (the pipeline's sums are checked exactly above): 200 null
    pairs of windows, and 200 with a 5-point drop in a slice of 2,000 labelled predictions."""
    rng = np.random.default_rng(12)
    metric = metric_get("accuracy")
    false_leads, tested, found = 0, 0, 0
    for _ in range(200):
        _, drivers = dimension_drivers(metric, "feature:x", *simulated_sides(rng, drop=0.0))
        q_values_fill(drivers)
        false_leads += sum(d.q_value < 0.05 for d in drivers)
        tested += len(drivers)
        _, drivers = dimension_drivers(metric, "feature:x", *simulated_sides(rng, drop=0.05))
        q_values_fill(drivers)
        found += next(d for d in drivers if d.slice == "s0").q_value < 0.05
    assert false_leads / tested <= 0.05
    assert found >= 180
