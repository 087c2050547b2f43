"""IMU helpers for odometry: gravity from the accelerometer, gyro preintegration, online gyro bias.

Convention: samples are in the IMU frame; ``T_camera_imu`` maps IMU-frame vectors into the camera
optical frame. A camera-frame rotation between two frames is ``R_prev_cur = R_ci dR_imu R_ci^T``.
The accelerometer measures specific force, so at rest it points *up* (away from gravity).
IMU stamps plus ``time_offset_s`` give camera time.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..geometry import so3_exp, so3_log

__all__ = ["GyroPreintegration", "gravity_direction_from_accel", "preintegrate_gyro", "GyroBiasEstimator",
           "rotation_aligning_gravity"]


def gravity_direction_from_accel(accel_m_s2: np.ndarray, max_deviation_m_s2: float = 1.0) -> np.ndarray | None:
    """Unit gravity direction (pointing down) in the IMU frame from accelerometer samples, or None.

    Samples whose norm differs from 9.81 by more than ``max_deviation_m_s2`` (the sensor was
    accelerating) are ignored; None when no finite sample is left.
    Shape: accel_m_s2 (N, 3) -> (3,).
    """
    a = np.asarray(accel_m_s2, dtype=np.float64).reshape(-1, 3)
    a = a[np.all(np.isfinite(a), axis=1)]
    if len(a) == 0:
        return None
    still = np.abs(np.linalg.norm(a, axis=1) - 9.81) <= max_deviation_m_s2
    if np.any(still):
        a = a[still]
    m = a.mean(axis=0)
    n = np.linalg.norm(m)
    if not n > 1e-6:
        return None
    return -m / n


def rotation_aligning_gravity(gravity_dir: np.ndarray) -> np.ndarray:
    """Rotation ``R_world_frame`` taking the measured gravity direction to world ``-z`` (z up).

    Yaw is unobservable and set so the rotation is minimal. Shape: (3,) -> (3, 3).
    """
    g = np.asarray(gravity_dir, dtype=np.float64)
    g = g / np.linalg.norm(g)
    down = np.array([0.0, 0.0, -1.0])
    axis = np.cross(g, down)
    s = np.linalg.norm(axis)
    c = float(np.dot(g, down))
    if s < 1e-9:
        return np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    return so3_exp(axis / s * np.arctan2(s, c))


@dataclass
class GyroPreintegration:
    """Integrated gyro rotation between two camera stamps.

    Shape: dR_imu (3, 3) (rotation of the IMU at ``t1`` expressed in the IMU at ``t0``).
    ``coverage`` is the fraction of ``[t0, t1]`` covered by samples (the rest is extrapolated or
    missing); ``sigma_rad`` the std of the rotation error from the gyro noise density.
    """

    dR_imu: np.ndarray
    dt_s: float
    coverage: float
    sigma_rad: float
    num_samples: int


def preintegrate_gyro(stamps_s: np.ndarray, gyro_rad_s: np.ndarray, t0: float, t1: float,
                      bias_rad_s: np.ndarray | None = None, time_offset_s: float = 0.0,
                      noise_density: float = 1.7e-4, max_extrapolation_s: float = 0.02
                      ) -> GyroPreintegration | None:
    """Integrate gyro samples over ``(t0, t1]`` (camera time) with a piecewise-constant rate.

    Sample ``k`` holds over ``(t_{k-1}, t_k]``; the last rate extends to ``t1`` by at most
    ``max_extrapolation_s``. Returns None when no finite sample falls in the window (no gyro, IMU gap).
    Shape: stamps_s (N,), gyro_rad_s (N, 3), bias_rad_s (3,).
    """
    if not (np.isfinite(t0) and np.isfinite(t1)) or t1 <= t0:
        return None
    st = np.asarray(stamps_s, dtype=np.float64).reshape(-1) + time_offset_s
    w = np.asarray(gyro_rad_s, dtype=np.float64).reshape(-1, 3)
    ok = np.isfinite(st) & np.all(np.isfinite(w), axis=1) & (st > t0 - max_extrapolation_s) & (st <= t1 + 1e-9)
    st, w = st[ok], w[ok]
    if len(st) == 0:
        return None
    order = np.argsort(st, kind="stable")
    st, w = st[order], w[order]
    b = np.zeros(3) if bias_rad_s is None else np.asarray(bias_rad_s, dtype=np.float64)
    R = np.eye(3)
    covered = 0.0
    prev = t0
    for tk, wk in zip(st, w):
        end = min(tk, t1)
        dt = end - prev
        if dt <= 0:
            continue
        # A long hole between samples is not measured motion: integrate at most a short stretch of it.
        dt_used = min(dt, max(max_extrapolation_s, 0.0) + 0.01)
        R = R @ so3_exp((wk - b) * dt_used)
        covered += dt_used
        prev = end
    tail = t1 - prev
    if tail > 0:
        ext = min(tail, max_extrapolation_s)
        R = R @ so3_exp((w[-1] - b) * ext)
        covered += ext
    dt_total = t1 - t0
    sigma = noise_density * np.sqrt(max(dt_total, 1e-6)) * np.sqrt(3.0)
    return GyroPreintegration(dR_imu=R, dt_s=dt_total, coverage=min(covered / dt_total, 1.0),
                              sigma_rad=float(sigma), num_samples=int(len(st)))


class GyroBiasEstimator:
    """Online gyro bias: a low-pass filter on the rate difference between gyro and tracked rotations.

    ``update`` takes the gyro-integrated and the tracked IMU-frame rotation over ``dt_s`` and moves the
    bias towards the one that would have made them agree; rotation differences above
    ``max_rate_rad_s`` are tracking errors, not bias, and are ignored.
    """

    def __init__(self, gain: float = 0.05, max_rate_rad_s: float = 0.1) -> None:
        if not 0 < gain <= 1:
            raise ValueError(f"gain must be in (0, 1], got {gain}")
        self.gain = gain
        self.max_rate_rad_s = max_rate_rad_s
        self.bias_rad_s = np.zeros(3)

    def update(self, dR_gyro: np.ndarray, dR_tracked: np.ndarray, dt_s: float) -> np.ndarray:
        """Shape: dR_gyro, dR_tracked (3, 3) in the IMU frame -> bias (3,)."""
        if not dt_s > 0:
            return self.bias_rad_s
        err = so3_log(dR_gyro.T @ dR_tracked) / dt_s  # rate the gyro missed
        if np.all(np.isfinite(err)) and np.linalg.norm(err) <= self.max_rate_rad_s:
            self.bias_rad_s = self.bias_rad_s - self.gain * err
        return self.bias_rad_s
