"""Label delays on log-spaced bins, so a median over any window is a sum of hourly counts.

50 bins per decade from 0.1 s to 10^9 s (about 32 years): each bin spans 4.7%, and the median
is interpolated geometrically inside its bin, so it is within 2.4% of the exact median of the
same delays (delays at or below 0.1 s are reported as 0.1 s).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

BINS_PER_DECADE = 50
DELAY_EDGES_S = 10.0 ** (np.arange(-BINS_PER_DECADE, 9 * BINS_PER_DECADE + 1) / BINS_PER_DECADE)
DELAY_BINS = DELAY_EDGES_S.size + 1


def delay_counts(delays_s: ArrayLike) -> np.ndarray:
    """Counts per right-closed log bin; the first bin holds delays <= 0.1 s, the last > 10^9 s."""
    delays = np.asarray(delays_s, dtype=float)
    delays = delays[~np.isnan(delays)]
    index = np.searchsorted(DELAY_EDGES_S, delays, side="left")
    return np.bincount(index, minlength=DELAY_BINS).astype(np.int64)


def delay_quantile(counts: ArrayLike, q: float = 0.5) -> float | None:
    """The q-quantile of binned delays, geometric interpolation inside its bin; None if empty."""
    counts = np.asarray(counts, dtype=float)
    n = counts.sum()
    if n == 0:
        return None
    cumulative = np.cumsum(counts)
    target = q * n
    i = int(np.searchsorted(cumulative, target, side="left"))
    if i == 0:
        return float(DELAY_EDGES_S[0])
    if i >= DELAY_EDGES_S.size:
        return float(DELAY_EDGES_S[-1])
    low, high = np.log(DELAY_EDGES_S[i - 1]), np.log(DELAY_EDGES_S[i])
    share = (target - cumulative[i - 1]) / counts[i]
    return float(np.exp(low + (high - low) * share))


def delay_median_variance(counts: ArrayLike, *, confidence: float = 0.95) -> float | None:
    """Variance of the binned median, from the quantiles that bound its interval.

    The median's distribution-free interval runs between the order statistics at ranks
    n/2 -+ z sqrt(n)/2, i.e. the quantiles at 0.5 -+ z / (2 sqrt(n)); the standard error is their
    distance over 2z (asymptotically 1 / (2 f(median) sqrt(n)), without estimating the density
    f). None below two delays.
    """
    counts = np.asarray(counts, dtype=float)
    n = counts.sum()
    if n < 2:
        return None
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    step = min(z / (2 * np.sqrt(n)), 0.5)
    low = delay_quantile(counts, max(0.5 - step, 0.0))
    high = delay_quantile(counts, min(0.5 + step, 1.0))
    return ((high - low) / (2 * z)) ** 2
