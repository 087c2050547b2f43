"""Analytic scenes for the mapping tests: exact depth images of a plane and a sphere."""
from __future__ import annotations

import numpy as np

from metric_semantic_slam.core.camera import PinholeCamera

__all__ = ["small_camera", "look_at_T", "sphere_depth", "plane_depth"]


def small_camera(width: int = 160, height: int = 120) -> PinholeCamera:
    f = 0.8 * width
    return PinholeCamera(width, height, f, f, (width - 1) / 2, (height - 1) / 2)


def look_at_T(eye, target, up=(0.0, -1.0, 0.0)) -> np.ndarray:
    """T_world_camera of an optical-frame camera at ``eye`` looking at ``target`` (y down ~ -up)."""
    eye, target, up = (np.asarray(a, dtype=np.float64) for a in (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(up, z)
    if np.linalg.norm(x) < 1e-6:
        x = np.cross([1.0, 0.0, 0.0], z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, :3] = np.stack([x, y, z], axis=1)
    T[:3, 3] = eye
    return T


def _rays_world(camera: PinholeCamera, T_world_camera: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d_cam = camera.ray_directions().reshape(-1, 3)  # z = 1
    return T_world_camera[:3, 3], d_cam @ T_world_camera[:3, :3].T


def sphere_depth(camera: PinholeCamera, T_world_camera: np.ndarray, centre, radius: float) -> np.ndarray:
    """Depth (z, meters) of a sphere seen by the camera; 0 where the ray misses. Shape: (H, W) float32."""
    o, d = _rays_world(camera, T_world_camera)
    oc = o - np.asarray(centre, dtype=np.float64)
    a = np.einsum("ij,ij->i", d, d)
    b = 2.0 * d @ oc
    c = oc @ oc - radius**2
    disc = b * b - 4 * a * c
    t = np.where(disc >= 0, (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a), 0.0)
    t = np.where(t > 0, t, 0.0)  # t is the z depth because camera rays have z = 1
    return t.reshape(camera.shape).astype(np.float32)


def plane_depth(camera: PinholeCamera, T_world_camera: np.ndarray, point, normal) -> np.ndarray:
    """Depth of the plane through ``point`` with ``normal``; 0 where parallel or behind. Shape: (H, W)."""
    o, d = _rays_world(camera, T_world_camera)
    n = np.asarray(normal, dtype=np.float64)
    den = d @ n
    with np.errstate(divide="ignore", invalid="ignore"):
        t = ((np.asarray(point) - o) @ n) / den
    t = np.where(np.isfinite(t) & (t > 0), t, 0.0)
    return t.reshape(camera.shape).astype(np.float32)


