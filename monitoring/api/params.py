"""Query parameters of the API, parsed; a bad one is a 400 problem that says what is wrong."""

from __future__ import annotations

from datetime import datetime

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter

from common.numbers import finite_parse
from common.time import time_parse
from config.problems import ApiProblem

WINDOW_PARAMETERS = [
    OpenApiParameter("start", OpenApiTypes.DATETIME),
    OpenApiParameter("end", OpenApiTypes.DATETIME),
]


def query_time(request, name: str) -> datetime | None:
    text = request.query_params.get(name)
    if not text:
        return None
    try:
        return time_parse(text, name)
    except ValueError as error:
        raise ApiProblem(400, str(error)) from None


def query_float(request, name: str, default: float, low: float, high: float) -> float:
    text = request.query_params.get(name)
    if not text:
        return default
    try:
        value = finite_parse(text, name)
    except ValueError as error:
        raise ApiProblem(400, str(error)) from None
    if not low < value < high:
        raise ApiProblem(400, f"{name} must be between {low} and {high} (exclusive), not {text}")
    return value


def required(request, name: str, example: str) -> str:
    value = request.query_params.get(name)
    if not value:
        raise ApiProblem(400, f"The {name} parameter is required, e.g. ?{name}={example}.")
    return value
