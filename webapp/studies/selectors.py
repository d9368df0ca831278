"""Reads for studies: what an evaluator sees next, their progress, who may see an image."""
from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q

from .models import Entry, Evaluator, Image, Item, Study

SESSION_KEY = "fusion_evaluators"  # session: {study id (str): evaluator id}
BROWSER_SESSION_KEY = "fusion_browsers"  # session: {evaluator id (str): the evaluator's browser token}


@dataclass(frozen=True)
class Progress:
    answered: int
    total: int

    @property
    def percent(self) -> int:
        return 100 if self.total == 0 else round(100 * self.answered / self.total)


def _unanswered(qs):
    return qs.filter(count_response__isnull=True, rank_response__isnull=True)


def evaluator_next_entry(*, evaluator: Evaluator) -> Entry | None:
    """The first entry in the evaluator's sequence without an answer."""
    return (
        _unanswered(Entry.objects.filter(evaluator=evaluator))
        .select_related("item__prompt", "item__image")
        .order_by("index")
        .first()
    )


def evaluator_progress(*, evaluator: Evaluator) -> Progress:
    counts = Entry.objects.filter(evaluator=evaluator).aggregate(
        total=Count("id"), answered=Count("id", filter=Q(count_response__isnull=False) | Q(rank_response__isnull=False))
    )
    return Progress(answered=counts["answered"], total=counts["total"])


def evaluator_is_done(*, evaluator: Evaluator) -> bool:
    return not _unanswered(Entry.objects.filter(evaluator=evaluator)).exists()


def rank_item_images(*, item: Item) -> dict[int, Image]:
    """The item's images by variant index."""
    images = Image.objects.filter(
        study_id=item.study_id, prompt_id=item.prompt_id, seed=item.seed, source=Image.Source.MODEL
    ).select_related("variant")
    return {img.variant.index: img for img in images}


def entry_images(*, entry: Entry) -> list[Image]:
    """The images of an entry in screen order (one for a count task, four for ranking)."""
    if entry.item.task == Item.Task.COUNT:
        return [entry.item.image]
    by_variant = rank_item_images(item=entry.item)
    return [by_variant[v] for v in entry.positions]


def _holds(session, evaluator: Evaluator) -> bool:
    """Whether this browser session holds the evaluator (not taken over by another since).
    An evaluator from before browser tokens (none stored) is held by whoever knows it."""
    return evaluator.browser == "" or session.get(BROWSER_SESSION_KEY, {}).get(str(evaluator.pk)) == evaluator.browser


def evaluator_from_session(*, session, study: Study) -> Evaluator | None:
    """The evaluator this browser holds in ``study``; None if it joined none, or was signed
    out by another browser taking the evaluator over."""
    evaluator_id = session.get(SESSION_KEY, {}).get(str(study.pk))
    if evaluator_id is None:
        return None
    evaluator = Evaluator.objects.select_related("study").filter(pk=evaluator_id, study=study).first()
    return evaluator if evaluator is not None and _holds(session, evaluator) else None


def session_signed_out(*, session, study: Study) -> bool:
    """Whether this browser held an evaluator of ``study`` that another browser took over."""
    known = str(study.pk) in session.get(SESSION_KEY, {})
    return known and evaluator_from_session(session=session, study=study) is None


def session_evaluator_ids(*, session) -> list[int]:
    """The evaluators this browser session holds, in every study."""
    known = [int(v) for v in session.get(SESSION_KEY, {}).values()]
    if not known:
        return []
    return [ev.pk for ev in Evaluator.objects.filter(pk__in=known).only("pk", "browser") if _holds(session, ev)]


def evaluator_may_see_image(*, evaluator_ids: list[int], image: Image) -> bool:
    """Whether one of these evaluators has the image in their own tasks."""
    if not evaluator_ids:
        return False
    entries = Entry.objects.filter(evaluator_id__in=evaluator_ids)
    if entries.filter(item__image=image).exists():
        return True
    if image.source == Image.Source.GOLD:
        return False
    return entries.filter(item__task=Item.Task.RANK, item__prompt_id=image.prompt_id, item__seed=image.seed).exists()


def user_may_see_study(*, user, study: Study) -> bool:
    """Researchers of the study and admins."""
    if not user.is_authenticated:
        return False
    return user.is_superuser or user.is_staff or study.researchers.filter(pk=user.pk).exists()


def study_missing_images(*, study: Study) -> int:
    """How many of the study's planned images do not exist yet."""
    n_variants = study.variants.count()
    missing = Item.objects.filter(study=study, task=Item.Task.COUNT, image__isnull=True, repeat_of__isnull=True).count()
    for item in Item.objects.filter(study=study, task=Item.Task.RANK, repeat_of__isnull=True):
        have = Image.objects.filter(prompt_id=item.prompt_id, seed=item.seed, source=Image.Source.MODEL).count()
        missing += max(0, n_variants - have)
    return missing
