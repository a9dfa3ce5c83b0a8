"""Record the golden answers of the API for the current database vendor.

Runs `tests/golden/test_golden.py` under pytest with CANARY_GOLDEN_WRITE=1, so the answers are
made exactly as the replay makes them (test database, reset sequences, frozen clock), and writes
`tests/golden/<vendor>/answers.json` instead of comparing.

From the project's root, with the project's virtualenv:

    SQLite (the default when DATABASE_URL is unset):
        python -m tests.golden.make_golden

    PostgreSQL (pytest-django creates and drops test_<name>):
        DATABASE_URL=postgres://USER@HOST:5432/NAME python -m tests.golden.make_golden

Then check the diff of the JSON files: every change of an answer must be intended.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest


def main() -> int:
    os.environ["CANARY_GOLDEN_WRITE"] = "1"
    test = Path(__file__).with_name("test_golden.py")
    return pytest.main([str(test), "-q", "-p", "no:cacheprovider", *sys.argv[1:]])


if __name__ == "__main__":
    raise SystemExit(main())
