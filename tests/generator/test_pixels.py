import numpy as np
import pytest

from generator.pixels import COLOUR_NAMES, as_rgb, coverage, min_area, smallest_side
from generator.synthetic import BACKGROUND, COLOURS


@pytest.mark.parametrize("name", list(COLOURS))
def test_a_half_covered_edge_pixel_reads_as_its_colour_at_half_coverage(name):
    solid, bg = np.array(COLOURS[name], dtype=np.float32), np.array(BACKGROUND, dtype=np.float32)
    arr = np.stack([bg, (solid + bg) / 2, solid])[None]  # (1, 3, 3): background, edge, inside
    cover, colour = coverage(arr)
    assert cover[0] == pytest.approx([0.0, 0.5, 1.0], abs=1e-6)
    assert COLOUR_NAMES[colour[0, 1]] == COLOUR_NAMES[colour[0, 2]] == name


def test_the_smallest_object_is_a_fraction_of_the_smallest_triangle():
    side = smallest_side(32)
    assert min_area(side) == pytest.approx(0.3 * side**2 / 2)
    assert min_area(smallest_side(64)) == pytest.approx(4 * min_area(side))


def test_only_rgb_images_are_read():
    assert as_rgb(np.zeros((4, 5, 3), dtype=np.uint8)).dtype == np.float32
    with pytest.raises(ValueError, match="RGB"):
        as_rgb(np.zeros((4, 5)))
