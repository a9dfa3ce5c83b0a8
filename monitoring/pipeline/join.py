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

from common.sql import hour_of, is_postgres, seconds_between
from monitoring.ingest.partitions import stale_statistics_refresh
from monitoring.models import JoinState, Outcome, Prediction

log = logging.getLogger(__name__)


@dataclass
class JoinRun:
    model_id: int
    labels_written: int = 0
    claimed: bool = True


JOIN_WORK_MEM = "256MB"  # the newest-outcome sort and the hash of predictions stay in memory


def labels_write(*, model_id: int, outcome_filter: str, params: dict) -> int:
    """Label each prediction with the newest of the filtered outcomes, unless its label is as
    new already; mark the labels' hours dirty. The number of labels written."""
    params = {**params, "model": model_id}
    with connection.cursor() as cursor:
        if is_postgres():
            cursor.execute(labels_write_sql(outcome_filter), params)
            return cursor.fetchone()[0]
        return labels_upsert_sqlite(cursor, outcome_filter, params)


def labels_write_sql(outcome_filter: str) -> str:
    """One PostgreSQL statement: the filtered outcomes hash-joined to their predictions, the
    newest per prediction kept (a sort on the prediction's integer key, which also hands the
    labels to the index in its order), left-joined to the labels; then a plain INSERT of the
    new labels and an UPDATE of the older ones.

    Plain INSERT is safe, and cheaper than INSERT ... ON CONFLICT's speculative insertion,
    because labels are written only under the model's join claim (join_state_lock)."""
    return f"""
        WITH newest AS (
            SELECT DISTINCT ON (p.id) p.id AS prediction_ref, o.id AS outcome_ref, o.outcome,
                o.outcome_num, o."values", o.observed_at, p.timestamp, p.prediction
            FROM monitoring_outcome o
            JOIN monitoring_prediction p
              ON p.model_id = %(model)s AND p.prediction_id = o.prediction_id
            WHERE o.model_id = %(model)s {outcome_filter}
            ORDER BY p.id, o.observed_at DESC, o.id DESC
        ), written AS MATERIALIZED (
            SELECT o.prediction_ref, o.outcome_ref, o.outcome, o.outcome_num, o."values",
                o.observed_at, EXTRACT(EPOCH FROM (o.observed_at - o.timestamp)) AS delay_s,
                CASE WHEN o.outcome IS NULL THEN NULL ELSE o.prediction = o.outcome END
                AS correct, date_trunc('hour', o.timestamp) AS hour,
                l.prediction_id IS NOT NULL AS labelled
            FROM newest o
            LEFT JOIN monitoring_label l ON l.prediction_id = o.prediction_ref
                -- labels are partitioned by hour: the hour picks the partition to probe
                AND l.hour = date_trunc('hour', o.timestamp)
            WHERE l.prediction_id IS NULL OR o.observed_at > l.observed_at
               OR (o.observed_at = l.observed_at AND o.outcome_ref > l.outcome_ref_id)
        ), inserted AS (
            INSERT INTO monitoring_label (prediction_id, model_id, outcome_ref_id, outcome,
                outcome_num, "values", observed_at, delay_s, correct, hour)
            SELECT prediction_ref, %(model)s, outcome_ref, outcome, outcome_num, "values",
                observed_at, delay_s, correct, hour
            FROM written WHERE NOT labelled
        ), updated AS (
            UPDATE monitoring_label l SET outcome_ref_id = w.outcome_ref, outcome = w.outcome,
                outcome_num = w.outcome_num, "values" = w."values",
                observed_at = w.observed_at, delay_s = w.delay_s, correct = w.correct
            FROM written w
            WHERE w.labelled AND l.prediction_id = w.prediction_ref AND l.hour = w.hour
        ), dirty AS (
            INSERT INTO monitoring_dirtyhour (model_id, hour)
            SELECT %(model)s, hour FROM written GROUP BY hour ON CONFLICT DO NOTHING
        )
        SELECT count(*) FROM written
    """


def labels_upsert_sqlite(cursor, outcome_filter: str, params: dict) -> int:
    """SQLite has neither DISTINCT ON nor data-modifying WITH: a window and an upsert."""
    cursor.execute(
        f"""
        INSERT INTO monitoring_label (prediction_id, model_id, outcome_ref_id, outcome,
            outcome_num, "values", observed_at, delay_s, correct, hour)
        SELECT p.id, p.model_id, o.id, o.outcome, o.outcome_num, o."values", o.observed_at,
            {seconds_between("o.observed_at", "p.timestamp")},
            CASE WHEN o.outcome IS NULL THEN NULL ELSE p.prediction = o.outcome END,
            {hour_of("p.timestamp")}
        FROM (
            SELECT o.*, ROW_NUMBER() OVER (
                PARTITION BY o.prediction_id ORDER BY o.observed_at DESC, o.id DESC) AS newest
            FROM monitoring_outcome o WHERE o.model_id = %(model)s {outcome_filter}
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
        """,
        params,
    )
    hours = [hour for (hour,) in cursor.fetchall()]
    cursor.executemany(
        "INSERT INTO monitoring_dirtyhour (model_id, hour) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        [(params["model"], hour) for hour in set(hours)],
    )
    return len(hours)


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
    The raw tables' stale statistics are refreshed first, so that the join is planned on
    the rows there are.
    """
    stale_statistics_refresh()
    with transaction.atomic():
        state = join_state_lock(model_id)
        if state is None:
            log.info("join of model %s is claimed by another worker", model_id)
            return JoinRun(model_id, claimed=False)
        top_outcome = Outcome.objects.filter(model_id=model_id).aggregate(m=Max("id"))["m"] or 0
        top_prediction = (
            Prediction.objects.filter(model_id=model_id).aggregate(m=Max("id"))["m"] or 0
        )
        if is_postgres():
            with connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL work_mem = '{JOIN_WORK_MEM}'")
                cursor.execute("SET LOCAL jit = off")  # compiling costs more than it saves here
        if sweep:
            written = labels_write(model_id=model_id, outcome_filter="", params={})
        else:
            marks = {
                "outcome_mark": state.outcome_high_water,
                "top_outcome": top_outcome,
                "prediction_mark": state.prediction_high_water,
                "top_prediction": top_prediction,
            }
            written = labels_write(
                model_id=model_id,
                outcome_filter="AND o.id > %(outcome_mark)s AND o.id <= %(top_outcome)s",
                params=marks,
            )
            # Outcomes newer than the mark were just joined against every prediction; the
            # older ones that waited are joined to the predictions that came since.
            written += labels_write(
                model_id=model_id,
                outcome_filter="""AND o.id <= %(outcome_mark)s AND o.prediction_id IN (
                    SELECT prediction_id FROM monitoring_prediction
                    WHERE model_id = %(model)s AND id > %(prediction_mark)s
                      AND id <= %(top_prediction)s)""",
                params=marks,
            )
        JoinState.objects.filter(model_id=model_id).update(
            outcome_high_water=max(top_outcome, state.outcome_high_water),
            prediction_high_water=max(top_prediction, state.prediction_high_water),
            last_run_at=timezone.now(),
        )
    return JoinRun(model_id, labels_written=written)
