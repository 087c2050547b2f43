"""The one frame type every reader produces and every pipeline stage consumes.

Frames: color and depth are registered to the color camera (``camera``). Poses are
``T_world_camera`` (4x4, color optical frame -> world). IMU samples are in the IMU frame, whose
pose in the color camera frame is ``T_camera_imu``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.camera import PinholeCamera

__all__ = ["ImuSamples", "StereoPair", "GroundTruth", "Frame"]


@dataclass
class ImuSamples:
    """IMU samples, oldest first.

    Shape: stamps_s (N,), gyro_rad_s (N, 3), accel_m_s2 (N, 3). ``gyro_rad_s`` may be all-NaN when the
    sensor has no gyroscope (e.g. TUM's Kinect accelerometer).
    """

    stamps_s: np.ndarray
    gyro_rad_s: np.ndarray
    accel_m_s2: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.stamps_s)
        if self.gyro_rad_s.shape != (n, 3) or self.accel_m_s2.shape != (n, 3):
            raise ValueError(
                f"IMU arrays disagree: stamps {n}, gyro {self.gyro_rad_s.shape}, accel {self.accel_m_s2.shape}"
            )

    def __len__(self) -> int:
        return len(self.stamps_s)

    @classmethod
    def empty(cls) -> "ImuSamples":
        return cls(np.zeros(0), np.zeros((0, 3)), np.zeros((0, 3)))

    def between(self, t0: float, t1: float) -> "ImuSamples":
        """Samples with ``t0 < stamp <= t1``."""
        m = (self.stamps_s > t0) & (self.stamps_s <= t1)
        return ImuSamples(self.stamps_s[m], self.gyro_rad_s[m], self.accel_m_s2[m])


@dataclass
class StereoPair:
    """A rectified infrared stereo pair (mono8).

    ``camera`` is the intrinsics of both rectified images; the right camera sits at
    ``+baseline_m`` along the left camera's x axis. ``T_color_left`` is the left IR camera's pose in
    the color camera frame (identity when the pair is registered to color).
    Shape: left, right (H, W) uint8.
    """

    left: np.ndarray
    right: np.ndarray
    camera: PinholeCamera
    baseline_m: float
    T_color_left: np.ndarray = field(default_factory=lambda: np.eye(4))


@dataclass
class GroundTruth:
    """Ground truth known for a frame (any field may be None).

    Shape: depth_m (H, W) float32, semantic (H, W) uint16 class ids, instance (H, W) uint16 (0 = none).
    """

    T_world_camera: np.ndarray | None = None
    depth_m: np.ndarray | None = None
    semantic: np.ndarray | None = None
    instance: np.ndarray | None = None


@dataclass
class Frame:
    """One RGB-D(+stereo, +IMU) frame.

    Shape: color (H, W, 3) uint8 RGB; depth_m (H, W) float32 meters, 0 = invalid.
    ``imu`` holds the samples since the previous frame (stamp in ``(prev.stamp_s, stamp_s]``).
    ``semantic``/``instance`` are labels from a segmenter when one ran (not ground truth).
    """

    index: int
    stamp_s: float
    color: np.ndarray
    depth_m: np.ndarray
    camera: PinholeCamera
    stereo: StereoPair | None = None
    imu: ImuSamples | None = None
    semantic: np.ndarray | None = None
    instance: np.ndarray | None = None
    gt: GroundTruth | None = None
    T_camera_imu: np.ndarray | None = None

    def __post_init__(self) -> None:
        hw = self.camera.shape
        if self.color.shape[:2] != hw:
            raise ValueError(f"color {self.color.shape[:2]} does not match camera {hw}")
        if self.depth_m.shape != hw:
            raise ValueError(f"depth {self.depth_m.shape} does not match camera {hw}")
