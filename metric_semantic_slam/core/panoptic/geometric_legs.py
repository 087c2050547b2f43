"""Steps 14 and 15 of the ``geometric`` backend: a far table's legs and the pieces of its top.

A table three or more metres away keeps depth on a fraction of its pixels: its legs, a few pixels wide, are all
depth edge (the sensor drops depth there), and a dark or grazing top drops out in patches. What is left is a top cut
into pieces by holes, legs taken by the wall or floor planes (their few depth pixels fall inside the planes'
tolerance, which grows with z^2) or left unlabelled, and pieces of leg that reach part of the way up. These
passes run on the final instances (after the late pole pass), where the floor is known:

* ``claim_leg_bars`` (step 14): below an instance that floats (its lowest points clear of the floor), the
  narrow upright bars of colour contrast that no instance holds (a leg against the wall or floor behind it), that
  touch the instance and reach a good part of the way down to the floor, join it; then ``trace_poles`` follows a
  desk lamp's short pole down from its shade;
* ``join_legs_and_tops`` (step 15): a slender piece reaching from near the floor up to the underside of a thin
  horizontal top, standing inside the top's footprint, joins it (a leg found as a piece of its own); and two pieces
  whose tops are at one height, both mostly without depth, whose gap in the image holds nothing behind them (only
  depth holes or something in front: a chair, a lamp before a screen) are one; so are a table's "frames" (legs and
  a stretch of apron in one piece, hollow in the image) whose top slabs meet, with each other or with a thin top.

Pieces cut out or found by their colour (the caller's ``colour_ids``: strips, books lying flat, books without depth
found in what was unlabelled) are never tops here (a far desk's frame found by its colour may join as a frame).
Heights are along ``up`` above the floor (m); points and frames as in :mod:`.geometric`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import cv2
import numpy as np

from ..depth_confidence import nguyen_sigma_m
from .geometric_depth import floor_basis, norm3
from .geometric_grouping import (_d2, _quantile, fast_median, join_label_pairs, label_pixels, percentiles,
                                 rectangle_coordinates, touching_labels)

if TYPE_CHECKING:
    from .geometric import GeometricConfig

_BAR_SCALES_PX = (2, 3)        # a bar's sides are looked for this far from its centre line (legs 2-6 px wide)
_BAR_LENGTH_PX = 9             # the contrast is averaged along the bar over this length (stone-like wall texture
                               # has short contrasts, a leg a long one)
_BAR_ANGLE_STEP_DEG = 10       # bars are looked for along the image direction of up at the instance, in steps
_BAR_MAX_ANGLE_DEG = 40
_BAR_MIN_PX = 40               # instances smaller than this hold no legs worth finding
_BAR_ABOVE_M = 0.10            # a bar's pixels with depth lie no higher than the instance's lowest points + this
_BAR_REACH = 1.3               # bars are looked for down to this times the instance's height above the floor (px)

_TOP_MIN_HEIGHT_M = 0.4        # a top's lowest points (5 %) are this high above the floor at least
_LEG_LOW_M = 0.25              # a leg piece's lowest points (5 %) come down to this above the floor
_LEG_GAP_M = 0.12              # ... and its highest (95 %) up to this below the top's lowest, not above its highest
_LEG_OVER_M = 0.05
_LEG_FOOTPRINT_MARGIN_M = 0.05
_LEG_INSIDE = 0.8              # share of a leg piece's points inside the top's footprint (grown by the margin)
_SLAB_M = 0.06                 # a piece's top slab: its points within this below its highest (95 %)
_SLAB_MIN_FRACTION = 0.3
_TOP_MAX_HEIGHT_DIFF_M = 0.03  # two pieces of one top: highest points (95 %) this close
_GAP_MAX_PX = 80               # and their top slabs this close in the image, at least 3 px apart
_GAP_SIGMAS = 3.0              # a gap pixel lies behind the line between the two ends by this many noise stds + 3 cm
_GAP_MAX_BEHIND = 0.2          # share of the gap's pixels with depth that may lie behind it
_GAP_MAX_FLOOR_M = 1.0         # and the slabs this close on the floor plane
_MIN_DEPTH_PX = 8              # pieces with fewer pixels with depth are left out
_FRAME_LOW_M = 0.25            # a frame (legs and apron in one piece) comes down to this above the floor ...
_FRAME_MAX_FILL = 0.4          # ... fills at most this share of its image bounding box (a box or a person: more)
_FRAME_MAX_SLAB = 0.6          # ... and holds at most this share of its points in its top slab
_FRAMES_MAX_HEIGHT_DIFF_M = 0.03   # two frames of one table: highest points this close
_TOP_FRAME_MARGIN_M = 0.05     # a frame under a top: its highest points within the top's heights, give or take this
_MEET_PX = 12                  # two top slabs meet: their nearest pixels this close in the image ...
_MEET_M = 0.15                 # ... and their 5 nearest pairs (in the image) this close on the floor (median)
_FAR_FRAMES_PX = 80            # two frames farther apart (a chair in front of the middle): slabs within this in the
_FAR_FRAMES_M = 1.0            # image, their nearest points this close on the floor,
_FAR_FRAMES_HEIGHT_DIFF_M = 0.08   # and highest points this close (the gap open)
_EDGE_LAB_DELTA = 20.0         # a frame takes the unlabelled dropouts next to it (1 px) within this of its colour


def bar_contrast(lab: np.ndarray, angle_deg: float) -> np.ndarray:
    """How much each pixel stands out from both of its sides across a bar leaning ``angle_deg`` from the image's
    vertical (positive: its bottom end to the left): the smaller of the Lab distances to the pixels
    ``_BAR_SCALES_PX`` away on either side (the larger over the scales), averaged along the bar over
    ``_BAR_LENGTH_PX``. A leg against a wall scores its contrast to the wall on its whole length; texture scores
    in spots. Shape: (h, w, 3) float32 Lab -> (h, w) float32."""
    h, w = lab.shape[:2]
    t = np.deg2rad(angle_deg)
    across = np.array([np.cos(t), np.sin(t)])          # x, y image direction across the bar
    best = np.zeros((h, w), np.float32)
    for s in _BAR_SCALES_PX:
        sides = []
        for sign in (1.0, -1.0):
            shift = np.float32([[1, 0, sign * s * across[0]], [0, 1, sign * s * across[1]]])
            diff = lab - cv2.warpAffine(lab, shift, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            # the Euclidean norm over the 3 channels, as np.linalg.norm(diff, axis=2) but ~10x faster
            sides.append(cv2.sqrt(cv2.transform(diff * diff, np.ones((1, 3), np.float32))))
        best = np.maximum(best, np.minimum(sides[0], sides[1]))
    k = _BAR_LENGTH_PX
    line = np.zeros((k, k), np.float32)
    c = k // 2
    for u in np.linspace(-c, c, 4 * k):                # the bar's direction is (-sin t, cos t)
        line[int(round(c + u * across[0])), int(round(c - u * across[1]))] = 1
    return cv2.filter2D(best, -1, line / line.sum())


def _image_angle_of_up(point: np.ndarray, up: np.ndarray, fx: float, fy: float) -> float:
    """The lean from the image's vertical (degrees, as in ``bar_contrast``) of an upright line through ``point``
    (camera frame, m): legs below a table at the image's edge or seen with a rolled camera are not vertical."""
    below = point - 0.3 * up
    d = np.array([fx * below[0] / below[2] - fx * point[0] / point[2],
                  fy * below[1] / below[2] - fy * point[1] / point[2]])
    return float(np.rad2deg(np.arctan2(-d[0], d[1])))


def _bar_map(contrast: dict[int, np.ndarray], lab: np.ndarray, point: np.ndarray | None, up: np.ndarray, fx: float,
             fy: float) -> np.ndarray:
    """``bar_contrast`` along the image direction of up at ``point`` (camera frame; None: the image's vertical),
    rounded to ``_BAR_ANGLE_STEP_DEG`` and at most ``_BAR_MAX_ANGLE_DEG``, from the frame's cache ``contrast``
    (filled on demand)."""
    angle = 0
    if point is not None:
        angle = int(np.clip(np.round(_image_angle_of_up(point, up, fx, fy) / _BAR_ANGLE_STEP_DEG)
                            * _BAR_ANGLE_STEP_DEG, -_BAR_MAX_ANGLE_DEG, _BAR_MAX_ANGLE_DEG))
    if angle not in contrast:
        contrast[angle] = bar_contrast(lab, angle)
    return contrast[angle]


def claim_leg_bars(cfg: GeometricConfig, sem: np.ndarray, inst: np.ndarray, classes: dict[int, int],
                   lab: np.ndarray, valid: np.ndarray, P: np.ndarray, height: np.ndarray, up: np.ndarray,
                   fx: float, fy: float, contrast: dict[int, np.ndarray] | None = None) -> None:
    """Give a floating instance the legs the plane and depth stages lost, in place (step 14).

    An instance of at least ``_BAR_MIN_PX`` pixels whose lowest points with depth (5 %) are at least
    ``leg_bar_min_clearance_m`` above the floor stands on something. Below it (its columns, 3 px more on either
    side, down to ``_BAR_REACH`` times its height above the floor in pixels at its median depth), the pixels no
    instance holds (stuff or unknown) whose ``bar_contrast`` along the image direction of up at the instance is at
    least ``leg_bar_min_contrast``, and whose depth (where they have it) is no higher than the instance's lowest
    points plus ``_BAR_ABOVE_M``, form bars (8-connected parts). A bar touching the instance (within 1 px, 3 px
    tall), at least ``leg_bar_min_span`` of the instance's height above the floor tall and on average at most
    ``leg_bar_max_width_m`` wide, is a leg: its pixels and the pixels without depth beside it (1 px) join the
    instance and take its class. ``lab``: OpenCV 8-bit Lab as float; ``height``: above the floor (m); ``valid``:
    which pixels have depth; ``contrast``: the frame's ``bar_contrast`` maps by angle, filled on demand (shared with
    ``trace_poles``). Shape: (h, w) uint16 x2, (h, w, 3) float32, (h, w) bool, (h, w, 3), (h, w), (3,)."""
    h, w = inst.shape
    Pf, Hf, vf = P.reshape(-1, 3), height.ravel(), valid.ravel()
    contrast = {} if contrast is None else contrast
    for i, idx in label_pixels(inst.copy()):            # instances as they were: a leg claimed goes to one only
        if i not in classes or len(idx) < _BAR_MIN_PX:
            continue
        idv = idx[vf[idx]]
        if len(idv) < 20:
            continue
        low = _quantile(Hf[idv], 0.05)
        if low < cfg.leg_bar_min_clearance_m:
            continue
        z = float(fast_median(Pf[idv, 2]))
        reach_px = low * fy / z
        max_width_px = max(2.0, cfg.leg_bar_max_width_m * fx / z)
        bars = _bar_map(contrast, lab, fast_median(Pf[idv], axis=0), up, fx, fy)
        ys, xs = np.unravel_index(idx, (h, w))
        box = (slice(int(ys.min()), min(h, int(ys.max() + _BAR_REACH * reach_px) + 1)),
               slice(max(0, int(xs.min()) - 3), min(w, int(xs.max()) + 4)))
        vb = valid[box]
        bar = (inst[box] == 0) & (bars[box] >= cfg.leg_bar_min_contrast) \
            & (~vb | (height[box] < low + _BAR_ABOVE_M))
        touch = cv2.dilate((inst[box] == i).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        k, parts, stats, _ = cv2.connectedComponentsWithStats(bar.astype(np.uint8), connectivity=8)
        tall = stats[:, cv2.CC_STAT_HEIGHT]
        leg = np.zeros(k, bool)
        leg[np.unique(parts[touch & bar])] = True
        leg &= (tall >= cfg.leg_bar_min_span * reach_px) & (stats[:, cv2.CC_STAT_AREA] <= max_width_px * tall)
        leg[0] = False
        take = leg[parts]
        if not take.any():
            continue
        beside = cv2.dilate(take.astype(np.uint8), np.ones((1, 3), np.uint8)).astype(bool)
        take |= beside & (inst[box] == 0) & ~vb      # the leg's dropout edge
        inst[box][take] = i
        sem[box][take] = classes[i]


_POLE_MAX_PX = 3000            # objects this small (at 320x240) may hang on a traced pole ...
_POLE_CLEARANCE_M = 0.3        # ... when their lowest points (5 %) are this far above the floor
_POLE_MAX_RUN_PX = 3           # a pole's run in one row is at most this wide
_POLE_MIN_ROWS = 5
_POLE_REACH = 5.0              # a pole is traced down to this many times the object's own height in the image
_POLE_MAX_DZ_M = 0.3           # a pole's pixels with depth lie within this of the object's median depth
_POLE_MIN_ASPECT = 0.8         # the object is at least this wide for its height in the image ...
_POLE_MIN_WIDTH_RATIO = 3.0    # ... and this many times wider than the pole
_POLE_MAX_SIDE = 0.3           # a pole has another instance with depth 2 px beside it on at most this share of its rows
_SPARSE_DEPTH = 0.3            # an instance with depth on at most this share of its pixels (a screen) hides no pole


def trace_poles(cfg: GeometricConfig, sem: np.ndarray, inst: np.ndarray, classes: dict[int, int], lab: np.ndarray,
                valid: np.ndarray, P: np.ndarray, height: np.ndarray, up: np.ndarray, fx: float, fy: float,
                pale_ids: list[int], object_class: int, contrast: dict[int, np.ndarray] | None = None) -> None:
    """Give a desk lamp's shade its pole, in place (step 14, after ``claim_leg_bars``): a pole a pixel or two wide
    under a shade a few dozen pixels across is too short for a leg bar (it does not reach the floor: the lamp
    stands on a desk) and may lie in front of a screen, an instance without depth.

    The candidates are the pale parts (``pale_ids``, :func:`.geometric_colour.pale_parts`) and the objects
    (``object_class``) of at most ``_POLE_MAX_PX`` pixels whose lowest points with depth (5 %, >= 20 of them) are
    ``_POLE_CLEARANCE_M`` above the floor. Below each, a pole is traced row by row from the columns of its bottom
    row: in each row the pixel of highest ``bar_contrast`` (along the image direction of up at the object; at least
    ``pole_trace_min_contrast``) within one column of the previous row's run, grown left and right over such
    pixels to ``_POLE_MAX_RUN_PX``; one row without any is bridged; down to ``_POLE_REACH`` times the object's
    height in the image. The pixels a trace may take are unlabelled or stuff (for a pale part also the pixels
    without depth of objects of its class, and all of a screen's: an instance of its class with depth on at most
    ``_SPARSE_DEPTH`` of its pixels), and where they have depth it lies within ``_POLE_MAX_DZ_M`` of the object's.
    The trace is the object's pole when it is at least ``_POLE_MIN_ROWS`` rows and the object's height long, the
    object is ``_POLE_MIN_ASPECT`` as wide as tall and ``_POLE_MIN_WIDTH_RATIO`` times wider than the pole, (for
    an object that is not a pale part) another instance with depth lies 2 px beside it on at most
    ``_POLE_MAX_SIDE`` of its rows (a monitor's bezel edge is no pole), and its pixels with depth lie, at their
    median, within ``_POLE_MAX_DZ_M`` of the object. Its pixels join the object and take its class.
    ``lab``: OpenCV 8-bit Lab as float; ``height``: above the floor (m); ``contrast``: as in ``claim_leg_bars``.
    Shape: as ``claim_leg_bars``."""
    h, w = inst.shape
    candidates = list(pale_ids)
    Hf, vf = height.ravel(), valid.ravel()
    boxes: dict[int, tuple[slice, slice]] = {}      # each candidate's bounding box: it only loses pixels till its turn
    for j, idx in label_pixels(inst.copy()):
        if j not in pale_ids:
            if classes.get(j) != object_class or len(idx) > _POLE_MAX_PX:
                continue
            iv = idx[vf[idx]]
            if len(iv) < 20 or np.quantile(Hf[iv], 0.05) < _POLE_CLEARANCE_M:
                continue
            candidates.append(j)
        ys, xs = np.divmod(idx, w)
        boxes[j] = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    contrast = {} if contrast is None else contrast
    size = with_depth = None
    for i in candidates:
        if i not in boxes:
            continue
        box = boxes[i]
        part_box = inst[box] == i
        if not part_box.any():
            continue
        ys, xs = np.nonzero(part_box)
        ys, xs = ys + box[0].start, xs + box[1].start
        if size is None:                              # as the poles traced so far left them
            size = np.bincount(inst.ravel())
            with_depth = np.bincount(inst[valid], minlength=len(size))
        sparse = [j for j, k in classes.items() if k == classes[i] and
                  (j >= len(size) or with_depth[j] <= _SPARSE_DEPTH * size[j])]
        with_z = part_box & valid[box]
        centre = fast_median(P[box][with_z], axis=0) if np.count_nonzero(with_z) >= 3 else None
        z_part = None if centre is None else float(centre[2])
        c = _bar_map(contrast, lab, centre, up, fx, fy)
        if i in pale_ids:
            same = [j for j, k in classes.items() if k == classes[i]]
            free = ((np.isin(inst, same) & ~valid) | np.isin(inst, sparse) | (inst == 0)) & (inst != i)
        else:
            free = inst == 0
        bar = (c >= cfg.pole_trace_min_contrast) & free
        if z_part is not None:
            bar &= ~valid | (np.abs(P[..., 2] - z_part) <= _POLE_MAX_DZ_M)
        part_h = int(ys.max() - ys.min() + 1)
        runs = _trace(bar, c, xs[ys == ys.max()], int(ys.max()) + 1, int(_POLE_REACH * part_h))
        if len(runs) < max(_POLE_MIN_ROWS, part_h):
            continue
        part_w = int(xs.max() - xs.min() + 1)
        if part_w < _POLE_MIN_ASPECT * part_h or part_w < _POLE_MIN_WIDTH_RATIO * np.mean([len(r) for _, r in runs]):
            continue
        pole = np.zeros((h, w), bool)
        beside = 0
        for r, cols in runs:
            pole[r, cols] = True
            left, right = inst[r, max(0, cols.min() - 2)], inst[r, min(w - 1, cols.max() + 2)]
            beside += any(int(x) not in sparse and x not in (0, i) for x in (left, right))
        if i not in pale_ids and beside > _POLE_MAX_SIDE * len(runs):
            continue
        pole_z = pole & valid
        if z_part is not None and np.count_nonzero(pole_z) >= 3 and \
                abs(float(fast_median(P[pole_z][:, 2])) - z_part) > _POLE_MAX_DZ_M:
            continue
        inst[pole] = i
        sem[pole] = classes[i]
        size = None


def _trace(bar: np.ndarray, contrast: np.ndarray, start_cols: np.ndarray, first_row: int, n_rows: int):
    """Runs of a pole traced down from ``start_cols``: a list of (row, sorted columns) (see ``trace_poles``)."""
    prev, runs, missed, w = np.asarray(start_cols), [], 0, bar.shape[1]
    for r in range(first_row, min(bar.shape[0], first_row + n_rows)):
        lo, hi = max(0, int(prev.min()) - 1), min(w - 1, int(prev.max()) + 1)
        cols = np.flatnonzero(bar[r, lo:hi + 1]) + lo
        if len(cols) == 0:
            missed += 1
            if missed > 1:
                break
            continue
        missed = 0
        best = int(cols[np.argmax(contrast[r, cols])])
        run, left, right = [best], best - 1, best + 1
        while len(run) < _POLE_MAX_RUN_PX:
            grew = False
            if left >= 0 and bar[r, left]:
                run.append(left)
                left -= 1
                grew = True
            if len(run) < _POLE_MAX_RUN_PX and right < w and bar[r, right]:
                run.append(right)
                right += 1
                grew = True
            if not grew:
                break
        prev = np.array(sorted(run))
        runs.append((r, prev))
    return runs


class _Piece(NamedTuple):
    with_depth: np.ndarray     # flat indices of its pixels with depth
    quant: np.ndarray          # its heights above the floor, 5 and 95 %
    slab_share: float          # share of its points in its top slab
    slab_idx: np.ndarray       # up to ~300 of its top slab's flat indices
    slab_xy: np.ndarray        # their floor-plane points


def _pieces(inst: np.ndarray, classes: dict[int, int], valid: np.ndarray, P: np.ndarray, height: np.ndarray,
            E: np.ndarray) -> tuple[dict[int, np.ndarray], dict[int, _Piece]]:
    """The pixels of every instance in ``classes``, and the heights and top slab (its points within ``_SLAB_M`` of
    its highest) of those with at least ``_MIN_DEPTH_PX`` pixels with depth. ``E``: the (3, 2) floor basis."""
    Pf, Hf, vf = P.reshape(-1, 3), height.ravel(), valid.ravel()
    pixels, pieces = {}, {}
    for i, idx in label_pixels(inst):
        if i not in classes:
            continue
        pixels[i] = idx
        iv = idx[vf[idx]]
        if len(iv) < _MIN_DEPTH_PX:
            continue
        hv = Hf[iv]
        quant = percentiles(hv, (5, 95))
        in_slab = hv >= quant[1] - _SLAB_M
        s = iv[in_slab]
        s = s[::max(1, len(s) // 300)]
        pieces[i] = _Piece(iv, quant, float(np.mean(in_slab)), s, (Pf[s] @ E).astype(np.float32))
    return pixels, pieces


def join_legs_and_tops(cfg: GeometricConfig, sem: np.ndarray, inst: np.ndarray, classes: dict[int, int],
                       valid: np.ndarray, P: np.ndarray, height: np.ndarray, up: np.ndarray,
                       colour_ids: set[int], lab: np.ndarray | None = None,
                       carriers: set[int] = frozenset()) -> None:
    """Join a far table's legs and the pieces of its top, in place (step 15).

    Each instance in ``classes`` with at least ``_MIN_DEPTH_PX`` pixels with depth is described by its heights
    above the floor (5 / 95 %), its floor footprint and its top slab (its points within ``_SLAB_M`` of its highest).
    A **top** is thin (95 - 5 % at most ``top_max_thickness_m``) and at least ``_TOP_MIN_HEIGHT_M`` up.

    * A **leg piece** touching a top (within 2 px), whose footprint is at most ``leg_piece_max_width_m`` long, that
      comes down to ``_LEG_LOW_M`` above the floor and up to within ``_LEG_GAP_M`` of the top's lowest points (no
      higher than ``_LEG_OVER_M`` above its highest), with ``_LEG_INSIDE`` of its points inside the top's footprint
      rectangle (grown by ``_LEG_FOOTPRINT_MARGIN_M``), carries it: joined (a person seated at a desk, a shelf of
      books under a board, are wider than a leg).
    * **Two pieces of one top**: two instances not in ``colour_ids``, each with at least ``_SLAB_MIN_FRACTION`` of
      its points in its top slab and its highest points at least ``_TOP_MIN_HEIGHT_M`` up (a table top cut by
      holes, a screen cut in two by a lamp in front of it), their highest points within ``_TOP_MAX_HEIGHT_DIFF_M``,
      both with depth on at most ``top_gap_max_depth_fraction`` of their pixels (the holes cut them; where depth
      is dense, its cuts stand), and whose top slabs come within ``_GAP_MAX_PX`` in the image (at least 3 px
      apart) and ``_GAP_MAX_FLOOR_M`` on the floor plane, are one when the straight gap between their nearest
      slab pixels holds nothing behind them: at most ``_GAP_MAX_BEHIND`` of its other pixels with depth lie more
      than ``_GAP_SIGMAS`` noise stds + 3 cm beyond the line between the two ends (holes and something in front,
      a chair's back, leave it open).

    Joined pixels take the class of the instance whose label they take. ``height``: above the floor (m); ``lab``:
    OpenCV 8-bit Lab as float, for the frames' dropout edges (``_join_frames``; None: no edges); ``carriers``: the
    instances holding a box's top (``foreshortened_tops``), which carry what rests on them: never a leg piece nor a
    frame. Shape: (h, w) uint16 x2, (h, w) bool, (h, w, 3) camera-frame points, (h, w) m, (3,) unit vector."""
    h, w = inst.shape
    E = floor_basis(up)
    Pf = P.reshape(-1, 3)
    pixels, pieces = _pieces(inst, classes, valid, P, height, E)
    quant, rect, foot, slab_share, slab_idx, slab_xy, depth_share = {}, {}, {}, {}, {}, {}, {}
    for i, piece in pieces.items():
        quant[i], slab_idx[i], slab_xy[i] = piece.quant, piece.slab_idx, piece.slab_xy
        xy = (Pf[piece.with_depth[::max(1, len(piece.with_depth) // 2000)]] @ E).astype(np.float32)
        foot[i] = xy
        rect[i] = cv2.minAreaRect(np.ascontiguousarray(xy))
        slab_share[i] = piece.slab_share
        depth_share[i] = len(piece.with_depth) / len(pixels[i])
    is_top = {i: q[1] - q[0] <= cfg.top_max_thickness_m and q[0] >= _TOP_MIN_HEIGHT_M for i, q in quant.items()}
    pairs = set()
    for a in quant:
        if not is_top[a]:
            continue
        lo_a, hi_a = quant[a]
        for b in touching_labels(inst, a, pixels[a], radius_px=2):
            if b == a or b not in quant or b in carriers or max(rect[b][1]) > cfg.leg_piece_max_width_m:
                continue
            lo_b, hi_b = quant[b]
            if lo_b > _LEG_LOW_M or hi_b < lo_a - _LEG_GAP_M or hi_b > hi_a + _LEG_OVER_M:
                continue
            loc, half = rectangle_coordinates(rect[a], foot[b])
            if np.mean(np.all(np.abs(loc) <= half + _LEG_FOOTPRINT_MARGIN_M, axis=1)) >= _LEG_INSIDE:
                pairs.add((min(a, b), max(a, b)))
    tops = [i for i in quant if i not in colour_ids and slab_share[i] >= _SLAB_MIN_FRACTION
            and quant[i][1] >= _TOP_MIN_HEIGHT_M and depth_share[i] <= cfg.top_gap_max_depth_fraction]
    z = P[..., 2]
    for n_a, a in enumerate(tops):
        for b in tops[n_a + 1:]:
            if abs(quant[a][1] - quant[b][1]) > _TOP_MAX_HEIGHT_DIFF_M:
                continue
            if _gap_is_open(inst, a, b, slab_idx, z, valid) and \
                    float(np.sqrt(_d2(slab_xy[a], slab_xy[b]).min())) <= _GAP_MAX_FLOOR_M:
                pairs.add((min(a, b), max(a, b)))
    _join(sem, inst, classes, pixels, pairs)
    # the pieces as described above still hold when nothing was joined (most frames)
    _join_frames(cfg, sem, inst, classes, valid, P, height, up, colour_ids, lab,
                 None if pairs else (pixels, pieces), carriers)


def _join(sem: np.ndarray, inst: np.ndarray, classes: dict[int, int], pixels: dict[int, np.ndarray],
          pairs: set[tuple[int, int]]) -> None:
    """Join the pairs of instances (transitively), in place; joined pixels take the class of the label they take."""
    if not pairs:
        return
    join_label_pairs(inst, pixels, sorted(pairs))
    for i in {i for pair in pairs for i in pair}:
        np.put(sem, pixels[i], classes[int(inst.ravel()[pixels[i][0]])])


def _join_frames(cfg: GeometricConfig, sem: np.ndarray, inst: np.ndarray, classes: dict[int, int],
                 valid: np.ndarray, P: np.ndarray, height: np.ndarray, up: np.ndarray, colour_ids: set[int],
                 lab: np.ndarray | None, described: tuple[dict, dict] | None = None,
                 carriers: set[int] = frozenset()) -> None:
    """The last rule of step 15, on the instances the others leave, in place: a far table cut into **frames**, each
    its legs and a stretch of apron in one piece, with neither a thin top (a plant pot or a hole between them).

    A frame is an instance (a colour part too: a far desk's frame is often found by its colour, but it is never a
    top) with at least ``_MIN_DEPTH_PX`` pixels with depth, coming down to
    ``_FRAME_LOW_M`` above the floor (5 %) and up to ``_TOP_MIN_HEIGHT_M`` (95 %), hollow in the image (at most
    ``_FRAME_MAX_FILL`` of its bounding box: legs under an apron, not a box, a cabinet or a person) and with at
    most ``_FRAME_MAX_SLAB`` of its points in its top slab (legs below a top, not a top with a stray pixel below).
    Two pieces join when their top slabs meet (nearest pixels within ``_MEET_PX`` in the image, the 5 nearest
    pairs' median distance on the floor plane within ``_MEET_M``, and the image gap between them open as in
    ``join_legs_and_tops`` when 3 px or more) and they are two frames whose highest points are within
    ``_FRAMES_MAX_HEIGHT_DIFF_M``, or a thin top and a frame whose highest points lie within the top's heights,
    give or take ``_TOP_FRAME_MARGIN_M``; two frames farther apart (a chair in front of the table's middle: slabs
    within ``_FAR_FRAMES_PX`` in the image, nearest points within ``_FAR_FRAMES_M`` on the floor, highest points
    within ``_FAR_FRAMES_HEIGHT_DIFF_M``, the gap open) join too. Then each frame's instance takes the unlabelled
    pixels without depth next to it (1 px) within ``_EDGE_LAB_DELTA`` of its median colour (``lab``): the dropout
    edge of its legs. ``described``: ``_pieces`` of ``inst`` as it is, when the caller has them; ``carriers``: left
    out (neither frames nor tops). Shape: as ``join_legs_and_tops``."""
    h, w = inst.shape
    pixels, pieces = described if described is not None else _pieces(inst, classes, valid, P, height,
                                                                     floor_basis(up))
    pieces = {i: piece for i, piece in pieces.items() if i not in carriers}
    quant, frame, slab_idx, slab_rc, slab_xy = {}, {}, {}, {}, {}
    for i, piece in pieces.items():
        lo, hi = piece.quant
        ys, xs = np.divmod(pixels[i], w)
        fill = len(pixels[i]) / ((ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1))
        frame[i] = lo <= _FRAME_LOW_M and hi >= _TOP_MIN_HEIGHT_M and fill <= _FRAME_MAX_FILL \
            and piece.slab_share <= _FRAME_MAX_SLAB
        if i in colour_ids and not frame[i]:
            continue
        quant[i], slab_idx[i], slab_xy[i] = piece.quant, piece.slab_idx, piece.slab_xy
        slab_rc[i] = np.stack(np.divmod(slab_idx[i], w), 1)
    is_top = {i: q[1] - q[0] <= cfg.top_max_thickness_m and q[0] >= _TOP_MIN_HEIGHT_M and i not in colour_ids
              for i, q in quant.items()}
    z = P[..., 2]

    def far_frames(a: int, b: int) -> bool:
        if not _MEET_PX ** 2 < _d2(slab_rc[a], slab_rc[b]).min() <= _FAR_FRAMES_PX ** 2:
            return False
        if float(np.sqrt(_d2(slab_xy[a], slab_xy[b]).min())) > _FAR_FRAMES_M:
            return False
        return _gap_is_open(inst, a, b, slab_idx, z, valid)

    def slabs_meet(a: int, b: int) -> bool:
        d2 = _d2(slab_rc[a], slab_rc[b])
        if d2.min() > _MEET_PX ** 2:
            return False
        floor_d = np.sqrt(_d2(slab_xy[a], slab_xy[b]))
        if float(fast_median(floor_d.ravel()[np.argsort(d2.ravel())[:5]])) > _MEET_M:
            return False
        return d2.min() < 9 or _gap_is_open(inst, a, b, slab_idx, z, valid)

    pairs = set()
    ids = sorted(quant)
    for n_a, a in enumerate(ids):
        for b in ids[n_a + 1:]:
            if frame[a] and frame[b]:
                dh = abs(quant[a][1] - quant[b][1])
                if (dh <= _FRAMES_MAX_HEIGHT_DIFF_M and slabs_meet(a, b)) or \
                        (dh <= _FAR_FRAMES_HEIGHT_DIFF_M and far_frames(a, b)):
                    pairs.add((a, b))
                continue
            for t, f in ((a, b), (b, a)):
                if is_top[t] and frame[f] and slabs_meet(t, f) and \
                        quant[t][0] - _TOP_FRAME_MARGIN_M <= quant[f][1] <= quant[t][1] + _TOP_FRAME_MARGIN_M:
                    pairs.add((a, b))
                    break
    _join(sem, inst, classes, pixels, pairs)
    if lab is None:
        return
    flat = inst.ravel()
    kernel = np.ones((3, 3), np.uint8)
    for r in sorted({int(flat[pixels[i][0]]) for i in quant if frame[i]}):
        own = inst == r
        colour = fast_median(lab[own & valid] if np.count_nonzero(own & valid) >= 8 else lab[own], axis=0)
        edge = cv2.dilate(own.astype(np.uint8), kernel).astype(bool) & (inst == 0) & (sem == 0) & ~valid \
            & (norm3(lab - colour) < _EDGE_LAB_DELTA)
        inst[edge] = r
        sem[edge] = classes[r]


def _gap_is_open(inst: np.ndarray, a: int, b: int, slab_idx: dict[int, np.ndarray], z: np.ndarray,
                 valid: np.ndarray) -> bool:
    """Whether the straight image gap between the nearest top-slab pixels of ``a`` and ``b`` (3 to ``_GAP_MAX_PX``
    px long) holds nothing behind the line joining its two ends (see ``join_legs_and_tops``)."""
    h, w = inst.shape
    pa = np.stack(np.unravel_index(slab_idx[a], (h, w)), 1)
    pb = np.stack(np.unravel_index(slab_idx[b], (h, w)), 1)
    d2 = _d2(pa, pb)
    ia, ib = divmod(int(np.argmin(d2)), d2.shape[1])
    (ya, xa), (yb, xb) = pa[ia], pb[ib]
    n = int(max(abs(ya - yb), abs(xa - xb)))
    if n < 3 or n > _GAP_MAX_PX:
        return False
    t = np.linspace(0, 1, n + 1)[1:-1]
    yy = np.round(ya + (yb - ya) * t).astype(int)
    xx = np.round(xa + (xb - xa) * t).astype(int)
    z_line = z[ya, xa] + (z[yb, xb] - z[ya, xa]) * t
    other = (inst[yy, xx] != a) & (inst[yy, xx] != b)
    with_depth = valid[yy, xx]
    behind = with_depth & other & (z[yy, xx] > z_line + _GAP_SIGMAS * nguyen_sigma_m(np.maximum(z_line, 0.3)) + 0.03)
    return int(behind.sum()) <= _GAP_MAX_BEHIND * max(1, int(with_depth.sum()))
