import numpy as np
import pytest

from generator.counter import count_by_colour, count_objects
from generator.synthetic import (
    GAP,
    Scene,
    SyntheticCounting,
    all_scenes,
    item_rng,
    make_item,
    sample_layout,
)
from tests.generator.conftest import grainy_items


def test_captions_follow_the_study_grammar():
    assert Scene("circle", "red", 3).caption == "three red circles"
    assert Scene("square", "blue", 1).caption == "a blue square"
    captions = [scene.caption for scene in all_scenes()]
    assert len(set(captions)) == len(captions)  # one caption names one scene


def test_items_are_a_function_of_seed_and_index():
    a, scene_a = make_item(3, 17)
    b, scene_b = make_item(3, 17)
    assert scene_a == scene_b and np.array_equal(np.asarray(a), np.asarray(b))
    c, _ = make_item(4, 17)
    assert not np.array_equal(np.asarray(a), np.asarray(c))


def test_same_layout_renders_at_any_size():
    small, scene = make_item(5, 2, size=24)
    large, scene_large = make_item(5, 2, size=128)
    assert scene == scene_large and small.size == (24, 24) and large.size == (128, 128)
    assert count_objects(large) == count_objects(small) == scene.count


def test_layouts_keep_a_gap_between_shapes():
    for i in range(150):
        boxes = sample_layout(5, item_rng(0, i))
        for j, (x1, y1, s1) in enumerate(boxes):
            assert 0 <= x1 - s1 / 2 and x1 + s1 / 2 <= 1
            for x2, y2, s2 in boxes[j + 1 :]:
                assert max(abs(x1 - x2), abs(y1 - y2)) >= (s1 + s2) / 2 + GAP - 1e-9


@pytest.mark.parametrize("size", [24, 32])
def test_counter_agrees_with_the_renderer_on_1000_images(size):
    data = SyntheticCounting(1000, size=size, seed=11)
    wrong = []
    for img, scene in zip(data.images, data.scenes, strict=True):
        counts = count_by_colour(img)
        if counts != {c: (scene.count if c == scene.colour else 0) for c in counts}:
            wrong.append((scene, counts))
    assert wrong == []
    assert {s.count for s in data.scenes} == {1, 2, 3, 4, 5}


@pytest.mark.parametrize("size", [24, 32])
def test_counter_survives_noise_and_blur(size):
    # Generated 24x24 images are soft and grainy; the counter should not care.
    hits = sum(count_objects(img, scene.colour) == scene.count for img, scene in grainy_items(size))
    assert hits / 200 >= 0.95


def test_counter_rejects_non_rgb_input():
    with pytest.raises(ValueError):
        count_objects(np.zeros((32, 32)))
