"""How long labels take, as the model page's first screen says it: read from the Kaplan-Meier
curve of every prediction's delay (the unlabelled counted as censored at their age), checked
against SciPy's `ecdf` on the same raw rows, not from the delays of the labelled rows alone,
which leave out the long delays still to come."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scipy import stats

from dashboard.sections.base import Scope
from dashboard.sections.model import model_page_get
from monitoring.ingest.services import records_ingest
from monitoring.jobs import jobs_run
from tests.conftest import outcome, prediction

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
DAYS, PER_DAY = 25, 60
DELAY_DAYS = (1.0, 25.0)  # outcomes arrive 1 to 25 days after the prediction, all of them
THRESHOLD = 0.8  # the model's default label maturity
MIN_AT_RISK = 20


def late_outcomes(model) -> tuple[np.ndarray, np.ndarray]:
    """Predictions over the DAYS before NOW whose outcomes all come, 1 to 25 days late; those
    arrived by NOW are sent. Returns (delays of the arrived, ages of the waiting), in days."""
    rng = np.random.default_rng(5)
    predictions, outcomes, delays, ages = [], [], [], []
    for i in range(DAYS * PER_DAY):
        at = NOW - timedelta(days=float(rng.uniform(0, DAYS)))
        delay = float(rng.uniform(*DELAY_DAYS))
        predictions.append(prediction(i, at=at))
        if at + timedelta(days=delay) <= NOW:
            outcomes.append(outcome(i, at=at + timedelta(days=delay)))
            delays.append(delay)
        else:
            ages.append((NOW - at).total_seconds() / 86400)
    records_ingest(model=model, kind="predictions", records=predictions, enqueue_jobs=False)
    records_ingest(model=model, kind="outcomes", records=outcomes, enqueue_jobs=False)
    jobs_run(model_id=model.pk, now=NOW)
    return np.array(delays), np.array(ages)


def scipy_arrival_days(delays: np.ndarray, ages: np.ndarray) -> float:
    """The age at which SciPy's Kaplan-Meier coverage reaches THRESHOLD of its final level,
    the final level read (as issue 13 defines it) at the longest time at which at least
    MIN_AT_RISK predictions were still at risk."""
    curve = stats.ecdf(stats.CensoredData(uncensored=delays, right=ages)).cdf
    times = np.sort(np.concatenate([delays, ages]))
    at_risk = times.size - np.arange(times.size)  # at the i-th time, those not gone before
    final = curve.evaluate(times[at_risk >= MIN_AT_RISK][-1])
    coverage = curve.evaluate(curve.quantiles)
    return float(curve.quantiles[np.flatnonzero(coverage >= THRESHOLD * final)[0]])


def test_labels_usually_arrive_within_the_kaplan_meier_time_not_the_labelled_rows_quantile(
    model,
):
    # given: outcomes 1 to 25 days late, the younger predictions' still on their way
    delays, ages = late_outcomes(model)
    expected = scipy_arrival_days(delays, ages)
    biased = float(np.quantile(delays, THRESHOLD))  # the labelled rows' delays alone
    assert expected - biased > 2  # the censored rows matter here
    # when
    page = model_page_get(model=model, scope=Scope("day", days=30), now=NOW)
    # then: the sentence says the Kaplan-Meier time, in whole days
    sentence = page.summary["labels"]
    said = re.search(r"Labels usually arrive within (\d+) days \(80% of a window", sentence)
    assert said, sentence
    assert abs(int(said.group(1)) - expected) <= 0.75  # binned delays: within a bin's width
    assert abs(int(said.group(1)) - biased) > 1.5
    # and the days younger than that still wait for theirs
    assert re.search(r"the last \d+ complete days still wait for theirs", sentence)
