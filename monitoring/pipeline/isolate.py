"""Run a piece of a job in a savepoint and turn its failure into a recorded error."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import transaction

from monitoring.pipeline.failures import error_text

log = logging.getLogger(__name__)


def isolated(work: Callable[[], object]) -> str | None:
    """None if the work succeeded; else its error, and what it wrote is rolled back.

    Any exception is caught on purpose: a stored row the code did not foresee (a number
    outside float range, a date at the edge of the calendar) must fail its own chunk, not
    the model's other hours.
    """
    try:
        with transaction.atomic():
            work()
    except Exception as error:
        log.warning("job chunk failed", exc_info=True)
        return error_text(error)
    return None
