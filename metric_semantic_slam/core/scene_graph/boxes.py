"""Gravity-aligned boxes of many point groups at once, and box-pair geometry (numpy, vectorised).

All inputs are in the *gravity frame* (z = up). A box is (centre (3,), extents (3,), yaw) where the
extents are along the box's x, y (horizontal, rotated by yaw about z) and z axes.
"""
from __future__ import annotations

import numpy as np

__all__ = ["fit_boxes", "footprint_corners", "rect_gaps", "rect_overlap_area", "box_iou_3d"]

_COARSE_DEG = np.arange(0.0, 90.0, 3.0)
_FINE_DEG = np.arange(-1.5, 1.51, 0.25)


def _group_minmax(values: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.minimum.reduceat(values, starts, axis=0), np.maximum.reduceat(values, starts, axis=0)


def fit_boxes(points_g: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smallest-footprint gravity-aligned box of each group of points.

    The points are sorted by group; group ``k`` is ``points_g[starts[k]:starts[k+1]]``. The yaw minimises
    the footprint area (searched every 3 degrees, then refined to 0.25 degrees), which equals the
    horizontal PCA axes for elongated objects and stays stable for square ones. The box x axis is the
    longer horizontal side; yaw is wrapped to (-pi/2, pi/2].

    Shape: points_g (N, 3), starts (G,) -> centres (G, 3), extents (G, 3), yaw_rad (G,).
    """
    xy = points_g[:, :2].astype(np.float64)
    # Centre each group first so that the projections keep float precision.
    counts = np.diff(np.append(starts, len(points_g)))
    mean = np.add.reduceat(xy, starts, axis=0) / counts[:, None]
    xy = xy - np.repeat(mean, counts, axis=0)

    # Angle-major layout (K, N): the per-group min / max reduce along contiguous rows, several times
    # faster than along the columns of (N, K); every value is computed as before (same products and sums).
    x = np.ascontiguousarray(xy[:, 0])
    y = np.ascontiguousarray(xy[:, 1])
    nx = -x

    def areas(angles_rad: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        # angles (G, K) per group or (K,) shared.
        c, s = np.cos(angles_rad), np.sin(angles_rad)
        if angles_rad.ndim == 1:
            cr, sr = c[:, None], s[:, None]
        else:
            cr, sr = np.repeat(c.T, counts, axis=1), np.repeat(s.T, counts, axis=1)
        u = x * cr + y * sr
        v = nx * sr + y * cr
        ulo, uhi = np.minimum.reduceat(u, starts, axis=1).T, np.maximum.reduceat(u, starts, axis=1).T
        vlo, vhi = np.minimum.reduceat(v, starts, axis=1).T, np.maximum.reduceat(v, starts, axis=1).T
        return (uhi - ulo) * (vhi - vlo), (ulo, uhi), (vlo, vhi), None

    coarse = np.deg2rad(_COARSE_DEG)
    a, _, _, _ = areas(coarse)
    best = coarse[np.argmin(a, axis=1)]
    fine = best[:, None] + np.deg2rad(_FINE_DEG)[None, :]
    a, (ulo, uhi), (vlo, vhi), _ = areas(fine)
    k = np.argmin(a, axis=1)
    g = np.arange(len(starts))
    yaw = fine[g, k]
    ulo, uhi, vlo, vhi = ulo[g, k], uhi[g, k], vlo[g, k], vhi[g, k]
    ext_u, ext_v = uhi - ulo, vhi - vlo
    cu, cv = (uhi + ulo) / 2, (vhi + vlo) / 2
    c, s = np.cos(yaw), np.sin(yaw)
    centre_xy = mean + np.stack([c * cu - s * cv, s * cu + c * cv], axis=1)
    # Longer horizontal side = box x.
    swap = ext_v > ext_u
    yaw = np.where(swap, yaw + np.pi / 2, yaw)
    ext_x = np.where(swap, ext_v, ext_u)
    ext_y = np.where(swap, ext_u, ext_v)
    yaw = (yaw + np.pi / 2) % np.pi - np.pi / 2
    yaw = np.where(yaw <= -np.pi / 2 + 1e-9, yaw + np.pi, yaw)
    zlo, zhi = _group_minmax(points_g[:, 2].astype(np.float64), starts)
    centres = np.column_stack([centre_xy, (zlo + zhi) / 2])
    extents = np.column_stack([ext_x, ext_y, zhi - zlo])
    return centres, extents, yaw


def footprint_corners(centres: np.ndarray, extents: np.ndarray, yaw_rad: np.ndarray) -> np.ndarray:
    """Footprint rectangle corners, counter-clockwise. Shape: (G, 3), (G, 3), (G,) -> (G, 4, 2)."""
    hx, hy = extents[:, 0] / 2, extents[:, 1] / 2
    local = np.stack([np.stack([-hx, -hy], 1), np.stack([hx, -hy], 1), np.stack([hx, hy], 1),
                      np.stack([-hx, hy], 1)], axis=1)
    c, s = np.cos(yaw_rad)[:, None], np.sin(yaw_rad)[:, None]
    x = local[..., 0] * c - local[..., 1] * s
    y = local[..., 0] * s + local[..., 1] * c
    return np.stack([x, y], axis=-1) + centres[:, None, :2]


def _sat_overlap(pa: np.ndarray, pb: np.ndarray) -> np.ndarray:
    # Smallest projection overlap over the edge normals of both rectangles (< 0: separated).
    # Shape: (P, 4, 2), (P, 4, 2) -> (P,).
    best = np.full(len(pa), np.inf)
    for poly in (pa, pb):
        for e in range(2):  # a rectangle has two distinct edge normals
            d = poly[:, e + 1] - poly[:, e]
            n = np.stack([d[:, 1], -d[:, 0]], axis=1)
            n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
            a = np.einsum("pkj,pj->pk", pa, n)
            b = np.einsum("pkj,pj->pk", pb, n)
            ov = np.minimum(a.max(1), b.max(1)) - np.maximum(a.min(1), b.min(1))
            best = np.minimum(best, ov)
    return best


def _point_segment_dist(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # Shape: p (P, 4, 2) points; a, b (P, 4, 2) segments -> (P,) min over all point-segment pairs.
    ab = b - a
    ap = p[:, :, None, :] - a[:, None, :, :]
    t = np.clip((ap * ab[:, None]).sum(-1) / np.maximum((ab * ab).sum(-1)[:, None], 1e-12), 0.0, 1.0)
    closest = a[:, None] + t[..., None] * ab[:, None]
    return np.linalg.norm(p[:, :, None, :] - closest, axis=-1).reshape(len(p), -1).min(1)


def rect_gaps(pa: np.ndarray, pb: np.ndarray) -> np.ndarray:
    """Horizontal gap between footprint rectangles (0 when they overlap). Shape: (P, 4, 2) x2 -> (P,)."""
    if len(pa) == 0:
        return np.zeros(0)
    overlap = _sat_overlap(pa, pb) >= 0
    ra, rb = np.roll(pa, -1, axis=1), np.roll(pb, -1, axis=1)
    d = np.minimum(_point_segment_dist(pa, pb, rb), _point_segment_dist(pb, pa, ra))
    return np.where(overlap, 0.0, d)


def _clip_polygon(subject: list, a: np.ndarray, b: np.ndarray) -> list:
    # Sutherland-Hodgman against the half-plane left of edge a->b (counter-clockwise clip polygon).
    out = []
    def inside(p):
        return (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]) >= -1e-12
    for i in range(len(subject)):
        cur, prev = subject[i], subject[i - 1]
        cin, pin = inside(cur), inside(prev)
        if cin != pin:
            d = cur - prev
            e = b - a
            den = d[0] * e[1] - d[1] * e[0]
            if abs(den) > 1e-15:
                t = ((a[0] - prev[0]) * e[1] - (a[1] - prev[1]) * e[0]) / den
                out.append(prev + t * d)
        if cin:
            out.append(cur)
    return out


def rect_overlap_area(pa: np.ndarray, pb: np.ndarray) -> float:
    """Intersection area of two convex counter-clockwise polygons. Shape: (4, 2), (4, 2) -> m^2."""
    poly = [p for p in np.asarray(pa, np.float64)]
    for i in range(len(pb)):
        if not poly:
            return 0.0
        poly = _clip_polygon(poly, pb[i], pb[(i + 1) % len(pb)])
    if len(poly) < 3:
        return 0.0
    p = np.asarray(poly)
    return float(0.5 * abs(np.dot(p[:, 0], np.roll(p[:, 1], -1)) - np.dot(p[:, 1], np.roll(p[:, 0], -1))))


def box_iou_3d(ca, ea, ya: float, cb, eb, yb: float) -> float:
    """IoU of two gravity-aligned boxes (footprint polygon overlap x vertical overlap)."""
    ca, ea, cb, eb = (np.asarray(v, np.float64) for v in (ca, ea, cb, eb))
    pa = footprint_corners(ca[None], ea[None], np.array([ya]))[0]
    pb = footprint_corners(cb[None], eb[None], np.array([yb]))[0]
    area = rect_overlap_area(pa, pb)
    dz = min(ca[2] + ea[2] / 2, cb[2] + eb[2] / 2) - max(ca[2] - ea[2] / 2, cb[2] - eb[2] / 2)
    inter = area * max(dz, 0.0)
    union = float(np.prod(ea) + np.prod(eb) - inter)
    return inter / union if union > 0 else 0.0
