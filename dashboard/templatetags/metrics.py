"""Template filters for metrics: `{{ rule.metric|metric_label }}` prints the words, not the key;
`{{ alert|chart_link }}` links to where an alert's metric is charted;
`{{ rule.lower|metric_value:rule.metric }}` prints a value in its metric's unit ("80.0%");
`{{ f.statistic|finite|floatformat:4 }}` prints nothing for a NaN or an infinity."""

from __future__ import annotations

from django import template

from common.numbers import finite
from dashboard.sections.summary import value_text
from monitoring.alerts.links import alert_links
from monitoring.metrics import registry
from monitoring.models import Alert
from monitoring.stats.drift import method_name

register = template.Library()
register.filter("finite", finite)


register.filter("drift_method", method_name)


@register.filter
def metric_label(key: str) -> str:
    return registry.metric_label(key)


@register.filter
def metric_value(value: float | None, key: str) -> str:
    """A value as the metric's unit reads ("80.0%", "1,204"); a dash for none."""
    return "\N{EN DASH}" if value is None else value_text(key, value)


@register.filter
def chart_link(alert: Alert) -> str:
    """Where the alert's metric is charted, in its rule's scope."""
    return alert_links(alert).chart
