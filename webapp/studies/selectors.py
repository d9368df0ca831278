"""Reads for studies: what an evaluator sees next, their progress, who may see an image."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypedDict

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.contrib.sessions.backends.base import SessionBase
from django.db import models
from django.db.models import Case, Count, F, Q, QuerySet, Value, When
from django.utils import timezone

from evalstudy.protocol import NUMBER_WORDS

from . import sqlreads
from .models import CountResponse, Entry, Evaluator, Image, Item, RankResponse, Study

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations  # django-stubs' (a dev requirement): for mypy only

SESSION_KEY = "fusion_evaluators"  # session: {study id (str): evaluator id}
BROWSER_SESSION_KEY = "fusion_browsers"  # session: {evaluator id (str): the evaluator's browser token}


@dataclass(frozen=True)
class Progress:
    answered: int
    total: int

    @property
    def percent(self) -> int:
        return 100 if self.total == 0 else round(100 * self.answered / self.total)


def _unanswered(qs: QuerySet[Entry]) -> QuerySet[Entry]:
    return qs.filter(count_response__isnull=True, rank_response__isnull=True)


def evaluator_next_entry(*, evaluator: Evaluator) -> Entry | None:
    """The first entry in the evaluator's sequence without an answer, its item, prompt and
    image loaded (one query, in SQL made once per process: sqlreads)."""
    found = sqlreads.next_entry(evaluator_id=evaluator.pk)
    return found.entry if found is not None else None


def evaluator_next_and_progress(*, evaluator: Evaluator) -> tuple[Entry | None, Progress]:
    """``evaluator_next_entry`` and ``evaluator_progress`` together: one query while a
    task is left, two when the evaluator is done."""
    found = sqlreads.next_entry(evaluator_id=evaluator.pk)
    if found is None:
        return None, evaluator_progress(evaluator=evaluator)
    return found.entry, Progress(answered=found.answered, total=found.total)


def evaluator_progress(*, evaluator: Evaluator) -> Progress:
    counts = Entry.objects.filter(evaluator=evaluator).aggregate(
        total=Count("id"), answered=Count("id", filter=Q(count_response__isnull=False) | Q(rank_response__isnull=False))
    )
    return Progress(answered=counts["answered"], total=counts["total"])


def evaluator_last_response(*, evaluator: Evaluator) -> CountResponse | RankResponse | None:
    """The evaluator's most recent answer (the one an undo removes)."""
    last_count = (
        CountResponse.objects.filter(evaluator=evaluator).select_related("entry").order_by("-created_at", "-pk").first()
    )
    last_rank = (
        RankResponse.objects.filter(evaluator=evaluator).select_related("entry").order_by("-created_at", "-pk").first()
    )
    candidates = [r for r in (last_count, last_rank) if r is not None]
    if not candidates:
        return None
    return max(candidates, key=lambda r: (r.created_at, r.entry.index))


@dataclass(frozen=True)
class Ranking:
    """How a study's rankings are given: ``width`` images (one per variant of the protocol;
    2 is pairwise A/B), and whether images may be tied."""

    width: int
    allow_ties: bool

    @property
    def is_pairwise(self) -> bool:
        return self.width == 2

    @property
    def width_word(self) -> str:
        """The width in words, for the participants' pages ("four")."""
        return NUMBER_WORDS[self.width]


def study_ranking(*, study: Study, entry: Entry | None = None) -> Ranking:
    """The study's ranking, read from its protocol (the one place the width is decided).

    A study made without a valid protocol (tests) ranks one image per variant: as many as
    ``entry`` lays out when one is at hand (no query), else its variants counted."""
    proto = study.parsed_protocol
    if proto is None:
        width = len(entry.positions) if entry is not None else study.variants.count()
        return Ranking(width=width, allow_ties=False)
    return Ranking(width=proto.n_ranked, allow_ties=proto.allow_ties)


PAIRWISE_WORDS = {(1, 2): "left is better", (2, 1): "right is better", (1, 1): "about the same"}


def describe_answer(response: CountResponse | RankResponse) -> str:
    """An answer in the evaluator's words, e.g. for the note after an undo."""
    if isinstance(response, CountResponse):
        return "can't tell" if response.cant_tell else str(response.answer)
    if response.skipped:
        return f"skipped ({response.get_skip_reason_display().lower()})"
    ranks = [int(r) for r in response.ranks if r is not None]
    if len(ranks) == 2:
        return PAIRWISE_WORDS.get((ranks[0], ranks[1]), "")
    if len(set(ranks)) == 1:
        return "all equally good"
    # Best first; images sharing a rank are joined by "=".
    groups = [[i for i, r in enumerate(ranks) if r == rank] for rank in sorted(set(ranks))]
    return "best to worst: " + ", ".join(" = ".join(f"image {i + 1}" for i in g) for g in groups)


def evaluator_is_done(*, evaluator: Evaluator) -> bool:
    return not _unanswered(Entry.objects.filter(evaluator=evaluator)).exists()


def entry_images(*, entry: Entry) -> list[Image]:
    """The images of an entry in screen order (one for a count task, one per variant for ranking)."""
    if entry.item.task == Item.Task.COUNT:
        if entry.item.image is None:
            raise ValueError(f"count item {entry.item.key!r} has no image (the study was opened without it)")
        return [entry.item.image]
    by_variant = sqlreads.rank_images(item=entry.item)  # by variant index, each with its variant
    return [by_variant[v] for v in entry.positions]


# Below this size (pixels, the longer side) an image is magnified with nearest-neighbour
# scaling at a whole multiple, so that each source pixel becomes an equal square block:
# smooth interpolation of a 24x24 image smears touching shapes into one blob. Above it the
# browser's smooth scaling reads better.
PIXELATED_BELOW = 128


@dataclass(frozen=True)
class ImageDisplay:
    """How an image is first laid out: its own size, the size shown, and the scaling."""

    width: int
    height: int
    shown_width: int
    shown_height: int
    pixelated: bool


def image_display(*, width: int, height: int, box: int) -> ImageDisplay:
    """The largest integer-multiple magnification of a small image (``width`` x ``height``
    pixels) that fits ``box`` CSS pixels (at least 1x); a large image is fitted to ``box``."""
    w, h = width or box, height or box
    pixelated = max(w, h) < PIXELATED_BELOW
    if pixelated:
        scale = max(1, box // max(w, h))
        return ImageDisplay(w, h, w * scale, h * scale, True)
    fit = min(1.0, box / max(w, h))
    return ImageDisplay(w, h, round(w * fit), round(h * fit), False)


def _holds(session: SessionBase, evaluator: Evaluator) -> bool:
    """Whether this browser session holds the evaluator (not taken over by another since).
    An evaluator from before browser tokens (none stored) is held by whoever knows it."""
    return evaluator.browser == "" or session.get(BROWSER_SESSION_KEY, {}).get(str(evaluator.pk)) == evaluator.browser


def evaluator_from_session(*, session: SessionBase, study: Study) -> Evaluator | None:
    """The evaluator this browser holds in ``study``; None if it joined none, or was signed
    out by another browser taking the evaluator over."""
    evaluator_id = session.get(SESSION_KEY, {}).get(str(study.pk))
    if evaluator_id is None:
        return None
    evaluator = Evaluator.objects.select_related("study").filter(pk=evaluator_id, study=study).first()
    return evaluator if evaluator is not None and _holds(session, evaluator) else None


def evaluator_from_session_by_slug(*, session: SessionBase, slug: str) -> Evaluator | None:
    """The evaluator this browser holds in the study named ``slug``, with its study, in one
    query (the evaluator pages' first read); None as ``evaluator_from_session``."""
    known = list(session.get(SESSION_KEY, {}).values())
    if not known:
        return None
    evaluator = sqlreads.evaluator_with_study(evaluator_ids=known, slug=slug)
    return evaluator if evaluator is not None and _holds(session, evaluator) else None


def session_signed_out(*, session: SessionBase, study: Study) -> bool:
    """Whether this browser held an evaluator of ``study`` that another browser took over."""
    known = str(study.pk) in session.get(SESSION_KEY, {})
    return known and evaluator_from_session(session=session, study=study) is None


def session_released(*, session: SessionBase, study: Study) -> bool:
    """Whether the evaluator this browser held in ``study`` had its place released
    (``places.evaluator_release``); for the signed-out page, which then says so."""
    evaluator_id = session.get(SESSION_KEY, {}).get(str(study.pk))
    return evaluator_id is not None and Evaluator.objects.filter(
        pk=evaluator_id, study=study, released_at__isnull=False).exists()


def session_evaluator_ids(*, session: SessionBase) -> list[int]:
    """The evaluators this browser session holds, in every study."""
    known = [int(v) for v in session.get(SESSION_KEY, {}).values()]
    if not known:
        return []
    return [ev.pk for ev in Evaluator.objects.filter(pk__in=known).only("pk", "browser") if _holds(session, ev)]


def session_holders(*, session: SessionBase) -> list[tuple[int, str | None]]:
    """The evaluators this browser session names, each with the browser token it keeps for
    them: (evaluator id, token or None). No query: whether the session still holds each one
    is for the database to say (``_holds``, or sqlreads.showing_image_file)."""
    browsers = session.get(BROWSER_SESSION_KEY, {})
    return [(int(v), browsers.get(str(v))) for v in session.get(SESSION_KEY, {}).values()]


def showing_image(*, evaluator: Evaluator, index: int, position: int) -> Image | None:
    """The image of an evaluator's showing (``imagealias.Showing``: their task ``index``, the
    ``position`` on screen), judge-only images never: the rule, in the ORM. The image view
    asks ``sqlreads.showing_image_file`` (one statement), which tests/webapp/test_sqlreads.py
    holds to this."""
    entry = Entry.objects.select_related("item__image").filter(evaluator=evaluator, index=index).first()
    if entry is None:
        return None
    try:
        images = entry_images(entry=entry)
    except (KeyError, ValueError):  # an image the study was opened without
        return None
    if not 0 <= position < len(images) or images[position].judge_only:
        return None
    return images[position]


# The permission an admin gives a researcher so that they may create studies from the web.
CREATE_STUDY_PERMISSION = "studies.add_study"


def user_is_admin(*, user: User | AnonymousUser) -> bool:
    """The one staff check: an active account with ``is_staff`` or ``is_superuser``. Admins
    see every study's researcher pages and use the generation pages."""
    return bool(user.is_authenticated and user.is_active and (user.is_staff or user.is_superuser))


def user_may_create_studies(*, user: User | AnonymousUser) -> bool:
    """Admins, and users given ``studies.add_study`` (directly or through a group)."""
    return user_is_admin(user=user) or bool(user.is_authenticated and user.has_perm(CREATE_STUDY_PERMISSION))


def user_may_see_study(*, user: User | AnonymousUser, study: Study) -> bool:
    """Researchers of the study and admins."""
    if not user.is_authenticated:
        return False
    return user_is_admin(user=user) or study.researchers.filter(pk=user.pk).exists()


def study_visible_sizes(*, study_id: int) -> dict[str, set[tuple[int, int]]]:
    """The (width, height) of the study's model images an evaluator can see (not judge-only),
    by variant name: what a new variant's images must match."""
    sizes: dict[str, set[tuple[int, int]]] = {}
    rows = (Image.objects.filter(study_id=study_id, source=Image.Source.MODEL, judge_only=False)
            .values_list("variant__name", "width", "height").distinct())
    for name, width, height in rows:
        sizes.setdefault(name, set()).add((width, height))
    return sizes


def study_missing_images(*, study: Study) -> int:
    """How many of the study's planned images do not exist yet."""
    n_variants = study.variants.count()
    missing = Item.objects.filter(study=study, task=Item.Task.COUNT, image__isnull=True, repeat_of__isnull=True).count()
    for item in Item.objects.filter(study=study, task=Item.Task.RANK, repeat_of__isnull=True):
        have = Image.objects.filter(prompt_id=item.prompt_id, seed=item.seed, source=Image.Source.MODEL).count()
        missing += max(0, n_variants - have)
    return missing


# --------------------------------------------------------------------------- evaluator status


class EvaluatorStatus(models.TextChoices):
    """Where an evaluator stands, derived from their timestamps: the one vocabulary of the
    dashboard, the participants page and the participants CSV (so they cannot disagree).
    Checked in this order: the first that holds is the status."""

    FINISHED = "finished", "Completed"  # answered every task; the code was shown
    DECLINED = "declined", "Declined"  # did not consent
    ABANDONED = "abandoned", "Timed out"  # gave up their place, or silent past the slot timeout
    ACTIVE = "active", "In progress"  # consented, at work (also one who came back after their place was given away)
    CONSENTING = "consenting", "Opened the link"  # joined, has not decided yet


def status_silent_before() -> datetime:
    """Evaluators not seen since this moment count as timed out (FUSION_SLOT_TIMEOUT_SECONDS)."""
    return timezone.now() - timedelta(seconds=settings.FUSION_SLOT_TIMEOUT_SECONDS)


class StatusAnnotation(TypedDict):
    """What ``evaluators_with_status`` adds to each evaluator: an EvaluatorStatus value."""

    status: str


def evaluators_with_status(queryset: QuerySet[Evaluator] | None = None, *, silent_before: datetime | None = None
                           ) -> QuerySet[WithAnnotations[Evaluator, StatusAnnotation]]:
    """``queryset`` (default: every evaluator) annotated with ``status``, an EvaluatorStatus
    value computed by the database in the same query.

    An evaluator whose place went to a newcomer (``abandoned_at``) and who answers again
    afterwards (seen since) is at work, not gone: their answers are stored, they are paid
    when they finish, and "return" would ask someone still working to give up their pay."""
    cutoff = status_silent_before() if silent_before is None else silent_before
    qs = Evaluator.objects.all() if queryset is None else queryset
    return qs.annotate(
        status=Case(
            When(finished_at__isnull=False, then=Value(EvaluatorStatus.FINISHED.value)),
            When(declined_at__isnull=False, then=Value(EvaluatorStatus.DECLINED.value)),
            # A released place is gone whatever its browser did before (it was signed out).
            When(Q(released_at__isnull=False)
                 | Q(abandoned_at__isnull=False)
                 & (Q(last_seen_at__isnull=True) | Q(last_seen_at__lte=F("abandoned_at")))
                 | Q(last_seen_at__lt=cutoff), then=Value(EvaluatorStatus.ABANDONED.value)),
            When(consented_at__isnull=False, then=Value(EvaluatorStatus.ACTIVE.value)),
            default=Value(EvaluatorStatus.CONSENTING.value),
            output_field=models.CharField(max_length=12),
        )
    )
