"""Roles: a viewer reads everything and changes nothing; an editor changes rules."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client

from accounts.roles import Role, user_role
from monitoring.models import AlertRule

pytestmark = pytest.mark.django_db

PAGES = [
    "/",
    "/models/churn/",
    "/models/churn/business/",
    "/models/churn/business.csv",
    "/models/churn/rows/?labelled=no",
    "/models/churn/rows.csv",
    "/models/churn/rows.parquet",
    "/models/churn/quarantine/",
    "/models/churn/quarantine.csv",
    "/models/churn/compare/",
    "/alerts/",
]
RULE = {"metric": "accuracy", "kind": "static", "lower": 0.8}


def test_the_role_groups_exist_after_migrating():
    assert set(Group.objects.values_list("name", flat=True)) >= {"viewer", "editor", "admin"}


def test_roles_setup_command_gives_a_user_a_role(db):
    user = get_user_model().objects.create_user("ana", password="a-long-password")
    call_command("roles_setup", user="ana", role="editor")
    user.refresh_from_db()
    assert user_role(user) == Role.EDITOR


@pytest.mark.parametrize("url", PAGES)
def test_every_page_needs_a_login(model, url):
    response = Client().get(url)
    assert response.status_code == 302 and "/login/" in response["Location"]


@pytest.mark.parametrize("url", PAGES)
def test_a_viewer_reads_every_page(model, viewer, url):
    assert viewer.get(url).status_code == 200


def test_a_user_without_a_group_is_a_viewer(model):
    user = get_user_model().objects.create_user("nogroup", password="a-long-password")
    client = Client()
    client.force_login(user)
    assert client.get("/models/churn/").status_code == 200
    assert (
        client.post("/models/churn/rules/", {"metric": "accuracy", "lower": 0.8}).status_code == 403
    )


def test_a_viewer_cannot_create_a_rule_from_the_page(model, viewer):
    response = viewer.post("/models/churn/rules/", {"metric": "accuracy", "lower": "0.8"})
    assert response.status_code == 403
    assert not AlertRule.objects.exists()
    assert "rule-form" not in viewer.get("/models/churn/").content.decode()


def test_an_editor_creates_a_rule_from_the_page(model, editor):
    assert 'id="rule-form"' in editor.get("/models/churn/").content.decode()
    response = editor.post(
        "/models/churn/rules/", {"metric": "accuracy", "lower": "0.8", "min_count": "10"}
    )
    assert response.status_code == 302
    rule = AlertRule.objects.get()
    assert (rule.metric, rule.kind, rule.lower, rule.min_count) == ("accuracy", "static", 0.8, 10)
    assert f"Rule #{rule.pk} created" in editor.get("/models/churn/").content.decode()


def test_a_bad_rule_from_the_page_says_why(model, editor):
    editor.post("/models/churn/rules/", {"metric": "accuracy", "lower": "0.9", "upper": "0.1"})
    assert not AlertRule.objects.exists()
    assert "must be greater than lower" in editor.get("/models/churn/").content.decode()


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_page_urls_refuse_other_methods(model, viewer, method):
    assert getattr(viewer, method)("/models/churn/").status_code == 405


# The API's write endpoints, called with a dashboard session.


def test_a_viewer_session_cannot_write_through_the_api(model, viewer):
    rule = AlertRule.objects.create(model=model, **RULE)
    url = "/api/v1/models/churn/alert-rules"
    calls = [
        viewer.post(url, RULE, content_type="application/json"),
        viewer.patch(f"{url}/{rule.pk}", {"lower": 0.1}, content_type="application/json"),
        viewer.delete(f"{url}/{rule.pk}"),
        viewer.post("/api/v1/models", {"name": "x", "task": "regression"}, "application/json"),
        viewer.post("/api/v1/models/churn/predictions", [], content_type="application/json"),
        viewer.post("/api/v1/models/churn/outcomes", [], content_type="application/json"),
    ]
    assert [c.status_code for c in calls] == [403] * len(calls)
    assert "editor role" in calls[0].json()["detail"]
    rule.refresh_from_db()
    assert rule.lower == 0.8
    assert viewer.get(url).status_code == 200  # reading is fine


def test_an_editor_session_writes_rules_but_not_data(model, editor):
    url = "/api/v1/models/churn/alert-rules"
    created = editor.post(url, RULE, content_type="application/json")
    assert created.status_code == 201
    patched = editor.patch(
        f"{url}/{created.json()['id']}", {"lower": 0.7}, content_type="application/json"
    )
    assert patched.status_code == 200 and patched.json()["lower"] == 0.7
    assert editor.delete(f"{url}/{created.json()['id']}").status_code == 204
    ingest = editor.post("/api/v1/models/churn/predictions", [], content_type="application/json")
    assert ingest.status_code == 403


def test_api_keys_keep_their_scopes(model, client_with):
    reader = client_with("read")
    response = reader.post("/api/v1/models/churn/alert-rules", RULE, format="json")
    assert response.status_code == 403
    assert (
        client_with("factory:write")
        .post("/api/v1/models/churn/alert-rules", RULE, format="json")
        .status_code
        == 201
    )


@pytest.fixture
def open_alert(model):
    from django.utils import timezone

    from monitoring.models import Alert

    rule = AlertRule.objects.create(model=model, **RULE)
    now = timezone.now()
    return Alert.objects.create(
        rule=rule,
        model=model,
        state="firing",
        direction="too_low",
        value=0.5,
        window_start=now,
        window_end=now,
        started_at=now,
    )


def test_a_viewer_cannot_acknowledge_or_silence(open_alert, viewer):
    pk, rule = open_alert.pk, open_alert.rule
    until = "2999-01-01T00:00"
    calls = [
        viewer.post(f"/models/churn/alerts/{pk}/acknowledge"),
        viewer.post(f"/models/churn/alerts/{pk}/silence", {"until": until, "reason": "x"}),
        viewer.post(f"/api/v1/alerts/{pk}/acknowledge", {}, content_type="application/json"),
        viewer.post(
            f"/api/v1/alerts/{pk}/silence",
            {"until": "2999-01-01T00:00:00Z", "reason": "x"},
            content_type="application/json",
        ),
        viewer.post("/api/v1/models/churn/versions", {"version": "9"}, "application/json"),
        viewer.post("/api/v1/models/churn/rollouts", {"version": "9"}, "application/json"),
    ]
    assert [c.status_code for c in calls] == [403] * len(calls)
    open_alert.refresh_from_db()
    rule.refresh_from_db()
    assert open_alert.acknowledged_at is None and rule.silenced_until is None
    assert "Acknowledge</button>" not in viewer.get("/models/churn/").content.decode()


def test_an_editor_acknowledges_and_silences_from_the_page(open_alert, editor):
    pk = open_alert.pk
    assert "Acknowledge</button>" in editor.get("/models/churn/").content.decode()
    assert editor.post(f"/models/churn/alerts/{pk}/acknowledge").status_code == 302
    silence = {"until": "2999-01-01T00:00", "reason": "deploy"}
    assert editor.post(f"/models/churn/alerts/{pk}/silence", silence).status_code == 302
    open_alert.refresh_from_db()
    open_alert.rule.refresh_from_db()
    assert open_alert.acknowledged_by == "editor"
    assert open_alert.rule.silence_reason == "deploy"


def test_a_viewer_gets_403_on_every_change_a_page_offers(open_alert, viewer):
    """Every form of the dashboard, posted by a viewer: refused, and nothing changed."""
    from monitoring.ingest.services import records_ingest
    from monitoring.models import QuarantinedRecord

    records_ingest(
        model=open_alert.model,
        kind="predictions",
        records=[{"prediction_id": "x"}],
        enqueue_jobs=False,
    )
    record = QuarantinedRecord.objects.get()
    rule, alert = open_alert.rule, open_alert.pk
    changes = [
        ("/models/churn/rules/", {"metric": "accuracy", "lower": "0.5"}),
        (
            f"/models/churn/rules/{rule.pk}/",
            {"metric": "accuracy", "kind": "static", "lower": "0.1"},
        ),
        (f"/models/churn/rules/{rule.pk}/delete", {}),
        (f"/models/churn/alerts/{alert}/acknowledge", {}),
        (f"/models/churn/alerts/{alert}/silence", {"until": "2999-01-01T00:00", "reason": "x"}),
        (f"/models/churn/alerts/{alert}/unsilence", {}),
        (f"/models/churn/quarantine/{record.pk}/resubmit", {"record": '{"prediction_id": "x"}'}),
    ]
    assert [viewer.post(url, body).status_code for url, body in changes] == [403] * len(changes)
    assert viewer.get(f"/models/churn/rules/{rule.pk}/").status_code == 403  # an editor's form
    rule.refresh_from_db()
    open_alert.refresh_from_db()
    record.refresh_from_db()
    assert AlertRule.objects.count() == 1 and rule.lower == 0.8 and rule.silenced_until is None
    assert open_alert.acknowledged_at is None and record.resolved_at is None
    # Reading is fine.
    for url in (f"/models/churn/alerts/{alert}/", f"/models/churn/quarantine/{record.pk}/"):
        assert viewer.get(url).status_code == 200
