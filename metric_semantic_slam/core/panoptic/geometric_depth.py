"""Per-pixel geometry of a depth image for the ``geometric`` backend: normals, speckle fill, up direction.

``depth_normals`` gives unit normals of a back-projected point map, ``creases`` how the surface folds between
neighbours (concave like a box against a sofa, or convex like a box's own edge), ``fill_depth_speckles`` fills
depth dropouts inside one surface from their neighbours, ``estimate_up`` finds the up direction (-gravity) from
the normals when no gravity vector is given (a mean shift in shrinking cones around "camera y points down", see
the module doc of :mod:`.geometric`).

Frames and units: the camera optical frame (x right, y down, z forward), meters. Point maps are
(h, w, 3) float32, depth (h, w) float32 with 0 = invalid, masks (h, w) bool; directions are unit vectors
in the camera frame.
"""
from __future__ import annotations

import cv2
import numpy as np

__all__ = ["depth_normals", "creases", "fill_depth_speckles", "estimate_up", "norm3", "floor_basis"]


def depth_normals(points: np.ndarray, valid: np.ndarray, step_px: int = 2, smooth_px: int = 5,
                  edge_ratio: float = 0.04) -> tuple[np.ndarray, np.ndarray]:
    """Unit normals of a point map, facing the camera (n . p < 0).

    Shape: points (H, W, 3) camera frame, valid (H, W) bool -> normals (H, W, 3) float32,
    normal_valid (H, W) bool. Differences that straddle a depth discontinuity are invalid.
    """
    H, W = valid.shape
    k = step_px
    # one contiguous plane per component: the same float32 arithmetic as on the (H, W, 3) array, ~1.7x faster
    X, Y, Z = cv2.split(np.ascontiguousarray(points, np.float32))

    def central_difference(a: np.ndarray, axis: int) -> np.ndarray:
        d = np.zeros_like(a)
        if axis == 1:
            np.subtract(a[:, 2 * k:], a[:, :W - 2 * k], out=d[:, k:W - k])
        else:
            np.subtract(a[2 * k:], a[:H - 2 * k], out=d[k:H - k])
        return d

    ax, ay, az = (central_difference(a, 1) for a in (X, Y, Z))
    bx, by, bz = (central_difference(a, 0) for a in (X, Y, Z))
    okx = np.zeros_like(valid)
    oky = np.zeros_like(valid)
    okx[:, k:W - k] = valid[:, 2 * k:] & valid[:, :W - 2 * k] & valid[:, k:W - k]
    oky[k:H - k] = valid[2 * k:] & valid[:H - 2 * k] & valid[k:H - k]
    zlim = edge_ratio * 2 * k * np.maximum(Z, 1e-3) + 0.02
    okx &= np.abs(az) < zlim * 2
    oky &= np.abs(bz) < zlim * 2
    ok = okx & oky
    n = [ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx]
    for c in n:
        c[~ok] = 0.0
    length = np.maximum(np.sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2]), 1e-12)
    n = [c / length for c in n]
    if smooth_px > 1:
        n = [cv2.blur(c, (smooth_px, smooth_px)) for c in n]
    norm = np.sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2])
    ok = ok & (norm > 0.5)  # neighbours mostly agree
    length = np.maximum(norm, 1e-12)
    n = [c / length for c in n]
    sign = np.where(n[0] * X + n[1] * Y + n[2] * Z > 0, np.float32(-1.0), np.float32(1.0))
    return cv2.merge([c * sign for c in n]), ok


def creases(points: np.ndarray, normals: np.ndarray, normal_valid: np.ndarray, step_px: int):
    """How the surface folds between pixel pairs ``step_px`` apart along each image axis: for a pair i, j
    with offset d = p_j - p_i, ``d_hat . (n_j - n_i)`` is negative on a concave crease (two surfaces meeting
    like a box standing against a sofa), positive on a convex one (a box's own edge), ~0 on a flat surface.
    Yields (slice of i, slice of j, value) per axis; pairs without two valid normals are 0.
    Shape: (h, w, 3) x2, (h, w) bool -> values (h - k, w) and (h, w - k) float32."""
    for axis in (0, 1):
        sl_i = [slice(None), slice(None)]
        sl_j = [slice(None), slice(None)]
        sl_i[axis] = slice(0, -step_px)
        sl_j[axis] = slice(step_px, None)
        sl_i, sl_j = tuple(sl_i), tuple(sl_j)
        d = points[sl_j] - points[sl_i]
        d /= np.maximum(norm3(d), 1e-6)[..., None]
        value = np.einsum("hwc,hwc->hw", d, normals[sl_j] - normals[sl_i])
        yield sl_i, sl_j, np.where(normal_valid[sl_i] & normal_valid[sl_j], value, 0.0).astype(np.float32)


def fill_depth_speckles(z: np.ndarray, valid: np.ndarray, window_px: int = 5, edge_ratio: float = 0.04,
                        min_fraction: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Fill depth dropouts inside one surface (speckle on dark or glossy materials) from the neighbours.

    An invalid pixel takes the mean depth of the valid pixels in its ``window_px`` square when at least
    ``min_fraction`` of them are valid and they all lie within ``edge_ratio * z + 1 cm`` of each other
    (one surface: a hole between two objects at different depths stays open, so they are not bridged).
    Shape: (h, w) float32 meters (0 = invalid), (h, w) bool -> same (new arrays).
    """
    k = (window_px, window_px)
    kernel = np.ones(k, np.uint8)
    vf = valid.astype(np.float32)
    cnt = cv2.blur(vf, k, borderType=cv2.BORDER_CONSTANT)
    zs = cv2.blur(z * vf, k, borderType=cv2.BORDER_CONSTANT)
    z_hi = cv2.dilate(np.where(valid, z, 0.0).astype(np.float32), kernel)
    z_lo = cv2.erode(np.where(valid, z, np.float32(1e6)).astype(np.float32), kernel)
    mean = zs / np.maximum(cnt, 1e-6)
    fill = ~valid & (cnt >= min_fraction) & (z_hi - z_lo < edge_ratio * mean + 0.01)
    z = z.copy()
    z[fill] = mean[fill]
    return z, valid | fill


def floor_basis(up: np.ndarray) -> np.ndarray:
    """Two orthonormal directions perpendicular to ``up``, as the columns of a (3, 2) float32 matrix: points
    ``P @ floor_basis(up)`` are their coordinates on the floor plane (dropped along gravity).
    Shape: (3,) unit vector -> (3, 2)."""
    up = np.asarray(up, np.float64)
    e1 = np.cross(up, [1.0, 0.0, 0.0] if abs(up[0]) < 0.9 else [0.0, 0.0, 1.0])
    e1 /= np.linalg.norm(e1)
    return np.stack([e1, np.cross(up, e1)], axis=1).astype(np.float32)


def norm3(v: np.ndarray) -> np.ndarray:
    """Euclidean norm over the last axis (3 components), same float dtype. Shape: (..., 3) -> (...)."""
    return np.sqrt(v[..., 0] * v[..., 0] + v[..., 1] * v[..., 1] + v[..., 2] * v[..., 2])


def estimate_up(normals: np.ndarray, normal_valid: np.ndarray,
                initial_up: np.ndarray = np.array([0.0, -1.0, 0.0])) -> np.ndarray | None:
    """Up direction (camera frame) by mean shift over normals (step 2 of the :mod:`.geometric` module
    doc: assumes the camera within about 60 degrees of upright). None if no support.

    Shape: normals (H, W, 3), normal_valid (H, W) -> (3,) unit vector or None.
    """
    n = normals[normal_valid][::2].astype(np.float64)
    if len(n) < 50:
        return None
    up = np.asarray(initial_up, np.float64)
    for cone_deg in (60.0, 45.0, 30.0, 15.0, 10.0):
        c = n @ up
        sel = np.abs(c) > np.cos(np.deg2rad(cone_deg))
        if sel.sum() < 30:
            return None
        m = (n[sel] * np.sign(c[sel])[:, None]).sum(axis=0)
        up = m / np.linalg.norm(m)
    return up
