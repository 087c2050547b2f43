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


def test_linear_rate_change_integrates_exactly():
    # A shake: the rate ramps by 1.5 rad/s within one 30 Hz frame. Holding each sample's rate over the
    # interval before it (the earlier integration) erred by ~4 mrad here; the trapezoid rule is exact
    # for a linear rate, given the sample at the window's start (the previous frame's last one).
    axis = np.array([0.0, 1.0, 0.0])
    t0, t1 = 10.0, 10.0 + 1 / 30
    st = 10.0 + np.arange(0, 7) * 0.005
    rate = (1.0 + 45.0 * (st - t0))[:, None] * axis
    pre = preintegrate_gyro(st, rate, t0, t1)
    exact = (1.0 * (t1 - t0) + 0.5 * 45.0 * (t1 - t0) ** 2)
    # the last sample (10.030) is held to t1 = 10.0333: error 0.5 * 45 * 0.0033^2 = 0.25 mrad
    assert abs(so3_log(pre.dR_imu)[1] - exact) < 3e-4
    assert pre.sigma_rad == pytest.approx(1.7e-4 * np.sqrt(t1 - t0))  # per-axis white-noise std
    # without the sample at t0 the first sample's rate is held back to t0: still close
    late = preintegrate_gyro(st[1:], rate[1:], t0, t1)
    assert abs(so3_log(late.dR_imu)[1] - exact) < 1e-3


def test_bias_filter_converges_weighs_measurements_and_ignores_outliers():
    est = GyroBiasEstimator(init_std_rad_s=0.01, random_walk=0.0)
    true_bias = np.array([0.004, -0.003, 0.002])
    dt = 0.5
    rng = np.random.default_rng(1)
    for _ in range(40):
        w = np.array([0.2, 0.1, -0.3])
        dR_true = so3_exp(w * dt + rng.normal(0, 2e-4, 3))  # vision: 0.2 mrad per axis
        dR_gyro = so3_exp((w + true_bias - est.bias_rad_s) * dt)
        est.predict(dt)
        est.update(dR_gyro, dR_true, dt, sigma_rad=2e-4)
    assert np.allclose(est.bias_rad_s, true_bias, atol=2e-4)
    assert est.std_rad_s < 1e-4  # 0.4 mrad/s per measurement, 40 of them
    before, var = est.bias_rad_s.copy(), est.variance_rad2_s2
    est.update(np.eye(3), so3_exp(np.array([0.3, 0, 0])), 1 / 30, sigma_rad=2e-4)  # 9 rad/s off: a failure
    assert np.allclose(est.bias_rad_s, before) and est.variance_rad2_s2 == var
    # a poor measurement (large sigma) moves the estimate less than a good one
    a, b = GyroBiasEstimator(0.01, 0.0), GyroBiasEstimator(0.01, 0.0)
    a.update(np.eye(3), so3_exp(np.array([0.0, 0.0, 0.005])), 0.5, sigma_rad=1e-4)
    b.update(np.eye(3), so3_exp(np.array([0.0, 0.0, 0.005])), 0.5, sigma_rad=1e-2)
    assert abs(a.bias_rad_s[2]) > 4 * abs(b.bias_rad_s[2]) > 0  # gains ~1 and 0.2
    est.predict(100.0)  # the bias drifts: its uncertainty grows
    assert rotation_angle_rad(np.eye(3)) == 0.0
    with pytest.raises(ValueError):
        GyroBiasEstimator(init_std_rad_s=0.0)


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
