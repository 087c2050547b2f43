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
    missing); ``sigma_rad`` the per-axis std of the rotation error from the gyro noise density.
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
    """Integrate gyro samples over ``[t0, t1]`` (camera time), the rate linear between samples.

    The rate is interpolated linearly between consecutive samples and each stretch integrated with its
    mean rate (trapezoid rule). Holding each sample constant over the interval before it instead errs by
    about half the rate change per sample interval: under a 50 rad/s^2 shake that is ~5 mrad per 30 Hz
    frame, two orders of magnitude above the gyro's white noise. A sample at or shortly before ``t0``
    (within ``max_extrapolation_s``, e.g. the previous frame's last one) gives the rate at ``t0``; without
    one the first sample's rate is held back to ``t0``, and the last one's forward to ``t1`` by at most
    ``max_extrapolation_s``. A hole between samples longer than ``max_extrapolation_s + 0.01`` s is not
    measured motion: only that much of it is integrated (and counted in ``coverage``).
    Returns None when no finite sample falls in the window (no gyro, IMU gap).
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
    w = w - b
    hole_s = max(max_extrapolation_s, 0.0) + 0.01
    inside = (st > t0) & (st < t1)
    # Break points: the window ends and every sample inside; the rate is linear between break points.
    knots = np.concatenate([[t0], st[inside], [t1]])
    rates = np.stack([np.array([np.interp(k, st, w[:, a]) for a in range(3)]) for k in knots])
    R = np.eye(3)
    covered = 0.0
    for a_t, b_t, wa, wb in zip(knots[:-1], knots[1:], rates[:-1], rates[1:]):
        dt = b_t - a_t
        if dt <= 0:
            continue
        if b_t <= st[0]:
            used = min(dt, hole_s)            # before the first sample: its rate held back
        elif a_t >= st[-1]:
            used = min(dt, max_extrapolation_s)  # after the last sample: its rate held forward
        else:
            j = int(np.searchsorted(st, b_t, side="left"))
            used = dt if st[j] - st[j - 1] <= hole_s else min(dt, hole_s)
        if used <= 0:
            continue
        R = R @ so3_exp(0.5 * (wa + wb) * used)
        covered += used
    dt_total = t1 - t0
    sigma = noise_density * np.sqrt(max(dt_total, 1e-6))
    return GyroPreintegration(dR_imu=R, dt_s=dt_total, coverage=min(covered / dt_total, 1.0),
                              sigma_rad=float(sigma), num_samples=int(len(st)))


class GyroBiasEstimator:
    """Online gyro bias: a Kalman filter on the rate difference between gyro and vision rotations.

    State: the bias (3,) with an isotropic variance ``variance_rad2_s2`` (starts at ``init_std_rad_s^2``,
    grows by ``random_walk^2 dt`` per update: the bias drifts). Each :meth:`update` takes the
    gyro-integrated and the vision-measured IMU-frame rotation over ``dt_s`` and the per-axis std of
    their difference (vision and gyro noise together): the gain follows from both variances, so a
    well-constrained frame moves the bias more than a poor one, and the estimate settles instead of
    wandering with every frame's vision noise as a fixed-gain low-pass filter does. Rate differences
    above ``max_rate_rad_s`` are tracking errors, not bias, and are ignored.
    """

    def __init__(self, init_std_rad_s: float = 0.005, random_walk: float = 1e-4, max_rate_rad_s: float = 0.1
                 ) -> None:
        if not init_std_rad_s > 0 or random_walk < 0 or not max_rate_rad_s > 0:
            raise ValueError(f"need init_std_rad_s > 0, random_walk >= 0, max_rate_rad_s > 0, got "
                             f"{init_std_rad_s}, {random_walk}, {max_rate_rad_s}")
        self.random_walk = float(random_walk)
        self.max_rate_rad_s = float(max_rate_rad_s)
        self.bias_rad_s = np.zeros(3)
        self.variance_rad2_s2 = float(init_std_rad_s) ** 2

    @property
    def std_rad_s(self) -> float:
        """Per-axis std of the bias estimate (rad/s)."""
        return float(np.sqrt(self.variance_rad2_s2))

    def predict(self, dt_s: float) -> None:
        """Let the bias drift for ``dt_s`` seconds (its variance grows)."""
        if dt_s > 0:
            self.variance_rad2_s2 += self.random_walk ** 2 * float(dt_s)

    def update(self, dR_gyro: np.ndarray, dR_measured: np.ndarray, dt_s: float, sigma_rad: float) -> np.ndarray:
        """Correct the bias with one measured rotation.

        ``sigma_rad``: per-axis std of ``log(dR_gyro^T dR_measured)`` apart from the bias (the vision
        rotation's std combined with the gyro's white noise).
        Shape: dR_gyro, dR_measured (3, 3) in the IMU frame -> bias (3,).
        """
        if not dt_s > 0 or not sigma_rad > 0:
            return self.bias_rad_s
        err = so3_log(dR_gyro.T @ dR_measured) / dt_s  # rate the gyro missed = -(bias error)
        if not (np.all(np.isfinite(err)) and np.linalg.norm(err) <= self.max_rate_rad_s):
            return self.bias_rad_s
        r = (sigma_rad / dt_s) ** 2
        k = self.variance_rad2_s2 / (self.variance_rad2_s2 + r)
        self.bias_rad_s = self.bias_rad_s - k * err
        self.variance_rad2_s2 *= 1.0 - k
        return self.bias_rad_s
