"""The geometric backend's colour stage (issue #6): upright strips of distinct colour side by side are cut out
of one object piece (books in a row, flush, no depth step), and flat blobs of another colour out of what they lie
on (a book on a table); textures, large sheets, ragged patches and one-hue pieces are not."""
from __future__ import annotations

import numpy as np

from metric_semantic_slam.core.panoptic.geometric import GeometricConfig
from metric_semantic_slam.core.panoptic.geometric_colour import split_colour

FX = 262.5
Z_M = 2.0                                   # everything 2 m away: 1 px = 7.6 mm
RED, GREEN, BLUE, YELLOW = (180, 40, 40), (40, 130, 60), (40, 75, 160), (215, 180, 50)
UP = np.array([0.0, -1.0, 0.0])             # camera frame: y points down


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
    """The strips of instance 5 (flat blobs off), in a camera frame whose up is -y."""
    inst = inst.copy()
    cols = np.broadcast_to(np.arange(inst.shape[1], dtype=np.float32) * Z_M / FX, inst.shape)
    P = np.stack([cols, -height, z], axis=-1).astype(np.float32)
    nxt, ids = split_colour(GeometricConfig(**cfg), inst, {5}, set(), color, P, UP, FX, 6, 12)
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


WOOD, BOOK_BLUE = (160, 110, 60), (40, 75, 160)


def _table(blob: np.ndarray, blob_height_m, width_px: int = 80):
    """A 1 cm-a-pixel table top (instance 5, wood colour) at 0.75 m, rows 20-59 going away from 1.5 m depth, with
    a blue region ``blob`` on it at ``blob_height_m`` (a number or an (h, w) array)."""
    h, w = 60, width_px
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float32)
    inst = np.zeros((h, w), np.uint16)
    inst[20:60] = 5
    color = np.full((h, w, 3), 200, np.uint8)
    color[inst == 5] = WOOD
    color[blob] = BOOK_BLUE
    height = np.where(blob, blob_height_m, 0.75).astype(np.float32)
    P = np.stack([cols * 0.01, -height, 1.5 + (rows - 20) * 0.01], axis=-1).astype(np.float32)
    P[inst == 0] = 0.0
    return inst, color, P


def _flats(inst, color, P):
    out = inst.copy()
    _, ids = split_colour(GeometricConfig(), out, set(), {5}, color, P, UP, FX, 6, 12)
    return out, ids


def test_a_book_lying_on_a_table_is_cut_out_by_its_colour():
    book = np.zeros((60, 80), bool)
    book[30:50, 20:45] = True                    # 25 x 20 cm, 3 cm thick
    out, ids = _flats(*_table(book, 0.78))
    assert ids == [6] and (out[book] == 6).all() and (out[~book & (out > 0)] == 5).all()


def test_flat_blobs_are_not_upright_things_large_sheets_or_ragged_patches():
    book = np.zeros((60, 80), bool)
    book[30:50, 20:45] = True
    rising = np.broadcast_to(np.linspace(0.75, 1.0, 60, dtype=np.float32)[:, None], (60, 80))
    assert _flats(*_table(book, rising))[1] == []           # 25 cm tall along gravity: not flat
    sheet = np.zeros((60, 160), bool)
    sheet[20:60, 10:55] = True                               # 45 x 40 cm: 0.18 m^2, a cover, not an object
    assert _flats(*_table(sheet, 0.76, width_px=160))[1] == []
    ell = np.zeros((60, 80), bool)
    ell[25:55, 10:16] = True
    ell[49:55, 10:50] = True                                 # an L of two 6 cm bands: not compact
    assert _flats(*_table(ell, 0.76))[1] == []
