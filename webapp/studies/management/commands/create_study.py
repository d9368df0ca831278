"""python manage.py create_study PROTOCOL.json --slug SLUG [--title T] [--researcher USER ...]"""
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from evalstudy.protocol import NotJSONError, json_document
from webapp.studies import lifecycle


class Command(BaseCommand):
    help = "Create a draft study from a protocol file (evalstudy's format)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("protocol", type=Path)
        parser.add_argument("--slug", required=True)
        parser.add_argument("--title", default="")
        parser.add_argument("--researcher", action="append", default=[],
                            help="username (repeatable); a missing account is created without a password")

    def handle(self, *args: object, protocol: Path, slug: str, title: str, researcher: list[str],
               **options: object) -> None:
        try:
            data = json_document(protocol.read_text(encoding="utf-8"))
        except OSError as exc:
            raise CommandError(f"Cannot read {protocol}: {exc.strerror}") from exc
        except NotJSONError as exc:
            raise CommandError(f"{protocol} is not valid JSON: {exc}") from exc
        try:
            with transaction.atomic():  # a bad protocol leaves no new account behind either
                users, created = lifecycle.researchers_ensure(usernames=researcher)
                study = lifecycle.study_create(protocol=data, slug=slug, title=title, base_dir=str(protocol.parent),
                                              researchers=users)
        except ValidationError as exc:
            raise CommandError(f"Invalid researcher user name: {'; '.join(exc.messages)}") from exc
        except lifecycle.StudySetupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Created study {study.slug} ({study.items.count()} items, "
                          f"protocol sha256 {study.protocol_hash}).")
        for name in created:
            self.stdout.write(f"Created the researcher account {name}; give it a password with: "
                              f"python manage.py changepassword {name}")
