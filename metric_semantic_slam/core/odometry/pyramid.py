"""Image pyramids of RGB-D frames for coarse-to-fine dense tracking (torch, any device).

Convention: level 0 is full resolution; level ``l`` halves the size ``l`` times by 2x2 averaging, so
the intrinsics scale as ``f_l = f / 2^l`` and ``c_l = (c + 0.5) / 2^l - 0.5`` (pixel centres at integers).
Depth is in meters, 0 = invalid; intensity is gray in [0, 1].
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..camera import PinholeCamera

__all__ = ["PyramidLevel", "rgb_to_intensity", "build_pyramid", "vertex_map", "normal_map"]

# A 2x2 depth block whose valid samples spread more than this fraction of their mean straddles a depth
# edge; averaging it would invent a surface in mid-air, so the coarse pixel is marked invalid instead.
_DEPTH_EDGE_REL = 0.05


@dataclass
class PyramidLevel:
    """One pyramid level of an RGB-D frame.

    Shape: intensity, depth, grad_x, grad_y (H, W); vertices, normals (H, W, 3) in the camera frame;
    depth_valid, normal_valid (H, W) bool. ``intrinsics`` is ``(fx, fy, cx, cy)`` at this level.
    """

    intensity: torch.Tensor
    depth: torch.Tensor
    grad_x: torch.Tensor
    grad_y: torch.Tensor
    vertices: torch.Tensor
    normals: torch.Tensor
    depth_valid: torch.Tensor
    normal_valid: torch.Tensor
    intrinsics: tuple[float, float, float, float]
    #: Per-level quantities derived once and reused while the level serves as a reference (tracker-owned).
    cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.depth.shape)  # type: ignore[return-value]


def rgb_to_intensity(color: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """Gray intensity in [0, 1] (ITU-R BT.601 luma weights).

    Shape: color (H, W, 3) uint8 RGB (or (H, W) gray) -> (H, W) float32.
    """
    if (isinstance(color, np.ndarray) and torch.device(device).type == "cpu" and color.dtype == np.uint8
            and color.ndim == 3 and color.shape[2] == 3):
        # cv2 does the same weighted sum ~10x faster than torch on CPU.
        gray = cv2.transform(color.astype(np.float32), np.array([[0.299, 0.587, 0.114]], np.float32) / 255.0)
        return torch.from_numpy(np.ascontiguousarray(gray.reshape(color.shape[:2]), dtype=np.float32))
    c = torch.as_tensor(np.ascontiguousarray(color) if isinstance(color, np.ndarray) else color, device=device)
    c = c.to(torch.float32)
    if c.ndim == 2:
        return c / 255.0
    if c.ndim != 3 or c.shape[2] < 3:
        raise ValueError(f"color must be (H, W, 3) or (H, W), got {tuple(c.shape)}")
    return (0.299 * c[..., 0] + 0.587 * c[..., 1] + 0.114 * c[..., 2]) / 255.0


def _downsample_depth(depth: torch.Tensor) -> torch.Tensor:
    h, w = depth.shape[0] // 2 * 2, depth.shape[1] // 2 * 2
    blocks = depth[:h, :w].reshape(h // 2, 2, w // 2, 2).permute(0, 2, 1, 3).reshape(h // 2, w // 2, 4)
    valid = blocks > 0
    count = valid.sum(-1)
    mean = blocks.sum(-1) / count.clamp(min=1)
    big = torch.where(valid, blocks, torch.full_like(blocks, float("inf")))
    lo = big.min(-1).values
    hi = torch.where(valid, blocks, torch.zeros_like(blocks)).max(-1).values
    ok = (count > 0) & ((hi - lo) <= _DEPTH_EDGE_REL * mean)
    return torch.where(ok, mean, torch.zeros_like(mean))


def _downsample_image(img: torch.Tensor) -> torch.Tensor:
    h, w = img.shape[0] // 2 * 2, img.shape[1] // 2 * 2
    return F.avg_pool2d(img[None, None, :h, :w], 2)[0, 0]


def _gradients(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # Central differences; the one-pixel border gets zero gradient so it never drives the solver.
    gx = torch.zeros_like(img)
    gy = torch.zeros_like(img)
    gx[:, 1:-1] = 0.5 * (img[:, 2:] - img[:, :-2])
    gy[1:-1, :] = 0.5 * (img[2:, :] - img[:-2, :])
    return gx, gy


def vertex_map(depth: torch.Tensor, intrinsics: tuple[float, float, float, float]) -> torch.Tensor:
    """Back-project a depth map (z in meters, 0 = invalid gives the origin).

    Shape: depth (H, W) -> (H, W, 3).
    """
    fx, fy, cx, cy = intrinsics
    h, w = depth.shape
    v, u = torch.meshgrid(torch.arange(h, device=depth.device, dtype=depth.dtype),
                          torch.arange(w, device=depth.device, dtype=depth.dtype), indexing="ij")
    return torch.stack([(u - cx) / fx * depth, (v - cy) / fy * depth, depth], dim=-1)


def normal_map(vertices: torch.Tensor, depth_valid: torch.Tensor, max_rel_jump: float = 0.05
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit normals from central differences of the vertex map, oriented towards the camera.

    Shape: vertices (H, W, 3), depth_valid (H, W) -> normals (H, W, 3), normal_valid (H, W).
    """
    n = torch.zeros_like(vertices)
    ok = torch.zeros_like(depth_valid)
    dx = vertices[1:-1, 2:] - vertices[1:-1, :-2]
    dy = vertices[2:, 1:-1] - vertices[:-2, 1:-1]
    cr = torch.linalg.cross(dx, dy, dim=-1)
    norm = cr.norm(dim=-1, keepdim=True)
    inner = cr / norm.clamp(min=1e-12)
    z = vertices[1:-1, 1:-1, 2]
    # Neighbours across a depth discontinuity give a normal of a surface that does not exist.
    jump = torch.maximum(dx[..., 2].abs(), dy[..., 2].abs()) <= 2 * max_rel_jump * z
    v_ok = (depth_valid[1:-1, 2:] & depth_valid[1:-1, :-2] & depth_valid[2:, 1:-1] & depth_valid[:-2, 1:-1]
            & depth_valid[1:-1, 1:-1] & jump & (norm[..., 0] > 0))
    flip = (inner * vertices[1:-1, 1:-1]).sum(-1, keepdim=True) > 0
    inner = torch.where(flip, -inner, inner)
    n[1:-1, 1:-1] = torch.where(v_ok[..., None], inner, torch.zeros_like(inner))
    ok[1:-1, 1:-1] = v_ok
    return n, ok


def build_pyramid(intensity: torch.Tensor, depth: torch.Tensor, camera: PinholeCamera, levels: int,
                  min_depth_m: float = 0.1, max_depth_m: float = 6.0, first_geometry_level: int = 0
                  ) -> list[PyramidLevel]:
    """Pyramid of ``levels`` levels, finest first.

    Levels below ``first_geometry_level`` (unused by a tracker that starts coarser) get no vertices,
    normals or gradients: those fields are empty ``(0,)``-shaped tensors and ``normal_valid`` is all False.
    Shape: intensity (H, W) float in [0, 1], depth (H, W) meters -> list of :class:`PyramidLevel`.
    Non-finite depth or depth outside ``[min_depth_m, max_depth_m]`` becomes invalid (0).
    """
    if intensity.shape != depth.shape:
        raise ValueError(f"intensity {tuple(intensity.shape)} and depth {tuple(depth.shape)} differ")
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    if intensity.device.type == "cpu" and depth.device.type == "cpu":
        return _build_pyramid_numpy(intensity.to(torch.float32).numpy(), depth.to(torch.float32).numpy(), camera,
                                    levels, min_depth_m, max_depth_m, first_geometry_level)
    d = torch.nan_to_num(depth.to(torch.float32), nan=0.0, posinf=0.0, neginf=0.0)
    d = torch.where((d >= min_depth_m) & (d <= max_depth_m), d, torch.zeros_like(d))
    img = intensity.to(torch.float32)
    fx, fy, cx, cy = camera.fx, camera.fy, camera.cx, camera.cy
    out: list[PyramidLevel] = []
    for level in range(levels):
        if level > 0:
            d = _downsample_depth(d)
            img = _downsample_image(img)
            fx, fy, cx, cy = fx / 2, fy / 2, (cx + 0.5) / 2 - 0.5, (cy + 0.5) / 2 - 0.5
        k = (fx, fy, cx, cy)
        valid = d > 0
        if level < first_geometry_level:
            empty = torch.zeros(0, device=d.device)
            out.append(PyramidLevel(img, d, empty, empty, empty, empty, valid, torch.zeros_like(valid), k))
            continue
        verts = vertex_map(d, k)
        normals, nvalid = normal_map(verts, valid)
        gx, gy = _gradients(img)
        out.append(PyramidLevel(img, d, gx, gy, verts, normals, valid, nvalid, k))
    return out



# ---------------------------------------------------------------- CPU fast path (numpy + cv2)
# The same computations as the torch functions above, written for numpy: on a CPU, torch's per-op
# overhead made the pyramid cost ~35 ms per 640x480 frame; this path takes a few ms. Results agree
# with the torch path to float32 rounding (see test_odometry_pyramid.py).

_RAY_CACHE: dict = {}


def _rays_np(h: int, w: int, k: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    key = (h, w, k)
    if key not in _RAY_CACHE:
        if len(_RAY_CACHE) > 32:
            _RAY_CACHE.clear()
        fx, fy, cx, cy = k
        rx = ((np.arange(w, dtype=np.float32) - np.float32(cx)) / np.float32(fx))[None, :].repeat(h, 0)
        ry = ((np.arange(h, dtype=np.float32) - np.float32(cy)) / np.float32(fy))[:, None].repeat(w, 1)
        _RAY_CACHE[key] = (rx, ry)
    return _RAY_CACHE[key]


def _downsample_depth_np(d: np.ndarray) -> np.ndarray:
    h, w = d.shape[0] // 2 * 2, d.shape[1] // 2 * 2
    a, b, c, e = d[0:h:2, 0:w:2], d[0:h:2, 1:w:2], d[1:h:2, 0:w:2], d[1:h:2, 1:w:2]
    va, vb, vc, ve = a > 0, b > 0, c > 0, e > 0
    count = va.astype(np.float32) + vb + vc + ve
    mean = (a + b + c + e) / np.maximum(count, 1.0)
    inf = np.float32(np.inf)
    lo = np.minimum(np.minimum(np.where(va, a, inf), np.where(vb, b, inf)),
                    np.minimum(np.where(vc, c, inf), np.where(ve, e, inf)))
    hi = np.maximum(np.maximum(a, b), np.maximum(c, e))  # invalid samples are 0, so they never win
    ok = (count > 0) & ((hi - lo) <= np.float32(_DEPTH_EDGE_REL) * mean)
    return np.where(ok, mean, np.float32(0.0)).astype(np.float32)


def _normal_map_np(vx: np.ndarray, vy: np.ndarray, vz: np.ndarray, valid: np.ndarray, max_rel_jump: float = 0.05
                   ) -> tuple[np.ndarray, np.ndarray]:
    h, w = vz.shape
    n = np.zeros((h, w, 3), np.float32)
    ok = np.zeros((h, w), bool)
    dxx, dxy, dxz = (a[1:-1, 2:] - a[1:-1, :-2] for a in (vx, vy, vz))
    dyx, dyy, dyz = (a[2:, 1:-1] - a[:-2, 1:-1] for a in (vx, vy, vz))
    cx_ = dxy * dyz - dxz * dyy
    cy_ = dxz * dyx - dxx * dyz
    cz_ = dxx * dyy - dxy * dyx
    norm = np.sqrt(cx_ * cx_ + cy_ * cy_ + cz_ * cz_)
    inv = 1.0 / np.maximum(norm, 1e-12)
    z = vz[1:-1, 1:-1]
    jump = np.maximum(np.abs(dxz), np.abs(dyz)) <= 2 * max_rel_jump * z
    v_ok = (valid[1:-1, 2:] & valid[1:-1, :-2] & valid[2:, 1:-1] & valid[:-2, 1:-1] & valid[1:-1, 1:-1] & jump
            & (norm > 0))
    # Orient towards the camera: flip where the normal points along the viewing ray.
    sign = np.where((cx_ * vx[1:-1, 1:-1] + cy_ * vy[1:-1, 1:-1] + cz_ * z) > 0, -inv, inv)
    sign = np.where(v_ok, sign, np.float32(0.0)).astype(np.float32)
    n[1:-1, 1:-1, 0] = cx_ * sign
    n[1:-1, 1:-1, 1] = cy_ * sign
    n[1:-1, 1:-1, 2] = cz_ * sign
    ok[1:-1, 1:-1] = v_ok
    return n, ok


def _build_pyramid_numpy(img: np.ndarray, depth: np.ndarray, camera: PinholeCamera, levels: int,
                         min_depth_m: float, max_depth_m: float, first_geometry_level: int) -> list[PyramidLevel]:
    d = np.nan_to_num(depth, nan=0.0, posinf=0.0, neginf=0.0)
    d = np.where((d >= min_depth_m) & (d <= max_depth_m), d, np.float32(0.0)).astype(np.float32)
    img = np.ascontiguousarray(img, dtype=np.float32)
    fx, fy, cx, cy = camera.fx, camera.fy, camera.cx, camera.cy
    out: list[PyramidLevel] = []
    t = torch.from_numpy
    for level in range(levels):
        if level > 0:
            d = _downsample_depth_np(d)
            h2, w2 = img.shape[0] // 2 * 2, img.shape[1] // 2 * 2
            img = cv2.resize(img[:h2, :w2], (w2 // 2, h2 // 2), interpolation=cv2.INTER_AREA)
            fx, fy, cx, cy = fx / 2, fy / 2, (cx + 0.5) / 2 - 0.5, (cy + 0.5) / 2 - 0.5
        k = (fx, fy, cx, cy)
        valid = d > 0
        if level < first_geometry_level:
            empty = torch.zeros(0)
            out.append(PyramidLevel(t(img), t(d), empty, empty, empty, empty, t(valid),
                                    torch.zeros(valid.shape, dtype=torch.bool), k))
            continue
        rx, ry = _rays_np(d.shape[0], d.shape[1], k)
        vx, vy = rx * d, ry * d
        verts = np.stack([vx, vy, d], axis=-1)
        normals, nvalid = _normal_map_np(vx, vy, d, valid)
        gx = np.zeros_like(img)
        gy = np.zeros_like(img)
        gx[:, 1:-1] = 0.5 * (img[:, 2:] - img[:, :-2])
        gy[1:-1, :] = 0.5 * (img[2:, :] - img[:-2, :])
        out.append(PyramidLevel(t(img), t(d), t(gx), t(gy), t(verts), t(normals), t(valid), t(nvalid), k))
    return out
