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
(however textured in lightness) are never cut. For the strips alone, dark saturated pixels have a hue too (a dark
purple book), unless theirs is the hue of a dark material filling the instance's box (dark wood; :func:`_dark_hues`).

The same hue modes find **flat blobs** (``flat_blobs``): a book or a magazine lying on a table is as flat as
the table top, but of another colour; a compact part of a mode other than the instance's own, thin along
gravity and of book-to-poster size, becomes an instance of its own (:func:`_flat_blobs`); the commonest mode is the
instance's own only when it covers half of it. In an instance with a single hue mode (a red book on a grey cabinet)
any part of it may be a blob (:func:`_one_hue_blobs`).

Last, **islands** (``colour_islands``): what is left of an instance may still hold a compact part of one hue
that is an object of its own standing against it: a box in a bookshelf's compartment or against a sofa of
another colour, a plant's foliage on a dark side table. One hue mode is enough here (dark wood and grey
fabric have none). An island must be box-to-furniture sized and solid in the image, and two shapes are left
alone: a part with the rest of the instance all above it (a plant's pot under its foliage) and a part folded
onto the rest at convex creases (the lit front of a cabinet: one object's face, not a thing against it;
:func:`_islands`). Hue misses some: a cardboard box in a red-brown shelf is 14 degrees of hue from it, a dark
green plant on a dark table too dark for a hue. So, with the same tests, what is left of the instance also
yields **Lab islands**: parts farther from the instance's median colour in Lab, lightness at low weight (light and
shade change lightness more than a material's colour), large and thick enough not to be a lit edge strip
(:func:`_lab_island_candidates`). An island of either kind with the chromaticity of the instance around it is light
or shade on one material (a shelf's lit back), not an object (:func:`_same_material`). After the islands, **Lab
strips** (``lab_strips``, :func:`_lab_strips`): parts of another, more colourful Lab colour that are upright strips
(a red book in a dark red shelf, a yellow one in light wood: no second hue mode there).

Separately, after every other stage, **colour growth** (:func:`grow_by_colour`) lets object instances take the
unlabelled pixels of their own colour next to them: the legs of a dark wooden table lose their depth and are
left unlabelled by the depth stages, though they continue the top. What is still unlabelled then may hold
**unlabelled colour parts** (:func:`unlabelled_colour_parts`): books in a dark shelf whose depth drops out, a book
lying flat on a far desk (a band a few pixels tall, all depth edge) are parts of one hue there. Last, where one of
two touching instances has little depth, nothing says they are apart, and one colour says they are one
(:func:`join_depthless`: a far desk's top and its legs).

Frames and units: arrays at processing resolution, (h, w); points in the camera optical frame in meters,
``up`` a unit vector in that frame, ``fx`` the focal length in pixels at that resolution. Hue is OpenCV's
0-179 scale (2 degrees a unit).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from .geometric_depth import creases, floor_basis, norm3
from .geometric_grouping import (chromaticity, component_crops, fast_median, is_grey, join_label_pairs, label_pixels,
                                 percentiles, touching_labels)

if TYPE_CHECKING:  # only for annotations: geometric.py imports this module
    from .geometric import GeometricConfig

__all__ = ["FrameColour", "depth_margin", "grow_by_colour", "join_depthless", "lab_image", "pale_parts",
           "split_colour", "unlabelled_colour_parts"]

_HUE_BIN = 5            # hue histogram bin (OpenCV units, 10 degrees)
_MODE_SEPARATION = 4    # bins (40 degrees) between two hue modes (the strips: ``strip_mode_separation_bins``)
_MODE_RADIUS = 12       # a saturated pixel farther than this (24 degrees) from every mode takes none
_FILL_PX = 3.0          # unsaturated pixels take the mode of a saturated one at most this far
_VALUE_MIN = 60         # darker pixels' hue is noise (HSV value, 0-255)
_BESIDE_PX = 2          # a strip's neighbour in the row lies within this many pixels to its left or right
_VIVID_GAP = 4          # saturation split: "vivid" / "plain" pixels lie this far above / below the bound ...
_VIVID_VALLEY = 0.15    # ... and at most this fraction of the mode's pixels lie between
_RING_PX = 6            # an island's chromaticity is compared with its instance's pixels this close (at 320 px) ...
_RING_MIN_PX = 10       # ... when there are at least this many


def _hue_modes(hue: np.ndarray, min_count: int, separation: int = _MODE_SEPARATION) -> np.ndarray:
    """Centres (OpenCV hue units) of the distinct modes of a hue sample, strongest first: peaks of a
    circular 36-bin histogram (lightly smoothed) at least ``separation`` bins apart with at least
    ``min_count`` pixels. Shape: (n,) uint8 -> (k,) float."""
    hist = np.bincount(hue.astype(np.int64) // _HUE_BIN, minlength=180 // _HUE_BIN).astype(np.float64)
    smooth = hist + 0.5 * (np.concatenate((hist[-1:], hist[:-1])) + np.concatenate((hist[1:], hist[:1])))  # circular
    peaks: list[int] = []
    n_bins = len(hist)
    for b in np.argsort(-smooth, kind="stable"):
        if smooth[b] < min_count:
            break
        if all(min(abs(int(b) - p), n_bins - abs(int(b) - p)) >= separation for p in peaks):
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


def _split_by_saturation(labels: np.ndarray, saturation: np.ndarray, n_modes: int, min_px: int,
                         vivid: tuple[float, float, float]) -> tuple[np.ndarray, int]:
    """Hue modes split into a vivid and a plain one (a yellow book against light wood of nearly its hue): a mode
    whose pixels with saturation >= bound + ``_VIVID_GAP`` are at least ``vivid[1]`` of them (and ``min_px``),
    those below bound - ``_VIVID_GAP`` at least ``vivid[2]``, and at most ``_VIVID_VALLEY`` between, gives its
    pixels >= bound (``vivid[0]``) a mode of their own. Returns the labels and the number of modes.
    Shape: (n,) int mode labels (0 = none) and uint8 saturations of the saturated pixels."""
    labels = labels.copy()
    bound, vivid_fraction, plain_fraction = vivid
    for m in range(1, n_modes + 1):
        idx = np.flatnonzero(labels == m)
        s = saturation[idx].astype(np.float32)
        n_vivid = int((s >= bound + _VIVID_GAP).sum())
        n_plain = int((s < bound - _VIVID_GAP).sum())
        if n_vivid >= max(min_px, vivid_fraction * len(s)) and n_plain >= max(min_px, plain_fraction * len(s)) \
                and len(s) - n_vivid - n_plain <= _VIVID_VALLEY * len(s):
            n_modes += 1
            labels[idx[s >= bound]] = n_modes
    return labels, n_modes


def _mode_map(hsv: np.ndarray, saturated: np.ndarray, region: np.ndarray, min_px: int,
              min_modes: int = 2, vivid: tuple[float, float, float] | None = None,
              separation: int = _MODE_SEPARATION) -> tuple[np.ndarray, np.ndarray, int] | None:
    """Hue-mode label of every pixel of ``region`` (1..k; 0 = none) in a crop: saturated pixels take their
    nearest mode within ``_MODE_RADIUS``, white / grey ones (a book's printed stripes) the mode of the nearest
    saturated pixel within ``_FILL_PX``. Returns (mode, which pixels are coloured themselves, k), or None when
    the region has fewer than ``min_modes`` modes. ``vivid``: (saturation bound, vivid and plain fractions) to
    split modes by saturation (:func:`_split_by_saturation`), or None; ``separation``: of the modes, in hue bins.
    Shape: (h, w, 3) uint8 HSV, (h, w) bool x2."""
    sat = saturated & region
    if sat.sum() < 2 * min_px:
        return None
    hue = hsv[..., 0][sat]
    modes = _hue_modes(hue, min_px, separation)
    n_modes = len(modes)
    if n_modes == 0 or (n_modes < min_modes and vivid is None):
        return None
    dh = np.abs(hue.astype(np.float32)[:, None] - modes.astype(np.float32))     # saturated pixels only
    dh = np.minimum(dh, 180.0 - dh)                          # hue is circular
    labels = np.where(dh.min(axis=1) <= _MODE_RADIUS, np.argmin(dh, axis=1) + 1, 0)
    if vivid is not None:
        labels, n_modes = _split_by_saturation(labels, hsv[..., 1][sat], n_modes, min_px, vivid)
        if n_modes < min_modes:
            return None
    mode = np.zeros(region.shape, np.int64)
    mode[sat] = labels
    own = mode > 0
    if not own.any():
        return None
    dist, nearest = cv2.distanceTransformWithLabels((~own).astype(np.uint8), cv2.DIST_L2, 3,
                                                    labelType=cv2.DIST_LABEL_PIXEL)
    src = np.flatnonzero(own.ravel())
    mode = mode.ravel()[src[nearest.ravel() - 1]].reshape(mode.shape)
    return np.where(region & (dist <= _FILL_PX), mode, 0), own, n_modes


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
        width_m = area / bh * float(fast_median(zc[has_depth])) / fx    # mean width over its rows
        lo, hi = percentiles(hc[has_depth], (5, 95))
        if width_m <= cfg.strip_max_width_m and \
                cfg.strip_min_height_m <= hi - lo <= cfg.strip_max_height_m:   # upright along gravity
            strips.append((k, part))
    return strips


def _flat_blobs(cfg: GeometricConfig, parts: list, dominant: int, n_region: int, Pc: np.ndarray, E: np.ndarray,
                up32: np.ndarray) -> list[np.ndarray]:
    """Flat blobs of distinct colour: a book or a magazine lying on a table, as flat as the table top (no depth
    step) but of another hue. A blob is a part of a hue mode other than ``dominant``, the instance's most
    common one (the table's own colour; else a cover across a table would leave a piece of the table as a blob
    beside it) when its parts cover ``flat_own_min_fraction`` of the instance, thin along gravity (5-95 % of its
    points' heights within ``flat_max_thickness_m``), ``flat_min_area_m2`` to ``flat_max_area_m2`` on the floor
    plane (the minimum-area rectangle of its points), compact (``flat_min_solidity`` of its convex hull) and at
    most half of the instance.
    Shape: parts from :func:`_parts`, (h, w, 3) points (z = 0: no depth), (3, 2) floor basis, (3,) up."""
    if dominant and sum(area for k, _, area, _ in parts if k == dominant) < cfg.flat_own_min_fraction * n_region:
        dominant = 0    # the commonest hue is not the instance's own colour (a red book on a grey cabinet)
    blobs = []
    for k, part, area, _ in parts:
        if k == dominant or area > 0.5 * n_region:
            continue
        X = _points_with_depth(part, area, Pc)
        if X is None:
            continue
        lo, hi = percentiles(X @ up32, (5, 95))
        if hi - lo > cfg.flat_max_thickness_m:
            continue
        (_, (rw, rh), _) = cv2.minAreaRect(np.ascontiguousarray(X @ E, np.float32))
        if not cfg.flat_min_area_m2 <= rw * rh <= cfg.flat_max_area_m2:
            continue
        if area >= cfg.flat_min_solidity * _hull_area(part):
            blobs.append(part)
    return blobs


def _points_with_depth(part: np.ndarray, area: int, Pc: np.ndarray) -> np.ndarray | None:
    """The points of a part's pixels with depth, or None when fewer than half of its ``area`` pixels have one
    (no shape to judge). Shape: (h, w) bool, (h, w, 3) points (z = 0: no depth) -> (n, 3)."""
    has_depth = part & (Pc[..., 2] > 0)
    return Pc[has_depth] if has_depth.sum() >= 0.5 * area else None


def _hull_area(part: np.ndarray) -> float:
    """Area (pixels, at least 1) of the convex hull of a part's largest outline: its solidity's denominator.
    Shape: (h, w) bool."""
    contours, _ = cv2.findContours(part.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return max(cv2.contourArea(cv2.convexHull(max(contours, key=cv2.contourArea))), 1.0)


def _crease_map(P: np.ndarray, n: np.ndarray, nok: np.ndarray, step_px: int) -> np.ndarray:
    """Per pixel, the fold value (:func:`~.geometric_depth.creases`) of largest magnitude among the pairs it
    belongs to. Shape: (h, w, 3) x2, (h, w) bool -> (h, w) float32."""
    out = np.zeros(nok.shape, np.float32)
    for sl_i, sl_j, value in creases(P, n, nok, step_px):
        for sl in (sl_i, sl_j):
            old = out[sl]
            out[sl] = np.where(np.abs(value) > np.abs(old), value, old)
    return out


def _folded(part: np.ndarray, region: np.ndarray, fold: np.ndarray, threshold: float, max_ratio: float,
            min_px: int) -> bool:
    """Whether ``part`` meets the rest of its instance mostly at convex creases (a face of the same object, like
    a cabinet's front beside its side) rather than concave ones (a box against the sofa or shelf it stands
    at): in the band 3 px either side of its outline, at least ``min_px`` convex crease pixels and more than
    ``max_ratio`` times as many as concave ones. Shape: (h, w) bool x2, (h, w) fold values."""
    k = np.ones((7, 7), np.uint8)
    u8 = part.astype(np.uint8)
    band = cv2.dilate(u8, k).astype(bool) & ~cv2.erode(u8, k).astype(bool) & (region | part)
    n_convex = int(np.count_nonzero(band & (fold > threshold)))
    n_concave = int(np.count_nonzero(band & (fold < -threshold)))
    return n_convex >= min_px and n_convex > max_ratio * n_concave


def _islands(cfg: GeometricConfig, parts: list, own: np.ndarray, region: np.ndarray, Pc: np.ndarray,
             E: np.ndarray, up32: np.ndarray, folds, min_px: int,
             min_solidity: list[float] | None = None, rgb: np.ndarray | None = None,
             ring_px: int = _RING_PX) -> list[np.ndarray]:
    """Islands of one hue in what is left of an instance (``region``): parts of at most
    ``island_max_fraction`` of it, ``island_min_size_m`` to ``island_max_size_m`` on the floor plane (the
    longer side of the minimum-area rectangle of their points), ``island_min_height_m`` to
    ``island_max_height_m`` along gravity (5-95 %), filling ``island_min_solidity`` of their convex hull;
    not when ``island_max_rest_above`` of the rest of the instance lies above the part's top (90 % of its
    heights: a pot under its foliage) nor when the part is folded onto the rest (:func:`_folded`), nor when it
    has the chromaticity of the instance around it (:func:`_same_material`; ``rgb``: the crop of the colour
    image, None skips the test; ``ring_px``: how far around). ``folds()`` gives the crop's fold values
    (:func:`_lazy_folds`); ``own``: the coloured pixels; ``min_solidity``: each part's own bound instead of
    ``island_min_solidity``.
    Shape: parts from :func:`_parts`, (h, w) bool, (h, w, 3) points (z = 0: no depth), (3, 2), (3,)."""
    out = []
    n_region = int(region.sum())
    with_depth = Pc[..., 2] > 0
    for k, (_, part, area, _) in enumerate(parts):
        part = _coloured_outline(part, own)
        area = int(np.count_nonzero(part))
        if area > cfg.island_max_fraction * n_region or area == 0:
            continue
        X = _points_with_depth(part, area, Pc)
        if X is None:
            continue
        heights = X @ up32
        lo, hi = percentiles(heights, (5, 95))
        if not cfg.island_min_height_m <= hi - lo <= cfg.island_max_height_m:
            continue
        (_, (rw, rh), _) = cv2.minAreaRect(np.ascontiguousarray(X @ E, np.float32))
        if not cfg.island_min_size_m <= max(rw, rh) <= cfg.island_max_size_m:
            continue
        if area < (cfg.island_min_solidity if min_solidity is None else min_solidity[k]) * _hull_area(part):
            continue
        rest = region & ~part & with_depth
        if rest.any() and np.mean(Pc[rest] @ up32 > np.percentile(heights, 90)) >= cfg.island_max_rest_above:
            continue
        if _folded(part, region, folds(), cfg.concave_threshold, cfg.island_max_convex_ratio, min_px):
            continue
        if rgb is not None and _same_material(cfg, part, region, rgb, ring_px):
            continue
        out.append(part)
    return out


def _same_material(cfg: GeometricConfig, part: np.ndarray, region: np.ndarray, rgb: np.ndarray,
                   ring_px: int) -> bool:
    """Whether an island's median chromaticity lies within ``island_same_chromaticity`` (L1) of that of its
    instance's pixels within ``ring_px`` around it: light and shade on one material (a shelf's lit back, its
    shaded side panel) differ in Hue and Lab but hardly in chromaticity, another material (a cardboard box in a
    shelf: 0.05-0.16) does. Says nothing when that ring is grey (white, black and grey share one
    chromaticity) or has too few pixels. Shape: (h, w) bool x2, (h, w, 3) uint8 RGB."""
    kernel = np.ones((2 * ring_px + 1, 2 * ring_px + 1), np.uint8)
    ring = cv2.dilate(part.astype(np.uint8), kernel).astype(bool) & region & ~part
    if np.count_nonzero(ring) < _RING_MIN_PX:
        return False
    around = fast_median(chromaticity(rgb[ring]), axis=0)
    if is_grey(around):
        return False
    return float(np.abs(fast_median(chromaticity(rgb[part]), axis=0) - around).sum()) < cfg.island_same_chromaticity


def _coloured_outline(part: np.ndarray, own: np.ndarray) -> np.ndarray:
    """A part cut down to the outline of its own coloured pixels (closed over 5 px) and 1 px around it (its edge,
    mixed pixels): the mode map lends a part's hue to grey pixels up to 3 px around it (a book's white print),
    and on a small island or blob that ring of what it stands against would weigh as much as the part.
    Shape: (h, w) bool x2 -> (h, w) bool."""
    core = cv2.morphologyEx((part & own).astype(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    return part & cv2.dilate(core, np.ones((3, 3), np.uint8)).astype(bool)


def _one_hue_blobs(cfg: GeometricConfig, hsv: np.ndarray, saturated: np.ndarray, region: np.ndarray, Pc: np.ndarray,
                   E: np.ndarray, up32: np.ndarray, min_px: int) -> list[np.ndarray]:
    """Flat blobs (:func:`_flat_blobs`) in an instance with a single hue mode: a red book lying on a grey
    cabinet. The instance has no hue of its own to tell apart, so any part may be a blob (at most half the
    instance: a coloured table's own mode is all of it), cut down to its coloured outline
    (:func:`_coloured_outline`). Shape: crops (h, w, 3) uint8 HSV, (h, w) bool x2, (h, w, 3) points, (3, 2), (3,)."""
    one = _mode_map(hsv, saturated, region, min_px, min_modes=1)
    if one is None:
        return []
    parts = []
    for k, part, _, bh in _parts(*one, min_px, cfg.strip_saturated_fraction):
        part = _coloured_outline(part, one[1])
        parts.append((k, part, int(np.count_nonzero(part)), bh))
    return _flat_blobs(cfg, parts, 0, int(region.sum()), Pc, E, up32)


def _island_candidates(cfg: GeometricConfig, hsv: np.ndarray, saturated: np.ndarray, left: np.ndarray, modes,
                       parts: list, anything_cut: bool, min_px: int):
    """The hue-mode parts of what is left of an instance (``left``) that may be islands, with a single mode
    allowed (dark wood and grey fabric have none): returns (parts, coloured pixels, left), or None. When the
    strips and blobs cut nothing, the modes and parts found for them are reused, held to the islands' own
    coloured fraction. Shape: crops (h, w, 3) uint8 HSV, (h, w) bool x2; ``modes``/``parts`` as found for the
    strips (None / [] when there were fewer than two modes)."""
    if modes is not None and not anything_cut and cfg.island_own_fraction >= cfg.strip_saturated_fraction:
        own = modes[1]
        return [p for p in parts if np.count_nonzero(own & p[1]) >= cfg.island_own_fraction * p[2]], own, left
    one_mode = _mode_map(hsv, saturated, left, min_px, min_modes=1)
    if one_mode is None:
        return None
    return list(_parts(*one_mode, min_px, cfg.island_own_fraction)), one_mode[1], left


class FrameColour:
    """The colour conversions of one frame, each made once, when first asked for: the stages that need HSV or
    Lab share them. Shape: built from (h, w, 3) uint8 RGB."""

    def __init__(self, color_rgb: np.ndarray) -> None:
        self.rgb = color_rgb
        self._hsv: np.ndarray | None = None
        self._lab_raw: np.ndarray | None = None
        self._lab: dict[float, np.ndarray] = {}

    @property
    def hsv(self) -> np.ndarray:
        """OpenCV HSV (hue 0-179). Shape: (h, w, 3) uint8."""
        if self._hsv is None:
            self._hsv = cv2.cvtColor(self.rgb, cv2.COLOR_RGB2HSV)
        return self._hsv

    @property
    def lab_raw(self) -> np.ndarray:
        """OpenCV 8-bit Lab as float (lightness 0-255, a* and b* offset by 128). Shape: (h, w, 3) float32."""
        if self._lab_raw is None:
            self._lab_raw = cv2.cvtColor(self.rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
        return self._lab_raw

    def saturated(self, cfg: GeometricConfig) -> np.ndarray:
        """Which pixels' hue counts: saturation >= ``strip_saturation_min`` and value >= ``_VALUE_MIN``.
        Shape: (h, w) bool."""
        return (self.hsv[..., 1] >= cfg.strip_saturation_min) & (self.hsv[..., 2] >= _VALUE_MIN)

    def lab(self, lightness_weight: float) -> np.ndarray:
        """Lab colour with the lightness (0-100) weighted by ``lightness_weight``, 3x3 median-filtered (texture
        and noise). Shape: (h, w, 3) float32."""
        if lightness_weight not in self._lab:
            lab = self.lab_raw.copy()
            lab[..., 0] *= 100.0 / 255.0 * lightness_weight
            self._lab[lightness_weight] = cv2.medianBlur(lab, 3)
        return self._lab[lightness_weight]


def lab_image(color_rgb: np.ndarray, lightness_weight: float) -> np.ndarray:
    """``FrameColour(color_rgb).lab(lightness_weight)``. Shape: (h, w, 3) uint8 RGB -> (h, w, 3) float32."""
    return FrameColour(color_rgb).lab(lightness_weight)


def _lab_island_candidates(cfg: GeometricConfig, lab: np.ndarray, left: np.ndarray, min_px: int, min_radius: float):
    """Islands by colour distance rather than hue: a tan box in a dark red-brown shelf, a dark green plant on a
    dark wooden table have hues less than a mode apart (or too dark to have one), but another colour. The parts
    (4-connected, opened over 3x3) of what is left of an instance (``left``) farther than
    ``lab_island_distance`` from its median colour in Lab with lightness at ``lab_island_lightness_weight``
    (light and shade change lightness, a material's colour less), of at least ``min_px`` pixels and
    ``min_radius`` pixels thick (the largest disc inside: not a lit edge strip), for :func:`_islands`: returns
    (parts, those pixels, left, each part's solidity bound), or None. A part whose median a*b* lies at least
    ``lab_island_chromatic_distance`` from the instance's is another material, not a lit or shaded patch of it (which
    differs mostly in lightness), and may have a ragged outline (foliage against a dark table): it needs to fill only
    ``lab_island_chromatic_min_solidity`` of its hull. Shape: crops (h, w, 3) float32 from :func:`lab_image`, (h, w)
    bool."""
    if np.count_nonzero(left) < 3 * min_px:
        return None
    median = fast_median(lab[left], axis=0)
    far = left & (norm3(lab - median) > cfg.lab_island_distance)
    far = cv2.morphologyEx(far.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(far, connectivity=4)
    parts, solidity = [], []
    for j in np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] >= min_px) + 1:
        part = labels == j
        if cv2.distanceTransform(np.pad(part, 1).astype(np.uint8), cv2.DIST_L2, 3).max() >= min_radius:
            parts.append((1, part, int(stats[j, cv2.CC_STAT_AREA]), int(stats[j, cv2.CC_STAT_HEIGHT])))
            chroma = float(np.hypot(*(fast_median(lab[part][:, 1:], axis=0) - median[1:])))
            solidity.append(cfg.lab_island_chromatic_min_solidity if chroma >= cfg.lab_island_chromatic_distance
                            else cfg.island_min_solidity)
    return (parts, far.astype(bool), left, solidity) if parts else None


def _lazy_folds(P: np.ndarray, normals: tuple[np.ndarray, np.ndarray], box: tuple[int, int, int, int],
                step_px: int):
    """A function giving the fold values (:func:`_crease_map`) of the crop ``box`` = (y0, y1, x0, x1), computed
    on first call (few instances need them) with a margin so that pairs across the crop's border count."""
    cache: list[np.ndarray] = []
    y0, y1, x0, x1 = box
    h, w = P.shape[:2]

    def folds() -> np.ndarray:
        if not cache:
            a0, a1, b0, b1 = max(0, y0 - step_px), min(h, y1 + step_px), max(0, x0 - step_px), min(w, x1 + step_px)
            full = _crease_map(P[a0:a1, b0:b1], normals[0][a0:a1, b0:b1], normals[1][a0:a1, b0:b1], step_px)
            cache.append(full[y0 - a0:y1 - a0, x0 - b0:x1 - b0])
        return cache[0]

    return folds


def split_colour(cfg: GeometricConfig, inst: np.ndarray, strip_ids: set[int], flat_ids: set[int],
                 color_rgb: np.ndarray, P: np.ndarray, up: np.ndarray, fx: float, next_id: int,
                 min_px: int, island_ids: set[int] = frozenset(),
                 normals: tuple[np.ndarray, np.ndarray] | None = None,
                 colour: FrameColour | None = None, cut_from: dict[int, int] | None = None) -> tuple[int, list[int]]:
    """Cut colour parts out of instances of ``inst``, in place: upright strips side by side out of the
    instances ``strip_ids`` (see the module doc), flat blobs out of the instances ``flat_ids``
    (:func:`_flat_blobs`), then islands out of what is left of the instances ``island_ids``
    (:func:`_islands`; needs ``normals``: the normals and their validity mask). Returns the next free id and
    the new ids. ``min_px``: ``cfg.strip_min_px`` at this resolution; ``colour``: the frame's
    ``FrameColour`` when the caller has one; ``cut_from``, when given, is filled with each new id's instance.

    Shape: (h, w) uint16 instance ids, (h, w, 3) uint8 RGB, (h, w, 3) float32 points in the camera frame
    (meters, z = 0 where there is no depth), (3,) unit up vector, normals (h, w, 3) float32 and (h, w) bool."""
    colour = colour if colour is not None else FrameColour(color_rgb)
    cut_from = {} if cut_from is None else cut_from
    hsv, saturated = colour.hsv, colour.saturated(cfg)
    E = floor_basis(up)
    up32 = up.astype(np.float32)
    if normals is None:
        island_ids = frozenset()
    w_img = inst.shape[1]
    lab = colour.lab(cfg.lab_island_lightness_weight) if cfg.lab_islands and island_ids else None
    vivid = (cfg.strip_vivid_saturation, cfg.strip_vivid_min_fraction, cfg.strip_plain_min_fraction) \
        if cfg.strip_vivid_saturation > 0 else None
    lab_min_px = max(min_px, round(cfg.lab_island_min_px * min_px / cfg.strip_min_px))
    lab_min_radius = cfg.lab_island_min_radius_px * w_img / 320.0
    ring_px = max(1, round(_RING_PX * w_img / 320.0))
    new_ids: list[int] = []
    for iid, idx in label_pixels(inst):
        if (iid not in strip_ids and iid not in flat_ids and iid not in island_ids) or len(idx) < 3 * min_px:
            continue
        ys, xs = np.divmod(idx, w_img)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        region = np.zeros((y1 - y0, x1 - x0), bool)
        region[ys - y0, xs - x0] = True
        Pc = P[y0:y1, x0:x1]
        crop = inst[y0:y1, x0:x1]
        modes = _mode_map(hsv[y0:y1, x0:x1], saturated[y0:y1, x0:x1], region, min_px, vivid=vivid)
        cut: list[np.ndarray] = []
        parts = list(_parts(*modes, min_px, cfg.strip_saturated_fraction)) if modes is not None else []
        if iid in strip_ids:
            strip_parts = parts
            if cfg.strip_mode_separation_bins != _MODE_SEPARATION or cfg.strip_dark_value_min > 0:
                # books of two hues 30 degrees apart (yellow beside orange) are one mode at 40: finer for strips
                # only, and dark books have a hue here
                strip_sat = _dark_hues(hsv[y0:y1, x0:x1], saturated[y0:y1, x0:x1], region, cfg) \
                    if cfg.strip_dark_value_min > 0 else saturated[y0:y1, x0:x1]
                strip_modes = _mode_map(hsv[y0:y1, x0:x1], strip_sat, region, min_px, vivid=vivid,
                                        separation=cfg.strip_mode_separation_bins)
                strip_parts = list(_parts(*strip_modes, min_px, cfg.strip_saturated_fraction)) \
                    if strip_modes is not None else []
            cut += [part for _, part in _side_by_side(_upright_strips(cfg, strip_parts, Pc[..., 2], Pc @ up32, fx))]
        if iid in flat_ids and parts:
            rest = parts
            if cut:     # what the strips left of each part; one mostly cut (or cut whole) is gone
                taken = np.any(cut, axis=0)
                rest = [(k, part & ~taken, int(np.count_nonzero(part & ~taken)), bh) for k, part, area, bh in parts
                        if np.count_nonzero(part & ~taken) >= max(min_px, 0.5 * area)]
            dominant = int(np.argmax(np.bincount(modes[0].ravel(), minlength=modes[2] + 1)[1:])) + 1
            cut += _flat_blobs(cfg, rest, dominant, len(idx), Pc, E, up32)
        if iid in flat_ids and modes is None:
            cut += _one_hue_blobs(cfg, hsv[y0:y1, x0:x1], saturated[y0:y1, x0:x1], region, Pc, E, up32, min_px)
        next_id = _number_parts(crop, cut, iid, next_id, new_ids, cut_from)
        if iid not in island_ids:
            continue
        candidates = _island_candidates(cfg, hsv[y0:y1, x0:x1], saturated[y0:y1, x0:x1], crop == iid, modes, parts,
                                        bool(cut), min_px)
        folds = _lazy_folds(P, normals, (y0, y1, x0, x1), cfg.normal_step_px)
        rgb_c = color_rgb[y0:y1, x0:x1] if cfg.island_same_chromaticity > 0 else None
        islands = _islands(cfg, *candidates, Pc, E, up32, folds, min_px, rgb=rgb_c, ring_px=ring_px) \
            if candidates is not None else []
        next_id = _number_parts(crop, islands, iid, next_id, new_ids, cut_from)
        if lab is None:
            continue
        left = crop == iid
        candidates = _lab_island_candidates(cfg, lab[y0:y1, x0:x1], left, lab_min_px, lab_min_radius)
        if candidates is None:
            continue
        lab_parts, far, left, solidity = candidates
        next_id = _number_parts(crop, _islands(cfg, lab_parts, far, left, Pc, E, up32, folds, min_px, solidity,
                                               rgb_c, ring_px), iid, next_id, new_ids, cut_from)
    if cfg.lab_strips and strip_ids:
        next_id = _lab_strips(cfg, inst, strip_ids, P, up32, fx, next_id, min_px, colour, new_ids, cut_from)
    return next_id, new_ids


_DARK_HUE_RADIUS = 12       # hue units (2 degrees each) round a dark material's hue left out of the strips' ...
_DARK_MATERIAL_SHARE = 0.2  # ... when its dark pixels fill this share of the instance's bounding box


def _dark_hues(hsv: np.ndarray, saturated: np.ndarray, region: np.ndarray, cfg: GeometricConfig) -> np.ndarray:
    """``saturated`` with the region's saturated pixels of HSV value ``strip_dark_value_min`` up to ``_VALUE_MIN``
    (a dark purple or blue book), except those of the commonest hue among the crop's dark pixels (+-
    ``_DARK_HUE_RADIUS``) when that hue fills ``_DARK_MATERIAL_SHARE`` of the crop: dark wood would join a red
    book's mode and leak its strip into the shelf. Shape: (h, w, 3) uint8 HSV crop, (h, w) bool x2 -> (h, w) bool."""
    value = hsv[..., 2]
    dark_all = (hsv[..., 1] >= cfg.strip_saturation_min) & (value >= cfg.strip_dark_value_min) & (value < _VALUE_MIN)
    dark = region & dark_all
    if not dark.any():
        return saturated
    hue = hsv[..., 0].astype(np.int64)
    hist = np.bincount(hue[dark_all], minlength=180).astype(np.float64)
    smooth = np.convolve(np.concatenate([hist[-4:], hist, hist[:4]]), np.ones(9), mode="valid")  # circular, 9 bins
    dh = np.abs(hue - int(np.argmax(smooth)))
    near = np.minimum(dh, 180 - dh) <= _DARK_HUE_RADIUS
    if np.count_nonzero(dark_all & near) >= _DARK_MATERIAL_SHARE * region.size:
        dark &= ~near
    return saturated | dark


_LAB_STRIP_MAX_Z_M = 5.0    # a Lab strip candidate is tall enough in the image to span strip_min_height_m this near


def _lab_strips(cfg: GeometricConfig, inst: np.ndarray, strip_ids: set[int], P: np.ndarray, up32: np.ndarray,
                fx: float, next_id: int, min_px: int, colour: FrameColour, new_ids: list[int],
                cut_from: dict[int, int]) -> int:
    """Strips of another colour by Lab distance, in place in ``inst`` (``lab_strips``): in what is left of each
    instance of ``strip_ids`` (at least 5 ``min_px``), the 4-connected parts of its pixels farther than
    ``lab_strip_distance`` from its median Lab colour, ``min_px`` to ``lab_strip_max_fraction`` of it and tall
    enough in the image; one with two hue modes or more (a row of books of several colours) is replaced by its
    hue-mode parts. A candidate whose median a*b* lies ``lab_strip_chromatic_distance`` from the instance's and
    farther from grey, and that is an upright strip (:func:`_upright_strips`), becomes an instance. Returns the
    next free id. Shape: (h, w) uint16, (h, w, 3) points (z = 0: no depth), (3,) unit up."""
    lab = colour.lab(cfg.lab_island_lightness_weight)
    lab_flat = lab.reshape(-1, 3)
    hsv, saturated = colour.hsv, colour.saturated(cfg)
    w_img = inst.shape[1]
    min_rows = cfg.strip_min_height_m * fx / _LAB_STRIP_MAX_Z_M
    # a candidate's median a* or b* lies lab_strip_chromatic_distance / sqrt(2) from the instance's, so half its
    # pixels (>= min_px / 2) do: an instance with fewer such pixels has none
    min_ab = cfg.lab_strip_chromatic_distance / np.sqrt(2.0) - 1e-3
    for iid, idx in label_pixels(inst):
        if iid not in strip_ids or len(idx) < 5 * min_px:
            continue
        lab_i = lab_flat[idx]
        median = fast_median(lab_i[::4], axis=0)       # every 4th pixel is plenty for a median
        if np.count_nonzero(np.hypot(*(lab_i[:, 1:] - median[1:]).T) >= min_ab) < min_px // 2:
            continue
        grey = float(np.hypot(*(median[1:] - 128.0)))
        ys, xs = np.divmod(idx, w_img)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        left = np.zeros((y1 - y0, x1 - x0), bool)
        left[ys - y0, xs - x0] = True
        L = lab[y0:y1, x0:x1]
        far = left & (norm3(L - median) > cfg.lab_strip_distance)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(far.astype(np.uint8), connectivity=4)
        crop = inst[y0:y1, x0:x1]
        area = stats[:, cv2.CC_STAT_AREA]
        fits = (area >= min_px) & (area <= cfg.lab_strip_max_fraction * len(idx)) & \
            (stats[:, cv2.CC_STAT_HEIGHT] >= min_rows)
        for j in np.flatnonzero(fits[1:]) + 1:
            lft, top, wd, ht, area = (int(v) for v in stats[j])
            box = (slice(y0 + top, y0 + top + ht), slice(x0 + lft, x0 + lft + wd))
            comp = labels[top:top + ht, lft:lft + wd] == j
            modes = _mode_map(hsv[box], saturated[box], comp, min_px, separation=cfg.strip_mode_separation_bins)
            candidates = list(_parts(*modes, min_px, cfg.strip_saturated_fraction)) if modes is not None \
                else [(1, comp, area, ht)]
            Lc = L[top:top + ht, lft:lft + wd]
            candidates = [c for c in candidates
                          if _more_colourful(cfg, fast_median(Lc[c[1]][:, 1:], axis=0), median, grey)]
            if not candidates:
                continue
            Pc = P[box]
            strips = [part for _, part in _upright_strips(cfg, candidates, Pc[..., 2], Pc @ up32, fx)]
            next_id = _number_parts(crop[top:top + ht, lft:lft + wd], strips, iid, next_id, new_ids, cut_from)
    return next_id


def _more_colourful(cfg: GeometricConfig, ab: np.ndarray, median: np.ndarray, grey: float) -> bool:
    """Whether a candidate's median a*b* (offset by 128) lies ``lab_strip_chromatic_distance`` from the instance's
    median Lab and farther from grey than it (at ``grey``)."""
    return bool(np.hypot(*(ab - median[1:])) >= cfg.lab_strip_chromatic_distance and np.hypot(*(ab - 128.0)) >= grey)


def _number_parts(crop: np.ndarray, parts: list[np.ndarray], iid: int, next_id: int, new_ids: list[int],
                  cut_from: dict[int, int]) -> int:
    """Give each part a new id from ``next_id`` on, in place in ``crop``; note it in ``new_ids`` and, cut from
    instance ``iid``, in ``cut_from``. Returns the next free id. Shape: (h, w) uint16, parts (h, w) bool."""
    for part in parts:
        crop[part] = next_id
        new_ids.append(next_id)
        cut_from[next_id] = iid
        next_id += 1
    return next_id


_NEIGHBOURS_8 = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


def grow_by_colour(sem: np.ndarray, inst: np.ndarray, color_rgb: np.ndarray, max_delta: float,
                   iterations: int, max_ratio: float, max_mean_delta: float, lab: np.ndarray | None = None) -> None:
    """Grow object instances into unlabelled pixels (``sem == 0``) of their colour, in place.

    A table's dark wooden legs or a lamp's pole lose most of their depth (dark material, all depth edge), so
    the depth stages leave them unlabelled, although they continue the top's or shade's colour. A seeded
    region growing on colour (Adams and Bischof 1994, done in parallel steps): in each of ``iterations``
    steps, an unlabelled pixel next to an object takes the instance (and class) of its most similar labelled
    8-neighbour when that neighbour belongs to an object, their Lab colours (median of 3x3, lightness on a
    0-100 scale) differ by less than ``max_delta``, the pixel lies within ``max_mean_delta`` of the instance's
    mean colour (as in the original method: a book's edge pixels, mixed with the table's colour, must not lead
    it into the table), and no labelled stuff neighbour (wall, floor) is more similar: stuff does not grow, but
    a dropout by a wall that looks like the wall is not taken. An instance takes at most ``max_ratio`` times
    its own pixel count, its most similar candidates first: a crumb of wall edge left as an object must not
    flood a whole depth hole of the wall's colour, where no stuff pixel borders the inner pixels to compete.
    ``lab``: ``lab_image(color_rgb, 1.0)`` when the caller has it already.
    Shape: (h, w) uint16 x2, (h, w, 3) uint8 RGB."""
    h, w = sem.shape
    if lab is None:
        lab = lab_image(color_rgb, 1.0)
    # colour distance of every pixel to each of its 8 neighbours, once (NaN across the image border, which no
    # comparison passes); the labels are padded by 1 px so that a neighbour is a fixed offset in the flat index
    lab_pad = cv2.copyMakeBorder(lab, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=(np.nan,) * 3)
    dist = np.full((len(_NEIGHBOURS_8), h, w), np.nan, np.float32)
    for k, (dy, dx) in enumerate(_NEIGHBOURS_8[:4]):
        dist[k] = norm3(lab_pad[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] - lab)
        # the opposite neighbour (7 - k) of pixel p + (dy, dx) is p, at the same distance (bit for bit)
        dist[7 - k][max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)] = \
            dist[k][max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
    dist = dist.reshape(len(_NEIGHBOURS_8), h * w)
    inst_pad = np.pad(inst, 1).ravel()
    stuff_pad = np.pad((sem > 0) & (inst == 0), 1).ravel()
    offsets = [dy * (w + 2) + dx for dy, dx in _NEIGHBOURS_8]
    labelled = sem > 0
    lab_flat = lab.reshape(-1, 3)
    size = np.bincount(inst.ravel(), minlength=int(inst.max()) + 1)
    mean_lab = np.stack([np.bincount(inst.ravel(), weights=lab_flat[:, c], minlength=len(size))
                         for c in range(3)], axis=1).astype(np.float32) / np.maximum(size, 1)[:, None]
    allowance = np.floor(max_ratio * size).astype(np.int64)
    taken = np.zeros((h, w), np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    front = ~labelled & cv2.dilate((inst > 0).astype(np.uint8), kernel).astype(bool)
    for _ in range(iterations):
        f = np.flatnonzero(front)
        if len(f) == 0:
            break
        fp = (f // w + 1) * (w + 2) + f % w + 1                 # the same pixels in the padded image
        best_obj = np.full(len(f), np.inf, np.float32)
        best_stuff = np.full(len(f), np.inf, np.float32)
        src = np.zeros(len(f), np.int64)
        for k, off in enumerate(offsets):
            d = dist[k, f]
            q = fp + off
            is_obj = inst_pad[q] > 0
            better = is_obj & (d < best_obj)
            best_obj[better] = d[better]
            src[better] = q[better]
            better = stuff_pad[q] & (d < best_stuff)
            best_stuff[better] = d[better]
        take = (best_obj < max_delta) & (best_obj <= best_stuff)
        take &= norm3(lab_flat[f] - mean_lab[inst_pad[src]]) < max_mean_delta
        if not take.any():
            break
        # the most similar first, while the instance's allowance lasts
        cand = np.flatnonzero(take)
        ids = inst_pad[src[cand]]
        order = np.lexsort((best_obj[cand], ids))
        cand, ids = cand[order], ids[order]
        _, first, group = np.unique(ids, return_index=True, return_inverse=True)
        keep = np.arange(len(cand)) - first[group] < allowance[ids]
        allowance -= np.bincount(ids[keep], minlength=len(allowance))
        cand, ids = cand[keep], ids[keep]
        if len(cand) == 0:
            break
        # copy after choosing all: a pixel taken in this step is no source for another in the same step
        new = f[cand]
        np.put(inst, new, ids)
        np.put(sem, new, sem.ravel()[(src[cand] // (w + 2) - 1) * w + src[cand] % (w + 2) - 1])
        inst_pad[fp[cand]] = ids
        np.put(labelled, new, True)
        taken[:] = 0
        np.put(taken, new, 1)
        front = ~labelled & cv2.dilate(taken, kernel).astype(bool)


def unlabelled_colour_parts(cfg: GeometricConfig, sem: np.ndarray, inst: np.ndarray, color_rgb: np.ndarray,
                            valid: np.ndarray, strip_min_px: int, min_px: int, max_px: int,
                            next_id: int, object_class: int,
                            colour: FrameColour | None = None) -> tuple[int, list[int]]:
    """Object instances from parts of one hue in what every other stage left unlabelled (``sem == 0``), in place;
    returns the next free id and the new ids.

    Books in a dark shelf lose most of their depth (dark wood around them, all edges), and a book lying flat on
    a far desk is a band a few pixels tall, all depth edge: no depth stage makes a piece of them, and colour
    growth has no instance of their colour to start from. Every 8-connected unlabelled region of at least
    3 ``strip_min_px`` pixels is split into hue-mode parts as the strips are (:func:`_mode_map` with one mode
    allowed, :func:`_parts`, cut to their coloured outline): a part of ``min_px`` to ``max_px`` pixels that fills
    ``unlabelled_parts_min_solidity`` of its convex hull is an object, unless its mean colour lies within
    ``unlabelled_parts_stuff_distance`` (Lab) of the wall / floor / ceiling pixels around it (a wooden floor
    whose depth dropped out at a chair's foot is floor), nor when it reaches the frame of rows and columns
    without depth that a real sensor leaves round the image (:func:`depth_margin`: a wooden door at the top of a
    TUM frame); colours are compared in ``colour.lab(1.0)``. ``valid``: which pixels have depth; ``colour``: the
    frame's ``FrameColour`` when the caller has one. Shape: (h, w) uint16 x2, (h, w, 3) uint8 RGB, (h, w) bool."""
    sensor_margin = cv2.dilate(depth_margin(valid).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    colour = colour if colour is not None else FrameColour(color_rgb)
    hsv, saturated, lab = colour.hsv, colour.saturated(cfg), colour.lab(1.0)
    stuff = (sem > 0) & (inst == 0)
    kernel = np.ones((5, 5), np.uint8)
    new_ids: list[int] = []
    # each region with a 2 px margin, for the ring of stuff around a part
    for box, region in component_crops(sem == 0, 3 * strip_min_px, margin_px=2):
        modes = _mode_map(hsv[box], saturated[box], region, strip_min_px, min_modes=1)
        if modes is None:
            continue
        for _, part, _, _ in _parts(*modes, strip_min_px, cfg.strip_saturated_fraction):
            part = _coloured_outline(part, modes[1]) & region
            area = int(np.count_nonzero(part))
            if not min_px <= area <= max_px or area < cfg.unlabelled_parts_min_solidity * _hull_area(part):
                continue
            if np.any(part & sensor_margin[box]):
                continue
            ring = cv2.dilate(part.astype(np.uint8), kernel).astype(bool) & stuff[box]
            crop = lab[box]
            if np.count_nonzero(ring) >= 3 and \
                    norm3(crop[part].mean(axis=0) - crop[ring].mean(axis=0)) < cfg.unlabelled_parts_stuff_distance:
                continue
            next_id = _new_object(sem[box], inst[box], part, next_id, object_class, new_ids)
    return next_id, new_ids


def _new_object(sem: np.ndarray, inst: np.ndarray, part: np.ndarray, next_id: int, object_class: int,
                new_ids: list[int]) -> int:
    """Make ``part`` (of the crops ``sem`` / ``inst``, views into the frame's) object ``next_id``, in place; records
    it in ``new_ids`` and returns the next free id."""
    inst[part] = next_id
    sem[part] = object_class
    new_ids.append(next_id)
    return next_id + 1


_PALE_PIXEL_DELTA = 6.0     # a pale part's pixels lie this far (Lab) from the median of the ring around the region
_PALE_MIN_THICK = 0.5       # at least this share of a pale part survives a 3x3 opening (no slivers along an edge)
_PALE_MIN_DEPTH = 0.15      # and has depth on this share of its pixels (a sensor's dropout strips have none)
_PALE_RING_MIN_PX = 8       # the ring is the stuff around the region when it has this many pixels, else all labels


def pale_parts(cfg: GeometricConfig, sem: np.ndarray, inst: np.ndarray, valid: np.ndarray, min_px: int,
               max_px: int, next_id: int, object_class: int, colour: FrameColour) -> tuple[int, list[int]]:
    """Object instances from pale parts of what is still unlabelled after :func:`unlabelled_colour_parts`, in
    place; returns the next free id and the new ids.

    A far desk lamp's cream shade keeps depth on a third of its pixels and its hue is too unsaturated to count
    (HSV saturation 44-60), so the depth stages and the hue parts miss it; it is lighter and yellower than the
    wall or the screen behind it (9-14 in Lab). Every 8-connected unlabelled region of at least ``min_px`` pixels
    is compared with the labelled ring round it (5x5; its stuff pixels when there are ``_PALE_RING_MIN_PX``, else
    all of it: a shade in front of a screen instance): its pixels farther than ``_PALE_PIXEL_DELTA`` from the
    ring's median (``colour.lab(1.0)``) form 8-connected parts, and a part of ``min_px`` to ``max_px`` pixels,
    filling ``unlabelled_parts_min_solidity`` of its convex hull, ``_PALE_MIN_THICK`` of it surviving a 3x3
    opening, with depth on ``_PALE_MIN_DEPTH`` of its pixels, clear of the sensor's margin (:func:`depth_margin`),
    whose mean lies at least ``pale_parts_min_delta`` from the ring's median and is not darker than it (dark table
    legs left unlabelled are no objects of their own), is an object. Shape: (h, w) uint16 x2, (h, w) bool."""
    lab = colour.lab(1.0)
    sensor_margin = cv2.dilate(depth_margin(valid).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    stuff, labelled = (sem > 0) & (inst == 0), sem > 0
    ring_kernel, open_kernel = np.ones((5, 5), np.uint8), np.ones((3, 3), np.uint8)
    new_ids: list[int] = []
    for box, region in component_crops(sem == 0, min_px, margin_px=3):
        around = cv2.dilate(region.astype(np.uint8), ring_kernel).astype(bool) & ~region & labelled[box]
        ring = around & stuff[box]
        if np.count_nonzero(ring) < _PALE_RING_MIN_PX:
            ring = around
        if np.count_nonzero(ring) < 3:
            continue
        crop = lab[box]
        ref = fast_median(crop[ring], axis=0)
        far = region & (norm3(crop - ref) > _PALE_PIXEL_DELTA)
        n, parts, stats, _ = cv2.connectedComponentsWithStats(far.astype(np.uint8), connectivity=8)
        for q in range(1, n):
            area = int(stats[q, cv2.CC_STAT_AREA])
            if not min_px <= area <= max_px:
                continue
            part = parts == q
            if area < cfg.unlabelled_parts_min_solidity * _hull_area(part) or np.count_nonzero(
                    cv2.morphologyEx(part.astype(np.uint8), cv2.MORPH_OPEN, open_kernel)) < _PALE_MIN_THICK * area:
                continue
            if np.count_nonzero(part & valid[box]) < _PALE_MIN_DEPTH * area or np.any(part & sensor_margin[box]):
                continue
            mean = crop[part].mean(axis=0)
            if norm3(mean - ref) < cfg.pale_parts_min_delta or mean[0] < ref[0]:
                continue
            next_id = _new_object(sem[box], inst[box], part, next_id, object_class, new_ids)
    return next_id, new_ids


def join_depthless(cfg: GeometricConfig, inst: np.ndarray, lab: np.ndarray, valid: np.ndarray, ids: set[int],
                   min_px: int, min_contact_px: int) -> None:
    """Join touching instances of one colour when one of them has little depth, in place.

    A far desk's top and its dark legs, a monitor's glass and its frame, a dark shelf's side and its compartments
    keep depth on a few of their pixels (dark material, grazing views, all depth edge), so the colour stages make
    several instances of one surface: grown from different pieces, or parts of what was left unlabelled, cut
    apart where their colour did not reach across. Where one side has no depth to say that they are apart, their
    colour is the only cue left: two of the instances ``ids`` (of at least ``min_px`` pixels) that touch along at
    least ``min_contact_px`` pixels (within 1 px) are one when one of them has depth on at most
    ``depthless_join_max_depth_fraction`` of its pixels and their median colours lie within
    ``depthless_join_max_delta`` (Lab), both at least ``depthless_join_min_lightness`` light (black and dark grey
    things all look alike). Parts cut out for their colour (strips, blobs, islands) are left out of
    ``ids`` by the caller: a mixed edge can bring their median close to what they were cut from.
    ``lab``: ``lab_image(color, 1.0)``; ``valid``: which pixels have depth.
    Shape: (h, w) uint16 ids, (h, w, 3) float32, (h, w) bool."""
    lab_flat, valid_flat = lab.reshape(-1, 3), valid.ravel()
    pixels, depth_fraction, colour = {}, {}, {}
    for i, idx in label_pixels(inst):
        if i in ids and len(idx) >= min_px:
            pixels[i] = idx
            depth_fraction[i] = np.count_nonzero(valid_flat[idx]) / len(idx)
            colour[i] = fast_median(lab_flat[idx], axis=0)
    pairs = set()
    for i, idx in pixels.items():
        for j in touching_labels(inst, i, idx, radius_px=1, min_contact_px=min_contact_px):
            if j in pixels and \
                    min(depth_fraction[i], depth_fraction[j]) <= cfg.depthless_join_max_depth_fraction and \
                    float(norm3(colour[i] - colour[j])) <= cfg.depthless_join_max_delta and \
                    min(colour[i][0], colour[j][0]) >= cfg.depthless_join_min_lightness:
                pairs.add((min(i, j), max(i, j)))      # either one's outline may touch the other enough
    join_label_pairs(inst, pixels, sorted(pairs))


def depth_margin(valid: np.ndarray, max_fraction: float = 0.05) -> np.ndarray:
    """The frame of outer rows and columns without depth (fewer than ``max_fraction`` valid pixels each, counted
    from each side inwards) that a real sensor leaves round the image (TUM's Kinect: ~8 rows at the top and the
    right; the simulator: none). Shape: (h, w) bool -> (h, w) bool."""
    margin = np.zeros_like(valid)
    rows, cols = valid.mean(axis=1), valid.mean(axis=0)
    for line, frac, n in ((lambda k: (slice(k, k + 1), slice(None)), rows, len(rows)),
                          (lambda k: (slice(None), slice(k, k + 1)), cols, len(cols))):
        for order in (range(n), range(n - 1, -1, -1)):
            for k in order:
                if frac[k] >= max_fraction:
                    break
                margin[line(k)] = True
    return margin
