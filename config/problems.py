"""Every API error answers `application/problem+json` (RFC 9457)."""

from __future__ import annotations

from http import HTTPStatus

from django.http import JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.views import exception_handler

PROBLEM_TYPE = "about:blank"
PROBLEM_CONTENT_TYPE = "application/problem+json"


class ApiProblem(exceptions.APIException):
    """An error with a status, a plain-words detail and optional per-item errors."""

    def __init__(self, status_code: int, detail: str, errors: list | None = None, headers=None):
        self.status_code = status_code
        self.errors = errors or []
        self.headers = headers or {}
        super().__init__(detail)


def problem_response(
    status_code: int, detail: str, errors: list | None = None, headers: dict | None = None
) -> JsonResponse:
    body = {
        "type": PROBLEM_TYPE,
        "title": HTTPStatus(status_code).phrase,
        "status": status_code,
        "detail": detail,
        "errors": errors or [],
    }
    response = JsonResponse(body, status=status_code, content_type=PROBLEM_CONTENT_TYPE)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def problem_exception_handler(exc, context):
    response = exception_handler(exc, context)
    if response is None:
        return None
    errors = getattr(exc, "errors", None)
    if isinstance(exc, exceptions.ValidationError):
        errors = field_errors(exc.detail)
        detail = "The request body is invalid: " + "; ".join(
            f"{error['field']}: {error['message']}" for error in errors
        )
    elif isinstance(exc, exceptions.APIException):
        detail = str(exc.detail)
    else:
        detail = HTTPStatus(response.status_code).phrase
    headers = {k: v for k, v in response.items() if k in ("WWW-Authenticate", "Retry-After")}
    if response.status_code == status.HTTP_401_UNAUTHORIZED and "WWW-Authenticate" not in headers:
        headers["WWW-Authenticate"] = "Bearer"
    return problem_response(response.status_code, detail, errors, headers)


def field_errors(detail, prefix: str = "") -> list[dict]:
    """Flatten DRF's nested validation errors into [{field, message}]."""
    if isinstance(detail, dict):
        out = []
        for name, value in detail.items():
            field = name if name != "non_field_errors" else ""
            out += field_errors(value, f"{prefix}.{field}" if prefix and field else prefix or field)
        return out
    if isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            return [{"field": prefix, "message": str(item)} for item in detail]
        out = []
        for index, item in enumerate(detail):
            out += field_errors(item, f"{prefix}[{index}]")
        return out
    return [{"field": prefix, "message": str(detail)}]


def is_api(request) -> bool:
    return request.path.startswith("/api/")


def not_found(request, exception):
    """handler404: an unrouted API path answers problem+json, a page path Django's page."""
    if is_api(request):
        return problem_response(404, f"There is no API endpoint at {request.path[:200]}.")
    return defaults.page_not_found(request, exception)


def server_error(request):
    """handler500: an unhandled error in the API answers problem+json (the trace is logged)."""
    if is_api(request):
        return problem_response(500, "The server failed to answer; the error has been logged.")
    return defaults.server_error(request)
