"""`explain` of ROC AUC against scikit-learn and a DeLong test written here, on the raw rows.

Each slice's AUC is that of its judged scores in the slices' 50 equal bins of [0, 1] (the
aggregates keep no finer per slice), so the reference is `roc_auc_score` on the same rows'
binned scores; the windows' values are the metrics API's, on its 1,000 bins.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command
from scipy import stats
from sklearn.metrics import roc_auc_score

from config.celery import app
from factory.services import model_create
from monitoring.metrics.explain import SCORES, dimension_drivers, q_values_fill
from monitoring.metrics.registry import metric_get
from monitoring.metrics.windows import MetricError
from monitoring.models import SLICE_SUM_FIELDS, SliceDay, SliceHour
from monitoring.pipeline.slice_aggregates import (
    MISSING,
    SliceSums,
    columns_of,
    slices_decode,
    slices_encode,
)
from tests.monitoring.metrics.test_explain import BASE_START, CUR_START, REGIONS, ingest
from tests.monitoring.metrics.test_explain import answer_of as week_answer

pytestmark = pytest.mark.django_db(transaction=True)

SLICE_BINS, CHART_BINS = 50, 1000
DAY = timedelta(days=1)


def auc_rows(n: int, *, seed: int) -> pd.DataFrame:
    """Two weeks of scored predictions whose scores separate the outcomes (AUC about 0.83),
    except in region "south" in the current week, where they are noise (AUC 0.5)."""
    rng = np.random.default_rng(seed)
    current = np.arange(n) >= n // 2
    minutes = rng.integers(0, 7 * 24 * 60, n)
    at = [
        (CUR_START if c else BASE_START) + timedelta(minutes=int(m))
        for c, m in zip(current, minutes, strict=True)
    ]
    region = rng.choice(REGIONS, n)
    outcome = (rng.uniform(size=n) < 0.4).astype(int)
    separation = np.where(current & (region == "south"), 0.0, 1.4)
    score = 1 / (1 + np.exp(-(separation * (2 * outcome - 1) + rng.normal(0, 1.2, n))))
    labelled = rng.uniform(size=n) < 0.9
    return pd.DataFrame(
        {
            "id": [f"p-{i}" for i in range(n)],
            "at": at,
            "segment": np.where(rng.uniform(size=n) < 0.4, "app", "web"),
            "region": np.where(rng.uniform(size=n) < 0.05, None, region),
            "income": rng.normal(50_000, 15_000, n),
            "prediction": (score > 0.5).astype(int),
            "score": score,
            "outcome": np.where(labelled, outcome, -1),
            "current": current,
        }
    )


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return auc_rows(8000, seed=11)


@pytest.fixture
def planted(frame):
    model = model_create(name="auc", task="binary_classification", positive_class=1)
    ingest(model, frame)
    return model


def answer_of(model, metric="roc_auc"):
    return week_answer(model, metric)


def binned(scores: pd.Series, bins: int) -> np.ndarray:
    """Each score's bin among ``bins`` equal right-closed bins of [0, 1]."""
    return np.clip(np.ceil(scores.to_numpy() * bins) - 1, 0, bins - 1)


def auc_of(rows: pd.DataFrame, bins: int = SLICE_BINS) -> float:
    return roc_auc_score(rows.outcome, binned(rows.score, bins))


def delong(rows: pd.DataFrame) -> tuple[float, float]:
    """(AUC, DeLong variance) of the binned scores, from the placements of each class."""
    score = binned(rows.score, SLICE_BINS)
    positives, negatives = score[rows.outcome == 1], score[rows.outcome == 0]
    ranks = stats.rankdata(np.concatenate([positives, negatives]))
    placements_pos = (ranks[: positives.size] - stats.rankdata(positives)) / negatives.size
    placements_neg = 1 - (ranks[positives.size :] - stats.rankdata(negatives)) / positives.size
    variance = (
        placements_pos.var(ddof=1) / positives.size + placements_neg.var(ddof=1) / negatives.size
    )
    return placements_pos.mean(), variance


def delong_p_value(base: pd.DataFrame, cur: pd.DataFrame) -> float:
    (auc_base, var_base), (auc_cur, var_cur) = delong(base), delong(cur)
    return 2 * stats.norm.sf(abs(auc_cur - auc_base) / np.sqrt(var_base + var_cur))


def slices_of(judged: pd.DataFrame, column: str) -> pd.Series:
    return judged[column].fillna(MISSING).astype(str)


def test_slices_values_impacts_and_p_values_equal_the_raw_rows(planted, frame):
    answer = answer_of(planted)
    judged = frame[frame.outcome >= 0]
    base, cur = judged[~judged.current], judged[judged.current]
    # the windows: the metrics API's AUC (its finer bins)
    assert answer.baseline.value == pytest.approx(auc_of(base, CHART_BINS), abs=1e-12)
    assert answer.current.value == pytest.approx(auc_of(cur, CHART_BINS), abs=1e-12)
    assert (answer.baseline.n, answer.current.n) == (len(base), len(cur))
    change = auc_of(cur) - auc_of(base)
    for column, dimension in (("region", "feature:region"), ("segment", "segment")):
        drivers = {d.slice: d for d in answer.drivers if d.dimension == dimension}
        names = slices_of(judged, column)
        assert set(drivers) == set(names)
        for name, driver in drivers.items():
            inside = names == name
            base_in, cur_in = base[inside[~judged.current]], cur[inside[judged.current]]
            assert driver.value_baseline == pytest.approx(auc_of(base_in), abs=1e-12)
            assert driver.value_current == pytest.approx(auc_of(cur_in), abs=1e-12)
            assert driver.share_current == pytest.approx(len(cur_in) / len(cur), abs=1e-12)
            base_out, cur_out = base[~inside[~judged.current]], cur[~inside[judged.current]]
            without = auc_of(cur_out) - auc_of(base_out)
            assert driver.impact == pytest.approx(change - without, abs=1e-12), (dimension, name)
            assert driver.mix_effect is None and driver.within_effect is None
            assert driver.p_value == pytest.approx(delong_p_value(base_in, cur_in), rel=1e-9)


def test_the_planted_drop_is_the_top_driver(planted):
    answer = answer_of(planted)
    assert answer.change < -0.05
    top = answer.drivers[0]
    assert (top.dimension, top.slice) == ("feature:region", "south")
    assert top.value_current < top.value_baseline - 0.2
    assert top.impact < -0.05 and top.q_value < 0.05
    assert [abs(d.impact) for d in answer.drivers] == sorted(
        (abs(d.impact) for d in answer.drivers), reverse=True
    )
    # Without a region that held up, the rest weighs south more: their impacts lean the
    # other way, and are smaller.
    others = [
        d
        for d in answer.drivers
        if d.dimension == "feature:region" and d.slice in {"north", "east", "west"}
    ]
    assert all(abs(d.value_current - d.value_baseline) < 0.05 for d in others)
    assert all(abs(d.impact) < abs(top.impact) / 2 for d in others)


def without_score_bins(document: bytes) -> bytes:
    """A day's document as written before the slices kept their score bins."""
    entries = slices_decode(document)
    return slices_encode(SliceSums(*columns_of(entries)[:6]))


def test_days_aggregated_before_the_score_bins_are_named_until_backfilled(planted, monkeypatch):
    monkeypatch.setitem(app.conf, "task_always_eager", True)  # the ranges run here, in turn
    before, accuracy = answer_of(planted), answer_of(planted, "accuracy")
    old_day = datetime(2026, 3, 4, tzinfo=UTC)
    stored = SliceDay.objects.get(model=planted, day=old_day)
    stored.sums = without_score_bins(bytes(stored.sums))
    stored.save()
    hours = SliceHour.objects.filter(model=planted, hour__gte=old_day, hour__lt=old_day + DAY)
    for hour in hours:
        hour.entries = without_score_bins(bytes(hour.entries))
        hour.save()

    with pytest.raises(
        MetricError, match=r"baseline window's days 2026-03-04 .*aggregates_backfill"
    ):
        answer_of(planted)
    assert answer_of(planted, "accuracy") == accuracy  # the other sums are all there

    call_command("aggregates_backfill", "--model", "auc", stdout=io.StringIO())
    assert answer_of(planted) == before


def simulated_auc_sides(rng, *, drop: float, slices: int = 10, n: int = 2000):
    """ROC AUC bins of ``slices`` slices of ``n`` judged predictions a window each (40%
    positive; binormal scores of AUC 0.80 squashed into [0, 1]); the first slice's AUC
    ``drop`` lower in the current window."""
    sides = []
    for current in (False, True):
        side = {}
        for i in range(slices):
            size = int(rng.poisson(n))
            outcome = rng.uniform(size=size) < 0.4
            auc = 0.80 - (drop if current and i == 0 else 0.0)
            shift = np.sqrt(2) * stats.norm.ppf(auc)
            score = 1 / (1 + np.exp(-(rng.normal(size=size) + shift * outcome - shift / 2)))
            bins = binned(pd.Series(score), SLICE_BINS).astype(int)
            counts = np.concatenate(
                [
                    np.bincount(bins[outcome], minlength=SLICE_BINS),
                    np.bincount(bins[~outcome], minlength=SLICE_BINS),
                ]
            )
            side[f"s{i}"] = dict.fromkeys(SLICE_SUM_FIELDS, 0) | {SCORES: counts.astype(float)}
        sides.append(side)
    return sides


def test_delong_p_values_hold_their_level_and_find_a_five_point_drop():
    """The statistics on bins alone (the pipeline's bins are checked exactly above): on 200
    null pairs of windows the slices' p-values fall under 0.05 about 5% of the time and false
    leads (q < 0.05) are rare; in 200 pairs where a slice of 2,000 judged predictions a window
    has an AUC 5 points lower, it is found (q < 0.05) in most."""
    rng = np.random.default_rng(5)
    metric = metric_get("roc_auc")
    p_values, false_leads, found = [], 0, 0
    for _ in range(200):
        _, drivers = dimension_drivers(metric, "feature:x", *simulated_auc_sides(rng, drop=0.0))
        q_values_fill(drivers)
        p_values += [d.p_value for d in drivers]
        false_leads += sum(d.q_value < 0.05 for d in drivers)
        _, drivers = dimension_drivers(metric, "feature:x", *simulated_auc_sides(rng, drop=0.05))
        q_values_fill(drivers)
        found += next(d for d in drivers if d.slice == "s0").q_value < 0.05
    assert 0.03 <= np.mean(np.array(p_values) < 0.05) <= 0.07
    assert false_leads / len(p_values) <= 0.05
    # 139 of 200 with this seed: an AUC's standard error at 2,000 predictions is about 0.01
    # a window, so 5 points is 3.5 of the difference's; 7 points are found in 190 of 200.
    assert found >= 120
