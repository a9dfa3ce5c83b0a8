"""Request guards every view stands behind: no NUL in the query, a bounded statement time."""

from __future__ import annotations

from django.conf import settings
from django.db import connections
from django.shortcuts import render

from config.problems import is_api, problem_response
from config.replica import reading_alias


class QueryTextMiddleware:
    """A query parameter with a NUL character is a 400: no database stores one in a string."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        for name, values in request.GET.lists():
            if any("\x00" in text for text in [name, *values]):
                return query_refused(request, f"The query parameter {name[:60]!r} holds a NUL.")
        return self.get_response(request)


def query_refused(request, message: str):
    if is_api(request):
        return problem_response(400, message)
    return render(request, "dashboard/bad_request.html", {"message": message}, status=400)


class StatementTimeoutMiddleware:
    """Web requests' SQL statements stop after CANARY_STATEMENT_TIMEOUT_S on PostgreSQL.

    Set per request on the web process's connection that the request reads from (the
    replica's, for a page read off one: a primary that is away must not fail it); Celery
    workers and management commands never pass here, so jobs have no limit (in the embedded
    mode, where jobs run inside the ingestion request, they share it, but that mode runs on
    SQLite).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        timeout_s = settings.CANARY_STATEMENT_TIMEOUT_S
        connection = connections[reading_alias()]
        if connection.vendor == "postgresql" and timeout_s:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT set_config('statement_timeout', %s, false)", [f"{timeout_s}s"]
                )
        return self.get_response(request)
