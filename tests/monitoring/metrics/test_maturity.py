"""Label maturity from the aggregates: the expected final coverage and each window's share of
its expected outcomes arrived, on generated data whose eventual outcomes are known."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scipy import stats

from monitoring.ingest.services import records_ingest
from monitoring.jobs import jobs_run
from monitoring.metrics.maturity import label_maturity_get
from monitoring.metrics.series import metric_series
from monitoring.metrics.windows import window_start
from tests.conftest import outcome, prediction

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
EVER = 0.7  # the share of predictions that ever get an outcome
MEAN_DELAY_DAYS = 4.0


def delayed_outcomes(model, *, days: int = 60, per_day: int = 40, seed: int = 7):
    """Predictions over the last `days`; 70% of them get an outcome about 4 days later (those
    already arrived by NOW are sent). Returns per prediction: time, delay (NaN: never), arrived."""
    rng = np.random.default_rng(seed)
    n = days * per_day
    at = NOW - timedelta(days=days) + rng.uniform(0, days * 86400, n) * timedelta(seconds=1)
    delay_s = np.where(rng.random(n) < EVER, rng.exponential(MEAN_DELAY_DAYS * 86400, n), np.nan)
    arrived = np.array(
        [
            at[i] + timedelta(seconds=float(d)) <= NOW if d == d else False
            for i, d in enumerate(delay_s)
        ]
    )
    predictions = [prediction(i, at=at[i]) for i in range(n)]
    outcomes = [
        outcome(i, at=at[i] + timedelta(seconds=float(delay_s[i]))) for i in np.flatnonzero(arrived)
    ]
    records_ingest(model=model, kind="predictions", records=predictions, enqueue_jobs=False)
    records_ingest(model=model, kind="outcomes", records=outcomes, enqueue_jobs=False)
    jobs_run(model_id=model.pk, now=NOW)
    return at, delay_s, arrived


def test_final_coverage_and_each_windows_share_of_its_eventual_outcomes(model):
    # given: 60 days of predictions, 70% of which ever get an outcome (each one's is known here)
    at, delay_s, arrived = delayed_outcomes(model)
    # when: the curve is read from the hourly aggregates
    maturity = label_maturity_get(model=model, now=NOW)
    final, _, horizon_s = maturity.final
    # then: it is scipy's Kaplan-Meier CDF of the exact delays (censored at exact ages), read at
    # the same age, within the aggregates' binning (delay bins of 4.7%, ages by the hour)
    ages_s = np.array([(NOW - t).total_seconds() for t in at])
    raw = stats.ecdf(stats.CensoredData(uncensored=delay_s[arrived], right=ages_s[~arrived]))
    assert final == pytest.approx(raw.cdf.evaluate(horizon_s), abs=0.01)
    # and it finds the share that ever gets an outcome
    assert final == pytest.approx(EVER, abs=0.03)

    # then: each week's share of its expected outcomes arrived is the true share of its
    # eventual outcomes arrived, within sampling
    points = metric_series(model=model, metric="label_coverage", granularity="week", end=NOW)
    weeks = np.array([window_start(t, "week") for t in at])
    for point in points[-4:]:
        in_week = weeks == point.start
        truth = arrived[in_week].sum() / (~np.isnan(delay_s[in_week])).sum()
        window = maturity.of_window(start=point.start, end=point.end, coverage=point.label_coverage)
        assert window.share == pytest.approx(min(truth, 1.0), abs=0.08), point.start
    # last week is immature, one three weeks old is mature (the model's 80%)
    latest, old = points[-2], points[-4]
    young = maturity.of_window(start=latest.start, end=latest.end, coverage=latest.label_coverage)
    assert not young.mature
    assert maturity.of_window(start=old.start, end=old.end, coverage=old.label_coverage).mature
    # half its outstanding outcomes are expected within days, not weeks
    assert 0.5 < young.remaining_s / 86400 < 2 * MEAN_DELAY_DAYS


def test_without_any_outcome_nothing_is_expected(model):
    records_ingest(
        model=model,
        kind="predictions",
        records=[prediction(1, at=NOW - timedelta(days=1))],
        enqueue_jobs=False,
    )
    jobs_run(model_id=model.pk, now=NOW)
    maturity = label_maturity_get(model=model, now=NOW)
    assert not maturity.known
    assert maturity.of_window(start=NOW, end=NOW, coverage=0.0).share is None
