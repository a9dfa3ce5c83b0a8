"""The model page's headline sentences: a change between two windows is said against its noise
(the 95% interval of the difference) and its minimum detectable effect (seen 80% of the time
at the 5% level), both checked against SciPy's normal quantiles on the same windows."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scipy import optimize, stats

from dashboard.sections.summary import headline, trend_text
from monitoring.metrics.registry import metric_get
from monitoring.metrics.series import Point

DAY = datetime(2026, 3, 2, tzinfo=UTC)
ACCURACY = metric_get("accuracy")


def window(start: datetime, value: float, se: float, n: int = 400) -> Point:
    half = stats.norm.ppf(0.975) * se
    return Point(start, start + timedelta(days=1), value, n, value - half, value + half, 1.0)


def sizes(se_a: float, se_b: float) -> tuple[float, float]:
    """(noise, minimum detectable effect) of the difference of two windows, from SciPy."""
    se = math.hypot(se_a, se_b)
    return stats.norm.ppf(0.975) * se, (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * se


@pytest.mark.parametrize(
    ("change", "words", "tone"),
    [
        (0.02, "within the noise (±{noise}; {mde} detectable)", ""),
        (
            -0.035,
            "beyond the noise (±{noise}) but under the {mde} these windows reliably show",
            "worse",
        ),
        (0.05, "beyond the noise (±{noise}) and the {mde} these windows reliably show", "better"),
    ],
)
def test_a_change_is_said_against_its_noise_and_its_detectable_size(change, words, tone):
    # given: two days of accuracy with standard errors of 1.2 and 1.0 points
    before = window(DAY - timedelta(days=7), 0.80, 0.012)
    last = window(DAY, 0.80 + change, 0.010)
    noise, mde = sizes(0.012, 0.010)
    assert noise < 0.035 < mde < 0.05  # the three cases sit where their words say
    # when
    text, shown_tone = trend_text(ACCURACY, last, before, "the same day a week before")
    # then
    direction = "up" if change > 0 else "down"
    expected = words.format(noise=f"{noise * 100:.1f} points", mde=f"{mde * 100:.1f} points")
    assert text == (
        f"{direction} {abs(change) * 100:.1f} points on the same day a week before, {expected}"
    )
    assert shown_tone == tone


PREDICTIONS = metric_get("predictions")


def count_window(start: datetime, count: int) -> Point:
    """A day's count as the series gives it: no interval of its own."""
    return Point(start, start + timedelta(days=1), float(count), count, None, None, None)


def poisson_bounds(count: int) -> tuple[float, float]:
    """The exact 95% interval of a Poisson mean, solved from SciPy's Poisson tails: the mean
    under which a count >= `count` has chance 2.5%, and the one under which <= `count` has."""
    low = optimize.brentq(lambda mu: stats.poisson.sf(count - 1, mu) - 0.025, 1e-9, 10 * count)
    high = optimize.brentq(lambda mu: stats.poisson.cdf(count, mu) - 0.025, 1e-9, 10 * count)
    return low, high


@pytest.mark.parametrize(
    ("before", "after", "verdict"),
    [(1000, 1040, "within the noise"), (1000, 1150, "beyond the noise")],
)
def test_a_count_headline_has_its_exact_poisson_interval_and_a_verdict(before, after, verdict):
    # given: predictions on the same weekday a week apart
    points = [count_window(DAY - timedelta(days=7), before), count_window(DAY, after)]
    # when
    shown = headline("predictions", points, points, "day", labelled=False)
    # then: the interval is the exact Poisson one, as SciPy's Poisson tails give it
    low, high = poisson_bounds(after)
    assert shown.interval == f"{PREDICTIONS.format(low)} to {PREDICTIONS.format(high)}"
    # and the change is said against the noise of the two counts (their intervals joined)
    noise = math.hypot(*(np.diff(poisson_bounds(k))[0] / 2 for k in (before, after)))
    assert shown.trend.startswith(f"up {after - before:,} on the same day a week before, {verdict}")
    assert f"±{noise:,.0f}" in shown.trend
