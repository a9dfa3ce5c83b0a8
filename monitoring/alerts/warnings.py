"""Warnings on a rule: "this rule will fire on noise" when its band is narrower than the MDE.

The minimum detectable effect (monitoring.stats.mde) is computed from the metric's recent
windows: their typical size n and the per-observation standard deviation implied by each
window's interval. A band or relative rule compares a window with a baseline of
`baseline_windows` windows, a static rule one window with a fixed line (taken as two
windows of n, as the design's sensitivity does). A half-width below that MDE means the rule
reacts to changes the data cannot tell from noise.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from django.db.models import Max
from django.utils import timezone

from monitoring.alerts.judge import Z95, series
from monitoring.metrics.registry import POISSON, metric_get, metric_label
from monitoring.metrics.windows import WINDOW, MetricError, window_start
from monitoring.models import AlertRule, HourlyAggregate, RuleKind
from monitoring.stats import mde

RECENT_WINDOWS = 14


def metric_noise(rule: AlertRule) -> tuple[float, float, float] | None:
    """(typical n per window, per-observation std, mean value) over recent windows."""
    last = HourlyAggregate.objects.filter(model=rule.model).aggregate(last=Max("hour"))["last"]
    if last is None:
        return None
    # The windows up to the latest data: a model that went quiet still has a sensitivity.
    now = min(timezone.now(), window_start(last, rule.granularity) + WINDOW[rule.granularity])
    start = now - WINDOW[rule.granularity] * RECENT_WINDOWS
    try:
        points = series(rule, start=start, now=now)
    except MetricError:
        return None
    points = [p for p in points if p.value is not None and p.n >= max(rule.min_count, 2)]
    if not points:
        return None
    n = statistics.median(p.n for p in points)
    mean = statistics.fmean(p.value for p in points)
    if metric_get(rule.metric).interval == POISSON:
        return n, math.sqrt(max(mean, 1)) * math.sqrt(n), mean  # Poisson, per window of n
    spreads = [
        (p.ci_high - p.ci_low) / (2 * Z95) * math.sqrt(p.n)
        for p in points
        if p.ci_low is not None and p.ci_high is not None
    ]
    return (n, statistics.median(spreads), mean) if spreads else None


def rule_half_width(rule: AlertRule, n: float, std: float, mean: float) -> float | None:
    if rule.kind == RuleKind.BAND:
        return (rule.k or 0) * std / math.sqrt(n)
    if rule.kind == RuleKind.RELATIVE:
        return abs(mean) * (rule.percent or 0) / 100
    distances = [abs(mean - b) for b in (rule.lower, rule.upper) if b is not None]
    return min(distances) if distances else None


@dataclass(frozen=True)
class RuleSensitivity:
    """What a rule can see in its metric's recent noise."""

    n: float  # typical observations per window
    effect: float  # the minimum detectable effect of the rule's comparison
    reacts_to: float | None  # the change the rule fires on (None: not a comparison)

    @property
    def noisy(self) -> bool:
        return self.reacts_to is not None and self.reacts_to < self.effect


def rule_sensitivity(rule: AlertRule) -> RuleSensitivity | None:
    """None for a no_data rule (it counts, it weighs no noise) or without recent windows."""
    if rule.kind == RuleKind.NO_DATA:
        return None
    noise = metric_noise(rule)
    if noise is None:
        return None
    n, std, mean = noise
    baseline_n = n if rule.kind == RuleKind.STATIC else n * rule.baseline_windows
    effect = mde(std=std, n1=n, n2=baseline_n)
    return RuleSensitivity(n, effect, rule_half_width(rule, n, std, mean))


def sensitivity_words(rule: AlertRule, sensitivity: RuleSensitivity | None) -> str:
    """The rule's minimum detectable effect in a sentence, for the form before saving."""
    metric = metric_label(rule.metric)
    if rule.kind == RuleKind.NO_DATA:
        return f"A no-data rule counts {metric}; there is no noise to weigh."
    if sensitivity is None:
        return f"No recent windows of {metric} yet: its noise cannot be weighed."
    said = (
        f"With about {sensitivity.n:,.0f} observations per {rule.granularity}, the smallest "
        f"change of {metric} this rule can tell from noise is {sensitivity.effect:.4g}"
    )
    if sensitivity.reacts_to is None:
        return said + "."
    return said + f"; the rule reacts to changes of {sensitivity.reacts_to:.4g}."


def rule_warnings(*, rule: AlertRule, labelled: bool = False) -> list[str]:
    """The rule's warnings; `labelled` names the metric in words (pages), else by key (API)."""
    return noise_warnings(rule, rule_sensitivity(rule), labelled=labelled)


def noise_warnings(
    rule: AlertRule, sensitivity: RuleSensitivity | None, *, labelled: bool
) -> list[str]:
    if sensitivity is None or not sensitivity.noisy:
        return []
    metric = metric_label(rule.metric) if labelled else rule.metric
    return [
        f"this rule will fire on noise: it reacts to changes of {sensitivity.reacts_to:.4g}, "
        f"smaller than the minimum detectable effect of {metric} ({sensitivity.effect:.4g} "
        f"with about {sensitivity.n:.0f} observations per {rule.granularity})"
    ]
