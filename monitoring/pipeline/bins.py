"""Fixed bins per version and feature, frozen before any histogram is stored on them.

Where they come from, in order: the version's registered reference (a profile's own edges, or
the fine quantiles of its raw rows), else the version's first `FREEZE_DAYS` days of
predictions as stored when the feature is first aggregated (at most `FREEZE_SAMPLE_ROWS` rows).
Edges never change under stored histograms: when a version's reference appears later,
or a feature first seen all-missing gets values, its bins are frozen anew and every hour of
the version is marked dirty, so the next pass re-aggregates them on the new edges.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from django.db import connection
from django.db.models import Min
from django.utils import timezone

from common.retention import raw_horizon
from common.sql import hour_of
from factory.models import ModelVersion
from monitoring.models import FeatureBins, HourlyAggregate, Prediction
from monitoring.pipeline.codec import categorical_encode, categorical_merge
from monitoring.stats.codec import histogram_decode, histogram_encode
from monitoring.stats.histograms import NumericReference, numeric_bin_edges
from monitoring.stats.profile import (
    CategoricalReference,
    FeatureReference,
    Profile,
    ProfileError,
    feature_kind,
    numeric_values,
    profile_from_json,
)

log = logging.getLogger(__name__)
FREEZE_DAYS = 7
FREEZE_SAMPLE_ROWS = 200_000  # ~25 features x 200k values: about 40 MB while freezing
UNKNOWN = "unknown"  # every value seen so far was missing


@dataclass(frozen=True)
class Bins:
    name: str
    kind: str  # numerical, categorical or unknown
    edges: np.ndarray
    reference: FeatureReference | None = None  # the registered reference, when there is one
    reference_rows: int = 0


def reference_sha256(version: ModelVersion) -> str:
    if not version.reference:
        return ""
    text = json.dumps(version.reference, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def version_profile(version: ModelVersion) -> Profile | None:
    """The version's registered reference, profiled; None without one or if unreadable."""
    if not version.reference:
        return None
    try:
        return profile_from_json(version.reference)
    except ProfileError:
        return None


def bins_load(version_id: int) -> dict[str, Bins]:
    return {row.name: bins_of(row) for row in FeatureBins.objects.filter(version_id=version_id)}


def bins_of(row: FeatureBins) -> Bins:
    edges = np.frombuffer(bytes(row.edges), "<f8")
    reference = None
    if row.reference is not None and row.kind == "numerical":
        deciles = np.frombuffer(bytes(row.deciles), "<f8")
        reference = NumericReference(histogram_decode(bytes(row.reference), edges), deciles)
    elif row.reference is not None:
        reference = CategoricalReference(*categorical_merge([bytes(row.reference)]))
    return Bins(row.name, row.kind, edges, reference, row.reference_rows)


def reference_fields(feature: FeatureReference | None, rows: int) -> dict:
    if feature is None:
        return {"reference": None, "deciles": None, "reference_rows": 0}
    if isinstance(feature, NumericReference):
        return {
            "reference": histogram_encode(feature.histogram),
            "deciles": np.asarray(feature.deciles, dtype="<f8").tobytes(),
            "reference_rows": rows,
        }
    data = categorical_encode(feature.counts, feature.missing)
    return {"reference": data, "deciles": None, "reference_rows": rows}


def bins_ensure(*, version: ModelVersion, names: set[str], present: set[str]) -> dict[str, Bins]:
    """The bins of the named features, freezing those not frozen yet.

    ``present`` are the features with at least one value in the batch: an `unknown` feature
    among them is frozen anew (its stored sketches hold only missing counts).
    """
    stored = bins_load(version.pk)
    refreeze = {n for n in present if n in stored and stored[n].kind == UNKNOWN}
    todo = (names - stored.keys()) | refreeze
    if not todo:
        return stored
    frozen = bins_freeze(version=version, names=todo, sha=reference_sha256(version))
    if refreeze & {n for n, b in frozen.items() if b.kind != UNKNOWN}:
        version_hours_mark_dirty(version)
    return {**stored, **frozen}


def bins_freeze(*, version: ModelVersion, names: set[str], sha: str) -> dict[str, Bins]:
    profile = version_profile(version)
    from_reference = {n: f for n, f in (profile.features if profile else {}).items() if n in names}
    sample = features_sample(version, names - from_reference.keys())
    frozen: dict[str, Bins] = {}
    for name in sorted(names):
        if name in from_reference:
            feature = from_reference[name]
            numeric = isinstance(feature, NumericReference)
            edges = feature.edges if numeric else np.array([])
            frozen[name] = Bins(name, "numerical" if numeric else "categorical", edges)
        else:
            values = sample.get(name, [])
            kind = feature_kind(values) or UNKNOWN
            edges = numeric_bin_edges(numeric_values(values)) if kind == "numerical" else []
            frozen[name] = Bins(name, kind, np.asarray(edges, dtype=float))
    for bins in frozen.values():
        FeatureBins.objects.update_or_create(
            version=version,
            name=bins.name,
            defaults={
                "model_id": version.model_id,
                "kind": bins.kind,
                "edges": bins.edges.astype("<f8").tobytes(),
                "source": "reference" if bins.name in from_reference else "predictions",
                "reference_sha256": sha,
                **reference_fields(from_reference.get(bins.name), profile.rows if profile else 0),
            },
        )
    return frozen


def features_sample(version: ModelVersion, names: set[str]) -> dict[str, list]:
    """Values of the named features in the version's first days of predictions."""
    if not names:
        return {}
    # By model too: the (model, timestamp) index serves both reads.
    stored = Prediction.objects.filter(model_id=version.model_id, version=version)
    first = stored.aggregate(t=Min("timestamp"))["t"]
    if first is None:
        return {}
    rows = (
        stored.filter(timestamp__lt=first + timedelta(days=FREEZE_DAYS))
        .order_by("timestamp")
        .values_list("features", flat=True)[:FREEZE_SAMPLE_ROWS]
    )
    rows = [features or {} for features in rows]
    return {name: [features.get(name) for features in rows] for name in names}


def bins_stale_reset(*, model_id: int) -> int:
    """Reset the bins of versions whose reference arrived after their bins were frozen.

    A registered version is immutable, so a reference can only appear (on a version first seen
    in prediction logs), not change; frozen bins record the reference's hash, empty without one.
    """
    stale = ModelVersion.objects.filter(
        model_id=model_id,
        reference__isnull=False,
        pk__in=FeatureBins.objects.filter(model_id=model_id, reference_sha256="").values(
            "version_id"
        ),
    ).defer("reference", "lineage")
    for version in stale:
        if version_has_sealed_hours(version):
            bins_keep_for_sealed_hours(version)
        else:
            bins_reset(version)
    return len(stale)


def version_has_sealed_hours(version: ModelVersion) -> bool:
    horizon = raw_horizon(timezone.now())
    return HourlyAggregate.objects.filter(version=version, hour__lt=horizon).exists()


def bins_keep_for_sealed_hours(version: ModelVersion) -> None:
    """A reference that came after some of the version's hours were sealed cannot re-freeze
    its bins: sealed hours are never re-aggregated, and histograms on two sets of edges would
    not add up. The bins stay; they record the reference's hash so it is not asked again."""
    log.warning(
        "version %s got its reference after hours of it were sealed; its bins stay as frozen",
        version.pk,
    )
    FeatureBins.objects.filter(version=version).update(reference_sha256=reference_sha256(version))


def bins_reset(version: ModelVersion) -> None:
    """Forget the version's bins (its reference changed) and re-aggregate all its hours."""
    FeatureBins.objects.filter(version=version).delete()
    version_hours_mark_dirty(version)


def version_hours_mark_dirty(version: ModelVersion) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO monitoring_dirtyhour (model_id, hour)
            SELECT DISTINCT model_id, {hour_of("timestamp")} FROM monitoring_prediction
            WHERE version_id = %s ON CONFLICT DO NOTHING""",
            [version.pk],
        )
