"""Import an image set (a folder or zip with a manifest) as the images of some of a draft study's variants.

    python manage.py import_images SLUG PATH [--manifest FILE] [--resize]

It imports in this process, however long that takes (the tool for very large sets); the
generation page queues the same import for a Celery worker instead (``import_runner``).
"""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from webapp.commands import study_by_slug
from webapp.generation.imagesets import ImageSetError, imageset_import, import_summary


class Command(BaseCommand):
    help = ("Import images made elsewhere for a draft study: a folder or zip and a manifest (CSV or JSON: "
            "variant, prompt or caption, seed or index, file). All rows are checked; any problem refuses it all.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="The draft study.")
        parser.add_argument("path", help="A folder or a .zip holding the images (and manifest.csv/.json).")
        parser.add_argument("--manifest", help="The manifest, when it is not at the top of the upload.")
        parser.add_argument("--resize", action="store_true",
                            help="Centre-crop and resize every image to the protocol's sampling.size.")

    def handle(self, *args: object, **opts: Any) -> None:  # Any: argparse's values, one type per option
        study = study_by_slug(opts["slug"])
        try:
            result = imageset_import(study=study, path=opts["path"], manifest=opts["manifest"], resize=opts["resize"])
        except ImageSetError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"{import_summary(result, study_slug=study.slug)} (upload sha256 {result.upload_sha256}).")
