"""The study's data: protocol, variants, prompts, images, items, evaluators and responses.

Blinding starts here: an image's ``public_id`` and file name are random and carry
nothing of the variant; an evaluator's items are addressed by their position in the
evaluator's own sequence, never by a primary key that could be correlated with a model.

Integrity lives in the database: a duplicate response, a negative count, or ranks that
are not a permutation of 1..4 cannot be stored, whatever the Python code does.
"""
from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.db.models import F, Q


def new_token(nbytes: int = 16) -> str:
    """A URL-safe random token (``nbytes`` of entropy)."""
    return secrets.token_urlsafe(nbytes)


def new_public_id() -> str:
    return secrets.token_hex(16)


def new_invite_token() -> str:
    return new_token(18)


def new_pseudonym() -> str:
    return "ev-" + secrets.token_hex(6)


# --------------------------------------------------------------------------- study


class Study(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        OPEN = "open", "Open"
        PAUSED = "paused", "Paused"  # no one new joins; those already in may finish
        CLOSED = "closed", "Closed"

    slug = models.SlugField(unique=True)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    protocol = models.JSONField(help_text="The frozen protocol (evalstudy's format).")
    protocol_hash = models.CharField(max_length=64, help_text="sha256 of the canonical protocol.")
    invite_token = models.CharField(max_length=40, unique=True, default=new_invite_token)
    completion_code = models.CharField(max_length=64, blank=True)
    plan_seed = models.BigIntegerField(default=0)
    researchers = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="studies")
    created_at = models.DateTimeField(auto_now_add=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "studies"

    def __str__(self) -> str:
        return f"{self.title} ({self.slug}, {self.status})"

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.OPEN

    @property
    def public_title(self) -> str:
        """The study's name for its participants: the consent section's title when the
        protocol gives one; ``title`` (by default the protocol's internal name) otherwise."""
        consent = self.protocol.get("consent") if isinstance(self.protocol, dict) else None
        return (consent or {}).get("title") or self.title

    @property
    def accepts_answers(self) -> bool:
        """Open, or paused: a pause stops newcomers, not the people already at work."""
        return self.status in (self.Status.OPEN, self.Status.PAUSED)


class Checkpoint(models.Model):
    """A registered model checkpoint: the weights' sha256 and the model config, recorded once."""

    name = models.CharField(max_length=200, unique=True)
    path = models.CharField(max_length=1000)
    sha256 = models.CharField(max_length=64)
    config = models.JSONField()
    registered_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.sha256[:12]})"


class Variant(models.Model):
    """One of the study's models. The name is for researchers only."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="variants")
    name = models.CharField(max_length=100)
    index = models.PositiveSmallIntegerField(help_text="0..n-1, the order in the protocol.")
    checkpoint = models.ForeignKey(Checkpoint, null=True, blank=True, on_delete=models.PROTECT, related_name="variants")

    class Meta:
        ordering = ["study", "index"]
        constraints = [
            models.UniqueConstraint(fields=["study", "name"], name="variant_unique_name"),
            models.UniqueConstraint(fields=["study", "index"], name="variant_unique_index"),
        ]

    def __str__(self) -> str:
        return f"{self.study.slug}:{self.name}"


class Prompt(models.Model):
    class Kind(models.TextChoices):
        COUNT = "count", "Object count"
        RANK = "rank", "Preference caption"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="prompts")
    kind = models.CharField(max_length=5, choices=Kind.choices)
    text = models.CharField(max_length=500)
    # Count prompts only: what is counted and how many were asked for.
    object = models.CharField(max_length=50, blank=True)
    object_plural = models.CharField(max_length=50, blank=True)
    count = models.PositiveSmallIntegerField(null=True, blank=True)
    colour = models.CharField(max_length=30, blank=True)
    question_text = models.CharField(max_length=300, blank=True, help_text="Shown to evaluators of count items.")

    class Meta:
        ordering = ["study", "kind", "id"]
        constraints = [
            models.UniqueConstraint(fields=["study", "kind", "text"], name="prompt_unique_text"),
            models.CheckConstraint(
                condition=Q(kind="rank") | (Q(count__isnull=False) & ~Q(object="")),
                name="prompt_count_has_object_and_count",
            ),
        ]

    def __str__(self) -> str:
        return self.text

    @property
    def question(self) -> str:
        return self.question_text or f"How many {self.object_plural or self.object} can you see?"


class Image(models.Model):
    """A generated image (or a rendered gold image with a known count)."""

    class Source(models.TextChoices):
        MODEL = "model", "Generated by a variant"
        GOLD = "gold", "Rendered with a known count"

    public_id = models.CharField(max_length=32, unique=True, default=new_public_id, editable=False)
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="images")
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="images")
    source = models.CharField(max_length=5, choices=Source.choices, default=Source.MODEL)
    variant = models.ForeignKey(Variant, null=True, blank=True, on_delete=models.CASCADE, related_name="images")
    checkpoint = models.ForeignKey(Checkpoint, null=True, blank=True, on_delete=models.PROTECT, related_name="images")
    seed = models.BigIntegerField()
    cfg_scale = models.FloatField(null=True, blank=True)
    steps = models.PositiveIntegerField(null=True, blank=True)
    sampler = models.CharField(max_length=50, blank=True)
    true_count = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Known count (gold images).")
    auto_count = models.IntegerField(null=True, blank=True, help_text="The automatic counter's reading.")
    file = models.CharField(max_length=300, help_text="Path under MEDIA_ROOT; an opaque name.")
    width = models.PositiveIntegerField(default=0)
    height = models.PositiveIntegerField(default=0)
    provenance = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            # A re-run task finds its image instead of writing it twice.
            models.UniqueConstraint(fields=["variant", "prompt", "seed"], name="image_unique_variant_prompt_seed"),
            models.UniqueConstraint(
                fields=["prompt", "seed"], condition=Q(source="gold"), name="image_unique_gold_prompt_seed"
            ),
            models.CheckConstraint(
                condition=(Q(source="model") & Q(variant__isnull=False))
                | (Q(source="gold") & Q(variant__isnull=True) & Q(true_count__isnull=False)),
                name="image_source_consistent",
            ),
        ]

    def __str__(self) -> str:
        return self.public_id


class Item(models.Model):
    """A unit of work, planned from the protocol when the study is created.

    Count items show one image (of one variant, or a gold image with a known count);
    rank items show the images of every variant for one caption and seed. ``key`` is
    evalstudy's stable item id, the one the exports and the analysis use. ``image`` is
    filled in when the generation batch has made it.
    """

    class Task(models.TextChoices):
        COUNT = "count", "Count"
        RANK = "rank", "Rank"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="items")
    key = models.CharField(max_length=200)
    task = models.CharField(max_length=5, choices=Task.choices)
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="items")
    seed = models.BigIntegerField()
    variant = models.ForeignKey(Variant, null=True, blank=True, on_delete=models.CASCADE, related_name="items")
    image = models.ForeignKey(Image, null=True, blank=True, on_delete=models.SET_NULL, related_name="items")
    is_gold = models.BooleanField(default=False)
    true_count = models.PositiveSmallIntegerField(null=True, blank=True)
    repeat_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="repeats")

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["study", "key"], name="item_unique_key"),
            models.CheckConstraint(
                condition=(Q(task="count") & (Q(is_gold=True) | Q(variant__isnull=False)))
                | (Q(task="rank") & Q(variant__isnull=True) & Q(image__isnull=True) & Q(is_gold=False)),
                name="item_task_consistent",
            ),
        ]

    def __str__(self) -> str:
        return self.key


class Slot(models.Model):
    """One evaluator's planned work (from evalstudy.design), fixed when the study opens."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="slots")
    number = models.PositiveIntegerField()
    seed = models.BigIntegerField()
    items = models.JSONField(help_text="Item ids in presentation order.")
    positions = models.JSONField(default=dict, help_text="rank item id -> variant indices in screen order.")

    class Meta:
        ordering = ["study", "number"]
        constraints = [models.UniqueConstraint(fields=["study", "number"], name="slot_unique_number")]

    def __str__(self) -> str:
        return f"{self.study.slug} slot {self.number}"


# --------------------------------------------------------------------------- evaluators


class Evaluator(models.Model):
    """A pseudonymous evaluator of one study, joined by invite link (or a logged-in account)."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="evaluators")
    pseudonym = models.CharField(max_length=20, unique=True, default=new_pseudonym)
    external_id = models.CharField(max_length=128, blank=True, help_text="e.g. Prolific's PROLIFIC_PID.")
    # The panel's own ids of the study and of this participant's session (Prolific's
    # STUDY_ID and SESSION_ID), kept to match a submission on the panel's side.
    external_study_id = models.CharField(max_length=128, blank=True)
    external_session_id = models.CharField(max_length=128, blank=True)
    declined_at = models.DateTimeField(null=True, blank=True, help_text="Did not consent.")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    slot = models.ForeignKey(Slot, null=True, blank=True, on_delete=models.SET_NULL, related_name="evaluators",
                             help_text="Taken on consent; none before.")
    browser = models.CharField(max_length=32, blank=True, default="", db_default="",
                               help_text="Token of the browser session holding this evaluator; new on a take-over.")
    is_simulated = models.BooleanField(default=False)
    joined_at = models.DateTimeField(auto_now_add=True)
    consented_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True,
                                      help_text="Past the instructions and practice: the tasks may begin.")
    last_seen_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    abandoned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["study", "joined_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["study", "external_id"], condition=~Q(external_id=""), name="evaluator_unique_external_id"
            ),
            # Two people on one slot would answer the same plan twice.
            models.UniqueConstraint(
                fields=["slot"], condition=Q(slot__isnull=False, abandoned_at__isnull=True),
                name="evaluator_one_holder_per_slot",
            ),
        ]

    def __str__(self) -> str:
        return self.pseudonym


class Entry(models.Model):
    """The n-th task in an evaluator's sequence; for ranking, the screen order of the variants."""

    evaluator = models.ForeignKey(Evaluator, on_delete=models.CASCADE, related_name="entries")
    index = models.PositiveIntegerField()
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="entries")
    positions = models.JSONField(default=list, blank=True, help_text="Variant indices in screen order (rank items).")
    # Time on task runs from here to the answer: set once, when the server first shows
    # the task, so a reload does not restart it (what pays people is measured here).
    shown_at = models.DateTimeField(null=True, blank=True, help_text="When the task was first shown.")

    class Meta:
        ordering = ["evaluator", "index"]
        constraints = [
            models.UniqueConstraint(fields=["evaluator", "index"], name="entry_unique_index"),
            models.UniqueConstraint(fields=["evaluator", "item"], name="entry_unique_item"),
        ]

    def __str__(self) -> str:
        return f"{self.evaluator} #{self.index}"


# --------------------------------------------------------------------------- responses


class CountResponse(models.Model):
    entry = models.OneToOneField(Entry, on_delete=models.CASCADE, related_name="count_response")
    evaluator = models.ForeignKey(Evaluator, on_delete=models.CASCADE, related_name="count_responses")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="count_responses")
    answer = models.IntegerField(null=True, blank=True)
    cant_tell = models.BooleanField(default=False)
    seconds = models.FloatField()
    browser = models.CharField(max_length=32, blank=True, default="", db_default="",
                               help_text="The evaluator's browser token when answered.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(fields=["evaluator", "item"], name="count_response_unique"),
            models.CheckConstraint(
                condition=(Q(cant_tell=True) & Q(answer__isnull=True))
                | (Q(cant_tell=False) & Q(answer__isnull=False) & Q(answer__gte=0) & Q(answer__lte=1000)),
                name="count_response_valid_answer",
            ),
            models.CheckConstraint(condition=Q(seconds__gte=0), name="count_response_seconds_nonnegative"),
        ]

    def __str__(self) -> str:
        return f"{self.evaluator}: {'?' if self.cant_tell else self.answer}"


class RankResponse(models.Model):
    """Ranks of the four images as shown: ``rank_i`` is the rank of the image at screen position i."""

    class SkipReason(models.TextChoices):
        TOO_HARD = "too_hard", "Too hard to call"
        ALL_BAD = "all_bad", "All equally bad"
        OTHER = "other", "Other"

    entry = models.OneToOneField(Entry, on_delete=models.CASCADE, related_name="rank_response")
    evaluator = models.ForeignKey(Evaluator, on_delete=models.CASCADE, related_name="rank_responses")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="rank_responses")
    image_0 = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="+")
    image_1 = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="+")
    image_2 = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="+")
    image_3 = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="+")
    rank_0 = models.PositiveSmallIntegerField(null=True, blank=True)
    rank_1 = models.PositiveSmallIntegerField(null=True, blank=True)
    rank_2 = models.PositiveSmallIntegerField(null=True, blank=True)
    rank_3 = models.PositiveSmallIntegerField(null=True, blank=True)
    skipped = models.BooleanField(default=False)
    skip_reason = models.CharField(max_length=10, choices=SkipReason.choices, blank=True)
    seconds = models.FloatField()
    browser = models.CharField(max_length=32, blank=True, default="", db_default="",
                               help_text="The evaluator's browser token when answered.")
    created_at = models.DateTimeField(auto_now_add=True)

    RANK_FIELDS = ("rank_0", "rank_1", "rank_2", "rank_3")
    IMAGE_FIELDS = ("image_0", "image_1", "image_2", "image_3")

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(fields=["evaluator", "item"], name="rank_response_unique"),
            models.CheckConstraint(
                condition=(
                    Q(skipped=True)
                    & ~Q(skip_reason="")
                    & Q(rank_0__isnull=True, rank_1__isnull=True, rank_2__isnull=True, rank_3__isnull=True)
                )
                | (
                    Q(skipped=False)
                    & Q(skip_reason="")
                    # Four values in 1..4, pairwise different: a permutation of 1..4. NULL
                    # passes a SQL comparison, so the ranks are required non-null first.
                    & Q(rank_0__isnull=False, rank_1__isnull=False, rank_2__isnull=False, rank_3__isnull=False)
                    & Q(rank_0__gte=1, rank_0__lte=4, rank_1__gte=1, rank_1__lte=4)
                    & Q(rank_2__gte=1, rank_2__lte=4, rank_3__gte=1, rank_3__lte=4)
                    & ~Q(rank_0=F("rank_1")) & ~Q(rank_0=F("rank_2")) & ~Q(rank_0=F("rank_3"))
                    & ~Q(rank_1=F("rank_2")) & ~Q(rank_1=F("rank_3")) & ~Q(rank_2=F("rank_3"))
                ),
                name="rank_response_permutation_or_skip",
            ),
            models.CheckConstraint(condition=Q(seconds__gte=0), name="rank_response_seconds_nonnegative"),
        ]

    def __str__(self) -> str:
        return f"{self.evaluator}: {'skip' if self.skipped else self.ranks}"

    @property
    def ranks(self) -> list[int | None]:
        return [getattr(self, f) for f in self.RANK_FIELDS]
