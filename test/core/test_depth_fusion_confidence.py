"""Per-pixel noise models and confidences of active and stereo depth."""
import numpy as np
import pytest

from metric_semantic_slam.core.camera import PinholeCamera
from metric_semantic_slam.core.depth_confidence import (ActiveConfidenceConfig, active_depth_confidence,
                                                        edge_distance_px, incidence_angle_rad, nguyen_sigma_m,
                                                        sigma_to_confidence, stereo_confidence)
from metric_semantic_slam.core.stereo import StereoResult

H, W = 120, 160
CAM = PinholeCamera(W, H, 100.0, 100.0, (W - 1) / 2, (H - 1) / 2)


def _tilted_plane(angle_deg: float, z0: float = 2.0) -> np.ndarray:
    """Plane through (0, 0, z0) rotated about the camera y axis: z = z0 + tan(a) x."""
    u = (np.arange(W) - CAM.cx) / CAM.fx
    t = np.tan(np.deg2rad(angle_deg))
    z = z0 / (1 - t * u)  # ray (u, 1) * z meets z = z0 + t * x
    return np.repeat(z[None, :], H, 0).astype(np.float32)


def test_nguyen_sigma_grows_with_range_and_angle():
    s = nguyen_sigma_m(np.array([0.5, 1.0, 3.0, 5.0]))
    assert np.all(np.diff(s) > 0)
    assert nguyen_sigma_m(2.0, np.deg2rad(70)) > nguyen_sigma_m(2.0, 0.0)
    assert float(nguyen_sigma_m(1.0)) == pytest.approx(0.0012 + 0.0019 * 0.36, rel=1e-4)  # theta = 0: no angle term


@pytest.mark.parametrize("angle", [0.0, 30.0, 60.0])
def test_incidence_angle_of_a_tilted_plane(angle):
    theta = incidence_angle_rad(_tilted_plane(angle), CAM)
    # On the optical axis the formula is exact (borders use a replicated box filter: skip them)
    assert np.rad2deg(np.median(theta[40:80, 75:85])) == pytest.approx(angle, abs=3.0)


def test_active_confidence_falls_with_range_angle_and_near_edges_and_holes():
    z = np.full((H, W), 1.0, np.float32)
    z[:, 100:] = 3.0  # a depth step at column 100
    z[20:30, 20:30] = 0  # a hole
    res = active_depth_confidence(z, CAM)
    assert res.confidence[60, 50] > res.confidence[60, 140]  # near vs far
    assert res.confidence[60, 98] < res.confidence[60, 50]  # next to the step
    assert res.confidence[25, 31] < res.confidence[25, 45]  # next to the hole
    assert res.confidence[25, 25] == 0 and np.isinf(res.sigma_m[25, 25]) and not res.valid[25, 25]
    assert np.all((res.confidence >= 0) & (res.confidence <= 1))
    tilted = active_depth_confidence(_tilted_plane(75.0, 1.0), CAM)
    flat = active_depth_confidence(np.full((H, W), 1.0, np.float32), CAM)
    assert tilted.sigma_m[60, 80] > 2 * flat.sigma_m[60, 80]


def test_edge_distance():
    z = np.ones((H, W), np.float32)
    z[:, 80:] = 2.0
    d = edge_distance_px(z, 0.04)
    assert d[60, 79] < 1.01 and d[60, 60] > 15


def test_active_confidence_rejects_bad_input():
    with pytest.raises(ValueError, match="does not match"):
        active_depth_confidence(np.ones((10, 10), np.float32), CAM)
    with pytest.raises(ValueError, match="camera"):
        active_depth_confidence(np.ones((H, W), np.float32), None)
    with pytest.raises(ValueError):
        ActiveConfidenceConfig(sigma_ref_m=0)
    nan = active_depth_confidence(np.full((H, W), np.nan, np.float32), CAM)
    assert not nan.valid.any() and np.all(nan.confidence == 0)


def _stereo(disp: float, margin: float, lr: float, texture: float = 20.0) -> StereoResult:
    f = lambda v: np.full((H, W), v, np.float32)  # noqa: E731
    return StereoResult(depth_m=f(5.0 / disp), valid=np.ones((H, W), bool), disparity_px=f(disp),
                        cost_margin=f(margin), lr_diff_px=f(lr), texture_std=f(texture), focal_baseline_px_m=5.0)


def test_stereo_confidence_cues():
    base = stereo_confidence(_stereo(10.0, 0.8, 0.0)).sigma_m[60, 80]
    assert stereo_confidence(_stereo(10.0, 0.1, 0.0)).sigma_m[60, 80] > 1.5 * base  # flat cost
    assert stereo_confidence(_stereo(10.0, 0.8, 0.8)).sigma_m[60, 80] > 1.5 * base  # LR disagreement
    assert stereo_confidence(_stereo(10.0, 0.8, 0.0, texture=2.0)).sigma_m[60, 80] > 1.5 * base  # weak texture
    # disparity resolution: half the disparity (twice the depth) -> 4x the depth std
    far = stereo_confidence(_stereo(5.0, 0.8, 0.0)).sigma_m[60, 80]
    assert far == pytest.approx(4 * base, rel=1e-4)


def test_sigma_to_confidence():
    c = sigma_to_confidence(np.array([0.0, 0.02, np.inf, np.nan]), 0.02)
    np.testing.assert_allclose(c, [1.0, 0.5, 0.0, 0.0])
