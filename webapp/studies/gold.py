"""Gold images that look like the study's generated images.

A gold item must be a check the evaluator cannot spot: if gold images are clean renders
on pure white while the models' images are speckled and blotchy, a careful evaluator
learns which tasks are checks, and gold accuracy stops measuring attention. A generated
image cannot serve as gold as it is, because nothing knows its count for certain (the
automatic counter is itself wrong at times). So a gold image is assembled from pieces of
the study's generated images whose number is known by construction:

* its background is a generated image's background, each of that image's shapes
  replaced by background pixels drawn from elsewhere in it (specks stay: they are part
  of the look);
* its ``count`` objects are drawn by the synthetic renderer at the positions of its
  layout for the item (which keeps them apart), each side grown so that their area
  matches the donors' shapes (small models draw bloated shapes), their outline made
  ragged, and their colour moved by the donors' offset from the palette and given the
  pixel-to-pixel wobble of the donors' shapes.

The count is exact: the renderer draws that many separate shapes, and the automatic
counter must read it back (else another layout and donor are tried). Cutting shapes out
of generated images instead would look closer still, but a cut-out "shape" may be two
fused ones or a fragment, which is exactly what a gold item must not be.
``tests/webapp/test_gold.py`` checks that a classifier on file size and pixel statistics
cannot tell the two apart.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings
from PIL import Image as PILImage
from scipy import ndimage

from .models import Image, Study

WHITE = np.array([255.0, 255.0, 255.0])
# RGB distance from white: below BACKGROUND a pixel is background; from FOREGROUND on it
# is part of a shape (the automatic counter's threshold). Rims lie in between.
BACKGROUND_DISTANCE = 60.0
FOREGROUND_DISTANCE = 110.0
# A donor shape pixel lies within this distance of the line from white to the shape's
# colour (a shape or rim pixel); specks of other colours lie farther.
ON_SHAPE_RADIUS = 80.0
# Shapes are at least GAP (0.08 of the side) apart and at most SHAPE_SIZE[1] (0.26) wide:
# growing each side by 15% closes at most 0.04 of the gap.
MAX_SHAPE_SCALE = 1.15
# Share of outline pixels given a random coverage: generated outlines are irregular.
# RAGGEDNESS and WOBBLE were chosen on 120 images of the demo models (README, "Gold
# items"); larger values make outlines visibly frayed.
RAGGEDNESS = 0.05
# The donors' shape wobble is drawn pixel by pixel, which loses its spatial pattern; a
# little more of it (x1.25) brings file sizes and grey-level variance to the donors'.
WOBBLE = 1.25
# Donors read from the study, spread over its variants; more only costs time.
MAX_DONORS = 64
# Layouts and backgrounds tried for one gold image before giving up on the counter's agreement.
MAX_TRIES = 12


@dataclass(frozen=True)
class Look:
    """What gold images borrow from generated images of one size: their backgrounds
    (float arrays (H, W, 3) in 0..255, shapes removed), the colour wobble inside their
    shapes (per background, (n, 3) deviations), their shapes' offset from the palette
    colour, and how much larger (in side) their shapes are than the renderer draws them."""

    backgrounds: tuple[np.ndarray, ...]
    wobbles: tuple[np.ndarray, ...]
    colour_offset: np.ndarray
    shape_scale: float = 1.0

    @property
    def size(self) -> tuple[int, int]:
        h, w, _ = self.backgrounds[0].shape
        return w, h


@dataclass(frozen=True)
class Donor:
    """A generated image and what its prompt asked for (None: unknown)."""

    image: PILImage.Image
    object: str | None = None
    colour: str | None = None
    count: int | None = None


def _distance_to_white(a: np.ndarray) -> np.ndarray:
    return np.linalg.norm(WHITE - a, axis=-1)


def _shape_mask(a: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(the image's shapes with their rims, their dominant colour)."""
    dist = _distance_to_white(a)
    fg = a[dist >= FOREGROUND_DISTANCE]
    if not len(fg):
        return np.zeros(dist.shape, dtype=bool), None
    centre = np.median(fg, axis=0)
    axis = (centre - WHITE) / max(np.linalg.norm(centre - WHITE), 1.0)
    offset = a - WHITE
    off_line = np.linalg.norm(offset - (offset @ axis)[..., None] * axis, axis=-1)
    return ndimage.binary_dilation((dist >= BACKGROUND_DISTANCE) & (off_line < ON_SHAPE_RADIUS)), centre


def _background(a: np.ndarray, shapes: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """The image with its shapes replaced by its own background pixels."""
    pool = a[(_distance_to_white(a) < BACKGROUND_DISTANCE) & ~shapes]
    if len(pool) < 8:
        return None
    out = a.copy()
    out[shapes] = pool[rng.integers(len(pool), size=int(shapes.sum()))]
    return out


def look_from_donors(donors: list[Donor], *, seed: int = 0) -> Look | None:
    """The look of these generated images (those of the first one's size)."""
    from generator.synthetic import COLOURS

    rng = np.random.default_rng(seed)
    palette = np.array(list(COLOURS.values()), dtype=np.float64)
    arrays = [np.asarray(d.image.convert("RGB"), dtype=np.float64) for d in donors]
    backgrounds, wobbles, offsets, ink = [], [], [], []
    for a in arrays:
        if a.shape != arrays[0].shape:
            continue
        shapes, centre = _shape_mask(a)
        bg = _background(a, shapes, rng)
        if bg is None:
            continue
        backgrounds.append(bg)
        ink.append(_ink(a))
        if centre is None:
            wobbles.append(np.zeros((1, 3)))
            continue
        near_centre = np.linalg.norm(a - centre, axis=-1) < ON_SHAPE_RADIUS
        core = a[shapes & (_distance_to_white(a) >= FOREGROUND_DISTANCE) & near_centre]
        wobbles.append(core - centre if len(core) else np.zeros((1, 3)))
        offsets.append(centre - palette[int(np.argmin(np.linalg.norm(palette - centre, axis=-1)))])
    if not backgrounds:
        return None
    return Look(backgrounds=tuple(backgrounds), wobbles=tuple(wobbles),
                colour_offset=np.median(offsets, axis=0) if offsets else np.zeros(3),
                shape_scale=_shape_scale(float(np.mean(ink)), size=arrays[0].shape[1]))


def _ink(a: np.ndarray) -> float:
    """Share of the image covered by shapes."""
    return float((_distance_to_white(a) >= FOREGROUND_DISTANCE).mean())


def _shape_scale(donor_ink: float, *, size: int) -> float:
    """Side factor that gives rendered shapes the donors' mean ink. Renders of every kind
    and count 1-5 (a study's grid) stand for the donors' scenes; the factor stays within
    1..MAX_SHAPE_SCALE, where shapes laid out GAP apart still cannot touch."""
    from generator.synthetic import KINDS, MAX_SCENE_COUNT, MIN_SCENE_COUNT

    scenes = [(kind, n) for kind in KINDS for n in range(MIN_SCENE_COUNT, MAX_SCENE_COUNT + 1)]
    drawn = np.mean([_ink(np.asarray(scene_render(kind=kind, colour="red", count=n, seed=k, size=size),
                                     dtype=np.float64))
                     for k, (kind, n) in enumerate(scenes)])
    return float(np.clip(np.sqrt(donor_ink / drawn), 1.0, MAX_SHAPE_SCALE)) if drawn > 0 else 1.0


def study_look(*, study: Study) -> Look | None:
    """The look of the study's generated images; None before any exists."""
    donors = []
    per_variant: dict[int | None, int] = {}
    rows = (Image.objects.filter(study=study, source=Image.Source.MODEL)
            .select_related("prompt").order_by("variant_id", "id"))
    for img in rows.iterator():
        if per_variant.get(img.variant_id, 0) >= MAX_DONORS // 4:
            continue
        try:
            with PILImage.open(Path(settings.MEDIA_ROOT) / img.file) as stored:
                pil = stored.convert("RGB")
        except FileNotFoundError:
            continue
        p = img.prompt
        counted = p.kind == "count" and p.count
        donors.append(Donor(pil, object=p.object if counted else None, colour=p.colour or None if counted else None,
                            count=p.count if counted else None))
        per_variant[img.variant_id] = per_variant.get(img.variant_id, 0) + 1
    return look_from_donors(donors, seed=study.pk)


def scene_render(*, kind: str, colour: str, count: int, seed: int, size: int,
                 shape_scale: float = 1.0) -> PILImage.Image:
    """The synthetic renderer's picture of the scene (the layout of item (seed, 0), as
    ``make_item`` draws it), each shape's side times ``shape_scale``."""
    from generator.synthetic import Scene, item_rng, render, sample_layout, sample_scene

    scene = Scene(kind=kind, colour=colour, count=count)
    rng = item_rng(seed, 0)
    sample_scene(rng)  # make_item draws a scene first; the same layout follows
    layout = [(cx, cy, side * shape_scale) for cx, cy, side in sample_layout(count, rng)]
    return render(scene, layout, size)


def _ragged(coverage: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Outlines made irregular, as generated ones are: each pixel on either side of a
    shape's edge is, with probability RAGGEDNESS, given a random partial coverage."""
    inside = coverage >= 0.5
    edge = ndimage.binary_dilation(inside) & ~ndimage.binary_erosion(inside)
    flip = edge & (rng.random(coverage.shape) < RAGGEDNESS)
    out = coverage.copy()
    out[flip] = rng.uniform(0.15, 0.85, size=int(flip.sum()))
    return out


def match_look(render: PILImage.Image, *, look: Look, rng: np.random.Generator) -> PILImage.Image:
    """``render`` (shapes on white) on a borrowed background, with the donors' shape look."""
    k = int(rng.integers(len(look.backgrounds)))
    bg, wobble_pool = look.backgrounds[k], look.wobbles[k]
    r = np.asarray(render.convert("RGB").resize(look.size, PILImage.Resampling.BOX), dtype=np.float64)
    dist = _distance_to_white(r)
    coverage = _ragged(np.clip(dist / max(dist.max(), 1.0), 0.0, 1.0), rng)[..., None]
    ink = r.reshape(-1, 3)[int(np.argmax(dist))] + look.colour_offset  # one colour per scene
    wobble = WOBBLE * wobble_pool[rng.integers(len(wobble_pool), size=r.shape[:2])]
    out = WHITE + coverage * (ink + wobble - WHITE) + (1.0 - coverage) * (bg - WHITE)
    return PILImage.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8), "RGB")


def gold_render(*, kind: str, colour: str, count: int, seed: int, look: Look | None,
                size: int) -> tuple[PILImage.Image, dict]:
    """A gold image of exactly ``count`` shapes with the study's look, and what to record
    of how it was made. Without a look (no generated image yet) it is the clean render."""
    from generator.counter import count_objects

    if look is None:
        return scene_render(kind=kind, colour=colour, count=count, seed=seed, size=size), {"look": None}
    for attempt in range(MAX_TRIES):
        rng = np.random.default_rng([seed, attempt])
        clean = scene_render(kind=kind, colour=colour, count=count, seed=seed + attempt, size=look.size[0],
                             shape_scale=look.shape_scale)
        out = match_look(clean, look=look, rng=rng)
        if count_objects(out) == count:
            return out, {"look": "study", "try": attempt, "counter_confirmed": True}
    return out, {"look": "study", "try": MAX_TRIES - 1, "counter_confirmed": False}
