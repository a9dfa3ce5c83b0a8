"""Validation of single prediction and outcome records, with the reasons a sender can act on."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime

MAX_ID_CHARS = 200
MAX_TEXT_CHARS = 200
MAX_VERSION_CHARS = 100
MAX_NAME_CHARS = 100
PREDICTION_FIELDS = {
    "prediction_id", "timestamp", "model_version", "prediction", "score", "segment", "features",
}  # fmt: skip
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
    features: dict | None
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


def prediction_validate(record) -> tuple[PredictionRow | None, list[Problem]]:
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
    digest = content_md5(
        {
            "t": timestamp.isoformat(),
            "v": version,
            "p": label,
            "s": score,
            "g": segment,
            "f": features,
        }
    )
    row = PredictionRow(
        prediction_id, timestamp, version, label, number,
        None if score is None else float(score), segment, features, digest,
    )  # fmt: skip
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
