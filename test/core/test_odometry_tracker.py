"""Dense tracker on an analytic textured box room: known relative poses are recovered."""
import numpy as np
import pytest
import torch

from metric_semantic_slam.core.camera import PinholeCamera
from metric_semantic_slam.core.geometry import invert_transform, rotation_angle_rad, se3_exp
from metric_semantic_slam.core.odometry.pyramid import build_pyramid, rgb_to_intensity
from metric_semantic_slam.core.odometry.rgbd_tracker import RgbdTracker, RotationPrior, TrackerConfig
from metric_semantic_slam.core.odometry.synthetic import Plane, box_room, render_planes

CAM = PinholeCamera(160, 120, 130.0, 130.0, 79.5, 59.5)


T1 = se3_exp(np.array([0.03, -0.02, 0.04, 0.02, -0.03, 0.015]))


def _pyr(T, planes=None, brightness=1.0):
    d, c, _ = render_planes(CAM, T, planes or box_room(), brightness=brightness)
    return build_pyramid(rgb_to_intensity(c), torch.as_tensor(d), CAM, 3)


def _err(T_est, T_true):
    E = invert_transform(T_true) @ T_est
    return np.linalg.norm(E[:3, 3]), rotation_angle_rad(E[:3, :3])


@pytest.mark.parametrize("terms", [dict(), dict(use_rgb=False), dict(use_icp=False)])
def test_recovers_known_motion(terms):
    ref, cur = _pyr(np.eye(4)), _pyr(T1)
    res = RgbdTracker(TrackerConfig(iterations=(8, 8, 8), **terms)).track(ref, cur, np.eye(4))
    dt, dr = _err(res.T_ref_cur, T1)
    assert dt < 2e-3 and dr < np.deg2rad(0.1)
    start_t, _ = _err(np.eye(4), T1)
    assert start_t > 10 * dt  # it actually moved
    assert res.inlier_ratio > 0.8 and res.iterations >= 3
    assert np.all(np.linalg.eigvalsh(res.covariance) > 0)


def test_plane_only_icp_is_degenerate_but_photometry_fixes_it():
    wall = [Plane((0, 0, 1), 2.0, 1)]
    ref, cur = _pyr(np.eye(4), wall), _pyr(T1, wall)
    icp = RgbdTracker(TrackerConfig(iterations=(8, 8, 8), use_rgb=False)).track(ref, cur, np.eye(4))
    both = RgbdTracker(TrackerConfig(iterations=(8, 8, 8))).track(ref, cur, np.eye(4))
    assert icp.condition < 1e-6  # sliding along the wall is unobservable from depth
    assert both.condition > 100 * icp.condition
    dt, dr = _err(both.T_ref_cur, T1)
    assert dt < 5e-3 and dr < np.deg2rad(0.2)


def test_rotation_prior_pulls_the_rotation():
    ref = _pyr(np.eye(4))
    R_wrong = se3_exp(np.array([0, 0, 0, 0.0, 0.05, 0.0]))[:3, :3]
    tr = RgbdTracker(TrackerConfig(iterations=(3, 3, 3)))
    strong = tr.track(ref, ref, np.eye(4), RotationPrior(R_wrong, 1e-5))
    free = tr.track(ref, ref, np.eye(4))
    assert rotation_angle_rad(free.T_ref_cur[:3, :3]) < 1e-3
    assert rotation_angle_rad(strong.T_ref_cur[:3, :3].T @ R_wrong) < 5e-3


def test_bad_config_and_short_pyramid_raise():
    with pytest.raises(ValueError):
        TrackerConfig(use_icp=False, use_rgb=False).validate()
    with pytest.raises(ValueError):
        TrackerConfig(iterations=(3, 3), finest_level=2).validate()
    ref = _pyr(np.eye(4))
    with pytest.raises(ValueError):
        RgbdTracker(TrackerConfig(iterations=(1, 1, 1, 1))).track(ref, ref, np.eye(4))


def test_extra_reference_joins_the_problem_through_its_pose():
    Tm = se3_exp(np.array([0.015, -0.01, 0.02, 0.01, -0.015, 0.008]))
    ref, mid, cur = _pyr(np.eye(4)), _pyr(Tm), _pyr(T1)
    tr = RgbdTracker(TrackerConfig(iterations=(6, 6, 6)))
    good = tr.track(ref, cur, np.eye(4), extra_refs=[(mid, Tm)])
    dt, dr = _err(good.T_ref_cur, T1)
    assert dt < 2e-3 and dr < np.deg2rad(0.1)
    # A wrong pose of the extra reference drags the solution: its residuals are really used.
    shifted = se3_exp(np.array([0.03, 0, 0, 0, 0, 0])) @ Tm
    bad = tr.track(ref, cur, np.eye(4), extra_refs=[(mid, shifted)])
    assert _err(bad.T_ref_cur, T1)[0] > 5e-3
