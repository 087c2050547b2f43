"""The geometric backend's colour stage (issue #6): upright strips of distinct colour side by side are cut out
of one object piece (books in a row, flush, no depth step), flat blobs of another colour out of what they lie
on (a book on a table), and compact islands of one hue or of another colour out of what they stand against (a
box against a sofa, a cardboard box in a shelf of its hue, ragged foliage of another material); textures, large
sheets, ragged patches, ragged lit patches, thin strips, one-hue pieces, a pot under its foliage and a cabinet's lit
face are not. Last, colour growth: objects take the unlabelled pixels of their own colour next to them; parts of one
hue in what is still unlabelled (books in a dark shelf without depth) become objects, but not a hole of the
surrounding stuff's colour; touching instances of one colour where one has little depth are joined (a dark desk's
top and its legs). Also: a lit patch of one material is no island (chromaticity), a book of its shelf's hue is a
Lab strip, a dark book has a hue for the strips (dark wood does not), a book that is the commonest hue on a cabinet
is a flat blob, and each colour part notes the instance it was cut from."""
from __future__ import annotations

import cv2
import numpy as np

from metric_semantic_slam.core.panoptic.geometric import GeometricConfig
from metric_semantic_slam.core.panoptic.geometric_colour import (_dark_hues, depth_margin, grow_by_colour,
                                                                  join_depthless, lab_image, split_colour,
                                                                  unlabelled_colour_parts)
from metric_semantic_slam.core.panoptic.geometric_depth import depth_normals

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


def test_yellow_books_in_light_wood_of_their_hue_are_cut_by_saturation():
    # light wood (HSV hue 17, saturation 121) around yellow books (hue 24, saturation 196): one hue mode; the
    # vivid books are a mode of their own, so with the red book between them they are strips side by side
    inst, color, z, height, masks = _scene([YELLOW, RED, YELLOW])
    wood = (inst == 5) & ~np.any(masks, axis=0)
    color[wood] = (194, 153, 102)
    out, ids = _split(inst, color, z, height)
    for m in masks:
        vals, counts = np.unique(out[m], return_counts=True)
        assert vals[np.argmax(counts)] in ids and counts.max() >= 0.9 * m.sum()
    assert (out[wood] == 5).mean() > 0.95
    out, ids = _split(inst, color, z, height, strip_vivid_saturation=0.0, lab_strips=False)
    assert all(np.bincount(out[m]).argmax() == 5 for m in (masks[0], masks[2]))   # one mode with the wood
    out, ids = _split(inst, color, z, height, strip_vivid_saturation=0.0)         # but other colours in Lab
    assert all(np.bincount(out[m]).argmax() in ids for m in (masks[0], masks[2]))


def test_books_of_hues_30_degrees_apart_are_parted_as_strips():
    # yellow (HSV hue 48 degrees) beside orange-red (16 degrees): two hue modes for the strips
    orange = (220, 80, 30)
    inst, color, z, height, masks = _scene([YELLOW, orange, YELLOW])
    out, ids = _split(inst, color, z, height)
    assert len(ids) == 3 and all(np.bincount(out[m]).argmax() in ids for m in masks)
    # modes farther apart than the two hues (with the histogram's smoothing): one mode, a single strip is no row
    out, ids = _split(inst, color, z, height, strip_mode_separation_bins=6, lab_strips=False)
    assert ids == []


def test_a_books_less_saturated_lit_band_does_not_split_it():
    # a third of the blue book is a paler blue (saturation 102 vs 191): not a second mode, the plain part does
    # not dominate its mode (it would with strip_plain_min_fraction 0.1)
    inst, color, z, height, masks = _scene([RED, BLUE, GREEN])
    band = masks[1] & (np.arange(80)[None, :] >= 18) & (np.arange(80)[None, :] < 20)
    color[band] = (90, 110, 150)
    out, ids = _split(inst, color, z, height)
    assert len(ids) == 3 and len(np.unique(out[masks[1]])) == 1
    out, ids = _split(inst, color, z, height, strip_plain_min_fraction=0.1, strip_vivid_min_fraction=0.1)
    assert len(np.unique(out[masks[1]])) > 1


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


def test_a_book_on_a_grey_cabinet_is_cut_out_though_its_hue_is_the_only_one():
    book = np.zeros((60, 80), bool)
    book[30:50, 20:45] = True
    inst, color, P = _table(book, 0.78)
    color[(inst == 5) & ~book] = 128            # a grey top: the book's is the only hue mode
    out, ids = _flats(inst, color, P)
    assert ids == [6] and (out[book] == 6).all()
    assert (out == 6).sum() <= 1.2 * book.sum()  # the book and its edge, not the grey the mode map lends around it
    color[inst == 5] = RED                       # a red top with nothing on it: its one hue is all of it
    assert _flats(inst, color, P)[1] == []


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


TAN, SOFA_GREY = (200, 120, 60), (75, 75, 68)


def _islands(z: np.ndarray, inst: np.ndarray, color: np.ndarray, **cfg):
    """Islands cut out of instance 5 of a depth map (0 = no depth) seen by a 262.5 px camera (up = -y), with the
    normals the backend would compute. Returns the labels after the cut and the new ids."""
    h, w = z.shape
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    P = np.stack([(u - w / 2) / FX * z, (v - h / 2) / FX * z, z], axis=-1).astype(np.float32)
    n, nok = depth_normals(P, z > 0, 2, 5, 0.04)
    out = inst.copy()
    _, ids = split_colour(GeometricConfig(**cfg), out, set(), set(), color, P, UP, FX, 6, 12, {5}, (n, nok))
    return out, ids


def test_a_box_against_a_sofa_of_another_colour_is_cut_out():
    # a grey sofa front 2 m away; a tan box 25 cm in front of it whose right side recedes to the sofa (no
    # depth step there, a concave crease): one instance from depth, two objects by colour
    z = np.full((80, 100), 2.0, np.float32)
    box = np.zeros(z.shape, bool)
    box[30:60, 30:70] = True
    z[30:60, 30:60] = 1.75
    z[30:60, 60:70] = np.linspace(1.75, 2.0, 11, dtype=np.float32)[1:]
    inst = np.full(z.shape, 5, np.uint16)
    color = np.full((80, 100, 3), SOFA_GREY, np.uint8)
    color[box] = TAN
    out, ids = _islands(z, inst, color)
    ring = np.zeros(z.shape, bool)
    ring[29:61, 29:71] = True                       # the box and 1 px around it (mixed edge pixels)
    assert ids == [6] and (out[box] == 6).mean() > 0.95 and (out[~ring] == 5).all()
    assert _islands(z, inst, color, island_max_size_m=0.2)[1] == []   # it is 27 cm long


SHELF_WOOD, CARDBOARD = (90, 45, 30), (165, 120, 75)     # 14 degrees of hue apart: one hue mode


def _box_in_a_shelf(width: int = 100):
    """The sofa scene's geometry (a box 25 cm in front of a back 2 m away, its right side receding to it) in a
    dark red-brown shelf, the box cardboard: hues too close for two modes, colours far apart."""
    z = np.full((80, width), 2.0, np.float32)
    box = np.zeros(z.shape, bool)
    box[30:60, 30:70] = True
    z[30:60, 30:60] = 1.75
    z[30:60, 60:70] = np.linspace(1.75, 2.0, 11, dtype=np.float32)[1:]
    color = np.full(z.shape + (3,), SHELF_WOOD, np.uint8)
    color[box] = CARDBOARD
    return z, np.full(z.shape, 5, np.uint16), color, box


def test_a_box_of_the_shelfs_hue_is_cut_out_by_its_colour():
    z, inst, color, box = _box_in_a_shelf()
    assert _islands(z, inst, color, lab_islands=False)[1] == []       # no second hue mode
    out, ids = _islands(z, inst, color)
    assert ids == [6] and (out[box] == 6).mean() > 0.95


def test_a_ragged_island_of_another_material_is_cut_but_a_ragged_lit_patch_is_not():
    # the box's outline made ragged (teeth 6 px wide, 16 px deep: 81 % of its hull), like a plant's foliage
    z, inst, _, box = _box_in_a_shelf()
    ragged = box.copy()
    for c in range(30, 70):
        if (c // 6) % 2:
            ragged[30:46, c] = False
    foliage = np.full(z.shape + (3,), SHELF_WOOD, np.uint8)
    foliage[ragged] = (35, 85, 35)                     # dark green on dark wood: other a*b*
    out, ids = _islands(z, inst, foliage)
    assert ids == [6] and (out[ragged] == 6).mean() > 0.95
    assert _islands(z, inst, foliage, lab_island_chromatic_min_solidity=0.85)[1] == []
    lit = np.full(z.shape + (3,), 60, np.uint8)        # grey, a lighter patch of the same grey: light, not material
    lit[ragged] = 200
    assert _islands(z, inst, lit)[1] == []
    assert _islands(z, inst, lit, island_min_solidity=0.77)[1] == [6]


def test_a_thin_strip_of_another_colour_is_no_lab_island():
    # a 6 px (4.5 cm) band of cardboard colour up the shelf, receding like the box's side: a lit edge, not a thing
    z, inst, color, _ = _box_in_a_shelf(width=320)
    color[:] = SHELF_WOOD
    strip = np.zeros(z.shape, bool)
    strip[20:70, 100:106] = True
    z[20:70, 100:106] = np.linspace(1.6, 2.0, 50, dtype=np.float32)[:, None]
    color[strip] = CARDBOARD
    assert _islands(z, inst, color)[1] == []
    assert len(_islands(z, inst, color, lab_island_min_radius_px=0.0)[1]) == 1


def test_a_pot_under_its_foliage_stays_with_it_but_not_one_beside_it():
    z = np.full((80, 60), 2.0, np.float32)
    inst = np.zeros(z.shape, np.uint16)
    inst[10:40, 15:45] = 5                          # the foliage
    inst[40:60, 20:40] = 5                          # the pot, under it: the rest of the plant is all above it
    color = np.full((80, 60, 3), 128, np.uint8)
    color[10:40, 15:45] = GREEN
    color[40:60, 20:40] = TAN
    out, ids = _islands(np.where(inst > 0, z, 0), inst, color)
    assert ids == [] and (out == inst).all()
    inst[10:60, 15:45] = 5                          # a tan part at the right of a green thing as tall as it is
    color[10:60, 15:45] = GREEN
    color[40:60, 30:45] = TAN
    assert len(_islands(np.where(inst > 0, z, 0), inst, color)[1]) == 1


def test_the_lit_front_of_a_cabinet_is_a_face_not_an_object():
    # a convex block: a blue front 1.8 m away and its grey right side receding to 2.3 m (a convex crease)
    z = np.zeros((80, 100), np.float32)
    z[25:55, 20:44] = 1.8
    z[25:55, 44:84] = np.linspace(1.8, 2.3, 41, dtype=np.float32)[1:]
    inst = np.where(z > 0, 5, 0).astype(np.uint16)
    color = np.full((80, 100, 3), 128, np.uint8)
    color[25:55, 20:44] = BLUE
    out, ids = _islands(z, inst, color)
    assert ids == [] and (out == inst).all()
    # the same blue panel in an inside corner (the grey side comes towards the camera: a concave crease, like a
    # box against the wall beside it) is cut: the fold is what keeps the cabinet's front
    z[25:55, 20:44] = 2.3
    z[25:55, 44:84] = np.linspace(2.3, 1.8, 41, dtype=np.float32)[1:]
    assert len(_islands(z, inst, color)[1]) == 1


def test_colour_growth_takes_an_objects_dropouts_of_its_colour_only():
    wall, obj = 2, 20
    sem = np.full((40, 40), wall, np.uint16)
    inst = np.zeros((40, 40), np.uint16)
    color = np.full((40, 40, 3), 200, np.uint8)                  # a light grey wall
    sem[5:10, 10:30], inst[5:10, 10:30], color[5:10, 10:30] = obj, 7, WOOD        # a table top
    sem[10:35, 14:17], color[10:35, 14:17] = 0, WOOD            # its leg, no depth: unlabelled
    sem[20:30, 17:25] = 0                                        # a dropout of the wall beside the leg
    grow_by_colour(sem, inst, color, 8.0, 40, 2.0, 20.0)
    # all of it but the bottom corners, where the 3x3 median takes the wall's colour
    assert (inst[10:34, 14:17] == 7).all() and (sem[10:34, 14:17] == obj).all()
    assert (sem[20:30, 17:25] == 0).all()                         # wall-coloured: not the table's


def test_colour_growth_is_bounded_by_the_instances_own_size():
    # a 2 x 2 crumb of wall edge left as an object inside a large depth hole of its own colour: no stuff pixel
    # borders the hole's inner pixels, so only the size bound keeps it from taking the whole hole
    sem = np.zeros((30, 30), np.uint16)
    inst = np.zeros((30, 30), np.uint16)
    color = np.full((30, 30, 3), 200, np.uint8)
    sem[14:16, 14:16], inst[14:16, 14:16] = 20, 9
    grow_by_colour(sem, inst, color, 8.0, 40, 2.0, 20.0)
    assert (inst == 9).sum() == 4 + 8


def test_colour_growth_keeps_to_the_instances_own_colour():
    # a blue book lying on an unlabelled wooden table top (its depth filled by nothing), with a 1 px edge of
    # wood-coloured mixed pixels kept in the book's instance: the edge leads nowhere, the book's mean is blue
    sem = np.zeros((30, 40), np.uint16)
    inst = np.zeros((30, 40), np.uint16)
    color = np.full((30, 40, 3), WOOD, np.uint8)
    sem[10:20, 10:25], inst[10:20, 10:25] = 20, 6
    color[11:19, 11:24] = BOOK_BLUE
    grow_by_colour(sem, inst, color, 8.0, 40, 2.0, 20.0)
    assert (inst == 6).sum() == 10 * 15
    grow_by_colour(sem, inst, color, 8.0, 40, 2.0, 1000.0)       # without the mean's bound it spreads
    assert (inst == 6).sum() > 10 * 15 + 100


def _unlabelled_region():
    """A wall (id 2, light grey) with an unlabelled hole (a dark shelf without depth) holding a red and a blue
    book, 6 x 24 px each, and a 2 x 2 red speck; every pixel has depth but the hole."""
    h, w = 60, 80
    sem = np.full((h, w), 2, np.uint16)
    inst = np.zeros((h, w), np.uint16)
    color = np.full((h, w, 3), 200, np.uint8)
    sem[15:50, 10:60], color[15:50, 10:60] = 0, (45, 32, 25)
    books = [np.zeros((h, w), bool) for _ in range(2)]
    books[0][20:44, 20:26], books[1][20:44, 30:36] = True, True
    color[books[0]], color[books[1]] = RED, BLUE
    color[30:32, 50:52] = RED
    valid = sem > 0
    return sem, inst, color, valid, books


def _unlabelled_parts(sem, inst, color, valid, **cfg):
    return unlabelled_colour_parts(GeometricConfig(**cfg), sem, inst, color, valid, 12, 24, 3000, 1, 20)


def test_parts_of_one_hue_in_what_is_unlabelled_become_objects():
    sem, inst, color, valid, books = _unlabelled_region()
    _, new = _unlabelled_parts(sem, inst, color, valid)
    assert len(new) == 2                                                   # the books, not the speck
    for book in books:
        ids, n = np.unique(inst[book], return_counts=True)
        assert ids[np.argmax(n)] in new and n.max() > 0.9 * book.sum() and (sem[book] == 20).mean() > 0.9
    assert (inst[30:32, 50:52] == 0).all()


def test_an_unlabelled_part_of_the_surrounding_stuffs_colour_or_at_the_sensors_margin_is_none():
    # a wooden floor (saturated brown) with a hole of its own colour: floor, not an object
    sem = np.full((40, 40), 1, np.uint16)
    inst = np.zeros((40, 40), np.uint16)
    color = np.full((40, 40, 3), WOOD, np.uint8)
    sem[10:30, 10:30] = 0
    valid = sem > 0
    assert _unlabelled_parts(sem.copy(), inst.copy(), color, valid)[1] == []
    assert len(_unlabelled_parts(sem.copy(), inst.copy(), color, valid, unlabelled_parts_stuff_distance=0.0)[1]) == 1
    # the books reaching the rows without depth at the top of the image (a real sensor's frame)
    sem, inst, color, valid, _ = _unlabelled_region()
    sem[:20], color[:20, 20:26], color[:20, 30:36] = 0, RED, BLUE
    valid[:3] = False
    assert _unlabelled_parts(sem, inst, color, valid)[1] == []


def test_the_depth_margin_is_the_frame_of_outer_rows_and_columns_without_depth():
    valid = np.ones((30, 40), bool)
    valid[:3] = False
    valid[:, -2:] = False
    valid[10] = False                                 # a row without depth inside the image is no margin
    valid[:, 0] = np.arange(30) % 2 == 0              # half valid: no margin either
    expected = np.zeros_like(valid)
    expected[:3], expected[:, -2:] = True, True
    assert np.array_equal(depth_margin(valid), expected)


def _desk_pieces(leg_colour=(110, 75, 45), top_depth: float = 0.8, leg_depth: float = 0.0):
    """A dark wooden top (id 1, 60 x 8 px) and two legs under it (ids 2 and 3, 4 x 30 px), the given fractions of
    their pixels with depth. Returns ids, Lab, depth validity."""
    h, w = 50, 80
    inst = np.zeros((h, w), np.uint16)
    color = np.full((h, w, 3), 200, np.uint8)
    inst[5:13, 10:70] = 1
    inst[13:43, 12:16], inst[13:43, 64:68] = 2, 3
    color[inst == 1] = (110, 75, 45)
    color[(inst == 2) | (inst == 3)] = leg_colour
    rng = np.random.default_rng(0)
    valid = np.where(inst == 1, rng.random((h, w)) < top_depth, rng.random((h, w)) < leg_depth) & (inst > 0)
    return inst, lab_image(color, 1.0), valid


def _join(inst, lab, valid, ids=frozenset({1, 2, 3}), **cfg):
    join_depthless(GeometricConfig(**cfg), inst, lab, valid, set(ids), 20, 5)
    return inst


def test_touching_instances_of_one_colour_join_when_one_has_little_depth():
    inst = _join(*_desk_pieces())
    assert len(np.unique(inst[inst > 0])) == 1
    # legs that keep depth on half their pixels: depth could have parted them, so colour does not join them
    inst = _join(*_desk_pieces(leg_depth=0.5, top_depth=0.5))
    assert len(np.unique(inst[inst > 0])) == 3
    assert len(np.unique(_join(*_desk_pieces(leg_depth=0.5, top_depth=0.5),
                               depthless_join_max_depth_fraction=0.6)[_desk_pieces()[0] > 0])) == 1


def test_instances_of_other_colours_black_ones_and_those_left_out_are_not_joined():
    inst = _join(*_desk_pieces(leg_colour=(60, 70, 120)))          # blue legs: another colour
    assert len(np.unique(inst[inst > 0])) == 3
    inst, lab, valid = _desk_pieces()
    black = np.zeros_like(lab)                                    # black things all look alike in Lab
    assert len(np.unique(_join(inst.copy(), black, valid)[inst > 0])) == 3
    assert len(np.unique(_join(inst.copy(), black, valid, depthless_join_min_lightness=0.0)[inst > 0])) == 1
    out = _join(inst.copy(), lab, valid, ids={1, 2})                # leg 3 is a colour part: left as it is
    assert (out[inst == 3] == 3).all() and (out[inst == 2] == out[inst == 1][0]).all()


def test_a_pale_shade_without_hue_in_what_is_unlabelled_is_an_object_but_not_a_dark_leg():
    from metric_semantic_slam.core.panoptic.geometric_colour import FrameColour, pale_parts

    h, w = 60, 80
    sem = np.full((h, w), 2, np.uint16)                          # wall
    inst = np.zeros((h, w), np.uint16)
    color = np.full((h, w, 3), 150, np.uint8)                    # grey wall
    valid = np.ones((h, w), bool)
    shade, leg, bare = (slice(10, 22), slice(10, 26)), (slice(10, 40), slice(40, 52)), (slice(30, 42), slice(60, 76))
    for box in (shade, leg, bare):
        sem[box] = 0
        valid[box] = np.random.default_rng(4).random((box[0].stop - box[0].start, box[1].stop - box[1].start)) < 0.4
    color[shade] = color[bare] = (200, 190, 150)                 # cream: saturation 64, lighter and yellower
    color[leg] = (70, 50, 40)                                    # dark wood
    valid[bare] = False                                          # no depth at all: a dropout strip, no object
    next_id, ids = pale_parts(GeometricConfig(), sem, inst, valid, 24, 600, 7, 20, FrameColour(color))
    assert ids == [7] and next_id == 8
    assert (inst[shade] == 7).mean() > 0.95 and (sem[inst == 7] == 20).all()
    assert (inst[leg] == 0).all() and (inst[bare] == 0).all()


def test_a_lit_patch_of_the_shelfs_own_wood_is_no_island_but_a_box_is():
    # the box of the shelf scene painted in the shelf's wood, 1.8x brighter (a lit compartment back): another Lab
    # colour, the same chromaticity
    z, inst, color, box = _box_in_a_shelf()
    lit = color.copy()
    lit[box] = (162, 81, 54)
    assert _islands(z, inst, lit, island_same_chromaticity=0.0)[1] == [6]
    assert _islands(z, inst, lit)[1] == []
    assert _islands(z, inst, color)[1] == [6]                  # cardboard is another material
    grey = np.full(color.shape, 70, np.uint8)                  # grey around: chromaticity says nothing
    grey[box] = 150
    assert _islands(z, inst, grey, island_min_solidity=0.5)[1] == [6]


DARK_RED_WOOD = (120, 45, 35)


def test_a_book_of_its_shelfs_hue_is_cut_as_a_lab_strip_but_a_paler_stripe_is_not():
    # one red book in a dark red-brown shelf: no second hue mode, another colour in Lab, more colourful
    inst, color, z, height, masks = _scene([RED])
    shelf = (inst == 5) & ~masks[0]
    color[shelf] = DARK_RED_WOOD
    out, ids = _split(inst, color, z, height)
    assert len(ids) == 1 and (out[masks[0]] == ids[0]).mean() > 0.9 and (out[shelf] == 5).all()
    assert _split(inst, color, z, height, lab_strips=False)[1] == []
    color[masks[0]] = (200, 190, 185)          # a pale stripe on it (a shirt's): less colourful than what it is in
    assert _split(inst, color, z, height)[1] == []


def test_a_dark_purple_book_beside_a_yellow_one_has_a_hue_of_its_own_but_dark_wood_does_not():
    purple = (52, 22, 56)                                      # HSV value 56: too dark for a hue elsewhere
    inst, color, z, height, masks = _scene([YELLOW, purple, YELLOW, RED], strip_px=8)
    out, ids = _split(inst, color, z, height, lab_strips=False)
    assert np.bincount(out[masks[1]]).argmax() in ids and len(np.unique(out[np.any(masks, axis=0)])) == 4
    out, _ = _split(inst, color, z, height, lab_strips=False, strip_dark_value_min=0)
    assert np.bincount(out[masks[1]]).argmax() not in ids or len(np.unique(out[np.any(masks, axis=0)])) < 4
    wood = (inst == 5) & ~np.any(masks, axis=0)
    color[wood] = (58, 26, 20)                                 # dark red-brown wood round them, as dark as the book
    out, ids = _split(inst, color, z, height, lab_strips=False)
    red = int(np.bincount(out[masks[3]]).argmax())
    assert red in ids and (out[wood] == red).mean() < 0.1      # the red book does not take the wood's pixels
    hsv = cv2.cvtColor(color, cv2.COLOR_RGB2HSV)
    region = inst == 5
    coloured = _dark_hues(hsv, np.zeros(region.shape, bool), region, GeometricConfig())
    assert coloured[masks[1]].all() and not coloured[wood].any()    # the wood's hue fills the box: left out


def test_a_book_lying_on_a_cabinet_is_a_blob_though_its_hue_is_the_commonest():
    # a red book and a small yellow one on a grey cabinet: red is the commonest hue mode but covers a fifth of it
    book = np.zeros((60, 80), bool)
    book[30:50, 20:45] = True
    small = np.zeros((60, 80), bool)
    small[30:42, 55:66] = True
    inst, color, P = _table(book, 0.78)
    color[(inst == 5) & ~book] = 128
    color[book] = RED
    color[small] = YELLOW
    P[small, 1] = -0.78
    out, ids = _flats(inst, color, P)
    assert int(np.bincount(out[book]).argmax()) in ids
    out = inst.copy()
    _, ids = split_colour(GeometricConfig(flat_own_min_fraction=0.0), out, set(), {5}, color, P, UP, FX, 6, 12)
    assert int(np.bincount(out[book]).argmax()) not in ids


def test_split_colour_notes_what_each_part_was_cut_from():
    inst, color, z, height, masks = _scene([RED, BLUE, GREEN])
    cols = np.broadcast_to(np.arange(inst.shape[1], dtype=np.float32) * Z_M / FX, inst.shape)
    P = np.stack([cols, -height, z], axis=-1).astype(np.float32)
    cut_from: dict[int, int] = {}
    _, ids = split_colour(GeometricConfig(), inst.copy(), {5}, set(), color, P, UP, FX, 6, 12, cut_from=cut_from)
    assert len(ids) == 3 and cut_from == {i: 5 for i in ids}
