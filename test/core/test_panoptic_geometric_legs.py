"""Steps 14 and 15 of the geometric backend (issue #6): a far table's legs found as upright colour bars below it,
leg pieces joined to the thin top they hold, and pieces of one top cut apart by depth holes joined again."""
from __future__ import annotations

import cv2
import numpy as np

from metric_semantic_slam.core.panoptic.geometric import GeometricConfig
from metric_semantic_slam.core.panoptic.geometric_legs import (bar_contrast, claim_leg_bars, join_legs_and_tops,
                                                               trace_poles)

FX = FY = 262.5
CX, CY = 159.5, 119.5
H, W = 240, 320
CAMERA_HEIGHT_M = 1.4           # the camera looks level, its y axis down: height above the floor = 1.4 - y
UP = np.array([0.0, -1.0, 0.0])
OBJECT, WALL, FLOOR = 20, 2, 1


def _scene(rows_cols_depth: list[tuple[slice, slice, float]], wall_depth_m: float = 4.0):
    """Points of a level camera seeing a wall at ``wall_depth_m`` and fronto-parallel patches (rows, cols, depth);
    returns P (h, w, 3) and the height above the floor (h, w)."""
    v, u = np.mgrid[0:H, 0:W].astype(np.float32)
    z = np.full((H, W), wall_depth_m, np.float32)
    for rows, cols, depth in rows_cols_depth:
        z[rows, cols] = depth
    P = np.stack([(u - CX) * z / FX, (v - CY) * z / FY, z], axis=-1)
    return P, CAMERA_HEIGHT_M - P[..., 1]


def _lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)


def _textured_wall(seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).integers(-12, 13, (H, W, 1))
    return np.clip(190 + noise, 0, 255).repeat(3, axis=2).astype(np.uint8)


def test_bar_contrast_is_high_along_a_leg_and_low_on_texture():
    rgb = _textured_wall()
    rgb[100:200, 150:153] = (60, 40, 30)                      # a dark leg 3 px wide
    c = bar_contrast(_lab(rgb), 0.0)
    assert c[120:180, 151].min() > 60                          # its whole length
    assert np.percentile(c[:, :100], 99) < 22                  # wall texture: below the default threshold
    # a leg 2 px wide leaning 30 degrees (bottom end to the left) is found along its own direction
    lean = _textured_wall(1)
    column = {r: int(round(200 - (r - 100) * np.tan(np.deg2rad(30)))) for r in range(100, 200)}
    for r, x in column.items():
        lean[r, x:x + 2] = (60, 40, 30)
    lab = _lab(lean)
    on = [(r, column[r]) for r in range(120, 180)]
    along, vertical, wrong_way = (np.mean([bar_contrast(lab, a)[p] for p in on]) for a in (30.0, 0.0, -30.0))
    assert along > 1.5 * vertical and along > 3 * wrong_way


def _table_with_legs(leg_rows: slice = slice(168, 217)):
    """A far table top (instance 1, 3.8 m, 0.72-0.76 m high) in front of a textured wall, with two dark legs
    taken by the wall (stuff, half of their pixels without depth), a dark bar that does not reach the top and a
    dark block too wide for a leg."""
    top_rows, top_cols = slice(160, 168), slice(100, 201)
    legs = [(leg_rows, slice(105, 108)), (leg_rows, slice(193, 196))]
    P, height = _scene([(top_rows, top_cols, 3.8)] + [(r, c, 3.8) for r, c in legs])
    P[top_rows, top_cols, 1] = CAMERA_HEIGHT_M - np.linspace(0.76, 0.72, 8, dtype=np.float32)[:, None]
    height = CAMERA_HEIGHT_M - P[..., 1]
    rgb = _textured_wall()
    rgb[top_rows, top_cols] = (120, 80, 50)
    inst = np.zeros((H, W), np.uint16)
    inst[top_rows, top_cols] = 1
    sem = np.where(height > 0.03, WALL, FLOOR).astype(np.uint16)
    sem[inst == 1] = OBJECT
    valid = np.ones((H, W), bool)
    for r, c in legs:
        rgb[r, c] = (50, 35, 25)
        valid[r, c] = np.random.default_rng(2).random((r.stop - r.start, c.stop - c.start)) < 0.5
    rgb[175:217, 150:153] = (50, 35, 25)                       # not touching the top
    rgb[170:217, 120:180][:, :12] = (50, 35, 25)               # 12 px wide at 3.8 m: 17 cm
    return sem, inst, rgb, valid, P, height, legs


def test_legs_taken_by_the_wall_join_the_floating_top_above_them():
    sem, inst, rgb, valid, P, height, legs = _table_with_legs()
    claim_leg_bars(GeometricConfig(), sem, inst, {1: OBJECT}, _lab(rgb), valid, P, height, UP, FX, FY)
    for r, c in legs:
        assert (inst[r, c] == 1).mean() > 0.95
        assert (sem[r, c] == OBJECT).mean() > 0.95
    assert (inst[175:217, 150:153] == 0).all()                 # a bar apart from the top holds nothing
    assert (inst[170:217, 120:132] == 0).all()                 # a block too wide for a leg
    assert (inst[:150] == 0).all()                             # nothing above the top


def test_leg_bars_off_or_under_a_top_on_the_floor_change_nothing():
    sem, inst, rgb, valid, P, height, _ = _table_with_legs()
    before = inst.copy()
    claim_leg_bars(GeometricConfig(leg_bar_min_contrast=1000.0), sem, inst, {1: OBJECT}, _lab(rgb), valid, P,
                   height, UP, FX, FY)
    assert np.array_equal(inst, before)
    # the same top standing on the floor (its lowest points below the clearance) floats on nothing
    low = height - 0.6
    claim_leg_bars(GeometricConfig(), sem, inst, {1: OBJECT}, _lab(rgb), valid, P, low, UP, FX, FY)
    assert np.array_equal(inst, before)


def _pieces():
    """A thin top (1), a slender leg piece touching it from below (2), a wide piece reaching as high (3, a person
    seated at it), all at 3.8 m."""
    P, _ = _scene([(slice(150, 230), slice(60, 260), 3.8)])
    inst = np.zeros((H, W), np.uint16)
    inst[160:168, 100:201] = 1
    inst[168:216, 105:109] = 2
    inst[168:216, 150:190] = 3
    P[160:168, 100:201, 1] = CAMERA_HEIGHT_M - np.linspace(0.76, 0.72, 8, dtype=np.float32)[:, None]
    P[160:168, 100:201, 2] = np.linspace(4.2, 3.8, 8, dtype=np.float32)[:, None]   # a top seen from above
    P[168:216, 150:190, 2] = np.linspace(3.5, 4.0, 40, dtype=np.float32)[None, :]  # half a metre deep
    height = CAMERA_HEIGHT_M - P[..., 1]
    sem = np.where(inst > 0, OBJECT, WALL).astype(np.uint16)
    return sem, inst, np.ones((H, W), bool), P, height


def test_a_slender_leg_piece_joins_the_thin_top_it_holds_but_a_wide_piece_does_not():
    sem, inst, valid, P, height = _pieces()
    classes = {1: OBJECT, 2: OBJECT, 3: OBJECT}
    join_legs_and_tops(GeometricConfig(), sem, inst, classes, valid, P, height, UP, set())
    assert inst[170, 106] == inst[164, 150]                    # leg and top: one instance
    assert inst[190, 170] != inst[164, 150]                    # the wide piece stays apart
    # a leg piece reaching only half way up holds nothing
    sem, inst, valid, P, height = _pieces()
    inst[168:192, 105:109] = 0
    join_legs_and_tops(GeometricConfig(), sem, inst, classes, valid, P, height, UP, set())
    assert inst[200, 106] == 2


def test_the_holder_of_a_box_top_is_never_a_leg_piece_nor_a_frame():
    sem, inst, valid, P, height = _pieces()
    join_legs_and_tops(GeometricConfig(), sem, inst, {1: OBJECT, 2: OBJECT, 3: OBJECT}, valid, P, height, UP, set(),
                       carriers={2})
    assert inst[170, 106] == 2                                 # it carries what rests on it, not a table top
    sem, inst, classes, valid, P, height = _frames()
    join_legs_and_tops(GeometricConfig(), sem, inst, classes, valid, P, height, UP, set(), carriers={2})
    assert inst[167, 110] != inst[167, 160]


def _split_top(gap_depth_m: float | None, depth_share: float = 0.4, gap_label: int = 0):
    """One thin top at 3.8 m cut in two (1 and 2) by a 19 px gap: without depth (None) or seeing something at
    ``gap_depth_m``; the pieces have depth on ``depth_share`` of their pixels."""
    P, _ = _scene([(slice(160, 168), slice(100, 201), 3.8)])
    P[160:168, 100:201, 1] = CAMERA_HEIGHT_M - np.linspace(0.76, 0.72, 8, dtype=np.float32)[:, None]
    inst = np.zeros((H, W), np.uint16)
    inst[160:168, 100:141] = 1
    inst[160:168, 160:201] = 2
    valid = np.random.default_rng(3).random((H, W)) < depth_share
    valid[inst == 0] = True
    gap = (slice(160, 168), slice(141, 160))
    if gap_depth_m is None:
        valid[gap] = False
    else:
        P[gap] *= gap_depth_m / P[gap][..., 2:3]
        inst[gap] = gap_label
    height = CAMERA_HEIGHT_M - P[..., 1]
    sem = np.where(inst > 0, OBJECT, WALL).astype(np.uint16)
    classes = {i: OBJECT for i in np.unique(inst).tolist() if i}
    return sem, inst, classes, valid, P, height


def test_pieces_of_a_top_cut_by_a_depth_hole_or_by_something_in_front_are_one():
    for gap_depth, label in ((None, 0), (2.5, 5)):             # a hole; a chair's back in front
        sem, inst, classes, valid, P, height = _split_top(gap_depth, gap_label=label)
        join_legs_and_tops(GeometricConfig(), sem, inst, classes, valid, P, height, UP, set())
        assert inst[164, 120] == inst[164, 180], gap_depth
        if label:
            assert inst[164, 150] == label


def test_pieces_of_a_top_stay_apart_with_the_wall_between_dense_depth_or_a_colour_cut():
    sem, inst, classes, valid, P, height = _split_top(4.6)     # the wall seen between them: two tables
    join_legs_and_tops(GeometricConfig(), sem, inst, classes, valid, P, height, UP, set())
    assert inst[164, 120] != inst[164, 180]
    sem, inst, classes, valid, P, height = _split_top(None, depth_share=0.9)
    join_legs_and_tops(GeometricConfig(), sem, inst, classes, valid, P, height, UP, set())
    assert inst[164, 120] != inst[164, 180]                    # depth says they are apart
    sem, inst, classes, valid, P, height = _split_top(None)
    join_legs_and_tops(GeometricConfig(), sem, inst, classes, valid, P, height, UP, {2})
    assert inst[164, 120] != inst[164, 180]                    # a part cut out for its colour (a book lying flat)


def _frames(second_is_box: bool = False, gap_px: int = 8, in_gap_m: float | None = None):
    """Two 'frames' of one far table (legs and a stretch of apron each, 3.8 m away, instances 1 and 2) with a
    ``gap_px`` hole between their aprons, or something at ``in_gap_m`` there (instance 3); or the second one a
    filled box of the same heights."""
    x = 134 + gap_px
    first = [(slice(165, 170), slice(100, 134)), (slice(170, 216), slice(100, 104)), (slice(170, 216), slice(130, 134))]
    second = [(slice(165, 216), slice(x, x + 34))] if second_is_box else \
        [(slice(165, 170), slice(x, x + 34)), (slice(170, 216), slice(x, x + 4)),
         (slice(170, 216), slice(x + 30, x + 34))]
    gap = (slice(150, 200), slice(134, x))
    P, height = _scene([(r, c, 3.8) for r, c in first + second] + ([(*gap, in_gap_m)] if in_gap_m else []))
    inst = np.zeros((H, W), np.uint16)
    for label, parts in ((1, first), (2, second)):
        for r, c in parts:
            inst[r, c] = label
    valid = np.ones((H, W), bool)
    if in_gap_m:
        inst[gap] = 3
    else:
        valid[165:170, 134:x] = False
    sem = np.where(inst > 0, OBJECT, WALL).astype(np.uint16)
    return sem, inst, {i: OBJECT for i in (1, 2, 3) if (inst == i).any()}, valid, P, height


def test_two_frames_far_apart_are_one_with_a_chair_between_not_with_the_wall():
    for in_gap, joined in ((2.8, True), (None, False)):   # a chair in front of the middle; the wall seen between
        sem, inst, classes, valid, P, height = _frames(gap_px=30, in_gap_m=in_gap)
        if in_gap is None:
            valid[165:170, 134:164] = True                 # the wall behind, with depth
        join_legs_and_tops(GeometricConfig(), sem, inst, classes, valid, P, height, UP, set())
        assert (inst[167, 110] == inst[167, 180]) == joined, in_gap


def test_two_frames_of_a_far_table_are_one_but_not_a_frame_and_a_box():
    sem, inst, classes, valid, P, height = _frames()
    join_legs_and_tops(GeometricConfig(), sem, inst, classes, valid, P, height, UP, set())
    assert inst[167, 110] == inst[167, 160]
    sem, inst, classes, valid, P, height = _frames(second_is_box=True)
    join_legs_and_tops(GeometricConfig(), sem, inst, classes, valid, P, height, UP, set())
    assert inst[167, 110] != inst[167, 160]
    sem, inst, classes, valid, P, height = _frames()
    join_legs_and_tops(GeometricConfig(), sem, inst, classes, valid, P, height, UP, {2})   # a colour part: a frame
    assert inst[167, 110] == inst[167, 160]


def test_a_frame_takes_the_dropouts_of_its_colour_next_to_it():
    sem, inst, classes, valid, P, height = _frames()
    lab = np.zeros((H, W, 3), np.float32) + (150.0, 128.0, 128.0)
    lab[160:220, 95:180] = (60.0, 135.0, 140.0)                # the frames' dark wood, and round them
    lab[170:216, 104:106] = (200.0, 128.0, 128.0)              # a light thing beside the leg: no edge of it
    sem[170:216, 99:100] = 0
    inst[170:216, 99:100] = 0
    valid[170:216, 99:100] = valid[170:216, 104:106] = False   # dropouts left of the leg and inside it
    inst[170:216, 104:106] = 0
    sem[170:216, 104:106] = 0
    join_legs_and_tops(GeometricConfig(), sem, inst, classes, valid, P, height, UP, set(), lab)
    frame = inst[167, 110]
    assert (inst[170:216, 99] == frame).all()                  # the dropout edge of the frame's colour
    assert (inst[170:216, 104:106] == 0).all()                 # not a pixel of another colour


def _lamp(shade_is_pale: bool = True, neighbour_beside: bool = False):
    """A desk lamp 3 m away: its shade (instance 1, rows 120-131, 16 px wide, 1.0-1.1 m above the floor) over a
    pole 2 px wide down to row 160, taken by the wall (stuff) and half without depth; optionally an object with
    depth right beside the pole (instance 2: a monitor's edge)."""
    P, height = _scene([(slice(120, 132), slice(150, 166), 3.0), (slice(132, 161), slice(157, 159), 3.0)])
    inst = np.zeros((H, W), np.uint16)
    inst[120:132, 150:166] = 1
    rgb = _textured_wall()
    rgb[120:132, 150:166] = (200, 190, 150)
    rgb[132:161, 157:159] = (60, 60, 65)
    valid = np.ones((H, W), bool)
    valid[132:161, 157:159] = np.random.default_rng(5).random((29, 2)) < 0.5
    classes = {1: OBJECT}
    if neighbour_beside:
        inst[132:161, 160:180] = 2
        classes[2] = OBJECT
    sem = np.where(inst > 0, OBJECT, WALL).astype(np.uint16)
    return sem, inst, classes, rgb, valid, P, height, [1] if shade_is_pale else []


def test_a_pole_is_traced_below_a_pale_shade_but_not_along_an_objects_edge():
    sem, inst, classes, rgb, valid, P, height, pale = _lamp()
    trace_poles(GeometricConfig(), sem, inst, classes, _lab(rgb), valid, P, height, UP, FX, FY, pale, OBJECT)
    assert (inst[132:161, 157:159] == 1).mean() > 0.9
    # an object that is no pale part, with another object's edge 2 px beside its pole on every row: no pole
    sem, inst, classes, rgb, valid, P, height, pale = _lamp(shade_is_pale=False, neighbour_beside=True)
    trace_poles(GeometricConfig(), sem, inst, classes, _lab(rgb), valid, P, height, UP, FX, FY, pale, OBJECT)
    assert (inst[132:161, 157:159] == 0).all()
    sem, inst, classes, rgb, valid, P, height, pale = _lamp(shade_is_pale=False)
    trace_poles(GeometricConfig(), sem, inst, classes, _lab(rgb), valid, P, height, UP, FX, FY, pale, OBJECT)
    assert (inst[132:161, 157:159] == 1).mean() > 0.9           # alone, a small floating object holds its pole
