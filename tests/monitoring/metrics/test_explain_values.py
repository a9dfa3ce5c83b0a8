"""`explain` of a business value's mean (`value:NAME`) and of multiclass macro F1, against
independent computations on the raw rows.

Generated data with planted effects, aggregated by the real pipeline (labels' values and the
multiclass confusion counts per slice, on the one-pass path); the answers compared with pandas,
SciPy and scikit-learn on the same rows: each slice's value, share and effects, effects adding
up to the change, Welch's t p-values, Benjamini-Hochberg q-values, macro F1 impacts with and
without each slice; and days aggregated before the slices kept these parts named until the
backfill rebuilds them.
"""

from __future__ import annotations

import io
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from canary_client import CanaryClient
from django.core.management import call_command
from django.db import connection
from scipy import stats
from sklearn.metrics import f1_score

from accounts.services import api_key_create
from config.celery import app
from factory.services import model_create
from monitoring.ingest.services import records_ingest
from monitoring.metrics.explain import explain_keys
from monitoring.metrics.windows import MetricError
from monitoring.models import HourlyValue, JobFailure, Label, Prediction, SliceDay, SliceHour
from monitoring.pipeline.aggregate import aggregates_refresh
from monitoring.pipeline.backfill import range_aggregate
from monitoring.pipeline.join import outcomes_join
from monitoring.pipeline.slice_aggregates import (
    LABELLED_KEY,
    MISSING,
    SliceSums,
    columns_of,
    slices_decode,
    slices_encode,
)
from tests.conftest import need_service
from tests.monitoring.metrics.test_explain import BASE_START, CUR_START, REGIONS, answer_of

pytestmark = pytest.mark.django_db(transaction=True)

DAY = timedelta(days=1)
CLASSES = np.array(["gold", "silver", "bronze"])


def two_weeks(rng, n: int) -> dict:
    """The columns both datasets share: a baseline week then a current one, a canary version
    serving a fifth of the traffic in both (so no version is a whole window), two segments,
    a categorical and a numerical feature."""
    current = np.arange(n) >= n // 2
    minutes = rng.integers(0, 7 * 24 * 60, n)
    at = [
        (CUR_START if c else BASE_START) + timedelta(minutes=int(m))
        for c, m in zip(current, minutes, strict=True)
    ]
    region = rng.choice(REGIONS, n)
    return {
        "id": [f"p-{i}" for i in range(n)],
        "at": at,
        "current": current,
        "version": np.where(rng.uniform(size=n) < 0.2, "1.1.0", "1.0.0"),
        "region": np.where(rng.uniform(size=n) < 0.05, None, region),
        "income": np.where(rng.uniform(size=n) < 0.05, np.nan, rng.normal(50_000, 15_000, n)),
    }


def revenue_rows(n: int, *, seed: int) -> pd.DataFrame:
    """Binary predictions whose labels carry business values. Revenue is about 100 per labelled
    prediction (90 in segment "app", whose share grows from 30% to 60%: mix); in the current
    week region "south" brings 30 less (within). A tenth of the labels have no revenue, some
    labels carry values and no outcome."""
    rng = np.random.default_rng(seed)
    rows = two_weeks(rng, n)
    current, region = rows["current"], rows["region"]
    segment = np.where(rng.uniform(size=n) < np.where(current, 0.6, 0.3), "app", "web")
    revenue = rng.normal(np.where(segment == "app", 90.0, 100.0), 20.0)
    revenue -= np.where(current & (region == "south"), 30.0, 0.0)
    labelled = rng.uniform(size=n) < 0.9
    return pd.DataFrame(
        rows
        | {
            "segment": segment,
            "prediction": rng.integers(0, 2, n),
            "outcome": np.where(rng.uniform(size=n) < 0.95, rng.integers(0, 2, n), None),
            "labelled": labelled,
            "revenue": np.where(labelled & (rng.uniform(size=n) < 0.9), revenue, np.nan),
            "cost": np.where(labelled, rng.exponential(5.0, n), np.nan),
        }
    )


def class_rows(n: int, *, seed: int) -> pd.DataFrame:
    """Multiclass predictions, right 80% of the time, wrong at random otherwise; in the
    current week right only 40% of the time in region "south"."""
    rng = np.random.default_rng(seed)
    rows = two_weeks(rng, n)
    outcome = rng.choice(CLASSES, n, p=[0.5, 0.3, 0.2])
    right = np.where(rows["current"] & (rows["region"] == "south"), 0.4, 0.8)
    index = {name: i for i, name in enumerate(CLASSES)}
    shift = rng.integers(1, len(CLASSES), n)  # another class, at random
    wrong = CLASSES[(np.array([index[o] for o in outcome]) + shift) % len(CLASSES)]
    prediction = np.where(rng.uniform(size=n) < right, outcome, wrong)
    return pd.DataFrame(
        rows
        | {
            "segment": np.where(rng.uniform(size=n) < 0.4, "app", "web"),
            "prediction": prediction,
            "outcome": np.where(rng.uniform(size=n) < 0.9, outcome, None),
            "labelled": True,
            "revenue": np.nan,
            "cost": np.nan,
        }
    )


def records_of(frame: pd.DataFrame) -> tuple[list[dict], list[dict]]:
    """The frame's prediction and outcome records, as a client sends them."""
    predictions, outcomes = [], []
    for row in frame.itertuples():
        features = {"region": row.region}
        if not np.isnan(row.income):
            features["income"] = float(row.income)
        prediction = row.prediction
        predictions.append(
            {
                "prediction_id": row.id,
                "timestamp": row.at.isoformat(),
                "model_version": row.version,
                "prediction": prediction if isinstance(prediction, str) else int(prediction),
                "segment": row.segment,
                "features": features,
            }
        )
        values = {
            name: float(value)
            for name, value in (("revenue", row.revenue), ("cost", row.cost))
            if not np.isnan(value)
        }
        if not row.labelled or (row.outcome is None and not values):
            continue
        label = {"prediction_id": row.id, "observed_at": (row.at + timedelta(hours=2)).isoformat()}
        if row.outcome is not None:
            label["outcome"] = row.outcome if isinstance(row.outcome, str) else int(row.outcome)
        if values:
            label["values"] = values
        outcomes.append(label)
    return predictions, outcomes


def rows_ingest(model, frame: pd.DataFrame) -> None:
    """The frame's records through ingestion, the join and the aggregation."""
    predictions, outcomes = records_of(frame)
    records_ingest(model=model, kind="predictions", records=predictions, enqueue_jobs=False)
    records_ingest(model=model, kind="outcomes", records=outcomes, enqueue_jobs=False)
    outcomes_join(model_id=model.pk)
    aggregates_refresh(model_id=model.pk)


@pytest.fixture(scope="module")
def revenue_frame() -> pd.DataFrame:
    return revenue_rows(6000, seed=21)


@pytest.fixture(scope="module")
def class_frame() -> pd.DataFrame:
    return class_rows(6000, seed=22)


@pytest.fixture
def valued(revenue_frame):
    model = model_create(name="why", task="binary_classification", positive_class=1)
    rows_ingest(model, revenue_frame)
    return model


@pytest.fixture
def multiclass(class_frame):
    model = model_create(name="why", task="multiclass_classification")
    rows_ingest(model, class_frame)
    return model


def drivers_of(answer, dimension: str) -> dict:
    return {d.slice: d for d in answer.drivers if d.dimension == dimension}


def slice_names(frame: pd.DataFrame, column: str) -> pd.Series:
    return frame[column].fillna(MISSING).astype(str)


DIMENSIONS = (("region", "feature:region"), ("segment", "segment"), ("version", "version"))


# --- value:NAME ---


def test_revenue_per_slice_equals_pandas_on_the_raw_rows(valued, revenue_frame):
    answer = answer_of(valued, "value:revenue")
    rows = revenue_frame[revenue_frame.revenue.notna()]
    base, cur = rows[~rows.current], rows[rows.current]
    assert answer.baseline.value == pytest.approx(base.revenue.mean(), rel=1e-12)
    assert answer.current.value == pytest.approx(cur.revenue.mean(), rel=1e-12)
    assert (answer.baseline.n, answer.current.n) == (len(base), len(cur))
    total_base = base.revenue.mean()
    for column, dimension in DIMENSIONS:
        drivers = drivers_of(answer, dimension)
        names = slice_names(rows, column)
        assert set(drivers) == set(names)
        for name, driver in drivers.items():
            base_in = base[names[~rows.current] == name].revenue
            cur_in = cur[names[rows.current] == name].revenue
            w_base, w_cur = len(base_in) / len(base), len(cur_in) / len(cur)
            assert driver.share_baseline == pytest.approx(w_base, abs=1e-12)
            assert driver.share_current == pytest.approx(w_cur, abs=1e-12)
            assert driver.value_baseline == pytest.approx(base_in.mean(), rel=1e-12)
            assert driver.value_current == pytest.approx(cur_in.mean(), rel=1e-12)
            mix = (w_cur - w_base) * (base_in.mean() - total_base)
            within = w_cur * (cur_in.mean() - base_in.mean())
            assert driver.mix_effect == pytest.approx(mix, abs=1e-9), (dimension, name)
            assert driver.within_effect == pytest.approx(within, abs=1e-9), (dimension, name)
            assert driver.impact is None
            welch = stats.ttest_ind(cur_in, base_in, equal_var=False)
            assert driver.p_value == pytest.approx(welch.pvalue, rel=1e-6), (dimension, name)


def test_revenue_effects_add_up_to_the_change_in_every_dimension(valued):
    for metric in ("value:revenue", "value:cost"):
        answer = answer_of(valued, metric)
        dimensions = {d["dimension"] for d in answer.dimensions}
        assert {"segment", "version", "feature:region", "feature:income"} <= dimensions
        for effects in answer.dimensions:
            total = effects["mix_effect"] + effects["within_effect"]
            assert total == pytest.approx(answer.change, abs=1e-9), (metric, effects)
            shares = [d for d in answer.drivers if d.dimension == effects["dimension"]]
            assert sum(d.share_baseline for d in shares) == pytest.approx(1.0, abs=1e-12)
            assert sum(d.share_current for d in shares) == pytest.approx(1.0, abs=1e-12)
        income = drivers_of(answer, "feature:income")
        assert len(income) == 11 and MISSING in income  # ten deciles and missing


def test_revenue_q_values_are_benjamini_hochberg_over_every_slice(valued):
    answer = answer_of(valued, "value:revenue")
    tested = [d for d in answer.drivers if d.p_value is not None]
    assert len(tested) == len(answer.drivers)
    p_values = np.array([d.p_value for d in tested])
    np.testing.assert_allclose(
        [d.q_value for d in tested], stats.false_discovery_control(p_values), rtol=1e-12
    )


def test_the_planted_revenue_drop_is_the_top_driver(valued):
    answer = answer_of(valued, "value:revenue")
    # (Version 1.0.0 serves 80% of both weeks: its within effect carries 80% of any drop.)
    top = next(d for d in answer.drivers if d.dimension.startswith("feature:"))
    assert (top.dimension, top.slice) == ("feature:region", "south")
    assert top.within_effect < 0.7 * answer.change < 0 and top.q_value < 0.05
    assert top.value_current < top.value_baseline - 20
    dimensions = {d["dimension"]: d for d in answer.dimensions}
    # The shift of traffic to the segment that brings less is mix; regions did not move.
    assert dimensions["segment"]["mix_effect"] < -1.5
    assert abs(dimensions["feature:region"]["mix_effect"]) < 0.5
    assert [abs(d.effect) for d in answer.drivers] == sorted(
        (abs(d.effect) for d in answer.drivers), reverse=True
    )


def test_slices_count_every_value_the_hourly_values_count(valued):
    for name in ("revenue", "cost"):
        hourly = HourlyValue.objects.filter(model=valued, name=name)
        count = sum(hourly.values_list("count", flat=True))
        total = sum(hourly.values_list("total", flat=True))
        for document in (SliceDay, SliceHour):
            column = "sums" if document is SliceDay else "entries"
            datas = document.objects.filter(model=valued).values_list(column, flat=True)
            entries = SliceSums.concat([slices_decode(data) for data in datas])
            region = entries.feature == "region"
            assert entries.values.column((name, "count"))[region].sum() == count
            assert entries.values.column((name, "total"))[region].sum() == pytest.approx(
                total, rel=1e-12
            )


def test_explain_takes_the_model_s_values(valued):
    keys = explain_keys(valued)
    assert {"value:revenue", "value:cost", "accuracy"} <= set(keys)
    with pytest.raises(MetricError, match=r"explain takes .*value:revenue"):
        answer_of(valued, "value_sum:revenue")


# --- macro_f1 ---


def macro_f1(rows: pd.DataFrame) -> float:
    return f1_score(rows.outcome, rows.prediction, average="macro")


def jackknife_variance(rows: pd.DataFrame) -> float:
    """Macro F1's jackknife variance over the rows: each row left out once (rows in the same
    confusion cell leave the same value, so one computation per cell)."""
    cells = rows.groupby(["outcome", "prediction"]).size()
    n = len(rows)
    left_out = {}
    for (outcome, prediction), count in cells.items():
        one = rows[(rows.outcome == outcome) & (rows.prediction == prediction)].index[0]
        left_out[(outcome, prediction)] = (macro_f1(rows.drop(index=one)), count)
    mean = sum(value * count for value, count in left_out.values()) / n
    return (n - 1) / n * sum(count * (value - mean) ** 2 for value, count in left_out.values())


def test_multiclass_hours_without_outcomes_are_sliced_too(class_frame):
    model = model_create(name="why", task="multiclass_classification")
    rows_ingest(model, class_frame.head(300).assign(labelled=False))
    assert not JobFailure.objects.filter(model=model).exists()
    datas = SliceDay.objects.filter(model=model).values_list("sums", flat=True)
    entries = SliceSums.concat([slices_decode(data) for data in datas])
    assert len(entries) and entries.confusion.matrix.nnz == 0
    with pytest.raises(MetricError, match="no labelled predictions"):
        answer_of(model, "macro_f1")


def test_macro_f1_impacts_equal_scikit_learn_with_and_without_each_slice(multiclass, class_frame):
    answer = answer_of(multiclass, "macro_f1")
    judged = class_frame[class_frame.outcome.notna()]
    base, cur = judged[~judged.current], judged[judged.current]
    assert answer.baseline.value == pytest.approx(macro_f1(base), abs=1e-12)
    assert answer.current.value == pytest.approx(macro_f1(cur), abs=1e-12)
    assert (answer.baseline.n, answer.current.n) == (len(base), len(cur))
    change = macro_f1(cur) - macro_f1(base)
    assert answer.change == pytest.approx(change, abs=1e-12)
    for column, dimension in DIMENSIONS:
        drivers = drivers_of(answer, dimension)
        names = slice_names(judged, column)
        assert set(drivers) == set(names)
        for name, driver in drivers.items():
            inside = names == name
            base_in, cur_in = base[inside[~judged.current]], cur[inside[judged.current]]
            base_out, cur_out = base[~inside[~judged.current]], cur[~inside[judged.current]]
            assert driver.value_baseline == pytest.approx(macro_f1(base_in), abs=1e-12)
            assert driver.value_current == pytest.approx(macro_f1(cur_in), abs=1e-12)
            assert driver.share_current == pytest.approx(len(cur_in) / len(cur), abs=1e-12)
            without = macro_f1(cur_out) - macro_f1(base_out)
            assert driver.impact == pytest.approx(change - without, abs=1e-12), (dimension, name)
            assert driver.mix_effect is None and driver.within_effect is None


def test_macro_f1_p_values_are_z_tests_close_to_the_jackknife(multiclass, class_frame):
    """A slice's p-value is a z-test on its macro F1 with delta-method variances; the
    jackknife on the raw rows estimates the same variance (to within a few percent here)."""
    answer = answer_of(multiclass, "macro_f1")
    judged = class_frame[class_frame.outcome.notna()].reset_index(drop=True)
    names = slice_names(judged, "region")
    for name, driver in drivers_of(answer, "feature:region").items():
        sides = [judged[(names == name) & (judged.current == c)] for c in (False, True)]
        variance = sum(jackknife_variance(side) for side in sides)
        diff = macro_f1(sides[1]) - macro_f1(sides[0])
        z = abs(diff) / np.sqrt(variance)
        assert stats.norm.isf(driver.p_value / 2) == pytest.approx(z, rel=0.05), name
    p_values = np.array([d.p_value for d in answer.drivers if d.p_value is not None])
    q_values = [d.q_value for d in answer.drivers if d.p_value is not None]
    np.testing.assert_allclose(q_values, stats.false_discovery_control(p_values), rtol=1e-12)


def test_the_planted_macro_f1_drop_is_the_top_driver(multiclass):
    answer = answer_of(multiclass, "macro_f1")
    assert answer.change < -0.05
    top = answer.drivers[0]
    assert (top.dimension, top.slice) == ("feature:region", "south")
    assert top.value_current < top.value_baseline - 0.3
    assert top.impact < -0.05 and top.q_value < 0.05
    assert [abs(d.impact) for d in answer.drivers] == sorted(
        (abs(d.impact) for d in answer.drivers), reverse=True
    )


# --- days aggregated before the slices kept values and confusion counts ---


def without_parts(document: bytes) -> bytes:
    """A document as written before the slices kept values and confusion counts."""
    return slices_encode(SliceSums(*columns_of(slices_decode(document))[:7]))


def parts_dropped(model, day: datetime) -> None:
    stored = SliceDay.objects.get(model=model, day=day)
    stored.sums = without_parts(bytes(stored.sums))
    stored.save()
    for hour in SliceHour.objects.filter(model=model, hour__gte=day, hour__lt=day + DAY):
        hour.entries = without_parts(bytes(hour.entries))
        hour.save()


@pytest.mark.parametrize(
    ("fixture", "metric", "other"),
    [("valued", "value:revenue", "accuracy"), ("multiclass", "macro_f1", "accuracy")],
)
def test_days_aggregated_before_the_parts_are_named_until_backfilled(
    fixture, metric, other, request, monkeypatch
):
    model = request.getfixturevalue(fixture)
    monkeypatch.setitem(app.conf, "task_always_eager", True)  # the ranges run here, in turn
    before, unaffected = answer_of(model, metric), answer_of(model, other)
    old_day = datetime(2026, 3, 11, tzinfo=UTC)
    parts_dropped(model, old_day)

    with pytest.raises(
        MetricError, match=r"current window's days 2026-03-11 .*aggregates_backfill"
    ):
        answer_of(model, metric)
    assert answer_of(model, other) == unaffected  # the other sums are all there

    call_command("aggregates_backfill", "--model", "why", stdout=io.StringIO())
    assert_same(answer_of(model, metric), before)


def assert_same(answer, expected) -> None:
    """The same answer, to the last bits of float sums added up in another order (the hourly
    values' sums are rewritten by the backfill, and PostgreSQL adds them in any order)."""
    assert asdict(answer) == approximately(asdict(expected))


def approximately(value):
    if isinstance(value, float):
        return pytest.approx(value, rel=1e-12, abs=1e-15)
    if isinstance(value, dict):
        return {key: approximately(item) for key, item in value.items()}
    if isinstance(value, list):
        return [approximately(item) for item in value]
    return value


def test_the_answers_read_aggregates_only(valued):
    before = answer_of(valued, "value:revenue")
    Label.objects.filter(model=valued).delete()
    Prediction.objects.filter(model=valued).delete()
    assert_same(answer_of(valued, "value:revenue"), before)


def keyed_rows(model) -> dict[tuple, dict]:
    """Every stored entry (days' and hours') by its key: its values and confusion cells."""
    out = {}
    for table, column in ((SliceDay, "sums"), (SliceHour, "entries")):
        datas = table.objects.filter(model=model).values_list(column, flat=True)
        entries = SliceSums.concat([slices_decode(data) for data in datas])
        dense = [part.matrix.toarray() for part in (entries.values, entries.confusion)]
        keys = [part.keys for part in (entries.values, entries.confusion)]
        for i, key in enumerate(zip(*columns_of(entries)[:5], strict=True)):
            cells = {
                k: v
                for part, names in zip(dense, keys, strict=True)
                for k, v in zip(names, part[i].tolist(), strict=True)
                if v
            }
            out[(column, *key)] = cells
    return out


@pytest.mark.parametrize("fixture", ["valued", "multiclass"])
def test_both_readers_write_the_same_values_and_confusion_counts(fixture, request):
    need_service("PostgreSQL (DATABASE_URL)", connection.vendor == "postgresql")
    model = request.getfixturevalue(fixture)
    by_sql = keyed_rows(model)
    assert any(LABELLED_KEY in cells for cells in by_sql.values())
    SliceDay.objects.filter(model=model).delete()
    SliceHour.objects.filter(model=model).delete()
    end = CUR_START + timedelta(days=7)
    range_aggregate(model_id=model.pk, start=BASE_START, end=end, path="pandas")  # SQLite's
    by_pandas = keyed_rows(model)
    assert by_pandas.keys() == by_sql.keys()
    for key, cells in by_sql.items():
        assert by_pandas[key].keys() == cells.keys(), key
        for name, value in cells.items():
            assert by_pandas[key][name] == pytest.approx(value, rel=1e-12, abs=1e-9), key


# --- through the API, the jobs and the page ---

WINDOWS = {
    "start": CUR_START.isoformat(),
    "end": (CUR_START + 7 * DAY).isoformat(),
    "baseline_start": BASE_START.isoformat(),
    "baseline_end": CUR_START.isoformat(),
}


@pytest.mark.parametrize(
    ("frame", "task", "metric"),
    [
        ("revenue_frame", "binary_classification", "value:revenue"),
        ("class_frame", "multiclass_classification", "macro_f1"),
    ],
)
def test_the_api_explains_rows_sent_through_it_after_run_jobs(
    frame, task, metric, request, live_server
):
    model = model_create(name="why", task=task, positive_class=1 if "binary" in task else None)
    key = api_key_create(
        name="client", scopes=["predictions:write", "outcomes:write", "read"], model_names=[]
    )
    canary = CanaryClient(live_server.url, key)
    predictions, outcomes = records_of(request.getfixturevalue(frame))
    canary.log_predictions("why", predictions)
    canary.log_outcomes("why", outcomes)
    call_command("run_jobs", "--model", "why", stdout=io.StringIO())

    answer = canary.explain("why", metric, **WINDOWS)
    expected = answer_of(model, metric)
    assert answer["change"] == pytest.approx(expected.change, rel=1e-12)
    top = answer["drivers"][0]
    assert (top["dimension"], top["slice"]) == (
        expected.drivers[0].dimension,
        expected.drivers[0].slice,
    )
    assert top["q_value"] == pytest.approx(expected.drivers[0].q_value, rel=1e-9)
    additive = metric.startswith("value:")
    assert all((d["mix_effect"] is not None) == additive for d in answer["drivers"])
    assert all((d["impact"] is not None) != additive for d in answer["drivers"])
