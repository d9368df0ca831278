"""The study's data: protocol, variants, prompts, images, items, evaluators and responses.

Blinding starts here: an image's ``public_id`` and file name are random and carry
nothing of the variant; an evaluator's items are addressed by their position in the
evaluator's own sequence, never by a primary key that could be correlated with a model.

Integrity lives in the database: a duplicate response, a negative count, or ranks that
are not well-formed competition ranks of the images shown (a permutation of 1..n without
ties) cannot be stored, whatever the Python code does.
"""
from __future__ import annotations

import functools
import json
import secrets

from django.conf import settings
from django.db import models
from django.db.models import Case, F, Q, Value, When
from django.db.models.expressions import CombinedExpression

from evalstudy.protocol import MAX_RANKED_VARIANTS, Protocol, ProtocolError


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


@functools.lru_cache(maxsize=256)
def _protocol_parsed(document: str) -> Protocol | None:
    """The Protocol a stored protocol describes (``document``: its JSON with sorted keys), or
    None when it does not parse.

    Cached per process by content, not by study: a study's protocol is written once, when
    it is created, but a row edited by hand (or by a test) is a new key and is read again.
    A Protocol is frozen, so the studies of one protocol can share it.
    """
    try:
        return Protocol.from_dict(json.loads(document))
    except ProtocolError:
        return None


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
    def parsed_protocol(self) -> Protocol | None:
        """The stored protocol as evalstudy reads it (defaults filled in), parsed once per
        process and protocol; None for a protocol that does not parse.

        Every study made by ``study_create`` holds one that parses (it stores the canonical
        form of a validated protocol); None is for rows made otherwise (the test factories'
        empty protocol), which callers treat as "no protocol": the generation defaults,
        evalstudy's analysis defaults, no consent, recruitment or practice section.
        """
        try:
            document = json.dumps(self.protocol, sort_keys=True)
        except (TypeError, ValueError):  # not JSON: nothing evalstudy could read either
            return None
        return _protocol_parsed(document)

    @property
    def public_title(self) -> str:
        """The study's name for its participants: the consent section's title when the
        protocol gives one; ``title`` (by default the protocol's internal name) otherwise."""
        protocol = self.parsed_protocol
        consent = protocol.consent if protocol is not None else None
        return (consent.title if consent is not None else None) or self.title

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
    # An extra count image for the prediction-powered intervals (the protocol's
    # analysis.judge_images_per_cell): the judge reads it, no evaluator ever sees it.
    judge_only = models.BooleanField(default=False, help_text="Read by the automatic judge only, never shown.")
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
            models.CheckConstraint(
                condition=Q(judge_only=False) | Q(source="model"),
                name="image_judge_only_is_model",
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
    # Written once, with the entries, so that the researchers' progress does not count them.
    planned_tasks = models.PositiveIntegerField(default=0, help_text="Tasks given on consent (the entries); 0 before.")
    browser = models.CharField(max_length=32, blank=True, default="", db_default="",
                               help_text="Token of the browser session holding this evaluator; new on a take-over.")
    # A keyed hash of the client address that consented (never the address itself), to cap
    # the places one address holds at once (FUSION_SLOTS_PER_ADDRESS).
    consent_address = models.CharField(max_length=32, blank=True, default="", db_default="",
                                       help_text="Keyed hash of the address that consented (not the address).")
    is_simulated = models.BooleanField(default=False)
    joined_at = models.DateTimeField(auto_now_add=True)
    consented_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True,
                                      help_text="Past the instructions and practice: the tasks may begin.")
    last_seen_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    abandoned_at = models.DateTimeField(null=True, blank=True)
    # A released place (``places.evaluator_release``) keeps its answers under this row, and
    # its panel id is free to join again as a new evaluator (a new submission on the panel).
    released_at = models.DateTimeField(null=True, blank=True,
                                       help_text="Place released: its answers kept here, its panel id free to join "
                                                 "again as a new evaluator.")

    class Meta:
        ordering = ["study", "joined_at"]
        constraints = [
            # One place per panel id at a time: a released place no longer counts.
            models.UniqueConstraint(
                fields=["study", "external_id"], condition=~Q(external_id="") & Q(released_at__isnull=True),
                name="evaluator_unique_external_id",
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
    # Time away from the task while it was shown (the page hidden, or no input for
    # FUSION_IDLE_AFTER_SECONDS), as the server stamped the task script's reports: the answer
    # stores it beside its seconds, so that working time (seconds less away) can be read apart.
    away_seconds = models.FloatField(default=0, db_default=0, help_text="Seconds away, intervals closed so far.")
    away_since = models.DateTimeField(null=True, blank=True, help_text="Away since (an open interval), if away now.")

    class Meta:
        ordering = ["evaluator", "index"]
        verbose_name_plural = "entries"  # the admin's index said "Entrys"
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
    # Of ``seconds``, the time the participant was away (the page hidden or idle): 0 without
    # the task script, for simulated evaluators and for answers stored before it was measured.
    away_seconds = models.FloatField(default=0, db_default=0)
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
            # Away is part of the time on task, never more than it (seconds - away: active time).
            models.CheckConstraint(condition=Q(away_seconds__gte=0) & Q(away_seconds__lte=F("seconds")),
                                   name="count_response_away_within_seconds"),
        ]

    def __str__(self) -> str:
        return f"{self.evaluator}: {'?' if self.cant_tell else self.answer}"


# A ranking orders 2 (pairwise A/B) to MAX_RANKED_VARIANTS images: one per variant of
# the protocol. The columns are laid out for the widest; a narrower ranking leaves the
# last ones empty.
MIN_RANK_WIDTH = 2


def _ranks_less_than(i: int) -> CombinedExpression | Value:
    """SQL for #{j : rank_j < rank_i} (a NULL rank counts as nothing)."""
    total: CombinedExpression | Value = Value(0)
    for j in range(MAX_RANKED_VARIANTS):
        if j != i:
            total = total + Case(When(**{f"rank_{j}__lt": F(f"rank_{i}")}, then=Value(1)), default=Value(0),
                                 output_field=models.IntegerField())
    return total


def _ranking_constraints() -> list[models.CheckConstraint]:
    """The database's own check of a stored ranking, for any width (see RankResponse)."""
    layout = Q(width__gte=MIN_RANK_WIDTH, width__lte=MAX_RANKED_VARIANTS)
    ranked = Q(skipped=False) & Q(skip_reason="")
    for i in range(MAX_RANKED_VARIANTS):
        image, rank = f"image_{i}", f"rank_{i}"
        # Positions below the width hold an image; those beyond it hold neither image nor rank.
        layout &= Q(**{"width__gt": i, f"{image}__isnull": False}) | Q(
            **{"width__lte": i, f"{image}__isnull": True, f"{rank}__isnull": True})
        # Competition ranks: rank_i in 1..width and rank_i == 1 + #{j : rank_j < rank_i}.
        # NULL passes a SQL comparison, so a rank within the width is required non-null first.
        well_formed = (Q(**{f"{rank}__isnull": False, f"{rank}__gte": 1, f"{rank}__lte": F("width")})
                       & Q(**{rank: Value(1) + _ranks_less_than(i)}))
        ranked &= well_formed | Q(width__lte=i) if i >= MIN_RANK_WIDTH else well_formed
    skipped = Q(skipped=True) & ~Q(skip_reason="") & Q(
        **{f"rank_{i}__isnull": True for i in range(MAX_RANKED_VARIANTS)})
    return [
        models.CheckConstraint(condition=layout, name="rank_response_width_layout"),
        models.CheckConstraint(condition=skipped | ranked, name="rank_response_ranking_or_skip"),
    ]


class RankResponse(models.Model):
    """Ranks of the ``width`` images as shown: ``rank_i`` is the rank of the image at screen
    position i (``image_i``), 1 = best. Tied images share the best rank of their group and
    the next rank skips ("1, 2, 2, 4"); without ties the ranks are a permutation of
    1..width. Pairwise (width 2): (1, 2) left is better, (2, 1) right is better, (1, 1)
    about the same.

    The database refuses a malformed ranking of any width. Whether the study allows ties
    is the protocol's (another table's) business, so that one is checked by the service.
    """

    class SkipReason(models.TextChoices):
        TOO_HARD = "too_hard", "Too hard to call"
        ALL_BAD = "all_bad", "All equally bad"
        OTHER = "other", "Other"

    entry = models.OneToOneField(Entry, on_delete=models.CASCADE, related_name="rank_response")
    evaluator = models.ForeignKey(Evaluator, on_delete=models.CASCADE, related_name="rank_responses")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="rank_responses")
    width = models.PositiveSmallIntegerField(help_text="How many images were ranked: the protocol's variants.")
    image_0 = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="+")
    image_1 = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="+")
    image_2 = models.ForeignKey(Image, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    image_3 = models.ForeignKey(Image, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    image_4 = models.ForeignKey(Image, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    image_5 = models.ForeignKey(Image, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    rank_0 = models.PositiveSmallIntegerField(null=True, blank=True)
    rank_1 = models.PositiveSmallIntegerField(null=True, blank=True)
    rank_2 = models.PositiveSmallIntegerField(null=True, blank=True)
    rank_3 = models.PositiveSmallIntegerField(null=True, blank=True)
    rank_4 = models.PositiveSmallIntegerField(null=True, blank=True)
    rank_5 = models.PositiveSmallIntegerField(null=True, blank=True)
    skipped = models.BooleanField(default=False)
    skip_reason = models.CharField(max_length=10, choices=SkipReason.choices, blank=True)
    seconds = models.FloatField()
    # Of ``seconds``, the time the participant was away (the page hidden or idle): 0 without
    # the task script, for simulated evaluators and for answers stored before it was measured.
    away_seconds = models.FloatField(default=0, db_default=0)
    browser = models.CharField(max_length=32, blank=True, default="", db_default="",
                               help_text="The evaluator's browser token when answered.")
    created_at = models.DateTimeField(auto_now_add=True)

    RANK_FIELDS = tuple(f"rank_{i}" for i in range(MAX_RANKED_VARIANTS))
    IMAGE_FIELDS = tuple(f"image_{i}" for i in range(MAX_RANKED_VARIANTS))

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(fields=["evaluator", "item"], name="rank_response_unique"),
            *_ranking_constraints(),
            models.CheckConstraint(condition=Q(seconds__gte=0), name="rank_response_seconds_nonnegative"),
            # Away is part of the time on task, never more than it (seconds - away: active time).
            models.CheckConstraint(condition=Q(away_seconds__gte=0) & Q(away_seconds__lte=F("seconds")),
                                   name="rank_response_away_within_seconds"),
        ]

    def __str__(self) -> str:
        return f"{self.evaluator}: {'skip' if self.skipped else self.ranks}"

    @property
    def ranks(self) -> list[int | None]:
        """The ranks in screen order, one per image shown (None for each of a skip)."""
        return [getattr(self, f) for f in self.RANK_FIELDS[: self.width]]
