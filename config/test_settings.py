"""Settings of the tests and benchmarks: the real ones, with plain HTTP and a fixed key.

Set as environment defaults before `config.settings` reads them, so the servers and workers
that the tests start as subprocesses inherit them too.
"""

from __future__ import annotations

import os

os.environ.setdefault("CANARY_HTTPS", "false")
os.environ.setdefault("SECRET_KEY", "canary-tests-only-key-never-used-for-anything-served")

from config.settings import *  # noqa: F403
