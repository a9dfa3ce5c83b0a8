from __future__ import annotations

import copy

import pytest

LINEAGE = {
    "training_data": {
        "uri": "s3://bucket/churn/2026-02.parquet",
        "sha256": "a" * 64,
        "rows": 120000,
        "start": "2026-01-01T00:00:00Z",
        "end": "2026-02-01T00:00:00Z",
    },
    "code_version": "git:4f2a9c1",
    "parameters": {"max_depth": 6, "learning_rate": 0.1},
    "validation": {"scheme": "kfold", "k": 5, "metrics": {"roc_auc": 0.81, "accuracy": 0.77}},
    "compute": {"instance": "m5.xlarge", "duration_s": 1800},
}


def lineage(**metrics) -> dict:
    """The sample lineage, with held-out metrics overridden."""
    body = copy.deepcopy(LINEAGE)
    body["validation"]["metrics"].update(metrics)
    return body


@pytest.fixture
def factory_writer(client_with, model):
    return client_with("factory:write", "read", "predictions:write", "outcomes:write")


def register(client, version: str, body_lineage: dict | None = None, reference=None, model="churn"):
    body = {"version": version, "lineage": body_lineage or LINEAGE}
    if reference is not None:
        body["reference"] = reference
    return client.post(f"/api/v1/models/{model}/versions", body, format="json")
