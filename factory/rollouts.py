"""Promotion gates, rollout plans and routing.

The plan of a model maps each segment to routes (version, parameters, and the hash buckets it
serves). A prediction id falls in one of BUCKETS buckets by a hash of segment and id, and the
route holding that bucket serves it. A rollout of p% gives its version p% of the buckets of its
segments: when the share grows, the version takes buckets from the others (each in proportion
to its share) and nobody else moves; when it shrinks, it hands buckets back the same way. So
raising a canary from 10% to 20% moves ids into the canary only. A segment never named has the
plan of "every segment" (the `ALL` key).

Each rollout stores the plan it produced, so routing reads one row whatever the history, and a
rollback (which deactivates the latest active rollout) restores the previous plan exactly, the
same ids on the same versions.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from django.db import transaction

from factory.models import MLModel, ModelVersion, PromotionGate, Rollout, RolloutKind, Stage
from factory.services import audit_record

ALL = "*"  # the plan key of "every segment"
BUCKETS = 10_000  # a share is a whole number of buckets: 0.01% steps


class PromotionRefused(Exception):
    """A rollout the gates or the plan do not allow; `errors` says which gate and why."""

    def __init__(self, message: str, errors: list[dict]):
        super().__init__(message)
        self.errors = errors


@dataclass
class Route:
    version: str
    parameters: dict
    buckets: list[list[int]] = field(default_factory=list)  # [start, end) ranges, sorted

    @property
    def size(self) -> int:
        return sum(end - start for start, end in self.buckets)

    @property
    def share(self) -> float:
        """Of the segment's traffic, 0..1."""
        return self.size / BUCKETS

    def as_dict(self) -> dict:
        return {"version": self.version, "share": self.share, "parameters": self.parameters}

    def stored(self) -> dict:
        return {"version": self.version, "parameters": self.parameters, "buckets": self.buckets}


Plan = dict[str, list[Route]]


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
            {
                "field": "version",
                "gate": stage,
                "metric": gate.metric,
                "minimum": gate.minimum,
                "value": value,
                "message": f"{stage} gate on {gate.metric} failed: {reason}",
            }
        )
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


def buckets_take(ranges: list[list[int]], count: int) -> tuple[list[list[int]], list[list[int]]]:
    """Split off the highest `count` buckets: (kept, taken)."""
    kept = [list(r) for r in ranges]
    taken: list[list[int]] = []
    while count > 0:
        start, end = kept[-1]
        width = min(count, end - start)
        taken.insert(0, [end - width, end])
        count -= width
        if width == end - start:
            kept.pop()
        else:
            kept[-1][1] = end - width
    return kept, taken


def buckets_merge(ranges: list[list[int]]) -> list[list[int]]:
    merged: list[list[int]] = []
    for start, end in sorted(ranges):
        if merged and merged[-1][1] == start:
            merged[-1][1] = end
        else:
            merged.append([start, end])
    return merged


def proportional(total: int, sizes: list[int]) -> list[int]:
    """`total` split in proportion to `sizes`, in whole numbers (largest remainders)."""
    whole = sum(sizes)
    exact = [total * size / whole for size in sizes]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(sizes)), key=lambda i: exact[i] - counts[i], reverse=True)
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def routes_reshare(routes: list[Route], version: str, percent: float, parameters: dict):
    """The segment's routes after `version` gets `percent` of its buckets (see the module)."""
    target = round(percent / 100 * BUCKETS)
    mine = next((r for r in routes if r.version == version), None)
    others = [Route(r.version, r.parameters, r.buckets) for r in routes if r.version != version]
    have = mine.buckets if mine else []
    size = sum(end - start for start, end in have)
    sizes = [o.size for o in others]
    if not others and not size:  # the segment's first version (at 100%: plan_uncovered)
        have = [[0, target]]
    elif target > size:
        for other, count in zip(others, proportional(target - size, sizes), strict=True):
            other.buckets, taken = buckets_take(other.buckets, count)
            have = have + taken
    elif target < size:
        have, handed = buckets_take(buckets_merge(have), size - target)
        for other, count in zip(others, proportional(size - target, sizes), strict=True):
            handed, given = buckets_take(handed, count)
            other.buckets = buckets_merge(other.buckets + given)
    mine = Route(version, parameters, buckets_merge(have))
    kept = [o for o in others if o.size]
    position = next((i for i, r in enumerate(routes) if r.version == version), len(routes))
    return [*kept[:position], mine, *kept[position:]] if mine.size else kept


def plan_apply(plan: Plan, rollout: Rollout) -> Plan:
    """The plan after one rollout (a new plan; the given one is left as it is)."""
    after = dict(plan)
    targets = rollout.segments or [ALL, *(key for key in plan if key != ALL)]
    for segment in targets:
        current = plan.get(segment, plan.get(ALL, []))
        after[segment] = routes_reshare(
            current, rollout.version.version, rollout.traffic_percent, rollout.parameters
        )
    return after


def plan_load(stored: dict) -> Plan:
    return {
        segment: [Route(r["version"], r["parameters"], r["buckets"]) for r in routes]
        for segment, routes in (stored or {}).items()
    }


def plan_store(plan: Plan) -> dict:
    return {segment: [r.stored() for r in routes] for segment, routes in plan.items()}


def plan_current(*, model: MLModel) -> Plan:
    """The plan in force: the one stored with the latest active rollout (one query)."""
    active = Rollout.objects.filter(model=model, kind=RolloutKind.ROLLOUT, active=True)
    stored = active.order_by("-id").values_list("plan", flat=True).first()
    return plan_load(stored)


def plan_uncovered(plan: Plan, rollout: Rollout) -> list[str]:
    """Segments that would be left with traffic nobody serves: below 100% with no other
    version there (a first rollout, or shrinking the only version)."""
    if rollout.traffic_percent >= 100:
        return []
    targets = rollout.segments or [ALL]
    version = rollout.version.version
    return [
        s for s in targets if not any(r.version != version for r in plan.get(s, plan.get(ALL, [])))
    ]


def rollout_snapshot(rollout: Rollout) -> dict:
    return {
        "id": rollout.pk,
        "kind": rollout.kind,
        "version": rollout.version.version,
        "traffic_percent": rollout.traffic_percent,
        "segments": rollout.segments,
        "parameters": rollout.parameters,
        "note": rollout.note,
    }


def plan_snapshot(plan: Plan) -> dict:
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
        model=model,
        version=version,
        traffic_percent=traffic_percent,
        segments=sorted(set(segments)),
        parameters=parameters or {},
        note=note,
        actor=actor,
    )
    before = plan_current(model=model)
    uncovered = plan_uncovered(before, rollout)
    if uncovered:
        raise PromotionRefused(
            f"No version serves the other {100 - traffic_percent:g}% of {', '.join(uncovered)}; "
            "roll a version out at 100% first.",
            [
                {
                    "field": "traffic_percent",
                    "segments": uncovered,
                    "message": "nothing serves the rest of these segments' traffic",
                }
            ],
        )
    after = plan_apply(before, rollout)
    rollout.plan = plan_store(after)
    rollout.save()
    audit_record(
        model=model,
        actor=actor,
        action="rollout.create",
        subject=version.version,
        before=plan_snapshot(before),
        after={**rollout_snapshot(rollout), "plan": plan_snapshot(after)},
    )
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
    after = plan_current(model=model)
    rollback = Rollout.objects.create(
        model=model,
        kind=RolloutKind.ROLLBACK,
        version=latest.version,
        traffic_percent=latest.traffic_percent,
        segments=latest.segments,
        parameters=latest.parameters,
        note=note,
        actor=actor,
        undoes=latest,
        plan=plan_store(after),
    )
    audit_record(
        model=model,
        actor=actor,
        action="rollout.rollback",
        subject=latest.version.version,
        before=plan_snapshot(before),
        after={**rollout_snapshot(rollback), "undoes": latest.pk, "plan": plan_snapshot(after)},
    )
    return rollback


def routing_fraction(segment: str, prediction_id: str) -> float:
    """A uniform number in [0, 1) fixed by segment and prediction id."""
    digest = hashlib.sha256(f"{segment}\x00{prediction_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def routes_for(plan: Plan, segment: str) -> list[Route]:
    return plan.get(segment) or plan.get(ALL) or []


def route_pick(routes: list[Route], fraction: float) -> Route:
    """The route holding the bucket this fraction falls in."""
    bucket = int(fraction * BUCKETS)
    for route in routes:
        if any(start <= bucket < end for start, end in route.buckets):
            return route
    raise ValueError(f"bucket {bucket} is in no route: the plan does not cover the segment")
