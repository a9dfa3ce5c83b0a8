"""Validation of single prediction and outcome records, with the reasons a sender can act on."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime

from factory.models import MLModel

MAX_ID_CHARS = 200
MAX_TEXT_CHARS = 200
MAX_VERSION_CHARS = 100
MAX_NAME_CHARS = 100
PREDICTION_FIELDS = {
    "prediction_id",
    "timestamp",
    "model_version",
    "prediction",
    "score",
    "segment",
    "features",
}
OUTCOME_FIELDS = {"prediction_id", "observed_at", "outcome", "values"}
# PostgreSQL text cannot hold NUL, so a NUL is refused here rather than fail the whole request.
NUL_MESSAGE = "{field} must not contain NUL (\\u0000) characters"


@dataclass(frozen=True, slots=True)
class Problem:
    code: str  # required, invalid or conflict
    field: str
    message: str


@dataclass(slots=True)
class PredictionRow:
    prediction_id: str
    timestamp: datetime
    model_version: str
    prediction: str
    prediction_num: float | None
    score: float | None
    segment: str
    features_json: str | None  # canonical: sorted keys, compact
    content_md5: str


@dataclass(slots=True)
class OutcomeRow:
    prediction_id: str
    observed_at: datetime
    outcome: str | None
    outcome_num: float | None
    values: dict | None
    content_md5: str


def canonical_label(value: bool | int | float | str) -> str:
    """One text form per class, so that 1, 1.0 and true compare equal."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return value


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_timestamp(value, field: str, problems: list[Problem]) -> datetime | None:
    if value is None:
        problems.append(Problem("required", field, f"{field} is required"))
        return None
    if not isinstance(value, str):
        problems.append(Problem("invalid", field, f"{field} must be an RFC 3339 string"))
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        problems.append(Problem("invalid", field, f"{field} {value[:40]!r} is not RFC 3339"))
        return None
    if parsed.tzinfo is None:
        problems.append(
            Problem("invalid", field, f"{field} {value[:40]!r} has no UTC offset (add Z or +00:00)")
        )
        return None
    return parsed.astimezone(UTC)


def check_text(record: dict, field: str, limit: int, problems: list[Problem], *, required: bool):
    value = record.get(field)
    if value is None:
        if required:
            problems.append(Problem("required", field, f"{field} is required"))
        return None
    if not isinstance(value, str):
        problems.append(Problem("invalid", field, f"{field} must be a string"))
        return None
    if required and not value:
        problems.append(Problem("required", field, f"{field} must not be empty"))
        return None
    if len(value) > limit:
        problems.append(Problem("invalid", field, f"{field} is longer than {limit} characters"))
        return None
    if "\x00" in value:
        problems.append(Problem("invalid", field, NUL_MESSAGE.format(field=field)))
        return None
    return value


def check_finite(value, field: str, problems: list[Problem]) -> bool:
    if isinstance(value, float) and not math.isfinite(value):
        problems.append(Problem("invalid", field, f"{field} must be a finite number"))
        return False
    return True


def check_label(value, field: str, problems: list[Problem]) -> tuple[str | None, float | None]:
    if isinstance(value, (dict, list)):
        problems.append(Problem("invalid", field, f"{field} must be a number, string or boolean"))
        return None, None
    if isinstance(value, str) and len(value) > MAX_TEXT_CHARS:
        problems.append(
            Problem("invalid", field, f"{field} is longer than {MAX_TEXT_CHARS} characters")
        )
        return None, None
    if isinstance(value, str) and "\x00" in value:
        problems.append(Problem("invalid", field, NUL_MESSAGE.format(field=field)))
        return None, None
    if not check_finite(value, field, problems):
        return None, None
    number = float(value) if isinstance(value, (int, float)) else None
    return canonical_label(value), number


def check_unknown(record: dict, known: set[str], problems: list[Problem]) -> None:
    for name in sorted(set(record) - known):
        problems.append(Problem("invalid", str(name)[:200], f"unknown field {str(name)[:200]!r}"))


def check_features(value, problems: list[Problem]) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        problems.append(Problem("invalid", "features", "features must be an object"))
        return None
    for name, item in value.items():
        field = f"features.{name}"[:200]
        if len(name) > MAX_NAME_CHARS:
            problems.append(Problem("invalid", field, "feature names are at most 100 characters"))
        elif "\x00" in name or (isinstance(item, str) and "\x00" in item):
            problems.append(Problem("invalid", field, NUL_MESSAGE.format(field=field)))
        elif isinstance(item, (dict, list)):
            problems.append(
                Problem("invalid", field, f"{field} must be a number, string, boolean or null")
            )
        elif isinstance(item, str) and len(item) > MAX_TEXT_CHARS:
            problems.append(
                Problem("invalid", field, f"{field} is longer than {MAX_TEXT_CHARS} characters")
            )
        else:
            check_finite(item, field, problems)
    return value


def check_values(value, problems: list[Problem]) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        problems.append(Problem("invalid", "values", "values must be an object of numbers"))
        return None
    clean = {}
    for name, item in value.items():
        field = f"values.{name}"[:200]
        if len(name) > MAX_NAME_CHARS:
            problems.append(Problem("invalid", field, "value names are at most 100 characters"))
        elif "\x00" in name:
            problems.append(Problem("invalid", field, NUL_MESSAGE.format(field=field)))
        elif isinstance(item, bool):
            clean[name] = 1.0 if item else 0.0
        elif not is_number(item):
            problems.append(Problem("invalid", field, f"{field} must be a number"))
        elif check_finite(item, field, problems):
            clean[name] = float(item)
    return clean


def content_md5(fields: dict) -> str:
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def prediction_digest(
    timestamp: datetime,
    version: str,
    label: str,
    score: float | None,
    segment: str,
    features_json: str | None,
) -> str:
    """The content hash that tells a duplicate (same hash) from a conflict (same id, other hash)."""
    parts = (timestamp.isoformat(), version, label, repr(score), segment, str(features_json))
    text = "\x1f".join(parts)
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def features_text(features: dict | None) -> str | None:
    if features is None:
        return None
    return json.dumps(features, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def prediction_validate(record) -> tuple[PredictionRow | None, list[Problem]]:
    """The fast path accepts well-formed records; anything else gets the full list of reasons."""
    row = prediction_fast(record)
    if row is not None:
        return row, []
    return prediction_check(record)


def short_text(value, limit: int) -> bool:
    return type(value) is str and 0 < len(value) <= limit and "\x00" not in value


def prediction_fast(record) -> PredictionRow | None:
    """A valid record's row, with as few checks as the rules allow; None when in doubt."""
    if type(record) is not dict or not record.keys() <= PREDICTION_FIELDS:
        return None
    get = record.get
    prediction_id, text, version = get("prediction_id"), get("timestamp"), get("model_version")
    if not (
        short_text(prediction_id, MAX_ID_CHARS)
        and type(text) is str
        and short_text(version, MAX_VERSION_CHARS)
    ):
        return None
    try:
        timestamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    if timestamp.tzinfo is None:
        return None
    label, number = fast_label(get("prediction"))
    score, segment = get("score"), get("segment")
    if label is None or not (score is None or (type(score) in (float, int) and 0 <= score <= 1)):
        return None
    if segment is None:
        segment = ""
    elif type(segment) is not str or len(segment) > MAX_TEXT_CHARS or "\x00" in segment:
        return None
    features = get("features")
    if features is not None and not fast_features(features):
        return None
    timestamp = timestamp.astimezone(UTC)
    score = None if score is None else float(score)
    features_json = features_text(features)
    digest = prediction_digest(timestamp, version, label, score, segment, features_json)
    return PredictionRow(
        prediction_id, timestamp, version, label, number, score, segment, features_json, digest
    )


def fast_label(value) -> tuple[str | None, float | None]:
    kind = type(value)
    if kind is int or kind is bool:
        return canonical_label(value), float(value)
    if kind is float:
        return (canonical_label(value), value) if math.isfinite(value) else (None, None)
    if kind is str and len(value) <= MAX_TEXT_CHARS and "\x00" not in value:
        return value, None
    return None, None


def fast_features(features) -> bool:
    if type(features) is not dict:
        return False
    for name, item in features.items():
        if len(name) > MAX_NAME_CHARS or "\x00" in name:
            return False
        kind = type(item)
        if kind is float:
            if not math.isfinite(item):
                return False
        elif kind is str:
            if len(item) > MAX_TEXT_CHARS or "\x00" in item:
                return False
        elif not (item is None or kind is int or kind is bool):
            return False
    return True


def prediction_check(record) -> tuple[PredictionRow | None, list[Problem]]:
    if not isinstance(record, dict):
        return None, [Problem("invalid", "", "a record must be a JSON object")]
    problems: list[Problem] = []
    check_unknown(record, PREDICTION_FIELDS, problems)
    prediction_id = check_text(record, "prediction_id", MAX_ID_CHARS, problems, required=True)
    timestamp = parse_timestamp(record.get("timestamp"), "timestamp", problems)
    version = check_text(record, "model_version", MAX_VERSION_CHARS, problems, required=True)
    raw_prediction = record.get("prediction")
    label, number = None, None
    if raw_prediction is None:
        problems.append(Problem("required", "prediction", "prediction is required"))
    else:
        label, number = check_label(raw_prediction, "prediction", problems)
    score = record.get("score")
    if score is not None and (not is_number(score) or not 0 <= score <= 1):
        problems.append(Problem("invalid", "score", "score must be a number between 0 and 1"))
    segment = check_text(record, "segment", MAX_TEXT_CHARS, problems, required=False) or ""
    features = check_features(record.get("features"), problems)
    if problems:
        return None, problems
    score = None if score is None else float(score)
    features_json = features_text(features)
    digest = prediction_digest(timestamp, version, label, score, segment, features_json)
    row = PredictionRow(
        prediction_id, timestamp, version, label, number, score, segment, features_json, digest
    )
    return row, []


def outcome_validate(record) -> tuple[OutcomeRow | None, list[Problem]]:
    if not isinstance(record, dict):
        return None, [Problem("invalid", "", "a record must be a JSON object")]
    problems: list[Problem] = []
    check_unknown(record, OUTCOME_FIELDS, problems)
    prediction_id = check_text(record, "prediction_id", MAX_ID_CHARS, problems, required=True)
    observed_at = parse_timestamp(record.get("observed_at"), "observed_at", problems)
    label, number = None, None
    if record.get("outcome") is not None:
        label, number = check_label(record["outcome"], "outcome", problems)
    values = check_values(record.get("values"), problems)
    if record.get("outcome") is None and not record.get("values"):
        problems.append(Problem("required", "outcome", "an outcome or values is required"))
    if problems:
        return None, problems
    digest = content_md5({"t": observed_at.isoformat(), "o": label, "v": values})
    return OutcomeRow(prediction_id, observed_at, label, number, values or None, digest), []


def positive_label(model: MLModel) -> str:
    """The stored text of the model's positive class (1 when none was given)."""
    positive = model.positive_class
    return canonical_label(positive) if positive is not None else "1"
