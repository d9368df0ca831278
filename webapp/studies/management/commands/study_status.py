"""python manage.py study_status SLUG --open | --close"""
from django.core.management.base import BaseCommand, CommandError, CommandParser

from webapp.commands import study_by_slug
from webapp.studies import lifecycle


class Command(BaseCommand):
    help = "Open a draft study (all images must exist) or close an open or paused one."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        action = parser.add_mutually_exclusive_group(required=True)
        action.add_argument("--open", action="store_true")
        action.add_argument("--close", action="store_true")

    def handle(self, *args: object, slug: str, open: bool, close: bool, **options: object) -> None:
        study = study_by_slug(slug)
        try:
            study = lifecycle.study_open(study=study) if open else lifecycle.study_close(study=study)
        except lifecycle.StudySetupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Study {study.slug} is {study.status}.")
