"""python manage.py remove_simulated STUDY: delete a dry run's simulated evaluators."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from webapp.commands import study_by_slug
from webapp.research import services


class Command(BaseCommand):
    help = ("Delete the study's simulated evaluators (simulate_responses), their answers and the results "
            "computed with them; people's answers are kept.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("study", help="the study's slug")

    def handle(self, *args: object, study: str, **options: object) -> None:
        found = study_by_slug(study)
        n = services.study_simulated_remove(study=found)
        self.stdout.write(f"Removed {n} simulated evaluator{'s' if n != 1 else ''} from {found.slug}.")
