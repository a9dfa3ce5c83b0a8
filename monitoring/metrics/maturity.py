"""Label maturity of a model's windows, from stored aggregates: how much of each window's
expected outcomes has arrived.

Over the predictions of the last LOOKBACK (by prediction hour), each label is an event at its
delay (the hour's label-delay histogram) and each prediction still without one is censored at
its age (the hour's predictions minus its labelled ones, aged from the middle of the hour).
The Kaplan-Meier curve of these (monitoring.stats.maturity) levels off at the expected final
coverage; a window's maturity is its observed coverage over that, the share of its expected
outcomes that has arrived. A window is mature once the share reaches the model's
`label_maturity` (default 0.8), or once it is older than the age by which the curve says
nearly all outcomes are in: a window whose outcomes are rarer than usual is complete, not late.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from django.db import transaction
from django.db.models import F, Sum

from factory.models import MLModel
from factory.services import audit_record
from monitoring.metrics.sketches import sketches_read
from monitoring.models import HourlyAggregate, SketchKind
from monitoring.stats.codec import counts_decode
from monitoring.stats.delay import DELAY_BINS, DELAY_EDGES_S
from monitoring.stats.maturity import CoverageCurve, kaplan_meier

LOOKBACK = timedelta(days=90)  # the predictions whose delays make the curve
MIN_AT_RISK = 20  # the final coverage is read where at least this many are still at risk
MIN_AT_RISK_SHARE = 0.01  # ... and at least this share of the predictions looked at
COMPLETE_SHARE = 0.99  # past the age where the curve reaches this share of its final level,
# a window has every outcome it will get
Z95 = 1.959963984540054
HALF_HOUR_S = 1800.0


def delay_bin_times() -> np.ndarray:
    """A delay bin's representative time: the geometric middle of its edges (the first bin
    holds delays up to 0.1 s, the last those over 10^9 s)."""
    middles = np.sqrt(DELAY_EDGES_S[:-1] * DELAY_EDGES_S[1:])
    return np.concatenate([[DELAY_EDGES_S[0]], middles, [DELAY_EDGES_S[-1]]])


@dataclass(frozen=True)
class WindowMaturity:
    """One window's share of its expected outcomes arrived, and whether it counts as mature."""

    share: float | None  # None: nothing to expect yet (no curve, or no prediction in it)
    mature: bool
    remaining_s: float | None  # median wait for its outstanding outcomes


@dataclass(frozen=True)
class LabelMaturity:
    """A model's (or one version's or segment's) coverage curve, read at `now`."""

    curve: CoverageCurve | None
    threshold: float
    now: datetime
    predictions: int = 0

    @property
    def final(self) -> tuple[float, float, float] | None:
        """(expected final coverage, its standard error, the age it is read at)."""
        if self.curve is None:
            return None
        needed = max(MIN_AT_RISK, MIN_AT_RISK_SHARE * self.predictions)
        return self.curve.final(needed)

    @property
    def known(self) -> bool:
        return self.final is not None

    @property
    def final_coverage(self) -> float | None:
        return self.final[0] if self.final else None

    @property
    def complete_after_s(self) -> float | None:
        """The age by which COMPLETE_SHARE of the expected outcomes have arrived."""
        final = self.final
        if final is None:
            return None
        return self.curve.time_to_reach(COMPLETE_SHARE * final[0])

    @property
    def mature_after_s(self) -> float | None:
        """The age by which the threshold's share of the expected outcomes have arrived."""
        final = self.final
        return self.curve.time_to_reach(self.threshold * final[0]) if final else None

    @property
    def arrival_words(self) -> str | None:
        """How long outcomes take, as a person plans around it ("about 12 days"): the age at
        which the curve's expected coverage reaches the threshold's share of its final level.
        None while no outcome has arrived to tell."""
        after_s = self.mature_after_s
        return None if after_s is None else wait_words(after_s)

    def share(self, coverage: float | None) -> float | None:
        final = self.final_coverage
        if final is None or coverage is None:
            return None
        return min(coverage / final, 1.0)

    def of_window(
        self,
        *,
        start: datetime,
        end: datetime,
        coverage: float | None,
        threshold: float | None = None,
    ) -> WindowMaturity:
        """A window's maturity from its observed label coverage and its span."""
        threshold = self.threshold if threshold is None else threshold
        share = self.share(coverage)
        if share is None:
            return WindowMaturity(None, True, None)
        last = min(end, self.now)
        complete = self.complete_after_s
        youngest_s = (self.now - last).total_seconds()
        mature = share >= threshold or (complete is not None and youngest_s >= complete)
        middle_s = (self.now - (start + (last - start) / 2)).total_seconds()
        return WindowMaturity(share, mature, None if mature else self.remaining_s(middle_s))

    def remaining_s(self, age_s: float) -> float | None:
        """How long until half the outcomes still expected of predictions this old arrive."""
        final = self.final_coverage
        if final is None:
            return None
        now_coverage = self.curve.at(max(age_s, 0.0))
        halfway = self.curve.time_to_reach(now_coverage + (final - now_coverage) / 2)
        return None if halfway is None else max(halfway - age_s, 0.0)

    def projection(
        self, known_total: float, coverage: float | None, mean_error: float = 0.0
    ) -> tuple | None:
        """A sum over a window's outcomes projected to full maturity: (value, low, high).

        The known part over the share arrived. Its 95% interval joins the interval of the
        expected final coverage (Greenwood) with `mean_error`, the relative half-width of the
        95% interval of the known values' mean: the outcomes still to come are as many more
        draws of the same values.
        """
        final = self.final
        if final is None or not coverage:
            return None
        value, error, _ = final
        projected = known_total / coverage * value
        relative = float(np.hypot(Z95 * error / value, mean_error))
        return projected, projected * (1 - relative), projected * (1 + relative)


def window_projection(maturity: LabelMaturity, point) -> tuple | None:
    """A window's sum (a series point of `value_sum:NAME`) projected to full maturity:
    (value, low, high), its interval widened by the relative error of its known values' mean
    (the sum's interval is n times the mean's)."""
    if point.value is None:
        return None
    mean_error = 0.0
    if point.ci_low is not None and point.ci_high is not None and point.value:
        mean_error = abs(point.ci_high - point.ci_low) / 2 / abs(point.value)
    return maturity.projection(point.value, point.label_coverage, mean_error)


def label_maturity_set(*, model: MLModel, threshold: float, actor: str = "") -> MLModel:
    """Store a model's label maturity threshold (already validated), audited."""
    before = model.label_maturity
    model.label_maturity = threshold
    with transaction.atomic():
        model.save(update_fields=["label_maturity"])
        audit_record(
            model=model,
            actor=actor,
            action="model.label_maturity",
            subject=model.name,
            before=before,
            after=threshold,
        )
    return model


def label_maturity_get(
    *,
    model: MLModel,
    now: datetime,
    version: str | None = None,
    segment: str | None = None,
) -> LabelMaturity:
    """The model's coverage curve from the last LOOKBACK of aggregates, read at `now`."""
    start = now - LOOKBACK
    hours = HourlyAggregate.objects.filter(model=model, hour__gte=start, hour__lt=now)
    if version:
        hours = hours.filter(version__version=version)
    if segment is not None:
        hours = hours.filter(segment=segment)
    per_hour = list(
        hours.values("hour")
        .annotate(unlabelled=Sum(F("predictions") - F("labelled")), total=Sum("predictions"))
        .order_by()
        .values_list("hour", "unlabelled", "total")
    )
    delays = delay_histogram(model=model, start=start, now=now, version=version, segment=segment)
    threshold = model.label_maturity
    if not delays.sum():
        return LabelMaturity(None, threshold, now)
    ages = [max((now - hour).total_seconds() - HALF_HOUR_S, 0.0) for hour, _, _ in per_hour]
    unlabelled = [max(count, 0) for _, count, _ in per_hour]
    curve = kaplan_meier(delay_bin_times(), delays, ages, unlabelled)
    return LabelMaturity(curve, threshold, now, sum(total for *_, total in per_hour))


def delay_histogram(*, model, start, now, version, segment) -> np.ndarray:
    """Labels per delay bin of the predictions of [start, now), summed over their sketches."""
    version_ids = None
    if version:
        version_ids = list(model.versions.filter(version=version).values_list("pk", flat=True))
    rows = sketches_read(
        model=model,
        kind=SketchKind.DELAY,
        start=start,
        end=now,
        version_ids=version_ids,
        segment=segment,
    )
    total = np.zeros(DELAY_BINS, dtype=np.int64)
    for row in rows:
        counts = counts_decode(row.data)
        total[: counts.size] += counts.astype(np.int64)
    return total


def wait_words(seconds: float) -> str:
    """A wait as a person plans around it: "about 5 days", "about 3 hours", "under an hour"."""
    days, hours = seconds / 86400, seconds / 3600
    if days >= 1.5:
        return f"about {days:.0f} days"
    if hours >= 1.5:
        return f"about {hours:.0f} hours"
    return "about an hour" if hours >= 0.75 else "under an hour"


def estimate_words(maturity: LabelMaturity) -> str:
    """What a number estimated before its outcomes is, said where it is shown (the version and
    compare pages, the alert e-mail): "estimated from scores; outcomes arrive in about 12 days"."""
    wait = maturity.arrival_words
    if wait is None:
        return "estimated from scores; how long outcomes take is not known yet"
    return f"estimated from scores; outcomes arrive in {wait}"
