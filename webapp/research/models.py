"""What the research app stores: analyses of a study's responses, computed once per state.

An analysis with 2,000 bootstrap resamples takes seconds; the dashboard is viewed far more
often than responses arrive. A result is therefore stored under a fingerprint of the
responses it was computed from (their number and the newest ids of both response tables:
an undo followed by a new answer keeps the number but changes the ids), and recomputed only
when that fingerprint changes. Figures are stored with their result, so every web worker
serves the same bytes without a shared disk.
"""
from __future__ import annotations

from django.db import models
from django.db.models import Q

from webapp.studies.models import Study


class StudyResult(models.Model):
    """evalstudy's analysis of one study, with and without the protocol's exclusions."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="results")
    fingerprint = models.CharField(max_length=64, help_text="Of the responses analysed (see module docstring).")
    n_responses = models.PositiveIntegerField(help_text="Count and rank answers analysed.")
    n_boot = models.PositiveIntegerField()
    seed = models.BigIntegerField()
    result = models.JSONField(help_text='{"with_exclusions": analysis, "without_exclusions": analysis}')
    seconds = models.FloatField(help_text="Wall time of the analysis.")
    includes_simulated = models.BooleanField(
        default=False, help_text="A dry run's analysis: simulated evaluators' answers were included.")
    computed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["study", "-computed_at"]
        get_latest_by = "computed_at"
        constraints = [
            models.UniqueConstraint(fields=["study", "fingerprint", "n_boot", "seed"],
                                    name="study_result_unique_state"),
        ]

    def __str__(self) -> str:
        return f"{self.study.slug}: {self.n_responses} responses ({self.fingerprint[:12]})"


class ResultsUpdate(models.Model):
    """One press of "Update results", run by a Celery task (``tasks.results_update``).

    At most one update per study waits or runs at a time (a partial unique constraint); a
    second press while one is active joins it. ``stage`` says what the task is doing, for
    the dashboard's progress line.
    """

    class State(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        DONE = "done", "done"
        FAILED = "failed", "failed"

    ACTIVE = (State.QUEUED, State.RUNNING)

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="result_updates")
    state = models.CharField(max_length=8, choices=State.choices, default=State.QUEUED)
    stage = models.CharField(max_length=120, blank=True, help_text="What the task is doing now.")
    message = models.TextField(blank=True, help_text="Why it failed, or what it found.")
    result = models.ForeignKey(StudyResult, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    include_simulated = models.BooleanField(default=False, help_text="A dry run: count simulated evaluators too.")
    requested_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["study", "-requested_at"]
        constraints = [
            models.UniqueConstraint(fields=["study"], condition=Q(state__in=["queued", "running"]),
                                    name="results_update_one_active_per_study"),
            models.CheckConstraint(condition=Q(state__in=["queued", "running", "done", "failed"]),
                                   name="results_update_known_state"),
        ]

    def __str__(self) -> str:
        return f"{self.study.slug}: update {self.state}"


class ResultFigure(models.Model):
    """One figure file of a result, as evalstudy.figures wrote it."""

    class Format(models.TextChoices):
        PNG = "png", "PNG"
        SVG = "svg", "SVG"

    result = models.ForeignKey(StudyResult, on_delete=models.CASCADE, related_name="figures")
    name = models.SlugField(max_length=80, help_text="The file name without its extension.")
    format = models.CharField(max_length=3, choices=Format.choices)
    content = models.BinaryField()

    class Meta:
        ordering = ["result", "name", "format"]
        constraints = [
            models.UniqueConstraint(fields=["result", "name", "format"], name="result_figure_unique_file"),
            models.CheckConstraint(condition=Q(format__in=["png", "svg"]), name="result_figure_known_format"),
        ]

    def __str__(self) -> str:
        return f"{self.name}.{self.format}"

    @property
    def filename(self) -> str:
        return f"{self.name}.{self.format}"

    @property
    def content_type(self) -> str:
        return "image/svg+xml" if self.format == self.Format.SVG else "image/png"


class ReportDetails(models.Model):
    """What a report must state but the protocol does not hold: recruitment, pay, ethics.

    Human-evaluation reporting checklists ask for who the evaluators were, how they were
    recruited and paid and under which approval; the researcher fills these in once.
    """

    study = models.OneToOneField(Study, on_delete=models.CASCADE, related_name="report_details")
    recruitment = models.CharField(max_length=300, blank=True, help_text="e.g. Prolific, UK residents, fluent English.")
    expertise = models.CharField(max_length=300, blank=True,
                                 help_text="Who the evaluators were (crowd workers, experts).")
    pay_per_evaluator = models.DecimalField(max_digits=8, decimal_places=2, null=True, blank=True)
    pay_currency = models.CharField(max_length=3, blank=True, help_text="ISO 4217 code, e.g. GBP.")
    ethics = models.CharField(max_length=300, blank=True,
                              help_text="Approval body and reference, or why none was needed.")
    training = models.CharField(max_length=300, blank=True, help_text="Instructions and practice items given.")
    notes = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "report details"
        constraints = [
            models.CheckConstraint(condition=Q(pay_per_evaluator__isnull=True) | Q(pay_per_evaluator__gte=0),
                                   name="report_details_pay_nonnegative"),
            models.CheckConstraint(condition=Q(pay_per_evaluator__isnull=True) | ~Q(pay_currency=""),
                                   name="report_details_pay_has_currency"),
        ]

    def __str__(self) -> str:
        return f"Report details of {self.study.slug}"
