"""python manage.py create_study PROTOCOL.json --slug SLUG [--title T] [--researcher USER ...]"""
import json
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from webapp.studies import services


class Command(BaseCommand):
    help = "Create a draft study from a protocol file (evalstudy's format)."

    def add_arguments(self, parser):
        parser.add_argument("protocol", type=Path)
        parser.add_argument("--slug", required=True)
        parser.add_argument("--title", default="")
        parser.add_argument("--researcher", action="append", default=[], help="username (repeatable)")

    def handle(self, *args, protocol: Path, slug: str, title: str, researcher: list[str], **options):
        try:
            data = json.loads(protocol.read_text(encoding="utf-8"))
        except OSError as exc:
            raise CommandError(f"Cannot read {protocol}: {exc.strerror}")
        except json.JSONDecodeError as exc:
            raise CommandError(f"{protocol} is not valid JSON: {exc}")
        users = list(get_user_model().objects.filter(username__in=researcher))
        unknown = set(researcher) - {u.username for u in users}
        if unknown:
            raise CommandError(f"Unknown researcher user(s): {', '.join(sorted(unknown))}")
        try:
            study = services.study_create(protocol=data, slug=slug, title=title, base_dir=str(protocol.parent), researchers=users)
        except services.StudySetupError as exc:
            raise CommandError(str(exc))
        self.stdout.write(f"Created study {study.slug} ({study.items.count()} items, protocol sha256 {study.protocol_hash}).")
