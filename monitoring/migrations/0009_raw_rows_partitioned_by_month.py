"""Raw predictions, outcomes and labels partitioned by calendar month on PostgreSQL, so that
retention drops a month with one DROP TABLE instead of deleting rows one by one.

PostgreSQL 15 requires every unique index of a partitioned table to hold the partition key, and
partitioned tables cannot have identity columns (before 17). So on PostgreSQL:
- the primary keys become (id, timestamp), (id, received_at) and (prediction_id, hour): the ids
  stay unique (they come from one sequence each), which Django's state, with `id` alone as the
  primary key, relies on;
- ids come from a sequence owned by the column instead of an identity;
- "one prediction per (model, prediction_id)" and "one outcome per (model, prediction_id,
  observed_at)" across months are the store's rule, under a per-model lock
  (monitoring/ingest/store.py); the unique indexes left are per month and serve its lookups.
Outcomes are partitioned by `received_at` (new, the moment stored; existing rows get the
migration's time), so that each lives one horizon from its arrival, whenever it was observed.
Partitions are made for every month that holds rows, and for this month and the next two;
later ones are made ahead by retention runs and, when missing, by ingestion.

SQLite keeps plain tables (retention deletes there) and gets the same state by Django's
operations. Not reversible.
"""

from django.db import migrations, models
from django.db.migrations.operations.base import Operation
from django.db.models.functions import Now


class OnVendor(Operation):
    """Database operations that run on one database vendor only; they change no state."""

    reduces_to_sql = False

    def __init__(self, vendor, operations):
        self.vendor = vendor
        self.operations = operations

    def deconstruct(self):
        return self.__class__.__name__, [self.vendor, self.operations], {}

    def state_forwards(self, app_label, state):
        pass

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != self.vendor:
            return
        state = from_state
        for operation in self.operations:
            after = state.clone()
            operation.state_forwards(app_label, after)
            operation.database_forwards(app_label, schema_editor, state, after)
            state = after

    def describe(self):
        return f"On {self.vendor} only: " + "; ".join(op.describe() for op in self.operations)


PARTITION_FUNCTIONS = r"""
CREATE OR REPLACE FUNCTION pg_temp.month_partition(parent text, month timestamp) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format(
        'CREATE TABLE IF NOT EXISTS %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
        parent || '_p' || to_char(month, 'YYYYMM'), parent,
        month::text || '+00', (month + interval '1 month')::text || '+00');
END $$;

CREATE OR REPLACE FUNCTION pg_temp.partition_by_month(parent text, key text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    old text := parent || '_unpartitioned';
    month timestamp;
BEGIN
    EXECUTE format('ALTER TABLE %I RENAME TO %I', parent, old);
    EXECUTE format(
        'CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS) PARTITION BY RANGE (%I)', parent, old, key);
    FOR month IN EXECUTE format(
        'SELECT DISTINCT date_trunc(''month'', %I AT TIME ZONE ''UTC'') FROM %I
         UNION SELECT date_trunc(''month'', now() AT TIME ZONE ''UTC'') + s * interval ''1 month''
         FROM generate_series(0, 2) s', key, old)
    LOOP
        PERFORM pg_temp.month_partition(parent, month);
    END LOOP;
    EXECUTE format('INSERT INTO %I SELECT * FROM %I', parent, old);
    EXECUTE format('DROP TABLE %I', old);
END $$;

CREATE OR REPLACE FUNCTION pg_temp.ids_from_sequence(parent text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    sequence text := parent || '_id_seq';
BEGIN
    EXECUTE format('CREATE SEQUENCE %I OWNED BY %I.id', sequence, parent);
    EXECUTE format(
        'SELECT setval(%L, COALESCE((SELECT max(id) FROM %I), 0) + 1, false)', sequence, parent);
    EXECUTE format(
        'ALTER TABLE %I ALTER COLUMN id SET DEFAULT nextval(%L)', parent, sequence);
END $$;
"""

PARTITION_SQL = [
    PARTITION_FUNCTIONS,
    "ALTER TABLE monitoring_outcome ADD COLUMN received_at timestamptz NOT NULL DEFAULT now()",
    "SELECT pg_temp.partition_by_month('monitoring_prediction', 'timestamp')",
    "SELECT pg_temp.partition_by_month('monitoring_outcome', 'received_at')",
    "SELECT pg_temp.partition_by_month('monitoring_label', 'hour')",
    """ALTER TABLE monitoring_prediction
        ADD CONSTRAINT monitoring_prediction_pkey PRIMARY KEY (id, "timestamp"),
        ADD CONSTRAINT prediction_unique_per_month UNIQUE (model_id, prediction_id, "timestamp")
    """,
    'CREATE INDEX prediction_model_time ON monitoring_prediction (model_id, "timestamp")',
    """ALTER TABLE monitoring_outcome
        ADD CONSTRAINT monitoring_outcome_pkey PRIMARY KEY (id, received_at),
        ADD CONSTRAINT outcome_unique_per_month
            UNIQUE (model_id, prediction_id, observed_at, received_at)
    """,
    "ALTER TABLE monitoring_label ADD CONSTRAINT monitoring_label_pkey PRIMARY KEY (prediction_id, hour)",
    "CREATE INDEX label_model_hour ON monitoring_label (model_id, hour)",
    "SELECT pg_temp.ids_from_sequence('monitoring_prediction')",
    "SELECT pg_temp.ids_from_sequence('monitoring_outcome')",
]

STATE = [
    migrations.AddField(
        model_name="outcome",
        name="received_at",
        field=models.DateTimeField(db_default=Now()),
    ),
    migrations.RemoveConstraint(model_name="prediction", name="prediction_unique_per_model"),
    migrations.AddConstraint(
        model_name="prediction",
        constraint=models.UniqueConstraint(
            fields=("model", "prediction_id", "timestamp"), name="prediction_unique_per_month"
        ),
    ),
    migrations.RemoveConstraint(model_name="outcome", name="outcome_unique_version"),
    migrations.AddConstraint(
        model_name="outcome",
        constraint=models.UniqueConstraint(
            fields=("model", "prediction_id", "observed_at", "received_at"),
            name="outcome_unique_per_month",
        ),
    ),
]


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0008_merge_alert_words_and_channels"),
    ]

    operations = [
        OnVendor("sqlite", STATE),
        OnVendor("postgresql", [migrations.RunSQL(PARTITION_SQL)]),
        migrations.SeparateDatabaseAndState(state_operations=STATE),
        migrations.CreateModel(
            name="RetentionRun",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("ran_at", models.DateTimeField()),
                ("raw_removed_before", models.DateTimeField()),
                ("months_removed", models.JSONField(default=list)),
                ("quarantine_removed", models.PositiveIntegerField(default=0)),
                ("evaluations_removed", models.PositiveIntegerField(default=0)),
                ("duration_ms", models.FloatField(default=0)),
            ],
            options={"ordering": ["-ran_at", "-id"]},
        ),
    ]
