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

from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from monitoring.models import JoinState, Outcome, Prediction
from monitoring.sql import hour_of, is_postgres, seconds_between

log = logging.getLogger(__name__)


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


def join_state_lock(model_id: int) -> JoinState | None:
    """Lock the model's JoinState row for this transaction; None when another worker has it.

    The lock is the claim: it ends with the transaction, or with the connection of a worker
    killed mid-join, so a crash leaves neither a stale claim nor a half-written join.
    """
    JoinState.objects.get_or_create(model_id=model_id)
    locked = JoinState.objects.select_for_update(skip_locked=True).filter(model_id=model_id)
    return locked.first()


def outcomes_join(*, model_id: int, sweep: bool = False) -> JoinRun:
    """Join what arrived since the last run (or everything, with sweep) for one model.

    Labels and the new high-water marks commit together, so a run that dies moves nothing.
    """
    with transaction.atomic():
        state = join_state_lock(model_id)
        if state is None:
            log.info("join of model %s is claimed by another worker", model_id)
            return JoinRun(model_id, claimed=False)
        top_outcome = Outcome.objects.filter(model_id=model_id).aggregate(m=Max("id"))["m"] or 0
        top_prediction = (
            Prediction.objects.filter(model_id=model_id).aggregate(m=Max("id"))["m"] or 0
        )
        if sweep:
            written = label_upsert(model_id=model_id, outcome_filter="", params=[])
        else:
            written = label_upsert(
                model_id=model_id,
                outcome_filter="AND o.id > %s AND o.id <= %s",
                params=[state.outcome_high_water, top_outcome],
            )
            # Outcomes newer than the mark were just joined against every prediction; the
            # older ones that waited are joined to the predictions that came since.
            written += label_upsert(
                model_id=model_id,
                outcome_filter="""AND o.id <= %s AND o.prediction_id IN (
                    SELECT prediction_id FROM monitoring_prediction
                    WHERE model_id = %s AND id > %s AND id <= %s)""",
                params=[
                    state.outcome_high_water, model_id, state.prediction_high_water,
                    top_prediction,
                ],
            )  # fmt: skip
        JoinState.objects.filter(model_id=model_id).update(
            outcome_high_water=max(top_outcome, state.outcome_high_water),
            prediction_high_water=max(top_prediction, state.prediction_high_water),
            last_run_at=timezone.now(),
        )
    return JoinRun(model_id, labels_written=written)
