"""Fixed bins per model and feature, frozen once, and each version's reference on them.

Where a feature's bins come from, in order: the model's first registered reference that has
the feature (the lowest version: a profile's own edges, or the fine quantiles of raw rows),
else the model's first `FREEZE_DAYS` days of predictions, every version's (at most
`FREEZE_SAMPLE_ROWS` rows), else, for a feature that had no value then (one a later version
added), the first days from the hours in which its values were first aggregated. They are
frozen once and never again (DESIGN.md, Bins), so every version's and every window's
histograms add up: drift over the model's whole traffic sums the versions' sketches. The one
exception is a feature whose every value so far was missing (kind `unknown`): it is frozen
when values come, and the model's hours are marked dirty.

A version's own registered reference is counted on the model's bins (`FeatureReference`):
raw rows are binned on them exactly; a profile sent on other edges cannot be, and that
feature has no reference for the version (its drift says so).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from django.db import connection
from django.db.models import Min

from common.sql import binary_array, hour_of, is_postgres
from factory.models import MLModel, ModelVersion
from monitoring.models import FeatureBins, FeatureReference, Prediction
from monitoring.pipeline.codec import categorical_encode, categorical_merge
from monitoring.stats.codec import histogram_decode, histogram_encode
from monitoring.stats.histograms import NumericReference, numeric_bin_edges
from monitoring.stats.profile import (
    CategoricalReference,
    Profile,
    ProfileError,
    feature_kind,
    numeric_values,
    profile_from_json,
)
from monitoring.stats.profile import (
    FeatureReference as Reference,
)

FREEZE_DAYS = 7
FREEZE_SAMPLE_ROWS = 200_000  # SQLite holds them as Python objects (~25 features: ~40 MB)
UNKNOWN = "unknown"  # every value seen so far was missing
HEAVY = ("reference", "lineage")  # a raw reference can be megabytes: read only when needed


@dataclass(frozen=True)
class Bins:
    name: str
    kind: str  # numerical, categorical or unknown
    edges: np.ndarray


@dataclass(frozen=True)
class References:
    """A version's registered reference on the model's bins: its rows, and per feature its
    counts (None where they cannot be on the model's bins)."""

    rows: int
    features: dict[str, Reference | None]


NO_REFERENCES = References(0, {})


def version_profile(version: ModelVersion, bins: dict[str, Bins] | None = None) -> Profile | None:
    """The version's registered reference, profiled (raw rows on the given bins' edges, when
    given); None without one or if unreadable."""
    if not version.reference:
        return None
    edges = {n: b.edges for n, b in (bins or {}).items() if b.kind == "numerical"}
    try:
        return profile_from_json(version.reference, edges=edges)
    except ProfileError:
        return None


# --- the model's bins ---


def bins_load(model_id: int) -> dict[str, Bins]:
    return {row.name: bins_of(row) for row in FeatureBins.objects.filter(model_id=model_id)}


def bins_of(row: FeatureBins) -> Bins:
    return Bins(row.name, row.kind, np.frombuffer(bytes(row.edges), "<f8"))


def bins_ensure(
    *, model: MLModel, names: set[str], present: dict[str, datetime]
) -> dict[str, Bins]:
    """The model's bins of every feature, freezing the named ones not frozen yet.

    ``present`` holds the features with a value in the batch, each with its first moment: an
    `unknown` feature among them is frozen now (its stored sketches hold only missing counts),
    and the model's hours are marked dirty so they are binned again.
    """
    stored = bins_load(model.pk)
    unknown = {n for n in present if n in stored and stored[n].kind == UNKNOWN}
    todo = (names - stored.keys()) | unknown
    if not todo:
        return stored
    frozen = bins_freeze(model=model, names=todo, since=present)
    if unknown & {n for n, b in frozen.items() if b.kind != UNKNOWN}:
        model_hours_mark_dirty(model)
    return {**stored, **frozen}


def first_references(model: MLModel, names: set[str]) -> dict[str, Reference]:
    """Each named feature in the model's first registered reference that has it (versions
    in order of id), read one reference at a time until every name is found."""
    found: dict[str, Reference] = {}
    with_reference = ModelVersion.objects.filter(model=model, reference__isnull=False)
    for pk in with_reference.order_by("pk").values_list("pk", flat=True):
        if not names - found.keys():
            break
        profile = version_profile(ModelVersion.objects.defer("lineage").get(pk=pk))
        for name, feature in (profile.features if profile else {}).items():
            if name in names:
                found.setdefault(name, feature)
    return found


def bins_freeze(
    *, model: MLModel, names: set[str], since: dict[str, datetime] | None = None
) -> dict[str, Bins]:
    """Freeze the named features' bins: from the model's first reference that has them, else
    its first days of predictions, else (a feature a later version added) the first days from
    the feature's first value, as given in ``since``."""
    from_reference = first_references(model, names)
    sample = features_sample(model, names - from_reference.keys())
    absent = {n for n in names - from_reference.keys() if n not in sample}
    later = {n: (since or {})[n] for n in absent if n in (since or {})}
    for moment in sorted(set(later.values())):
        group = {n for n, first in later.items() if first == moment}
        sample |= features_sample(model, group, since=moment)
    frozen: dict[str, Bins] = {}
    for name in sorted(names):
        feature = from_reference.get(name)
        if feature is not None:
            numeric = isinstance(feature, NumericReference)
            edges = feature.edges if numeric else np.array([])
            frozen[name] = Bins(name, "numerical" if numeric else "categorical", edges)
        else:
            kind, numbers = sample.get(name, (UNKNOWN, None))
            edges = numeric_bin_edges(numbers) if kind == "numerical" else []
            frozen[name] = Bins(name, kind, np.asarray(edges, dtype=float))
        deciles = getattr(feature, "deciles", None)
        FeatureBins.objects.update_or_create(
            model=model,
            name=name,
            defaults={
                "kind": frozen[name].kind,
                "edges": frozen[name].edges.astype("<f8").tobytes(),
                "source": "reference" if feature is not None else "predictions",
                "deciles": None if deciles is None else np.asarray(deciles, "<f8").tobytes(),
            },
        )
    return frozen


def features_sample(
    model: MLModel, names: set[str], since: datetime | None = None
) -> dict[str, tuple[str, np.ndarray | None]]:
    """The kind of each named feature with a value in the model's first days of predictions
    (from ``since``, when given), and a numerical one's values there (NaN: not a float)."""
    if not names:
        return {}
    stored = Prediction.objects.filter(model_id=model.pk)
    if since is not None:
        stored = stored.filter(timestamp__gte=since)
    first = stored.aggregate(t=Min("timestamp"))["t"]
    if first is None:
        return {}
    rows = stored.filter(timestamp__lt=first + timedelta(days=FREEZE_DAYS)).order_by("timestamp")
    if is_postgres():
        return sample_select(rows, names)
    documents = rows.values_list("features", flat=True)[:FREEZE_SAMPLE_ROWS]
    documents = [features if isinstance(features, dict) else {} for features in documents]
    sample = {}
    for name in names:
        values = [features.get(name) for features in documents]
        kind = feature_kind(values)
        if kind is not None:
            sample[name] = (kind, numeric_values(values) if kind == "numerical" else None)
    return sample


# Per feature of the sample: whether any value is present, whether every present one is a
# number, and the numbers as float8 (NaN beyond float range; a magnitude under the smallest
# float is 0, as Python reads it), so no value stops the freeze.
SAMPLE_SELECT = """
    WITH sample AS ({rows})
    SELECT e.key, bool_and(jsonb_typeof(e.value) = 'number'),
        array_send(array_agg(CASE
            WHEN abs((e.value)::numeric) > 1.7976931348623157e308 THEN 'NaN'::float8
            WHEN abs((e.value)::numeric) < 2.5e-324 THEN 0::float8
            ELSE (e.value)::float8 END) FILTER (WHERE jsonb_typeof(e.value) = 'number'))
    FROM sample CROSS JOIN LATERAL jsonb_each(CASE WHEN jsonb_typeof(sample.features) = 'object'
        THEN sample.features END) e
    WHERE e.key = ANY(%s) AND jsonb_typeof(e.value) <> 'null'
    GROUP BY e.key"""


def sample_select(rows, names: set[str]) -> dict[str, tuple[str, np.ndarray | None]]:
    """`features_sample` in one statement: the JSON is read by PostgreSQL, not parsed into
    Python a row at a time (a model of 100 features spent over a minute there)."""
    query, params = rows.values("features")[:FREEZE_SAMPLE_ROWS].query.sql_with_params()
    sample = {}
    with connection.cursor() as cursor:
        cursor.execute(SAMPLE_SELECT.format(rows=query), [*params, sorted(names)])
        for name, numeric, numbers in cursor.fetchall():
            if numeric:
                sample[name] = ("numerical", binary_array(numbers, ">f8"))
            else:
                sample[name] = ("categorical", None)
    return sample


def model_hours_mark_dirty(model: MLModel) -> None:
    hours_mark_dirty("model_id", model.pk)


def version_hours_mark_dirty(version: ModelVersion) -> None:
    hours_mark_dirty("version_id", version.pk)


def hours_mark_dirty(column: str, key: int) -> None:
    """Every hour with predictions of the model or version, to be aggregated again."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO monitoring_dirtyhour (model_id, hour)
            SELECT DISTINCT model_id, {hour_of("timestamp")} FROM monitoring_prediction
            WHERE {column} = %s ON CONFLICT DO NOTHING""",
            [key],
        )


# --- a version's reference on the model's bins ---


def references_compute(version: ModelVersion, bins: dict[str, Bins]) -> References:
    """The version's registered reference counted on the model's bins (reads its JSON)."""
    profile = version_profile(version, bins)
    if profile is None:
        return NO_REFERENCES
    features = {
        name: fitting(profile.features.get(name), one)
        for name, one in bins.items()
        if one.kind != UNKNOWN and name in profile.features
    }
    return References(profile.rows, features)


def fitting(feature: Reference | None, bins: Bins) -> Reference | None:
    """The reference of a feature if it is on the model's bins, else None."""
    if bins.kind == "categorical":
        return feature if isinstance(feature, CategoricalReference) else None
    if isinstance(feature, NumericReference) and np.array_equal(feature.edges, bins.edges):
        return feature
    return None


def references_load(version: ModelVersion, bins: dict[str, Bins]) -> References:
    """The version's reference on the model's bins: the stored counts when they cover every
    feature of a known kind, else computed here from its JSON (a reference registered, or a
    feature frozen, since the last aggregation)."""
    if not ModelVersion.objects.filter(pk=version.pk, reference__isnull=False).exists():
        return NO_REFERENCES
    rows = list(FeatureReference.objects.filter(version=version))
    known = {name for name, one in bins.items() if one.kind != UNKNOWN}
    if known <= {row.name for row in rows}:
        return references_of(rows, bins)
    return references_compute(ModelVersion.objects.defer("lineage").get(pk=version.pk), bins)


def references_of(rows: list[FeatureReference], bins: dict[str, Bins]) -> References:
    features: dict[str, Reference | None] = {}
    for row in rows:
        one = bins.get(row.name)
        if row.reference is None or one is None:
            features[row.name] = None
        elif one.kind == "numerical":
            deciles = np.frombuffer(bytes(row.deciles), "<f8")
            features[row.name] = NumericReference(
                histogram_decode(bytes(row.reference), one.edges), deciles
            )
        else:
            features[row.name] = CategoricalReference(*categorical_merge([bytes(row.reference)]))
    return References(max((row.reference_rows for row in rows), default=0), features)


def reference_fields(feature: Reference | None) -> dict:
    if feature is None:
        return {"reference": None, "deciles": None}
    if isinstance(feature, NumericReference):
        return {
            "reference": histogram_encode(feature.histogram),
            "deciles": np.asarray(feature.deciles, dtype="<f8").tobytes(),
        }
    return {"reference": categorical_encode(feature.counts, feature.missing), "deciles": None}


def references_ensure(*, version: ModelVersion, bins: dict[str, Bins]) -> None:
    """Store the version's reference on the model's bins for the features of a known kind
    that have none stored yet (nothing without a registered reference)."""
    known = {name for name, one in bins.items() if one.kind != UNKNOWN}
    stored = set(FeatureReference.objects.filter(version=version).values_list("name", flat=True))
    todo = known - stored
    if not todo or not ModelVersion.objects.filter(pk=version.pk, reference__isnull=False).exists():
        return
    full = ModelVersion.objects.defer("lineage").get(pk=version.pk)
    computed = references_compute(full, {name: bins[name] for name in todo})
    FeatureReference.objects.bulk_create(
        [
            FeatureReference(
                model_id=version.model_id,
                version=version,
                name=name,
                reference_rows=computed.rows,
                **reference_fields(computed.features.get(name)),
            )
            for name in sorted(todo)
        ]
    )
