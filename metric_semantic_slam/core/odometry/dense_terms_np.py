"""CPU (numpy + cv2) linear systems of the dense tracking terms, for :class:`RgbdTracker` on a CPU.

The same residuals as the torch terms of :mod:`.rgbd_tracker` (point-to-plane ICP with projective
association; photometric error of reference pixels warped into the current image), arranged for a CPU:
structure-of-arrays float32 data, one gather per lookup, and everything that depends on the reference
alone computed once per reference level and cached on it (``PyramidLevel.cache``), so a keyframe that
serves 20 frames pays for its point selection and Jacobians once.

Photometric Jacobians are inverse-compositional (Baker & Matthews 2004): the image gradient is the
reference's at the reference pixel instead of the current image's at the warped pixel. Both agree at the
solution (the images match there), so the fixed point is unchanged, while the Jacobians, and the point
selection, are computed once per keyframe instead of once per iteration.

Frames: ``T = T_ref_cur``; updates ``T <- exp(xi) T`` with ``xi = (rho, phi)``; the returned systems are
``H = J^T W J`` (6, 6) and ``b = J^T W r`` (6,) with residuals normalised by their sigma.
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from .pyramid import PyramidLevel

__all__ = ["LinearSystem", "remap_points", "huber_weights_np", "icp_reference_pack", "icp_current_points", "rgb_reference_points",
           "icp_system_np", "rgb_system_np", "subsample_indices", "fit_brightness_affine"]

#: ``T_ref_cur (4, 4) -> (H (6, 6), b (6,), sum of weighted squared residuals, residual count)``.
LinearSystem = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, float, int]]


def huber_weights_np(r: np.ndarray, k: float) -> np.ndarray:
    """IRLS weights of the Huber loss on normalised residuals. Shape: (N,) -> (N,) float32."""
    a = np.abs(r)
    return np.where(a <= k, np.float32(1.0), np.float32(k) / np.maximum(a, np.float32(1e-12))).astype(np.float32)


def subsample_indices(idx: np.ndarray, max_points: int) -> np.ndarray:
    """At most ``max_points`` of ``idx``, evenly strided (deterministic). Shape: (N,) -> (M,)."""
    if idx.size <= max_points:
        return idx
    pick = (np.arange(max_points, dtype=np.float64) * (idx.size / max_points)).astype(np.int64)
    return idx[pick]


def remap_points(image: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``image`` at float pixel coordinates (border replicated), via cv2.remap.

    cv2 limits map sizes to < 32767 per side, so the points are laid out in rows of 4096.
    Shape: image (H, W) or (H, W, C) float32; u, v (N,) -> (N,) or (N, C).
    """
    n = u.size
    if n <= 4096:
        return cv2.remap(image, u.reshape(1, -1), v.reshape(1, -1), cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)[0]
    rows = -(-n // 4096)
    mu = np.zeros(rows * 4096, np.float32)
    mv = np.zeros(rows * 4096, np.float32)
    mu[:n] = u
    mv[:n] = v
    out = cv2.remap(image, mu.reshape(rows, 4096), mv.reshape(rows, 4096), cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    return out.reshape((rows * 4096,) + out.shape[2:])[:n]


def _np(x) -> np.ndarray:
    return x.numpy() if hasattr(x, "numpy") else np.asarray(x)


def icp_reference_pack(level: PyramidLevel) -> np.ndarray:
    """Vertices and normals of a reference level packed per pixel (normals zero where invalid), cached.

    Shape: -> (H * W, 6) float32.
    """
    pack = level.cache.get("icp_pack")
    if pack is None:
        h, w = level.shape
        pack = np.empty((h * w, 6), np.float32)
        pack[:, :3] = _np(level.vertices).reshape(-1, 3)
        pack[:, 3:] = _np(level.normals).reshape(-1, 3) * _np(level.normal_valid).reshape(-1, 1)
        level.cache["icp_pack"] = pack
    return pack


def icp_current_points(level: PyramidLevel, max_points: int) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Subsampled current vertices and normals with valid normals, cached per ``max_points``.

    Returns ``(points (3, M), normals (3, M), kept fraction, number of valid-depth pixels)``.
    """
    key = ("icp_cur", max_points)
    got = level.cache.get(key)
    if got is None:
        idx = np.flatnonzero(_np(level.normal_valid).reshape(-1))
        sub = subsample_indices(idx, max_points)
        pts = np.ascontiguousarray(_np(level.vertices).reshape(-1, 3)[sub].T)
        nrm = np.ascontiguousarray(_np(level.normals).reshape(-1, 3)[sub].T)
        frac = sub.size / max(idx.size, 1)
        got = (pts, nrm, frac, max(int(_np(level.depth_valid).sum()), 1))
        level.cache[key] = got
    return got


def rgb_reference_points(level: PyramidLevel, min_gradient: float, max_points: int, sigma_rgb: float
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """High-gradient reference pixels with depth, their intensities and photometric Jacobians, cached.

    Pixels marked in ``level.cache["dynamic"]`` (moving objects, see ``vio.py``) are left out.
    Returns ``(points (3, N) in the reference camera, intensity (N,), J (6, N) / sigma_rgb)``.
    """
    key = ("rgb_ref", min_gradient, max_points, sigma_rgb)
    got = level.cache.get(key)
    if got is None:
        fx, fy, _, _ = level.intrinsics
        gx = _np(level.grad_x).reshape(-1)
        gy = _np(level.grad_y).reshape(-1)
        sel = _np(level.depth_valid).reshape(-1) & (gx * gx + gy * gy > min_gradient ** 2)
        excluded = level.cache.get("dynamic")
        if excluded is not None:
            sel &= ~excluded.reshape(-1)
        idx = subsample_indices(np.flatnonzero(sel), max_points)
        P = np.ascontiguousarray(_np(level.vertices).reshape(-1, 3)[idx].T)
        inten = _np(level.intensity).reshape(-1)[idx].astype(np.float32)
        gxs, gys = gx[idx], gy[idx]
        iz = 1.0 / P[2]
        jp = np.stack([gxs * fx * iz, gys * fy * iz, -(gxs * fx * P[0] + gys * fy * P[1]) * iz * iz])
        J = -np.concatenate([jp, np.cross(P, jp, axis=0)], axis=0) / np.float32(sigma_rgb)
        got = (P, inten, np.ascontiguousarray(J, dtype=np.float32))
        level.cache[key] = got
    return got


def icp_system_np(pack: np.ndarray, ref_shape: tuple[int, int], ref_k: tuple[float, float, float, float],
                  pts: np.ndarray, nrm: np.ndarray, R: np.ndarray, t: np.ndarray, max_dist_m: float,
                  min_normal_cos: float, sigma_m: float, depth_weighting: bool, huber_k: float
                  ) -> tuple[np.ndarray, np.ndarray, float, int, int]:
    """Point-to-plane ICP system; returns ``(H, b, weighted squared sum, count, inliers)``.

    Shape: pack (Hr * Wr, 6), pts/nrm (3, N) current frame, R (3, 3), t (3,) of ``T_ref_cur``.
    """
    fx, fy, cx, cy = ref_k
    h, w = ref_shape
    q = R @ pts + t[:, None]
    z = q[2]
    iz = 1.0 / np.maximum(z, np.float32(1e-6))
    u = np.rint(fx * q[0] * iz + cx)
    v = np.rint(fy * q[1] * iz + cy)
    sel = np.flatnonzero((z > 1e-3) & (u >= 0) & (u < w) & (v >= 0) & (v < h))
    # np.take: numpy's [] fancy indexing on 2-D arrays is several times slower.
    g = np.take(pack, (np.take(v, sel) * w + np.take(u, sel)).astype(np.intp), axis=0).T
    qs = np.take(q, sel, axis=1)
    d = qs - g[:3]
    nr = g[3:]
    nc = R @ np.take(nrm, sel, axis=1)
    ok = (np.einsum("ij,ij->j", d, d) < max_dist_m ** 2) & (np.einsum("ij,ij->j", nc, nr) > min_normal_cos)
    k = np.flatnonzero(ok)
    n_ok = int(k.size)
    if n_ok == 0:
        return np.zeros((6, 6)), np.zeros(6), 0.0, 0, 0
    nr = np.take(nr, k, axis=1)
    qk = np.take(qs, k, axis=1)
    nx, ny, nz = nr
    qx, qy, qz = qk
    inv_sigma = np.float32(1.0 / sigma_m)
    if depth_weighting:
        inv_sigma = inv_sigma / np.maximum(qz, np.float32(0.5)) ** 2
    r = np.einsum("ij,ij->j", nr, np.take(d, k, axis=1)) * inv_sigma
    J = np.stack([nx, ny, nz, qy * nz - qz * ny, qz * nx - qx * nz, qx * ny - qy * nx]) * inv_sigma
    wgt = huber_weights_np(r, huber_k)
    Jw = J * wgt
    H = (Jw @ J.T).astype(np.float64)
    b = (Jw @ r).astype(np.float64)
    return H, b, float(np.dot(r * r, wgt)), n_ok, n_ok


def fit_brightness_affine(ref: np.ndarray, cur: np.ndarray, max_gain_ratio: float = 4.0) -> tuple[float, float]:
    """Robust fit of ``cur ~ gain * ref + offset`` (a global lighting / exposure change between images).

    Least squares, then once more on the samples within 3 MADs of the first fit (occlusions, specular
    spots and moving objects are not lighting). Returns ``(1, 0)`` when the samples cannot tell gain
    from offset (fewer than 16, or no intensity spread); the gain is kept within
    ``[1 / max_gain_ratio, max_gain_ratio]``. Shape: ref, cur (N,) -> (gain, offset).
    """
    x = np.asarray(ref, dtype=np.float64)
    y = np.asarray(cur, dtype=np.float64)
    gain, offset = 1.0, 0.0
    for _ in range(2):
        if x.size < 16:
            return 1.0, 0.0
        mx, my = x.mean(), y.mean()
        vx = float(np.dot(x - mx, x - mx))
        if not vx > 1e-8 * x.size:
            return 1.0, 0.0
        gain = float(np.clip(np.dot(x - mx, y - my) / vx, 1.0 / max_gain_ratio, max_gain_ratio))
        offset = float(my - gain * mx)
        res = y - (gain * x + offset)
        mad = float(np.median(np.abs(res - np.median(res))))
        keep = np.abs(res) <= 3.0 * 1.4826 * mad + 1e-6
        x, y = x[keep], y[keep]
    return gain, offset


def rgb_system_np(P: np.ndarray, inten: np.ndarray, J: np.ndarray, cur_intensity: np.ndarray,
                  cur_depth: np.ndarray, cur_k: tuple[float, float, float, float], R: np.ndarray, t: np.ndarray,
                  sigma_rgb: float, huber_k: float, occlusion_rel: float, offset_compensation: bool,
                  cur_stack: np.ndarray | None = None, cur_excluded: np.ndarray | None = None,
                  affine_compensation: bool = False) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Photometric system; returns ``(H, b, weighted squared sum, count)``.

    ``affine_compensation``: residuals are taken against ``gain * I_ref + offset`` with the pair's
    brightness change fitted robustly at this pose (:func:`fit_brightness_affine`), so a global lighting
    change is not read as motion; ``offset_compensation`` removes only the median residual.

    Jacobians are the precomputed inverse-compositional ``J``, or, when ``cur_stack`` (the current
    intensity and its x/y gradients as a 3-channel image) is given, forward-compositional ones from the
    current gradients at the warped points. Samples landing on ``cur_excluded`` pixels (e.g. a moving
    object, whose depth was removed) are dropped: without it an invalid current depth counts as visible.
    Shape: P (3, N) reference points, inten (N,), J (6, N); cur_intensity / cur_depth (H, W) float32;
    cur_stack (H, W, 3) float32; cur_excluded (H, W) bool.
    """
    fx, fy, cx, cy = cur_k
    h, w = cur_depth.shape
    p = R.T @ (P - t[:, None])
    z = p[2]
    iz = 1.0 / np.maximum(z, np.float32(1e-6))
    u = (fx * p[0] * iz + cx).astype(np.float32)
    v = (fy * p[1] * iz + cy).astype(np.float32)
    inside = (z > 1e-3) & (u >= 0) & (u <= w - 1) & (v >= 0) & (v <= h - 1)
    if cur_stack is None:
        ic = remap_points(cur_intensity, u, v)
    else:
        smp = remap_points(cur_stack, u, v)
        ic, gx, gy = smp[:, 0], smp[:, 1], smp[:, 2]
        jp = np.stack([gx * fx * iz, gy * fy * iz, -(gx * fx * p[0] + gy * fy * p[1]) * iz * iz])
        g = R @ jp
        J = -np.concatenate([g, np.cross(P, g, axis=0)], axis=0) * np.float32(1.0 / sigma_rgb)
    # Nearest depth: a bilinear blend across an edge would be neither surface.
    un = np.clip(np.rint(u), 0, w - 1).astype(np.intp)
    vn = np.clip(np.rint(v), 0, h - 1).astype(np.intp)
    dcur = np.take(cur_depth.reshape(-1), vn * w + un)
    ok = inside & ((dcur <= 0) | (np.abs(dcur - z) <= occlusion_rel * z))
    if cur_excluded is not None:
        ok &= ~np.take(cur_excluded.reshape(-1), vn * w + un)
    n_ok = int(ok.sum())
    if n_ok == 0:
        return np.zeros((6, 6)), np.zeros(6), 0.0, 0
    diff = ic - inten
    if affine_compensation:
        gain, offset = fit_brightness_affine(inten[ok], ic[ok])
        diff = ic - (np.float32(gain) * inten + np.float32(offset))
        if cur_stack is None:
            J = J * np.float32(gain)  # reference gradients stand in for the current ones: scale them
    elif offset_compensation:
        diff = diff - np.median(diff[ok])
    r = np.where(ok, diff * np.float32(1.0 / sigma_rgb), np.float32(0.0))
    wgt = huber_weights_np(r, huber_k) * ok
    Jw = J * wgt
    return (Jw @ J.T).astype(np.float64), (Jw @ r).astype(np.float64), float(np.dot(r * r, wgt)), n_ok
