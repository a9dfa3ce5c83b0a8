"""Estimates before the outcomes where a person judges a version: the version page (its
estimated metrics beside the realised ones) and the compare page (a canary judged on its
estimate in its first days). Each is said as what it is: "estimated from scores; outcomes
arrive in about N days", N read from the model's label-maturity curve (monitoring.metrics.
maturity): how long outcomes take is the business's, not a version's, and a canary in its first
days has no delays of its own to tell it.
Values come from the same window sums as the API's `estimated:METRIC`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from common.time import DAY, day_floor
from dashboard.sections.summary import change_size
from factory.models import MLModel
from monitoring.metrics.maturity import LabelMaturity, estimate_words, label_maturity_get
from monitoring.metrics.measures import Measure
from monitoring.metrics.registry import ESTIMATED, HIGHER, LOWER, metric_get
from monitoring.metrics.series import metric_window

VERSION_DAYS = 7  # the version page's estimates: its last week, today included
Z95 = 1.959963984540054


@dataclass(frozen=True)
class EstimateRow:
    """One metric of a version, estimated and (where its outcomes are in) realised."""

    label: str
    estimated: str
    interval: str
    realised: str


def estimated_names(model: MLModel) -> tuple[str, ...]:
    """The metrics the model's task has estimates of (binary today)."""
    return ESTIMATED.get(model.task, ())


def number(metric: str, value: float | None) -> str:
    return "not known" if value is None else metric_get(metric).format(value)


def interval_text(metric: str, measure: Measure) -> str:
    if measure.low is None or measure.high is None:
        return ""
    return f"{number(metric, measure.low)} to {number(metric, measure.high)}"


@dataclass(frozen=True)
class Outcomes:
    """How far a version's outcomes in a window have arrived: its label coverage, and the share
    of its expected outcomes that is (None while the model's maturity curve is not known)."""

    coverage: float | None
    share: float | None
    threshold: float

    @property
    def judged_on_estimate(self) -> bool:
        """Too few of its outcomes are in to judge it on them: under the maturity threshold,
        or (with no curve to tell) none at all."""
        if self.share is not None:
            return self.share < self.threshold
        return self.coverage == 0

    @property
    def words(self) -> str:
        """Whether the realised values can be trusted yet, in one clause."""
        if self.share is not None:
            judged = ", so it is judged on its estimate" if self.judged_on_estimate else ""
            only = "only " if self.judged_on_estimate else ""
            return f"{only}{self.share:.0%} of its expected outcomes are in{judged}"
        if self.coverage == 0:
            return "no outcome of it has arrived yet, so it is judged on its estimate"
        if self.coverage is None:
            return "it made no prediction in this window"
        return f"{self.coverage:.0%} of its predictions have their outcome"


def outcomes_of(
    maturity: LabelMaturity, *, model: MLModel, version: str, window: tuple, segment=None
) -> Outcomes:
    coverage = metric_window(
        model=model,
        metric="label_coverage",
        start=window[0],
        end=window[1],
        version=version,
        segment=segment,
    ).value
    return Outcomes(coverage, maturity.share(coverage), maturity.threshold)


def version_estimates(*, model: MLModel, version: str, now: datetime) -> dict | None:
    """The version's estimated metrics over its last VERSION_DAYS days (today included), beside
    the realised values, and what that estimate is; None for a task without estimates or a
    version with no estimate in those days (no calibration yet, no prediction)."""
    names = estimated_names(model)
    if not names:
        return None
    end = day_floor(now) + DAY
    window = (end - timedelta(days=VERSION_DAYS), end)
    rows = []
    for name in names:
        estimate = metric_window(
            model=model,
            metric=f"estimated:{name}",
            start=window[0],
            end=window[1],
            version=version,
        )
        if estimate.value is None:
            continue
        realised = metric_window(
            model=model, metric=name, start=window[0], end=window[1], version=version
        )
        rows.append(
            EstimateRow(
                label=metric_get(name).label,
                estimated=number(name, estimate.value),
                interval=interval_text(name, estimate),
                realised=number(name, realised.value) if realised.n else "not yet known",
            )
        )
    if not rows:
        return None
    maturity = label_maturity_get(model=model, now=now)  # how long outcomes take: the model's
    outcomes = outcomes_of(maturity, model=model, version=version, window=window)
    words = estimate_words(maturity)
    return {
        "rows": rows,
        "start": window[0],
        "last_day": window[1] - DAY,
        "note": f"{words[0].upper()}{words[1:]}: {outcomes.words}.",
    }


# --- the compare page ---------------------------------------------------------------------------


def direction_of(metric: str, difference: float) -> str:
    good = metric_get(metric).good
    up = difference > 0
    if good in (HIGHER, LOWER):
        return "better" if up == (good == HIGHER) else "worse"
    return "higher" if up else "lower"


def noise_of(a: Measure, b: Measure) -> float | None:
    """Half the 95% interval of the difference of two independent estimates, from theirs."""
    if None in (a.low, a.high, b.low, b.high):
        return None
    return Z95 * math.hypot((a.high - a.low) / (2 * Z95), (b.high - b.low) / (2 * Z95))


def compare_estimates(
    *,
    model: MLModel,
    metric: str,
    baseline: str,
    candidate: str,
    start: datetime | None,
    end: datetime | None,
    segment: str | None,
    now: datetime,
) -> dict | None:
    """Candidate against baseline on the metric's estimate over the window, in one sentence,
    and whether the candidate is judged on it (its outcomes not in yet); None when the
    metric has no estimate, or either version none in the window."""
    if metric not in estimated_names(model):
        return None
    sides = [
        metric_window(
            model=model,
            metric=f"estimated:{metric}",
            start=start,
            end=end,
            version=version,
            segment=segment,
        )
        for version in (baseline, candidate)
    ]
    if any(side.value is None for side in sides):
        return None
    base, cand = sides
    maturity = label_maturity_get(model=model, now=now, segment=segment)
    outcomes = outcomes_of(
        maturity, model=model, version=candidate, window=(start, end), segment=segment
    )
    label = metric_get(metric).label
    words = estimate_words(maturity)
    sentence = (
        f"{label} {words}: the candidate {candidate} {number(metric, cand.value)} "
        f"({interval_text(metric, cand) or 'no interval'}), the baseline {baseline} "
        f"{number(metric, base.value)} ({interval_text(metric, base) or 'no interval'})"
    )
    sentence += verdict_clause(metric, base, cand) + "."
    return {
        "sentence": sentence,
        "judged_on_estimate": outcomes.judged_on_estimate,
        "candidate_outcomes": f"The candidate {candidate}: {outcomes.words}.",
    }


def verdict_clause(metric: str, base: Measure, cand: Measure) -> str:
    """ "; the candidate is worse by 9.0 points, beyond the two estimates' noise (±2.1
    points)", or within it."""
    difference = cand.value - base.value
    noise = noise_of(base, cand)
    if not difference:
        return "; the two estimates are equal"
    size = change_size(metric_get(metric), abs(difference))
    moved = f"; the candidate's estimate is {direction_of(metric, difference)} by {size}"
    if noise is None:
        return moved
    where = "beyond" if abs(difference) > noise else "within"
    return f"{moved}, {where} the two estimates' noise (±{change_size(metric_get(metric), noise)})"
