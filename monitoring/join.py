"""The join of outcomes to predictions: set-based, incremental, idempotent.

Each run reads only what arrived since the high-water marks of the model's JoinState: new
outcomes (matched to their predictions) and new predictions (matched to outcomes that were
waiting for them). The latest `observed_at` of a prediction's outcomes wins, so re-running
changes nothing and a correction replaces the label. Every label written marks its
prediction's hour dirty, for the aggregation. A sweep without marks repairs anything a crash
or a late commit left behind.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import Max, Q
from django.utils import timezone

from monitoring.models import JoinState, Outcome, Prediction
from monitoring.sql import hour_of, is_postgres, seconds_between

log = logging.getLogger(__name__)
CLAIM_TTL = timedelta(minutes=30)  # longer than the longest join; a crashed claim expires


@dataclass
class JoinRun:
    model_id: int
    labels_written: int = 0
    claimed: bool = True


def label_upsert(*, model_id: int, outcome_filter: str, params: list) -> int:
    """Upsert labels from the latest of the filtered outcomes per prediction; mark hours dirty."""
    hour = hour_of("p.timestamp")
    upsert = f"""
        INSERT INTO monitoring_label (prediction_id, model_id, outcome_ref_id, outcome,
            outcome_num, "values", observed_at, delay_s, correct, hour)
        SELECT p.id, p.model_id, o.id, o.outcome, o.outcome_num, o."values", o.observed_at,
            {seconds_between("o.observed_at", "p.timestamp")},
            CASE WHEN o.outcome IS NULL THEN NULL ELSE p.prediction = o.outcome END, {hour}
        FROM (
            SELECT o.*, ROW_NUMBER() OVER (
                PARTITION BY o.prediction_id ORDER BY o.observed_at DESC, o.id DESC) AS newest
            FROM monitoring_outcome o WHERE o.model_id = %s {outcome_filter}
        ) o
        JOIN monitoring_prediction p
          ON p.model_id = o.model_id AND p.prediction_id = o.prediction_id
        WHERE o.newest = 1
        ON CONFLICT (prediction_id) DO UPDATE SET outcome_ref_id = excluded.outcome_ref_id,
            outcome = excluded.outcome, outcome_num = excluded.outcome_num,
            "values" = excluded."values", observed_at = excluded.observed_at,
            delay_s = excluded.delay_s, correct = excluded.correct
        WHERE excluded.observed_at > monitoring_label.observed_at
           OR (excluded.observed_at = monitoring_label.observed_at
               AND excluded.outcome_ref_id > monitoring_label.outcome_ref_id)
        RETURNING hour
    """
    args = [model_id, *params]
    with connection.cursor() as cursor:
        if is_postgres():
            cursor.execute(
                f"""WITH written AS ({upsert}), dirty AS (
                    INSERT INTO monitoring_dirtyhour (model_id, hour)
                    SELECT %s, hour FROM written GROUP BY hour ON CONFLICT DO NOTHING)
                SELECT count(*) FROM written""",
                [*args, model_id],
            )
            return cursor.fetchone()[0]
        cursor.execute(upsert, args)
        written = cursor.fetchall()
        hours = {hour for (hour,) in written}
        cursor.executemany(
            "INSERT INTO monitoring_dirtyhour (model_id, hour) VALUES (%s, %s) "
            "ON CONFLICT DO NOTHING",
            [(model_id, hour) for hour in hours],
        )
        return len(written)


def join_claim(model_id: int) -> bool:
    """Take the model's join for this worker; False when another one holds it."""
    JoinState.objects.get_or_create(model_id=model_id)
    now = timezone.now()
    free = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    claimed = JoinState.objects.filter(free, model_id=model_id)
    return claimed.update(claimed_until=now + CLAIM_TTL) == 1


def join_release(model_id: int, **marks) -> None:
    JoinState.objects.filter(model_id=model_id).update(
        claimed_until=None, last_run_at=timezone.now(), **marks
    )


def outcomes_join(*, model_id: int, sweep: bool = False) -> JoinRun:
    """Join what arrived since the last run (or everything, with sweep) for one model."""
    if not join_claim(model_id):
        log.info("join of model %s is claimed by another worker", model_id)
        return JoinRun(model_id, claimed=False)
    try:
        state = JoinState.objects.get(model_id=model_id)
        top_outcome = Outcome.objects.filter(model_id=model_id).aggregate(m=Max("id"))["m"] or 0
        top_prediction = (
            Prediction.objects.filter(model_id=model_id).aggregate(m=Max("id"))["m"] or 0
        )
        with transaction.atomic():
            if sweep:
                written = label_upsert(model_id=model_id, outcome_filter="", params=[])
            else:
                written = label_upsert(
                    model_id=model_id,
                    outcome_filter="AND o.id > %s AND o.id <= %s",
                    params=[state.outcome_high_water, top_outcome],
                )
                written += label_upsert(
                    model_id=model_id,
                    outcome_filter="""AND o.prediction_id IN (
                        SELECT prediction_id FROM monitoring_prediction
                        WHERE model_id = %s AND id > %s AND id <= %s)""",
                    params=[model_id, state.prediction_high_water, top_prediction],
                )
            join_release(
                model_id, outcome_high_water=top_outcome, prediction_high_water=top_prediction
            )
    except BaseException:
        join_release(model_id)
        raise
    return JoinRun(model_id, labels_written=written)
