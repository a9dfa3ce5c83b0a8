"""Label maturity: how much of a window's outcomes can still arrive, from a Kaplan-Meier curve.

Label delays are right-censored by now: a prediction with an outcome is an event at its delay,
one still without is censored at its age (now minus its timestamp), since its outcome may yet
come. The Kaplan-Meier estimate of the delay distribution, F(t) = 1 - S(t), is the coverage
expected of a prediction of age t; where enough predictions are still at risk it levels off at
the expected final coverage (some outcomes never come: a customer who never churns, a claim
never filed). Times and counts come in as weighted arrays, so hourly aggregates (a delay
histogram, unlabelled counts per hour) feed it without reading raw rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike


@dataclass(frozen=True)
class CoverageCurve:
    """F(t) after each distinct time (events and censorings), with how many were at risk."""

    times: np.ndarray  # ascending, distinct
    coverage: np.ndarray  # F just after each time
    at_risk: np.ndarray  # predictions at risk at each time (not yet labelled nor censored before)
    variance: np.ndarray  # Greenwood's variance of F at each time

    def at(self, age_s: float) -> float:
        """F(age): the coverage expected of a prediction this old (0 before the first time)."""
        index = int(np.searchsorted(self.times, age_s, side="right")) - 1
        return float(self.coverage[index]) if index >= 0 else 0.0

    def horizon_index(self, min_at_risk: int) -> int | None:
        """The last time at which at least `min_at_risk` predictions were still at risk."""
        enough = np.flatnonzero(self.at_risk >= min_at_risk)
        return int(enough[-1]) if enough.size else None

    def final(self, min_at_risk: int) -> tuple[float, float, float] | None:
        """(expected final coverage, its standard error, the age it is read at); None when
        fewer than `min_at_risk` predictions were ever at risk or no outcome has arrived."""
        index = self.horizon_index(min_at_risk)
        if index is None or self.coverage[index] <= 0:
            return None
        error = float(np.sqrt(self.variance[index]))
        return float(self.coverage[index]), error, float(self.times[index])

    def time_to_reach(self, coverage: float) -> float | None:
        """The first time F reaches `coverage`; None if it never does."""
        reached = np.flatnonzero(self.coverage >= coverage - 1e-12)
        return float(self.times[reached[0]]) if reached.size else None


def kaplan_meier(
    event_times: ArrayLike,
    event_counts: ArrayLike,
    censor_times: ArrayLike,
    censor_counts: ArrayLike,
) -> CoverageCurve:
    """The Kaplan-Meier coverage curve of weighted events (labels at their delay) and
    right-censorings (unlabelled predictions at their age).

    A prediction censored at the same time as an event is counted at risk at it, as is usual
    (and as scipy.stats.ecdf does). S(t) = prod over times <= t of (1 - d_i / n_i).
    """
    times = np.concatenate([np.asarray(event_times, float), np.asarray(censor_times, float)])
    counts = np.concatenate([np.asarray(event_counts, float), np.asarray(censor_counts, float)])
    is_event = np.concatenate(
        [np.ones(np.size(event_times), bool), np.zeros(np.size(censor_times), bool)]
    )
    keep = counts > 0
    times, counts, is_event = times[keep], counts[keep], is_event[keep]
    distinct, where = np.unique(times, return_inverse=True)
    deaths = np.bincount(where, weights=counts * is_event, minlength=distinct.size)
    leaving = np.bincount(where, weights=counts, minlength=distinct.size)
    at_risk = counts.sum() - np.concatenate([[0.0], np.cumsum(leaving)[:-1]])
    hazard = np.divide(deaths, at_risk, out=np.zeros_like(deaths), where=at_risk > 0)
    survival = np.cumprod(1.0 - hazard)
    # Greenwood: Var S(t) = S(t)^2 sum d / (n (n - d)); Var F = Var S.
    survivors = at_risk - deaths
    terms = np.divide(deaths, at_risk * survivors, out=np.zeros_like(deaths), where=survivors > 0)
    variance = survival**2 * np.cumsum(terms)
    return CoverageCurve(distinct, 1.0 - survival, at_risk, variance)
