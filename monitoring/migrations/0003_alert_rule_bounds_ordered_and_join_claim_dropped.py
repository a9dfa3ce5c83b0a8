from django.db import migrations, models
from django.db.models import F


def inverted_bounds_cleared(apps, schema_editor):
    """Only static rules were checked for lower < upper, and only static rules judge by their
    bounds: a relative, band or no_data rule's inverted bounds were never used, so they go."""
    AlertRule = apps.get_model("monitoring", "AlertRule")
    inverted = AlertRule.objects.exclude(kind="static").filter(lower__gte=F("upper"))
    inverted.update(lower=None, upper=None)


class Migration(migrations.Migration):

    dependencies = [
        ('factory', '0003_model_drift_settings'),
        ('monitoring', '0002_bulk_tables_without_foreign_keys'),
    ]

    operations = [
        migrations.RemoveField(
            model_name='joinstate',
            name='claimed_until',
        ),
        migrations.RunPython(inverted_bounds_cleared, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name='alertrule',
            constraint=models.CheckConstraint(condition=models.Q(('lower__isnull', True), ('upper__isnull', True), ('lower__lt', models.F('upper')), _connector='OR'), name='alert_rule_lower_below_upper'),
        ),
    ]
