from __future__ import annotations

import copy

import pytest

from tests.factory.conftest import register

PROFILE = {
    "format": "canary-profile/1",
    "rows": 5,
    "features": {
        "age": {
            "kind": "numerical",
            "edges": [20.0, 30.0, 40.0],
            "counts": [1, 1, 2, 1],
            "at_edges": [1, 1, 2],
            "sums": [20.0, 30.0, 80.0, 55.0],
            "sum_sq": 7525.0,
            "missing": 0,
            "deciles": [20.0, 30.0, 40.0],
        },
        "plan": {"kind": "categorical", "counts": {"basic": 3, "pro": 2}, "missing": 0},
    },
    "score": None,
    "prediction": {"kind": "categorical", "counts": {"1": 2, "0": 3}, "missing": 0},
}


def test_a_profile_is_stored_as_sent(factory_writer):
    answer = register(factory_writer, "1.0.0", reference=PROFILE)
    assert answer.status_code == 201, answer.json()
    detail = factory_writer.get("/api/v1/models/churn/versions/1.0.0").json()
    assert detail["reference"] == PROFILE


def test_reference_rows_are_stored_as_sent(factory_writer):
    rows = {"rows": [{"features": {"age": 31, "plan": "pro"}, "prediction": 1, "score": 0.7}]}
    assert register(factory_writer, "1.0.0", reference=rows).status_code == 201
    assert factory_writer.get("/api/v1/models/churn/versions/1.0.0").json()["reference"] == rows


def broken(path: str, value):
    profile = copy.deepcopy(PROFILE)
    *parents, last = path.split(".")
    target = profile
    for part in parents:
        target = target[part]
    target[last] = value
    return profile


@pytest.mark.parametrize(
    ("reference", "field"),
    [
        (broken("features.age.counts", [1, 1, 2]), "reference.features.age.counts"),
        (broken("features.age.at_edges", [1, 1, 9]), "reference.features.age.at_edges"),
        (broken("features.age.edges", [30.0, 20.0, 40.0]), "reference.features.age.edges"),
        (broken("features.age.counts", [1, -1, 2, 1]), "reference.features.age.counts[1]"),
        (broken("features.age.deciles", [25.0]), "reference.features.age.deciles"),
        (broken("features.plan.counts", {"basic": -3}), "reference.features.plan.counts.basic"),
        (broken("features.plan.kind", "text"), "reference.features.plan.kind"),
        (broken("format", "canary-profile/9"), "reference.format"),
        (broken("rows", -1), "reference.rows"),
        ({"rows": []}, "reference.rows"),
        ({"rows": [{"score": 2}]}, "reference.rows[0].score"),
        ({"rows": [{"features": {"age": [1]}}]}, "reference.rows[0].features"),
    ],
)
def test_a_malformed_reference_is_refused_with_where(factory_writer, reference, field):
    answer = register(factory_writer, "1.0.0", reference=reference)
    assert answer.status_code == 400
    assert field in [e["field"] for e in answer.json()["errors"]], answer.json()
