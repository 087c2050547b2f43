"""A tiny analytic RGB-D renderer (textured planes) for odometry tests and examples.

Exact depth and a smooth procedural texture make the true relative pose known to float precision,
which the simulator's meshes and noise would blur. Not a substitute for ``sim/``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..camera import PinholeCamera

__all__ = ["Plane", "box_room", "render_planes"]


@dataclass(frozen=True)
class Plane:
    """Points ``x`` (world, m) with ``normal . x = offset``; ``label`` is a class id for semantics."""

    normal: tuple[float, float, float]
    offset: float
    label: int = 0


def box_room(half_x: float = 1.5, half_y: float = 1.2, z_back: float = 3.0, z_front: float = -2.0
             ) -> list[Plane]:
    """Six walls of a box around the origin (camera optical convention: y down, z forward)."""
    return [Plane((0, 0, 1), z_back, 1), Plane((0, 0, 1), z_front, 2), Plane((1, 0, 0), half_x, 3),
            Plane((1, 0, 0), -half_x, 4), Plane((0, 1, 0), half_y, 5), Plane((0, 1, 0), -half_y, 6)]


def _texture(p: np.ndarray, phase: float) -> np.ndarray:
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    return (0.5 + 0.18 * np.sin(6.0 * x + 1.3 * z + phase) * np.cos(5.0 * y - 0.7 * z)
            + 0.12 * np.sin(11.0 * y + 9.0 * z + 2.0 * x) + 0.08 * np.cos(13.0 * x - 7.0 * z))


def render_planes(camera: PinholeCamera, T_world_camera: np.ndarray, planes: list[Plane],
                  brightness: float = 1.0, phase: float = 0.0
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Depth, color and labels of the nearest plane along every pixel ray.

    Shape: T_world_camera (4, 4) -> depth (H, W) float32 m (0 where nothing is hit), color (H, W, 3)
    uint8, labels (H, W) uint16 (0 where nothing is hit).
    """
    if not planes:
        raise ValueError("need at least one plane")
    rays_c = camera.ray_directions()  # z = 1, so the ray parameter is the depth
    R, c = T_world_camera[:3, :3], T_world_camera[:3, 3]
    rays_w = rays_c @ R.T
    best = np.full(camera.shape, np.inf)
    labels = np.zeros(camera.shape, dtype=np.uint16)
    for pl in planes:
        n = np.asarray(pl.normal, dtype=np.float64)
        denom = rays_w @ n
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (pl.offset - n @ c) / denom
        hit = np.isfinite(t) & (t > 1e-3) & (t < best)
        best[hit] = t[hit]
        labels[hit] = pl.label
    depth = np.where(np.isfinite(best), best, 0.0)
    pts = c + rays_w * depth[..., None]
    g = np.clip(_texture(pts, phase) * brightness, 0.0, 1.0)
    g[depth == 0] = 0.0
    color = np.repeat((g * 255.0 + 0.5).astype(np.uint8)[..., None], 3, axis=2)
    return depth.astype(np.float32), color, labels
