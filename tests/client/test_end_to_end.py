"""The issue's "done when", from the client library against a running server."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from canary_client import CanaryClient, reference_profile
from scipy import stats

from accounts.services import api_key_create
from factory.models import RetrainRequest
from factory.retrain_delivery import retrain_requests_deliver
from monitoring.jobs import jobs_run
from tests.factory.conftest import lineage
from tests.factory.test_retrain import Hook, webhook  # noqa: F401 (fixture)

DAY = datetime(2026, 3, 2, tzinfo=UTC)
SEGMENTS = ("web-1", "web-2", "web-3")


def test_register_promote_canary_compare_and_retrain(live_server, transactional_db, webhook):  # noqa: F811
    hook, hook_url = webhook
    key = api_key_create(
        name="pipeline", scopes=["factory:write", "read", "predictions:write", "outcomes:write"]
    )
    canary = CanaryClient(live_server.url, key, batch_size=250)
    canary.request(
        "POST",
        "/api/v1/models",
        {"name": "churn", "task": "binary_classification", "positive_class": 1},
    )
    canary.request(
        "PUT", "/api/v1/models/churn/retrain-settings", {"retrain_webhook_url": hook_url}
    )

    # register two versions with lineage; the candidate carries a reference profile
    rng = np.random.default_rng(1)
    train = pd.DataFrame({"age": rng.normal(40, 10, 2000), "plan": rng.choice(["a", "b"], 2000)})
    train["score"] = rng.uniform(0, 1, 2000)
    train["prediction"] = (train["score"] > 0.5).astype(int)
    canary.register_version("churn", "1.0.0", lineage(roc_auc=0.80))
    registered = canary.register_version(
        "churn", "2.0.0", lineage(roc_auc=0.86), reference=reference_profile(train)
    )
    assert registered["reference"]["format"] == "canary-profile/1"
    canary.register_version("churn", "2026/03", lineage(roc_auc=0.70))  # a "/" in the name
    assert canary.version("churn", "2026/03")["lineage"]["validation"]["metrics"]["roc_auc"] == 0.7

    # promote through the gates: production for 1.0.0, then a 20% canary of 2.0.0 on two segments
    gates = {"canary": {"roc_auc": 0.85}, "production": {"roc_auc": 0.78}}
    canary.set_gates("churn", **gates)
    canary.rollout("churn", "1.0.0", 100, note="baseline in production")
    plan = canary.rollout("churn", "2.0.0", 20, segments=["web-1", "web-2"], note="canary")
    assert plan["traffic_percent"] == 20

    # the model server asks where each request goes, and logs what it decided
    predictions, outcomes, truth = [], [], {"1.0.0": [], "2.0.0": []}
    rnd = random.Random(3)
    for i in range(600):
        segment = SEGMENTS[i % 3]
        version = canary.routing("churn", segment=segment, prediction_id=f"p{i}")["version"]
        correct = rnd.random() < (0.9 if version == "2.0.0" else 0.7)
        predicted = rnd.randint(0, 1)
        at = DAY + timedelta(minutes=i)
        predictions.append(
            {
                "prediction_id": f"p{i}",
                "timestamp": at.isoformat(),
                "model_version": version,
                "prediction": predicted,
                "segment": segment,
                "score": 0.5,
                "features": {"age": 30 + i % 20, "plan": "a"},
            }
        )
        observed_at = (at + timedelta(days=1)).isoformat()
        outcome = predicted if correct else 1 - predicted
        outcomes.append({"prediction_id": f"p{i}", "observed_at": observed_at, "outcome": outcome})
        truth[version].append(correct)
    assert canary.log_predictions("churn", predictions)["accepted"] == 600
    assert canary.log_outcomes("churn", outcomes)["accepted"] == 600
    share = len(truth["2.0.0"]) / 400  # of web-1 and web-2
    assert 0.12 < share < 0.28

    # the canary compared with production through the compare endpoint, over the same window
    from factory.models import MLModel

    model = MLModel.objects.get(name="churn")
    jobs_run(model_id=model.pk, now=DAY + timedelta(days=3))
    compared = canary.compare(
        "churn",
        "accuracy",
        baseline="1.0.0",
        candidate="2.0.0",
        start=DAY.isoformat(),
        end=(DAY + timedelta(days=1)).isoformat(),
    )
    # checked against SciPy on the same rows: the 2x2 table of version by correct/wrong
    k = {v: sum(truth[v]) for v in truth}
    n = {v: len(truth[v]) for v in truth}
    p = {v: k[v] / n[v] for v in truth}
    assert compared["baseline"]["n"] == n["1.0.0"] and compared["candidate"]["n"] == n["2.0.0"]
    assert compared["baseline"]["value"] == pytest.approx(p["1.0.0"], rel=1e-12)
    assert compared["candidate"]["value"] == pytest.approx(p["2.0.0"], rel=1e-12)
    difference = p["2.0.0"] - p["1.0.0"]
    assert compared["difference"] == pytest.approx(difference, rel=1e-12)
    z = stats.norm.ppf(0.975)
    se = math.sqrt(sum(p[v] * (1 - p[v]) / n[v] for v in truth))  # Wald, unpooled
    assert compared["ci_low"] == pytest.approx(difference - z * se, rel=1e-9)
    assert compared["ci_high"] == pytest.approx(difference + z * se, rel=1e-9)
    table = [[k[v], n[v] - k[v]] for v in ("1.0.0", "2.0.0")]
    _, p_value, _, _ = stats.chi2_contingency(table, correction=False)
    assert compared["p_value"] == pytest.approx(p_value, rel=1e-6)
    # 0.9 against 0.7 over ~80 canary rows: a real improvement, bigger than the noise
    assert compared["ci_low"] > 0 and compared["powered"] is True

    # a static rule that requests retraining fires on the production version's accuracy
    rule = canary.request(
        "POST",
        "/api/v1/models/churn/alert-rules",
        {
            "metric": "accuracy",
            "kind": "static",
            "lower": 0.75,
            "version": "1.0.0",
            "min_count": 100,
            "granularity": "day",
            "requests_retrain": True,
        },
    )
    assert rule["requests_retrain"] is True
    jobs_run(model_id=model.pk, now=DAY + timedelta(days=1, hours=1))
    jobs_run(model_id=model.pk, now=DAY + timedelta(days=1, hours=2))  # still firing: no second
    retrain_requests_deliver()
    (request,) = canary.request("GET", "/api/v1/models/churn/retrain-requests")
    assert request["status"] == "delivered" and request["metric"] == "accuracy"
    assert request["manifest"]["version"] == "1.0.0"
    assert len(hook.received) == 1
    assert hook.received[0]["lineage"]["validation"]["metrics"]["roc_auc"] == 0.80
    assert RetrainRequest.objects.count() == 1
    detail = canary.request("GET", "/api/v1/models/churn")
    assert [r["note"] for r in detail["rollouts"]] == ["baseline in production", "canary"]

    # and the canary can be rolled back from the client
    canary.rollback("churn", note="enough data")
    assert canary.routing("churn", segment="web-1", prediction_id="p1")["routes"] == [
        {"version": "1.0.0", "share": 1.0, "parameters": {}}
    ]
