"""Estimates where a person judges a version before its outcomes: the version page, the
compare page (a canary in its first days judged on its estimate, said as such) and the alert
e-mail of a rule on an estimate. Values are checked against scikit-learn's isotonic
calibration on the raw rows, and "outcomes arrive in about N days" against SciPy's
Kaplan-Meier curve of the raw delays (the unlabelled censored at their age)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import unescape

import numpy as np
import pytest
from freezegun import freeze_time
from scipy import stats

from common.time import day_floor
from factory.services import version_register
from monitoring.alerts.messages import email_render
from monitoring.ingest.services import records_ingest
from monitoring.jobs import jobs_run
from monitoring.models import AlertRule, Notification
from monitoring.stats.auc import score_bin_index
from monitoring.stats.estimate import bin_centres
from tests.monitoring.metrics.test_estimates import independent, isotonic_on_bins, rows

pytestmark = pytest.mark.django_db
NOW = datetime.fromisoformat("2026-11-25T12:00:00+00:00")
PRODUCTION_DAYS, PER_DAY = 14, 150
CANARY_HOURS, CANARY_N = 40, 400
DELAY_DAYS = (1.0, 10.0)
THRESHOLD, MIN_AT_RISK = 0.8, 20


@dataclass
class Scenario:
    calibrate: object  # the isotonic calibration of the reference rows (scikit-learn)
    canary: tuple[np.ndarray, np.ndarray]  # (scores, predicted)
    production: tuple[np.ndarray, np.ndarray, np.ndarray]  # (scores, predicted, timestamps)
    delays: np.ndarray  # of the outcomes arrived, in days
    waiting: np.ndarray  # ages of the predictions still without one, in days


def record(i: int, at: datetime, score: float, predicted: int, version: str) -> dict:
    return {
        "prediction_id": f"p-{i}",
        "timestamp": at.isoformat(),
        "model_version": version,
        "prediction": int(predicted),
        "score": float(score),
    }


def canary_before_outcomes(model, now: datetime) -> Scenario:
    """Production (version 1, calibrated on its reference rows with outcomes) for 14 days,
    its outcomes 1 to 10 days late; then a canary (version 2) for the last 40 hours, with
    shifted scores and its outcomes mostly still to come. Outcomes arrived by `now` are sent."""
    rng = np.random.default_rng(21)
    ref_scores, _, ref_outcome = rows(rng, 3000)
    reference = {
        "rows": [
            {"features": {"x": float(s)}, "score": float(s), "outcome": int(o)}
            for s, o in zip(ref_scores, ref_outcome, strict=True)
        ]
    }
    version_register(model=model, version="1", lineage={"code_version": "a"}, reference=reference)
    start = day_floor(now) - timedelta(days=PRODUCTION_DAYS)
    scores, predicted, outcome = rows(rng, PRODUCTION_DAYS * PER_DAY)
    at = [start + timedelta(days=float(d)) for d in rng.uniform(0, PRODUCTION_DAYS, scores.size)]
    c_scores, c_predicted, c_outcome = rows(rng, CANARY_N, shift=0.6)
    c_at = [now - timedelta(hours=float(h)) for h in rng.uniform(0.5, CANARY_HOURS, CANARY_N)]
    predictions, outcomes, delays, waiting = [], [], [], []
    everything = [(*values, "1") for values in zip(at, scores, predicted, outcome, strict=True)] + [
        (*values, "2") for values in zip(c_at, c_scores, c_predicted, c_outcome, strict=True)
    ]
    for i, (moment, score, guess, truth, version) in enumerate(everything):
        if moment >= now:
            continue
        predictions.append(record(i, moment, score, guess, version))
        delay = float(rng.uniform(*DELAY_DAYS))
        seen = moment + timedelta(days=delay)
        if seen <= now:
            outcomes.append(
                {"prediction_id": f"p-{i}", "observed_at": seen.isoformat(), "outcome": int(truth)}
            )
            delays.append(delay)
        else:
            waiting.append((now - moment).total_seconds() / 86400)
    records_ingest(model=model, kind="predictions", records=predictions, enqueue_jobs=False)
    records_ingest(model=model, kind="outcomes", records=outcomes, enqueue_jobs=False)
    jobs_run(model_id=model.pk, now=now)
    return Scenario(
        isotonic_on_bins(ref_scores, ref_outcome),
        (c_scores, c_predicted),
        (scores, predicted, np.array(at)),
        np.array(delays),
        np.array(waiting),
    )


def expected_accuracy(scenario: Scenario, scores: np.ndarray, predicted: np.ndarray) -> float:
    """scikit-learn's calibration of the reference rows, applied to the raw scores."""
    chance = scenario.calibrate.predict(bin_centres()[score_bin_index(scores)])
    return independent(scores, predicted, chance)["accuracy"]


def arrival_days(scenario: Scenario) -> float:
    """The age at which SciPy's Kaplan-Meier coverage of every prediction reaches 80% of its
    final level (read where at least MIN_AT_RISK were still at risk)."""
    delays, waiting = scenario.delays, scenario.waiting
    curve = stats.ecdf(stats.CensoredData(uncensored=delays, right=waiting)).cdf
    times = np.sort(np.concatenate([delays, waiting]))
    final = curve.evaluate(times[times.size - np.arange(times.size) >= MIN_AT_RISK][-1])
    coverage = curve.evaluate(curve.quantiles)
    return float(curve.quantiles[np.flatnonzero(coverage >= THRESHOLD * final)[0]])


def said_days(text: str) -> int:
    found = re.search(r"stimated from scores; outcomes arrive in about (\d+) days", text)
    assert found, text
    return int(found.group(1))


def html_text(fragment: str) -> str:
    return unescape(re.sub(r"<[^>]+>", "", fragment))


def percent(text: str) -> float:
    return float(text.rstrip("%")) / 100


@pytest.fixture
def scenario(model):
    return canary_before_outcomes(model, NOW)


def test_the_version_page_shows_a_canarys_estimate_and_when_its_outcomes_arrive(scenario, viewer):
    # when
    with freeze_time(NOW):
        html = viewer.get("/models/churn/versions/2/").content.decode()
    # then: the estimated accuracy of its first days, as scikit-learn computes it
    row = re.search(r"<td>Accuracy</td><td>([\d.]+%)</td><td>([\d.]+%) to ([\d.]+%)</td>", html)
    assert row, html[html.find('id="estimates"') :][:2000]
    expected = expected_accuracy(scenario, *scenario.canary)
    assert percent(row.group(1)) == pytest.approx(expected, abs=6e-4)
    assert percent(row.group(2)) < expected < percent(row.group(3))
    # said as an estimate, with when the outcomes come (SciPy's Kaplan-Meier time)
    note = re.search(r'<p id="estimate-note">([^<]+)</p>', html).group(1)
    assert abs(said_days(note) - arrival_days(scenario)) <= 0.75
    assert "so it is judged on its estimate" in note


def test_the_compare_page_judges_a_canary_on_its_estimate_in_its_first_days(scenario, viewer):
    # when
    with freeze_time(NOW):
        response = viewer.get(
            "/models/churn/compare/",
            {"metric": "accuracy", "baseline": "1", "candidate": "2", "days": "30"},
        )
    html = response.content.decode()
    # then: the lead says the canary is judged on its estimate, and why
    lead = re.search(r'<p class="lead estimate" id="estimate-verdict">(.+?)</p>', html, re.S)
    assert lead, html
    text = html_text(lead.group(1))
    assert text.startswith("Judged on its estimate. The candidate 2: only ")
    assert abs(said_days(text) - arrival_days(scenario)) <= 0.75
    # with both versions' estimates as scikit-learn computes them on the raw rows
    scores, predicted, _ = scenario.production
    values = re.search(r"the candidate 2 ([\d.]+%) .*the baseline 1 ([\d.]+%)", text)
    assert percent(values.group(1)) == pytest.approx(
        expected_accuracy(scenario, *scenario.canary), abs=6e-4
    )
    assert percent(values.group(2)) == pytest.approx(
        expected_accuracy(scenario, scores, predicted), abs=6e-4
    )
    assert re.search(
        r"the candidate's estimate is (better|worse) by [\d.]+ points, (beyond|within)", text
    )
    # and the test on the few outcomes in comes after, said as such
    assert 'role="status">On the outcomes in so far, over all their traffic, ' in html


def test_an_alert_on_an_estimate_says_so_in_its_email(scenario, model):
    # given: a rule on the canary's estimated accuracy that its days break
    AlertRule.objects.create(
        model=model,
        metric="estimated:accuracy",
        version="2",
        kind="static",
        lower=0.99,
        min_count=50,
        granularity="day",
        repeat_minutes=0,
    )
    # when
    jobs_run(model_id=model.pk, now=NOW)
    told = Notification.objects.filter(alert__rule__metric="estimated:accuracy", kind="firing")
    assert told.exists()
    with freeze_time(NOW):
        email = email_render(list(told))
    # then: the e-mail says the value is an estimate, and when its outcomes come
    assert abs(said_days(email.text) - arrival_days(scenario)) <= 0.75
    assert "Estimated from scores; outcomes arrive in about" in email.html
