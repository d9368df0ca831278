"""The practice item and the ranking example: pictures drawn from the protocol's practice
section by the synthetic renderer, at the size of the study's generated images and with
their look (as gold images are drawn, ``gold.py``), so that the practice looks like the real tasks."""
from __future__ import annotations

import threading

from django.conf import settings
from django.core.cache import cache

from evalstudy.protocol import Practice, SceneSpec

from . import recruitment, sqlreads
from .imagefiles import png_bytes
from .models import Study

# A drawn practice picture is kept this long in the shared cache (it is drawn again after).
CACHE_SECONDS = 24 * 60 * 60
_DRAWING = threading.Lock()  # one drawing at a time per process: a burst's requests wait for the first

# Names of the practice pictures, as they appear in their URLs.
COUNT_NAME = "count"
EXAMPLE_PREFIX = "example-"


def practice_scenes(practice: Practice | None) -> dict[str, tuple[SceneSpec, int]]:
    """{name: (scene, seed)} of every practice picture of a study."""
    if practice is None:
        return {}
    out: dict[str, tuple[SceneSpec, int]] = {}
    if practice.count is not None:
        c = practice.count
        out[COUNT_NAME] = (SceneSpec(object=c.object, count=c.count, colour=c.colour), c.seed)
    if practice.rank_example is not None:
        for k, scene in enumerate(practice.rank_example.images):
            out[f"{EXAMPLE_PREFIX}{k}"] = (scene, 1000 + k)
    return out


def study_image_size(study: Study) -> int:
    """The side in pixels at which gold and practice pictures are drawn: that of the study's
    model images an evaluator sees (opening a study checks that they share one size, the
    gold images included), FUSION_GOLD_SIZE before any exists."""
    width = sqlreads.model_image_width(study_id=study.pk)  # one statement made once per process
    return width if width is not None else settings.FUSION_GOLD_SIZE


def practice_png(*, study: Study, scene: SceneSpec, seed: int) -> bytes:
    """The picture of ``scene``, drawn like the study's gold images (``gold.py``)."""
    from .gold import gold_render, study_look

    pil, _ = gold_render(kind=scene.object, colour=scene.colour or "red", count=scene.count, seed=seed,
                         look=study_look(study=study), size=study_image_size(study))
    return png_bytes(pil)


def practice_picture(*, study: Study, name: str) -> bytes | None:
    """The PNG of the practice picture ``name`` of the study (None: it has no such picture).

    Drawing one costs some 80 ms of CPU (the study's look is read from its images, and the
    counter confirms the drawing), and every participant loads every practice picture on
    arrival: once a study is past its draft, whose images may still change, each picture
    is drawn once and kept in the shared cache (Redis in production), so that a launch
    burst does not draw it once per person. The cache key holds what the drawing depends on
    that can differ between studies: the study, the picture's scene and seed.
    """
    scenes = practice_scenes(recruitment.practice_of(study))
    if name not in scenes:
        return None
    scene, seed = scenes[name]
    if study.status == Study.Status.DRAFT:
        return practice_png(study=study, scene=scene, seed=seed)
    key = f"practice-png:1:{study.pk}:{name}:{scene.object}:{scene.count}:{scene.colour}:{seed}"
    data = cache.get(key)
    if data is None:
        with _DRAWING:
            data = cache.get(key)  # drawn meanwhile by another thread
            if data is None:
                data = practice_png(study=study, scene=scene, seed=seed)
                cache.set(key, data, CACHE_SECONDS)
    return data
