"""Panoptic fusion on hand-built inputs, and the letterbox round trip (issue #6)."""
from __future__ import annotations

import numpy as np
import pytest

from metric_semantic_slam.core.labels import load_label_space
from metric_semantic_slam.core.panoptic import validate_result
from metric_semantic_slam.core.panoptic.fusion import FusionConfig, fuse_panoptic
from metric_semantic_slam.core.panoptic.letterbox import Letterbox, letterbox


@pytest.fixture(scope="module")
def space():
    return load_label_space()


def _square(hw, y0, y1, x0, x1, value=1.0):
    m = np.zeros(hw, np.float32)
    m[y0:y1, x0:x1] = value
    return m


def test_overlap_resolved_by_score_and_hidden_instance_dropped(space):
    hw = (60, 60)
    floor, chair, box, cup = (space.id_of(n) for n in ("floor", "chair", "box", "cup"))
    sem = np.full(hw, floor, np.uint16)
    masks = np.stack([
        _square(hw, 10, 30, 10, 30, 0.9),   # chair, best score
        _square(hw, 20, 40, 20, 40, 0.8),   # box overlapping the chair's corner: keeps 3/4 of itself
        _square(hw, 12, 28, 12, 27, 0.9),   # cup almost entirely inside the chair: mostly hidden -> dropped
    ])
    res = fuse_panoptic(sem, space, masks, np.array([chair, box, cup]), np.array([0.9, 0.8, 0.95 * 0.9]),
                        config=FusionConfig(min_stuff_area_px=0, min_instance_area_px=4))
    validate_result(res, hw)
    # the cup scored 0.855 < 0.9 of the chair, so the chair is pasted first and hides the cup
    assert sorted(res.instance_classes.values()) == [chair, box]
    chair_id = res.instance[15, 15]
    assert res.instance_classes[chair_id] == chair and res.instance_scores[chair_id] == pytest.approx(0.9)
    assert res.instance[25, 25] == chair_id                      # overlap -> higher score
    assert res.semantic[35, 35] == box and res.instance[35, 35] not in (0, chair_id)
    assert res.semantic[50, 50] == floor and res.instance[50, 50] == 0
    ids = [i for i in np.unique(res.instance) if i]
    assert len(ids) == len(set(ids)) == 2


def test_score_threshold_stuff_class_instance_and_boxes(space):
    hw = (40, 40)
    wall, chair, floor = space.id_of("wall"), space.id_of("chair"), space.id_of("floor")
    sem = np.full(hw, wall, np.uint16)
    masks = np.stack([_square(hw, 0, 20, 0, 20), _square(hw, 20, 40, 20, 40), _square(hw, 0, 40, 0, 40)])
    boxes = np.array([[0, 0, 20, 20], [20, 20, 40, 40], [0, 0, 10, 10]], float)
    res = fuse_panoptic(sem, space, masks, np.array([chair, chair, floor]), np.array([0.3, 0.9, 0.99]), boxes,
                        config=FusionConfig(score_threshold=0.5, min_stuff_area_px=0))
    # 0.3 < threshold: dropped; "floor" is stuff: an instance head cannot claim it
    assert list(res.instance_classes.values()) == [chair]
    assert res.semantic[5, 5] == wall and res.instance[5, 5] == 0
    assert res.semantic[30, 30] == chair


def test_thing_pixels_without_instance_fall_back_to_semantic(space):
    hw = (30, 30)
    chair, box = space.id_of("chair"), space.id_of("box")
    sem = np.full(hw, chair, np.uint16)          # the semantic head says chair everywhere
    masks = _square(hw, 0, 10, 0, 10)[None]
    res = fuse_panoptic(sem, space, masks, np.array([box]), np.array([0.9]), config=FusionConfig(min_stuff_area_px=0))
    assert res.semantic[5, 5] == box and res.instance[5, 5] == 1
    assert res.semantic[20, 20] == chair and res.instance[20, 20] == 0   # class kept, no instance


def test_tiny_fragments_removed(space):
    hw = (50, 50)
    floor, wall, chair = space.id_of("floor"), space.id_of("wall"), space.id_of("chair")
    sem = np.full(hw, floor, np.uint16)
    sem[0:3, 0:3] = wall                          # 9-pixel wall fragment -> unknown
    sem[20:40, 20:40] = wall                      # a real wall region stays
    m = _square(hw, 5, 15, 30, 45)
    m[45:47, 0:2] = 1.0                           # a 4-pixel stray piece of the chair's mask
    tiny = _square(hw, 46, 49, 46, 49)            # a 9-pixel instance -> dropped
    res = fuse_panoptic(sem, space, np.stack([m, tiny]), np.array([chair, chair]), np.array([0.9, 0.9]),
                        config=FusionConfig(min_instance_area_px=16, min_stuff_area_px=20))
    assert (res.semantic[0:3, 0:3] == 0).all()
    assert (res.semantic[20:40, 20:40] == wall).all()
    assert len(res.instance_classes) == 1
    assert res.instance[45, 0] == 0 and res.semantic[45, 0] == floor   # stray piece cut off the instance
    assert res.instance[47, 47] == 0


def test_probabilities_passed_through_and_bad_inputs(space):
    hw = (8, 8)
    probs = np.random.default_rng(0).random((space.max_id + 1,) + hw).astype(np.float32)
    sem = probs.argmax(0).astype(np.uint16)
    res = fuse_panoptic(sem, space, probabilities=probs, config=FusionConfig(min_stuff_area_px=0))
    assert res.probabilities is not None and np.array_equal(res.probabilities, probs)
    with pytest.raises(ValueError, match="semantic"):
        fuse_panoptic(np.zeros((0, 0), np.uint16), space)
    with pytest.raises(ValueError, match="semantic"):
        fuse_panoptic(np.zeros(hw, np.float32), space)
    with pytest.raises(ValueError, match="masks"):
        fuse_panoptic(np.zeros(hw, np.uint16), space, np.zeros((1, 4, 4)), np.array([6]), np.array([1.0]))
    with pytest.raises(ValueError, match="disagree"):
        fuse_panoptic(np.zeros(hw, np.uint16), space, np.zeros((2,) + hw), np.array([6]), np.array([1.0]))
    with pytest.raises(ValueError, match="probabilities"):
        fuse_panoptic(np.zeros(hw, np.uint16), space, probabilities=np.zeros((3, 4, 4)))


@pytest.mark.parametrize("src,net", [((480, 640), (240, 320)), ((480, 640), (320, 320)), ((100, 50), (64, 64)),
                                     ((240, 320), (240, 320))])
def test_letterbox_round_trip(src, net):
    rng = np.random.default_rng(0)
    b = 25 if src[0] <= 100 else 10  # label blocks several network pixels wide
    labels = np.kron(rng.integers(0, 9, (src[0] // b, src[1] // b)), np.ones((b, b))).astype(np.uint16)
    img = np.repeat(labels[..., None], 3, axis=2).astype(np.uint8)
    boxed, lb = letterbox(img, net, nearest=True)
    assert boxed.shape == net + (3,)
    assert lb.invert(boxed[..., 0], nearest=True).shape == src
    back = lb.invert(boxed[..., 0], nearest=True)
    # nearest there and back: all but the pixels next to block borders are exact
    assert np.mean(back == labels) > 0.9
    assert (boxed[~lb.valid_mask()] == 0).all()
    chw = np.stack([boxed[..., 0].astype(np.float32)] * 2)
    assert lb.invert(chw, channels_first=True).shape == (2,) + src
    if src == net:
        assert lb.is_identity and np.array_equal(back, labels)
    with pytest.raises(ValueError):
        Letterbox.fit((0, 10), net)
    with pytest.raises(ValueError):
        lb.invert(np.zeros((3, 3)))
