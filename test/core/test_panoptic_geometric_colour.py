"""The geometric backend's colour stage (issue #6): upright strips of distinct colour side by side are cut out
of one object piece (books in a row, flush, no depth step); textures and flat patterns are not."""
from __future__ import annotations

import numpy as np

from metric_semantic_slam.core.panoptic.geometric import GeometricConfig
from metric_semantic_slam.core.panoptic.geometric_colour import split_colour_strips

FX = 262.5
Z_M = 2.0                                   # everything 2 m away: 1 px = 7.6 mm
RED, GREEN, BLUE, YELLOW = (180, 40, 40), (40, 130, 60), (40, 75, 160), (215, 180, 50)


def _scene(colours: list[tuple[int, int, int]], strip_px: int = 6, rows: int = 30, upright: bool = True):
    """One object piece (id 5) of vertical colour strips, ``strip_px`` wide, ``rows`` tall, left to right, on a
    grey piece around them; its height along up falls 1 px = 7.6 mm per row when ``upright``, else it is
    flat (a pattern lying on a desk). Returns inst, color, z, height and the strips' masks."""
    h, w = 60, 80
    inst = np.zeros((h, w), np.uint16)
    inst[10:10 + rows + 10, 5:75] = 5
    color = np.full((h, w, 3), 128, np.uint8)
    masks = []
    for i, c in enumerate(colours):
        m = np.zeros((h, w), bool)
        m[15:15 + rows, 10 + i * strip_px:10 + (i + 1) * strip_px] = True
        color[m] = c
        masks.append(m)
    z = np.full((h, w), Z_M, np.float32)
    rows_idx = np.arange(h, dtype=np.float32)[:, None]
    height = np.broadcast_to(-rows_idx * Z_M / FX if upright else np.zeros((h, 1), np.float32), (h, w))
    return inst, color, z, np.ascontiguousarray(height, np.float32), masks


def _split(inst, color, z, height, **cfg):
    inst = inst.copy()
    nxt, ids = split_colour_strips(GeometricConfig(**cfg), inst, [5], color, z, height, FX, 6, 12)
    return inst, ids


def test_a_row_of_books_of_different_colours_is_cut_into_one_instance_each():
    inst, color, z, height, masks = _scene([RED, BLUE, GREEN, YELLOW])
    out, ids = _split(inst, color, z, height)
    assert len(ids) == 4
    for m in masks:
        vals, counts = np.unique(out[m], return_counts=True)
        assert vals[np.argmax(counts)] in ids and counts.max() >= 0.9 * m.sum()
    assert len({int(np.bincount(out[m]).argmax()) for m in masks}) == 4
    assert (out[inst == 5] == 5).sum() > 0            # the rest of the piece keeps its id
    _, none = _split(inst, color, z, height, colour_strips=True, strip_max_width_m=0.02)
    assert none == []                                 # 4.6 cm wide strips are wider than 2 cm


def test_printed_white_stripes_do_not_cut_a_book():
    # the middle book has white stripes every 3rd row inside it: it stays one strip
    inst, color, z, height, masks = _scene([RED, BLUE, GREEN])
    stripe = masks[1] & (np.arange(60)[:, None] % 3 == 1)
    color[stripe] = (235, 235, 235)
    out, ids = _split(inst, color, z, height)
    assert len(ids) == 3 and len(np.unique(out[masks[1]])) == 1


def test_two_colours_taking_turns_are_a_striped_pattern_not_objects():
    inst, color, z, height, _ = _scene([RED, BLUE, RED, BLUE, RED])
    out, ids = _split(inst, color, z, height)
    assert ids == [] and (out == inst).all()
    # two or three of them may be objects (two books side by side)
    _, ids3 = _split(*_scene([RED, BLUE, RED])[:4])
    assert len(ids3) == 3


def test_a_flat_coloured_pattern_and_a_one_hue_piece_are_not_cut():
    inst, color, z, height, _ = _scene([RED, BLUE, GREEN, YELLOW], upright=False)
    assert _split(inst, color, z, height)[1] == []    # lies flat: no extent along gravity
    inst, color, z, height, _ = _scene([BLUE, (60, 100, 200), BLUE, (60, 100, 200)])
    assert _split(inst, color, z, height)[1] == []    # shades of one hue


def test_grey_with_a_few_coloured_pixels_makes_no_strips():
    inst, color, z, height, masks = _scene([RED, BLUE, GREEN])
    for m in masks:                                   # 1 in 5 pixels coloured, the rest grey (camera noise)
        grey = m & (np.arange(80)[None, :] % 5 != 0)
        color[grey] = 128
    assert _split(inst, color, z, height)[1] == []
