from __future__ import annotations

import json
import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils.html import escape

from factory.models import AuditEntry, ModelVersion
from tests.conftest import need_service, prediction
from tests.factory.conftest import LINEAGE, lineage, register


def test_registering_a_version_stores_its_lineage_and_answers_201(factory_writer):
    answer = register(factory_writer, "1.3.0")
    assert answer.status_code == 201, answer.json()
    assert answer.json()["has_lineage"] is True
    assert answer.json()["lineage"] == LINEAGE
    listed = factory_writer.get("/api/v1/models/churn/versions").json()
    assert [(v["version"], v["has_lineage"]) for v in listed] == [("1.3.0", True)]
    detail = factory_writer.get("/api/v1/models/churn/versions/1.3.0").json()
    assert detail["lineage"]["training_data"]["sha256"] == "a" * 64


def test_same_body_again_is_200_and_another_body_is_409(factory_writer):
    assert register(factory_writer, "1.3.0").status_code == 201
    # the same content with keys in another order is the same body
    reordered = json.loads(json.dumps(LINEAGE, sort_keys=True))
    assert register(factory_writer, "1.3.0", dict(reversed(reordered.items()))).status_code == 200
    conflict = register(factory_writer, "1.3.0", lineage(roc_auc=0.99))
    assert conflict.status_code == 409
    assert "immutable" in conflict.json()["detail"]
    version = ModelVersion.objects.get(version="1.3.0")
    assert version.lineage["validation"]["metrics"]["roc_auc"] == 0.81


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: b.pop("code_version"), "lineage.code_version"),
        (lambda b: b["training_data"].update(sha256="xyz"), "lineage.training_data.sha256"),
        (lambda b: b["training_data"].update(rows=0), "lineage.training_data.rows"),
        (
            lambda b: b["training_data"].update(start="2026-01-01T00:00:00"),
            "lineage.training_data.start",
        ),
        (
            lambda b: b["training_data"].update(end="2025-01-01T00:00:00Z"),
            "lineage.training_data.end",
        ),
        (lambda b: b["validation"].pop("k"), "lineage.validation.k"),
        (lambda b: b["validation"].update(metrics={"auc": "high"}), "lineage.validation.metrics"),
        (lambda b: b.update(compute={}), "lineage.compute"),
    ],
)
def test_a_malformed_lineage_is_refused_with_the_field_that_is_wrong(factory_writer, change, field):
    body = lineage()
    change(body)
    answer = register(factory_writer, "2.0.0", body)
    assert answer.status_code == 400
    assert answer["Content-Type"] == "application/problem+json"
    assert field in [e["field"] for e in answer.json()["errors"]], answer.json()
    assert not ModelVersion.objects.filter(version="2.0.0").exists()


def test_a_version_first_seen_in_logs_shows_no_lineage_until_registered(factory_writer):
    # given a version the model server logged before anyone registered it
    answer = factory_writer.post(
        "/api/v1/models/churn/predictions",
        {"records": [prediction(1, model_version="0.9.0")]},
        format="json",
    )
    assert answer.json()["accepted"] == 1
    listed = factory_writer.get("/api/v1/models/churn/versions").json()
    assert [(v["version"], v["has_lineage"]) for v in listed] == [("0.9.0", False)]
    # when its lineage is registered, it attaches to the same row
    assert register(factory_writer, "0.9.0").status_code == 201
    # then it is immutable like any other
    assert register(factory_writer, "0.9.0").status_code == 200
    assert register(factory_writer, "0.9.0", lineage(roc_auc=0.5)).status_code == 409
    assert ModelVersion.objects.filter(version="0.9.0").count() == 1
    actions = list(AuditEntry.objects.values_list("action", flat=True))
    assert "version.attach_lineage" in actions


def test_registration_needs_the_factory_scope(client_with, model):
    reader = client_with("read")
    assert register(reader, "1.0.0").status_code == 403


def test_register_version_command(model, tmp_path):
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"version": "1.4.0", "lineage": LINEAGE}))
    call_command("register_version", "churn", str(manifest))
    assert ModelVersion.objects.get(version="1.4.0").has_lineage
    manifest.write_text(json.dumps({"version": "1.4.0", "lineage": lineage(roc_auc=0.1)}))
    with pytest.raises(CommandError, match="immutable"):
        call_command("register_version", "churn", str(manifest))
    manifest.write_text(json.dumps({"version": "1.5.0", "lineage": {"code_version": "x"}}))
    with pytest.raises(CommandError, match=r"lineage\.training_data"):
        call_command("register_version", "churn", str(manifest))


@pytest.mark.django_db(transaction=True)
def test_concurrent_registrations_of_one_version_leave_one_body(client_with):
    need_service("PostgreSQL", connection.vendor == "postgresql")
    from factory.services import model_create

    model_create(name="churn", task="binary_classification", positive_class=1)
    bodies = [lineage(roc_auc=0.80 + i / 1000) for i in range(4)] * 2
    answers: list[int] = []
    barrier = threading.Barrier(len(bodies))

    def post(body):
        from django.db import connections

        client = client_with("factory:write")
        barrier.wait()
        answers.append(register(client, "3.0.0", body).status_code)
        connections.close_all()

    threads = [threading.Thread(target=post, args=(b,)) for b in bodies]
    [t.start() for t in threads]
    [t.join() for t in threads]
    # then exactly one body won; its twin got 200, the others 409
    assert sorted(answers).count(201) == 1
    assert sorted(answers).count(200) == 1
    assert sorted(answers).count(409) == 6
    assert ModelVersion.objects.filter(version="3.0.0").count() == 1


@pytest.mark.parametrize("name", ["2026/03", "nightly/2026-03-01/rc 1", "v2?beta#3"])
def test_a_version_name_with_slashes_or_reserved_characters_has_working_urls(factory_writer, name):
    from urllib.parse import quote

    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.urls import reverse

    from accounts.roles import Role, user_role_set

    # given: a version registered under a name a URL would split or cut
    assert register(factory_writer, name).status_code == 201
    # then: the API addresses it, percent-encoded as any client would
    detail = factory_writer.get(f"/api/v1/models/churn/versions/{quote(name, safe='/')}")
    assert detail.status_code == 200 and detail.json()["version"] == name
    assert factory_writer.get(reverse("api:version", args=["churn", name])).status_code == 200
    missing = factory_writer.get(f"/api/v1/models/churn/versions/{quote(name + '/x', safe='/')}")
    assert missing.status_code == 404
    # and the pages: the versions list links to the version page, which shows it
    user = get_user_model().objects.create_user("viewer", password="a-long-password")
    user_role_set(user=user, role=Role.VIEWER)
    browser = Client()
    browser.force_login(user)
    page_url = reverse("dashboard:version", args=["churn", name])
    listing = browser.get(reverse("dashboard:versions", args=["churn"])).content.decode()
    assert f'href="{page_url}"' in listing
    page = browser.get(page_url)
    assert page.status_code == 200
    assert escape(name) in page.content.decode()
