"""The Kaplan-Meier coverage curve against scipy.stats.ecdf on the same right-censored delays."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from monitoring.stats.maturity import kaplan_meier


def censored_delays(seed: int, n: int = 2000):
    """Delays of 1 to 30 days (85% of predictions ever get one), predictions up to 40 days old."""
    rng = np.random.default_rng(seed)
    age = rng.uniform(0, 40, n).round(1)
    delay = rng.gamma(2.0, 4.0, n).round(1) + 0.1
    gets_one = rng.random(n) < 0.85
    labelled = gets_one & (delay <= age)
    return delay[labelled], age[~labelled]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_coverage_is_scipy_kaplan_meier_cdf(seed):
    # given: labelled delays (events) and the ages of unlabelled predictions (right-censored)
    events, censored = censored_delays(seed)
    # when: the curve is computed from weighted distinct times, as aggregates hold them
    e_times, e_counts = np.unique(events, return_counts=True)
    c_times, c_counts = np.unique(censored, return_counts=True)
    curve = kaplan_meier(e_times, e_counts, c_times, c_counts)
    # then: F(t) is scipy's Kaplan-Meier CDF at every time, events and censorings alike
    expected = stats.ecdf(stats.CensoredData(uncensored=events, right=censored)).cdf
    probe = np.unique(np.concatenate([events, censored, [0.0, 5.55, 100.0]]))
    ours = np.array([curve.at(t) for t in probe])
    assert np.allclose(ours, expected.evaluate(probe), atol=1e-12)


def test_greenwood_interval_is_scipys():
    events, censored = censored_delays(4)
    e_times, e_counts = np.unique(events, return_counts=True)
    c_times, c_counts = np.unique(censored, return_counts=True)
    curve = kaplan_meier(e_times, e_counts, c_times, c_counts)
    result = stats.ecdf(stats.CensoredData(uncensored=events, right=censored)).cdf
    # scipy's linear ("Greenwood") interval is F +- z * sqrt(Var)
    interval = result.confidence_interval(0.95, method="linear")
    z = stats.norm.ppf(0.975)
    t = 12.0
    index = int(np.searchsorted(curve.times, t, side="right")) - 1
    low = curve.at(t) - z * np.sqrt(curve.variance[index])
    assert low == pytest.approx(interval.low.evaluate(t), abs=1e-9)


def test_final_coverage_is_read_where_enough_predictions_are_at_risk():
    # given: 85% of predictions ever get an outcome, all within 30 days; ages up to 40 days
    events, censored = censored_delays(5, n=20000)
    e_times, e_counts = np.unique(events, return_counts=True)
    c_times, c_counts = np.unique(censored, return_counts=True)
    curve = kaplan_meier(e_times, e_counts, c_times, c_counts)
    final, error, age = curve.final(min_at_risk=30)
    # then: the curve levels off near 85%, read at an age with 30 or more still at risk
    assert final == pytest.approx(0.85, abs=0.02)
    assert 0 < error < 0.02
    assert curve.at_risk[np.searchsorted(curve.times, age)] >= 30
    # and no curve at all says nothing
    assert kaplan_meier([], [], [1.0], [5]).final(min_at_risk=1) is None
