"""Replays the golden dataset and compares every GET answer with the recorded one.

The recorded answers are in `tests/golden/<vendor>/answers.json`, one file per database vendor
(SQLite and PostgreSQL may differ in the last digit of a float: aggregation has a SQL and a
Python path). Floats are compared to 1e-9 relative: the order in which the database adds
many floats can move their last digits when a query's plan changes, and that is no change of
an answer. To record them again, see `make_golden.py`.
"""

from __future__ import annotations

import difflib
import json
import math
import os
from pathlib import Path

import pytest
from django.db import connection
from freezegun import freeze_time

from config.celery import app as celery_app
from tests.golden import dataset

HERE = Path(__file__).parent
WRITE = os.environ.get("CANARY_GOLDEN_WRITE") == "1"


def golden_path() -> Path:
    return HERE / connection.vendor / "answers.json"


def dumps(value) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def same(want, got) -> bool:
    """Equal answers, floats to 1e-9 relative (booleans and integers exactly)."""
    if isinstance(want, float) and isinstance(got, float):
        return math.isclose(want, got, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(want, dict) and isinstance(got, dict):
        return want.keys() == got.keys() and all(same(want[k], got[k]) for k in want)
    if isinstance(want, list) and isinstance(got, list):
        return len(want) == len(got) and all(same(w, g) for w, g in zip(want, got, strict=True))
    return type(want) is type(got) and want == got


def first_difference(expected: list[dict], actual: list[dict]) -> str | None:
    """A readable diff of the first answer that differs, or None when all are equal."""
    for i, (want, got) in enumerate(zip(expected, actual, strict=False)):
        if same(want, got):
            continue
        if want["path"] != got["path"]:
            return f"question {i}: expected GET {want['path']}, the test asked GET {got['path']}"
        diff = difflib.unified_diff(
            dumps(want).splitlines(), dumps(got).splitlines(), "recorded", "now", lineterm="", n=4
        )
        lines = list(diff)
        shown = "\n".join(lines[:200]) + ("\n..." if len(lines) > 200 else "")
        others = [w["path"] for w, g in zip(expected, actual, strict=False) if not same(w, g)][1:]
        listed = "".join(f"\n  {p}" for p in others[:30])
        more = f"\n{len(others)} more answers differ:{listed}" if others else ""
        return f"GET {want['path']} differs from the recording:\n{shown}{more}"
    if len(expected) != len(actual):
        return f"{len(expected)} answers recorded, {len(actual)} now"
    return None


@pytest.fixture
def embedded_jobs(settings):
    """The jobs in-process after each ingestion, and a cache of this test's own, as in the
    embedded mode the answers were recorded in: with a broker (CI) the tasks would wait in its
    queue, and the shared Redis cache would hold other tests' entries under the same ids."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = eager


@pytest.mark.django_db(transaction=True, reset_sequences=True)
def test_golden_answers(embedded_jobs):
    path = golden_path()
    dataset.warm_up()
    with freeze_time(dataset.START) as frozen:
        client = dataset.golden_client()
        dataset.build(client, frozen)
        actual = dataset.answers(client)
    for entry in actual:
        dataset.check_finite(entry["body"], entry["path"])
    actual = json.loads(dumps(actual))  # what a file holds: tuples become lists, and so on
    if WRITE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(dumps({"vendor": connection.vendor, "answers": actual}))
        return
    if not path.exists():
        pytest.fail(
            f"no golden answers for the database vendor {connection.vendor!r} "
            f"({path.relative_to(HERE.parent.parent)}); record them with make_golden.py"
        )
    expected = json.loads(path.read_text())["answers"]
    difference = first_difference(expected, actual)
    if difference:
        pytest.fail(difference, pytrace=False)
