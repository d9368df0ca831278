"""python manage.py export STUDY --format csv|jsonl|aggregates|report|report-md|figures|protocol --out PATH
[--include-simulated]"""
from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from webapp.commands import study_by_slug
from webapp.research import services


class Command(BaseCommand):
    help = ("Export a study: raw responses (csv in evalstudy's format, jsonl), the aggregates (JSON), "
            "the report (HTML or Markdown), the figures (PNG and SVG into a folder) or the frozen protocol.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("study", help="the study's slug")
        parser.add_argument("--format", required=True, choices=services.EXPORT_FORMATS, dest="fmt")
        parser.add_argument("--out", required=True, type=Path, help="a file; a folder for --format figures")
        parser.add_argument("--include-simulated", action="store_true",
                            help="a dry run: include simulated evaluators (ids prefixed 'simulated-'); "
                                 "left out by default")

    def handle(self, *args: object, study: str, fmt: str, out: Path, include_simulated: bool,
               **options: object) -> None:
        found = study_by_slug(study)
        try:
            written = services.export_write(study=found, fmt=fmt, out=out, include_simulated=include_simulated)
        except services.ResearchError as exc:
            raise CommandError(str(exc)) from exc
        except OSError as exc:
            raise CommandError(f"Cannot write {out}: {exc.strerror or exc}") from exc
        for path in written:
            self.stdout.write(str(path))
