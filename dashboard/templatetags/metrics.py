"""Template filters for metrics: `{{ rule.metric|metric_label }}` prints the words, not the key;
`{{ f.statistic|finite|floatformat:4 }}` prints nothing for a NaN or an infinity."""

from __future__ import annotations

from django import template

from common.numbers import finite
from monitoring.metrics import registry

register = template.Library()


@register.filter
def metric_label(key: str) -> str:
    return registry.metric_label(key)


register.filter("finite", finite)
