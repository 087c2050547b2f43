"""Grouping stage of the ``geometric`` backend: which object pieces form one instance.

The object stage of :mod:`.geometric` cuts the object material (valid pixels not taken by floor, ceiling,
walls or support surfaces) into pieces at depth discontinuities and concave creases. This module

0. splits pieces whose front is two fronts one above the other, the upper one set back (``split_set_back_fronts``:
   a box stacked on a bigger box);
1. finds small horizontal up-facing planar patches in that material (``horizontal_patches``: a cabinet
   top, a shelf board, a box top, a chair seat), which the caller cuts out as pieces of their own;
2. pairs pieces that are fragments of one plane a few pixels apart (``coplanar_pairs``: a shelf's back
   seen between its boards, a desk top cut by a band of dropouts);
3. joins pieces at each patch or support surface (``join_at_patches``): what carries it (legs, a cabinet's
   front) and its rim (a backrest, a shelf's sides) join it, what stands on it (a monitor, books) stays
   apart; returns the union-find root of every piece id;
4. joins upright poles left without a piece to what they hold up (``join_poles``: a table's legs, whose depth
   is a sparse scatter, to its top);
5. joins finished instances stacked on one footprint (``join_stacked``: a bookshelf's compartments), and those seen
   through the frame of a taller one of their material (``join_nested``: compartments behind a shelf's front).

Frames and units: every array is at processing resolution, (h, w) per pixel, in the camera optical frame
(x right, y down, z forward), meters: ``P`` (h, w, 3) back-projected points, ``z`` (h, w) depth,
``height`` (h, w) = P . up (meters above the camera along ``up`` = -gravity, a (3,) unit vector in the
camera frame), ``pix_area`` (h, w) surface area seen by a pixel in m^2. Piece labels are (h, w) int32
ids (0 = none). Thresholds come from ``GeometricConfig`` (``patch_*``, ``coplanar_*``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from ..depth_confidence import nguyen_sigma_m
from .geometric_depth import floor_basis

if TYPE_CHECKING:  # only for annotations: geometric.py imports this module
    from .geometric import GeometricConfig

__all__ = ["chromaticity", "colour_part_apart", "component_crops", "horizontal_patches", "coplanar_pairs",
           "fast_median", "foreshortened_tops", "join_at_patches", "join_fine_patches", "join_nested", "join_poles",
           "join_stacked", "join_label_pairs", "label_pixels", "is_grey", "percentiles", "rectangle_coordinates",
           "split_patch_carriers", "split_set_back_fronts", "stats_box", "touching_labels"]


def _quantile(a: np.ndarray, q: float) -> float:
    """The ``q`` quantile (0-1, nearest rank) of a 1D array; np.partition, far cheaper than np.percentile
    on the small arrays of the per-piece loops. Shape: (n,) with n >= 1 -> float."""
    k = min(len(a) - 1, max(0, int(q * (len(a) - 1) + 0.5)))
    return float(np.partition(a, k)[k])


def fast_median(x: np.ndarray, axis: int | None = None):
    """``np.median(x)`` or ``np.median(x, axis=0)``, bit for bit, for a float array (1-D, or 2-D with ``axis=0``), at
    a fraction of its cost on the small arrays of the per-piece loops (np.median's checks and dispatch take ~40 us
    a call). As numpy: the middle value, or the mean of the middle two in x's dtype; NaN if x holds one; NaN for an
    empty array. Other inputs go to np.median. Shape: (n,) -> scalar of x's dtype; (n, k), axis=0 -> (k,)."""
    if x.dtype.kind != "f" or not (x.ndim == 1 and axis is None or x.ndim == 2 and axis == 0) or len(x) == 0:
        return np.median(x, axis=axis)
    n = len(x)
    h = n // 2
    part = np.partition(x, [h - 1, h, n - 1] if n % 2 == 0 else [h, n - 1], axis=0)
    mid = part[h] if n % 2 else (part[h - 1] + part[h]) / x.dtype.type(2)
    last = part[n - 1]
    if x.ndim == 1:
        return x.dtype.type(np.nan) if np.isnan(last) else mid
    return np.where(np.isnan(last), x.dtype.type(np.nan), mid)


def percentiles(x: np.ndarray, q: tuple[float, ...]) -> np.ndarray:
    """``np.percentile(x, list(q))`` (linear interpolation), bit for bit, for a 1-D float array without NaNs, at a
    fraction of its cost on the small arrays of the per-piece loops (np.percentile's checks and dispatch take
    ~30 us a call). Shape: (n,) float, n >= 1 -> (len(q),) float64."""
    n = len(x)
    virtual = (n - 1) * (np.asarray(q, np.float64) / 100.0)
    below = np.floor(virtual)
    top = virtual >= n - 1                       # numpy takes the last value there (and its gamma is moot)
    lo = np.where(top, n - 1, below).astype(np.intp)
    hi = np.where(top, n - 1, below + 1).astype(np.intp)
    part = np.partition(x, np.unique(np.concatenate([lo, hi])))
    a, b = part[lo], part[hi]
    t = virtual - np.where(top, -1.0, below)
    diff = b - a                                 # in x's dtype, as numpy's interpolation does
    return np.where(t >= 0.5, b - diff * (1.0 - t), a + diff * t)


def _d2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared distances between every point of ``a`` and every point of ``b``. Shape: (n, k), (m, k) -> (n, m)."""
    return ((a[:, None] - b[None]) ** 2).sum(-1)


def horizontal_patches(cfg: GeometricConfig, obj: np.ndarray, height: np.ndarray, up_facing: np.ndarray,
                       nok: np.ndarray, z: np.ndarray, pix_area: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """Small horizontal up-facing planar patches of the object material, as (region, height) pairs.

    Up-facing pixels with a reliable normal, split where neighbours differ in height by more than
    ``patch_step_sigmas`` depth-noise stds (``nguyen_sigma_m``, so a 3 cm book on a near cabinet is
    its own patch, while noise on a far one is not a step), connected (4-neighbours), closed over
    speckle; a patch needs ``patch_min_area_m2`` of surface and a height spread (10-90 %) within the
    same noise. Shape: (h, w) masks / float arrays -> list of ((h, w) bool, meters).
    """
    cand = obj & up_facing & nok & (z < cfg.support_max_depth_m)
    if cand.sum() < 10:
        return []
    sigma = nguyen_sigma_m(np.maximum(z, 0.3))
    step = cfg.patch_step_sigmas * sigma + 0.005
    st = np.minimum(step[:, 1:], step[:, :-1])
    jx = np.abs(np.diff(height, axis=1)) > st
    st = np.minimum(step[1:], step[:-1])
    jy = np.abs(np.diff(height, axis=0)) > st
    core = cand.copy()
    core[:, 1:] &= ~jx
    core[1:] &= ~jy
    k, lab, stats, _ = cv2.connectedComponentsWithStats(core.astype(np.uint8), connectivity=4)
    if k <= 1:
        return []
    area = np.bincount(lab.ravel(), weights=pix_area.ravel(), minlength=k)
    out = []
    for j in np.flatnonzero(area >= cfg.patch_min_area_m2):
        if j == 0:
            continue
        box = stats_box(stats[j], 0)
        region_b = lab[box] == j
        hs = height[box][region_b]
        lo, h0, hi = percentiles(hs, (10, 50, 90))
        tol = 2.0 * cfg.patch_step_sigmas * float(fast_median(sigma[box][region_b])) + 0.01
        if hi - lo > tol:
            continue  # not one plane (a sloped or curved up-facing surface)
        closed = cv2.morphologyEx(region_b.astype(np.uint8), cv2.MORPH_CLOSE,
                                  np.ones((3, 3), np.uint8)).astype(bool)
        closed &= obj[box] & (np.abs(height[box] - h0) < tol)
        region = np.zeros(obj.shape, bool)
        region[box] = closed
        out.append((region, float(h0)))
    return out


def foreshortened_tops(cfg: GeometricConfig, obj: np.ndarray, height: np.ndarray, z: np.ndarray,
                       patches: list[tuple[np.ndarray, float]], coarse_up: np.ndarray, fine_up: np.ndarray,
                       pix_area: np.ndarray, fine_area: np.ndarray, fy: float) -> list[tuple[np.ndarray, float]]:
    """The tops of solid blocks (a box) that ``horizontal_patches`` misses because they are seen foreshortened, a
    few rows tall: the coarse normals (5x5 blurred, 3x wider stencil beyond ``far_normal_depth_m``) smear them into
    the front below. Up-facing pixels of 1-px normals (``fine_up``) join the coarse ones (``coarse_up``: up-facing
    with a valid normal) and the patches are looked for again, those pixels' surface counted as ``fine_area``; a
    patch found so, not mostly (> 50 %) inside one of ``patches``, is kept when a solid block lies under it: under
    at least ``fine_patch_solid_fraction`` of its columns, the pixel ``fine_patch_below_px`` rows (at 320 px width)
    or ``fine_patch_block_min_m`` (at its depth, ``fy`` the focal length in pixels), whichever is more, below its
    lowest pixel is object, within 5 % of z + 2 cm of that pixel's depth and at least 3 cm lower (a box's front
    goes on down; a table top, a seat, a shelf board or a side table's apron end in a depth step).
    Shape: (h, w) bool, (h, w) m x2, list of ((h, w) bool, m), (h, w) bool x2, (h, w) m^2 x2 -> new patches."""
    extra = fine_up & ~coarse_up & obj
    if np.count_nonzero(extra) < 10:
        return []
    up_facing = coarse_up | fine_up
    found = horizontal_patches(cfg, obj, height, up_facing, up_facing, z, np.where(extra, fine_area, pix_area))
    if not found:
        return []
    known = np.zeros(obj.shape, bool)
    for region, _ in patches:
        known |= region
    h, w = obj.shape
    below = max(1, round(cfg.fine_patch_below_px * w / 320.0))
    out = []
    for region, h_p in found:
        if np.count_nonzero(region & known) > 0.5 * np.count_nonzero(region):
            continue
        ys, xs = np.nonzero(region)
        lowest = np.full(w, -1, np.int64)
        np.maximum.at(lowest, xs, ys)                   # the lowest row of the patch in each of its columns
        cols = np.flatnonzero(lowest >= 0)
        edge = lowest[cols]
        z_edge = z[edge, cols]
        rows = np.maximum(below, np.round(cfg.fine_patch_block_min_m * fy / np.maximum(z_edge, 0.1)).astype(np.int64))
        under = np.minimum(edge + rows, h - 1)
        z_under = z[under, cols]
        solid = obj[under, cols] & (z_under > 0) & (np.abs(z_under - z_edge) < 0.05 * z_edge + 0.02) & \
            (height[edge, cols] - height[under, cols] > 0.03)
        if solid.mean() >= cfg.fine_patch_solid_fraction:
            out.append((region, h_p))
    return out


def coplanar_pairs(cfg: GeometricConfig, lab_ids: np.ndarray, P: np.ndarray, skip: set[int]) -> list[tuple[int, int]]:
    """Pairs of pieces that are fragments of one plane: both planar (thickness, the smallest principal
    std of their points, within 2 depth-noise stds + 5 mm, and at least 5 cm across), normals within
    ``coplanar_max_deg``, each one's centroid on the other's plane within 3 noise stds + 1 cm, and
    within ``coplanar_gap_px`` pixels of each other in the image (a shelf's back seen between its boards,
    a desk top cut by a band of dropouts). ``skip``: ids left out (horizontal patches, supports).
    Shape: (h, w) int32 labels, (h, w, 3) points -> list of (id, id)."""
    sel = lab_ids > 0
    if not sel.any():
        return []
    L = lab_ids[sel].astype(np.int64)
    X = P[sel].astype(np.float64)
    K = int(L.max()) + 1
    cnt = np.bincount(L, minlength=K).astype(np.float64)
    ok = cnt >= 20

    cntc = np.maximum(cnt, 1.0)
    mean = np.stack([np.bincount(L, X[:, i], minlength=K) / cntc for i in range(3)], axis=1)
    cov = np.empty((K, 3, 3))
    for i in range(3):
        for j in range(i, 3):
            cov[:, i, j] = cov[:, j, i] = \
                np.bincount(L, X[:, i] * X[:, j], minlength=K) / cntc - mean[:, i] * mean[:, j]
    cov[~ok] = np.eye(3)
    evals, evecs = np.linalg.eigh(cov)
    normal = evecs[:, :, 0]
    sd = np.sqrt(np.maximum(evals, 0.0))
    sigma = nguyen_sigma_m(np.maximum(mean[:, 2], 0.3)).astype(np.float64)
    planar = ok & (sd[:, 0] < 2.0 * sigma + 0.005) & (sd[:, 2] > 0.05 / 4)
    for i in skip:
        if i < K:
            planar[i] = False
    r = 2 * cfg.coplanar_gap_px + 1
    kernel = np.ones((r, r), np.uint8)
    big = np.float32(1e9)
    labf = lab_ids.astype(np.float32)
    mx = cv2.dilate(labf, kernel)
    mn = cv2.erode(np.where(lab_ids > 0, labf, big), kernel)
    m = (mx > 0) & (mn < big) & (mx != mn)
    if not m.any():
        return []
    key = np.unique(mn[m].astype(np.int64) * K + mx[m].astype(np.int64))   # (min id, max id) pairs
    pairs = np.stack([key // K, key % K], axis=1)
    out = []
    cos_max = np.cos(np.deg2rad(cfg.coplanar_max_deg))
    for a, b in pairs:
        if not (planar[a] and planar[b]):
            continue
        if abs(float(normal[a] @ normal[b])) < cos_max:
            continue
        tol = 3.0 * max(sigma[a], sigma[b]) + 0.01
        if abs(float(normal[a] @ (mean[b] - mean[a]))) < tol and abs(float(normal[b] @ (mean[a] - mean[b]))) < tol:
            out.append((int(a), int(b)))
    return out


_CARRIED_SIDE_M = (0.12, 1.0)   # a box's top patch: its footprint rectangle's sides within this range, meters
_CARRIER_INSIDE = (0.05, 0.5)   # a piece with this share of its points inside that rectangle may carry two things
_CARRIER_REST_M = 0.12          # its points farther outside than this are the lower thing ...
_CARRIER_STEP_M = 0.05          # ... whose top (90 % of heights) lies at least this below the patch;
_CARRIED_NEAR_M = 0.08          # its points this close to the rectangle and above that top carry the patch
_CARRIER_MIN_PX = 40            # each of the three parts has at least this many pixels,
_CARRIED_MIN_SHARE = 0.1        # and the upper one at least this share of the piece


def split_patch_carriers(cfg: GeometricConfig, lab_ids: np.ndarray, items: list[tuple[int, np.ndarray, float, bool]],
                         P: np.ndarray, height: np.ndarray, up: np.ndarray, z: np.ndarray, n_ids: int) -> int:
    """Split a piece that carries a small patch and something lower beside it, in place in ``lab_ids``: a box
    standing flush on a bigger one is one piece (their fronts and sides meet without a step) under the upper box's
    top, but lies only partly under that top, so ``join_at_patches`` would join neither part to it.

    For each small patch (not a support surface; footprint rectangle sides within ``_CARRIED_SIDE_M``: a box's top,
    not a sofa's back), highest first, and each piece touching it that lies below it (``patch_below_fraction``)
    with ``_CARRIER_INSIDE`` of its points inside the rectangle grown by ``patch_footprint_margin_m``: when its
    points more than ``_CARRIER_REST_M`` outside the rectangle top out (90 %) at least ``_CARRIER_STEP_M`` below the
    patch, its points within ``_CARRIED_NEAR_M`` of the rectangle and above that top become a piece of their own
    (the upper box's sides; ``join_at_patches`` then joins them to the patch). Returns the next free id.
    Shape: as ``join_at_patches``."""
    if not items:
        return n_ids
    E = floor_basis(up)
    pixels = dict(label_pixels(lab_ids))
    Pf, Hf, flat = P.reshape(-1, 3), height.ravel(), lab_ids.reshape(-1)
    patch_ids = {i for i, _, _, _ in items}
    new = max(n_ids, int(lab_ids.max()) + 1)
    for pid, _, h_p, big in sorted(items, key=lambda t: -t[2]):
        idx_p = pixels.get(pid)
        if big or idx_p is None or len(idx_p) < 5:
            continue
        sub = idx_p[::max(1, len(idx_p) // 3000)]
        rect = cv2.minAreaRect((Pf[sub] @ E).astype(np.float32))
        if not _CARRIED_SIDE_M[0] <= min(rect[1]) <= max(rect[1]) <= _CARRIED_SIDE_M[1]:
            continue
        margin = max(0.02, cfg.patch_step_sigmas * float(nguyen_sigma_m(_quantile(z.ravel()[sub], 0.5))))
        for o in touching_labels(lab_ids, pid, idx_p):
            if o in patch_ids or o not in pixels:
                continue
            idx_o = pixels[o]
            ho = Hf[idx_o]
            if np.mean(ho < h_p + margin) < cfg.patch_below_fraction:
                continue
            loc, half = rectangle_coordinates(rect, Pf[idx_o] @ E)
            outside_by = np.max(np.abs(loc) - half, axis=1)
            inside = float(np.mean(outside_by <= cfg.patch_footprint_margin_m))
            if not _CARRIER_INSIDE[0] <= inside < _CARRIER_INSIDE[1]:
                continue
            rest = outside_by > _CARRIER_REST_M
            if np.count_nonzero(rest) < _CARRIER_MIN_PX:
                continue
            top_rest = _quantile(ho[rest], 0.9)
            if top_rest > h_p - _CARRIER_STEP_M:
                continue
            upper = (outside_by <= _CARRIED_NEAR_M) & (ho > top_rest)
            n_up = int(np.count_nonzero(upper))
            if n_up < max(_CARRIER_MIN_PX, _CARRIED_MIN_SHARE * len(idx_o)) or len(idx_o) - n_up < _CARRIER_MIN_PX:
                continue
            flat[idx_o[upper]] = new
            pixels[new], pixels[o] = idx_o[upper], idx_o[~upper]
            new += 1
    return new


def join_at_patches(cfg: GeometricConfig, lab_ids: np.ndarray, items: list[tuple[int, np.ndarray, float, bool]],
                    P: np.ndarray, height: np.ndarray, up: np.ndarray, z: np.ndarray, n_ids: int,
                    pairs: list[tuple[int, int]] = ()) -> np.ndarray:
    """Decide which pieces next to a horizontal patch belong to the same object as the patch.

    Each patch (support surfaces and small patches, highest first) is modelled by the minimum-area
    rectangle of its footprint (its points dropped onto the floor plane; furniture tops are
    rectangles). For every piece touching it in the image:

    * mostly below it (``patch_below_fraction`` of its points not higher than the patch plus the noise
      margin) with its footprint mostly inside the rectangle grown by ``patch_footprint_margin_m``: it
      carries the patch (legs, a cabinet's front, a box's sides) -> joined;
    * otherwise its base (its lowest quarter of points) must stand inside the grown rectangle, and it
      is part of the rim when that base runs along at least ``patch_rim_coverage`` of the nearest side
      (a chair's backrest, a sofa's arms and back, a shelf's back and sides, a bed's headboard) ->
      joined; a shorter base stands *on* the patch (a monitor on a desk, books on a shelf board, a
      plant on a side table) -> kept apart, like anything not touching it.

    Returns the union-find root per id. Shape: (h, w) int32 labels -> (n_ids,) int64.
    """
    groups = _UnionFind(max(n_ids, int(lab_ids.max()) + 1))
    find = groups.find
    for a, b in pairs:     # fragments of one plane (``coplanar_pairs``) are one piece first
        groups.join(a, b)
    if not items:
        return groups.roots()
    E = floor_basis(up)                                        # (3, 2) floor-plane basis
    grow = cfg.patch_footprint_margin_m
    pixels = dict(label_pixels(lab_ids))    # every label's pixels from one sort, not a scan per neighbour
    Pf = P.reshape(-1, 3)
    Hf = height.ravel()
    for pid, _, h_p, _ in sorted(items, key=lambda t: -t[2]):
        idx_p = pixels.get(pid)                          # the patch's pixels (grown like every piece)
        if idx_p is None or len(idx_p) < 5:
            continue
        sub = idx_p[::max(1, len(idx_p) // 3000)]        # the rectangle of 3000 points is the same
        rect = cv2.minAreaRect((Pf[sub] @ E).astype(np.float32))
        zp = _quantile(z.ravel()[sub], 0.5)
        margin = max(0.02, cfg.patch_step_sigmas * float(nguyen_sigma_m(zp)))
        for o in touching_labels(lab_ids, pid, idx_p):
            if find(o) == find(pid):
                continue
            idx_o = pixels[o][::max(1, len(pixels[o]) // 2000)]   # fractions: 2000 points do
            ho = Hf[idx_o]
            loc, half = rectangle_coordinates(rect, Pf[idx_o] @ E)
            inside = np.all(np.abs(loc) <= half + grow, axis=1)
            base = ho <= _quantile(ho, 0.25)
            if np.mean(ho < h_p + margin) >= cfg.patch_below_fraction:
                join = float(np.mean(inside)) >= 0.5
            elif _quantile(ho[base], 0.5) < h_p - margin:
                # it reaches down past the patch, so it does not stand on it: a part that runs through
                # the patch's level (a chair's legs and backrest in one piece, a sofa's arm)
                join = float(np.mean(inside)) >= 0.5
            else:
                lb = loc[base]
                if len(lb) < 3 or np.mean(inside[base]) < 0.5:
                    continue
                # nearest side of the rectangle to the base's centre, and how much of it the base covers
                c = np.array([_quantile(lb[:, 0], 0.5), _quantile(lb[:, 1], 0.5)], np.float32)
                gap = half - np.abs(c)                  # distance to the two sides along each axis
                ax = int(np.argmin(gap))                # the base lies along a side normal to this axis
                along = 1 - ax
                span = _quantile(lb[:, along], 0.95) - _quantile(lb[:, along], 0.05)
                join = gap[ax] < grow + 0.02 and span >= cfg.patch_rim_coverage * 2 * half[along]
            if join:
                groups.join(o, pid)
    return groups.roots()


def join_fine_patches(cfg: GeometricConfig, lab_ids: np.ndarray, fine: list[tuple[int, np.ndarray, float, bool]],
                      root: np.ndarray, P: np.ndarray, height: np.ndarray, up: np.ndarray,
                      z: np.ndarray) -> np.ndarray:
    """``join_at_patches`` for the patches of ``foreshortened_tops`` (highest first), on its roots ``root`` (changed
    in place and returned): such a patch is a box's top, so only what carries it joins it (a piece touching it with
    ``patch_below_fraction`` of its points not above it and half of them inside its footprint rectangle grown by
    ``patch_footprint_margin_m``), not a rim nor a piece running through its level; a patch nothing joins goes to the
    piece it borders most (it is part of something, not an object of its own).
    Shape: (h, w) int32 labels, (n_ids,) roots, (h, w, 3), (h, w) m, (3,), (h, w) m -> (n_ids,) roots."""
    if not fine:
        return root
    E = floor_basis(up)
    Pf, Hf, flat = P.reshape(-1, 3), height.ravel(), lab_ids.ravel()
    pixels = dict(label_pixels(lab_ids))
    for pid, _, h_p, _ in sorted(fine, key=lambda t: -t[2]):
        idx_p = pixels.get(pid)
        if idx_p is None or len(idx_p) < 5:
            continue
        rect = cv2.minAreaRect((Pf[idx_p] @ E).astype(np.float32))
        margin = max(0.02, cfg.patch_step_sigmas * float(nguyen_sigma_m(float(fast_median(z.ravel()[idx_p])))))
        joined = False
        for o in touching_labels(lab_ids, pid, idx_p):
            if root[o] == root[pid]:
                joined = True
                continue
            idx_o = pixels[o]
            if np.mean(Hf[idx_o] < h_p + margin) >= cfg.patch_below_fraction:
                loc, half = rectangle_coordinates(rect, Pf[idx_o] @ E)
                if np.mean(np.all(np.abs(loc) <= half + cfg.patch_footprint_margin_m, axis=1)) >= 0.5:
                    root[root == root[o]] = root[pid]
                    joined = True
        if not joined:
            mine = (flat == pid).reshape(lab_ids.shape)
            ring = cv2.dilate(mine.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~mine & (lab_ids > 0)
            if ring.any():
                labels, counts = np.unique(lab_ids[ring], return_counts=True)
                root[root == root[pid]] = root[labels[np.argmax(counts)]]
    return root


def rectangle_coordinates(rect, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Floor-plane points ``xy`` in the frame of a rotated rectangle ``rect`` (``cv2.minAreaRect``'s ((cx, cy),
    (w, h), degrees)): coordinates along its two axes from its centre, and its half sides along them (a point is
    inside when both coordinates are within them). Shape: (n, 2) float32 -> (n, 2), (2,)."""
    (cx, cy), (rw, rh), ang = rect
    a = np.deg2rad(ang)
    axes = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]], np.float32)  # rows: the rectangle's axes
    return (xy - np.array([cx, cy], np.float32)) @ axes.T, np.array([rw, rh], np.float32) / 2


def touching_labels(labels: np.ndarray, label: int, idx: np.ndarray, radius_px: int = 2,
                    min_contact_px: int = 1) -> list[int]:
    """The labels other than ``label`` and 0 within ``radius_px`` of its pixels ``idx`` (flat indices into
    ``labels``) on at least ``min_contact_px`` pixels of that ring, ascending. Shape: (h, w) int labels, (n,) int64."""
    ys, xs = np.divmod(idx, labels.shape[1])
    r = radius_px
    crop = labels[max(0, ys.min() - r):ys.max() + r + 1, max(0, xs.min() - r):xs.max() + r + 1]
    own = crop == label
    ring = cv2.dilate(own.astype(np.uint8), np.ones((2 * r + 1, 2 * r + 1), np.uint8)).astype(bool) & ~own
    ids, counts = np.unique(crop[ring], return_counts=True)
    return [int(j) for j, c in zip(ids, counts) if j != 0 and c >= min_contact_px]


class _UnionFind:
    """Disjoint sets of the ids 0 .. n - 1 (path halving)."""

    def __init__(self, n: int) -> None:
        self.parent = np.arange(n, dtype=np.int64)

    def find(self, a: int) -> int:
        parent = self.parent
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = int(parent[a])
        return a

    def join(self, a: int, into: int) -> None:
        """Put ``a``'s set into ``into``'s: the root of ``into``'s stays the root."""
        self.parent[self.find(a)] = self.find(into)

    def roots(self) -> np.ndarray:
        """The root of every id. Shape: (n,) int64."""
        for i in range(len(self.parent)):
            self.parent[i] = self.find(i)
        return self.parent


def join_label_pairs(labels: np.ndarray, pixels: dict[int, np.ndarray], pairs: list[tuple[int, int]]) -> None:
    """Join the labels of each pair of ids, transitively, in place: each group takes the label of one of its ids.
    ``pixels``: every id that may be joined -> the flat indices of its pixels in ``labels``."""
    if not pairs:
        return
    groups = _UnionFind(max(pixels) + 1)
    for i, j in pairs:
        groups.join(j, i)
    for i, idx in pixels.items():
        r = groups.find(i)
        if r != i:
            np.put(labels, idx, r)           # flat indices, in place whatever the memory layout


def component_crops(mask: np.ndarray, min_px: int, margin_px: int):
    """The connected parts (8-neighbours) of ``mask`` with at least ``min_px`` pixels, each as (box, part): the
    slices of its bounding box grown by ``margin_px`` (room for a ring around it) and its (bool) mask in them.
    Shape: (h, w) bool."""
    _, lab, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    for j in np.flatnonzero(stats[:, cv2.CC_STAT_AREA] >= min_px):
        if j == 0:
            continue
        box = stats_box(stats[j], margin_px)
        yield box, lab[box] == j


def stats_box(stats_row: np.ndarray, margin_px: int) -> tuple[slice, slice]:
    """The bounding box of a connected component (its row of cv2.connectedComponentsWithStats' stats) grown by
    ``margin_px`` (slices clip at the image's far end, the near end is clipped here)."""
    x, y, bw, bh = (int(v) for v in stats_row[:4])
    return slice(max(0, y - margin_px), y + bh + margin_px), slice(max(0, x - margin_px), x + bw + margin_px)


def label_pixels(labels: np.ndarray):
    """Every label of ``labels`` with the flat (raster) indices of its pixels, from one sort instead of a
    full-image comparison per label: yields (label, (n,) int64 indices), labels ascending, 0 included.
    Shape: (h, w) int labels."""
    flat = labels.ravel()
    key = flat
    if flat.dtype.itemsize > 2 and len(flat) and flat.min() >= 0 and flat.max() <= np.iinfo(np.uint16).max:
        key = flat.astype(np.uint16)                # numpy's stable sort is a radix sort for 16-bit keys: ~4x faster
    order = np.argsort(key, kind="stable")
    ordered = flat[order]
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    ids = ordered[starts]
    ends = np.append(starts[1:], len(flat))
    for i, a, b in zip(ids.tolist(), starts.tolist(), ends.tolist()):
        yield i, order[a:b]


def _group_points(labels: np.ndarray, skip: set[int], P: np.ndarray, valid: np.ndarray, min_px: int):
    """The groups of ``labels`` (not 0, not in ``skip``) with at least ``min_px`` pixels with depth: their flat pixel
    indices and up to ~2000 of their points. Shape: (h, w) labels, (h, w, 3), (h, w) bool -> two dicts by id."""
    Pf, vf = P.reshape(-1, 3), valid.ravel()
    pixels, points = {}, {}
    for i, idx in label_pixels(labels):
        if i == 0 or i in skip:
            continue
        X = Pf[idx[vf[idx]]]
        if len(X) < min_px:
            continue
        pixels[i], points[i] = idx, X[::max(1, len(X) // 2000)]
    return pixels, points


def join_stacked(cfg: GeometricConfig, labels: np.ndarray, skip: set[int], P: np.ndarray, valid: np.ndarray,
                 up: np.ndarray, min_px: int, apart: set[tuple[int, int]] = frozenset()) -> None:
    """Join groups stacked on the same footprint, in place in ``labels``: a bookshelf's compartments, which
    its boards cut apart, or a cabinet's drawers.

    For every group of at least ``min_px`` pixels with depth, the minimum-area rectangle of its points
    dropped onto the floor plane and its height range along ``up`` (5-95 %). Two groups that touch in the
    image (within 2 px) join when their rectangles overlap by at least ``stack_min_footprint_iou`` (IoU) and
    their height ranges overlap by less than ``stack_max_height_overlap`` of the shorter one: one stands on
    or hangs under the other within the same outline. Things standing on a support have a far smaller
    footprint than it (a monitor on a desk, a plant on a side table, books on a board), and a chair under a
    desk a far smaller one. ``skip``: ids left as they are (support surfaces); ``apart``: pairs of ids not joined
    to each other directly (two fronts split by ``split_set_back_fronts``).
    Shape: (h, w) int labels (0 = none), (h, w, 3) points, (h, w) bool, (3,) unit up vector."""
    E = floor_basis(up)
    up32 = up.astype(np.float32)
    pixels, points = _group_points(labels, skip, P, valid, min_px)
    boxes = {}
    for i, X in points.items():
        rect = cv2.minAreaRect(np.ascontiguousarray(X @ E, np.float32))
        lo, hi = percentiles(X @ up32, (5, 95))
        boxes[i] = (rect, float(lo), float(hi))
    if len(boxes) < 2:
        return
    pairs = []
    for i, (ri, lo_i, hi_i) in boxes.items():
        for j in touching_labels(labels, i, pixels[i]):
            if j <= i or j not in boxes or (i, j) in apart or (j, i) in apart:
                continue
            rj, lo_j, hi_j = boxes[j]
            area_i, area_j = ri[1][0] * ri[1][1], rj[1][0] * rj[1][1]
            shorter = min(hi_i - lo_i, hi_j - lo_j)
            if area_i <= 0 or area_j <= 0 or shorter <= 0:
                continue
            _, pts = cv2.rotatedRectangleIntersection(ri, rj)
            inter = cv2.contourArea(pts) if pts is not None and len(pts) >= 3 else 0.0
            iou = inter / (area_i + area_j - inter)
            height_overlap = max(0.0, min(hi_i, hi_j) - max(lo_i, lo_j)) / shorter
            if iou >= cfg.stack_min_footprint_iou and height_overlap < cfg.stack_max_height_overlap:
                pairs.append((i, j))
    join_label_pairs(labels, pixels, pairs)
    if cfg.stack_min_width_iou > 0 or cfg.side_panel_min_height_m > 0:
        _join_by_outline(cfg, labels, skip, P, valid, up, min_px, apart)


def _span(x: np.ndarray) -> np.ndarray:
    return percentiles(x, (5, 95))


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def _long_axis(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors along the long and the short side of the minimum-area rectangle of floor-plane points."""
    (_, _), (rw, rh), ang = cv2.minAreaRect(np.ascontiguousarray(xy))
    t = np.deg2rad(ang if rw >= rh else ang + 90.0)
    u = np.array([np.cos(t), np.sin(t)], np.float32)
    return u, np.array([-u[1], u[0]], np.float32)


_WIDTH_MIN_M = 0.3           # both pieces of a same-width stack are at least this wide along the pair's long axis
_DEPTH_OVERLAP = 0.5         # pieces overlap by this share of the shorter along the other axis (both joins)
_PANEL_MAX_THICK_M = 0.15    # a side panel is at most this thick along the wide piece's long axis ...
_PANEL_MIN_WIDE_M = 0.4      # ... standing at an end of a piece at least this wide,
_PANEL_END_IN_M = 0.12       # its centre from this inside that end to _PANEL_END_OUT_M outside it,
_PANEL_END_OUT_M = 0.5
_PANEL_HEIGHT_MARGIN_M = 0.15  # the wide piece's heights within the panel's, give or take this,
_PANEL_MAX_GAP_M = 0.12      # and their points this close on the floor plane


def _join_by_outline(cfg: GeometricConfig, labels: np.ndarray, skip: set[int], P: np.ndarray, valid: np.ndarray,
                     up: np.ndarray, min_px: int, apart: set[tuple[int, int]]) -> None:
    """The second pass of ``join_stacked``, in place: two more ways in which touching groups (as there) are one
    piece of furniture. Their footprints are compared along axes rather than as rectangles: the rectangles of a
    bookshelf's compartments turn and shift with depth noise and with which board tops are seen (IoU 0.3-0.5 for
    one width), and a side panel seen along its depth has a thin strip of a footprint beside the shelf's.

    * **same-width stack**: one above the other (height ranges overlapping by less than ``stack_max_height_overlap``
      of the shorter), both at least ``_WIDTH_MIN_M`` wide along the long axis of the footprint of both together,
      their extents along it (5-95 %) overlapping by IoU >= ``stack_min_width_iou`` and along the other axis by
      ``_DEPTH_OVERLAP`` of the shorter: compartments of one width (books and boxes in them are narrower);
    * **side panel**: a piece at least ``side_panel_min_height_m`` tall and at most ``_PANEL_MAX_THICK_M`` thick
      along the long axis of a piece at least ``_PANEL_MIN_WIDE_M`` wide, whose centre lies at one end of that
      piece (``_PANEL_END_IN_M`` inside to ``_PANEL_END_OUT_M`` outside), whose heights hold the wide piece's
      (give or take ``_PANEL_HEIGHT_MARGIN_M``), overlapping it by ``_DEPTH_OVERLAP`` along its short axis, with
      points within ``_PANEL_MAX_GAP_M`` of it on the floor plane: a shelf's or a cabinet's side panel, cut off by
      the depth step at its front edge.
    Shape: as ``join_stacked``."""
    E = floor_basis(up).astype(np.float32)
    up32 = up.astype(np.float32)
    pixels, points = _group_points(labels, skip, P, valid, min_px)
    pieces = {i: (X @ E, _span(X @ up32)) for i, X in points.items()}
    axes: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    pairs = []
    for a, (xa, ha) in pieces.items():
        for b in touching_labels(labels, a, pixels[a]):
            if b <= a or b not in pieces or (a, b) in apart or (b, a) in apart:
                continue
            xb, hb = pieces[b]
            if cfg.stack_min_width_iou > 0 and \
                    _overlap(ha, hb) < cfg.stack_max_height_overlap * min(ha[1] - ha[0], hb[1] - hb[0]):
                u, v = _long_axis(np.concatenate([xa, xb]))
                ua, ub, va, vb = _span(xa @ u), _span(xb @ u), _span(xa @ v), _span(xb @ v)
                if min(ua[1] - ua[0], ub[1] - ub[0]) >= _WIDTH_MIN_M \
                        and _overlap(ua, ub) >= cfg.stack_min_width_iou * (max(ua[1], ub[1]) - min(ua[0], ub[0])) \
                        and _overlap(va, vb) >= _DEPTH_OVERLAP * min(va[1] - va[0], vb[1] - vb[0]):
                    pairs.append((a, b))
                    continue
            if cfg.side_panel_min_height_m > 0 and (_is_side_panel(cfg, xa, ha, xb, hb, axes, b)
                                                     or _is_side_panel(cfg, xb, hb, xa, ha, axes, a)):
                pairs.append((a, b))
    join_label_pairs(labels, pixels, pairs)


def _is_side_panel(cfg: GeometricConfig, xp: np.ndarray, hp: np.ndarray, xq: np.ndarray, hq: np.ndarray,
                   axes: dict[int, tuple[np.ndarray, np.ndarray]], q: int) -> bool:
    """Whether piece p (floor-plane points ``xp``, height span ``hp``) is a side panel of piece ``q`` (see
    ``_join_by_outline``); ``axes``: the pieces' long and short axes, filled on demand."""
    if hp[1] - hp[0] < cfg.side_panel_min_height_m:
        return False
    if q not in axes:
        axes[q] = _long_axis(xq)
    u, v = axes[q]
    pu, qu, pv, qv = _span(xp @ u), _span(xq @ u), _span(xp @ v), _span(xq @ v)
    if qu[1] - qu[0] < _PANEL_MIN_WIDE_M or pu[1] - pu[0] > _PANEL_MAX_THICK_M:
        return False
    if hq[0] < hp[0] - _PANEL_HEIGHT_MARGIN_M or hq[1] > hp[1] + _PANEL_HEIGHT_MARGIN_M:
        return False
    centre = 0.5 * (pu[0] + pu[1])
    if not (qu[0] - _PANEL_END_OUT_M <= centre <= qu[0] + _PANEL_END_IN_M
            or qu[1] - _PANEL_END_IN_M <= centre <= qu[1] + _PANEL_END_OUT_M):
        return False
    sp, sq = xp[::max(1, len(xp) // 300)], xq[::max(1, len(xq) // 300)]
    if float(np.sqrt(_d2(sp, sq).min())) > _PANEL_MAX_GAP_M:
        return False
    return _overlap(pv, qv) >= _DEPTH_OVERLAP * min(pv[1] - pv[0], qv[1] - qv[0])


def colour_part_apart(cut_from: dict[int, int], ids) -> set[tuple[int, int]]:
    """Pairs (colour part, instance) not to be joined directly by step 9: a colour part joins only the instance it
    was cut from and that one's other parts (a box island cut out of a dark compartment was joined to the
    compartment above it by its footprint). ``cut_from``: colour part id -> the instance it was cut from
    (``split_colour``); ``ids``: every instance id."""
    return {(c, j) for c, parent in cut_from.items() for j in ids if j != c and cut_from.get(j, j) != parent}


_NEST_MIN_HEIGHT_M = 0.5      # the frame spans at least this along gravity (5-95 %) ...
_NEST_MAX_SHARE = 0.85        # ... and the piece inside at most this share of it,
_NEST_HEIGHT_MARGIN_M = 0.2   # within the frame's heights give or take this,
_NEST_ACROSS = 0.8            # this share of its width across the view inside the frame's,
_NEST_FRONT_TOL_M = 0.03      # its median no nearer than the frame's front (5 %) less this,
_NEST_MAX_BEHIND_M = 0.7      # and its back (95 %) at most this behind that front
_GREY_CHROMATICITY = 0.08     # chromaticity (L1) this close to grey's (1/3 each) says nothing of the material


def is_grey(chroma: np.ndarray) -> bool:
    """Whether a (median) chromaticity lies within ``_GREY_CHROMATICITY`` (L1) of grey's: white, grey and black share
    it, so it says nothing of a material there. Shape: (3,)."""
    return float(np.abs(chroma - 1.0 / 3.0).sum()) < _GREY_CHROMATICITY


def chromaticity(rgb: np.ndarray) -> np.ndarray:
    """(r, g, b) / (r + g + b), each channel + 1 (black is grey, not undefined): light and shade on one material
    scale all three alike and leave it. Shape: (..., 3) uint8 -> (..., 3) float32."""
    f = rgb.astype(np.float32) + 1.0
    return f / f.sum(axis=-1, keepdims=True)


def join_nested(cfg: GeometricConfig, labels: np.ndarray, skip: set[int], P: np.ndarray, valid: np.ndarray,
                up: np.ndarray, min_px: int, apart: set[tuple[int, int]], color_rgb: np.ndarray) -> None:
    """Join pieces seen through the frame of a taller piece of the same material, in place: a bookshelf's
    compartments behind its front frame or side panel (one tall piece; the compartments' footprints lie inside
    its own, so ``join_stacked``'s rectangles and height ranges do not tell them apart from a thing standing in it).

    For touching groups (as in ``join_stacked``, ``skip`` also holding the colour parts), the frame spans at
    least ``_NEST_MIN_HEIGHT_M`` along gravity and the inner piece at most ``_NEST_MAX_SHARE`` of that, within
    the frame's heights (``_NEST_HEIGHT_MARGIN_M``); across the view (on the floor plane, perpendicular to the
    direction from the camera to the frame) ``_NEST_ACROSS`` of the inner piece's width lies within the frame's;
    along it, the inner piece is not in front of the frame (a chair before a shelf) and ends at most
    ``_NEST_MAX_BEHIND_M`` behind its front; their median chromaticities (:func:`chromaticity`) differ by less
    than ``nested_max_chromaticity`` (L1) and the frame's is not grey (white, grey and black share one).
    Shape: as ``join_stacked``; ``color_rgb`` (h, w, 3) uint8."""
    E = floor_basis(up).astype(np.float32)
    up32 = up.astype(np.float32)
    pixels, points = _group_points(labels, skip, P, valid, min_px)
    rgb_f = color_rgb.reshape(-1, 3)
    medians: dict[int, np.ndarray] = {}

    def median_chroma(i: int) -> np.ndarray:      # only for the few pairs whose geometry fits
        if i not in medians:
            medians[i] = fast_median(chromaticity(rgb_f[pixels[i]]), axis=0)
        return medians[i]

    pieces = {i: (X @ E, _span(X @ up32)) for i, X in points.items()}
    pairs = []
    for a in pieces:
        for b in touching_labels(labels, a, pixels[a]):
            if b <= a or b not in pieces or (a, b) in apart or (b, a) in apart:
                continue
            for f, i in ((a, b), (b, a)):
                if _is_nested(pieces[f], pieces[i]):
                    cf = median_chroma(f)
                    if not is_grey(cf) and float(np.abs(cf - median_chroma(i)).sum()) < cfg.nested_max_chromaticity:
                        pairs.append((a, b))
                        break
    join_label_pairs(labels, pixels, pairs)


def _is_nested(frame: tuple[np.ndarray, np.ndarray], inner: tuple[np.ndarray, np.ndarray]) -> bool:
    """Whether piece ``inner`` is where a piece seen through piece ``frame`` would be (see ``join_nested``: all
    but the colour test); each piece: floor-plane points, height span."""
    (xf, hf), (xi, hi) = frame, inner
    if hf[1] - hf[0] < _NEST_MIN_HEIGHT_M or hi[1] - hi[0] > _NEST_MAX_SHARE * (hf[1] - hf[0]):
        return False
    if hi[0] < hf[0] - _NEST_HEIGHT_MARGIN_M or hi[1] > hf[1] + _NEST_HEIGHT_MARGIN_M:
        return False
    c = xf.mean(axis=0)
    ray = c / (np.linalg.norm(c) + 1e-9)
    across = np.array([-ray[1], ray[0]], np.float32)
    af, ai = _span(xf @ across), _span(xi @ across)
    if _overlap(af, ai) < _NEST_ACROSS * (ai[1] - ai[0]):
        return False
    front = np.percentile(xf @ ray, 5)
    inner_median, inner_back = percentiles(xi @ ray, (50, 95))
    return inner_median >= front - _NEST_FRONT_TOL_M and inner_back <= front + _NEST_MAX_BEHIND_M


def join_poles(cfg: GeometricConfig, labels: np.ndarray, material: np.ndarray, P: np.ndarray, height: np.ndarray,
               up: np.ndarray, floor_h: float, thin_ids: set[int]) -> np.ndarray:
    """Join upright poles to what they hold up: a table's legs to its top, a floor lamp's pole to its shade, a
    chair's legs to its seat. Returns new labels; ``labels`` is not changed.

    A leg a few centimetres thick loses most of its depth (all depth edge: the sensor drops edge pixels), so
    what is left of it is a scatter of pixels too sparse to form a piece, or a thin piece of its own
    (``thin_ids``). In 3D the scatter is still a pole: its points drop onto one spot of the floor plane while
    spanning a height range. The object ``material`` not in a piece (or in a thin piece) above the floor is
    binned on the floor plane in cells of ``pole_cell_m``; cells whose 3x3 neighbourhood holds at least
    ``pole_min_points`` points spanning at least ``pole_min_span_m`` in height are pole cells, and connected
    pole cells one pole, at most ``pole_max_width_m`` across (5-95 %; a shelf's side panel seen along its
    depth is wider). A pole joins the first instance within 3 px of it in the image whose lowest points (5 %)
    lie within ``pole_join_height_m`` of the pole's top (95 %) and whose floor footprint (minimum-area
    rectangle, grown by ``pole_footprint_margin_m``) holds the pole, and that has at least half as many pixels
    as the pole's points (else it is a crumb at the top of a curtain's edge): that instance's underside rests on it.
    Its pixels, and the thin pieces among them entirely, take that instance's label; a pole holding nothing
    stays as it was. Shape: (h, w) int labels (0 = none), (h, w) bool, (h, w, 3) points, (h, w) heights along
    ``up`` (m), (3,) unit vector; ``floor_h``: the floor's height on that axis."""
    cand = material & ((labels == 0) | np.isin(labels, list(thin_ids))) & (height > floor_h + 0.03)
    if np.count_nonzero(cand) < cfg.pole_min_points:
        return labels
    E = floor_basis(up)
    ys, xs = np.nonzero(cand)
    X = P[ys, xs] @ E                                   # (n, 2) floor-plane coordinates
    H = height[ys, xs] - floor_h                        # (n,) meters above the floor
    cell = np.floor(X / cfg.pole_cell_m).astype(np.int64)
    cell -= cell.min(axis=0)
    gw, gh = (int(v) + 1 for v in cell.max(axis=0))
    if gw * gh > 4_000_000:                              # points kilometres apart: no floor-plane grid
        return labels
    flat = cell[:, 0] * gh + cell[:, 1]
    count = np.bincount(flat, minlength=gw * gh).reshape(gw, gh).astype(np.float32)
    top = np.full(gw * gh, -np.inf, np.float32)
    bottom = np.full(gw * gh, np.inf, np.float32)
    np.maximum.at(top, flat, H)
    np.minimum.at(bottom, flat, H)
    k = np.ones((3, 3), np.uint8)
    count3 = cv2.filter2D(count, -1, k.astype(np.float32), borderType=cv2.BORDER_CONSTANT)
    top3 = cv2.dilate(top.reshape(gw, gh), k, borderType=cv2.BORDER_CONSTANT, borderValue=-np.inf)
    bottom3 = cv2.erode(bottom.reshape(gw, gh), k, borderType=cv2.BORDER_CONSTANT, borderValue=np.inf)
    pole_cells = (count > 0) & (count3 >= cfg.pole_min_points) & (top3 - bottom3 >= cfg.pole_min_span_m)
    n_poles, pole_of_cell = cv2.connectedComponents(pole_cells.astype(np.uint8), connectivity=8)
    if n_poles <= 1:
        return labels
    pole = pole_of_cell.ravel()[flat]                    # (n,) pole id of every candidate point (0: none)
    out = labels.copy()
    pixels = dict(label_pixels(labels))
    Pf, Hf = P.reshape(-1, 3), height.ravel() - floor_h
    underside: dict[int, tuple] = {}                      # instance -> (lowest height, rectangle), on demand
    h, w = labels.shape
    for j in np.flatnonzero(np.bincount(pole, minlength=n_poles)[1:] >= cfg.pole_min_points) + 1:
        sel = pole == j
        width = np.percentile(X[sel], 95, axis=0) - np.percentile(X[sel], 5, axis=0)
        if width.max() > cfg.pole_max_width_m:
            continue
        py, px = ys[sel], xs[sel]
        pole_top = _quantile(H[sel], 0.95)
        spot = fast_median(X[sel], axis=0)
        y0, y1, x0, x1 = max(0, py.min() - 3), min(h, py.max() + 4), max(0, px.min() - 3), min(w, px.max() + 4)
        mark = np.zeros((y1 - y0, x1 - x0), np.uint8)
        mark[py - y0, px - x0] = 1
        near = cv2.dilate(mark, np.ones((7, 7), np.uint8)).astype(bool)
        crop = labels[y0:y1, x0:x1]
        for a in np.unique(crop[near & (crop > 0)]).tolist():
            if a in thin_ids or len(pixels[a]) < 0.5 * len(py):   # a crumb on a curtain's edge holds up nothing
                continue
            if a not in underside:
                idx = pixels[a]
                idx = idx[Pf[idx, 2] > 0]                  # an instance grown by colour has pixels without depth
                if len(idx) == 0:
                    continue
                sub = idx[::max(1, len(idx) // 2000)]
                rect = cv2.minAreaRect(np.ascontiguousarray(Pf[sub] @ E, np.float32))
                underside[a] = (_quantile(Hf[sub], 0.05), rect)
            lowest, rect = underside[a]
            if abs(lowest - pole_top) > cfg.pole_join_height_m:
                continue
            loc, half = rectangle_coordinates(rect, spot[None])
            if np.all(np.abs(loc) <= half + cfg.pole_footprint_margin_m):
                out[py, px] = a
                for t_id in np.unique(labels[py, px]).tolist():
                    if t_id in thin_ids:
                        np.put(out, pixels[t_id], a)
                break
    return out


def split_set_back_fronts(cfg: GeometricConfig, labels: np.ndarray, n_labels: int, P: np.ndarray,
                          normals: np.ndarray, normal_ok: np.ndarray, height: np.ndarray, up: np.ndarray,
                          min_px: int) -> tuple[np.ndarray, int, list[tuple[int, int]]]:
    """Split pieces whose front is two fronts one above the other, the upper one set back: a box stacked on a
    bigger box (the low box's top face shows between the two fronts, but their sides join them into one piece
    where the top face is too narrow to cut them). Returns new labels (ids 1.. as given, new ones from
    ``n_labels``) and their count + 1.

    In a piece, the pixels within 25 degrees of the mean normal of its sideways-facing pixels (normal within
    ``vertical_deg`` of horizontal, reliable; at least ``min_px`` of them) are its front; their distances from the
    camera along that normal, binned by 2 cm, have two peaks at least ``setback_min_step_m`` apart, each with
    ``setback_min_share`` of the front. When the two groups' heights (10-90 %) overlap by at most
    ``setback_max_height_overlap`` of the shorter and the upper group is the farther one by at most
    ``setback_max_step_m``, the piece is split halfway between them: what is above becomes a piece of its own.
    An upper front standing out (a shirt over the legs) is left, and so is a backrest far behind a seat's front (a
    sofa's, 50-60 cm). Also returns the (upper, lower) label pairs split, which ``join_stacked`` must not join
    again (their footprints often overlap as a bookshelf's compartments do).
    Shape: (h, w) int labels, (h, w, 3) points and normals, (h, w) bool, (h, w) heights along ``up`` (m), (3,)
    unit vector."""
    out = labels.copy()
    pairs: list[tuple[int, int]] = []
    flat_out = out.reshape(-1)
    Pf, nf, okf, Hf = P.reshape(-1, 3), normals.reshape(-1, 3), normal_ok.ravel(), height.ravel()
    up32 = up.astype(np.float32)
    vertical = okf & (np.abs(nf @ up32) < np.sin(np.deg2rad(cfg.vertical_deg)))
    bin_m = 0.02
    for i, idx in label_pixels(labels):
        if i == 0 or len(idx) < 2 * min_px:
            continue
        iv = idx[vertical[idx]]
        if len(iv) < min_px:
            continue
        normal = nf[iv].mean(axis=0)
        normal /= max(float(np.linalg.norm(normal)), 1e-9)
        front = iv[nf[iv] @ normal > np.cos(np.deg2rad(25.0))]
        if len(front) < min_px:
            continue
        dist = -(Pf[front] @ normal)                  # normals face the camera: P . n < 0
        bins = np.floor((dist - dist.min()) / bin_m).astype(np.int64)
        counts = np.convolve(np.bincount(bins), np.ones(3), mode="same")
        first = int(np.argmax(counts))
        reach = int(np.ceil(cfg.setback_min_step_m / bin_m))
        rest = counts.copy()
        rest[max(0, first - reach + 1):first + reach] = 0
        second = int(np.argmax(rest))
        if min(counts[first], rest[second]) < cfg.setback_min_share * len(front):
            continue
        # each peak's distance: the median of the points in its three bins (the smoothing can move it by one)
        d1 = float(fast_median(dist[np.abs(bins - first) <= 1]))
        d2 = float(fast_median(dist[np.abs(bins - second) <= 1]))
        half_step = 0.5 * abs(d2 - d1)
        h1 = Hf[front[np.abs(dist - d1) < half_step]]
        h2 = Hf[front[np.abs(dist - d2) < half_step]]
        if len(h1) == 0 or len(h2) == 0:
            continue
        (lo1, hi1), (lo2, hi2) = percentiles(h1, (10, 90)), percentiles(h2, (10, 90))
        overlap = max(0.0, min(hi1, hi2) - max(lo1, lo2)) / max(1e-3, min(hi1 - lo1, hi2 - lo2))
        if fast_median(h1) < fast_median(h2):       # 1: the upper group
            (d1, lo1, hi1), (d2, lo2, hi2) = (d2, lo2, hi2), (d1, lo1, hi1)
        if overlap > cfg.setback_max_height_overlap or not 0 < d1 - d2 <= cfg.setback_max_step_m:
            continue
        above = idx[Hf[idx] > 0.5 * (lo1 + hi2)]
        if min(len(above), len(idx) - len(above)) < min_px:
            continue
        flat_out[above] = n_labels
        pairs.append((n_labels, int(i)))
        n_labels += 1
    return out, n_labels, pairs
