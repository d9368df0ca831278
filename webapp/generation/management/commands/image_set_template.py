"""Write the manifest an image set for a draft study must hold: a row per image to make.

    python manage.py image_set_template SLUG [--variant NAME ...] [--output manifest.csv]

By default it lists the variants an import may fill (no images, no checkpoint); each row
names the variant, the prompt text (a count prompt as the protocol renders it, or a
caption), the seed and a suggested file path. Make the images, put them at those paths
(or edit the ``file`` column), and import the folder or its zip (``import_images``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from webapp.commands import study_by_slug
from webapp.generation.imagesets import manifest_csv
from webapp.generation.selectors import manifest_template


class Command(BaseCommand):
    help = ("Write the manifest (CSV: variant, prompt, seed, file) that an image set for a draft study must "
            "hold, one row per image to make; by default for every variant without images or a checkpoint.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="The study.")
        parser.add_argument("--variant", action="append", default=[], metavar="NAME",
                            help="Only this variant (repeat for several); any variant of the study may be named.")
        parser.add_argument("--output", "-o", help="Write here instead of standard output.")

    def handle(self, *args: object, **opts: Any) -> None:  # Any: argparse's values, one type per option
        study = study_by_slug(opts["slug"])
        variants = None
        if opts["variant"]:
            by_name = {v.name: v for v in study.variants.all()}
            unknown = [n for n in opts["variant"] if n not in by_name]
            if unknown:
                raise CommandError(f"{', '.join(map(repr, unknown))}: not a variant of {study.slug} "
                                   f"({', '.join(by_name)})")
            variants = [by_name[n] for n in dict.fromkeys(opts["variant"])]
        rows = manifest_template(study=study, variants=variants)
        if not rows:
            raise CommandError(f"{study.slug}: no variant is waiting for an image set (each has images or a "
                               "checkpoint); name one with --variant to list its cells anyway")
        text = manifest_csv(rows)
        if opts["output"]:
            Path(opts["output"]).write_text(text, encoding="utf-8")
            self.stdout.write(f"{len(rows)} rows written to {opts['output']}.")
        else:
            self.stdout.write(text, ending="")
