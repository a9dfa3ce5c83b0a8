"""Every link about an alert, built once for the alert page, the e-mail and the webhook.

Pages link relatively; a message is read outside the site, so e-mails and webhooks put
CANARY_BASE_URL in front (`absolute=True`). A chart link opens the page in the rule's window
size, version and segment, at an element the page has for that kind of metric.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.urls import reverse
from django.utils.http import urlencode

from monitoring.metrics.registry import metric_find
from monitoring.models import Alert, AlertRule

# Metrics the model page has no chart of their own for: the element that shows them. (A
# pseudo-metric, such as outcomes, is shown by the chart of the metric it reads.)
ANCHORS = {
    "label_delay_p50": "label-delay",
    "mean_prediction": "volume",
    "quarantined": "quality",
}
FEATURE_DRIFT = "drift:"  # drift of one feature: its own page, at its drift over time
FEATURE_DRIFT_ANCHOR = "feature-drift"
MISSING_RATE = "missing_rate:"  # the data quality section lists each feature's missing rate
MISSING_RATE_ANCHOR = "quality"


@dataclass(frozen=True)
class AlertLinks:
    page: str  # the alert's own page: what happened, evaluations, messages
    chart: str  # the metric on the model (or feature) page, in the rule's scope
    rows: str  # the predictions of the alert's window
    rule: str
    alerts: str  # every alert of the model
    acknowledge: str
    silence: str
    unsilence: str


def alert_links(alert: Alert, *, absolute: bool = False) -> AlertLinks:
    model, pk = alert.model.name, alert.pk
    paths = AlertLinks(
        page=reverse("dashboard:alert", kwargs={"name": model, "pk": pk}),
        chart=chart_path(alert.rule, model),
        rows=rows_path(alert),
        rule=reverse("dashboard:rule-edit", kwargs={"name": model, "pk": alert.rule_id}),
        alerts=reverse("dashboard:alerts") + "?" + urlencode({"model": model}),
        acknowledge=reverse("dashboard:alert-acknowledge", kwargs={"name": model, "pk": pk}),
        silence=reverse("dashboard:alert-silence", kwargs={"name": model, "pk": pk}),
        unsilence=reverse("dashboard:alert-unsilence", kwargs={"name": model, "pk": pk}),
    )
    if not absolute:
        return paths
    base = settings.CANARY_BASE_URL
    return AlertLinks(**{name: base + path for name, path in vars(paths).items()})


def alert_url(alert: Alert, *, absolute: bool = False) -> str:
    return alert_links(alert, absolute=absolute).page


def chart_url(alert: Alert, *, absolute: bool = False) -> str:
    return alert_links(alert, absolute=absolute).chart


def rule_scope(rule: AlertRule) -> dict[str, str]:
    """The page filters that show what the rule watches (an empty segment is a real one)."""
    query = {"granularity": rule.granularity}
    query.update({"version": rule.version} if rule.version else {})
    query.update({"segment": rule.segment} if rule.segment is not None else {})
    return query


def chart_anchor(metric: str) -> str:
    """The id of the element that shows `metric` on the model page (or, for a feature's
    drift, on the feature page)."""
    if metric.startswith(FEATURE_DRIFT):
        return FEATURE_DRIFT_ANCHOR
    if metric.startswith(MISSING_RATE):
        return MISSING_RATE_ANCHOR
    found = metric_find(metric)
    metric = found.reads or metric if found else metric
    return ANCHORS.get(metric, metric_chart_id(metric))


def metric_chart_id(metric: str) -> str:
    """The id of a metric's own chart on the model page."""
    return f"metric-{metric}"


def chart_path(rule: AlertRule, model: str) -> str:
    query = "?" + urlencode(rule_scope(rule)) + "#" + chart_anchor(rule.metric)
    if rule.metric.startswith(FEATURE_DRIFT):
        feature = rule.metric[len(FEATURE_DRIFT) :]
        return reverse("dashboard:feature", kwargs={"name": model, "feature": feature}) + query
    return reverse("dashboard:model", kwargs={"name": model}) + query


def rows_path(alert: Alert) -> str:
    rule = alert.rule
    query = {"metric": rule.metric, **rule_scope(rule)}
    query.pop("granularity")
    query.update(start=alert.window_start.isoformat(), end=alert.window_end.isoformat())
    return reverse("dashboard:rows", kwargs={"name": alert.model.name}) + "?" + urlencode(query)
