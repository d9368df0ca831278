"""Pixels of the synthetic counting images: which palette colour, how much of it, and
how big an object must be. Shared by generator.counter and generator.judge, which
differ in how they turn pixels into objects.

Colours are told apart by the direction of (background - pixel), not by the nearest
RGB value: an edge pixel that is half red, half white points the same way as pure red,
whereas its nearest RGB neighbour may be yellow. The length along that direction,
relative to the solid colour's, is the pixel's coverage: 0 on the background, 1 inside
a shape, ~0.5 on a half-covered edge.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from generator.synthetic import BACKGROUND, COLOURS, SHAPE_SIZE

COLOUR_NAMES = tuple(COLOURS)  # the palette, in the order colour indices refer to
_BG = np.array(BACKGROUND, dtype=np.float32)
_ABSORB = _BG - np.array(list(COLOURS.values()), dtype=np.float32)  # (K, 3)
_ABSORB_LEN = np.linalg.norm(_ABSORB, axis=-1)  # (K,)
_ABSORB_DIR = _ABSORB / _ABSORB_LEN[:, None]  # (K, 3), unit length

# An object's area must be at least this fraction of the smallest nominal shape (a
# triangle of the smallest side, half its box). Generated shapes shrink or fragment;
# fragments of that size are rarer than whole shapes drawn small, so the bar stays low.
MIN_AREA_FRACTION = 0.3
# 8-connectivity: a generated shape's thin diagonal bridge should not split it in two.
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def as_rgb(image: Image.Image | np.ndarray) -> np.ndarray:
    """An RGB image (H, W, 3) as float32 on the 0..255 scale; anything else is refused."""
    arr = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an RGB image (H, W, 3), got shape {arr.shape}")
    return arr.astype(np.float32)


def absorption(arr: np.ndarray) -> np.ndarray:
    """(H, W, 3) background - pixel of an (H, W, 3) float image: how far, and towards
    which colour, each pixel is from the background."""
    return _BG - arr


def colour_index(absorb: np.ndarray) -> np.ndarray:
    """(H, W) index into COLOUR_NAMES of each pixel's colour: the palette direction with
    the best cosine to its absorption (any length, so rims read as their shape's colour)."""
    return np.argmax(absorb @ _ABSORB_DIR.T, axis=-1)


def coverage(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(coverage (H, W) in [0, 1], colour index (H, W)) of an (H, W, 3) float image."""
    absorb = absorption(arr)
    colour = colour_index(absorb)
    along = np.einsum("hwc,hwc->hw", absorb, _ABSORB_DIR[colour])  # length along the chosen colour
    return np.clip(along / _ABSORB_LEN[colour], 0.0, 1.0), colour


def smallest_side(size: float) -> float:
    """Side in pixels of the smallest shape the renderer draws in a `size`-pixel image."""
    return SHAPE_SIZE[0] * size


def min_area(side: float) -> float:
    """Smallest area in pixels that counts as an object when the smallest shape's side is
    `side` pixels: MIN_AREA_FRACTION of a triangle of that side (half its box)."""
    return MIN_AREA_FRACTION * (0.5 * side**2)
