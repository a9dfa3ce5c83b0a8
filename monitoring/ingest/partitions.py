"""Monthly partitions of the raw tables on PostgreSQL: made ahead or on demand, dropped whole.

Predictions are partitioned by `timestamp`, labels by `hour` (their prediction's hour, so a
prediction and its label share a month) and outcomes by `received_at`. Migration 0009 made the
layout; partitions are named `<table>_pYYYYMM` and cover one UTC calendar month. SQLite has no
partitions: the functions here do nothing there, and retention deletes rows instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime

from django.db import connection

from common.retention import month_after, month_start
from common.sql import is_postgres

# Parent table -> its partition key. Predictions and labels of a month are dropped together.
RAW_TABLES = {
    "monitoring_prediction": "timestamp",
    "monitoring_label": "hour",
    "monitoring_outcome": "received_at",
}
# pg_advisory_xact_lock(key) taken by whoever creates partitions, so two creators do not race.
PARTITION_LOCK = 0x43414E50  # "CANP"
PARTITION_NAME = re.compile(r"_p(\d{4})(\d{2})$")


def partition_name(table: str, month: datetime) -> str:
    return f"{table}_p{month:%Y%m}"


def months_between(first: datetime, last: datetime) -> list[datetime]:
    """Every calendar month from the one holding `first` to the one holding `last`."""
    month, months = month_start(first), []
    while month <= last:
        months.append(month)
        month = month_after(month)
    return months


def partitions_ensure(moments: Iterable[datetime]) -> int:
    """Make the missing partitions, in every raw table, of the months holding these moments.

    Cheap when they exist (one catalog query). Creating one takes a brief exclusive lock on
    its parent until the caller's transaction ends. Returns how many were made.
    """
    if not is_postgres():
        return 0
    months = sorted({month_start(moment.astimezone(UTC)) for moment in moments})
    wanted = {
        partition_name(table, month): (table, month) for table in RAW_TABLES for month in months
    }
    if not wanted:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relname = ANY(%s) AND relkind = 'r'",
            [list(wanted)],
        )
        missing = sorted(wanted.keys() - {name for (name,) in cursor.fetchall()})
        if missing:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [PARTITION_LOCK])
        for name in missing:
            table, month = wanted[name]
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {table} "
                f"FOR VALUES {month_bounds(month)}"
            )
    return len(missing)


def month_bounds(month: datetime) -> str:
    """A partition's FOR VALUES clause; the calendar's last month is open above."""
    last = (month.year, month.month) == (9999, 12)
    upper = "MAXVALUE" if last else f"'{month_after(month).isoformat()}'"
    return f"FROM ('{month.isoformat()}') TO ({upper})"


def partition_months(table: str) -> dict[datetime, str]:
    """The table's partitions by the month each holds."""
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = %s::regclass""",
            [table],
        )
        names = [name for (name,) in cursor.fetchall()]
    months = {}
    for name in names:
        match = PARTITION_NAME.search(name)
        if match:
            months[datetime(int(match[1]), int(match[2]), 1, tzinfo=UTC)] = name
    return months


# A table's planner statistics are refreshed once it has grown by this many pages beyond
# a share of the pages it had at its last ANALYZE (autovacuum counts changed rows instead, but
# those counts reach the statistics views seconds late; a file's size does not).
STALE_PAGES, STALE_SHARE = 10, 0.2
# The aggregate tables that pages and the API filter on each other (a version's hours
# against another's): planned on no statistics at all, a comparison over a month at 5M
# predictions took a nested loop of 777,000 row pairs, 0.5 s a query instead of 6 ms.
AGGREGATE_TABLES = ("monitoring_hourlyaggregate", "monitoring_hourlyvalue", "monitoring_sketch")


def stale_statistics_refresh() -> list[str]:
    """ANALYZE the raw tables' partitions and the aggregate tables whose statistics are stale
    (PostgreSQL); their names.

    Autovacuum does the same, later, or never where it is off: a join planned on a month's
    statistics from when it was empty (a model's rows copied since) took a nested loop of
    10 million predictions by 10 million outcomes, which did not finish. Cheap when nothing
    is stale (one catalog query)."""
    if not is_postgres():
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT c.relname FROM pg_class c
            WHERE (c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = ANY(%s::regclass[]))
                OR c.oid = ANY(%s::regclass[]))
              AND pg_relation_size(c.oid) / current_setting('block_size')::int
                  > %s + (1 + %s) * greatest(c.relpages, 0)""",
            [list(RAW_TABLES), list(AGGREGATE_TABLES), STALE_PAGES, STALE_SHARE],
        )
        stale = sorted(name for (name,) in cursor.fetchall())
        for name in stale:
            cursor.execute(f"ANALYZE {name}")
    return stale
