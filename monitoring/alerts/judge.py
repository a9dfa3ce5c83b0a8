"""Judging windows: each rule kind turns a metric's windows into bounds and a verdict.

Only complete windows (ending at or before `now`) are judged, so a half-filled hour or day
never alerts. A window is judged when it has at least `min_count` observations; band and
relative rules also need MIN_BASELINE earlier judged windows. The baseline of an open
alert is frozen before its first breaching window, so a lasting change keeps the alert
firing instead of becoming the new normal after `baseline_windows` windows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Min

from monitoring.metrics.maturity import label_maturity_get
from monitoring.metrics.registry import COUNT, POISSON, SUM, Metric, metric_get
from monitoring.metrics.series import Point, metric_series
from monitoring.metrics.windows import WINDOW, MetricError, window_start
from monitoring.models import AlertRule, HourlyAggregate, RuleKind, Sides, Verdict

EXTRA_LOOKBACK_WINDOWS = 14  # how far back to look for judged windows when recent ones are thin
MIN_BASELINE = 3  # fewer earlier windows than this and a band or relative rule does not judge
Z95 = 1.959963984540054  # the metric intervals are 95% ones
BREACHES = (Verdict.TOO_LOW, Verdict.TOO_HIGH)
EXTENSIVE = (COUNT, SUM)  # a part of a window holds a part of its total
# A firing band or relative alert resolves only on windows inside the inner half of the band
# (for k = 4: within 2 standard errors of the baseline, where 95% of normal windows fall).
# A lasting shift of about k standard errors lands there in only ~2% of windows, so it keeps
# firing even while small windows (recent days with few labels yet) widen the band; with the
# inner 75% it came back inside by chance about one window in six and resolved too early.
RECOVERY_MARGIN = 0.5


@dataclass
class Judgement:
    start: datetime
    end: datetime
    value: float | None
    n: int
    lower: float | None
    upper: float | None
    verdict: str
    silence_is_breach: bool = False  # no_data rules: an empty window is what they look for
    recovered: bool = False  # inside the bounds by the hysteresis margin: counts toward resolving

    @property
    def judged(self) -> bool:
        return self.verdict == Verdict.OK or self.breach

    @property
    def breach(self) -> bool:
        return self.verdict in BREACHES or (
            self.silence_is_breach and self.verdict == Verdict.NO_DATA
        )


def rule_judgements(
    rule: AlertRule, *, now: datetime, frozen_before: datetime | None = None
) -> list[Judgement]:
    """The judgements of the rule's complete windows in its look-back, oldest first.

    Raises MetricError when the metric cannot be computed for this model.
    """
    windows = rule.for_windows + rule.resolve_windows + EXTRA_LOOKBACK_WINDOWS
    if rule.kind in (RuleKind.BAND, RuleKind.RELATIVE) and not rule.baseline_version:
        windows += rule.baseline_windows
    start = window_start(now, rule.granularity) - WINDOW[rule.granularity] * windows
    points = [p for p in series(rule, start=start, now=now) if p.end <= now]
    part: list[Point] = []
    if rule.kind == RuleKind.NO_DATA or metric_get(rule.metric).kind in EXTENSIVE:
        points, part = whole_windows(rule, points)
    if rule.kind == RuleKind.NO_DATA:
        return no_data_judgements(rule, points)
    immature = immature_windows(rule, points, now)
    if rule.kind == RuleKind.STATIC:
        judged = [
            immature_judgement(p)
            if p.start in immature
            else judge(rule, p, rule.lower, rule.upper, static_margin(rule, p))
            for p in points
        ]
        return part_too_high(rule, part) + judged
    baselines = version_baselines(rule, start, now) if rule.baseline_version else None
    judgements = []
    for p in points:
        if p.start in immature:
            judgements.append(immature_judgement(p))
            continue
        if p.value is None or p.n < rule.min_count:
            judgements.append(judge(rule, p, None, None))
            continue
        cutoff = min(p.start, frozen_before) if frozen_before else p.start
        if baselines is not None:
            reference = baselines.get(p.start)
            history = [reference] if reference is not None else []
        else:
            earlier = [
                j
                for j in judgements
                if j.value is not None
                and j.n >= rule.min_count
                and j.start < cutoff
                and j.verdict != Verdict.IMMATURE
            ]
            history = [j.value for j in earlier[-rule.baseline_windows :]]
        judgements.append(judge_against(rule, p, history))
    return judgements


def immature_windows(rule: AlertRule, points: list[Point], now: datetime) -> set[datetime]:
    """The starts of the windows a rule on a realised metric must not judge yet: too few of
    their expected outcomes have arrived (the rule's label_maturity, else the model's), so
    their value would still move and they neither fire nor resolve an alert."""
    if not metric_get(rule.metric).realised:
        return set()
    maturity = label_maturity_get(
        model=rule.model, now=now, version=rule.version, segment=rule.segment
    )
    return {
        p.start
        for p in points
        if not maturity.of_window(
            start=p.start, end=p.end, coverage=p.label_coverage, threshold=rule.label_maturity
        ).mature
    }


def immature_judgement(p: Point) -> Judgement:
    return Judgement(p.start, p.end, p.value, p.n, None, None, Verdict.IMMATURE)


def model_first_hour(rule: AlertRule) -> datetime | None:
    hours = HourlyAggregate.objects.filter(model=rule.model)
    return hours.aggregate(first=Min("hour"))["first"]


def whole_windows(rule: AlertRule, points: list[Point]) -> tuple[list[Point], list[Point]]:
    """(The windows from the model's first data on, less the first when the data starts
    within it; that part-window, if any.) A count or a sum over part of a window (a model
    that began at 14:00) is not a fall. Rates and means are judged on the rows they have,
    the first window's too."""
    first = model_first_hour(rule)
    if first is None:
        return [], []
    whole = [p for p in points if p.start >= first]
    return whole, [p for p in points if p.start < first < p.end]


def part_too_high(rule: AlertRule, part: list[Point]) -> list[Judgement]:
    """A count over part of a window above the upper bound puts the whole window above it: that
    verdict is known already, and only that one (counts only: a sum can fall back)."""
    if metric_get(rule.metric).kind != COUNT or rule.upper is None:
        return []
    judged = [judge(rule, p, None, rule.upper) for p in part]
    return [j for j in judged if j.verdict == Verdict.TOO_HIGH]


def series(rule: AlertRule, *, start: datetime, now: datetime, version: str | None = None):
    return metric_series(
        model=rule.model,
        metric=metric_get(rule.metric).reads or rule.metric,
        granularity=rule.granularity,
        start=start,
        end=now,
        version=version or rule.version,
        segment=rule.segment,
    )


def version_baselines(rule: AlertRule, start: datetime, now: datetime) -> dict[datetime, float]:
    """The other version's value per window, where it has enough observations itself."""
    points = series(rule, start=start, now=now, version=rule.baseline_version)
    return {p.start: p.value for p in points if p.value is not None and p.n >= rule.min_count}


def judge(
    rule: AlertRule, p: Point, lower: float | None, upper: float | None, margin: float = 0.0
) -> Judgement:
    """The verdict on one window; `recovered` when it is inside by `margin` (hysteresis)."""
    if p.value is None or p.n < rule.min_count:
        verdict = Verdict.NO_DATA if p.n == 0 else Verdict.TOO_FEW
    elif lower is not None and p.value < lower:
        verdict = Verdict.TOO_LOW
    elif upper is not None and p.value > upper:
        verdict = Verdict.TOO_HIGH
    else:
        verdict = Verdict.OK
    recovered = verdict == Verdict.OK and inside(p.value, lower, upper, margin)
    return Judgement(p.start, p.end, p.value, p.n, lower, upper, verdict, recovered=recovered)


def inside(value: float, lower: float | None, upper: float | None, margin: float) -> bool:
    return (lower is None or value >= lower + margin) and (upper is None or value <= upper - margin)


def static_margin(rule: AlertRule, p: Point) -> float:
    """A static rule's hysteresis: one standard error of the window inside the line."""
    if p.value is None:
        return 0.0
    return window_standard_error(rule.metric, p) or 0.0


def judge_against(rule: AlertRule, p: Point, history: list[float]) -> Judgement:
    """Band or relative: bounds around the baseline mean of `history`."""
    needed = 1 if rule.baseline_version else min(MIN_BASELINE, rule.baseline_windows)
    half_width = None
    if len(history) >= needed:
        baseline = sum(history) / len(history)
        if rule.kind == RuleKind.RELATIVE:
            half_width = abs(baseline) * (rule.percent or 0) / 100
        elif (se := window_standard_error(rule.metric, p)) is not None:
            half_width = (rule.k or 0) * se
    if half_width is None:
        return Judgement(p.start, p.end, p.value, p.n, None, None, Verdict.NO_BASELINE)
    lower = None if rule.sides == Sides.TOO_HIGH else baseline - half_width
    upper = None if rule.sides == Sides.TOO_LOW else baseline + half_width
    judgement = judge(rule, p, lower, upper, margin=RECOVERY_MARGIN * half_width)
    judgement.lower, judgement.upper = bounds_clip(rule.metric, lower, upper)
    return judgement


def bounds_clip(
    metric: str, lower: float | None, upper: float | None
) -> tuple[float | None, float | None]:
    """Bounds as shown: a proportion's band ends at 0 and 1, a count's or error's at 0.

    Only what is shown and stored is clipped; the verdict and the hysteresis margin use the
    band as computed, so clipping never changes whether an alert fires or resolves.
    """
    low_end, high_end = metric_get(metric).limits
    if lower is not None and low_end is not None:
        lower = max(lower, low_end)
    if upper is not None and high_end is not None:
        upper = min(upper, high_end)
    return lower, upper


def window_standard_error(metric: str, p: Point) -> float | None:
    """The window's own standard error, from its 95% interval (so from its n).

    Counts have no interval; they are taken as Poisson, whose standard error is sqrt(count).
    """
    if metric_get(metric).interval == POISSON:
        return math.sqrt(max(p.value or 0, 1))
    if p.ci_low is None or p.ci_high is None:
        return None
    return (p.ci_high - p.ci_low) / (2 * Z95)


def window_count(metric: Metric, p: Point) -> int:
    """What a no_data rule counts in a window. A pseudo-metric's windows are its source's:
    labelled predictions = label coverage x predictions."""
    return round((p.value or 0) * p.n) if metric.reads else p.n


def no_data_judgements(rule: AlertRule, points: list[Point]) -> list[Judgement]:
    """Windows with fewer than min_count predictions (or outcomes), from the first whole
    window of data on. A model that never received a prediction is new, not silent: it is
    not judged."""
    metric = metric_get(rule.metric)
    if not metric.no_data:
        raise MetricError("no_data rules count predictions or outcomes")
    judgements = []
    for p in points:  # from the first whole window of data on (`whole_windows`)
        count = window_count(metric, p)
        verdict = Verdict.NO_DATA if count < rule.min_count else Verdict.OK
        judgements.append(
            Judgement(
                p.start,
                p.end,
                float(count),
                count,
                rule.min_count,
                None,
                verdict,
                silence_is_breach=True,
                recovered=verdict == Verdict.OK,
            )
        )
    return judgements
