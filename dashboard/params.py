"""GET parameters of the pages, parsed; a bad one is a BadQuery shown with a 400."""

from __future__ import annotations

from datetime import datetime

from django.shortcuts import render

from common.numbers import finite_parse
from common.time import time_parse
from dashboard.sections.base import DEFAULT_DAYS, Scope
from monitoring.metrics.windows import WINDOW


class BadQuery(ValueError):
    """A GET parameter the page cannot use; shown to the user with a 400."""


def bad_request(request, error: Exception):
    return render(request, "dashboard/bad_request.html", {"message": str(error)}, status=400)


def param(request, name: str) -> str | None:
    """A GET parameter; absent (or "all") is None, while an empty segment is a real one."""
    value = request.GET.get(name)
    return None if value == ALL else value


def scope_from(request, default_granularity: str = "day") -> Scope:
    granularity = request.GET.get("granularity") or default_granularity
    if granularity not in WINDOW:
        raise BadQuery(f"granularity {granularity!r} must be hour, day or week")
    segment = param(request, "segment")
    return Scope(
        granularity, request.GET.get("version") or None, segment, days_param(request, granularity)
    )


def days_param(request, granularity: str) -> int | None:
    text = request.GET.get("days") or str(DEFAULT_DAYS[granularity])
    if text == "all":
        return None
    if not text.isdigit() or not 1 <= int(text) <= 3660:
        raise BadQuery(f"days {text!r} must be a whole number from 1 to 3660, or all")
    return int(text)


def time_param(request, name: str) -> datetime | None:
    text = request.GET.get(name)
    if not text:
        return None
    try:
        return time_parse(text, name)
    except ValueError as error:
        raise BadQuery(str(error)) from None


def number_param(request, name: str) -> float | None:
    text = request.GET.get(name)
    if not text:
        return None
    try:
        return finite_parse(text, name)
    except ValueError as error:
        raise BadQuery(str(error)) from None


ALL = "__all__"  # the pickers' "all" choice: the empty segment is a real segment
