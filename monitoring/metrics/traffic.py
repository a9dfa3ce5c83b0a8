"""Which version served when and where, read from the hourly aggregates.

Two versions compared over different weeks or different segments differ by their customers as
much as by their models; the hours and segments both served are where a comparison is fair.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from django.db.models import Count, Exists, Max, Min, OuterRef, Q, Sum
from django.db.models.functions import TruncDay

from common.time import as_utc, day_ceil, day_floor
from factory.models import MLModel
from monitoring.models import HourlyAggregate

# A side with less than this share of its predictions in the hours and segments the other
# version served too is said to have served different traffic.
SHARED_ENOUGH = 0.9


def version_starts(model: MLModel) -> list[tuple[str, datetime]]:
    """(version, the hour of its first prediction), earliest first: when each began serving,
    whether or not a rollout was recorded."""
    rows = HourlyAggregate.objects.filter(model=model, predictions__gt=0)
    rows = rows.values("version__version").annotate(first=Min("hour")).order_by("first")
    return [(row["version__version"], row["first"]) for row in rows]


def shared_cells(model: MLModel, version: str, *, at: str = "hour") -> Exists:
    """A filter for aggregate rows (or sketch rows, `at="start"`) in an hour and segment where
    `version` made predictions too."""
    served = HourlyAggregate.objects.filter(
        model=model,
        version__version=version,
        hour=OuterRef(at),
        segment=OuterRef("segment"),
        predictions__gt=0,
    )
    return Exists(served)


def shared_days(
    model: MLModel, other: str, start, end, version_ids, segment
) -> list[tuple[int, str, datetime]]:
    """The (version, segment, day) of days inside [start, end) each hour of which that has
    predictions is an hour and segment where `other` served too."""
    rows = HourlyAggregate.objects.filter(model=model, predictions__gt=0)
    if version_ids is not None:
        rows = rows.filter(version_id__in=version_ids)
    if segment is not None:
        rows = rows.filter(segment=segment)
    if start:
        rows = rows.filter(hour__gte=day_ceil(start))
    if end:
        rows = rows.filter(hour__lt=day_floor(end))
    per_day = (
        rows.annotate(day=TruncDay("hour", tzinfo=UTC), shared=shared_cells(model, other))
        .values("version_id", "segment", "day")
        .annotate(hours=Count("id"), shared_hours=Count("id", filter=Q(shared=True)))
    )
    return [
        (row["version_id"], row["segment"], as_utc(row["day"]))
        for row in per_day
        if row["hours"] == row["shared_hours"]
    ]


@dataclass(frozen=True)
class ServedTraffic:
    """What one version served in a window: its first and last hour, its segments, its
    predictions and how many of them fell in hours and segments the other version served."""

    version: str
    first_hour: datetime | None
    last_hour: datetime | None
    segments: tuple[str, ...]
    predictions: int
    shared_predictions: int

    @property
    def shared_share(self) -> float | None:
        return self.shared_predictions / self.predictions if self.predictions else None


@dataclass(frozen=True)
class TrafficOverlap:
    baseline: ServedTraffic
    candidate: ServedTraffic

    @property
    def confounded(self) -> bool:
        """Whether either version served much traffic the other did not see (a version
        without a prediction in the window has nothing to compare, confounded or not)."""
        shares = (self.baseline.shared_share, self.candidate.shared_share)
        if None in shares:
            return False
        return any(share < SHARED_ENOUGH for share in shares)

    @property
    def shared(self) -> bool:
        return self.baseline.shared_predictions > 0 and self.candidate.shared_predictions > 0


def served_traffic(
    *, model: MLModel, version: str, other: str, start, end, segment
) -> ServedTraffic:
    rows = HourlyAggregate.objects.filter(model=model, version__version=version, predictions__gt=0)
    if start:
        rows = rows.filter(hour__gte=start)
    if end:
        rows = rows.filter(hour__lt=end)
    if segment is not None:
        rows = rows.filter(segment=segment)
    span = rows.aggregate(first=Min("hour"), last=Max("hour"), n=Sum("predictions"))
    shared = rows.filter(shared_cells(model, other)).aggregate(n=Sum("predictions"))["n"]
    segments = rows.order_by("segment").values_list("segment", flat=True).distinct()
    return ServedTraffic(
        version, span["first"], span["last"], tuple(segments), span["n"] or 0, shared or 0
    )


def traffic_overlap(
    *, model: MLModel, baseline: str, candidate: str, start=None, end=None, segment=None
) -> TrafficOverlap:
    """Both versions' traffic in the window, each against the other's hours and segments."""
    window = {"model": model, "start": start, "end": end, "segment": segment}
    return TrafficOverlap(
        served_traffic(version=baseline, other=candidate, **window),
        served_traffic(version=candidate, other=baseline, **window),
    )


# --- in words ----------------------------------------------------------------------------------


def days_text(first: datetime, last: datetime) -> str:
    """'1-14 May 2026', '28 Apr-5 May 2026', '3 May 2026' (UTC days)."""
    if first.date() == last.date():
        return f"{first.day} {first:%b %Y}"
    if (first.year, first.month) == (last.year, last.month):
        return f"{first.day}-{last.day} {last:%b %Y}"
    if first.year == last.year:
        return f"{first.day} {first:%b}-{last.day} {last:%b %Y}"
    return f"{first.day} {first:%b %Y}-{last.day} {last:%b %Y}"


def segments_text(segments: tuple[str, ...]) -> str:
    names = [f"“{s}”" if s else "(no segment)" for s in segments]
    if len(names) == 1:
        return f"segment {names[0]} alone"
    return "segments " + ", ".join(names)


def served_differently(overlap: TrafficOverlap) -> list[str]:
    """How the two versions' traffic differed, one clause per way."""
    base, cand = overlap.baseline, overlap.candidate
    clauses = []
    base_days = days_text(base.first_hour, base.last_hour)
    cand_days = days_text(cand.first_hour, cand.last_hour)
    if base_days != cand_days:
        clauses.append(f"{base.version} served {base_days}, {cand.version} served {cand_days}")
    if base.segments != cand.segments:
        clauses.append(
            f"{base.version} served {segments_text(base.segments)}, "
            f"{cand.version} served {segments_text(cand.segments)}"
        )
    if not clauses:
        clauses.append(f"{base.version} and {cand.version} served different hours")
    return clauses


def traffic_note(overlap: TrafficOverlap) -> str:
    """The confound in words, or "" when both versions served the same hours and segments."""
    base, cand = overlap.baseline, overlap.candidate
    if not overlap.confounded:
        return ""
    note = "; ".join(served_differently(overlap))
    note += ": the difference may be the customers, not the model."
    if not overlap.shared:
        return note + " They shared no hour and segment, so no like-for-like comparison exists."
    return note + (
        f" They shared {base.shared_predictions:,} and {cand.shared_predictions:,} predictions "
        "in the same hours and segments."
    )
