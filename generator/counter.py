"""Automatic object counter for the synthetic counting images.

Classify each pixel as background or a palette colour, then count connected
components per colour (scipy.ndimage.label), dropping specks smaller than a fraction of
a nominal shape. Written for rendered images and for the blurry, noisy 32x32 images that
small diffusion models produce: the thresholds are relative to the image size.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

from generator.synthetic import BACKGROUND, COLOURS, SHAPE_SIZE

_NAMES = tuple(COLOURS)
_BG = np.array(BACKGROUND, dtype=np.float32)
# Colours are told apart by the direction of (background - pixel), not by the nearest
# RGB value: an edge pixel that is half red, half white points the same way as pure
# red, whereas its nearest RGB neighbour may be yellow.
_ABSORB = _BG - np.array(list(COLOURS.values()), dtype=np.float32)  # (K, 3)
_ABSORB /= np.linalg.norm(_ABSORB, axis=-1, keepdims=True)

# A pixel is foreground when it is this far (RGB Euclidean, 0..255 scale) from the
# background. Yellow is the closest colour to white (~240 away); half of that keeps
# anti-aliased rims out and generated pastel-ish shapes in.
FOREGROUND_DISTANCE = 110.0
# A component counts when its area is at least this fraction of the smallest nominal
# shape (a triangle, half its box). Generated shapes shrink or fragment; fragments of
# that size are rarer than whole shapes drawn small, so the bar stays low.
MIN_AREA_FRACTION = 0.3
# 8-connectivity: a generated shape's thin diagonal bridge should not split it in two.
_STRUCTURE = np.ones((3, 3), dtype=bool)


def _as_array(image: Image.Image | np.ndarray) -> np.ndarray:
    arr = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an RGB image (H, W, 3), got shape {arr.shape}")
    return arr.astype(np.float32)


def min_area(size: int) -> float:
    """Smallest component area in pixels that counts as an object at `size` x `size`."""
    smallest_triangle = 0.5 * (SHAPE_SIZE[0] * size) ** 2
    return MIN_AREA_FRACTION * smallest_triangle


def count_by_colour(image: Image.Image | np.ndarray) -> dict[str, int]:
    """Number of objects of each palette colour in an RGB image (H, W, 3).

    Objects are the connected components of the foreground (any colour) that are big
    enough; each takes the colour most of its pixels have. Labelling the foreground as a
    whole, rather than each colour's mask, keeps a generated shape whose rim bleeds
    into a neighbouring hue from counting as two.
    """
    arr = _as_array(image)
    absorb = _BG - arr  # (H, W, 3)
    foreground = np.linalg.norm(absorb, axis=-1) > FOREGROUND_DISTANCE  # (H, W)
    nearest = np.argmax(absorb @ _ABSORB.T, axis=-1)  # (H, W): best cosine, any length
    labels, n = ndimage.label(foreground, structure=_STRUCTURE)
    counts = dict.fromkeys(_NAMES, 0)
    if n == 0:
        return counts
    # votes[i, k]: pixels of component i + 1 whose colour is k.
    votes = np.zeros((n, len(_NAMES)), dtype=np.int64)
    np.add.at(votes, (labels[foreground] - 1, nearest[foreground]), 1)
    keep = votes.sum(axis=1) >= min_area(min(arr.shape[:2]))
    for k in np.argmax(votes[keep], axis=1):
        counts[_NAMES[k]] += 1
    return counts


def count_objects(image: Image.Image | np.ndarray, colour: str | None = None) -> int:
    """Objects in the image: of `colour` if given, else of all colours together."""
    counts = count_by_colour(image)
    if colour is None:
        return sum(counts.values())
    if colour not in counts:
        raise ValueError(f"unknown colour {colour!r}; expected one of {_NAMES}")
    return counts[colour]
