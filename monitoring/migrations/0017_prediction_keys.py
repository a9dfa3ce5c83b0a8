"""Each prediction's key in a table of its own, unique across months, for ingestion.

On PostgreSQL it is filled from the stored predictions: a model with many stored rows makes
this migration take about as long as copying their ids. SQLite gets the table, unused.
Reversible: going back drops the table.
"""

from django.db import migrations, models

POSTGRESQL = [
    """CREATE TABLE monitoring_predictionkey (
        model_id bigint NOT NULL,
        prediction_id varchar(200) NOT NULL,
        "timestamp" timestamptz NOT NULL,
        PRIMARY KEY (model_id, prediction_id))""",
    """INSERT INTO monitoring_predictionkey (model_id, prediction_id, "timestamp")
    SELECT model_id, prediction_id, "timestamp" FROM monitoring_prediction""",
    'CREATE INDEX prediction_key_time ON monitoring_predictionkey USING brin ("timestamp")',
]
SQLITE = [
    """CREATE TABLE monitoring_predictionkey (
        model_id bigint NOT NULL,
        prediction_id varchar(200) NOT NULL,
        "timestamp" datetime NOT NULL,
        PRIMARY KEY (model_id, prediction_id))""",
]


def keys_table_create(apps, schema_editor):
    postgres = schema_editor.connection.vendor == "postgresql"
    for statement in POSTGRESQL if postgres else SQLITE:
        schema_editor.execute(statement)


def keys_table_drop(apps, schema_editor):
    schema_editor.execute("DROP TABLE monitoring_predictionkey")


KEY_MODEL = migrations.CreateModel(
    name="PredictionKey",
    fields=[
        (
            "pk",
            models.CompositePrimaryKey(
                "model_id",
                "prediction_id",
                blank=True,
                editable=False,
                primary_key=True,
                serialize=False,
            ),
        ),
        ("model_id", models.BigIntegerField()),
        ("prediction_id", models.CharField(max_length=200)),
        ("timestamp", models.DateTimeField()),
    ],
)


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0016_feature_bins_per_model"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[KEY_MODEL],
            database_operations=[migrations.RunPython(keys_table_create, keys_table_drop)],
        ),
    ]
