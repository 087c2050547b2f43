"""sensor_msgs/CameraInfo <-> :class:`PinholeCamera`.

The images the suite consumes are rectified, so the intrinsics come from ``K`` by default; pass
``from_projection=True`` to use the rectified projection ``P`` (stereo drivers publish the baseline
in ``P[0, 3] = -fx * baseline``).
"""
from __future__ import annotations

import numpy as np

from ..core.camera import PinholeCamera
from .stamps import fill_header

__all__ = ["camera_info_to_camera", "camera_to_camera_info", "stereo_baseline_m"]


def camera_info_to_camera(msg: object, from_projection: bool = False) -> PinholeCamera:
    """Intrinsics of a ``CameraInfo``.

    Shape: K (9,) row-major 3x3, P (12,) row-major 3x4 -> PinholeCamera.
    Raises ValueError for a zero size or a non-positive / non-finite focal length (an uncalibrated camera).
    """
    width, height = int(msg.width), int(msg.height)
    if width <= 0 or height <= 0:
        raise ValueError(f"CameraInfo has no image size ({width}x{height})")
    if from_projection:
        P = np.asarray(msg.p, dtype=np.float64).reshape(3, 4)
        fx, fy, cx, cy = P[0, 0], P[1, 1], P[0, 2], P[1, 2]
    else:
        K = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
        fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    if not np.all(np.isfinite([fx, fy, cx, cy])) or fx <= 0 or fy <= 0:
        raise ValueError(f"CameraInfo is uncalibrated or invalid: fx={fx} fy={fy} cx={cx} cy={cy}")
    dist = tuple(float(d) for d in msg.d) if len(msg.d) else (0.0,) * 5
    return PinholeCamera(width=width, height=height, fx=float(fx), fy=float(fy), cx=float(cx), cy=float(cy),
                         distortion=dist)


def stereo_baseline_m(msg: object) -> float:
    """Baseline of the right camera of a rectified pair from ``P[0, 3] = -fx * baseline`` (0 for a left camera)."""
    P = np.asarray(msg.p, dtype=np.float64).reshape(3, 4)
    if P[0, 0] <= 0:
        raise ValueError("CameraInfo P has no focal length")
    return float(-P[0, 3] / P[0, 0])


def camera_to_camera_info(cam: PinholeCamera, stamp_s: float | None = None, frame_id: str = "",
                          baseline_m: float = 0.0, stamp: object | None = None):
    """A ``CameraInfo`` for rectified images of ``cam`` (R = I, P = [K | -fx*baseline, 0, 0]).

    Shape: cam -> K (9,), R (9,), P (12,), D (len(cam.distortion),).
    """
    from sensor_msgs.msg import CameraInfo

    K = cam.K
    P = np.zeros((3, 4))
    P[:, :3] = K
    P[0, 3] = -cam.fx * baseline_m
    msg = CameraInfo(width=cam.width, height=cam.height, distortion_model="plumb_bob")
    msg.d = [float(d) for d in cam.distortion]
    msg.k = K.ravel().tolist()
    msg.r = np.eye(3).ravel().tolist()
    msg.p = P.ravel().tolist()
    return fill_header(msg, frame_id, stamp, stamp_s)
