import numpy as np
import pytest
from PIL import Image

from generator.judge import judge, validate, validation_scene
from generator.synthetic import COLOURS, KINDS, Scene, contact_layout, item_rng, make_item, render
from tests.generator.conftest import grainy_items


@pytest.mark.parametrize("size", [24, 32])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("colour", tuple(COLOURS))
def test_each_shape_in_each_colour_is_named(kind, colour, size):
    for index in range(5):
        img, scene = make_item(3, index, size, Scene(kind, colour, 1 + index % 5))
        j = judge(img)
        assert j.count == scene.count
        assert {(o.kind, o.colour) for o in j.objects} == {(kind, colour)}
        assert j.matches(scene)


def test_a_wrong_shape_colour_or_count_is_not_a_match():
    img, scene = make_item(0, 1, 32, Scene("square", "blue", 3))
    j = judge(img)
    assert j.matches(scene)
    assert not j.matches(Scene("circle", "blue", 3))
    assert not j.matches(Scene("square", "red", 3))
    assert not j.matches(Scene("square", "blue", 2))
    assert j.shape_correct("square") == 3 and j.shape_correct("triangle") == 0


def test_an_empty_image_has_no_objects():
    j = judge(Image.new("RGB", (24, 24), "white"))
    assert j.count == 0 and not j.matches(Scene("circle", "red", 1))


@pytest.mark.parametrize("kind", KINDS)
def test_two_touching_shapes_are_two(kind):
    # Side by side, boxes overlapping by 0.02 of the image: the circles touch, the
    # triangles' base corners merge, the squares share an edge.
    boxes = [(0.35, 0.5, 0.24), (0.35 + 0.24 - 0.02, 0.5, 0.24)]
    for size in (24, 32):
        j = judge(render(Scene(kind, "green", 2), boxes, size))
        assert j.count == 2, (kind, size, j)
        assert [o.kind for o in j.objects] == [kind, kind]


@pytest.mark.parametrize("kind", ["circle", "triangle"])
def test_two_overlapping_shapes_are_two(kind):
    # Overlapping by a quarter of their side: one connected blob with a pinch.
    boxes = [(0.35, 0.5, 0.24), (0.35 + 0.24 - 0.06, 0.5, 0.24)]
    j = judge(render(Scene(kind, "red", 2), boxes, 32))
    assert j.count == 2 and j.shape_correct(kind) == 2


def test_overlapping_squares_in_a_row_are_counted_by_area():
    # Squares overlapping along an edge make a rectangle with no pinch to split at.
    boxes = [(0.25 + 0.2 * i, 0.5, 0.24) for i in range(3)]
    j = judge(render(Scene("square", "yellow", 3), boxes, 32))
    assert j.count == 3 and j.shape_correct("square") == 3


def test_contact_layouts_touch():
    for i in range(50):
        boxes = contact_layout(4, item_rng(1, i), gap=-0.02)
        for j, (x, y, s) in enumerate(boxes[1:], start=1):
            # every later box is against some earlier one, none overlaps more than the gap
            reach = [max(abs(x - bx), abs(y - by)) - (s + bs) / 2 for bx, by, bs in boxes[:j]]
            assert min(reach) == pytest.approx(-0.02, abs=1e-9)


@pytest.mark.parametrize("size", [24, 32])
def test_agrees_with_the_renderer_on_separated_scenes(size):
    v = validate(300, size, ("separated",))["separated"]
    assert v["count_agreement"] == 1.0 and v["prompt_match"] == 1.0


def test_agrees_with_the_renderer_on_touching_and_overlapping_scenes():
    # The full 1,000-scene validation is `python -m generator.judge --validate`; here
    # a quicker, smaller sample at 32x32 holds the line a little below it.
    v = validate(300, 32, ("touching", "overlapping"))
    assert v["touching"]["count_agreement"] >= 0.95 and v["touching"]["shape_agreement"] >= 0.95
    assert v["overlapping"]["count_agreement"] >= 0.95 and v["overlapping"]["shape_agreement"] >= 0.85
    assert v["touching"]["colour_agreement"] == 1.0


def test_validation_scenes_are_reproducible():
    a, sa = validation_scene(4, "touching", 24)
    b, sb = validation_scene(4, "touching", 24)
    assert sa == sb and np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("size", [24, 32])
def test_survives_the_blur_and_grain_of_generated_images(size):
    matches = sum(judge(img).matches(scene) for img, scene in grainy_items(size))
    assert matches / 200 >= 0.95


def test_rejects_non_rgb_input():
    with pytest.raises(ValueError):
        judge(np.zeros((32, 32)))


def test_an_image_at_or_below_the_judging_side_is_read_as_it_is(monkeypatch):
    # The reduction must not touch the sizes the judge was validated at.
    from generator import judge as judge_module

    for size in (24, judge_module.JUDGE_SIDE):
        img, _ = make_item(5, 2, size)
        before = judge(img)
        monkeypatch.setattr(judge_module, "_reduced", lambda arr: (arr, 1.0))
        assert judge(img) == before
        monkeypatch.undo()


def test_a_large_image_is_judged_quickly_and_like_the_same_scene_drawn_small():
    import time
    import tracemalloc

    rng = item_rng(11, 0)
    scene = Scene("circle", "red", 3)
    boxes = contact_layout(3, rng, 0.1)
    small = judge(render(scene, boxes, 32))
    tracemalloc.start()
    start = time.perf_counter()
    big = judge(render(scene, boxes, 1024))
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert big.count == small.count == 3
    assert [(o.kind, o.colour) for o in big.objects] == [(o.kind, o.colour) for o in small.objects]
    assert seconds < 10 and peak < 200 * 1024**2, (seconds, peak)
    # Areas are in the image's own pixels.
    assert big.objects[0].area > 100 * small.objects[0].area
