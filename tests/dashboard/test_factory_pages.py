"""The factory's pages, as a logged-in user sees them."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from factory.models import MLModel
from factory.rollouts import rollout_create
from factory.services import version_register
from monitoring.ingest.services import records_ingest
from monitoring.jobs import jobs_run
from tests.conftest import NOW, outcome, prediction
from tests.factory.conftest import LINEAGE, lineage
from tests.factory.test_reference import PROFILE


@pytest.fixture
def browser(client, db):
    client.force_login(User.objects.create_user("ana"))
    return client


@pytest.fixture
def deployed(model):
    v1 = version_register(model=model, version="1.0.0", lineage=LINEAGE).version
    v2 = version_register(
        model=model, version="2.0.0", lineage=lineage(accuracy=0.9), reference=PROFILE
    ).version
    rollout_create(model=model, version=v1, traffic_percent=100, note="first", actor="user:ana")
    rollout_create(model=model, version=v2, traffic_percent=20, segments=["web-1"], note="try")
    return model


def test_version_page_sets_held_out_metrics_beside_production(browser, deployed):
    # 10 predictions of 2.0.0, 8 right: accuracy 0.8 in production against 0.9 held out
    records_ingest(
        model=deployed, kind="predictions", enqueue_jobs=False,
        records=[prediction(i, model_version="2.0.0") for i in range(10)],
    )  # fmt: skip
    records_ingest(
        model=deployed, kind="outcomes", enqueue_jobs=False,
        records=[outcome(i, outcome=int(i < 8)) for i in range(10)],
    )  # fmt: skip
    jobs_run(model_id=deployed.pk, now=NOW)
    page = browser.get("/models/churn/versions/2.0.0/").content.decode()
    comparison = page[
        page.index('id="comparison"') : page.index("</table>", page.index('id="comparison"'))
    ]
    assert "accuracy</td><td>0.9000</td>" in comparison
    assert "0.8000" in comparison and "n=10" in comparison
    assert "roc_auc" in comparison and "not measured in production" in comparison
    reference = page[page.index('id="reference"') :]
    assert "age" in reference and "mean 37.000, sd 11.662" in reference and "basic: 3" in reference


def test_versions_list_marks_versions_without_lineage(browser, deployed):
    records_ingest(
        model=deployed, kind="predictions", enqueue_jobs=False,
        records=[prediction(1, model_version="0.5.0")],
    )  # fmt: skip
    page = browser.get("/models/churn/versions/").content.decode()
    assert page.count("no lineage") == 1 and "0.5.0" in page and "profile" in page


def test_rollout_timeline_retrain_and_audit_pages(browser, deployed):
    rollouts = browser.get("/models/churn/rollouts/").content.decode()
    assert "2.0.0 20%" in rollouts and "1.0.0 80%" in rollouts and "1.0.0 100%" in rollouts
    assert "user:ana" in rollouts and "try" in rollouts
    assert browser.get("/models/churn/retrain/").status_code == 200
    audit = browser.get("/models/churn/audit/").content.decode()
    assert audit.count("rollout.create") == 2 and audit.count("version.register") == 2


def test_model_charts_carry_rollout_annotations(browser, deployed):
    page = browser.get("/models/churn/").content.decode()
    assert "rollout 2.0.0 20%" in page and "rollout 1.0.0 100%" in page
    assert MLModel.objects.count() == 1
