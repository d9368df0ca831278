from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce


def count_entries(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    """Evaluators who consented before the column existed: their entries, counted once."""
    Evaluator = apps.get_model("studies", "Evaluator")
    Entry = apps.get_model("studies", "Entry")
    per_evaluator = (Entry.objects.filter(evaluator=OuterRef("pk")).order_by().values("evaluator")
                     .annotate(n=Count("pk")).values("n"))
    Evaluator.objects.update(planned_tasks=Coalesce(Subquery(per_evaluator), 0))


class Migration(migrations.Migration):

    dependencies = [
        ("studies", "0006_image_judge_only"),
    ]

    operations = [
        migrations.AddField(
            model_name="evaluator",
            name="planned_tasks",
            field=models.PositiveIntegerField(default=0, help_text="Tasks given on consent (the entries); 0 before."),
        ),
        migrations.RunPython(count_entries, migrations.RunPython.noop),
    ]
