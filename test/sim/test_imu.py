"""IMU synthesis: static and rotating sanity checks, noise levels, and the integration acceptance test."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from test_sim_render import WobbleTrajectory, look_at

from metric_semantic_slam.core.geometry import invert_transform, rotation_angle_rad
from metric_semantic_slam.sim.imu import (DEFAULT_T_CAMERA_IMU, GRAVITY_M_S2, ImuNoiseConfig, imu_kinematics,
                                          integrate_imu, synthesize_imu)
from metric_semantic_slam.sim.world import TriangleMesh, World


@dataclass
class StaticTrajectory:
    T: np.ndarray
    duration_s: float = 2.0

    def T_world_camera(self, t_s: float) -> np.ndarray:
        return self.T.copy()


@dataclass
class YawSpin:
    """Camera looking horizontally, spinning about world z at ``rate`` rad/s round a vertical axis."""

    rate: float = 0.8
    duration_s: float = 2.0

    def T_world_camera(self, t_s: float) -> np.ndarray:
        yaw = self.rate * t_s
        eye = np.array([0.0, 0.0, 1.2])
        return look_at(eye, eye + np.array([np.cos(yaw), np.sin(yaw), 0.0]))


def test_static_imu_reads_gravity_up_and_zero_rate():
    T = look_at([0.0, 0.0, 1.0], [1.0, 0.3, 0.5])
    s = synthesize_imu(StaticTrajectory(T), np.eye(4), 200.0, 0.0, 1.0, ImuNoiseConfig.off())
    assert len(s) == 201
    np.testing.assert_allclose(s.gyro_rad_s, 0.0, atol=1e-9)
    up_in_imu = T[:3, :3].T @ np.array([0.0, 0.0, 1.0])
    np.testing.assert_allclose(s.accel_m_s2, np.tile(GRAVITY_M_S2 * up_in_imu, (201, 1)), atol=1e-6)
    np.testing.assert_allclose(s.stamps_s[:3], [0.0, 0.005, 0.01])


def test_yaw_spin_gyro_and_centripetal_lever_arm():
    traj = YawSpin(rate=0.8)
    s = synthesize_imu(traj, np.eye(4), 200.0, 0.2, 1.8, ImuNoiseConfig.off())
    # World z is camera -y for a level optical frame.
    np.testing.assert_allclose(s.gyro_rad_s, np.tile([0.0, -0.8, 0.0], (len(s), 1)), atol=1e-6)
    # Camera on the spin axis: only gravity. An IMU 0.1 m to the camera's right feels the centripetal
    # acceleration w^2 r towards the axis (-x in the camera frame) as specific force.
    np.testing.assert_allclose(s.accel_m_s2, np.tile([0.0, -GRAVITY_M_S2, 0.0], (len(s), 1)), atol=1e-5)
    T_ci = np.eye(4)
    T_ci[0, 3] = 0.1
    s2 = synthesize_imu(traj, T_ci, 200.0, 0.2, 1.8, ImuNoiseConfig.off())
    np.testing.assert_allclose(s2.accel_m_s2[:, 0], -0.8**2 * 0.1, atol=1e-5)


def _big_empty_world() -> World:
    empty = TriangleMesh(np.zeros((0, 3)), np.zeros((0, 3), np.int32), np.zeros(0, np.uint16),
                         np.zeros(0, np.uint16), np.zeros(0, np.int32))
    return World(seed=0, static_mesh=empty, materials=[], objects=[], relations=[],
                 room_min_m=np.array([-4.0, -4.0, 0.0]), room_max_m=np.array([4.0, 4.0, 2.8]))


def _trajectories():
    out = [("wobble", WobbleTrajectory(duration_s=3.0))]
    try:
        from metric_semantic_slam.sim.trajectory import make_trajectory
    except ImportError:
        return out
    for preset in ("handheld", "robot"):
        out.append((preset, make_trajectory(_big_empty_world(), preset=preset, duration_s=4.0, seed=3)))
    return out


@pytest.mark.parametrize("name,traj", _trajectories(), ids=lambda x: x if isinstance(x, str) else "")
def test_integrating_noise_free_imu_for_1s_lands_on_ground_truth(name, traj):
    """Acceptance: 1 s of simulated gyro/accel (bias and noise off) integrates to within 1 deg, 2 cm."""
    T_ci = DEFAULT_T_CAMERA_IMU
    errs = []
    for t0 in (0.3, 1.7):
        t1 = t0 + 1.0
        s = synthesize_imu(traj, T_ci, 200.0, t0, t1, ImuNoiseConfig.off())
        kin = imu_kinematics(traj, T_ci, np.array([t0]))
        T_end = integrate_imu(s, kin.T_world_imu[0], kin.v_world[0], np.array([0.0, 0.0, -GRAVITY_M_S2]))
        T_true = traj.T_world_camera(t1) @ T_ci
        dT = invert_transform(T_true) @ T_end
        rot_deg = np.degrees(rotation_angle_rad(dT[:3, :3]))
        trans_m = float(np.linalg.norm(T_end[:3, 3] - T_true[:3, 3]))
        errs.append((rot_deg, trans_m))
        print(f"{name}: t0={t0}s, 1 s of IMU integrated: rotation error {rot_deg:.5f} deg, "
              f"translation error {100 * trans_m:.4f} cm")
        assert rot_deg < 1.0 and trans_m < 0.02
        # Much better than the bound in practice: the finite differences and integrator are accurate.
        assert rot_deg < 0.05 and trans_m < 0.002
    # Integrating without gravity compensation must fail the bound (the test can fail).
    s = synthesize_imu(traj, T_ci, 200.0, 0.3, 1.3, ImuNoiseConfig.off())
    kin = imu_kinematics(traj, T_ci, np.array([0.3]))
    T_bad = integrate_imu(s, kin.T_world_imu[0], kin.v_world[0], np.zeros(3))
    assert np.linalg.norm(T_bad[:3, 3] - (traj.T_world_camera(1.3) @ T_ci)[:3, 3]) > 1.0


def test_velocity_by_finite_differences_is_accurate():
    traj = YawSpin(rate=0.5)
    T_ci = np.eye(4)
    T_ci[:3, 3] = [0.2, 0.0, 0.0]
    kin = imu_kinematics(traj, T_ci, np.array([1.0]))
    # Point at radius 0.2 m spinning at 0.5 rad/s: speed 0.1 m/s, centripetal 0.05 m/s^2.
    assert np.linalg.norm(kin.v_world[0]) == pytest.approx(0.1, abs=1e-8)
    assert np.linalg.norm(kin.a_world[0]) == pytest.approx(0.05, abs=1e-6)


def test_noise_levels_follow_densities():
    T = look_at([0.0, 0.0, 1.0], [1.0, 0.0, 1.0])
    cfg = ImuNoiseConfig(gyro_noise_density=1e-3, accel_noise_density=1e-2, gyro_bias_random_walk=0.0,
                         accel_bias_random_walk=0.0)
    traj = StaticTrajectory(T, duration_s=20.0)
    s = synthesize_imu(traj, np.eye(4), 200.0, 0.0, 20.0, cfg, np.random.default_rng(0))
    exact = synthesize_imu(traj, np.eye(4), 200.0, 0.0, 20.0, ImuNoiseConfig.off())
    g_std = (s.gyro_rad_s - exact.gyro_rad_s).std(axis=0)
    a_std = (s.accel_m_s2 - exact.accel_m_s2).std(axis=0)
    np.testing.assert_allclose(g_std, 1e-3 * np.sqrt(200.0), rtol=0.1)
    np.testing.assert_allclose(a_std, 1e-2 * np.sqrt(200.0), rtol=0.1)
    # Bias random walk: the slowly varying part grows with time.
    walk = synthesize_imu(traj, np.eye(4), 200.0, 0.0, 20.0,
                          ImuNoiseConfig(gyro_noise_density=0.0, accel_noise_density=0.0, gyro_bias_random_walk=1e-3),
                          np.random.default_rng(1))
    assert np.abs(walk.gyro_rad_s[-1]).max() > 1e-4 and np.abs(walk.gyro_rad_s[0]).max() < 1e-4


def test_bad_arguments_raise():
    traj = YawSpin()
    with pytest.raises(ValueError):
        synthesize_imu(traj, np.eye(4), 200.0, 1.5, 1.0, ImuNoiseConfig.off())
    with pytest.raises(ValueError, match="rng"):
        synthesize_imu(traj, np.eye(4), 200.0, 0.0, 1.0, ImuNoiseConfig())
    with pytest.raises(ValueError):
        ImuNoiseConfig(gyro_noise_density=-1.0)
