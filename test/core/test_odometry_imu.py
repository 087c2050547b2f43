"""Gravity from the accelerometer, gyro preintegration, online gyro bias."""
import numpy as np
import pytest

from metric_semantic_slam.core.geometry import rotation_angle_rad, so3_exp, so3_log
from metric_semantic_slam.core.odometry.imu_preintegration import (GyroBiasEstimator,
                                                                   gravity_direction_from_accel,
                                                                   preintegrate_gyro, rotation_aligning_gravity)


def test_gravity_direction_ignores_accelerating_samples():
    rng = np.random.default_rng(0)
    up = np.array([0.1, -0.9, 0.3])
    up /= np.linalg.norm(up)
    acc = up * 9.81 + rng.normal(0, 0.05, (200, 3))
    acc[:20] += np.array([5.0, 0, 0])  # a shake: not gravity
    g = gravity_direction_from_accel(acc)
    assert np.degrees(np.arccos(np.clip(g @ -up, -1, 1))) < 0.5
    assert gravity_direction_from_accel(np.full((5, 3), np.nan)) is None
    R = rotation_aligning_gravity(g)
    assert np.allclose(R @ g, [0, 0, -1], atol=1e-9)


def test_constant_rate_integrates_exactly_and_bias_is_removed():
    w = np.array([0.3, -0.2, 0.5])
    b = np.array([0.01, 0.02, -0.01])
    st = 10.0 + np.arange(1, 21) * 0.005  # 200 Hz over (10.0, 10.1]
    pre = preintegrate_gyro(st, np.tile(w + b, (20, 1)), 10.0, 10.1, bias_rad_s=b)
    assert pre is not None and pre.num_samples == 20 and pre.coverage == pytest.approx(1.0)
    assert np.allclose(so3_log(pre.dR_imu), w * 0.1, atol=1e-9)
    # the same samples seen 0.05 s late (time offset) cover only half the window
    late = preintegrate_gyro(st, np.tile(w, (20, 1)), 10.0, 10.1, time_offset_s=0.05)
    assert late.coverage < 0.8


def test_missing_gyro_and_gaps():
    st = np.array([1.01, 1.02])
    assert preintegrate_gyro(st, np.full((2, 3), np.nan), 1.0, 1.03) is None  # TUM: accelerometer only
    assert preintegrate_gyro(np.zeros(0), np.zeros((0, 3)), 1.0, 1.03) is None
    assert preintegrate_gyro(st, np.zeros((2, 3)), 1.0, 1.0) is None  # empty window
    gap = preintegrate_gyro(np.array([1.005, 1.5]), np.ones((2, 3)), 1.0, 1.5)
    assert gap is not None and gap.coverage < 0.2  # a 0.5 s hole is not measured motion


def test_bias_estimator_converges_and_ignores_outliers():
    est = GyroBiasEstimator(gain=0.2)
    true_bias = np.array([0.004, -0.003, 0.002])
    dt = 1 / 30
    for _ in range(100):
        w = np.array([0.2, 0.1, -0.3])
        dR_true = so3_exp(w * dt)
        dR_gyro = so3_exp((w + true_bias - est.bias_rad_s) * dt)
        est.update(dR_gyro, dR_true, dt)
    assert np.allclose(est.bias_rad_s, true_bias, atol=2e-4)
    before = est.bias_rad_s.copy()
    est.update(np.eye(3), so3_exp(np.array([0.3, 0, 0])), dt)  # a tracking failure, 9 rad/s off
    assert np.allclose(est.bias_rad_s, before)
    assert rotation_angle_rad(np.eye(3)) == 0.0
    with pytest.raises(ValueError):
        GyroBiasEstimator(gain=0.0)


def test_gyro_preintegration_matches_simulator_ground_truth(tmp_path):
    """Pins the frame conventions (T_camera_imu, sample windows) against the project's simulator."""
    from metric_semantic_slam.io.sequence import open_sequence
    from metric_semantic_slam.sim.simulate import simulate

    simulate(tmp_path / "sim", seed=3, frames=5, width=96, height=72, write_bag=False)
    seq = open_sequence(tmp_path / "sim")
    frames = [seq[i] for i in range(len(seq))]
    for a, b in zip(frames[:-1], frames[1:]):
        pre = preintegrate_gyro(b.imu.stamps_s, b.imu.gyro_rad_s, a.stamp_s, b.stamp_s)
        R_ci = b.T_camera_imu[:3, :3]
        R_gyro = R_ci @ pre.dR_imu @ R_ci.T
        R_true = (np.linalg.inv(a.gt.T_world_camera) @ b.gt.T_world_camera)[:3, :3]
        angle = rotation_angle_rad(R_true)
        assert angle > np.deg2rad(0.1)  # the camera really rotated
        assert rotation_angle_rad(R_gyro.T @ R_true) < 0.2 * angle  # a wrong extrinsic/sign gives ~2x angle
