"""Validation of single prediction and outcome records, with the reasons a sender can act on."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from factory.models import MLModel
from monitoring.ingest.validate import (
    INVALID,
    MAX_ID_CHARS,
    MAX_NAME_CHARS,
    MAX_NUMBER,
    MAX_TEXT_CHARS,
    MAX_VERSION_CHARS,
    REQUIRED,
    SCORES_SUM_TOLERANCE,
    TOO_LONG,
    Problem,
    encodable,
    is_number,
    label_problem,
    number_ok,
    number_problem,
    printable,
    text_fits,
    text_ok,
    text_problem,
    timestamp_check,
)

PREDICTION_FIELDS = {
    "prediction_id",
    "timestamp",
    "model_version",
    "prediction",
    "score",
    "scores",
    "segment",
    "features",
}
OUTCOME_FIELDS = {"prediction_id", "observed_at", "outcome", "values"}


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
    scores_json: str | None = None  # multiclass, canonical as features_json


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


def check_text(record: dict, field: str, limit: int, problems: list[Problem], *, required: bool):
    value = record.get(field)
    if value is None:
        if required:
            problems.append(Problem(REQUIRED, field, f"{field} is required"))
        return None
    if not isinstance(value, str):
        problems.append(Problem(INVALID, field, f"{field} must be a string"))
        return None
    if required and not value:
        problems.append(Problem(REQUIRED, field, f"{field} must not be empty"))
        return None
    return value if problem_added(text_problem(value, field, limit), problems) is None else None


def problem_added(problem: Problem | None, problems: list[Problem]) -> Problem | None:
    if problem is not None:
        problems.append(problem)
    return problem


def parse_timestamp(value, field: str, problems: list[Problem]) -> datetime | None:
    moment = timestamp_check(value, field)
    if isinstance(moment, Problem):
        problems.append(moment)
        return None
    return moment


def check_label(value, field: str, problems: list[Problem]) -> tuple[str | None, float | None]:
    if not isinstance(value, (str, int, float)):
        problems.append(Problem(INVALID, field, f"{field} must be a number, string or boolean"))
        return None, None
    if isinstance(value, str):
        if problem_added(text_problem(value, field, MAX_TEXT_CHARS), problems):
            return None, None
        return value, None
    if problem_added(number_problem(value, field), problems):
        return None, None
    label = canonical_label(value)
    if problem_added(label_problem(label, field), problems):
        return None, None
    return label, float(value)


def check_unknown(record: dict, known: set[str], problems: list[Problem]) -> None:
    for name in sorted(map(str, set(record) - known)):
        shown = printable(name)[:200]
        problems.append(Problem(INVALID, shown, f"unknown field {shown!r}"))


def check_features(value, problems: list[Problem]) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        problems.append(Problem(INVALID, "features", "features must be an object"))
        return None
    for name, item in value.items():
        problem_added(feature_problem(name, item, printable(f"features.{name}")[:200]), problems)
    return value


def feature_problem(name: str, item, field: str) -> Problem | None:
    if len(name) > MAX_NAME_CHARS:
        return Problem(TOO_LONG, field, "feature names are at most 100 characters")
    if problem := text_problem(name, field, MAX_NAME_CHARS):
        return problem
    if isinstance(item, str):
        return text_problem(item, field, MAX_TEXT_CHARS)
    if is_number(item):
        return number_problem(item, field)
    if item is None or isinstance(item, bool):
        return None
    return Problem(INVALID, field, f"{field} must be a number, string, boolean or null")


def check_values(value, problems: list[Problem]) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        problems.append(Problem(INVALID, "values", "values must be an object of numbers"))
        return None
    clean = {}
    for name, item in value.items():
        number = value_number(name, item, printable(f"values.{name}")[:200])
        if isinstance(number, Problem):
            problems.append(number)
        else:
            clean[name] = number
    return clean


def value_number(name: str, item, field: str) -> float | Problem:
    """A business value as the float stored, or its problem."""
    if len(name) > MAX_NAME_CHARS:
        return Problem(TOO_LONG, field, "value names are at most 100 characters")
    if problem := text_problem(name, field, MAX_NAME_CHARS):
        return problem
    if isinstance(item, bool):
        return 1.0 if item else 0.0
    if not is_number(item):
        return Problem(INVALID, field, f"{field} must be a number")
    return number_problem(item, field) or float(item)


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
    scores_json: str | None = None,
) -> str:
    """The content hash that tells a duplicate (same hash) from a conflict (same id, other hash).
    Per-class scores join the text only when given, so the hash of a record without them is
    the one stored before they existed (and the one the columnar paths compute)."""
    parts = (timestamp.isoformat(), version, label, repr(score), segment, str(features_json))
    if scores_json is not None:
        parts += (scores_json,)
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


def prediction_fast(record) -> PredictionRow | None:
    """A valid record's row, with as few checks as the rules allow; None when in doubt."""
    if type(record) is not dict or not record.keys() <= PREDICTION_FIELDS:
        return None
    get = record.get
    prediction_id, version = get("prediction_id"), get("model_version")
    if not (text_ok(prediction_id, MAX_ID_CHARS) and text_ok(version, MAX_VERSION_CHARS)):
        return None
    timestamp = timestamp_check(get("timestamp"), "timestamp")
    if type(timestamp) is not datetime:
        return None
    label, number = fast_label(get("prediction"))
    score, segment = get("score"), get("segment")
    if get("scores") is not None:  # checked in full by prediction_check
        return None
    if label is None or not (score is None or (type(score) in (float, int) and 0 <= score <= 1)):
        return None
    if segment is None:
        segment = ""
    elif type(segment) is not str or not text_fits(segment, MAX_TEXT_CHARS):
        return None
    features = get("features")
    if features is not None and not fast_features(features):
        return None
    score = None if score is None else float(score)
    features_json = features_text(features)
    digest = prediction_digest(timestamp, version, label, score, segment, features_json)
    return PredictionRow(
        prediction_id, timestamp, version, label, number, score, segment, features_json, digest
    )


def fast_label(value) -> tuple[str | None, float | None]:
    kind = type(value)
    if kind is bool:
        return canonical_label(value), float(value)
    if kind is int or kind is float:
        if not number_ok(value):
            return None, None
        label = canonical_label(value)
        return (label, float(value)) if len(label) <= MAX_TEXT_CHARS else (None, None)
    if kind is str and text_fits(value, MAX_TEXT_CHARS):
        return value, None
    return None, None


def fast_features(features) -> bool:
    """The rules of check_features, inlined: this loop runs for every feature of every record."""
    if type(features) is not dict:
        return False
    for name, item in features.items():
        if len(name) > MAX_NAME_CHARS or "\x00" in name or not (name.isascii() or encodable(name)):
            return False
        kind = type(item)
        if kind is float or kind is int:
            if not -MAX_NUMBER <= item <= MAX_NUMBER:
                return False
        elif kind is str:
            if (
                len(item) > MAX_TEXT_CHARS
                or "\x00" in item
                or not (item.isascii() or encodable(item))
            ):
                return False
        elif not (item is None or kind is bool):
            return False
    return True


def prediction_check(record) -> tuple[PredictionRow | None, list[Problem]]:
    if not isinstance(record, dict):
        return None, [Problem(INVALID, "", "a record must be a JSON object")]
    problems: list[Problem] = []
    check_unknown(record, PREDICTION_FIELDS, problems)
    prediction_id = check_text(record, "prediction_id", MAX_ID_CHARS, problems, required=True)
    timestamp = parse_timestamp(record.get("timestamp"), "timestamp", problems)
    version = check_text(record, "model_version", MAX_VERSION_CHARS, problems, required=True)
    raw_prediction = record.get("prediction")
    label, number = None, None
    if raw_prediction is None:
        problems.append(Problem(REQUIRED, "prediction", "prediction is required"))
    else:
        label, number = check_label(raw_prediction, "prediction", problems)
    score = record.get("score")
    if score is not None and (not is_number(score) or not 0 <= score <= 1):
        problems.append(Problem(INVALID, "score", "score must be a number between 0 and 1"))
    scores = check_scores(record.get("scores"), label, problems)
    segment = check_text(record, "segment", MAX_TEXT_CHARS, problems, required=False) or ""
    features = check_features(record.get("features"), problems)
    if problems:
        return None, problems
    score = None if score is None else float(score)
    features_json, scores_json = features_text(features), features_text(scores)
    digest = prediction_digest(
        timestamp, version, label, score, segment, features_json, scores_json
    )
    row = PredictionRow(
        prediction_id,
        timestamp,
        version,
        label,
        number,
        score,
        segment,
        features_json,
        digest,
        scores_json,
    )
    return row, []


def check_scores(value, label: str | None, problems: list[Problem]) -> dict | None:
    """Multiclass scores: an object of at least two classes to probabilities in [0, 1] that
    sum to 1 within SCORES_SUM_TOLERANCE and name the predicted class, which the estimates
    need (the predicted class's own calibrated chance is how often it is right). Class names
    follow the label rules; the stored object has floats."""
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) < 2:
        problems.append(
            Problem(INVALID, "scores", "scores must be an object of two or more classes")
        )
        return None
    clean, before = {}, len(problems)
    for name, item in value.items():
        field = printable(f"scores.{name}")[:200]
        if problem_added(text_problem(name, field, MAX_TEXT_CHARS), problems):
            continue
        if not is_number(item) or not 0 <= item <= 1:
            problems.append(Problem(INVALID, field, f"{field} must be a number between 0 and 1"))
            continue
        clean[name] = float(item)
    if len(problems) > before:
        return None
    total = sum(clean.values())
    if abs(total - 1) > SCORES_SUM_TOLERANCE:
        problems.append(
            Problem(INVALID, "scores", f"scores sum to {total:.6g}, not 1 (within 0.001)")
        )
    elif label is not None and label not in clean:
        problems.append(
            Problem(INVALID, "scores", f"scores must include the predicted class {label!r}")
        )
    return clean


def outcome_validate(record) -> tuple[OutcomeRow | None, list[Problem]]:
    if not isinstance(record, dict):
        return None, [Problem(INVALID, "", "a record must be a JSON object")]
    problems: list[Problem] = []
    check_unknown(record, OUTCOME_FIELDS, problems)
    prediction_id = check_text(record, "prediction_id", MAX_ID_CHARS, problems, required=True)
    observed_at = parse_timestamp(record.get("observed_at"), "observed_at", problems)
    label, number = None, None
    if record.get("outcome") is not None:
        label, number = check_label(record["outcome"], "outcome", problems)
    values = check_values(record.get("values"), problems)
    if record.get("outcome") is None and not record.get("values"):
        problems.append(Problem(REQUIRED, "outcome", "an outcome or values is required"))
    if problems:
        return None, problems
    digest = content_md5({"t": observed_at.isoformat(), "o": label, "v": values})
    return OutcomeRow(prediction_id, observed_at, label, number, values or None, digest), []


def positive_label(model: MLModel) -> str:
    """The stored text of the model's positive class (1 when none was given)."""
    positive = model.positive_class
    return canonical_label(positive) if positive is not None else "1"
