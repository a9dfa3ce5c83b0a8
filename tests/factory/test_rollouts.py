from __future__ import annotations

from collections import Counter

import pytest
from scipy.stats import binom

from factory import rollouts as plans
from factory.models import MLModel
from tests.factory.conftest import lineage, register


def rollout(client, version, percent, segments=(), note="", **extra):
    body = {
        "version": version,
        "traffic_percent": percent,
        "segments": list(segments),
        "note": note,
        **extra,
    }
    return client.post("/api/v1/models/churn/rollouts", body, format="json")


def route(client, segment, prediction_id):
    return client.get(
        "/api/v1/models/churn/routing", {"segment": segment, "prediction_id": prediction_id}
    )


@pytest.fixture
def two_versions(factory_writer):
    assert register(factory_writer, "1.0.0", lineage(roc_auc=0.80)).status_code == 201
    assert register(factory_writer, "2.0.0", lineage(roc_auc=0.84)).status_code == 201
    return factory_writer


def test_gates_refuse_a_version_below_the_minimum_and_say_which(two_versions):
    client = two_versions
    gates = {"canary": {"roc_auc": 0.75}, "production": {"roc_auc": 0.82, "accuracy": 0.7}}
    assert client.put("/api/v1/models/churn/gates", gates, format="json").status_code == 200
    # 1.0.0 passes the canary gate but not production's roc_auc
    assert rollout(client, "1.0.0", 100).status_code == 409
    refused = rollout(client, "1.0.0", 100).json()
    assert "production gate on roc_auc failed" in refused["detail"]
    assert [(e["gate"], e["metric"]) for e in refused["errors"]] == [("production", "roc_auc")]
    assert rollout(client, "2.0.0", 100).status_code == 201
    assert rollout(client, "1.0.0", 20, ["web-1"]).status_code == 201  # canary gate: 0.80 >= 0.75


def test_a_version_without_lineage_fails_any_gate(factory_writer):
    factory_writer.post(
        "/api/v1/models/churn/predictions",
        [
            {
                "prediction_id": "a",
                "timestamp": "2026-03-01T00:00:00Z",
                "model_version": "0.1",
                "prediction": 1,
            }
        ],
        format="json",
    )
    gates = {"production": {"roc_auc": 0.5}}
    factory_writer.put("/api/v1/models/churn/gates", gates, format="json")
    refused = rollout(factory_writer, "0.1", 100)
    assert refused.status_code == 409
    assert "no lineage" in refused.json()["detail"]


def test_routing_is_404_without_a_plan_and_a_partial_first_rollout_is_refused(two_versions):
    assert route(two_versions, "web-1", "x").status_code == 404
    refused = rollout(two_versions, "1.0.0", 20, ["web-1"])
    assert refused.status_code == 409
    assert "web-1" in refused.json()["detail"]
    assert rollout(two_versions, "1.0.0", 100, ["web-1"]).status_code == 201
    assert route(two_versions, "web-1", "x").json()["version"] == "1.0.0"
    assert route(two_versions, "web-9", "x").status_code == 404  # not in the plan


def test_a_canary_on_two_segments_gets_its_share_within_sampling_error(two_versions):
    client = two_versions
    assert rollout(client, "1.0.0", 100, parameters={"threshold": 0.5}).status_code == 201
    canary = rollout(client, "2.0.0", 20, ["web-1", "web-2"], parameters={"threshold": 0.4})
    assert canary.status_code == 201
    # the HTTP answers for a sample agree with the plan's routing, which is then counted at scale
    plan = plans.plan_current(model=MLModel.objects.get(name="churn"))
    for i in range(30):
        routes = plans.routes_for(plan, "web-1")
        expected = plans.route_pick(routes, plans.routing_fraction("web-1", f"id-{i}")).version
        assert route(client, "web-1", f"id-{i}").json()["version"] == expected
    n = 20000
    for segment in ("web-1", "web-2"):
        routes = plans.routes_for(plan, segment)
        picked = Counter(
            plans.route_pick(routes, plans.routing_fraction(segment, f"id-{i}")).version
            for i in range(n)
        )
        low, high = binom.interval(0.999, n, 0.2)
        assert low <= picked["2.0.0"] <= high, picked
        assert picked["1.0.0"] + picked["2.0.0"] == n
    # other segments stay entirely on production
    assert {route(client, "web-3", f"id-{i}").json()["version"] for i in range(20)} == {"1.0.0"}


def test_routing_is_deterministic_and_carries_the_rollouts_parameters(two_versions):
    client = two_versions
    rollout(client, "1.0.0", 100, parameters={"threshold": 0.5})
    rollout(client, "2.0.0", 50, ["web-1"], parameters={"threshold": 0.4})
    first = [route(client, "web-1", f"id-{i}").json() for i in range(50)]
    again = [route(client, "web-1", f"id-{i}").json() for i in range(50)]
    assert first == again
    by_version = {answer["version"]: answer["parameters"] for answer in first}
    assert by_version == {"1.0.0": {"threshold": 0.5}, "2.0.0": {"threshold": 0.4}}
    missing_id = client.get("/api/v1/models/churn/routing", {"segment": "web-1"})
    assert missing_id.status_code == 400


def test_rollback_restores_the_previous_plan_and_history_keeps_both(two_versions):
    client = two_versions
    rollout(client, "1.0.0", 100, note="first production")
    rollout(client, "2.0.0", 100, note="full switch")
    assert route(client, "", "x").json()["version"] == "2.0.0"
    back = client.post(
        "/api/v1/models/churn/rollouts/rollback", {"note": "AUC drop"}, format="json"
    )
    assert back.status_code == 201
    assert route(client, "", "x").json()["version"] == "1.0.0"
    history = client.get("/api/v1/models/churn/rollouts").json()
    assert [(h["kind"], h["version"], h["note"], h["active"]) for h in history] == [
        ("rollout", "1.0.0", "first production", True),
        ("rollout", "2.0.0", "full switch", False),
        ("rollback", "2.0.0", "AUC drop", True),
    ]
    assert all(h["actor"] == "key:test" for h in history)
    detail = client.get("/api/v1/models/churn").json()
    assert [r["id"] for r in detail["rollouts"]] == [h["id"] for h in history]


def test_a_rollout_to_every_segment_also_splits_segment_plans(two_versions):
    client = two_versions
    rollout(client, "1.0.0", 100, ["web-1"])
    rollout(client, "2.0.0", 100)  # every segment, web-1 included
    assert route(client, "web-1", "x").json()["version"] == "2.0.0"
    assert route(client, "other", "x").json()["version"] == "2.0.0"


def test_malformed_rollouts_are_400(two_versions):
    assert rollout(two_versions, "9.9.9", 100).status_code == 400
    assert rollout(two_versions, "1.0.0", 0).status_code == 400
    assert rollout(two_versions, "1.0.0", 150).status_code == 400
    answer = two_versions.post(
        "/api/v1/models/churn/rollouts", {"traffic_percent": 5}, format="json"
    )
    assert "version" in [e["field"] for e in answer.json()["errors"]]


def test_every_factory_change_is_in_the_audit_log(two_versions, outbound_private):
    client = two_versions
    client.put("/api/v1/models/churn/gates", {"canary": {"roc_auc": 0.7}}, format="json")
    rollout(client, "1.0.0", 100)
    client.post("/api/v1/models/churn/rollouts/rollback", {}, format="json")
    client.put(
        "/api/v1/models/churn/retrain-settings",
        {"retrain_webhook_url": "http://127.0.0.1:9/retrain"},
        format="json",
    )
    audit = client.get("/api/v1/models/churn/audit").json()
    assert [a["action"] for a in audit][::-1] == [
        "model.create",
        "version.register",
        "version.register",
        "gates.set",
        "rollout.create",
        "rollout.rollback",
        "retrain.settings",
    ]
    gates = next(a for a in audit if a["action"] == "gates.set")
    assert gates["before"]["canary"] == {} and gates["after"]["canary"] == {"roc_auc": 0.7}
    assert {a["actor"] for a in audit[:-1]} == {"key:test"}


def routed(model_name: str, segment: str, ids: range) -> dict[str, str]:
    plan = plans.plan_current(model=MLModel.objects.get(name=model_name))
    routes = plans.routes_for(plan, segment)
    return {
        f"id-{i}": plans.route_pick(routes, plans.routing_fraction(segment, f"id-{i}")).version
        for i in ids
    }


def test_raising_a_canary_moves_ids_into_it_only_and_rollback_moves_them_back(two_versions):
    client = two_versions
    assert register(client, "3.0.0", lineage(roc_auc=0.85)).status_code == 201
    rollout(client, "1.0.0", 100)
    rollout(client, "2.0.0", 30, ["web-1"])  # web-1: 70% on 1.0.0, 30% on 2.0.0
    n = 20000
    before = routed("churn", "web-1", range(n))
    # when: a 10% canary of 3.0.0, then raised to 20%
    rollout(client, "3.0.0", 10, ["web-1"])
    at_10 = routed("churn", "web-1", range(n))
    rollout(client, "3.0.0", 20, ["web-1"])
    at_20 = routed("churn", "web-1", range(n))
    # then: every id that moved went into the canary, and the shares are as configured
    for earlier, later in ((before, at_10), (at_10, at_20)):
        moved = {i for i in earlier if earlier[i] != later[i]}
        assert moved and all(later[i] == "3.0.0" for i in moved)
    picked = Counter(at_20.values())
    for version, share in (("3.0.0", 0.2), ("2.0.0", 0.3 * 0.8), ("1.0.0", 0.7 * 0.8)):
        low, high = binom.interval(0.999, n, share)
        assert low <= picked[version] <= high, picked
    # when the canary shrinks back to 10%, only canary ids move
    rollout(client, "3.0.0", 10, ["web-1"])
    shrunk = routed("churn", "web-1", range(n))
    moved = {i for i in at_20 if at_20[i] != shrunk[i]}
    assert moved and all(at_20[i] == "3.0.0" for i in moved)
    # a rollback restores the previous plan exactly: the same ids on the same versions
    back = client.post("/api/v1/models/churn/rollouts/rollback", {}, format="json")
    assert back.status_code == 201
    assert routed("churn", "web-1", range(n)) == at_20


def test_routing_costs_the_same_queries_whatever_the_history(two_versions):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = two_versions
    rollout(client, "1.0.0", 100)
    rollout(client, "2.0.0", 10, ["web-1"])

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert route(client, "web-1", "abc").status_code == 200
        return len(captured)

    few = queries()
    for percent in range(11, 51):  # forty more plan changes, and rollbacks
        rollout(client, "2.0.0", percent, ["web-1", f"web-{percent}"])
    client.post("/api/v1/models/churn/rollouts/rollback", {}, format="json")
    assert queries() == few
    assert route(client, "web-1", "abc").json()["routes"][1]["share"] == pytest.approx(0.49)


def test_shrinking_the_only_version_of_a_segment_is_refused(two_versions):
    rollout(two_versions, "1.0.0", 100)
    refused = rollout(two_versions, "1.0.0", 50, ["web-1"])
    assert refused.status_code == 409 and "web-1" in refused.json()["detail"]
