"""The model page's headline sentences: a change between two windows is said against its noise
(the 95% interval of the difference) and its minimum detectable effect (seen 80% of the time
at the 5% level), both checked against SciPy's normal quantiles on the same windows."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from scipy import stats

from dashboard.sections.summary import trend_text
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
