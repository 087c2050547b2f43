import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from metric_semantic_slam.core import geometry as g


def _random_rotations(n, seed=0):
    return Rotation.random(n, random_state=seed).as_matrix()


def test_convention_quaternion_is_xyzw_real_last():
    # 90 deg about z: (x, y, z, w) = (0, 0, sin45, cos45)
    q = np.array([0.0, 0.0, np.sin(np.pi / 4), np.cos(np.pi / 4)])
    R = g.quat_xyzw_to_matrix(q)
    np.testing.assert_allclose(R @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    # Same convention as scipy (and ROS / TUM files).
    np.testing.assert_allclose(R, Rotation.from_quat(q).as_matrix(), atol=1e-12)


def test_convention_transform_names_compose_by_cancelling_frames():
    rng = np.random.default_rng(1)
    T_a_b = g.se3_exp(rng.normal(size=6))
    T_b_c = g.se3_exp(rng.normal(size=6))
    p_c = rng.normal(size=(5, 3))
    p_a_direct = g.transform_points(T_a_b @ T_b_c, p_c)
    p_a_chain = g.transform_points(T_a_b, g.transform_points(T_b_c, p_c))
    np.testing.assert_allclose(p_a_direct, p_a_chain, atol=1e-12)


def test_convention_twist_is_translation_first():
    T = g.se3_exp(np.array([1.0, 2.0, 3.0, 0.0, 0.0, 0.0]))
    np.testing.assert_allclose(T[:3, 3], [1, 2, 3])
    np.testing.assert_allclose(T[:3, :3], np.eye(3))


def test_quaternion_round_trip():
    for R in _random_rotations(50):
        q = g.matrix_to_quat_xyzw(R)
        assert q[3] >= 0
        np.testing.assert_allclose(g.quat_xyzw_to_matrix(q), R, atol=1e-10)


@pytest.mark.parametrize("angle", [0.0, 1e-9, 1e-4, 0.5, 2.0, np.pi - 1e-6, np.pi])
def test_so3_exp_log_round_trip(angle):
    axis = np.array([0.3, -0.5, 0.8])
    axis /= np.linalg.norm(axis)
    phi = axis * angle
    R = g.so3_exp(phi)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(g.so3_exp(g.so3_log(R)), R, atol=1e-8)
    assert g.rotation_angle_rad(R) == pytest.approx(angle, abs=1e-6)


def test_se3_exp_log_round_trip_and_matches_scipy_rotation():
    rng = np.random.default_rng(2)
    for _ in range(30):
        xi = rng.normal(size=6)
        T = g.se3_exp(xi)
        np.testing.assert_allclose(g.se3_log(T), xi if np.linalg.norm(xi[3:]) < np.pi else g.se3_log(T), atol=1e-9)
        np.testing.assert_allclose(g.se3_exp(g.se3_log(T)), T, atol=1e-9)
        np.testing.assert_allclose(T[:3, :3], Rotation.from_rotvec(xi[3:]).as_matrix(), atol=1e-10)


def test_invert_transform():
    rng = np.random.default_rng(3)
    T = g.se3_exp(rng.normal(size=6))
    np.testing.assert_allclose(g.invert_transform(T) @ T, np.eye(4), atol=1e-12)
    batch = np.stack([T, g.se3_exp(rng.normal(size=6))])
    inv = g.invert_transform(batch)
    np.testing.assert_allclose(inv[1] @ batch[1], np.eye(4), atol=1e-12)


def test_project_to_so3():
    R = _random_rotations(1)[0]
    noisy = R + 1e-3 * np.random.default_rng(4).normal(size=(3, 3))
    P = g.project_to_so3(noisy)
    np.testing.assert_allclose(P @ P.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(P) == pytest.approx(1.0)
    assert np.abs(P - R).max() < 5e-3
