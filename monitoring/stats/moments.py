"""Sufficient statistics of a value (count, sum, sum of squares) and the normal CI of its mean."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a confidence interval. Bounds are NaN when n is too small."""

    value: float
    low: float
    high: float
    n: int


@dataclass(frozen=True)
class Moments:
    """Count, sum and sum of squares of a value; windows merge by ``+``."""

    n: int = 0
    total: float = 0.0
    total_sq: float = 0.0

    def __add__(self, other: Moments) -> Moments:
        return Moments(self.n + other.n, self.total + other.total, self.total_sq + other.total_sq)

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else float("nan")

    @property
    def variance(self) -> float:
        """Sample variance (ddof=1); NaN below two values."""
        if self.n < 2:
            return float("nan")
        # Clipped because rounding can make a zero variance slightly negative.
        return max((self.total_sq - self.n * self.mean**2) / (self.n - 1), 0.0)

    @property
    def std(self) -> float:
        return float(np.sqrt(self.variance))


def moments(values: ArrayLike) -> Moments:
    """Moments of the non-NaN values."""
    array = np.asarray(values, dtype=float).ravel()
    array = array[~np.isnan(array)]
    return Moments(int(array.size), float(array.sum()), float(np.dot(array, array)))


@functools.lru_cache(maxsize=16)  # a page computes thousands of intervals at one confidence
def z_value(confidence: float = CONFIDENCE) -> float:
    """Two-sided normal quantile, 1.96 for 95%."""
    return float(stats.norm.ppf(0.5 + confidence / 2))


def mean_estimate(m: Moments, *, confidence: float = CONFIDENCE) -> Estimate | None:
    """Mean with a normal interval ``mean +- z * s / sqrt(n)``; None without data."""
    if m.n == 0:
        return None
    half = z_value(confidence) * np.sqrt(m.variance / m.n)
    return Estimate(m.mean, float(m.mean - half), float(m.mean + half), m.n)
