"""Local (per-pixel confidence-weighted) fusion, pass-through, outliers, temporal term, bad input."""
import numpy as np
import pytest

from metric_semantic_slam.core.camera import PinholeCamera
from metric_semantic_slam.core.depth_confidence import SourceConfidence, sigma_to_confidence
from metric_semantic_slam.core.depth_fusion import (SOURCE_ACTIVE, SOURCE_STEREO, SOURCE_TEMPORAL, DepthFuser,
                                                    DepthFusionConfig, fuse_local)
from metric_semantic_slam.io.frame import StereoPair

H, W = 120, 160
CAM = PinholeCamera(W, H, 100.0, 100.0, (W - 1) / 2, (H - 1) / 2)


def _src(depth: np.ndarray, sigma: float | np.ndarray) -> SourceConfidence:
    depth = depth.astype(np.float32)
    valid = depth > 0
    s = np.where(valid, np.broadcast_to(np.float32(sigma), depth.shape), np.inf).astype(np.float32)
    return SourceConfidence(depth_m=np.where(valid, depth, 0).astype(np.float32), sigma_m=s,
                            confidence=sigma_to_confidence(s, 0.02), valid=valid)


def _noisy(gt: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    return (gt + np.random.default_rng(seed).normal(0, sigma, gt.shape)).astype(np.float32)


def _rmse(d, gt):
    v = d > 0
    return float(np.sqrt(np.mean((d[v] - gt[v]) ** 2)))


GT = np.full((H, W), 2.0, np.float32)
PER_PIXEL = DepthFusionConfig(smooth_sigma_px=0, max_relative_sigma=0)


@pytest.mark.parametrize("which", ["active", "stereo"])
def test_single_source_passes_through_exactly(which):
    d = _noisy(GT, 0.01, 1)
    d[10:20, 10:20] = 0
    src = _src(d, 0.013)
    out = fuse_local(src, None) if which == "active" else fuse_local(None, src)
    np.testing.assert_array_equal(out.depth_m, src.depth_m)
    np.testing.assert_array_equal(out.confidence, src.confidence)
    assert np.array_equal(out.valid, src.valid)
    flag = SOURCE_ACTIVE if which == "active" else SOURCE_STEREO
    assert np.all(out.sources[src.valid] == flag)


def test_pixels_with_one_valid_source_take_it_exactly():
    a = _noisy(GT, 0.01, 1)
    s = _noisy(GT, 0.01, 2)
    a[:, :40] = 0
    s[:, 120:] = 0
    out = fuse_local(_src(a, 0.01), _src(s, 0.01), PER_PIXEL)
    np.testing.assert_array_equal(out.depth_m[:, :40], s[:, :40])
    np.testing.assert_array_equal(out.depth_m[:, 120:], a[:, 120:])
    assert out.valid.all()  # union of the two coverages
    assert np.mean(out.sources[:, 50:110] == SOURCE_ACTIVE | SOURCE_STEREO) > 0.99  # ~0.3 % exceed 3 std


def test_inverse_variance_weighting_reduces_noise():
    sa, ss = 0.01, 0.02
    a, s = _noisy(GT, sa, 1), _noisy(GT, ss, 2)
    out = fuse_local(_src(a, sa), _src(s, ss), PER_PIXEL)
    expected = 1 / np.sqrt(1 / sa**2 + 1 / ss**2)  # 0.0089
    assert _rmse(out.depth_m, GT) == pytest.approx(expected, rel=0.05)
    assert np.median(out.sigma_m) == pytest.approx(expected, rel=1e-4)
    # equal weights would give sqrt(sa^2 + ss^2) / 2 = 0.0112: the weighting matters
    assert _rmse(out.depth_m, GT) < 0.0100


def test_disagreeing_sources_keep_the_less_noisy_one():
    a = _noisy(GT, 0.01, 1)
    s = _noisy(GT, 0.03, 2)
    s[40:80, 40:80] += 1.0  # a stereo mismatch far outside both noise levels
    out = fuse_local(_src(a, 0.01), _src(s, 0.03), PER_PIXEL)
    np.testing.assert_array_equal(out.depth_m[40:80, 40:80], a[40:80, 40:80])
    assert np.all(out.sources[40:80, 40:80] == SOURCE_ACTIVE)
    loose = fuse_local(_src(a, 0.01), _src(s, 0.03), DepthFusionConfig(smooth_sigma_px=0, max_relative_sigma=0,
                                                                       outlier_k=1000.0))
    assert np.all(np.abs(loose.depth_m[40:80, 40:80] - 2.0) > 0.05)  # without rejection it is pulled away


def test_smoothing_reduces_noise_but_keeps_a_step():
    gt = GT.copy()
    gt[:, 80:] = 3.0
    a, s = _noisy(gt, 0.01, 1), _noisy(gt, 0.03, 2)
    per_pixel = fuse_local(_src(a, 0.01), _src(s, 0.03), PER_PIXEL)
    smooth = fuse_local(_src(a, 0.01), _src(s, 0.03), DepthFusionConfig(max_relative_sigma=0))
    assert _rmse(smooth.depth_m, gt) < 0.7 * _rmse(per_pixel.depth_m, gt)
    assert np.max(np.abs(smooth.depth_m - gt)) < 0.06  # nothing blended across the 1 m step
    assert np.all(smooth.confidence >= per_pixel.confidence)


def test_relative_sigma_filter_drops_only_noisy_pixels_when_both_sources_given():
    a, s = _noisy(GT, 0.01, 1), _noisy(GT, 0.2, 2)
    a[:, :40] = 0  # stereo-only, std 0.2 m = 10 % of depth
    out = fuse_local(_src(a, 0.01), _src(s, 0.2), DepthFusionConfig(max_relative_sigma=0.03))
    assert not out.valid[:, :40].any() and out.valid[:, 50:].all()
    alone = fuse_local(None, _src(s, 0.2), DepthFusionConfig(max_relative_sigma=0.05))
    assert alone.valid.all()  # pass-through is never filtered


def test_all_invalid_inputs_give_empty_output():
    z = np.zeros((H, W), np.float32)
    out = fuse_local(_src(z, 0.01), _src(z, 0.01))
    assert not out.valid.any() and np.all(out.confidence == 0)


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="at least one"):
        fuse_local(None, None)
    with pytest.raises(ValueError, match="does not match"):
        fuse_local(_src(GT, 0.01), _src(np.ones((10, 10)), 0.01))
    with pytest.raises(ValueError, match="method"):
        DepthFusionConfig(method="magic")
    fuser = DepthFuser()
    with pytest.raises(ValueError, match="calibration"):
        fuser.fuse(None, depth_m=GT)
    with pytest.raises(ValueError, match="active depth, a stereo pair"):
        fuser.fuse(CAM)
    with pytest.raises(ValueError, match="does not match"):
        fuser.fuse(CAM, depth_m=np.ones((10, 10), np.float32))
    pair = StereoPair(np.zeros((H, W), np.uint8), np.zeros((H, W - 2), np.uint8), CAM, 0.05)
    with pytest.raises(ValueError, match="equal"):
        fuser.fuse(CAM, depth_m=GT, stereo=pair)
    no_cal = StereoPair(np.zeros((H, W), np.uint8), np.zeros((H, W), np.uint8), None, 0.05)
    with pytest.raises(ValueError, match="calibration"):
        fuser.fuse(CAM, depth_m=GT, stereo=no_cal)


def test_fuser_with_all_black_stereo_passes_active_through():
    a = _noisy(GT, 0.005, 3)
    black = np.zeros((H, W), np.uint8)
    out = DepthFuser(DepthFusionConfig(stereo=DepthFusionConfig().stereo)).fuse(
        CAM, depth_m=a, stereo=StereoPair(black, black, CAM, 0.05))
    np.testing.assert_array_equal(out.depth_m, a)
    assert "stereo" in out.timings_s and "fusion" in out.timings_s


def test_temporal_term_fills_holes_from_the_previous_frame():
    fuser = DepthFuser(DepthFusionConfig(w_temporal=1.0, temporal_sigma_inflation=1.0))
    first = _noisy(GT, 0.005, 1)
    fuser.fuse(CAM, depth_m=first)
    second = _noisy(GT, 0.005, 2)
    second[30:50, 30:50] = 0
    out = fuser.fuse(CAM, depth_m=second, T_curr_prev=np.eye(4))
    assert out.valid[30:50, 30:50].all()
    assert np.all(out.sources[30:50, 30:50] == SOURCE_TEMPORAL)
    np.testing.assert_allclose(out.depth_m[30:50, 30:50], first[30:50, 30:50])
    # consistent pixels average the two frames (less noise than either)
    assert _rmse(out.depth_m[60:, :], GT[60:, :]) < 0.8 * _rmse(second[60:, :], GT[60:, :])
    without = DepthFuser(DepthFusionConfig()).fuse(CAM, depth_m=second, T_curr_prev=np.eye(4))
    assert not without.valid[30:50, 30:50].any()


def test_temporal_term_ignores_an_inconsistent_history():
    fuser = DepthFuser(DepthFusionConfig(w_temporal=1.0, temporal_sigma_inflation=1.0))
    first = _noisy(GT, 0.005, 1)
    first[:, :80] += 0.1  # 20 std away: e.g. something moved
    fuser.fuse(CAM, depth_m=first)
    second = _noisy(GT, 0.005, 2)
    out = fuser.fuse(CAM, depth_m=second, T_curr_prev=np.eye(4))
    # (columns next to the old step had a large std there, so the history may still count a little)
    np.testing.assert_array_equal(out.depth_m[:, :75], second[:, :75])
    assert not np.any(out.sources[:, :75] & SOURCE_TEMPORAL)
    assert np.mean(out.sources[:, 80:] & SOURCE_TEMPORAL > 0) > 0.95
