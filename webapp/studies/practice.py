"""The practice item and the ranking example: pictures drawn from the protocol's practice
section by the synthetic renderer, at the size of the study's generated images and with
their look (as gold images are drawn, ``gold.py``), so that the practice looks like the real tasks."""
from __future__ import annotations

from django.conf import settings

from evalstudy.protocol import Practice, SceneSpec

from . import sqlreads
from .imagefiles import png_bytes
from .models import Study

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
    width = sqlreads.model_image_width(study_id=study.pk)  # one statement made once per process
    return width if width is not None else settings.FUSION_GOLD_SIZE


def practice_png(*, study: Study, scene: SceneSpec, seed: int) -> bytes:
    """The picture of ``scene``, drawn like the study's gold images (``gold.py``)."""
    from .gold import gold_render, study_look

    pil, _ = gold_render(kind=scene.object, colour=scene.colour or "red", count=scene.count, seed=seed,
                         look=study_look(study=study), size=study_image_size(study))
    return png_bytes(pil)
