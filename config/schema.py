"""The OpenAPI schema's error answers: every operation lists the problem+json it may answer."""

from __future__ import annotations

from config.problems import PROBLEM_CONTENT_TYPE

PROBLEM_SCHEMA = {
    "type": "object",
    "description": "An error answer (RFC 9457).",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string", "description": "what is wrong, in plain words"},
        "errors": {
            "type": "array",
            "items": {"type": "object", "additionalProperties": True},
            "description": "per field or per record: field, message (index, code)",
        },
    },
    "required": ["type", "title", "status", "detail"],
}
EVERY_CALL = {
    "400": "A query parameter or the body is invalid; `detail` says which and why.",
    "401": "No API key, or an unknown or revoked one.",
    "403": "The key lacks the scope or the model, or the session's role is too low.",
}
WITH_A_PATH_ID = {"404": "No such model, or no such object under it."}
INGESTION = {
    "413": "The body is over CANARY_MAX_UPLOAD_MB, or holds more than CANARY_MAX_RECORDS records.",
    "411": "A chunked body the server in front cannot end: send a Content-Length.",
    "415": "The Content-Type is not JSON, NDJSON, CSV or Parquet.",
    "429": "Over the key's rate (CANARY_INGEST_RATE); `Retry-After` says when to try again.",
}
INGESTION_PATHS = ("/predictions", "/outcomes")
# Answers of single operations, by method and the end of the path.
OWN_ANSWERS = {
    ("get", "/alerts"): {"404": "The `model` query parameter names no model."},
    ("post", "/models"): {"409": "A model of this name exists."},
    ("post", "/versions"): {"409": "Another body is already registered under this version."},
    ("post", "/rollouts"): {"409": "The version does not pass the promotion gates."},
    ("post", "/rollouts/rollback"): {"409": "There is no rollout to roll back."},
    ("post", "/resubmit"): {"409": "The quarantined record is already resolved."},
    ("post", "/acknowledge"): {"409": "The alert is resolved."},
    ("post", "/webhooks"): {
        "409": "The channel (kind, URL and routing key) is already set up for the model."
    },
}


def problem_responses(result, generator, request, public):
    """drf-spectacular postprocessing hook: add the error answers that apply to each operation."""
    result.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            errors = {**EVERY_CALL}
            errors |= WITH_A_PATH_ID if "{" in path else {}
            errors |= INGESTION if method == "post" and path.endswith(INGESTION_PATHS) else {}
            errors |= own_answers(method, path)
            responses = operation.setdefault("responses", {})
            for code, description in errors.items():
                responses.setdefault(code, problem_answer(description))
    return result


def own_answers(method: str, path: str) -> dict[str, str]:
    return next(
        (
            answers
            for (verb, end), answers in OWN_ANSWERS.items()
            if verb == method and path.endswith(end)
        ),
        {},
    )


def problem_answer(description: str) -> dict:
    return {
        "description": description,
        "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
