"""The metric registry: every metric a model offers has words a person reads, the tasks it
names are those the API enforces, and the model page shows words, never keys."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from accounts.roles import Role, user_role_set
from factory.models import Task
from factory.services import model_create
from monitoring.demo import demo_create
from monitoring.ingest.services import records_ingest
from monitoring.jobs import jobs_run
from monitoring.metrics.registry import METRICS, metric_get, metric_label
from monitoring.metrics.series import metric_check, metric_names
from monitoring.metrics.windows import MetricError
from tests.conftest import NOW, outcome, prediction

pytestmark = pytest.mark.django_db

OUTPUTS = {  # (prediction, outcome) of each task
    Task.BINARY: ({"prediction": 1, "score": 0.8}, {"outcome": 1}),
    Task.MULTICLASS: ({"prediction": "gold", "score": 0.6}, {"outcome": "silver"}),
    Task.REGRESSION: ({"prediction": 12.5, "score": None}, {"outcome": 10.0}),
}


def model_with_traffic(task: str):
    """A model of the task whose predictions carry features and whose outcomes carry a value."""
    model = model_create(name=f"m-{task[:5]}", task=task, positive_class=1)
    predicted, observed = OUTPUTS[task]
    features = {"tenure_months": 3, "plan": "basic"}
    records = [
        prediction(i, at=NOW - timedelta(hours=i), features=features, **predicted)
        for i in range(40)
    ]
    records_ingest(model=model, kind="predictions", records=records, enqueue_jobs=False)
    outcomes = [outcome(i, values={"revenue": 20.0 + i}, **observed) for i in range(30)]
    records_ingest(model=model, kind="outcomes", records=outcomes, enqueue_jobs=False)
    jobs_run(model_id=model.pk, now=NOW + timedelta(days=3))
    return model


@pytest.mark.parametrize("task", [Task.BINARY, Task.MULTICLASS, Task.REGRESSION])
def test_every_metric_a_model_offers_is_named_in_words(task):
    # given
    model = model_with_traffic(task)
    # when
    names = metric_names(model)
    # then: its values and features are among them, and every one reads as words
    assert {"value:revenue", "value_sum:revenue", "drift:tenure_months"} <= set(names)
    assert "missing_rate:plan" in names
    for name in names:
        label = metric_label(name)
        assert label != name and label[0].isupper(), name
        metric_check(model, name)  # offered means answerable


def test_families_read_with_their_name():
    assert metric_label("roc_auc") == "ROC AUC"
    assert metric_label("log_loss") == "Log loss"
    assert metric_label("value:revenue") == "Revenue per labelled prediction"
    assert metric_label("value_sum:revenue") == "Revenue (sum)"
    assert metric_label("missing_rate:tenure_months") == "Missing rate of tenure_months"
    assert metric_label("drift:tenure_months") == "Drift of tenure_months"
    assert metric_label("outcomes") == "Outcomes"
    with pytest.raises(MetricError):
        metric_get("value:")  # a family needs its name


@pytest.mark.parametrize("task", [Task.BINARY, Task.MULTICLASS, Task.REGRESSION])
def test_the_tasks_a_metric_names_are_those_the_api_enforces(task):
    model = model_create(name="m", task=task, positive_class=1)
    for metric in (m for m in METRICS if not m.no_data_only):
        if metric.fits(task):
            metric_check(model, metric.key)
            continue
        with pytest.raises(MetricError) as refused:
            metric_check(model, metric.key)
        fits = " or ".join(t.replace("_", " ") for t in metric.tasks)
        assert f"{metric.key} needs a {fits} model" in str(refused.value)


def test_outcomes_are_for_no_data_rules_only(writer):
    model = model_create(name="churn", task=Task.BINARY, positive_class=1)
    url = "/api/v1/models/churn/alert-rules"
    counted = {"metric": "outcomes", "kind": "no_data", "min_count": 10}
    banded = {"metric": "outcomes", "kind": "band", "k": 4}
    assert writer.post(url, counted, format="json").status_code == 201
    refused = writer.post(url, banded, format="json")
    assert refused.status_code == 400 and "no_data" in json.dumps(refused.json())
    with pytest.raises(MetricError):
        metric_check(model, "outcomes")  # no chart or series of it


class VisibleText(HTMLParser):
    """The text a person sees: no tags, attributes, scripts or styles."""

    def __init__(self):
        super().__init__()
        self.parts, self.hidden = [], 0

    def handle_starttag(self, tag, attrs):
        self.hidden += tag in ("script", "style")

    def handle_endtag(self, tag):
        self.hidden -= tag in ("script", "style")

    def handle_data(self, data):
        if not self.hidden:
            self.parts.append(data)


def figure_texts(html: str) -> list[str]:
    """Chart titles and axis titles, as Plotly draws them from each figure's JSON."""
    texts = []
    for body in re.findall(r'<script[^>]*type="application/json"[^>]*>(.*?)</script>', html, re.S):
        layout = json.loads(body).get("layout", {})
        texts.append(layout.get("title", {}).get("text", ""))
        for axis in ("xaxis", "yaxis"):
            texts.append(layout.get(axis, {}).get("title", {}).get("text", ""))
    return texts


def test_the_model_page_shows_no_metric_key(smtp_server):
    # given: the demo, whose rules and alerts name several metrics
    model = demo_create()
    jobs_run(model_id=model.pk)
    user = get_user_model().objects.create_user("viewer", password="a-long-password")
    user_role_set(user=user, role=Role.VIEWER)
    client = Client()
    client.force_login(user)
    # when
    html = client.get(f"/models/{model.name}/").content.decode()
    # then: keys with an underscore or a family's colon never reach a person
    parser = VisibleText()
    parser.feed(html)
    titles = figure_texts(html)
    shown = "\n".join(parser.parts + titles)
    assert (
        len(titles) > 30
        and "ROC AUC per day" in titles
        and "Revenue per labelled prediction per day" in shown
    )
    keys = [m.key for m in METRICS if "_" in m.key] + ["value:", "value_sum:", "drift:"]
    assert [key for key in keys if key in shown] == []
