"""factory_boy factories and a builder for a small open study with real PNG files."""
from __future__ import annotations

import random

import factory
from django.conf import settings
from django.contrib.auth import get_user_model
from PIL import Image as PILImage
from PIL import ImageDraw

from webapp.studies.imagefiles import write_png_atomic
from webapp.studies.models import Image, Item, Prompt, Slot, Study, Variant

VARIANTS = ("concat-early", "concat-intermediate", "cross-early", "cross-intermediate")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw-for-tests")


class StudyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Study

    slug = factory.Sequence(lambda n: f"study-{n}")
    title = factory.Sequence(lambda n: f"Study {n}")
    protocol = factory.LazyFunction(dict)
    protocol_hash = "0" * 64
    completion_code = "C0MPLETE"


class VariantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Variant


class PromptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Prompt


def draw_circles(n: int, seed: int, size: int = 64) -> PILImage.Image:
    """A small picture with ``n`` circles (what a gold image looks like)."""
    rng = random.Random(seed)
    img = PILImage.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    for k in range(n):
        x, y = 6 + (k % 3) * 20, 6 + (k // 3) * 24
        draw.ellipse([x, y, x + 14, y + 14], fill=(rng.randrange(200), rng.randrange(200), 200))
    return img


def make_image(*, study, prompt, variant=None, seed=0, true_count=None, provenance=None) -> Image:
    image = Image(
        study=study, prompt=prompt, variant=variant, seed=seed,
        source=Image.Source.MODEL if variant is not None else Image.Source.GOLD,
        true_count=true_count, cfg_scale=3.0 if variant else None, steps=10 if variant else None,
        sampler="dpmsolver++" if variant else "", provenance=provenance or {},
    )
    pil = draw_circles(true_count if true_count is not None else (prompt.count or 2), seed=seed)
    image.file = write_png_atomic(image=pil, public_id=image.public_id, media_root=settings.MEDIA_ROOT)
    image.width, image.height = pil.size
    image.save()
    return image


def fill_study_images(study) -> None:
    """Every image a draft study plans, as a finished generation batch leaves them."""
    for item in Item.objects.filter(study=study, task="count", is_gold=False):
        make_image(study=study, prompt=item.prompt, variant=item.variant, seed=item.seed)
    for item in Item.objects.filter(study=study, task="rank"):
        for v in study.variants.all():
            make_image(study=study, prompt=item.prompt, variant=v, seed=item.seed)


def generate_study_images(study) -> None:
    """The study's count and ranking images from the demo checkpoints (fixtures/checkpoints),
    stored as the generation worker stores them: real 24x24 model images, on CPU."""
    from pathlib import Path

    from generator.sample import load_sampler

    checkpoints = Path(__file__).resolve().parents[1] / "fixtures" / "checkpoints"
    sampling = study.protocol["sampling"]
    rank_items = list(Item.objects.filter(study=study, task="rank").select_related("prompt"))
    for variant in study.variants.all():
        sampler = load_sampler(str(checkpoints / variant.name), device="cpu")
        items = list(Item.objects.filter(study=study, variant=variant, is_gold=False).select_related("prompt"))
        jobs = [(it.prompt, it.seed) for it in items] + [(it.prompt, it.seed) for it in rank_items]
        pils = sampler.generate([p.text for p, _ in jobs], seeds=[seed for _, seed in jobs],
                                cfg_scale=sampling["cfg_scale"], steps=sampling["steps"], batch_size=len(jobs))
        for (prompt, seed), pil in zip(jobs, pils, strict=True):
            img = Image(study=study, prompt=prompt, variant=variant, seed=seed, source=Image.Source.MODEL)
            img.file = write_png_atomic(image=pil, public_id=img.public_id, media_root=settings.MEDIA_ROOT)
            img.width, img.height = pil.size
            img.save()


def build_open_study(*, n_slots: int = 3, with_gold: bool = True, variants=VARIANTS, seed: int = 7,
                     **study_kwargs) -> Study:
    """An open study: 2 count prompts x 4 variants, 2 ranking captions, 1 gold image, n slots.

    Slots hold every item, in an order shuffled per slot, with ranking positions rotated
    per slot (a cyclic Latin square), so tests do not depend on evalstudy's planner.
    """
    study = StudyFactory(status=Study.Status.OPEN, **study_kwargs)
    vs = [VariantFactory(study=study, name=name, index=i) for i, name in enumerate(variants)]
    items = []
    for n, obj in ((2, "circle"), (3, "square")):
        prompt = PromptFactory(study=study, kind="count", text=f"{'two' if n == 2 else 'three'} {obj}s", object=obj,
                               object_plural=obj + "s", count=n)
        for v in vs:
            img = make_image(study=study, prompt=prompt, variant=v, seed=100 + v.index,
                             provenance={"checkpoint_sha256": "ab" * 32, "config": {"name": v.name}})
            items.append(Item.objects.create(study=study, key=f"count:{v.name}:{obj}:{n}:{img.seed}", task="count",
                                             prompt=prompt, seed=img.seed, variant=v, image=img, true_count=n))
    if with_gold:
        gp = PromptFactory(study=study, kind="count", text="four circles", object="circle", object_plural="circles",
                           count=4)
        gimg = make_image(study=study, prompt=gp, seed=5, true_count=4)
        items.append(Item.objects.create(study=study, key="gold:g1", task="count", prompt=gp, seed=5, image=gimg,
                                         is_gold=True, true_count=4))
    for k, caption in enumerate(("a red circle and a blue square", "three green triangles")):
        prompt = PromptFactory(study=study, kind="rank", text=caption)
        for v in vs:
            make_image(study=study, prompt=prompt, variant=v, seed=200 + k)
        items.append(Item.objects.create(study=study, key=f"rank:{k}:{200 + k}", task="rank", prompt=prompt,
                                         seed=200 + k))
    rng = random.Random(seed)
    for s in range(n_slots):
        order = [it.pk for it in items]
        rng.shuffle(order)
        positions = {str(it.pk): [(s + j) % len(vs) for j in range(len(vs))] for it in items if it.task == "rank"}
        Slot.objects.create(study=study, number=s, seed=seed + s, items=order, positions=positions)
    return study
