"""The factory's pages, as a logged-in user sees them."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from scipy.stats import ks_2samp
from sklearn.metrics import roc_auc_score

from factory.models import MLModel
from factory.rollouts import rollout_create
from factory.services import version_register
from monitoring.ingest.services import records_ingest
from monitoring.jobs import jobs_run
from monitoring.metrics.registry import metric_label
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
        model=deployed,
        kind="predictions",
        enqueue_jobs=False,
        records=[prediction(i, model_version="2.0.0") for i in range(10)],
    )
    records_ingest(
        model=deployed,
        kind="outcomes",
        enqueue_jobs=False,
        records=[outcome(i, outcome=int(i < 8)) for i in range(10)],
    )
    jobs_run(model_id=deployed.pk, now=NOW)
    page = browser.get("/models/churn/versions/2.0.0/").content.decode()
    comparison = page[
        page.index('id="comparison"') : page.index("</table>", page.index('id="comparison"'))
    ]
    assert f"{metric_label('accuracy')}</td><td>0.9000</td>" in comparison
    assert "0.8000" in comparison and "n=10" in comparison
    # roc_auc is measured in production too: every score is 0.8, so sklearn says 0.5
    production_auc = roc_auc_score([int(i < 8) for i in range(10)], [0.8] * 10)
    auc = metric_label("roc_auc")
    assert f"{auc}</td><td>0.8100</td>\n      <td>{production_auc:.4f}" in comparison
    reference = page[page.index('id="reference"') :]
    assert "age" in reference and "mean 37.000, sd 11.662" in reference and "basic: 3" in reference


def test_versions_list_marks_versions_without_lineage(browser, deployed):
    records_ingest(
        model=deployed,
        kind="predictions",
        enqueue_jobs=False,
        records=[prediction(1, model_version="0.5.0")],
    )
    page = browser.get("/models/churn/versions/").content.decode()
    assert page.count("no lineage") == 1 and "0.5.0" in page and "profile" in page


def test_rollout_timeline_retrain_and_audit_pages(browser, deployed):
    rollouts = browser.get("/models/churn/rollouts/").content.decode()
    assert "2.0.0 20%" in rollouts and "1.0.0 80%" in rollouts and "1.0.0 100%" in rollouts
    assert "user:ana" in rollouts and "try" in rollouts
    assert browser.get("/models/churn/retrain/").status_code == 200
    audit = browser.get("/models/churn/audit/").content.decode()
    assert audit.count("Rollout create") == 2 and audit.count("Version register") == 2


def test_model_charts_carry_rollout_annotations(browser, deployed):
    page = browser.get("/models/churn/").content.decode()
    assert "rollout 2.0.0 20%" in page and "rollout 1.0.0 100%" in page
    assert MLModel.objects.count() == 1


def test_version_page_shows_current_data_against_the_registered_reference(browser, deployed):
    # given: 2.0.0 registered with a reference (ages 20, 30, 40, 40, 55; plan basic 3, pro 2),
    # and ten predictions, all aged 40 on the basic plan
    records_ingest(
        model=deployed,
        kind="predictions",
        enqueue_jobs=False,
        records=[prediction(i, model_version="2.0.0") for i in range(10)],
    )
    jobs_run(model_id=deployed.pk, now=NOW)
    # when
    page = browser.get("/models/churn/versions/2.0.0/").content.decode()
    # then: a small reference is tested with KS, as scipy computes it on the same values
    drift = page[page.index('id="drift"') : page.index("</table>", page.index('id="drift"'))]
    ks = ks_2samp([20, 30, 40, 40, 55], [40] * 10)
    age = drift[drift.index("<td>age</td>") : drift.index("</tr>", drift.index("<td>age</td>"))]
    assert "<td>Kolmogorov-Smirnov</td>" in age and f"<td>{ks.statistic:.4f}</td>" in age
    assert f"<td>{ks.pvalue:.4f}</td>" in age
    assert "the registered reference" in page and "(5 rows)" in page
    assert "<td>plan</td>" in drift


def test_a_category_the_reference_never_had_is_explained_not_printed_as_infinity(
    browser, deployed, client_with
):
    # given: the 2.0.0 reference knows plans basic and pro; ten predictions are on "gold"
    features = {"age": 40, "plan": "gold"}
    records = [prediction(i, model_version="2.0.0", features=features) for i in range(10)]
    records_ingest(model=deployed, kind="predictions", enqueue_jobs=False, records=records)
    jobs_run(model_id=deployed.pk, now=NOW)
    note = "categories the reference never had: the statistic is infinite"
    # when
    body = client_with("read").get("/api/v1/models/churn/drift", {"version": "2.0.0"}).json()
    page = browser.get("/models/churn/versions/2.0.0/").content.decode()
    # then: chi-square against an expected count of 0 is infinite; the API says null and why
    plan = next(f for f in body["features"] if f["name"] == "plan")
    assert plan["method"] == "chisquare" and plan["statistic"] is None
    assert plan["p_value"] == 0.0 and plan["drifted"] is True and plan["note"] == note
    # and the page shows a dash where the number would be, never "inf"
    drift = page[page.index('id="drift"') : page.index("</table>", page.index('id="drift"'))]
    row = drift[drift.index("<td>plan</td>") : drift.index("</tr>", drift.index("<td>plan</td>"))]
    assert "<td>chi-square</td><td>\N{EN DASH}</td>" in row and "inf" not in row.lower()
