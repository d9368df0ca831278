"""What the management commands share: finding the study a command names.

Every command that takes a study's slug reads it through ``study_by_slug``, so an unknown
slug fails the same way (``CommandError``, exit 1, nothing changed) whichever command it was.
"""
from __future__ import annotations

from django.core.management.base import CommandError

from webapp.studies.models import Study


def study_by_slug(slug: str) -> Study:
    """The study with this slug; CommandError naming the slug when there is none."""
    study = Study.objects.filter(slug=slug).first()
    if study is None:
        raise CommandError(f"No study with the slug {slug!r}.")
    return study
