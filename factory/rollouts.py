"""Promotion gates, rollout plans and routing.

The plan of a model maps each segment to routes (version, share, parameters). It is the fold of the
active rollouts in order: a rollout of p% on some segments scales those segments' current routes by
(1 - p/100) and gives p% to its version. A segment never named has the plan of "every segment"
(the `ALL` key). A rollback deactivates the latest active rollout, so the plan is the previous one.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

from django.db import transaction

from factory.models import MLModel, ModelVersion, PromotionGate, Rollout, RolloutKind, Stage
from factory.services import audit_record

ALL = "*"  # the plan key of "every segment"
SHARE_EPSILON = 1e-9


class PromotionRefused(Exception):
    """A rollout the gates or the plan do not allow; `errors` says which gate and why."""

    def __init__(self, message: str, errors: list[dict]):
        super().__init__(message)
        self.errors = errors


@dataclass
class Route:
    version: str
    share: float  # of the segment's traffic, 0..1
    parameters: dict

    def as_dict(self) -> dict:
        return asdict(self)


def rollout_stage(traffic_percent: float) -> str:
    return Stage.PRODUCTION if traffic_percent >= 100 else Stage.CANARY


def gates_failed(*, model: MLModel, version: ModelVersion, stage: str) -> list[dict]:
    """Which of the model's gates for this stage the version's held-out metrics miss."""
    failed = []
    metrics = ((version.lineage or {}).get("validation") or {}).get("metrics") or {}
    for gate in PromotionGate.objects.filter(model=model, stage=stage):
        value = metrics.get(gate.metric)
        if value is None:
            reason = (
                "the version has no lineage (it was only seen in prediction logs)"
                if not version.has_lineage
                else f"its lineage has no held-out {gate.metric}"
            )
        elif value < gate.minimum:
            reason = f"held-out {gate.metric} is {value}, below the minimum {gate.minimum}"
        else:
            continue
        failed.append(
            {"field": "version", "gate": stage, "metric": gate.metric, "minimum": gate.minimum,
             "value": value, "message": f"{stage} gate on {gate.metric} failed: {reason}"}
        )  # fmt: skip
    return failed


def gates_snapshot(model: MLModel) -> dict:
    snapshot: dict[str, dict] = {Stage.CANARY: {}, Stage.PRODUCTION: {}}
    for gate in PromotionGate.objects.filter(model=model):
        snapshot[gate.stage][gate.metric] = gate.minimum
    return snapshot


@transaction.atomic
def gates_set(*, model: MLModel, gates: dict[str, dict[str, float]], actor: str = "") -> dict:
    """Replace the model's gates: {"canary": {metric: minimum}, "production": {...}}."""
    before = gates_snapshot(model)
    PromotionGate.objects.filter(model=model).delete()
    PromotionGate.objects.bulk_create(
        PromotionGate(model=model, stage=stage, metric=metric, minimum=minimum)
        for stage, minimums in gates.items()
        for metric, minimum in minimums.items()
    )
    after = gates_snapshot(model)
    audit_record(model=model, actor=actor, action="gates.set", before=before, after=after)
    return after


def plan_apply(plan: dict[str, list[Route]], rollout: Rollout) -> None:
    """Fold one rollout into the plan, in place."""
    share = rollout.traffic_percent / 100
    targets = rollout.segments or [ALL, *(key for key in plan if key != ALL)]
    for segment in targets:
        current = plan.get(segment, plan.get(ALL, []))
        routes = [
            Route(r.version, r.share * (1 - share), r.parameters)
            for r in current
            if r.version != rollout.version.version and r.share * (1 - share) > SHARE_EPSILON
        ]
        kept = sum(r.share for r in current if r.version == rollout.version.version)
        routes.append(
            Route(rollout.version.version, share + kept * (1 - share), rollout.parameters)
        )
        plan[segment] = routes


def plan_current(*, model: MLModel) -> dict[str, list[Route]]:
    plan: dict[str, list[Route]] = {}
    active = Rollout.objects.filter(model=model, kind=RolloutKind.ROLLOUT, active=True)
    for rollout in active.select_related("version").order_by("id"):
        plan_apply(plan, rollout)
    return plan


def plan_uncovered(plan: dict[str, list[Route]], rollout: Rollout) -> list[str]:
    """Segments that would be left with traffic nobody serves (a first rollout below 100%)."""
    if rollout.traffic_percent >= 100:
        return []
    targets = rollout.segments or [ALL]
    return [s for s in targets if not plan.get(s, plan.get(ALL))]


def rollout_snapshot(rollout: Rollout) -> dict:
    return {
        "id": rollout.pk, "kind": rollout.kind, "version": rollout.version.version,
        "traffic_percent": rollout.traffic_percent, "segments": rollout.segments,
        "parameters": rollout.parameters, "note": rollout.note,
    }  # fmt: skip


def plan_snapshot(plan: dict[str, list[Route]]) -> dict:
    return {segment: [r.as_dict() for r in routes] for segment, routes in plan.items()}


@transaction.atomic
def rollout_create(
    *,
    model: MLModel,
    version: ModelVersion,
    traffic_percent: float,
    segments: list[str] = (),
    parameters: dict | None = None,
    note: str = "",
    actor: str = "",
) -> Rollout:
    """Change the plan after checking the gates of the stage this rollout reaches."""
    MLModel.objects.select_for_update().filter(pk=model.pk).first()  # one plan change at a time
    stage = rollout_stage(traffic_percent)
    failed = gates_failed(model=model, version=version, stage=stage)
    if failed:
        raise PromotionRefused(
            f"Version {version.version} may not go to {stage}: "
            + "; ".join(f["message"] for f in failed),
            failed,
        )
    rollout = Rollout(
        model=model, version=version, traffic_percent=traffic_percent,
        segments=sorted(set(segments)), parameters=parameters or {}, note=note, actor=actor,
    )  # fmt: skip
    before = plan_current(model=model)
    uncovered = plan_uncovered(before, rollout)
    if uncovered:
        raise PromotionRefused(
            f"No version serves the other {100 - traffic_percent:g}% of {', '.join(uncovered)}; "
            "roll a version out at 100% first.",
            [{"field": "traffic_percent", "segments": uncovered,
              "message": "nothing serves the rest of these segments' traffic"}],
        )  # fmt: skip
    rollout.save()
    after = plan_current(model=model)
    audit_record(
        model=model, actor=actor, action="rollout.create", subject=version.version,
        before=plan_snapshot(before),
        after={**rollout_snapshot(rollout), "plan": plan_snapshot(after)},
    )  # fmt: skip
    return rollout


class NothingToRollBack(Exception):
    pass


@transaction.atomic
def rollout_rollback(*, model: MLModel, note: str = "", actor: str = "") -> Rollout:
    """Undo the latest active rollout; recorded as a rollback row in the history."""
    MLModel.objects.select_for_update().filter(pk=model.pk).first()
    latest = (
        Rollout.objects.filter(model=model, kind=RolloutKind.ROLLOUT, active=True)
        .select_related("version")
        .order_by("-id")
        .first()
    )
    if latest is None:
        raise NothingToRollBack(f"{model.name} has no rollout to roll back.")
    before = plan_current(model=model)
    Rollout.objects.filter(pk=latest.pk).update(active=False)
    rollback = Rollout.objects.create(
        model=model, kind=RolloutKind.ROLLBACK, version=latest.version,
        traffic_percent=latest.traffic_percent, segments=latest.segments,
        parameters=latest.parameters, note=note, actor=actor, undoes=latest,
    )  # fmt: skip
    after = plan_current(model=model)
    audit_record(
        model=model, actor=actor, action="rollout.rollback", subject=latest.version.version,
        before=plan_snapshot(before),
        after={**rollout_snapshot(rollback), "undoes": latest.pk, "plan": plan_snapshot(after)},
    )  # fmt: skip
    return rollback


def routing_fraction(segment: str, prediction_id: str) -> float:
    """A uniform number in [0, 1) fixed by segment and prediction id."""
    digest = hashlib.sha256(f"{segment}\x00{prediction_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def routes_for(plan: dict[str, list[Route]], segment: str) -> list[Route]:
    return plan.get(segment) or plan.get(ALL) or []


def route_pick(routes: list[Route], fraction: float) -> Route:
    cumulative = 0.0
    for route in routes:
        cumulative += route.share
        if fraction < cumulative:
            return route
    return routes[-1]  # rounding: the shares sum to 1 within float error
