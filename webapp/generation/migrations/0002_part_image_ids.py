"""Each part keeps the random public ids of its images (chosen at launch).

Parts that exist already get theirs when a worker next claims them (parts._image_ids).
"""
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("generation", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="part",
            name="image_ids",
            field=models.JSONField(blank=True, default=list, help_text="The random public id of each pair's image."),
        ),
    ]
