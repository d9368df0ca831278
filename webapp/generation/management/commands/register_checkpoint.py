"""Register a checkpoint (its sha256 and config), optionally for a variant of a study.

PATH is one of our checkpoint folders (or its model.safetensors), or a folder written by
diffusers' ``DiffusionPipeline.save_pretrained`` (docs/models-from-elsewhere.md).

    python manage.py register_checkpoint NAME PATH [--study SLUG --variant VARIANT]
"""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from webapp.commands import study_by_slug
from webapp.generation import services
from webapp.studies.models import Variant


class Command(BaseCommand):
    help = ("Register a checkpoint folder (or model.safetensors), or a diffusers pipeline folder, under a name; "
            "optionally assign it to a variant.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("path")
        parser.add_argument("--study", help="Slug of a draft study whose variant gets this checkpoint.")
        parser.add_argument("--variant", help="Name of that variant.")

    def handle(self, *args: object, **opts: Any) -> None:  # Any: argparse's values, one type per option
        if bool(opts["study"]) != bool(opts["variant"]):
            raise CommandError("--study and --variant go together.")
        variant = None
        if opts["study"]:
            variant = Variant.objects.filter(study=study_by_slug(opts["study"]), name=opts["variant"]).first()
            if variant is None:
                raise CommandError(f"Study {opts['study']!r} has no variant {opts['variant']!r}.")
        try:
            checkpoint = services.checkpoint_register(name=opts["name"], path=opts["path"], variant=variant)
        except services.GenerationError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"{checkpoint.name}: sha256 {checkpoint.sha256} ({checkpoint.path})"
                          + (f"; assigned to {variant}" if variant else ""))
