"""Every link about an alert, built once for the alert page, the e-mail and the webhook.

Pages link relatively; a message is read outside the site, so e-mails and webhooks put
CANARY_BASE_URL in front (`absolute=True`). A chart link opens the page in the rule's window
size, version and segment, at an element the page has for that kind of metric.

An e-mail's one-click actions (acknowledge, silence for a while) are links to the alert page
carrying a signed, expiring token for that alert and action: the page asks the person to log
in, then to confirm with a POST. A link never acts by itself (mail scanners open links), and a
token copied to another alert or kept past ACTION_LINK_MAX_AGE is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core import signing
from django.urls import reverse
from django.utils.http import urlencode

from monitoring.metrics.explain import explainable, whole_days
from monitoring.metrics.registry import metric_find
from monitoring.models import Alert, AlertRule, Direction

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
    why: str  # why the metric moved in the alert's days; "" when explain does not take it


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
        why=alert_why_path(alert),
    )
    if not absolute:
        return paths
    base = settings.CANARY_BASE_URL
    return AlertLinks(**{name: base + path if path else "" for name, path in vars(paths).items()})


ACTION_LINK_MAX_AGE = timedelta(days=7)
ACTION_SALT = "canary.alerts.action-link"
ACKNOWLEDGE, SILENCE = "acknowledge", "silence"
SILENCE_HOURS = {1: "1 hour", 4: "4 hours", 24: "1 day", 168: "1 week"}  # what a link offers


class ActionLinkInvalid(Exception):
    """A link's token is forged, for another alert, or too old; the message says which."""


@dataclass(frozen=True)
class ActionLinks:
    acknowledge: str
    silence: dict[str, str]  # "4 hours": its link


def action_token(alert: Alert, action: str) -> str:
    return signing.dumps({"alert": alert.pk, "action": action}, salt=ACTION_SALT, compress=True)


def action_read(token: str, alert: Alert) -> str:
    """The action a link's token asks for on this alert, or ActionLinkInvalid."""
    try:
        data = signing.loads(token, salt=ACTION_SALT, max_age=ACTION_LINK_MAX_AGE)
    except signing.SignatureExpired as error:
        days = ACTION_LINK_MAX_AGE.days
        raise ActionLinkInvalid(f"this link has expired (links work for {days} days)") from error
    except signing.BadSignature as error:
        raise ActionLinkInvalid("this link is not one Canary made") from error
    if data.get("alert") != alert.pk or data.get("action") not in (ACKNOWLEDGE, SILENCE):
        raise ActionLinkInvalid("this link is for another alert")
    return data["action"]


def action_links(alert: Alert, *, absolute: bool = False) -> ActionLinks:
    """The alert page with a signed request to acknowledge it, or to silence its rule for one
    of SILENCE_HOURS (the page lets the person pick another before confirming)."""
    page = alert_url(alert, absolute=absolute)
    silence = action_token(alert, SILENCE)
    return ActionLinks(
        acknowledge=page + "?" + urlencode({"act": action_token(alert, ACKNOWLEDGE)}),
        silence={
            words: page + "?" + urlencode({"act": silence, "hours": hours})
            for hours, words in SILENCE_HOURS.items()
        },
    )


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


def why_path(
    model: str,
    *,
    metric: str,
    start: datetime,
    end: datetime,
    version: str | None = None,
    segment: str | None = None,
) -> str:
    """The "Why?" page: why `metric` moved in the whole days holding [start, end) against as
    many days just before, in a version and segment."""
    start, end = whole_days(start, end)
    query = {"metric": metric, "start": start.isoformat(), "end": end.isoformat()}
    query.update({"version": version} if version else {})
    query.update({"segment": segment} if segment is not None else {})
    return reverse("dashboard:why", kwargs={"name": model}) + "?" + urlencode(query)


def alert_why_path(alert: Alert) -> str:
    rule = alert.rule
    metric = metric_find(rule.metric)
    if metric is None or not explainable(metric) or alert.direction == Direction.NO_DATA:
        return ""
    return why_path(
        alert.model.name,
        metric=rule.metric,
        start=alert.window_start,
        end=alert.window_end,
        version=rule.version,
        segment=rule.segment,
    )
