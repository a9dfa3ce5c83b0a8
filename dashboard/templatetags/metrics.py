"""Template filters for metrics: `{{ rule.metric|metric_label }}` prints the words, not the key;
`{{ alert|chart_link }}` links to where an alert's metric is charted;
`{{ f.statistic|finite|floatformat:4 }}` prints nothing for a NaN or an infinity."""

from __future__ import annotations

from django import template

from common.numbers import finite
from monitoring.alerts.links import alert_links
from monitoring.metrics import registry
from monitoring.models import Alert

register = template.Library()
register.filter("finite", finite)


@register.filter
def metric_label(key: str) -> str:
    return registry.metric_label(key)


@register.filter
def chart_link(alert: Alert) -> str:
    """Where the alert's metric is charted, in its rule's scope."""
    return alert_links(alert).chart
