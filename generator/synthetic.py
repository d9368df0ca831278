"""A synthetic counting dataset: 1 to 5 shapes of one kind and colour, drawn with Pillow.

Every item is a pure function of (seed, index), so a dataset is reproducible from two
integers, and the same layout renders at any resolution (24x24 for the demo models,
larger for gold items shown to people). Captions follow the study's grammar:
"a blue square", "three red circles".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

# ---------------------------------------------------------------------------
# Vocabulary and caption grammar
# ---------------------------------------------------------------------------

KINDS = ("circle", "square", "triangle")
PLURALS = {"circle": "circles", "square": "squares", "triangle": "triangles"}
# Saturated colours far apart in RGB and far from the white background, so that the
# counter can tell them apart in blurry, noisy 32x32 samples.
COLOURS = {
    "red": (220, 30, 30),
    "green": (20, 160, 40),
    "blue": (30, 60, 220),
    "yellow": (235, 190, 0),
}
BACKGROUND = (255, 255, 255)
MIN_SCENE_COUNT, MAX_SCENE_COUNT = 1, 5  # objects in one rendered scene (the demo's training data)
NUMBER_WORDS = {1: "a", 2: "two", 3: "three", 4: "four", 5: "five"}


@dataclass(frozen=True)
class Scene:
    """What an image shows: `count` shapes of one `kind` and `colour`."""

    kind: str
    colour: str
    count: int

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r}; expected one of {KINDS}")
        if self.colour not in COLOURS:
            raise ValueError(f"unknown colour {self.colour!r}; expected one of {tuple(COLOURS)}")
        if not MIN_SCENE_COUNT <= self.count <= MAX_SCENE_COUNT:
            raise ValueError(f"count {self.count} outside {MIN_SCENE_COUNT}..{MAX_SCENE_COUNT}")

    @property
    def caption(self) -> str:
        noun = self.kind if self.count == 1 else PLURALS[self.kind]
        return f"{NUMBER_WORDS[self.count]} {self.colour} {noun}"


def all_scenes() -> list[Scene]:
    """Every (kind, colour, count) the grammar allows, in a fixed order."""
    return [
        Scene(k, c, n)
        for k in KINDS
        for c in COLOURS
        for n in range(MIN_SCENE_COUNT, MAX_SCENE_COUNT + 1)
    ]


# ---------------------------------------------------------------------------
# Layout: non-overlapping shapes in unit coordinates
# ---------------------------------------------------------------------------

# Shape side as a fraction of the image side: ~6 px at 24x24 (the demo models' size),
# big enough to survive a small diffusion model's blur, small enough that five fit.
SHAPE_SIZE = (0.22, 0.26)
# Clear space between bounding boxes (unit coordinates); ~2 px at 24x24, so that
# slightly bloated generated shapes still come out as separate components.
GAP = 0.08
MARGIN = 0.04


# propose(boxes so far, side, lo, hi) -> a candidate centre (cx, cy)
Proposal = Callable[[list[tuple[float, float, float]], float, float, float], tuple[float, float] | np.ndarray]


def _place(count: int, rng: np.random.Generator, gap: float, propose: Proposal, max_tries: int, tol: float = 0.0
           ) -> list[tuple[float, float, float]]:
    """`count` boxes (cx, cy, side), each drawn side first, then up to `max_tries`
    centres from propose(boxes, side, lo, hi) until one is inside the margins and
    >= gap - tol from every box so far; if none is, the whole layout starts over."""
    for _ in range(max_tries):
        boxes: list[tuple[float, float, float]] = []
        for _ in range(count):
            side = rng.uniform(*SHAPE_SIZE)
            lo, hi = MARGIN + side / 2, 1 - MARGIN - side / 2
            for _ in range(max_tries):
                cx, cy = propose(boxes, side, lo, hi)
                if lo <= cx <= hi and lo <= cy <= hi and all(
                    max(abs(cx - bx), abs(cy - by)) >= (side + bs) / 2 + gap - tol for bx, by, bs in boxes
                ):
                    boxes.append((float(cx), float(cy), float(side)))
                    break
            else:
                break
        if len(boxes) == count:
            return boxes
    raise RuntimeError(f"could not place {count} shapes {gap} apart in {max_tries} tries")


def sample_layout(count: int, rng: np.random.Generator, max_tries: int = 100) -> list[tuple[float, float, float]]:
    """`count` boxes (cx, cy, side) in [0, 1] units whose squares are >= GAP apart.

    Random sequential placement: each shape gets up to `max_tries` positions; if one
    finds no room the whole layout starts over.
    """
    return _place(count, rng, GAP, lambda boxes, side, lo, hi: rng.uniform(lo, hi, size=2), max_tries)


def contact_layout(
    count: int, rng: np.random.Generator, gap: float, max_tries: int = 100
) -> list[tuple[float, float, float]]:
    """Like `sample_layout`, but every shape after the first is placed against a random
    earlier one: its box exactly `gap` from that box's side (gap <= 0: touching or
    overlapping boxes), and at least `gap` from all the others. For validating the
    judge on shapes that touch; training data keeps `sample_layout`.
    """

    def against_another(boxes: list[tuple[float, float, float]], side: float, lo: float, hi: float
                        ) -> tuple[float, float] | np.ndarray:
        if not boxes:
            return rng.uniform(lo, hi, size=2)
        bx, by, bs = boxes[rng.integers(len(boxes))]
        reach = (side + bs) / 2 + gap  # centre distance along the axis they touch on
        slide = 0.8 * rng.uniform(-(side + bs) / 2, (side + bs) / 2)  # and along the other
        sign = rng.choice((-1.0, 1.0))
        return (bx + sign * reach, by + slide) if rng.integers(2) == 0 else (bx + slide, by + sign * reach)

    return _place(count, rng, gap, against_another, max_tries, tol=1e-9)


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------

# Draw at 4x and downsample with a box filter: anti-aliased edges at every size.
SUPERSAMPLE = 4


def render(scene: Scene, layout: list[tuple[float, float, float]], size: int = 24) -> Image.Image:
    """Draw `layout` (from `sample_layout`) as an RGB image of `size` x `size` pixels."""
    big = size * SUPERSAMPLE
    img = Image.new("RGB", (big, big), BACKGROUND)
    draw = ImageDraw.Draw(img)
    fill = COLOURS[scene.colour]
    for cx, cy, side in layout:
        x0, y0 = (cx - side / 2) * big, (cy - side / 2) * big
        x1, y1 = (cx + side / 2) * big, (cy + side / 2) * big
        if scene.kind == "circle":
            draw.ellipse((x0, y0, x1, y1), fill=fill)
        elif scene.kind == "square":
            # Squares drawn a little smaller than their box, so that their area is
            # close to the circle's and size does not give the kind away.
            inset = side * big * (1 - math.sqrt(math.pi / 4)) / 2
            draw.rectangle((x0 + inset, y0 + inset, x1 - inset, y1 - inset), fill=fill)
        else:
            draw.polygon(((cx * big, y0), (x1, y1), (x0, y1)), fill=fill)
    return img.resize((size, size), Image.Resampling.BOX)


def item_rng(seed: int, index: int) -> np.random.Generator:
    """The generator for item `index` of the dataset seeded `seed`."""
    return np.random.default_rng([seed, index])


def sample_scene(rng: np.random.Generator) -> Scene:
    """A uniformly random scene: kind, colour and count independent and uniform."""
    return Scene(
        KINDS[rng.integers(len(KINDS))],
        tuple(COLOURS)[rng.integers(len(COLOURS))],
        int(rng.integers(MIN_SCENE_COUNT, MAX_SCENE_COUNT + 1)),
    )


def make_item(seed: int, index: int, size: int = 24, scene: Scene | None = None) -> tuple[Image.Image, Scene]:
    """Item `index` of the dataset seeded `seed`: (image, scene). Pass `scene` to fix
    what is drawn and keep only the layout random (gold items with a chosen count)."""
    rng = item_rng(seed, index)
    drawn = sample_scene(rng)
    scene = scene or drawn
    return render(scene, sample_layout(scene.count, rng), size), scene


class SyntheticCounting:
    """`n` rendered items, held in memory as uint8 arrays.

    images: (n, size, size, 3) uint8; scenes: list of Scene; captions: list of str.
    """

    def __init__(self, n: int, size: int = 24, seed: int = 0):
        self.n, self.size, self.seed = n, size, seed
        self.images = np.empty((n, size, size, 3), dtype=np.uint8)
        self.scenes: list[Scene] = []
        for i in range(n):
            img, scene = make_item(seed, i, size)
            self.images[i] = np.asarray(img)
            self.scenes.append(scene)

    def __len__(self) -> int:
        return self.n

    @property
    def captions(self) -> list[str]:
        return [s.caption for s in self.scenes]
