"""Per-pixel noise (std, meters) and confidence in [0, 1] for active and stereo depth.

Both sources are described the same way, by an effective axial std ``sigma_m`` per pixel, so that
fusion can weight them by inverse variance; ``confidence = 1 / (1 + (sigma / sigma_ref)^2)`` maps it
to [0, 1] for the ``depth/confidence`` topic (0 where invalid).

Active depth (structured light / ToF): the range- and angle-dependent axial model of Nguyen, Izadi,
Lovell ("Modeling Kinect Sensor Noise for Improved 3D Reconstruction and Tracking", 3DIMPVT 2012)::

    sigma_z(z, theta) = 0.0012 + 0.0019 (z - 0.4)^2 + 0.0001 / sqrt(z) * theta^2 / (pi/2 - theta)^2

with ``theta`` the angle between viewing ray and surface normal (from the depth gradient), inflated
near depth discontinuities and holes, where these sensors produce flying pixels.

Stereo: a disparity std from the matching cues (cost margin, left-right disagreement, texture)
turned into depth by ``sigma_z = z^2 sigma_d / (f b)`` (the disparity resolution at that depth).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .camera import PinholeCamera
from .stereo import StereoResult

__all__ = [
    "ActiveConfidenceConfig",
    "StereoConfidenceConfig",
    "SourceConfidence",
    "sigma_to_confidence",
    "nguyen_sigma_m",
    "incidence_angle_rad",
    "edge_distance_px",
    "active_depth_confidence",
    "stereo_confidence",
]


@dataclass(frozen=True)
class ActiveConfidenceConfig:
    """Noise model of the active depth sensor."""

    sigma_ref_m: float = 0.02
    """Std at which the confidence is 0.5."""
    noise_scale: float = 1.0
    """Multiplies the Nguyen model (a sensor noisier than a Kinect v1 uses > 1)."""
    edge_jump_rel: float = 0.04
    """A 4-neighbour whose depth differs by more than this fraction of the depth marks a discontinuity."""
    edge_inflation: float = 4.0
    """Std is multiplied by ``1 + edge_inflation * exp(-dist / edge_scale_px)`` near edges and holes."""
    edge_scale_px: float = 1.5
    max_angle_deg: float = 85.0
    """Incidence angles are clipped here (the model diverges at 90 deg)."""

    def __post_init__(self) -> None:
        if self.sigma_ref_m <= 0 or self.noise_scale <= 0 or self.edge_scale_px <= 0:
            raise ValueError("sigma_ref_m, noise_scale and edge_scale_px must be positive")
        if self.edge_inflation < 0 or self.edge_jump_rel <= 0:
            raise ValueError("edge_inflation must be >= 0 and edge_jump_rel > 0")
        if not 0 < self.max_angle_deg < 90:
            raise ValueError("max_angle_deg must be in (0, 90)")


@dataclass(frozen=True)
class StereoConfidenceConfig:
    """Disparity noise model of the stereo matcher (calibrated on the simulator's IR pair)."""

    sigma_ref_m: float = 0.02
    sigma_d_min_px: float = 0.08
    """Disparity std of a sharp, well-textured match."""
    sigma_d_flat_px: float = 0.27
    """Added disparity std as the cost margin goes from 1 (sharp) to 0 (flat)."""
    texture_ref_std: float = 3.0
    """Std is multiplied by ``1 + (texture_ref_std / texture_std)^2`` (weak texture, weak match)."""
    edge_jump_rel: float = 0.04
    edge_inflation: float = 2.0
    """Block matching fattens foreground at discontinuities; std inflated as for active depth."""
    edge_scale_px: float = 2.0

    def __post_init__(self) -> None:
        if self.sigma_ref_m <= 0 or self.sigma_d_min_px <= 0 or self.sigma_d_flat_px < 0:
            raise ValueError("sigma_ref_m and sigma_d_min_px must be positive, sigma_d_flat_px >= 0")
        if self.texture_ref_std < 0 or self.edge_inflation < 0 or self.edge_scale_px <= 0:
            raise ValueError("texture_ref_std, edge_inflation must be >= 0 and edge_scale_px > 0")


@dataclass
class SourceConfidence:
    """Depth of one source with its noise.

    Shape: all (H, W). depth_m float32 (0 = invalid); sigma_m float32 (inf where invalid);
    confidence float32 in [0, 1] (0 where invalid); valid bool.
    """

    depth_m: np.ndarray
    sigma_m: np.ndarray
    confidence: np.ndarray
    valid: np.ndarray


def sigma_to_confidence(sigma_m: np.ndarray, sigma_ref_m: float) -> np.ndarray:
    """``1 / (1 + (sigma / sigma_ref)^2)``; 0 for inf/NaN sigma.

    Shape: (...) -> (...) float32.
    """
    s = np.asarray(sigma_m, np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        c = 1.0 / (1.0 + (s / np.float32(sigma_ref_m)) ** 2)
    return np.where(np.isfinite(s), c, 0.0).astype(np.float32)


def nguyen_sigma_m(z_m: np.ndarray, theta_rad: np.ndarray | float = 0.0, max_angle_rad: float = np.deg2rad(85),
                   dtype: type = np.float32) -> np.ndarray:
    """Axial std of a Kinect v1-like sensor (Nguyen, Izadi, Lovell 2012), meters.

    ``sigma(z, theta) = 0.0012 + 0.0019 (z - 0.4)^2 + 0.0001 / sqrt(z) * theta^2 / (pi/2 - theta)^2``,
    with ``theta`` clipped to ``max_angle_rad``; evaluated in ``dtype`` (the simulator uses float64).
    Shape: z (...), theta (...) -> sigma (...) of ``dtype``.
    """
    dt = np.dtype(dtype)
    z = np.maximum(np.asarray(z_m, dt), dt.type(1e-3))
    th = np.clip(np.asarray(theta_rad, dt), 0.0, dt.type(max_angle_rad))
    return (0.0012 + 0.0019 * (z - 0.4) ** 2 + 0.0001 / np.sqrt(z) * th**2 / (np.pi / 2 - th) ** 2).astype(dt)


def incidence_angle_rad(depth_m: np.ndarray, camera: PinholeCamera) -> np.ndarray:
    """Angle between the viewing ray and the surface normal, from the depth gradient.

    The surface tilt seen along the ray is ``tan(theta) = |grad z| * f / z`` (exact on the optical
    axis, a close approximation inside a normal field of view); the depth is box-smoothed first so the
    sensor's quantization steps do not read as tilt. Invalid pixels get 0. OpenCV's vectorised
    ``phase`` (about 0.3 deg accurate) stands in for ``arctan``, which is ten times slower.
    Shape: depth (H, W) -> theta (H, W) float32.
    """
    valid = depth_m > 0
    z = np.where(valid, depth_m, np.float32(0)).astype(np.float32, copy=False)
    zs = cv2.boxFilter(z, -1, (5, 5)) / np.maximum(cv2.boxFilter(valid.view(np.uint8).astype(np.float32), -1, (5, 5)),
                                                    np.float32(1e-6))
    gx = cv2.Sobel(zs, cv2.CV_32F, 1, 0, ksize=3, scale=camera.fx / 8.0)
    gy = cv2.Sobel(zs, cv2.CV_32F, 0, 1, ksize=3, scale=camera.fy / 8.0)
    t = cv2.magnitude(gx, gy) / np.maximum(zs, np.float32(1e-3))
    theta = cv2.phase(np.ones_like(t), t)
    theta *= valid
    return theta


def edge_distance_px(depth_m: np.ndarray, jump_rel: float) -> np.ndarray:
    """Distance (pixels) of each pixel to the nearest depth discontinuity or invalid pixel.

    Shape: depth (H, W) -> distance (H, W) float32.
    """
    valid = depth_m > 0
    z = np.where(valid, depth_m, 0).astype(np.float32)
    k = np.ones((3, 3), np.uint8)
    # Max minus min over the 3x3 neighbourhood: one pass for all directions.
    spread = cv2.dilate(z, k) - cv2.erode(np.where(valid, z, np.float32(1e9)), k)
    edge = ~valid | (spread > np.float32(jump_rel) * z)
    if not edge.any():
        return np.full(depth_m.shape, np.float32(1e4))
    return cv2.distanceTransform((~edge).astype(np.uint8), cv2.DIST_L2, 3)


def _edge_factor(depth_m: np.ndarray, jump_rel: float, inflation: float, scale_px: float) -> np.ndarray:
    if inflation == 0:
        return np.ones(depth_m.shape, np.float32)
    dist = edge_distance_px(depth_m, jump_rel)
    return cv2.exp(dist * np.float32(-1.0 / scale_px)) * np.float32(inflation) + np.float32(1.0)


def _check_depth(depth_m: np.ndarray, shape: tuple[int, int] | None = None) -> np.ndarray:
    d = np.asarray(depth_m)
    if d.ndim != 2:
        raise ValueError(f"depth must be an (H, W) array, got shape {d.shape}")
    if shape is not None and d.shape != shape:
        raise ValueError(f"depth {d.shape} does not match the camera {shape}")
    return np.where(np.isfinite(d) & (d > 0), d, 0).astype(np.float32)


def active_depth_confidence(depth_m: np.ndarray, camera: PinholeCamera,
                            config: ActiveConfidenceConfig | None = None) -> SourceConfidence:
    """Noise of an active depth image: range and incidence angle (Nguyen model) and edge/hole proximity.

    Shape: depth (H, W) meters (0/NaN invalid) -> :class:`SourceConfidence` (H, W).
    """
    c = config or ActiveConfidenceConfig()
    if camera is None:
        raise ValueError("active depth needs the camera intrinsics")
    z = _check_depth(depth_m, camera.shape)
    valid = z > 0
    theta = incidence_angle_rad(z, camera)
    sigma = nguyen_sigma_m(z, theta, np.deg2rad(c.max_angle_deg)) * np.float32(c.noise_scale)
    sigma *= _edge_factor(z, c.edge_jump_rel, c.edge_inflation, c.edge_scale_px)
    sigma = np.where(valid, sigma, np.float32(np.inf)).astype(np.float32)
    return SourceConfidence(depth_m=z, sigma_m=sigma, confidence=sigma_to_confidence(sigma, c.sigma_ref_m),
                            valid=valid)


def stereo_confidence(stereo: StereoResult, config: StereoConfidenceConfig | None = None) -> SourceConfidence:
    """Noise of stereo depth from its matching cues and the disparity resolution at that depth.

    ``sigma_d = sqrt((s_min + s_flat (1 - margin))^2 + lr_diff^2) * (1 + (t_ref / texture)^2)`` px,
    ``sigma_z = sigma_d * fb / d^2`` (= z^2 sigma_d / (f b) at the stereo camera), inflated near edges.
    Shape: :class:`StereoResult` (H, W) -> :class:`SourceConfidence` (H, W).
    """
    c = config or StereoConfidenceConfig()
    z = _check_depth(stereo.depth_m)
    valid = (z > 0) & (stereo.disparity_px > 0)
    if stereo.focal_baseline_px_m <= 0 and valid.any():
        raise ValueError("stereo result has no focal_baseline_px_m (use StereoMatcher.compute)")
    margin = np.clip(stereo.cost_margin, 0.0, 1.0)
    sd = np.float32(c.sigma_d_min_px) + np.float32(c.sigma_d_flat_px) * (1.0 - margin)
    sd = np.sqrt(sd * sd + stereo.lr_diff_px.astype(np.float32) ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        sd = sd * (1.0 + (np.float32(c.texture_ref_std) / np.maximum(stereo.texture_std, 1e-3)) ** 2)
        d = np.where(valid, stereo.disparity_px, np.float32(1.0))
        sigma = sd * np.float32(stereo.focal_baseline_px_m) / (d * d)
    sigma *= _edge_factor(z, c.edge_jump_rel, c.edge_inflation, c.edge_scale_px)
    sigma = np.where(valid, sigma, np.float32(np.inf)).astype(np.float32)
    return SourceConfidence(depth_m=np.where(valid, z, 0).astype(np.float32), sigma_m=sigma,
                            confidence=sigma_to_confidence(sigma, c.sigma_ref_m), valid=valid)
