"""TUM trajectory files and pose interpolation."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from metric_semantic_slam.core.geometry import make_transform, rotation_angle_rad, so3_exp
from metric_semantic_slam.io.trajectory import (
    Trajectory,
    interpolate_poses,
    read_tum_trajectory,
    write_tum_trajectory,
)


def _random_poses(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([make_transform(so3_exp(rng.normal(size=3)), rng.normal(size=3) * 10) for _ in range(n)])


def test_round_trip(tmp_path: Path) -> None:
    poses = _random_poses(20)
    stamps = 1305031233.0 + np.arange(20) * 0.0331
    write_tum_trajectory(tmp_path / "sub" / "traj.txt", stamps, poses)
    traj = read_tum_trajectory(tmp_path / "sub" / "traj.txt")
    assert len(traj) == 20
    np.testing.assert_allclose(traj.stamps_s, stamps, atol=1e-6)
    np.testing.assert_allclose(traj.T_world_camera[:, :3, 3], poses[:, :3, 3], atol=1e-9)
    np.testing.assert_allclose(traj.T_world_camera[:, :3, :3], poses[:, :3, :3], atol=1e-8)


def test_comments_blank_lines_and_sorting(tmp_path: Path) -> None:
    p = tmp_path / "t.txt"
    p.write_text("# header\n\n2.0 1 2 3 0 0 0 1\n1.0 4 5 6 0 0 0.7071068 0.7071068  # inline\n")
    traj = read_tum_trajectory(p)
    np.testing.assert_array_equal(traj.stamps_s, [1.0, 2.0])
    np.testing.assert_allclose(traj.positions[0], [4, 5, 6])
    assert rotation_angle_rad(traj.T_world_camera[0, :3, :3]) == pytest.approx(np.pi / 2)


@pytest.mark.parametrize("bad, match", [
    ("1.0 1 2 3 0 0 0\n", ":3: expected 8 columns"),
    ("1.0 1 2 x 0 0 0 1\n", ":3: non-numeric"),
    ("1.0 1 2 3 0 0 0 0\n", ":3: zero quaternion"),
    ("1.0 1 2 nan 0 0 0 1\n", ":3: non-finite"),
])
def test_malformed_line_is_named(tmp_path: Path, bad: str, match: str) -> None:
    p = tmp_path / "t.txt"
    p.write_text("# c\n0.5 0 0 0 0 0 0 1\n" + bad)
    with pytest.raises(ValueError, match=match):
        read_tum_trajectory(p)


def test_write_rejects_shape_mismatch(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_tum_trajectory(tmp_path / "t.txt", np.zeros(3), np.tile(np.eye(4), (2, 1, 1)))


def test_interpolation_linear_and_slerp() -> None:
    T0 = make_transform(np.eye(3), [0.0, 0.0, 0.0])
    T1 = make_transform(so3_exp([0.0, 0.0, np.pi / 2]), [1.0, 2.0, 0.0])
    traj = Trajectory(np.array([10.0, 10.01]), np.stack([T0, T1]))
    poses, valid = interpolate_poses(traj, np.array([10.0025, 10.01, 10.005]), max_gap_s=0.02)
    assert valid.all()
    np.testing.assert_allclose(poses[0, :3, 3], [0.25, 0.5, 0.0], atol=1e-9)
    np.testing.assert_allclose(poses[0, :3, :3], so3_exp([0.0, 0.0, np.pi / 8]), atol=1e-9)
    np.testing.assert_allclose(poses[1], T1, atol=1e-12)
    np.testing.assert_allclose(poses[2, :3, :3], so3_exp([0.0, 0.0, np.pi / 4]), atol=1e-9)


def test_interpolation_gap_and_range() -> None:
    traj = Trajectory(np.array([0.0, 0.1, 0.11]), np.tile(np.eye(4), (3, 1, 1)))
    _, valid = interpolate_poses(traj, np.array([0.05, 0.105, -0.001, 0.2, 0.0]), max_gap_s=0.02)
    # 0.05 is 50 ms from both neighbours; -0.001 and 0.2 are outside the samples; 0.0 is a sample.
    np.testing.assert_array_equal(valid, [False, True, False, False, True])
    _, valid = interpolate_poses(Trajectory(np.zeros(0), np.zeros((0, 4, 4))), np.array([1.0]), 0.02)
    assert not valid.any()


def test_read_tum_groundtruth(shared_data: Path) -> None:
    traj = read_tum_trajectory(shared_data / "tum_fr1_rpy_90" / "groundtruth.txt")
    assert len(traj) == 396
    assert np.all(np.diff(traj.stamps_s) > 0)
    np.testing.assert_allclose(traj.positions[0], [1.3007, 0.6550, 1.5450])


def _pose_at(t: float) -> np.ndarray:
    """A camera turning about z at 0.5 rad/s while moving along (1, 2, 0) m/s."""
    from metric_semantic_slam.core.geometry import quat_xyzw_to_matrix

    a = 0.5 * t
    T = np.eye(4)
    T[:3, :3] = quat_xyzw_to_matrix(np.array([0.0, 0.0, np.sin(a / 2), np.cos(a / 2)]))
    T[:3, 3] = [t, 2 * t, 0.0]
    return T


def test_pose_buffer_interpolates_waits_and_refuses_wide_gaps():
    from metric_semantic_slam.io.trajectory import PoseBuffer

    buf = PoseBuffer(capacity=5)
    assert buf.lookup(1.0, 0.2) == ("wait", None)
    for t in (1.2, 1.0, 1.1):  # out of order: kept sorted
        buf.add(t, _pose_at(t))
    state, T = buf.lookup(1.05, 0.2)
    assert state == "ok" and np.allclose(T, _pose_at(1.05), atol=1e-9)  # slerp + lerp are exact on this motion
    assert buf.lookup(1.1, 0.001)[0] == "ok"         # an exact stamp needs no neighbour
    assert buf.lookup(1.25, 0.2) == ("wait", None)   # the later pose may still come
    assert buf.lookup(0.9, 0.2) == ("missing", None)  # before the buffer: no extrapolation
    assert buf.lookup(1.05, 0.04) == ("missing", None)  # neighbours 50 ms away, 40 ms allowed
    for t in (1.3, 1.4, 1.5, 1.6):
        buf.add(t, _pose_at(t))
    assert len(buf) == 5 and buf.lookup(1.05, 0.2)[0] == "missing"  # the oldest left (capacity 5)
    buf.add(1.3, _pose_at(2.0))  # same stamp: replaced
    assert np.allclose(buf.lookup(1.3, 0.01)[1], _pose_at(2.0))
    # a frame of the next pass of a looping bag, before its first pose: wait for it (not "missing")
    assert buf.lookup(-10.0, 0.2) == ("wait", None)
    buf.add(-10.0, _pose_at(0.0))  # far back in time: a bag played again, a new pass begins
    assert len(buf) == 1 and buf.newest_s == -10.0
    assert buf.lookup(-10.0, 0.2)[0] == "ok"
    # a frame of the previous pass still on its way (a backlog) finds its poses there, and so does a late pose
    state, T = buf.lookup(1.45, 0.2)
    assert state == "ok" and np.allclose(T, _pose_at(1.45), atol=1e-9)
    buf.add(1.7, _pose_at(1.7))
    assert len(buf) == 1 and buf.lookup(1.65, 0.2)[0] == "ok" and buf.lookup(1.75, 0.2) == ("wait", None)
    buf.add(-3.0, _pose_at(0.0))  # the new pass jumps forward 7 s (a gap in a recording): still the new pass
    assert len(buf) == 2 and buf.lookup(-3.0, 0.01)[0] == "ok"
    buf.add(-20.0, _pose_at(0.0))  # the next loop: only one pass back is kept
    assert buf.lookup(1.45, 0.2) == ("wait", None) and buf.lookup(-3.0, 0.01)[0] == "ok"
    with pytest.raises(ValueError):
        PoseBuffer(capacity=1)
