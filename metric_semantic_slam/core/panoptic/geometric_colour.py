"""Colour stage of the ``geometric`` backend: upright parts of distinct colour inside one object piece.

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

Frames and units: arrays at processing resolution, (h, w); ``z`` depth in meters, ``fx`` the focal length in
pixels at that resolution. Hue is OpenCV's 0-179 scale (2 degrees a unit).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:  # only for annotations: geometric.py imports this module
    from .geometric import GeometricConfig

__all__ = ["split_colour_strips"]

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


def split_colour_strips(cfg: GeometricConfig, inst: np.ndarray, candidate_ids: list[int], color_rgb: np.ndarray,
                        z: np.ndarray, height: np.ndarray, fx: float, next_id: int,
                        min_px: int) -> tuple[int, list[int]]:
    """Cut the upright strips of distinct colour out of the instances ``candidate_ids`` of ``inst``, in
    place (see the module doc). Returns the next free id and the new ids. ``min_px``: ``cfg.strip_min_px``
    at this resolution.

    Shape: (h, w) uint16 instance ids, (h, w, 3) uint8 RGB, (h, w) float32 depth in meters (0 = none),
    (h, w) float32 height along up in meters."""
    hsv = cv2.cvtColor(color_rgb, cv2.COLOR_RGB2HSV)
    saturated = (hsv[..., 1] >= cfg.strip_saturation_min) & (hsv[..., 2] >= _VALUE_MIN)
    new_ids: list[int] = []
    for iid in candidate_ids:
        region = inst == iid
        if region.sum() < 3 * min_px:
            continue
        ys, xs = np.nonzero(region)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        r = region[y0:y1, x0:x1]
        sat = saturated[y0:y1, x0:x1] & r
        if sat.sum() < 2 * min_px:
            continue
        hue = hsv[y0:y1, x0:x1, 0].astype(np.float64)
        modes = _hue_modes(hsv[y0:y1, x0:x1, 0][sat], min_px)
        if len(modes) < 2:
            continue
        dh = np.abs(hue[..., None] - modes)
        dh = np.minimum(dh, 180.0 - dh)                      # hue is circular
        mode = np.where(sat & (dh.min(axis=-1) <= _MODE_RADIUS), np.argmin(dh, axis=-1) + 1, 0)
        # white / grey pixels (a book's printed stripes) take the mode of the nearest saturated pixel
        dist, nearest = cv2.distanceTransformWithLabels((mode == 0).astype(np.uint8), cv2.DIST_L2, 3,
                                                        labelType=cv2.DIST_LABEL_PIXEL)
        own = mode > 0
        if not own.any():
            continue
        src = np.flatnonzero(own.ravel())
        mode = mode.ravel()[src[nearest.ravel() - 1]].reshape(mode.shape)
        mode = np.where(r & (dist <= _FILL_PX), mode, 0)
        zc, hc = z[y0:y1, x0:x1], height[y0:y1, x0:x1]
        strips: list[tuple[int, np.ndarray]] = []
        for k in range(1, len(modes) + 1):
            n, lab, stats, _ = cv2.connectedComponentsWithStats((mode == k).astype(np.uint8), connectivity=4)
            for j in range(1, n):
                area, bh = int(stats[j, cv2.CC_STAT_AREA]), int(stats[j, cv2.CC_STAT_HEIGHT])
                if area < min_px or bh < area / bh:           # at least as tall as wide in the image
                    continue
                part = lab == j
                if own[part].mean() < cfg.strip_saturated_fraction:
                    continue                                  # grey, with a few noisy coloured pixels
                has_depth = part & (zc > 0)
                if has_depth.sum() < 0.5 * area:
                    continue
                width_m = area / bh * float(np.median(zc[has_depth])) / fx    # mean width over its rows
                lo, hi = np.percentile(hc[has_depth], [5, 95])
                if width_m <= cfg.strip_max_width_m and \
                        cfg.strip_min_height_m <= hi - lo <= cfg.strip_max_height_m:   # upright along gravity
                    strips.append((k, part))
        strips = _side_by_side(strips)
        if not strips:
            continue
        crop = inst[y0:y1, x0:x1]
        for _, part in strips:
            crop[part] = next_id
            new_ids.append(next_id)
            next_id += 1
    return next_id, new_ids
