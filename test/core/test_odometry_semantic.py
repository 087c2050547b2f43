"""Semantic reprojection term: distance maps, anchors, and the pose information it adds."""
import numpy as np
import pytest
import torch

from metric_semantic_slam.core.camera import PinholeCamera
from metric_semantic_slam.core.geometry import se3_exp
from metric_semantic_slam.core.odometry.pyramid import build_pyramid, rgb_to_intensity
from metric_semantic_slam.core.odometry.rgbd_tracker import RgbdTracker, TrackerConfig
from metric_semantic_slam.core.odometry.semantic_term import (SemanticAnchor, SemanticConfig, SemanticDistanceMaps,
                                                              downsample_labels, level_intrinsics)
from metric_semantic_slam.core.odometry.synthetic import Plane, render_planes

CAM = PinholeCamera(160, 120, 130.0, 130.0, 79.5, 59.5)
WALL = [Plane((0, 0, 1), 2.0, 1)]


def wall_labels(T_world_camera: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Classes painted on the wall (world x, y): quadrant-like regions with corners in view."""
    P = CAM.backproject(depth) @ T_world_camera[:3, :3].T + T_world_camera[:3, 3]
    x, y = P[..., 0], P[..., 1]
    lab = np.where(x < 0.05, 3, 4) + np.where(y < -0.1, 2, 0) + np.where((x > 0.3) & (y > 0.2), 7, 0)
    return np.where(depth > 0, lab, 0).astype(np.uint16)


def test_distance_maps_measure_pixels_to_the_class():
    lab = np.zeros((120, 160), np.uint16)
    lab[:, 80:] = 5
    lab[:40, :] = 0
    maps = SemanticDistanceMaps(lab, SemanticConfig(level=0, max_distance_px=50.0, ignore_classes=()))
    assert set(maps.classes.tolist()) == {0, 5}
    row5 = maps.class_rows(np.array([5]))[0]
    d5 = maps.stack[row5:row5 + 120, :, 0]
    assert d5[100, 100] == 0.0
    assert d5[100, 70] == pytest.approx(10.0, abs=0.05)  # 10 px left of the class-5 region
    assert d5[20, 100] == pytest.approx(20.0, abs=0.05)  # 20 px above it
    assert maps.stack[row5 + 100, 70, 1] < 0  # the distance falls towards the region (+u)
    assert maps.class_rows(np.array([9]))[0] == -1  # absent class
    # clipped far away, and the ignored class has no map
    maps2 = SemanticDistanceMaps(lab, SemanticConfig(level=0, max_distance_px=5.0))
    assert maps2.classes.tolist() == [5]
    assert maps2.stack[100, 10, 0] == 5.0
    assert downsample_labels(lab, 2).shape == (30, 40)


def _frame(T):
    d, c, _ = render_planes(CAM, T, WALL)
    return d, np.zeros_like(c), wall_labels(T, d)  # black image: no photometric information


def test_semantic_term_fixes_what_icp_on_a_plane_cannot():
    cfg = SemanticConfig(level=0, weight=1.0, sigma_px=1.0, max_points=800)
    T_true = se3_exp(np.array([0.04, -0.03, 0.0, 0.0, 0.0, 0.02]))  # in-plane motion: invisible to ICP
    d0, c0, l0 = _frame(np.eye(4))
    d1, c1, l1 = _frame(T_true)
    ref = build_pyramid(rgb_to_intensity(c0), torch.as_tensor(d0), CAM, 3)
    cur = build_pyramid(rgb_to_intensity(c1), torch.as_tensor(d1), CAM, 3)
    tracker = RgbdTracker(TrackerConfig(iterations=(10, 10, 10), use_rgb=False))
    icp_only = tracker.track(ref, cur, np.eye(4))
    assert np.linalg.norm(icp_only.T_ref_cur[:2, 3] - T_true[:2, 3]) > 0.03  # degenerate: stays put

    maps0 = SemanticDistanceMaps(l0, cfg)
    lvl = ref[cfg.level]
    anchor = SemanticAnchor.from_frame(maps0.labels, lvl.vertices.numpy(), lvl.depth_valid.numpy(), np.eye(4), cfg,
                                       0.0)
    assert 50 < len(anchor) <= 800
    maps1 = SemanticDistanceMaps(l1, cfg)
    k = level_intrinsics(CAM.fx, CAM.fy, CAM.cx, CAM.cy, cfg.level)
    sem = anchor.system(maps1, k, np.eye(4), cfg)
    both = tracker.track(ref, cur, np.eye(4), extra_systems=[sem])
    assert np.linalg.norm(both.T_ref_cur[:3, 3] - T_true[:3, 3]) < 0.01
    # the soft weights stay high at the true pose and fall at a wrong one
    vis, good = anchor.update(maps1, k, T_true, cfg)
    assert vis > 0.9 and good > 0.9
    bad = SemanticAnchor(anchor.points_w, anchor.classes, 0.0)
    for _ in range(10):
        bad.update(maps1, k, np.eye(4), cfg)
    assert bad.weights.mean() < 0.8 * anchor.weights.mean()


def test_config_is_validated():
    with pytest.raises(ValueError):
        SemanticConfig(sigma_px=0.0)
    with pytest.raises(ValueError):
        SemanticConfig(weight_gain=0.0)
