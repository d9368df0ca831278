"""Automatic object counter for the synthetic counting images.

Classify each pixel as background or a palette colour (generator.pixels), then count
connected components per colour (scipy.ndimage.label), dropping specks smaller than a fraction of
a nominal shape. Written for rendered images and for the blurry, noisy 32x32 images that
small diffusion models produce: the thresholds are relative to the image size.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

from generator.pixels import COLOUR_NAMES, EIGHT_CONNECTED, absorption, as_rgb, colour_index, min_area, smallest_side

# A pixel is foreground when it is this far (RGB Euclidean, 0..255 scale) from the
# background. Yellow is the closest colour to white (~240 away); half of that keeps
# anti-aliased rims out and generated pastel-ish shapes in.
FOREGROUND_DISTANCE = 110.0


def count_by_colour(image: Image.Image | np.ndarray) -> dict[str, int]:
    """Number of objects of each palette colour in an RGB image (H, W, 3).

    Objects are the connected components of the foreground (any colour) that are big
    enough; each takes the colour most of its pixels have. Labelling the foreground as a
    whole, rather than each colour's mask, keeps a generated shape whose rim bleeds
    into a neighbouring hue from counting as two.
    """
    arr = as_rgb(image)
    absorb = absorption(arr)  # (H, W, 3)
    foreground = np.linalg.norm(absorb, axis=-1) > FOREGROUND_DISTANCE  # (H, W)
    nearest = colour_index(absorb)  # (H, W)
    labels, n = ndimage.label(foreground, structure=EIGHT_CONNECTED)
    counts = dict.fromkeys(COLOUR_NAMES, 0)
    if n == 0:
        return counts
    # votes[i, k]: pixels of component i + 1 whose colour is k.
    votes = np.zeros((n, len(COLOUR_NAMES)), dtype=np.int64)
    np.add.at(votes, (labels[foreground] - 1, nearest[foreground]), 1)
    keep = votes.sum(axis=1) >= min_area(smallest_side(min(arr.shape[:2])))
    for k in np.argmax(votes[keep], axis=1):
        counts[COLOUR_NAMES[k]] += 1
    return counts


def count_objects(image: Image.Image | np.ndarray, colour: str | None = None) -> int:
    """Objects in the image: of `colour` if given, else of all colours together."""
    counts = count_by_colour(image)
    if colour is None:
        return sum(counts.values())
    if colour not in counts:
        raise ValueError(f"unknown colour {colour!r}; expected one of {COLOUR_NAMES}")
    return counts[colour]
