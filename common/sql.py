"""The few SQL expressions that differ between PostgreSQL and SQLite, PostgreSQL's binary
arrays read into NumPy, and the planner settings of its big aggregations (`hashing`)."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
from django.db import connection, connections, router


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


def reading_cursor(model):
    """A cursor for a raw read of `model`'s table, on the database the ORM would read it from
    (a replica, for a page or GET answer when there is one: docs/operations.md)."""
    return connections[router.db_for_read(model)].cursor()


def hour_of(column: str) -> str:
    if is_postgres():
        return f"date_trunc('hour', {column})"
    return f"strftime('%%Y-%%m-%%d %%H:00:00', {column})"


def seconds_between(later: str, earlier: str) -> str:
    if is_postgres():
        return f"EXTRACT(EPOCH FROM ({later} - {earlier}))"
    return f"((julianday({later}) - julianday({earlier})) * 86400.0)"


def json_entries(column: str) -> str:
    """A table function of a JSON object's (key, value) pairs."""
    return f"jsonb_each({column})" if is_postgres() else f"json_each({column})"


def json_number(value: str) -> str:
    return f"({value} #>> '{{}}')::float8" if is_postgres() else f"CAST({value} AS REAL)"


def db_datetime(value):
    """A datetime as a raw-SQL parameter: SQLite compares the text Django stores."""
    return value if is_postgres() else connection.ops.adapt_datetimefield_value(value)


def binary_array(data: bytes | None, dtype: str) -> np.ndarray:
    """An array of fixed-size elements without NULLs (``>f8``, ``>i8``) sent in PostgreSQL's
    binary format by `array_send`: a 20-byte header, then per element its length and value."""
    if data is None or int.from_bytes(data[:4], "big") == 0:
        return np.empty(0, dtype=dtype)
    count = int.from_bytes(data[12:16], "big")
    element = np.dtype([("length", ">i4"), ("value", dtype)])
    return np.frombuffer(data, element, count, offset=20)["value"].astype(dtype[1:])


# Group by hashing, in memory: freshly loaded rows have no statistics yet, and the planner
# would otherwise sort a chunk's rows on disk by their text keys.
HASHING = {"work_mem": "256MB", "enable_sort": "off"}


@contextmanager
def hashing(cursor):
    """`HASHING` for this transaction's next statements on PostgreSQL, restored afterwards
    (SQLite has no such settings: nothing is done there).

    Not restored when a statement fails: the transaction is aborted then (a query there
    would hide the error), and rolling back to the chunk's savepoint undoes them anyway."""
    before = {}
    for name, value in (HASHING if is_postgres() else {}).items():
        cursor.execute("SELECT current_setting(%s), set_config(%s, %s, true)", [name, name, value])
        before[name] = cursor.fetchone()[0]
    yield
    for name, value in before.items():
        cursor.execute("SELECT set_config(%s, %s, true)", [name, value])
