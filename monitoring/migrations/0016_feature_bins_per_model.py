"""Bins per model and feature instead of per version (DESIGN.md, Bins).

Each (model, feature) keeps the bins of its first version (the first frozen row of a known
kind: the same row explain's `SliceBins` were taken from). A version's registered reference
moves to `FeatureReference`, kept where its bins were those edges; otherwise it is counted on
the model's bins again from the version's reference at the next aggregation (or when drift
reads it).

Sketches of a version whose bins differed from the model's are on other edges and would not
add up: this migration deletes them (hour and day rows of that version and feature). Rebuild
them from the raw rows right after migrating, before raw rows expire:

    python manage.py aggregates_backfill [--model NAME]

Hours already sealed (older than CANARY_RAW_RETENTION_DAYS) have no raw rows left: those
versions' histograms of those hours cannot be rebuilt and stay absent (docs/operations.md).
"""

import django.db.models.deletion
from django.db import migrations, models

UNKNOWN = "unknown"


def model_bins(rows) -> dict:
    """Per (model, feature), the row whose bins the model keeps: the first of a known kind,
    else the first."""
    kept: dict = {}
    for row in sorted(rows, key=lambda row: (row.kind == UNKNOWN, row.pk)):
        kept.setdefault((row.model_id, row.name), row)
    return kept


def bins_per_model(apps, schema_editor):
    FeatureBins = apps.get_model("monitoring", "FeatureBins")
    FeatureReference = apps.get_model("monitoring", "FeatureReference")
    Sketch = apps.get_model("monitoring", "Sketch")
    rows = list(FeatureBins.objects.all())
    kept = model_bins(rows)
    references, elsewhere = [], []
    for row in rows:
        model = kept[(row.model_id, row.name)]
        same = row.kind == model.kind and bytes(row.edges) == bytes(model.edges)
        if not same:
            elsewhere.append(row)
        elif row.reference_sha256 and row.kind != UNKNOWN:  # frozen with a reference
            references.append(
                FeatureReference(
                    model_id=row.model_id,
                    version_id=row.version_id,
                    name=row.name,
                    reference=row.reference,
                    deciles=row.deciles,
                    reference_rows=row.reference_rows,
                )
            )
    FeatureReference.objects.bulk_create(references, 1000)
    for row in elsewhere:
        Sketch.objects.filter(
            model_id=row.model_id, version_id=row.version_id, name=row.name, kind="numerical"
        ).delete()
    keep = {row.pk for row in kept.values()}
    FeatureBins.objects.exclude(pk__in=keep).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("factory", "0005_model_label_maturity"),
        ("monitoring", "0015_error_model_and_loss_sums"),
    ]

    operations = [
        migrations.CreateModel(
            name="FeatureReference",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=200)),
                ("reference", models.BinaryField(null=True)),
                ("deciles", models.BinaryField(null=True)),
                ("reference_rows", models.PositiveIntegerField(default=0)),
                (
                    "model",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="factory.mlmodel",
                    ),
                ),
                (
                    "version",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="factory.modelversion",
                    ),
                ),
            ],
        ),
        migrations.AddConstraint(
            model_name="featurereference",
            constraint=models.UniqueConstraint(
                fields=("version", "name"), name="feature_reference_unique"
            ),
        ),
        migrations.RunPython(bins_per_model, migrations.RunPython.noop),
        migrations.RemoveConstraint(model_name="featurebins", name="feature_bins_unique"),
        migrations.RemoveField(model_name="featurebins", name="version"),
        migrations.RemoveField(model_name="featurebins", name="reference"),
        migrations.RemoveField(model_name="featurebins", name="reference_rows"),
        migrations.RemoveField(model_name="featurebins", name="reference_sha256"),
        migrations.AddConstraint(
            model_name="featurebins",
            constraint=models.UniqueConstraint(
                fields=("model", "name"), name="feature_bins_model_unique"
            ),
        ),
    ]
