"""Colour stage of the ``geometric`` backend: parts of distinct colour inside one instance.

Depth cannot part objects that stand side by side with no step between them: books in a row flush with
the shelf front are one flat block. Their colours usually differ, but cutting objects at every colour edge
shatters anything textured (a striped shirt, a patterned cover, the stripes printed on the books
themselves). This stage cuts only a specific pattern: inside one object instance, the saturated pixels
fall into at least two distinct hue modes, and at least two connected parts of different modes are
*upright strips* side by side: at least as tall as wide in the image, spanning ``strip_min_height_m`` to
``strip_max_height_m`` along gravity (so a flat pattern lying on a desk is none) and at most
``strip_max_width_m`` wide at its median depth: small upright things in a row, like books, binders, bottles.
A strip needs ``strip_saturated_fraction`` of its own pixels coloured (a grey surface with a few noisy
coloured pixels makes none), and a strip of another hue right beside it; more than three strips of just
two hues taking turns are a striped pattern and are not cut. Each strip becomes an instance of its
own; the rest of the piece keeps its id. Unsaturated pixels (white or grey stripes, shading) take the hue
mode of the nearest saturated pixel within 3 px, so a striped book is one strip, and pieces of one hue
(however textured in lightness) are never cut.

The same hue modes find **flat blobs** (``flat_blobs``): a book or a magazine lying on a table is as flat as
the table top, but of another colour; a compact part of a mode other than the instance's own, thin along
gravity and of book-to-poster size, becomes an instance of its own (:func:`_flat_blobs`).

Frames and units: arrays at processing resolution, (h, w); points in the camera optical frame in meters,
``up`` a unit vector in that frame, ``fx`` the focal length in pixels at that resolution. Hue is OpenCV's
0-179 scale (2 degrees a unit).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from .geometric_depth import floor_basis
from .geometric_grouping import label_pixels

if TYPE_CHECKING:  # only for annotations: geometric.py imports this module
    from .geometric import GeometricConfig

__all__ = ["split_colour"]

_HUE_BIN = 5            # hue histogram bin (OpenCV units, 10 degrees)
_MODE_SEPARATION = 4    # bins (40 degrees) between two hue modes
_MODE_RADIUS = 12       # a saturated pixel farther than this (24 degrees) from every mode takes none
_FILL_PX = 3.0          # unsaturated pixels take the mode of a saturated one at most this far
_VALUE_MIN = 60         # darker pixels' hue is noise (HSV value, 0-255)
_BESIDE_PX = 2          # a strip's neighbour in the row lies within this many pixels to its left or right


def _hue_modes(hue: np.ndarray, min_count: int) -> np.ndarray:
    """Centres (OpenCV hue units) of the distinct modes of a hue sample, strongest first: peaks of a
    circular 36-bin histogram (lightly smoothed) at least ``_MODE_SEPARATION`` bins apart with at least
    ``min_count`` pixels. Shape: (n,) uint8 -> (k,) float."""
    hist = np.bincount(hue.astype(np.int64) // _HUE_BIN, minlength=180 // _HUE_BIN).astype(np.float64)
    smooth = hist + 0.5 * (np.roll(hist, 1) + np.roll(hist, -1))
    peaks: list[int] = []
    n_bins = len(hist)
    for b in np.argsort(-smooth, kind="stable"):
        if smooth[b] < min_count:
            break
        if all(min(abs(int(b) - p), n_bins - abs(int(b) - p)) >= _MODE_SEPARATION for p in peaks):
            peaks.append(int(b))
    return np.array(peaks, np.float64) * _HUE_BIN + _HUE_BIN / 2.0


def _side_by_side(strips: list[tuple[int, np.ndarray]]) -> list[tuple[int, np.ndarray]]:
    """The strips that have a strip of another hue mode right beside them (within ``_BESIDE_PX`` pixels to
    the left or right, along at least half of the shorter one's rows): books in a row do, a person's head
    above the shirt, an arm in a sleeve or a plant's pot under its foliage do not.
    Empty when more than three of them share just two modes (stripes of two colours taking turns).
    Shape: list of (mode, (h, w) bool) -> the same, filtered."""
    if len({k for k, _ in strips}) < 2:
        return []
    kernel = np.ones((1, 2 * _BESIDE_PX + 1), np.uint8)
    beside = [cv2.dilate(part.astype(np.uint8), kernel).astype(bool) for _, part in strips]
    n_rows = [int(part.any(axis=1).sum()) for _, part in strips]

    def side_by_side(a: int, b: int) -> bool:
        # touching along at least half of the shorter one's rows: a plant's pot under its foliage touches
        # it in a few rows only
        rows = int((beside[a] & strips[b][1]).any(axis=1).sum())
        return rows >= 0.5 * min(n_rows[a], n_rows[b])

    keep = [strips[a] for a in range(len(strips))
            if any(strips[b][0] != strips[a][0] and side_by_side(a, b) for b in range(len(strips)))]
    if len({k for k, _ in keep}) == 2 and len(keep) > 3:
        return []    # two colours taking turns: a striped pattern (a cover's stripes), not a row of objects
    return keep


def _mode_map(hsv: np.ndarray, saturated: np.ndarray, region: np.ndarray,
              min_px: int) -> tuple[np.ndarray, np.ndarray, int] | None:
    """Hue-mode label of every pixel of ``region`` (1..k; 0 = none) in a crop: saturated pixels take their
    nearest mode within ``_MODE_RADIUS``, white / grey ones (a book's printed stripes) the mode of the nearest
    saturated pixel within ``_FILL_PX``. Returns (mode, which pixels are coloured themselves, k), or None when
    the region has fewer than two modes. Shape: (h, w, 3) uint8 HSV, (h, w) bool x2."""
    sat = saturated & region
    if sat.sum() < 2 * min_px:
        return None
    hue = hsv[..., 0][sat]
    modes = _hue_modes(hue, min_px)
    if len(modes) < 2:
        return None
    dh = np.abs(hue.astype(np.float32)[:, None] - modes.astype(np.float32))     # saturated pixels only
    dh = np.minimum(dh, 180.0 - dh)                          # hue is circular
    mode = np.zeros(region.shape, np.int64)
    mode[sat] = np.where(dh.min(axis=1) <= _MODE_RADIUS, np.argmin(dh, axis=1) + 1, 0)
    own = mode > 0
    if not own.any():
        return None
    dist, nearest = cv2.distanceTransformWithLabels((~own).astype(np.uint8), cv2.DIST_L2, 3,
                                                    labelType=cv2.DIST_LABEL_PIXEL)
    src = np.flatnonzero(own.ravel())
    mode = mode.ravel()[src[nearest.ravel() - 1]].reshape(mode.shape)
    return np.where(region & (dist <= _FILL_PX), mode, 0), own, len(modes)


def _parts(mode: np.ndarray, own: np.ndarray, k: int, min_px: int, min_own: float):
    """The connected parts (4-neighbours) of each hue mode with at least ``min_px`` pixels and ``min_own`` of
    them coloured themselves (else grey, with a few noisy coloured pixels): yields (mode, (h, w) bool,
    pixels, bounding-box height)."""
    for m in range(1, k + 1):
        n, lab, stats, _ = cv2.connectedComponentsWithStats((mode == m).astype(np.uint8), connectivity=4)
        if n <= 1:
            continue
        area = stats[:, cv2.CC_STAT_AREA]
        coloured = np.bincount(lab.ravel(), weights=own.ravel(), minlength=n)   # every part in one pass
        for j in np.flatnonzero((area >= min_px) & (coloured >= min_own * area)):
            if j > 0:
                yield m, lab == j, int(area[j]), int(stats[j, cv2.CC_STAT_HEIGHT])


def _upright_strips(cfg: GeometricConfig, parts: list, zc: np.ndarray, hc: np.ndarray,
                    fx: float) -> list[tuple[int, np.ndarray]]:
    """The parts that are upright strips: at least as tall as wide in the image, at most
    ``strip_max_width_m`` wide at their median depth, spanning ``strip_min_height_m`` to
    ``strip_max_height_m`` along gravity. Shape: parts from :func:`_parts`, (h, w) depth and height in m."""
    strips = []
    for k, part, area, bh in parts:
        if bh < area / bh:                                    # at least as tall as wide in the image
            continue
        has_depth = part & (zc > 0)
        if has_depth.sum() < 0.5 * area:
            continue
        width_m = area / bh * float(np.median(zc[has_depth])) / fx    # mean width over its rows
        lo, hi = np.percentile(hc[has_depth], [5, 95])
        if width_m <= cfg.strip_max_width_m and \
                cfg.strip_min_height_m <= hi - lo <= cfg.strip_max_height_m:   # upright along gravity
            strips.append((k, part))
    return strips


def _flat_blobs(cfg: GeometricConfig, parts: list, dominant: int, n_region: int, Pc: np.ndarray, E: np.ndarray,
                up32: np.ndarray) -> list[np.ndarray]:
    """Flat blobs of distinct colour: a book or a magazine lying on a table, as flat as the table top (no depth
    step) but of another hue. A blob is a part of a hue mode other than ``dominant``, the instance's most
    common one (the table's own colour; else a cover across a table would leave a piece of the table as a blob
    beside it), thin along gravity (5-95 % of its points' heights within ``flat_max_thickness_m``),
    ``flat_min_area_m2`` to ``flat_max_area_m2`` on the floor plane (the minimum-area rectangle of its
    points), compact (``flat_min_solidity`` of its convex hull) and at most half of the instance.
    Shape: parts from :func:`_parts`, (h, w, 3) points (z = 0: no depth), (3, 2) floor basis, (3,) up."""
    blobs = []
    for k, part, area, _ in parts:
        if k == dominant or area > 0.5 * n_region:
            continue
        has_depth = part & (Pc[..., 2] > 0)
        if has_depth.sum() < 0.5 * area:
            continue
        X = Pc[has_depth]
        lo, hi = np.percentile(X @ up32, [5, 95])
        if hi - lo > cfg.flat_max_thickness_m:
            continue
        (_, (rw, rh), _) = cv2.minAreaRect(np.ascontiguousarray(X @ E, np.float32))
        if not cfg.flat_min_area_m2 <= rw * rh <= cfg.flat_max_area_m2:
            continue
        contours, _ = cv2.findContours(part.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        hull = cv2.convexHull(max(contours, key=cv2.contourArea))
        if area >= cfg.flat_min_solidity * max(cv2.contourArea(hull), 1.0):
            blobs.append(part)
    return blobs


def split_colour(cfg: GeometricConfig, inst: np.ndarray, strip_ids: set[int], flat_ids: set[int],
                 color_rgb: np.ndarray, P: np.ndarray, up: np.ndarray, fx: float, next_id: int,
                 min_px: int) -> tuple[int, list[int]]:
    """Cut colour parts out of instances of ``inst``, in place: upright strips side by side out of the
    instances ``strip_ids`` (see the module doc), flat blobs out of the instances ``flat_ids``
    (:func:`_flat_blobs`). Returns the next free id and the new ids. ``min_px``: ``cfg.strip_min_px`` at this
    resolution.

    Shape: (h, w) uint16 instance ids, (h, w, 3) uint8 RGB, (h, w, 3) float32 points in the camera frame
    (meters, z = 0 where there is no depth), (3,) unit up vector."""
    hsv = cv2.cvtColor(color_rgb, cv2.COLOR_RGB2HSV)
    saturated = (hsv[..., 1] >= cfg.strip_saturation_min) & (hsv[..., 2] >= _VALUE_MIN)
    E = floor_basis(up)
    up32 = up.astype(np.float32)
    w_img = inst.shape[1]
    new_ids: list[int] = []
    for iid, idx in label_pixels(inst):
        if (iid not in strip_ids and iid not in flat_ids) or len(idx) < 3 * min_px:
            continue
        ys, xs = np.divmod(idx, w_img)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        region = np.zeros((y1 - y0, x1 - x0), bool)
        region[ys - y0, xs - x0] = True
        modes = _mode_map(hsv[y0:y1, x0:x1], saturated[y0:y1, x0:x1], region, min_px)
        if modes is None:
            continue
        Pc = P[y0:y1, x0:x1]
        parts = list(_parts(*modes, min_px, cfg.strip_saturated_fraction))
        cut: list[np.ndarray] = []
        if iid in strip_ids:
            cut += [part for _, part in _side_by_side(_upright_strips(cfg, parts, Pc[..., 2], Pc @ up32, fx))]
        if iid in flat_ids:
            # parts do not overlap: the ones not cut as strips yet
            rest = [p for p in parts if not any(p[1] is c for c in cut)]
            dominant = int(np.argmax(np.bincount(modes[0].ravel(), minlength=modes[2] + 1)[1:])) + 1
            cut += _flat_blobs(cfg, rest, dominant, len(idx), Pc, E, up32)
        crop = inst[y0:y1, x0:x1]
        for part in cut:
            crop[part] = next_id
            new_ids.append(next_id)
            next_id += 1
    return next_id, new_ids
