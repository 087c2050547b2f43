"""Pinhole camera model.

Convention: optical frame (REP 103 "_optical"): z forward, x right, y down. Pixel ``(u, v)`` has
``u`` along image columns (x) and ``v`` along rows (y); the centre of the top-left pixel is (0, 0).
Depth is the z coordinate in meters (not the ray length); 0 or NaN means invalid.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["PinholeCamera"]


@dataclass(frozen=True)
class PinholeCamera:
    """Intrinsics of a pinhole camera (pixels).

    ``distortion`` holds plumb-bob ``(k1, k2, p1, p2, k3)`` coefficients for information only:
    every function here assumes rectified (undistorted) images.
    """

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    distortion: tuple[float, ...] = field(default=(0.0, 0.0, 0.0, 0.0, 0.0))

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"camera size must be positive, got {self.width}x{self.height}")
        if not (self.fx > 0 and self.fy > 0):
            raise ValueError(f"focal lengths must be positive, got fx={self.fx} fy={self.fy}")

    @property
    def K(self) -> np.ndarray:
        """3x3 intrinsic matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def shape(self) -> tuple[int, int]:
        """Image shape ``(height, width)``."""
        return (self.height, self.width)

    def scaled(self, factor: float) -> "PinholeCamera":
        """Camera for an image resized by ``factor`` (e.g. 0.5 for half resolution)."""
        return PinholeCamera(
            width=int(round(self.width * factor)),
            height=int(round(self.height * factor)),
            fx=self.fx * factor,
            fy=self.fy * factor,
            cx=(self.cx + 0.5) * factor - 0.5,
            cy=(self.cy + 0.5) * factor - 0.5,
            distortion=self.distortion,
        )

    def ray_directions(self) -> np.ndarray:
        """Per-pixel direction with z = 1 in the camera frame. Shape: (H, W, 3)."""
        u, v = np.meshgrid(np.arange(self.width), np.arange(self.height))
        x = (u - self.cx) / self.fx
        y = (v - self.cy) / self.fy
        return np.stack([x, y, np.ones_like(x)], axis=-1)

    def backproject(self, depth_m: np.ndarray) -> np.ndarray:
        """3D points in the camera frame for every pixel (invalid depth gives NaN rows... see mask).

        Shape: depth (H, W) -> points (H, W, 3); pixels with depth <= 0 or NaN get z = 0.
        """
        if depth_m.shape != self.shape:
            raise ValueError(f"depth shape {depth_m.shape} does not match camera {self.shape}")
        d = np.where(np.isfinite(depth_m) & (depth_m > 0), depth_m, 0.0)
        return self.ray_directions() * d[..., None]

    def project(self, points_camera: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates ``(u, v)`` and depth ``z`` of camera-frame points.

        Shape: points (N, 3) -> uv (N, 2) float, z (N,). Points with z <= 0 get NaN pixels.
        """
        z = points_camera[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            u = self.fx * points_camera[:, 0] / z + self.cx
            v = self.fy * points_camera[:, 1] / z + self.cy
        bad = ~(z > 0)
        u[bad] = np.nan
        v[bad] = np.nan
        return np.stack([u, v], axis=-1), z

    def to_dict(self) -> dict:
        d = asdict(self)
        d["distortion"] = list(self.distortion)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "PinholeCamera":
        """Build from ``{width, height, fx, fy, cx, cy[, distortion]}``."""
        return cls(
            width=int(d["width"]),
            height=int(d["height"]),
            fx=float(d["fx"]),
            fy=float(d["fy"]),
            cx=float(d["cx"]),
            cy=float(d["cy"]),
            distortion=tuple(float(x) for x in d.get("distortion", (0.0,) * 5)),
        )

    @classmethod
    def from_K(cls, K: np.ndarray, width: int, height: int) -> "PinholeCamera":
        return cls(width=width, height=height, fx=float(K[0, 0]), fy=float(K[1, 1]),
                   cx=float(K[0, 2]), cy=float(K[1, 2]))

    @classmethod
    def from_json(cls, path: str | Path) -> "PinholeCamera":
        return cls.from_dict(json.loads(Path(path).read_text()))
