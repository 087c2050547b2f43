"""Tests of the camera trajectories: smoothness, clearance, optical-frame convention."""
import dataclasses

import numpy as np
import pytest

from metric_semantic_slam.core.geometry import so3_exp, so3_log
from metric_semantic_slam.sim.scene import generate_world
from metric_semantic_slam.sim.trajectory import (MIN_CAMERA_CLEARANCE_M, make_trajectory, plan_camera_loop,
                                                 point_box_distance_m)

RATE_HZ = 100.0
DURATION_S = 100.0


@pytest.fixture(scope="module")
def worlds():
    return {seed: generate_world(seed) for seed in (1, 3)}


def _angles(R: np.ndarray) -> np.ndarray:
    """Rotation angles of many rotation matrices (atan2 form, accurate for small angles)."""
    w = np.stack([R[:, 2, 1] - R[:, 1, 2], R[:, 0, 2] - R[:, 2, 0], R[:, 1, 0] - R[:, 0, 1]], axis=1)
    return np.arctan2(0.5 * np.linalg.norm(w, axis=1), 0.5 * (np.trace(R, axis1=1, axis2=2) - 1.0))


def test_angle_helper_matches_so3_log():
    rng = np.random.default_rng(0)
    R = np.stack([so3_exp(v) for v in rng.normal(scale=0.3, size=(20, 3))])
    assert np.allclose(_angles(R), [np.linalg.norm(so3_log(r)) for r in R])


def _poses(traj, duration=DURATION_S, rate=RATE_HZ):
    t = np.arange(0.0, duration + 1e-9, 1.0 / rate)
    return t, traj.T_world_camera_batch(t)


def test_bad_arguments_raise(worlds):
    w = worlds[1]
    with pytest.raises(ValueError, match="preset"):
        make_trajectory(w, "drone")
    with pytest.raises(ValueError, match="duration"):
        make_trajectory(w, "handheld", duration_s=0.0)
    with pytest.raises(ValueError):
        plan_camera_loop(np.zeros(3), np.array([3.0, 3.0, 2.5]))


def test_world_blocking_the_loop_is_rejected(worlds):
    w = worlds[1]
    loop = plan_camera_loop(w.room_min_m, w.room_max_m)
    obj = dataclasses.replace(w.objects[0], center_m=np.array([*loop.points(8)[0], 0.5]), yaw_rad=0.0,
                              extents_m=np.array([0.3, 0.3, 1.0]))
    blocked = dataclasses.replace(w, objects=[obj] + w.objects[1:])
    with pytest.raises(ValueError, match="camera path"):
        make_trajectory(blocked, "robot")


def test_single_pose_matches_batch_and_is_rigid(worlds):
    tr = make_trajectory(worlds[1], "handheld", 10.0, seed=4)
    t, T = _poses(tr, 10.0, 10.0)
    for k in (0, 37, 100):
        assert np.allclose(tr.T_world_camera(t[k]), T[k])
    R = T[:, :3, :3]
    assert np.allclose(R @ np.swapaxes(R, 1, 2), np.eye(3), atol=1e-12)
    assert np.allclose(np.linalg.det(R), 1.0)
    assert np.allclose(T[:, 3], [0, 0, 0, 1])


def test_deterministic_per_seed(worlds):
    a = make_trajectory(worlds[1], "handheld", 10.0, seed=2).T_world_camera_batch(np.linspace(0, 10, 50))
    b = make_trajectory(worlds[1], "handheld", 10.0, seed=2).T_world_camera_batch(np.linspace(0, 10, 50))
    c = make_trajectory(worlds[1], "handheld", 10.0, seed=3).T_world_camera_batch(np.linspace(0, 10, 50))
    assert np.array_equal(a, b) and not np.allclose(a, c)


@pytest.mark.parametrize("seed_world", [1, 3])
@pytest.mark.parametrize("preset", ["handheld", "robot"])
@pytest.mark.parametrize("seed", [0, 1])
def test_collision_free_inside_room_and_smooth(worlds, seed_world, preset, seed):
    w = worlds[seed_world]
    tr = make_trajectory(w, preset, DURATION_S, seed=seed)
    t, T = _poses(tr)
    p = T[:, :3, 3]
    dt = 1.0 / RATE_HZ
    # Clearance from walls, floor, ceiling and every object box.
    assert np.all(p - w.room_min_m >= MIN_CAMERA_CLEARANCE_M) and np.all(w.room_max_m - p >= MIN_CAMERA_CLEARANCE_M)
    for obj in w.objects:
        assert point_box_distance_m(p, obj.center_m, obj.yaw_rad, obj.extents_m).min() >= MIN_CAMERA_CLEARANCE_M
    # Speed and acceleration from finite differences.
    v = np.diff(p, axis=0) / dt
    speed = np.linalg.norm(v, axis=1)
    assert speed.max() <= 0.6
    assert np.median(speed) >= 0.1  # it really moves
    acc = np.linalg.norm(np.diff(v, axis=0) / dt, axis=1)
    assert acc.max() <= 3.0
    # Angular rate from consecutive relative rotations; no jumps anywhere.
    R = T[:, :3, :3]
    rel = np.einsum("nji,njk->nik", R[:-1], R[1:])
    rate = _angles(rel) / dt
    assert np.percentile(rate, 95) <= np.deg2rad(60.0)
    assert rate.max() <= np.deg2rad(90.0)
    ang_acc = np.abs(np.diff(rate)) / dt
    assert ang_acc.max() <= 20.0  # rad/s^2: smooth, no kinks
    # The person walks in its own lane: the camera never passes through them.
    for tk in t[::25]:
        (person,) = w.dynamic_objects_at(tk)
        assert point_box_distance_m(p[int(round(tk * RATE_HZ))][None], person.center_m, person.yaw_rad,
                                    person.extents_m)[0] >= 0.3


def test_pose_is_differentiable(worlds):
    """Central differences at two step sizes agree: no kinks hidden between samples."""
    tr = make_trajectory(worlds[1], "handheld", 100.0, seed=0)
    t = np.linspace(0.5, 99.5, 200)
    for h in (1e-3,):
        v1 = (tr.T_world_camera_batch(t + h) - tr.T_world_camera_batch(t - h)) / (2 * h)
        v2 = (tr.T_world_camera_batch(t + h / 4) - tr.T_world_camera_batch(t - h / 4)) / (h / 2)
        assert np.abs(v1 - v2).max() < 1e-4
        a1 = (tr.T_world_camera_batch(t + h) - 2 * tr.T_world_camera_batch(t) + tr.T_world_camera_batch(t - h)) / h**2
        a2 = (tr.T_world_camera_batch(t + 2 * h) - 2 * tr.T_world_camera_batch(t) +
              tr.T_world_camera_batch(t - 2 * h)) / (2 * h) ** 2
        assert np.abs(a1 - a2).max() < 1e-2


def test_optical_frame_convention_handheld(worlds):
    tr = make_trajectory(worlds[1], "handheld", DURATION_S, seed=0)
    _, T = _poses(tr, rate=10.0)
    x_cam, y_cam, z_cam = T[:, :3, 0], T[:, :3, 1], T[:, :3, 2]
    # Optical z (viewing direction) is roughly horizontal with a slight downward pitch.
    assert np.all(np.abs(z_cam[:, 2]) < np.sin(np.deg2rad(35.0)))
    assert -np.sin(np.deg2rad(30.0)) < z_cam[:, 2].mean() < -np.sin(np.deg2rad(5.0))
    # Optical y points down-ish, optical x is nearly horizontal (small roll).
    assert np.all(y_cam[:, 2] < -0.8)
    assert np.all(np.abs(x_cam[:, 2]) < np.sin(np.deg2rad(8.0)))
    # Right-handed: x right = y down x z forward.
    assert np.allclose(np.cross(y_cam, z_cam), x_cam)
    h = T[:, 2, 3]
    assert 1.2 <= h.min() and h.max() <= 1.6


def test_optical_frame_convention_robot(worlds):
    tr = make_trajectory(worlds[1], "robot", DURATION_S, seed=0)
    _, T = _poses(tr, rate=10.0)
    assert np.allclose(T[:, :3, 1], [0.0, 0.0, -1.0])  # y down: no roll, no pitch
    assert np.allclose(T[:, 2, 2], 0.0) and np.allclose(T[:, 2, 0], 0.0)  # z forward and x right are level
    assert np.allclose(T[:, 2, 3], T[0, 2, 3]) and 0.4 <= T[0, 2, 3] <= 0.6


@pytest.mark.parametrize("preset", ["handheld", "robot"])
def test_camera_looks_at_furniture(worlds, preset):
    """Most of the time several object centres lie inside a 60 x 46 deg view within 5 m."""
    w = worlds[1]
    tr = make_trajectory(w, preset, DURATION_S, seed=0)
    _, T = _poses(tr, rate=2.0)
    centres = np.array([o.center_m for o in w.objects])
    in_view = []
    for Tk in T:
        pc = (centres - Tk[:3, 3]) @ Tk[:3, :3]  # camera frame
        z = pc[:, 2]
        ok = (z > 0.3) & (z < 5.0) & (np.abs(pc[:, 0]) < z * np.tan(np.deg2rad(30))) & \
            (np.abs(pc[:, 1]) < z * np.tan(np.deg2rad(23)))
        in_view.append(ok.sum())
    in_view = np.array(in_view)
    assert np.mean(in_view >= 3) >= 0.8, np.mean(in_view >= 3)
