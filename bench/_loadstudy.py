"""An open study for load tests, its images drawn by the synthetic renderer (not a model).

Load tests measure the web path; the pixels do not matter, but they are real PNGs of
the same size and kind as the demo models' images.
"""
from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from django.db import transaction

from generator.synthetic import COLOURS, KINDS, Scene, make_item
from webapp.studies import lifecycle
from webapp.studies.imagefiles import write_png_atomic
from webapp.studies.models import Image, Item, Study, Variant

DEMO = Path(__file__).resolve().parent.parent / "fixtures" / "protocols" / "demo.json"


def _scene_for(item: Item, k: int) -> Scene:
    prompt = item.prompt
    if prompt.object in KINDS and prompt.count:
        return Scene(prompt.object, prompt.colour if prompt.colour in COLOURS else "red", prompt.count)
    return Scene(KINDS[k % len(KINDS)], tuple(COLOURS)[k % len(COLOURS)], 1 + k % 5)


def _add_image(study: Study, item: Item, variant: Variant | None, k: int) -> None:
    image = Image(study=study, prompt=item.prompt, variant=variant, seed=item.seed,
                  provenance={"renderer": "load-test"})
    pil, _ = make_item(item.seed, k, size=32, scene=_scene_for(item, k))
    image.file = write_png_atomic(image=pil, public_id=image.public_id, media_root=settings.MEDIA_ROOT)
    image.width, image.height = pil.size
    image.save()


@transaction.atomic
def build_load_study(n_slots: int, slug: str = "load-test", overlap: int | None = None) -> dict:
    """Open the demo protocol's study with ``n_slots`` places; ``overlap`` evaluators per
    item (the protocol's 3 unless given; ``n_slots`` gives everyone every item)."""
    protocol = json.loads(DEMO.read_text())
    protocol["evaluators"]["n"] = n_slots
    if overlap is not None:
        protocol["evaluators"]["overlap"] = overlap
    study = lifecycle.study_create(protocol=protocol, slug=slug, title="Load test", base_dir=str(DEMO.parent))
    variants = list(study.variants.all())
    for k, item in enumerate(Item.objects.filter(study=study, task="count", is_gold=False)):
        _add_image(study, item, item.variant, k)
    for k, item in enumerate(Item.objects.filter(study=study, task="rank")):
        for v in variants:
            _add_image(study, item, v, k + v.index)
    lifecycle.study_open(study=study)
    return {"invite": study.invite_token, "slug": study.slug}
