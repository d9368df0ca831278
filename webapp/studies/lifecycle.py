"""A study's life: creating it from a protocol, opening, pausing, resuming and closing it,
and rehearsal copies.

Every function here is keyword-only and atomic: it either does all of its work or raises
and leaves the database as it was. What evaluators do inside a study is ``flow``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from evalstudy.design import SlotPlan, plan_assignments, repeat_item_id
from evalstudy.grid import StudyItem, stable_key, study_items
from evalstudy.protocol import Protocol, ProtocolError

from .imagefiles import png_header, write_png_atomic
from .models import Image, Item, Prompt, Slot, Study, Variant

if TYPE_CHECKING:
    from .gold import Look

# --------------------------------------------------------------------------- study status


# Who may move a study from which status to which: action -> (from, to, past participle).
# Every page, admin action and command changes a study's status through these services,
# which check this table under the row lock; the pages offer the actions it allows.
STUDY_TRANSITIONS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "open": ((Study.Status.DRAFT,), Study.Status.OPEN, "opened"),
    "pause": ((Study.Status.OPEN,), Study.Status.PAUSED, "paused"),
    "resume": ((Study.Status.PAUSED,), Study.Status.OPEN, "resumed"),
    "close": ((Study.Status.OPEN, Study.Status.PAUSED), Study.Status.CLOSED, "closed"),
}


def study_actions_allowed(*, status: str) -> list[str]:
    """The status actions a study in `status` allows, in the table's order."""
    return [action for action, (sources, _, _) in STUDY_TRANSITIONS.items() if status in sources]


def _study_transition(*, study: Study, action: str) -> Study:
    """The study locked and re-read, after checking that `action` is allowed from its status."""
    sources, _, verb = STUDY_TRANSITIONS[action]
    study = Study.objects.select_for_update().get(pk=study.pk)
    if study.status not in sources:
        names = " or ".join(Study.Status(s).label.lower() for s in sources)
        article = "an" if names[0] in "aeiou" else "a"
        raise StudySetupError(
            f"Only {article} {names} study can be {verb}; this one is {study.get_status_display().lower()}."
        )
    return study


def _study_move(*, study: Study, action: str) -> Study:
    study = _study_transition(study=study, action=action)
    study.status = STUDY_TRANSITIONS[action][1]
    study.save(update_fields=["status"])
    return study


@transaction.atomic
def study_pause(*, study: Study) -> Study:
    """Stop newcomers; the evaluators already in may finish."""
    return _study_move(study=study, action="pause")


@transaction.atomic
def study_resume(*, study: Study) -> Study:
    return _study_move(study=study, action="resume")


@transaction.atomic
def study_close(*, study: Study) -> Study:
    """Close an open or paused study: nobody can join or answer any more."""
    study = _study_move(study=study, action="close")
    study.closed_at = timezone.now()
    study.save(update_fields=["closed_at"])
    return study


# --------------------------------------------------------------------------- study set-up


class StudySetupError(ValueError):
    """A study that cannot be created or opened as asked; the message says why."""


# Study slugs share /research/<slug>/ and /run/<slug>/ with these pages.
RESERVED_SLUGS = frozenset({"login", "logout", "new"})


def _gold_seed(key: str) -> int:
    return int(stable_key("gold", key)[:8], 16)


def _check_drawable(what: str, kind: str | None, colour: str | None) -> None:
    from generator.synthetic import COLOURS, KINDS

    if kind not in KINDS or (colour or "red") not in COLOURS:
        raise StudySetupError(
            f"{what}: the renderer draws {', '.join(KINDS)} in {', '.join(COLOURS)}; "
            f"it cannot draw {colour or ''} {kind}."
        )


def _check_gold_drawable(item: StudyItem) -> None:
    _check_drawable(f"Gold item {item.item_id!r}", item.object, item.colour)


def _check_practice_drawable(proto: Protocol) -> None:
    """Practice pictures are drawn when shown; a scene the renderer cannot draw is refused now."""
    from .practice import practice_scenes

    for name, (scene, _seed) in practice_scenes(proto.practice).items():
        _check_drawable(f"Practice picture {name!r}", scene.object, scene.colour)


def _render_gold(*, item: Item, size: int, look: Look | None) -> Image:
    """Render a gold image (known count) with the study's look (``gold.py``) and store it."""
    from .gold import gold_render

    prompt = item.prompt
    if item.true_count is None:
        raise StudySetupError(f"Gold item {item.key!r} has no true count.")
    try:
        pil, how = gold_render(
            kind=prompt.object,
            colour=prompt.colour or "red",
            count=item.true_count,
            seed=item.seed,
            look=look,
            size=size,
        )
    except ValueError as exc:
        raise StudySetupError(f"Gold item {item.key!r} cannot be drawn: {exc}") from exc
    image = Image(
        study=item.study,
        prompt=prompt,
        source=Image.Source.GOLD,
        seed=item.seed,
        true_count=item.true_count,
        provenance={
            "renderer": "generator.synthetic",
            "scene": [prompt.object, prompt.colour or "red", item.true_count],
            **how,
        },
    )
    image.file = write_png_atomic(image=pil, public_id=image.public_id, media_root=settings.MEDIA_ROOT)
    image.width, image.height = pil.size
    image.save()
    return image


def _render_missing_gold(*, study: Study) -> list[Path]:
    """Gold images are drawn at the size and with the look of the study's generated images,
    so that they do not stand out; they are made when the study opens, after generation.

    A draft's gold image drawn at another size (a preview before the model images existed,
    or before they were made again) is drawn again: only a researcher has seen it."""
    from .gold import study_look
    from .practice import study_image_size

    size = study_image_size(study)
    stale = Image.objects.filter(study=study, source=Image.Source.GOLD).exclude(width=size, height=size)
    old_files = [Path(settings.MEDIA_ROOT) / f for f in stale.values_list("file", flat=True)]
    if old_files:
        stale.delete()  # their items' image becomes empty (SET_NULL), drawn below
        transaction.on_commit(lambda: _unlink(old_files))
    missing = list(Item.objects.filter(study=study, is_gold=True, image__isnull=True).select_related("prompt", "study"))
    if not missing:
        return []
    look = study_look(study=study)
    written = []
    try:
        for item in missing:
            item.image = _render_gold(item=item, size=size, look=look)
            item.save(update_fields=["image"])
            written.append(Path(settings.MEDIA_ROOT) / item.image.file)
    except BaseException:
        _unlink(written)
        raise
    return written


def _unlink(files: list[Path]) -> None:
    """Remove files written for rows that roll back."""
    for file in files:
        file.unlink(missing_ok=True)


@transaction.atomic
def researchers_ensure(*, usernames: list[str]) -> tuple[list[User], list[str]]:
    """The accounts of these researchers, made (without a usable password, so nobody can
    log in as them until one is set) where missing; returns (users, names created)."""
    from django.contrib.auth import get_user_model

    User = get_user_model()
    users, created = [], []
    for name in dict.fromkeys(u.strip() for u in usernames if u.strip()):
        user = User.objects.filter(username=name).first()
        if user is None:
            user = User(username=name)
            user.full_clean(exclude=["password"])
            user.set_unusable_password()
            user.save()
            created.append(name)
        users.append(user)
    return users, created


@transaction.atomic
def study_create(*, protocol: Protocol | Mapping[str, object], slug: str, title: str = "",
                 base_dir: str | None = None, researchers: Iterable[User] = ()) -> Study:
    """Create a draft study from a protocol: its variants, prompts, planned items and gold images.

    ``protocol`` is a Protocol, or its JSON document as uploaded (read by Protocol.from_dict).
    Either is validated and frozen (its hash recorded) before anything is stored.
    Relative file paths in it are read from ``base_dir``; every file it names must lie
    inside ``settings.FUSION_PROTOCOL_FILES_DIR``.
    """
    try:
        # A Protocol built in code skips no check: it goes through the document's validation too.
        proto = Protocol.from_dict(protocol.to_dict() if isinstance(protocol, Protocol) else protocol)
        planned = study_items(proto, base_dir, root=settings.FUSION_PROTOCOL_FILES_DIR)
    except ProtocolError as exc:
        raise StudySetupError(f"Invalid protocol: {exc}") from exc
    _check_practice_drawable(proto)
    if slug in RESERVED_SLUGS:
        raise StudySetupError(f"The slug {slug!r} is reserved for the site's own pages; choose another.")
    if Study.objects.filter(slug=slug).exists():
        raise StudySetupError(f"A study with the slug {slug!r} exists already.")
    study = Study.objects.create(
        slug=slug,
        title=title or proto.name,
        description=proto.description,
        protocol=proto.to_dict(),
        protocol_hash=proto.content_hash(),
        completion_code=proto.evaluators.completion_code or "",
        plan_seed=new_plan_seed(),
    )
    study.researchers.set(researchers)
    variants = {name: Variant.objects.create(study=study, name=name, index=i) for i, name in enumerate(proto.variants)}
    objects = {o.name: o for o in proto.count_task.objects} if proto.count_task else {}
    prompts: dict[tuple[str, str], Prompt] = {}
    items = []
    for it in planned:
        kind = Prompt.Kind.COUNT if it.task == "count" else Prompt.Kind.RANK
        prompt = prompts.get((kind, it.prompt))
        if prompt is None:
            obj = objects.get(it.object) if it.object else None
            prompt = Prompt.objects.create(
                study=study,
                kind=kind,
                text=it.prompt,
                object=it.object or "",
                object_plural=obj.plural if obj else "",
                count=it.true_count if kind == Prompt.Kind.COUNT else None,
                colour=it.colour or "",
                question_text=it.question or "",
            )
            prompts[(kind, it.prompt)] = prompt
        seed = it.seed if it.seed is not None else _gold_seed(it.item_id)
        if it.is_gold:
            _check_gold_drawable(it)
        items.append(
            Item(
                study=study,
                key=it.item_id,
                task=it.task,
                prompt=prompt,
                seed=seed,
                variant=variants[it.variant] if it.variant else None,
                is_gold=it.is_gold,
                true_count=it.true_count,
            )
        )
    Item.objects.bulk_create(items)
    return study


@transaction.atomic
def study_attach_images(*, study: Study) -> int:
    """Link count items to their generated images; return how many are still missing."""
    missing = 0
    for item in Item.objects.filter(study=study, task=Item.Task.COUNT, is_gold=False, image__isnull=True):
        # A count item names its variant (a check constraint); None would match the gold images.
        image = (Image.objects.filter(variant_id=item.variant_id, prompt_id=item.prompt_id, seed=item.seed,
                                      judge_only=False).first()
                 if item.variant_id is not None else None)
        if image is None:
            missing += 1
        else:
            item.image = image
            item.save(update_fields=["image"])
    return missing


def new_plan_seed() -> int:
    """A study's assignment seed: random (63 bits, a BigIntegerField's positive range), not
    the protocol's. With the seed, the protocol gives every slot's items, order and screen
    positions, and a protocol is often public (pre-registered, in this repository, exported
    for the researchers); an evaluator who could compute the plan would know the model
    behind every image after a few tasks. The seed is stored with the study (the admin
    shows it; the slots it made are stored too) and never shown to evaluators."""
    return secrets.randbits(63)


REHEARSAL_CODE_PREFIX = "REHEARSAL-"


def rehearsal_completion_code() -> str:
    """The completion code of a rehearsal copy: drawn for the copy, never the study's. A
    tester who finishes a dry run is shown it, and the study's own code is what a panel
    (Prolific) accepts as proof of having done the real study; a copy run as a panel's
    pilot is given that pilot's code in the admin (a draft's code can be edited there)."""
    return REHEARSAL_CODE_PREFIX + secrets.token_hex(4).upper()


def study_assignment_plans(*, study: Study, by_key: dict[str, Item]) -> list[SlotPlan]:
    """The slots' plans (evalstudy.design) of the study's items, ``by_key`` its original
    items by key: what opening the study stores, and what a preview of a draft draws from.
    A ProtocolError (a ValueError) when the stored protocol does not parse."""
    proto = study.parsed_protocol
    if proto is None:
        raise ProtocolError("the study's stored protocol is not one evalstudy can read")
    return plan_assignments(
        [k for k, it in by_key.items() if it.task == Item.Task.COUNT and not it.is_gold],
        [k for k, it in by_key.items() if it.task == Item.Task.RANK],
        n_slots=proto.evaluators.n,
        overlap=proto.evaluators.overlap,
        seed=study.plan_seed,
        n_variants=len(proto.variants),
        gold_item_ids=[k for k, it in by_key.items() if it.is_gold],
        n_repeats=proto.quality_control.repeats,
        design=proto.design,
    )


GOLD_LABEL = "gold"


def _sizes_text(formats: dict[str, set[tuple[int, int, str]]], show: Callable[[tuple[int, int, str]], str]) -> str:
    """'concat-early 24x24, gold 24x24, sd-base 32x32 and 48x48', by label."""
    return ", ".join(f"{label} {' and '.join(sorted({show(f) for f in found}))}"
                     for label, found in sorted(formats.items()))


def _check_one_image_format(*, study: Study) -> None:
    """Every image an evaluator can see in the study (its model images that are not
    judge-only, its gold images) has one width and height and one mode, as its stored PNG's
    header says; else StudySetupError naming them by variant. A size or mode that differed by
    variant would name the model in the pixel dimensions and the byte count (Content-Length)."""
    formats: dict[str, set[tuple[int, int, str]]] = {}
    unreadable: dict[str, int] = {}
    visible = Image.objects.filter(study=study, judge_only=False).values_list("variant__name", "source", "file")
    for name, source, file in visible.order_by("id").iterator():
        label = GOLD_LABEL if source == Image.Source.GOLD else name
        header = png_header(Path(settings.MEDIA_ROOT) / file)
        if header is None:
            unreadable[label] = unreadable.get(label, 0) + 1
        else:
            formats.setdefault(label, set()).add(header)
    if unreadable:
        counts = ", ".join(f"{label} {n}" for label, n in sorted(unreadable.items()))
        raise StudySetupError(f"{sum(unreadable.values())} of the study's images have no readable PNG file "
                              f"({counts}); generate or import them again before opening.")
    every = set().union(*formats.values()) if formats else set()
    if len({(w, h) for w, h, _ in every}) > 1:
        raise StudySetupError(
            "The study's images differ in size by variant: "
            f"{_sizes_text(formats, lambda f: f'{f[0]}x{f[1]}')}; generate or import them at one size "
            "(the protocol's sampling.size) before opening.")
    if len({mode for _, _, mode in every}) > 1:
        raise StudySetupError(
            f"The study's images differ in colour mode by variant: {_sizes_text(formats, lambda f: f[2])}; "
            "generate or import them again (the platform stores RGB 8-bit) before opening.")


@transaction.atomic
def study_open(*, study: Study) -> Study:
    """Open a draft study: every image must exist, and every image an evaluator can see must
    have one size and mode (``_check_one_image_format``); the assignment plan becomes slots.
    Every way of opening a study (the run page, the admin, ``study_status``, a batch launched
    with ``--open``, ``demo``) comes here; a refusal changes nothing."""
    from .selectors import study_missing_images

    study = _study_transition(study=study, action="open")
    study_attach_images(study=study)
    drawn = _render_missing_gold(study=study)
    try:
        missing = study_missing_images(study=study)
        if missing:
            raise StudySetupError(
                f"{missing} images are still missing: run the study's generation batch to completion first."
            )
        _check_one_image_format(study=study)
    except BaseException:
        _unlink(drawn)  # the gold rows roll back with the refusal; their files go too
        raise
    by_key = {it.key: it for it in Item.objects.filter(study=study, repeat_of__isnull=True)}
    try:
        plans = study_assignment_plans(study=study, by_key=by_key)
    except ValueError as exc:
        raise StudySetupError(f"Cannot plan the assignments: {exc}") from exc
    repeats: dict[str, Item] = {}
    slots = []
    for plan in plans:
        seen: set[str] = set()
        order, positions = [], {}
        for _task, key in plan.items:
            item = by_key[key]
            if key in seen:  # the second showing of a repeated item
                if key not in repeats:
                    original = item
                    repeats[key] = Item.objects.create(
                        study=study,
                        key=repeat_item_id(key),
                        task=original.task,
                        prompt=original.prompt,
                        seed=original.seed,
                        variant=original.variant,
                        image=original.image,
                        is_gold=original.is_gold,
                        true_count=original.true_count,
                        repeat_of=original,
                    )
                item = repeats[key]
                if key in plan.repeat_positions:
                    positions[str(item.pk)] = plan.repeat_positions[key]
            elif key in plan.positions:
                positions[str(item.pk)] = plan.positions[key]
            seen.add(key)
            order.append(item.pk)
        slots.append(Slot(study=study, number=plan.slot, seed=plan.seed, items=order, positions=positions))
    Slot.objects.bulk_create(slots)
    study.status = Study.Status.OPEN
    study.opened_at = timezone.now()
    study.save(update_fields=["status", "opened_at"])
    return study


# --------------------------------------------------------------------------- rehearsal copies


@transaction.atomic
def study_copy_for_rehearsal(*, study: Study, slug: str, title: str = "") -> Study:
    """A new draft study with ``study``'s protocol, variants, prompts, items and images, under ``slug``.

    For a dry run with simulated or invited testers: the copy has rows of its own (every
    image a new file under a new random id), so nothing done to it touches the original.
    Its slots are planned when it is opened, like any draft's, from a seed of its own, and
    its testers are shown a completion code of its own (``rehearsal_completion_code``).
    """
    from pathlib import Path

    from django.core.exceptions import ValidationError
    from django.core.validators import validate_slug
    from PIL import Image as PILImage

    from .imagefiles import relative_path_for
    from .models import new_public_id

    slug = slug.strip()
    try:
        validate_slug(slug)
    except ValidationError as exc:
        raise StudySetupError("A slug holds letters, digits, hyphens and underscores only.") from exc
    if slug in RESERVED_SLUGS:
        raise StudySetupError(f"The slug {slug!r} is reserved for the site's own pages; choose another.")
    if Study.objects.filter(slug=slug).exists():
        raise StudySetupError(f"A study with the slug {slug!r} exists already.")
    copy = Study.objects.create(
        slug=slug, title=(title or f"{study.title} (rehearsal)")[:200], description=study.description,
        protocol=study.protocol, protocol_hash=study.protocol_hash,
        completion_code=rehearsal_completion_code() if study.completion_code else "",
        plan_seed=new_plan_seed(),  # its testers must learn nothing of the original's plan
    )
    copy.researchers.set(study.researchers.all())
    variants: dict[int | None, Variant] = {
        v.pk: Variant.objects.create(study=copy, name=v.name, index=v.index, checkpoint_id=v.checkpoint_id)
        for v in study.variants.all()}
    prompts = {}
    for p in Prompt.objects.filter(study=study):
        old = p.pk
        p.pk, p.id, p.study = None, None, copy
        p.save(force_insert=True)
        prompts[old] = p
    images: dict[int | None, Image] = {}
    written: list[Path] = []
    media = settings.MEDIA_ROOT
    try:
        for img in Image.objects.filter(study=study).order_by("id"):
            old_pk, old_id, old_file = img.pk, img.public_id, img.file
            img.pk, img.id, img.study = None, None, copy
            img.public_id = new_public_id()
            img.file = relative_path_for(img.public_id)
            img.prompt = prompts[img.prompt_id]
            img.variant = variants.get(img.variant_id)
            img.provenance = {**img.provenance, "copied_from": {"study": study.slug, "image": old_id}}
            img.save(force_insert=True)
            with PILImage.open(Path(media) / old_file) as pixels:
                write_png_atomic(image=pixels, public_id=img.public_id, media_root=media)
            written.append(Path(media) / img.file)
            images[old_pk] = img
        Item.objects.bulk_create([
            Item(study=copy, key=it.key, task=it.task, prompt=prompts[it.prompt_id], seed=it.seed,
                 variant=variants.get(it.variant_id), image=images.get(it.image_id), is_gold=it.is_gold,
                 true_count=it.true_count)
            for it in Item.objects.filter(study=study, repeat_of__isnull=True).order_by("id")
        ])
    except BaseException:
        for file in written:  # the rows roll back; their files go too
            file.unlink(missing_ok=True)
        raise
    return copy


@transaction.atomic
def study_render_gold(*, study: Study) -> None:
    """Draw the gold images a draft does not have yet, as opening it would (a preview needs them)."""
    study_attach_images(study=study)
    _render_missing_gold(study=study)
