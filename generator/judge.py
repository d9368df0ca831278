"""A shape-aware automatic judge for the synthetic counting images.

    python -m generator.judge --validate --n 1000 --size 24    # agreement with the renderer

Beside the count, it tells each object's shape (circle, square, triangle) and colour,
and whether the image as a whole matches its prompt: the right number of objects, every
one of them the prompted shape and colour.

How it reads an image (H x W RGB, any size; thresholds are relative to the size):
1. Per pixel, the palette colour (the direction of background - pixel, generator.pixels)
   and its coverage: how far the pixel is from white along that
   colour, 0 (background) .. 1 (solid colour). A half-covered edge pixel reads ~0.5.
2. The coverage map is upsampled 4x (bilinear) and thresholded at 0.5, which puts the
   outline where the rendered edge was to within a fraction of a pixel, so that shapes
   of 6 pixels still have measurable corners.
3. Connected foreground regions are split where they are pinched: one marker per
   plateau of the distance transform's local maxima, then a watershed flood.
   Touching and slightly overlapping shapes come apart this way; shapes overlapping by
   more than about a third of their side merge, as they would for a person.
4. Each part is an object if its area is at least a fraction of the smallest nominal
   shape (specks from a sampler's noise are dropped). Its colour is the coverage-
   weighted majority of its pixels' colours. Its shape: for a region that was not split,
   from its outline (a triangle, apex up, has a quarter of its area in the top half of
   its box, a circle or square half; a square is wider along the diagonals than along
   the axes, a circle is not); for a part of a split region, whose outline the split
   cut, the ideal circle, square or triangle fitted to its inscribed circle that best
   fills it. A part with the area of several shapes and no pinch (squares side by
   side) counts as area / one shape's area.

The thresholds come from the renderer's geometry and from rendered shapes (sharp and
blurred), never from generated images: the judge is validated on rendered scenes
(separated, touching and overlapping; `validate`) and then applied unchanged to samples.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from generator.pixels import COLOUR_NAMES, EIGHT_CONNECTED, as_rgb, coverage, min_area, smallest_side
from generator.synthetic import (
    GAP,
    SHAPE_SIZE,
    Scene,
    contact_layout,
    item_rng,
    render,
    sample_layout,
    sample_scene,
)

# ---------------------------------------------------------------------------
# Constants (all relative to the renderer's geometry)
# ---------------------------------------------------------------------------

UPSAMPLE = 4
# The largest side the judge reads at: its thresholds were measured, and it is validated,
# on 24 and 32 px renders (the demo models' sizes). A larger image is first reduced to this
# side by area averaging, which is how the renderer itself anti-aliases (generator.synthetic:
# drawn at 4x, box-filtered down), so a big render reads as the same scene drawn at 32 px.
# The cost of _split grows with the side to about the fourth power (a footprint and a flood
# depth proportional to it, on a 4x upsampled map): 22 s at 256 px, out of memory at 512.
JUDGE_SIDE = 32
# Coverage at which a pixel is inside a shape: the rendered edge is where coverage is 1/2.
INSIDE = 0.5
# A triangle (apex up) has a quarter of its area in the top half of its box, a circle
# or a square half: the midpoint tells them apart even when blur rounds the corners.
_TRIANGLE_TOP_BELOW = (0.25 + 0.5) / 2
# Width along the diagonals over width along the axes: 1 for a circle, sqrt(2) for an
# ideal axis-aligned square. Measured on rendered shapes at 24 and 32 px, sharp and
# blurred (Gaussian sigma 0.6 px), 2nd-98th percentiles: circles 0.94-1.04, squares
# 1.15-1.33 (pixels round the corners off); the boundary is between the two.
_SQUARE_DIAGONAL_ABOVE = 1.09
# A part is several merged shapes when its area is above this multiple of a circle's
# (or square's: they are drawn to the same area) at the mean size: midway between the
# largest single shape, (0.26 / 0.24)^2 = 1.17, and two of the smallest, 2 (0.22 / 0.24)^2 = 1.68.
_MERGED_ABOVE = 1.43
# Inradius of the renderer's triangle (base = height = side) as a fraction of its side:
# area / semi-perimeter = (1/2) / ((1 + sqrt(5)) / 2).
_TRIANGLE_INRADIUS = 1 / (1 + math.sqrt(5))
# Two maxima of the distance transform closer than this fraction of the smallest shape's
# side belong to one shape (a square's or a triangle's maxima lie on a short ridge).
_PEAK_SEPARATION = 0.5


@dataclass(frozen=True)
class DetectedObject:
    """One object the judge found: its shape, colour, and area in original pixels."""

    kind: str
    colour: str
    area: float


@dataclass(frozen=True)
class Judgement:
    """What the judge read in one image."""

    objects: tuple[DetectedObject, ...]

    @property
    def count(self) -> int:
        return len(self.objects)

    def shape_correct(self, kind: str) -> int:
        """How many objects are drawn as `kind`."""
        return sum(o.kind == kind for o in self.objects)

    def matches(self, scene: Scene) -> bool:
        """Right count, and every object the prompted shape and colour."""
        return self.count == scene.count and all(
            o.kind == scene.kind and o.colour == scene.colour for o in self.objects
        )


# ---------------------------------------------------------------------------
# Reading an image
# ---------------------------------------------------------------------------


def _split(mask: np.ndarray, min_side: float) -> tuple[np.ndarray, np.ndarray]:
    """(labels, distance to the background) of `mask`, touching shapes split apart."""
    dist = ndimage.distance_transform_edt(mask)
    radius = max(1, int(_PEAK_SEPARATION * min_side / 2))
    footprint = np.ones((2 * radius + 1,) * 2, dtype=bool)
    # A marker is a plateau of local maxima that is deep enough to be a shape's centre
    # (a quarter of the smallest inradius) rather than a bump on a rim.
    peaks = (dist == ndimage.maximum_filter(dist, footprint=footprint)) & (dist >= min_side / 8)
    markers, n = ndimage.label(peaks, structure=EIGHT_CONNECTED)
    if n == 0:
        return ndimage.label(mask, structure=EIGHT_CONNECTED)[0], dist
    # Plateaus that are close together are one shape: merge markers whose dilations meet.
    markers, _ = ndimage.label(ndimage.binary_dilation(markers > 0, footprint), structure=EIGHT_CONNECTED)
    markers = np.where(peaks, markers, 0)
    # Watershed by flooding: lower the level one pixel of depth at a time; at each
    # level the labelled regions grow into the unlabelled mask pixels at least that
    # deep, so two shapes meet at the pinch between them. (A hand-written flood, since
    # scipy's watershed_ift labels most of a pinched region from one marker.)
    labels = markers
    for level in np.arange(np.floor(dist.max()), -1, -1.0):
        allowed = mask & (dist >= level)
        while True:
            grown = np.where(allowed & (labels == 0), ndimage.maximum_filter(labels, size=3), labels)
            if np.array_equal(grown, labels):
                break
            labels = grown
    return labels, dist


def _kind_of_whole(part: np.ndarray) -> str:
    """The kind of a whole (unsplit) shape, from its outline. A triangle (apex up) has a
    quarter of its area in the top half of its box, a circle or square half. A circle is
    as wide along the diagonals as along the axes, an axis-aligned square wider (see
    _SQUARE_DIAGONAL_ABOVE)."""
    ys, xs = np.nonzero(part)
    h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
    row = ys - ys.min()
    top = float((row < (h - 1) / 2).sum() + 0.5 * (row == (h - 1) / 2).sum()) / len(ys)
    if top < _TRIANGLE_TOP_BELOW:
        return "triangle"
    diagonal = ((xs + ys).max() - (xs + ys).min() + (xs - ys).max() - (xs - ys).min() + 2) / (2 * math.sqrt(2))
    return "square" if diagonal / ((h + w) / 2) > _SQUARE_DIAGONAL_ABOVE else "circle"


def _templates(shape: tuple[int, int], cy: float, cx: float, r: float) -> dict[str, np.ndarray]:
    """The ideal circle, square and triangle whose inscribed circle is centred at
    (cy, cx) with radius r, as masks of `shape`."""
    y, x = np.mgrid[: shape[0], : shape[1]].astype(np.float32) + 0.5
    side = r / _TRIANGLE_INRADIUS
    apex = cy + r - side  # the base is tangent to the incircle, r below its centre
    return {
        "circle": (y - cy) ** 2 + (x - cx) ** 2 <= r**2,
        "square": np.maximum(abs(y - cy), abs(x - cx)) <= r,
        "triangle": (y <= cy + r) & (y >= apex) & (abs(x - cx) <= (y - apex) / 2),
    }


def _classify(component: np.ndarray, part: np.ndarray, dist: np.ndarray) -> str:
    """The kind whose ideal outline, fitted to the part's inscribed circle, best fills
    the part while staying inside the foreground (`component`). Whole-image arrays, so
    that a template reaching past the part's box is not cut off."""
    r = float(dist[part].max())
    cy, cx = (float(v) + 0.5 for v in np.argwhere(part & (dist == r)).mean(axis=0))
    best, best_score = "circle", -1.0
    for kind, t in _templates(part.shape, cy, cx, r).items():
        inside = (t & component).sum() / max(t.sum(), 1)
        covered = (t & part).sum() / max(part.sum(), 1)
        if inside * covered > best_score:
            best, best_score = kind, inside * covered
    return best


def _reduced(arr: np.ndarray) -> tuple[np.ndarray, float]:
    """(``arr`` with its shorter side at most JUDGE_SIDE, area-averaged; the factor by which an
    area in the result is multiplied to give original pixels). Unchanged when already that small."""
    h, w = arr.shape[:2]
    if min(h, w) <= JUDGE_SIDE:
        return arr, 1.0
    scale = JUDGE_SIDE / min(h, w)
    out_w, out_h = max(1, round(w * scale)), max(1, round(h * scale))
    # Pillow's BOX filter averages each output pixel's footprint, fractional edges weighted.
    channels = [np.asarray(Image.fromarray(np.ascontiguousarray(arr[..., c]))
                           .resize((out_w, out_h), Image.Resampling.BOX)) for c in range(3)]
    return np.stack(channels, axis=-1), (h * w) / (out_h * out_w)


def judge(image: Image.Image | np.ndarray) -> Judgement:
    """Every object in an RGB image (H, W, 3): its shape, colour and area (in the image's own
    pixels). An image whose shorter side is above JUDGE_SIDE is read from a copy reduced to it."""
    arr, area_scale = _reduced(as_rgb(image))
    size = min(arr.shape[:2])
    cover, colour = coverage(arr)
    big_cover = ndimage.zoom(cover, UPSAMPLE, order=1, mode="nearest")  # (4H, 4W)
    big_colour = np.repeat(np.repeat(colour, UPSAMPLE, axis=0), UPSAMPLE, axis=1)
    mask = big_cover > INSIDE
    min_side = smallest_side(size) * UPSAMPLE
    labels, dist = _split(mask, min_side)
    # How many parts each connected region was split into: a whole shape is classified
    # by its outline, a part of a split region by fitting templates (its outline is cut).
    components, _ = ndimage.label(mask, structure=EIGHT_CONNECTED)
    fg = labels > 0
    pairs = np.unique(np.stack([components[fg], labels[fg]]), axis=1)  # (2, parts): (region, part)
    n_parts = np.bincount(pairs[0], minlength=components.max() + 1)
    min_px = min_area(min_side)
    nominal = math.pi / 4 * (np.mean(SHAPE_SIZE) * size * UPSAMPLE) ** 2  # a circle's or square's area
    objects = []
    for i, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        part = labels[sl] == i
        area = float(part.sum())
        if area < min_px:
            continue
        whole = n_parts[components[sl][part][0]] == 1
        kind = _kind_of_whole(part) if whole else _classify(mask, labels == i, dist)
        votes = np.bincount(big_colour[sl][part], weights=big_cover[sl][part], minlength=len(COLOUR_NAMES))
        # A part much larger than one circle or square, with no pinch to split it at, is
        # shapes merged along an edge (squares side by side): count it as its area over
        # one shape's. (Triangles, half their box, never reach this; they have pinches.)
        merged = max(1, round(area / nominal)) if area >= _MERGED_ABOVE * nominal else 1
        obj = DetectedObject(kind, COLOUR_NAMES[int(np.argmax(votes))], area / UPSAMPLE**2 / merged * area_scale)
        objects.extend([obj] * merged)
    return Judgement(tuple(objects))


# ---------------------------------------------------------------------------
# Validation on rendered scenes
# ---------------------------------------------------------------------------

# Layouts the judge is validated on: gap between the shapes' bounding boxes, in units of
# the image side. "touching": boxes overlap by 0.02 (half a pixel at 24x24), where the
# squares' insets meet and circles and triangles touch or merge; "overlapping": by 0.06,
# about a quarter of a shape's side.
LAYOUTS = {"separated": GAP, "touching": -0.02, "overlapping": -0.06}


def validation_scene(index: int, layout: str, size: int, seed: int = 7) -> tuple[Image.Image, Scene]:
    """Rendered scene `index` of a validation set: uniform scene, the layout's gap; in the
    touching and overlapping sets every shape after the first is placed against another."""
    rng = item_rng(seed, index)
    scene = sample_scene(rng)
    gap = LAYOUTS[layout]
    boxes = sample_layout(scene.count, rng) if layout == "separated" else contact_layout(scene.count, rng, gap)
    return render(scene, boxes, size), scene


def validate(n: int, size: int, layouts: tuple[str, ...] = tuple(LAYOUTS), seed: int = 7) -> dict:
    """Agreement of the judge with the renderer on `n` scenes per layout."""
    out = {}
    for layout in layouts:
        count = kind = colour = match = objects = 0
        for i in range(n):
            img, scene = validation_scene(i, layout, size, seed)
            j = judge(img)
            count += j.count == scene.count
            kind += j.shape_correct(scene.kind)
            colour += sum(o.colour == scene.colour for o in j.objects)
            objects += j.count
            match += j.matches(scene)
        out[layout] = {
            "n": n, "count_agreement": count / n, "shape_agreement": kind / max(objects, 1),
            "colour_agreement": colour / max(objects, 1), "prompt_match": match / n,
        }
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--validate", action="store_true", help="agreement with the renderer on rendered scenes")
    p.add_argument("--n", type=int, default=1000, help="scenes per layout")
    p.add_argument("--size", type=int, default=24)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("images", nargs="*", help="image files to judge")
    args = p.parse_args(argv)
    if args.validate:
        print(json.dumps({"size": args.size, **validate(args.n, args.size, seed=args.seed)}, indent=2))
    for path in args.images:
        j = judge(Image.open(path))
        print(path, j.count, [(o.kind, o.colour) for o in j.objects])


if __name__ == "__main__":
    main()
