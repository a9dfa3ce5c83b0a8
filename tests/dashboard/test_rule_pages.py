"""Editing and deleting alert rules from the dashboard; the noise warning on the form."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from monitoring.ingest.services import records_ingest
from monitoring.jobs import jobs_run
from monitoring.models import Alert, AlertRule
from tests.conftest import outcome, prediction

pytestmark = pytest.mark.django_db
XSS = "<script>alert(1)</script>"


@pytest.fixture
def rule(model):
    return AlertRule.objects.create(
        model=model, metric="accuracy", kind="static", lower=0.8, min_count=10
    )


@pytest.fixture
def labelled_days(model):
    """Ten days of 60 labelled predictions a day, two thirds correct."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    records, labels = [], []
    for i in range(600):
        at = today - timedelta(days=1 + i // 60, minutes=i % 60)
        records.append(prediction(i, at=at, segment=XSS))
        labels.append(outcome(i, at=at + timedelta(hours=1), outcome=int(i % 3 > 0)))
    records_ingest(model=model, kind="predictions", records=records, enqueue_jobs=False)
    records_ingest(model=model, kind="outcomes", records=labels, enqueue_jobs=False)
    jobs_run(model_id=model.pk)
    return model


def edit_url(rule: AlertRule) -> str:
    return f"/models/churn/rules/{rule.pk}/"


def form(**changes) -> dict:
    body = {
        "metric": "accuracy",
        "kind": "static",
        "lower": "0.8",
        "upper": "",
        "k": "",
        "percent": "",
        "min_count": "10",
        "granularity": "day",
        "severity": "warning",
        "sides": "both",
        "segment": "__all__",
        "version": "",
        "baseline_version": "",
        "recipients": "",
    }
    return {**body, **changes}


def test_an_editor_edits_a_rule(rule, editor):
    html = editor.get(edit_url(rule)).content.decode()
    assert 'name="lower" value="0.8"' in html
    response = editor.post(
        edit_url(rule),
        form(
            lower="", upper="0.95", severity="critical", recipients="a@example.com, b@example.com"
        ),
    )
    assert response.status_code == 302 and response["Location"] == edit_url(rule)
    rule.refresh_from_db()
    assert (rule.lower, rule.upper, rule.severity) == (None, 0.95, "critical")
    assert rule.recipients == ["a@example.com", "b@example.com"] and rule.segment is None
    assert f"Rule #{rule.pk} saved" in editor.get(edit_url(rule)).content.decode()


def test_a_bad_edit_says_why_and_changes_nothing(rule, editor):
    response = editor.post(edit_url(rule), form(lower="0.9", upper="0.1"))
    assert response.status_code == 400
    assert "must be greater than lower" in response.content.decode()
    band = editor.post(edit_url(rule), form(kind="band", k=""))
    assert band.status_code == 400 and "band rules need k &gt; 0" in band.content.decode()
    emails = editor.post(edit_url(rule), form(recipients="not-an-address"))
    assert emails.status_code == 400 and "recipients" in emails.content.decode()
    rule.refresh_from_db()
    assert (rule.kind, rule.lower, rule.upper) == ("static", 0.8, None)


def test_the_empty_segment_is_a_segment_and_all_is_none(rule, editor):
    editor.post(edit_url(rule), form(segment=""))
    rule.refresh_from_db()
    assert rule.segment == ""
    editor.post(edit_url(rule), form(segment="__all__"))
    rule.refresh_from_db()
    assert rule.segment is None


def test_a_band_narrower_than_the_mde_is_flagged_as_on_the_api(labelled_days, editor):
    rule = AlertRule.objects.create(
        model=labelled_days, metric="accuracy", kind="band", k=4, min_count=10
    )
    assert "will fire on noise" not in editor.get(edit_url(rule)).content.decode()
    editor.post(edit_url(rule), form(kind="band", k="0.2", lower=""))
    api = editor.get(f"/api/v1/models/churn/alert-rules/{rule.pk}").json()
    (warning,) = api["warnings"]
    assert warning.startswith("this rule will fire on noise")
    html = editor.get(edit_url(rule)).content.decode()
    # the page says the same, naming the metric in words rather than by its key
    assert "effect of accuracy (" in warning
    assert f"⚠ {warning.replace('effect of accuracy', 'effect of Accuracy')}" in html
    assert "will fire on noise" in editor.get("/models/churn/").content.decode()


def test_an_editor_deletes_a_rule_with_its_alerts(rule, editor):
    from django.utils import timezone

    now = timezone.now()
    Alert.objects.create(
        rule=rule,
        model=rule.model,
        state="firing",
        direction="too_low",
        window_start=now,
        window_end=now,
        started_at=now,
    )
    assert "rule-delete" in editor.get(edit_url(rule)).content.decode()
    response = editor.post(f"{edit_url(rule)}delete")
    assert response.status_code == 302 and response["Location"] == "/models/churn/#rules"
    assert not AlertRule.objects.exists() and not Alert.objects.exists()
    assert f"Rule #{rule.pk} deleted" in editor.get("/models/churn/").content.decode()


def test_the_model_page_links_each_rule_to_its_form_for_editors_only(rule, editor, viewer):
    assert f'href="{edit_url(rule)}"' in editor.get("/models/churn/").content.decode()
    assert f'href="{edit_url(rule)}"' not in viewer.get("/models/churn/").content.decode()


def test_a_viewer_can_neither_edit_nor_delete(rule, viewer):
    calls = [
        viewer.get(edit_url(rule)),
        viewer.post(edit_url(rule), form(lower="0.1")),
        viewer.post(f"{edit_url(rule)}delete"),
    ]
    assert [c.status_code for c in calls] == [403, 403, 403]
    rule.refresh_from_db()
    assert rule.lower == 0.8


def test_another_models_rule_is_not_found(rule, editor):
    from factory.services import model_create

    model_create(name="other", task="regression")
    assert editor.get(f"/models/other/rules/{rule.pk}/").status_code == 404
    assert editor.post(f"/models/other/rules/{rule.pk}/delete").status_code == 404
    assert AlertRule.objects.filter(pk=rule.pk).exists()


def test_segment_names_are_escaped_on_the_form(labelled_days, editor):
    rule = AlertRule.objects.create(
        model=labelled_days, metric="accuracy", kind="static", lower=0.5, segment=XSS
    )
    html = editor.get(edit_url(rule)).content.decode()
    assert XSS not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_an_editor_creates_a_rule_of_any_kind_and_a_viewer_cannot(model, editor, viewer):
    # given: the model page links to the form of a new rule
    assert "/models/churn/rules/new" in editor.get("/models/churn/").content.decode()
    assert 'name="kind"' in editor.get("/models/churn/rules/new").content.decode()
    # when: a band rule without k, then a good one
    bad = editor.post("/models/churn/rules/new", form(kind="band", lower=""))
    response = editor.post(
        "/models/churn/rules/new", form(kind="band", lower="", k="3", metric="positive_rate")
    )
    # then: the bad one says why and stores nothing; the good one is stored and shown
    assert bad.status_code == 400 and "band rules need k &gt; 0" in bad.content.decode()
    created = AlertRule.objects.get(model=model, kind="band", metric="positive_rate")
    assert created.k == 3 and response["Location"] == edit_url(created)
    assert f"Rule #{created.pk} saved" in editor.get(edit_url(created)).content.decode()
    assert viewer.get("/models/churn/rules/new").status_code == 403
    refused = viewer.post("/models/churn/rules/new", form(kind="band", k="3"))
    assert refused.status_code == 403
    assert not AlertRule.objects.filter(model=model, kind="band", metric="accuracy").exists()


def check(client, **changes) -> dict:
    return client.get("/models/churn/rules/check", form(**changes)).json()


def test_the_check_weighs_a_rule_before_it_is_saved(labelled_days, editor):
    # given: ten days of 60 labelled predictions; when a band rule is checked, not saved
    wide = check(editor, kind="band", k="4", lower="", baseline_windows="5")
    narrow = check(editor, kind="band", k="0.2", lower="", baseline_windows="5")
    # then both say the rule in words and its minimum detectable effect, the same effect
    assert wide["errors"] == {} and wide["warnings"] == []
    assert wide["words"].startswith("This rule fires when Accuracy leaves the mean of the last 5")
    assert "With about 60 observations per day" in wide["sensitivity"]
    assert wide["effect"] == pytest.approx(narrow["effect"])
    # the band reacts to k standard errors: 4 of them are beyond the effect, 0.2 within it
    assert wide["reacts_to"] == pytest.approx(narrow["reacts_to"] * 20)
    assert wide["reacts_to"] > wide["effect"] > narrow["reacts_to"]
    (warning,) = narrow["warnings"]
    assert warning.startswith("this rule will fire on noise") and "of Accuracy" in warning
    # and the warning is the one the API gives the rule once saved
    saved = editor.post("/models/churn/rules/new", form(kind="band", k="0.2", baseline_windows="5"))
    assert saved.status_code == 302
    rule = AlertRule.objects.get(kind="band")
    api = editor.get(f"/api/v1/models/churn/alert-rules/{rule.pk}").json()
    assert api["warnings"] == [warning.replace("of Accuracy", "of accuracy")]


def test_the_check_saves_nothing_and_says_what_is_wrong_by_field(rule, editor):
    answer = editor.get(f"/models/churn/rules/{rule.pk}/check", form(lower="0.9", upper="0.1"))
    assert answer.status_code == 200
    assert answer.json()["errors"] == {"upper": ["must be greater than lower"]}
    band = check(editor, kind="band", k="")
    assert band["errors"] == {"k": ["band rules need k > 0"]} and band["words"] == ""
    rule.refresh_from_db()
    assert (rule.lower, rule.upper) == (0.8, None)
    no_data = check(editor, kind="no_data", metric="predictions", min_count="50")
    assert no_data["words"] == "This rule fires when a day has fewer than 50 Predictions."
    assert "there is no noise to weigh" in no_data["sensitivity"]


def test_the_check_is_for_editors(rule, viewer):
    assert viewer.get(f"/models/churn/rules/{rule.pk}/check", form()).status_code == 403


def test_a_rule_turned_to_another_kind_keeps_none_of_the_old_kinds_fields(rule, editor):
    # given: a static rule with a lower bound; when it becomes a relative rule
    response = editor.post(edit_url(rule), form(kind="relative", percent="10"))
    # then its bound is gone, and back to a band: its percent and baseline version too
    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.kind, rule.lower, rule.percent) == ("relative", None, 10.0)
    editor.post(edit_url(rule), form(kind="band", k="3", percent="10", baseline_version="1.0.0"))
    rule.refresh_from_db()
    assert (rule.kind, rule.k, rule.percent, rule.baseline_version) == ("band", 3.0, None, None)


def test_the_form_reads_in_words_and_marks_each_field_with_its_kinds(rule, editor):
    html = editor.get(edit_url(rule)).content.decode()
    for words in ("Fixed bounds", "Band around the recent mean", "Too little data"):
        assert f">{words}</option>" in html
    assert ">Only too low</option>" in html and ">Critical</option>" in html
    visible = re.sub(r"<[^>]+>", " ", html)
    assert "too_low" not in visible and "no_data" not in visible and "__all__" not in visible
    assert 'data-kinds="static">Lower bound' in html
    assert 'data-kinds="band relative">Fires when' in html
    assert "Fires when the metric crosses a line you set." in html  # the chosen kind's help


def test_the_rule_form_offers_estimates_and_gaps_in_words(rule, editor):
    html = editor.get(edit_url(rule)).content.decode()
    assert '<option value="estimated:roc_auc">Estimated ROC AUC</option>' in html
    assert "Accuracy: realised minus estimated" in html
