"""Template filters for metrics: `{{ rule.metric|metric_label }}` prints the words, not the key."""

from __future__ import annotations

from django import template

from monitoring.metrics import registry

register = template.Library()


@register.filter
def metric_label(key: str) -> str:
    return registry.metric_label(key)
