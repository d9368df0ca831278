"""Preview: a researcher takes the study as an evaluator would, and nothing is stored.

The tasks are drawn like a real evaluator's: a random one of the study's slots once it is
open, or (a draft) a random one of the plans opening it would make. The draw and the
place in it live in the researcher's session only: no Evaluator, Entry or response row
is written, and no place is taken. (A draft's gold images are drawn on its first
preview, as opening it would draw them.) A rehearsal copy (``study_copy_for_rehearsal``) is
the other way to try a study: a separate draft study with its own rows.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.core import signing

from .models import Image, Item, Slot, Study

SESSION_KEY = "fusion_preview"
TOKEN_SALT = "fusion-eval.preview"


class PreviewError(ValueError):
    """A study that cannot be previewed yet; the message says why."""


@dataclass(frozen=True)
class PreviewTask:
    index: int  # 0-based place in the drawn sequence (templates show index + 1)
    item: Item
    images: list[Image]  # screen order


def preview_draw(*, study: Study) -> dict:
    """A sequence of tasks drawn as a real evaluator's would be, as session data."""
    slots = list(Slot.objects.filter(study=study).values("number", "items", "positions"))
    if slots:
        slot = secrets.choice(slots)
        return {"study": study.pk, "slot": slot["number"], "items": list(slot["items"]),
                "positions": dict(slot["positions"]), "at": 0}
    from .lifecycle import study_assignment_plans, study_render_gold
    from .selectors import study_missing_images

    gold_to_draw = Item.objects.filter(study=study, is_gold=True, image__isnull=True, repeat_of__isnull=True).count()
    missing = study_missing_images(study=study) - gold_to_draw
    if missing:
        raise PreviewError(f"{missing} images are still missing: generate or import them before a preview.")
    study_render_gold(study=study)  # drawn now as opening would draw them, from the same images
    by_key = {it.key: it for it in Item.objects.filter(study=study, repeat_of__isnull=True)}
    try:
        plan = secrets.choice(study_assignment_plans(study=study, by_key=by_key))
    except ValueError as exc:
        raise PreviewError(f"Cannot plan the assignments: {exc}") from exc
    items: list[int] = []
    positions: dict[str, list[int]] = {}
    seen: set[str] = set()
    for _task, key in plan.items:
        item = by_key[key]
        # A repeated item is shown again as itself: a draft has no repeat rows yet.
        place = plan.repeat_positions if key in seen else plan.positions
        if key in place:
            positions[f"{item.pk}:{len(items)}"] = list(place[key])
        seen.add(key)
        items.append(item.pk)
    return {"study": study.pk, "slot": None, "items": items, "positions": positions, "at": 0}


def preview_task(*, study: Study, state: dict) -> PreviewTask | None:
    """The task at the state's place, or None when the sequence is done."""
    at = int(state["at"])
    if at >= len(state["items"]):
        return None
    item = Item.objects.select_related("prompt", "image").get(study=study, pk=state["items"][at])
    if item.task == Item.Task.COUNT:
        if item.image is None:
            raise PreviewError(f"Count item {item.key!r} has no image yet.")
        return PreviewTask(index=at, item=item, images=[item.image])
    order = state["positions"].get(str(item.pk)) or state["positions"].get(f"{item.pk}:{at}")
    by_variant = {img.variant.index: img for img in Image.objects.filter(
        study=study, prompt_id=item.prompt_id, seed=item.seed, source=Image.Source.MODEL, judge_only=False,
    ).select_related("variant") if img.variant is not None}  # a model image always has its variant
    return PreviewTask(index=at, item=item, images=[by_variant[v] for v in order])


def preview_token(*, state: dict) -> str:
    return signing.dumps({"s": state["study"], "at": state["at"]}, salt=TOKEN_SALT, compress=True)


def preview_token_ok(*, state: dict, token: str) -> bool:
    """True when ``token`` was given with the task now shown (not a replay of an earlier one)."""
    try:
        data = signing.loads(token, salt=TOKEN_SALT)
    except signing.BadSignature:
        return False
    return data == {"s": state["study"], "at": state["at"]}
