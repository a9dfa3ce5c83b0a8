"""Validation of a version's body: the lineage manifest and the optional reference.

DRF serializers give nested field errors ("lineage.training_data.sha256: ..."), which the problem
handler flattens into the 400 answer. The reference is stored as sent; turning rows into drift
baselines is the statistics' job (monitoring), which the factory must not import.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from itertools import pairwise

from rest_framework import serializers

MAX_REFERENCE_ROWS = 100_000
PROFILE_FORMAT = "canary-profile/1"
SHA256 = re.compile(r"^[0-9a-f]{64}$")


class OffsetDateTimeField(serializers.Field):
    """An RFC 3339 timestamp that must carry a UTC offset; kept as the text that was sent."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise serializers.ValidationError("must be an RFC 3339 timestamp string")
        try:
            value = datetime.fromisoformat(data)
        except ValueError:
            raise serializers.ValidationError(f"{data!r} is not an RFC 3339 timestamp") from None
        if value.tzinfo is None:
            raise serializers.ValidationError(f"{data!r} has no UTC offset (add Z or +00:00)")
        return data

    def to_representation(self, value):
        return value


def finite_number(value, where: str = "") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise serializers.ValidationError(f"{where}must be a finite number, not {value!r}")
    return value


class TrainingDataSerializer(serializers.Serializer):
    uri = serializers.CharField(max_length=2000)
    sha256 = serializers.CharField()
    rows = serializers.IntegerField(min_value=1)
    start = OffsetDateTimeField()
    end = OffsetDateTimeField()

    def validate_sha256(self, value):
        if not SHA256.match(value.lower()):
            raise serializers.ValidationError("must be 64 hexadecimal characters (SHA-256)")
        return value.lower()

    def validate(self, attrs):
        if datetime.fromisoformat(attrs["start"]) > datetime.fromisoformat(attrs["end"]):
            raise serializers.ValidationError({"end": "must not be before start"})
        return attrs


class ValidationSchemeSerializer(serializers.Serializer):
    scheme = serializers.CharField(max_length=100)
    k = serializers.IntegerField(min_value=2, required=False)
    metrics = serializers.DictField(child=serializers.JSONField(), allow_empty=False)

    def validate_metrics(self, metrics):
        for name, value in metrics.items():
            finite_number(value, f"{name} ")
        return metrics

    def validate(self, attrs):
        if attrs["scheme"] == "kfold" and "k" not in attrs:
            raise serializers.ValidationError({"k": "kfold needs k, the number of folds"})
        return attrs


class LineageSerializer(serializers.Serializer):
    training_data = TrainingDataSerializer()
    code_version = serializers.CharField(max_length=200)
    parameters = serializers.DictField(child=serializers.JSONField())
    validation = ValidationSchemeSerializer()
    compute = serializers.DictField(child=serializers.JSONField(), allow_empty=False)


class ReferenceRowSerializer(serializers.Serializer):
    features = serializers.DictField(child=serializers.JSONField(allow_null=True), required=False)
    prediction = serializers.JSONField(required=False, allow_null=True)
    score = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=1)

    def validate_features(self, features):
        for name, value in features.items():
            if isinstance(value, (dict, list)):
                raise serializers.ValidationError(
                    f"{name} must be a number, string, boolean or null"
                )
        return features


def count_list(value, where: str, size: int | None = None, integer: bool = True) -> list:
    if not isinstance(value, list):
        raise serializers.ValidationError({where: "must be a list"})
    if size is not None and len(value) != size:
        raise serializers.ValidationError({where: f"must have {size} entries, has {len(value)}"})
    for index, item in enumerate(value):
        try:
            finite_number(item)
        except serializers.ValidationError:
            raise serializers.ValidationError(
                {f"{where}[{index}]": f"must be a finite number, not {item!r}"}
            ) from None
        if integer and (item < 0 or item != int(item)):
            raise serializers.ValidationError(
                {f"{where}[{index}]": f"must be a non-negative whole count, not {item!r}"}
            )
    return value


def count_value(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise serializers.ValidationError({where: f"must be a non-negative integer, not {value!r}"})
    return value


def numerical_feature_check(feature: dict, where: str) -> None:
    edges = count_list(feature.get("edges"), f"{where}.edges", integer=False)
    if any(b <= a for a, b in pairwise(edges)):
        raise serializers.ValidationError({f"{where}.edges": "must be strictly increasing"})
    counts = count_list(feature.get("counts"), f"{where}.counts", len(edges) + 1)
    at_edges = count_list(feature.get("at_edges"), f"{where}.at_edges", len(edges))
    if any(a > c for a, c in zip(at_edges, counts, strict=False)):
        raise serializers.ValidationError(
            {f"{where}.at_edges": "an at_edges count exceeds its bin's count"}
        )
    count_list(feature.get("sums"), f"{where}.sums", len(edges) + 1, integer=False)
    finite_number(feature.get("sum_sq"), f"{where}.sum_sq ")
    count_value(feature.get("missing"), f"{where}.missing")
    deciles = count_list(feature.get("deciles"), f"{where}.deciles", integer=False)
    if len(deciles) > 9 or not set(deciles) <= set(edges):
        raise serializers.ValidationError(
            {f"{where}.deciles": "must be at most 9 values, each one of the edges"}
        )


def categorical_feature_check(feature: dict, where: str) -> None:
    counts = feature.get("counts")
    if not isinstance(counts, dict):
        raise serializers.ValidationError({f"{where}.counts": "must be an object value → count"})
    for value, count in counts.items():
        count_value(count, f"{where}.counts.{value}")
    count_value(feature.get("missing"), f"{where}.missing")


def profile_feature_check(feature, where: str) -> None:
    if not isinstance(feature, dict):
        raise serializers.ValidationError({where: "must be an object with a kind"})
    if feature.get("kind") == "numerical":
        numerical_feature_check(feature, where)
    elif feature.get("kind") == "categorical":
        categorical_feature_check(feature, where)
    else:
        raise serializers.ValidationError({f"{where}.kind": "must be numerical or categorical"})


def profile_check(profile: dict) -> dict:
    """The shape of a canary-profile/1 (see docs/api.md); raises with the field that is wrong."""
    count_value(profile.get("rows"), "rows")
    features = profile.get("features")
    if not isinstance(features, dict):
        raise serializers.ValidationError({"features": "must be an object name → feature"})
    for name, feature in features.items():
        profile_feature_check(feature, f"features.{name}")
    for name in ("score", "prediction"):
        if profile.get(name) is not None:
            profile_feature_check(profile[name], name)
    unknown = set(profile) - {"format", "rows", "features", "score", "prediction"}
    if unknown:
        raise serializers.ValidationError({"": f"unknown profile fields: {sorted(unknown)}"})
    return profile


class ReferenceField(serializers.JSONField):
    """Raw reference rows, or a profile computed by the client (`canary-profile/1`)."""

    def to_internal_value(self, data):
        data = super().to_internal_value(data)
        if not isinstance(data, dict):
            raise serializers.ValidationError("must be an object with rows, or a profile")
        if "format" in data:
            if data["format"] != PROFILE_FORMAT:
                raise serializers.ValidationError(
                    {"format": f"unknown profile format; expected {PROFILE_FORMAT!r}"}
                )
            return profile_check(data)
        return rows_check(data)


def rows_check(data: dict) -> dict:
    rows = data.get("rows")
    if set(data) != {"rows"} or not isinstance(rows, list) or not rows:
        raise serializers.ValidationError(
            {"rows": "a reference is {'rows': [...]} with at least one row, or a profile"}
        )
    if len(rows) > MAX_REFERENCE_ROWS:
        raise serializers.ValidationError(
            {"rows": f"more than {MAX_REFERENCE_ROWS} rows; send a profile instead"}
        )
    serializer = ReferenceRowSerializer(data=rows, many=True)
    if not serializer.is_valid():
        errors = serializer.errors  # DRF gives {index: errors} or a list, by version
        items = errors.items() if isinstance(errors, dict) else enumerate(errors)
        errors = {f"rows[{i}]": e for i, e in items if e}
        raise serializers.ValidationError(errors)
    return data


class VersionRegisterSerializer(serializers.Serializer):
    version = serializers.CharField(max_length=100)
    lineage = serializers.JSONField()
    reference = ReferenceField(required=False, allow_null=True, default=None)

    def validate_lineage(self, lineage):
        if not isinstance(lineage, dict):
            raise serializers.ValidationError("must be an object (the lineage manifest)")
        checked = LineageSerializer(data=lineage)
        if not checked.is_valid():
            raise serializers.ValidationError(checked.errors)
        return lineage  # stored as sent (extra keys kept): it is the version's manifest

    def validate_version(self, version):
        if version != version.strip() or not version:
            raise serializers.ValidationError("must not be blank or padded with spaces")
        return version
