"""IMU synthesis from a smooth camera trajectory, and a simple strapdown integrator to check it.

The IMU frame sits at ``T_camera_imu`` in the color optical frame, so its pose is
``T_world_imu(t) = T_world_camera(t) @ T_camera_imu`` and its acceleration includes the lever-arm
terms automatically. Gyro: body angular velocity of the IMU frame. Accelerometer: specific force
``R_world_imu^T (a_world - g_world)`` with ``g_world = (0, 0, -9.81)``, so a static IMU reads +9.81
along world up. Derivatives use 5-point central finite differences (error O(h^4)) of the trajectory.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..core.geometry import so3_exp, so3_log
from ..io.frame import ImuSamples
from .world import CameraTrajectory

__all__ = ["ImuNoiseConfig", "ImuKinematics", "DEFAULT_T_CAMERA_IMU", "GRAVITY_M_S2", "imu_kinematics", "synthesize_imu",
           "integrate_imu"]

GRAVITY_M_S2 = 9.81

# D435i-like: the IMU is a few mm to cm from the color camera's optical centre, axes aligned.
DEFAULT_T_CAMERA_IMU = np.array([
    [1.0, 0.0, 0.0, -0.0203],
    [0.0, 1.0, 0.0, 0.0051],
    [0.0, 0.0, 1.0, 0.0112],
    [0.0, 0.0, 0.0, 1.0],
])


@dataclass(frozen=True)
class ImuNoiseConfig:
    """IMU noise (Kalibr conventions; defaults of a D435i's BMI055 from common calibrations).

    Densities are continuous-time: per-sample std is ``density * sqrt(rate_hz)``; bias random walks
    grow by ``random_walk * sqrt(dt)`` per sample.
    """

    gyro_noise_density: float = 1.6e-4
    """rad/s/sqrt(Hz)."""
    accel_noise_density: float = 2.8e-3
    """m/s^2/sqrt(Hz)."""
    gyro_bias_random_walk: float = 2.2e-5
    """rad/s^2/sqrt(Hz)."""
    accel_bias_random_walk: float = 8.6e-4
    """m/s^3/sqrt(Hz)."""
    gyro_bias_init_std: float = 0.0
    """Std of the initial gyro bias, rad/s."""
    accel_bias_init_std: float = 0.0
    """Std of the initial accelerometer bias, m/s^2."""
    enabled: bool = True
    """False: exact measurements (no noise, no bias)."""

    def __post_init__(self) -> None:
        for k, v in asdict(self).items():
            if k != "enabled" and v < 0:
                raise ValueError(f"ImuNoiseConfig.{k} must be >= 0, got {v}")

    @classmethod
    def off(cls) -> "ImuNoiseConfig":
        """Exact measurements: no noise and no bias."""
        return cls(enabled=False)


@dataclass
class ImuKinematics:
    """Exact kinematics of the IMU frame at given times (trajectory time).

    Shape: T_world_imu (N, 4, 4); v_world, a_world (N, 3) m/s, m/s^2; omega_imu (N, 3) rad/s in the
    IMU frame.
    """

    T_world_imu: np.ndarray
    v_world: np.ndarray
    a_world: np.ndarray
    omega_imu: np.ndarray


def imu_kinematics(trajectory: CameraTrajectory, T_camera_imu: np.ndarray, times_s: np.ndarray,
                   step_s: float = 1e-3) -> ImuKinematics:
    """Pose, velocity, acceleration and body rate of the IMU frame by finite differences.

    Stencils are kept inside ``[0, duration_s]`` by moving their centre (the derivative is then
    taken at most ``2 * step_s`` away from the sample time, negligible for smooth motion).
    Shape: times_s (N,) -> :class:`ImuKinematics` with N rows.
    """
    T_ci = np.asarray(T_camera_imu, np.float64)
    if T_ci.shape != (4, 4):
        raise ValueError(f"T_camera_imu must be 4x4, got {T_ci.shape}")
    times = np.asarray(times_s, np.float64).reshape(-1)
    dur = float(trajectory.duration_s)
    h = float(step_s)
    if dur < 4 * h:
        raise ValueError(f"trajectory too short ({dur} s) for the finite-difference step {h} s")
    n = len(times)
    centres = np.clip(times, 2 * h, dur - 2 * h)
    query = np.concatenate([np.clip(times, 0.0, dur)] + [centres + k * h for k in (-2, -1, 0, 1, 2)])
    batch = getattr(trajectory, "T_world_camera_batch", None)
    if callable(batch):  # optional vectorized form of the same poses (one call instead of 6 N)
        poses = np.asarray(batch(query), np.float64) @ T_ci
    else:
        poses = np.stack([np.asarray(trajectory.T_world_camera(float(q)), np.float64) for q in query]) @ T_ci
    T_out = poses[:n].copy()
    v = np.zeros((n, 3))
    a = np.zeros((n, 3))
    w = np.zeros((n, 3))
    for i, t in enumerate(times):
        c = float(centres[i])
        Ts = [poses[n * (j + 1) + i] for j in range(5)]
        p = [T[:3, 3] for T in Ts]
        v[i] = (p[0] - 8 * p[1] + 8 * p[3] - p[4]) / (12 * h)
        a[i] = (-p[0] + 16 * p[1] - 30 * p[2] + 16 * p[3] - p[4]) / (12 * h * h)
        # Body rate: log of relative rotations, 5-point stencil on the rotation vector about the centre.
        R0 = Ts[2][:3, :3]
        phi = [so3_log(R0.T @ T[:3, :3]) for T in Ts]
        w_c = (phi[0] - 8 * phi[1] + 8 * phi[3] - phi[4]) / (12 * h)
        # The rate at c is w_c expressed in the frame at c; rotate it to the sample's frame when shifted.
        if c != t:
            R_t = T_out[i][:3, :3]
            w_c = R_t.T @ R0 @ w_c
        w[i] = w_c
    return ImuKinematics(T_world_imu=T_out, v_world=v, a_world=a, omega_imu=w)


def synthesize_imu(
    trajectory: CameraTrajectory,
    T_camera_imu: np.ndarray = DEFAULT_T_CAMERA_IMU,
    rate_hz: float = 200.0,
    t0_s: float = 0.0,
    t1_s: float | None = None,
    config: ImuNoiseConfig | None = None,
    rng: np.random.Generator | None = None,
    stamp_offset_s: float = 0.0,
) -> ImuSamples:
    """Simulated gyro + accelerometer samples at ``t0_s + k / rate_hz`` for ``t <= t1_s``.

    Times are trajectory times; ``stamp_offset_s`` is added to the returned stamps (e.g. 1000.0).
    ``rng`` is required when noise is enabled.
    Shape: -> :class:`ImuSamples` with N = floor((t1 - t0) * rate) + 1 samples.
    """
    if not 1.0 <= rate_hz <= 10000.0:
        raise ValueError(f"rate_hz must be in [1, 10000], got {rate_hz}")
    t1 = float(trajectory.duration_s) if t1_s is None else float(t1_s)
    if not 0.0 <= t0_s < t1 <= trajectory.duration_s + 1e-9:
        raise ValueError(f"need 0 <= t0 < t1 <= duration ({trajectory.duration_s}), got {t0_s}, {t1}")
    cfg = config or ImuNoiseConfig()
    n = int(np.floor((t1 - t0_s) * rate_hz + 1e-9)) + 1
    times = t0_s + np.arange(n) / rate_hz
    kin = imu_kinematics(trajectory, T_camera_imu, times)
    g_world = np.array([0.0, 0.0, -GRAVITY_M_S2])
    R = kin.T_world_imu[:, :3, :3]
    accel = np.einsum("nji,nj->ni", R, kin.a_world - g_world)
    gyro = kin.omega_imu.copy()
    if cfg.enabled:
        if rng is None:
            raise ValueError("synthesize_imu needs an rng when noise is enabled")
        dt = 1.0 / rate_hz
        bg0 = rng.normal(0.0, cfg.gyro_bias_init_std, 3) if cfg.gyro_bias_init_std > 0 else np.zeros(3)
        ba0 = rng.normal(0.0, cfg.accel_bias_init_std, 3) if cfg.accel_bias_init_std > 0 else np.zeros(3)
        bg = bg0 + np.cumsum(rng.standard_normal((n, 3)) * cfg.gyro_bias_random_walk * np.sqrt(dt), axis=0)
        ba = ba0 + np.cumsum(rng.standard_normal((n, 3)) * cfg.accel_bias_random_walk * np.sqrt(dt), axis=0)
        gyro = gyro + bg + rng.standard_normal((n, 3)) * cfg.gyro_noise_density * np.sqrt(rate_hz)
        accel = accel + ba + rng.standard_normal((n, 3)) * cfg.accel_noise_density * np.sqrt(rate_hz)
    return ImuSamples(times + stamp_offset_s, gyro, accel)


def integrate_imu(samples: ImuSamples, T_world_imu0: np.ndarray, v_world0: np.ndarray,
                  gravity: np.ndarray = np.array([0.0, 0.0, -GRAVITY_M_S2])) -> np.ndarray:
    """Strapdown integration from the first to the last sample (midpoint rotation, trapezoidal
    velocity, position exact for linearly varying acceleration).

    ``T_world_imu0`` and ``v_world0`` are the state at the first sample's stamp.
    Shape: T_world_imu0 (4, 4), v_world0 (3,), gravity (3,) -> T_world_imu1 (4, 4).
    """
    if len(samples) < 2:
        raise ValueError("integrate_imu needs at least 2 samples")
    if not np.all(np.isfinite(samples.gyro_rad_s)):
        raise ValueError("integrate_imu needs gyro samples (got NaN)")
    R = np.asarray(T_world_imu0, np.float64)[:3, :3].copy()
    p = np.asarray(T_world_imu0, np.float64)[:3, 3].copy()
    v = np.asarray(v_world0, np.float64).copy()
    g = np.asarray(gravity, np.float64)
    st, wg, fa = samples.stamps_s, samples.gyro_rad_s, samples.accel_m_s2
    a_prev = R @ fa[0] + g
    for k in range(len(st) - 1):
        dt = st[k + 1] - st[k]
        if dt <= 0:
            raise ValueError(f"IMU stamps must increase (sample {k})")
        R = R @ so3_exp(0.5 * (wg[k] + wg[k + 1]) * dt)
        a_next = R @ fa[k + 1] + g
        p = p + v * dt + dt * dt / 6.0 * (2.0 * a_prev + a_next)
        v = v + 0.5 * dt * (a_prev + a_next)
        a_prev = a_next
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = p
    return T
