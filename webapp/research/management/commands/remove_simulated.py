"""python manage.py remove_simulated STUDY: delete a dry run's simulated evaluators."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from webapp.research import services
from webapp.studies.models import Study


class Command(BaseCommand):
    help = ("Delete the study's simulated evaluators (simulate_responses), their answers and the results "
            "computed with them; people's answers are kept.")

    def add_arguments(self, parser):
        parser.add_argument("study", help="the study's slug")

    def handle(self, *args, study: str, **options):
        found = Study.objects.filter(slug=study).first()
        if found is None:
            raise CommandError(f"No study with the slug {study!r}.")
        n = services.study_simulated_remove(study=found)
        self.stdout.write(f"Removed {n} simulated evaluator{'s' if n != 1 else ''} from {found.slug}.")
