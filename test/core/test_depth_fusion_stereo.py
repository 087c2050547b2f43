"""Stereo matching (SGBM + checks) and depth reprojection."""
import cv2
import numpy as np
import pytest

from metric_semantic_slam.core.camera import PinholeCamera
from metric_semantic_slam.core.stereo import (StereoConfig, StereoMatcher, disparity_to_depth,
                                              reproject_depth)

H, W = 120, 160
CAM = PinholeCamera(W, H, 100.0, 100.0, (W - 1) / 2, (H - 1) / 2)
BASELINE = 0.05  # f b = 5 px m


def _texture(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.uniform(0, 255, (H, W + 64)).astype(np.float32)
    return cv2.GaussianBlur(img, (0, 0), 0.8)


def _pair(disparity: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Fronto-parallel plane: right(x) = left(x + d) ... i.e. left(x) = right(x - d)."""
    tex = _texture(seed)
    xs = np.arange(W, dtype=np.float32)[None, :].repeat(H, 0) + 32
    ys = np.arange(H, dtype=np.float32)[:, None].repeat(W, 1)
    left = cv2.remap(tex, xs, ys, cv2.INTER_LINEAR)
    right = cv2.remap(tex, xs + np.float32(disparity), ys, cv2.INTER_LINEAR)
    return np.clip(left, 0, 255).astype(np.uint8), np.clip(right, 0, 255).astype(np.uint8)


def _matcher(**kw) -> StereoMatcher:
    return StereoMatcher(StereoConfig(num_disparities=32, min_depth_m=0.05, **kw))


def test_plane_depth_is_metric_and_subpixel():
    d = 7.5
    left, right = _pair(d)
    res = _matcher().compute(left, right, CAM, BASELINE)
    inner = np.zeros((H, W), bool)
    inner[10:-10, 40:-10] = True
    v = res.valid & inner
    assert v.sum() > 0.8 * inner.sum()
    assert abs(np.median(res.disparity_px[v]) - d) < 0.15  # sub-pixel, not rounded to 7 or 8
    assert abs(np.median(res.depth_m[v]) - 100 * BASELINE / d) < 0.01
    assert np.median(np.abs(res.depth_m[v] - 100 * BASELINE / d)) < 0.03
    assert np.all(res.depth_m[~res.valid] == 0)
    assert res.time_s > 0 and res.focal_baseline_px_m == pytest.approx(5.0)
    assert np.all(res.cost_margin[v] >= 0) and np.median(res.cost_margin[v]) > 0.1


def test_texture_check_removes_flat_region():
    left, right = _pair(6.0)
    left[40:80, 60:120] = 128
    right[40:80, 50:120] = 128
    on = _matcher().compute(left, right, CAM, BASELINE)
    off = _matcher(texture_min_std=0.0).compute(left, right, CAM, BASELINE)
    flat = np.zeros((H, W), bool)
    flat[45:75, 70:115] = True
    assert on.valid[flat].mean() < 0.05
    assert on.counts["texture"] > 0
    assert off.counts["texture"] == 0


def test_left_right_check_rejects_pixels_without_a_match():
    left, right = _pair(6.0)
    rng = np.random.default_rng(5)
    # Part of the right image shows something else: the left pixels there have no true match.
    right[30:90, 60:110] = rng.integers(0, 255, (60, 50), dtype=np.uint8)
    box = np.zeros((H, W), bool)
    box[35:85, 70:110] = True
    with_lr = _matcher(uniqueness_ratio=0, speckle_window=0).compute(left, right, CAM, BASELINE)
    no_lr = _matcher(uniqueness_ratio=0, speckle_window=0, lr_check=False).compute(left, right, CAM, BASELINE)
    assert with_lr.counts["lr"] > 0
    assert with_lr.valid[box].mean() < no_lr.valid[box].mean()
    good = np.zeros((H, W), bool)
    good[5:22, 40:150] = True  # away from the box (SGBM paths carry the mismatch a little way)
    assert with_lr.valid[good].mean() > 0.8


def test_mirrored_pass_in_a_helper_thread_gives_the_same_result():
    left, right = _pair(6.0)
    right[30:90, 60:110] = np.random.default_rng(5).integers(0, 255, (60, 50), dtype=np.uint8)
    serial = _matcher(parallel=False)
    overlapped = _matcher(parallel=True)
    assert serial._helper is None and overlapped._helper is not None
    for _ in range(3):  # the helper and its matcher object are reused frame after frame
        a = serial.compute(left, right, CAM, BASELINE)
        b = overlapped.compute(left, right, CAM, BASELINE)
        assert a.counts == b.counts and a.counts["lr"] > 0
        for name in ("valid", "disparity_px", "lr_diff_px", "depth_m"):
            assert np.array_equal(getattr(a, name), getattr(b, name)), name


def test_disparity_to_depth():
    z = disparity_to_depth(np.array([[10.0, 0.0, -1.0]]), 100.0, 0.05)
    np.testing.assert_allclose(z, [[0.5, 0.0, 0.0]])


def test_reproject_translation_and_zbuffer():
    depth = np.full((H, W), 2.0, np.float32)
    depth[50:60, 50:60] = 1.0  # a near square in front of the wall
    T = np.eye(4)
    T[0, 3] = 0.1  # destination camera sees points shifted +0.1 m in x
    out, (attr,) = reproject_depth(depth, CAM, T, CAM, [depth * 10])
    # wall moves by f * 0.1 / 2 = 5 px, the near square by 10 px and stays in front
    assert out[20, 30 + 5] == pytest.approx(2.0)
    assert out[55, 55 + 10] == pytest.approx(1.0)
    assert attr[55, 55 + 10] == pytest.approx(10.0)
    # the first 5 columns of the destination see nothing from the source
    assert np.all(out[:, :5] == 0)


def test_compute_reprojects_into_color_camera_when_not_identity():
    left, right = _pair(8.0)
    m = _matcher()
    T = np.eye(4)
    T[0, 3] = -0.05
    ref = m.compute(left, right, CAM, BASELINE)
    moved = m.compute(left, right, CAM, BASELINE, T_ref_left=T, camera_ref=CAM)
    z = 100 * BASELINE / 8.0
    shift = int(round(100 * -0.05 / z))  # -8 px
    row = 60
    a = ref.depth_m[row, 60:100]
    b = moved.depth_m[row, 60 + shift:100 + shift]
    ok = (a > 0) & (b > 0)
    assert ok.sum() > 20
    np.testing.assert_allclose(a[ok], b[ok], atol=1e-5)
    assert not np.array_equal(ref.depth_m, moved.depth_m)


def test_bad_input_raises():
    left, right = _pair(6.0)
    m = _matcher()
    with pytest.raises(ValueError, match="equal"):
        m.compute(left, right[:, :-1], CAM, BASELINE)
    with pytest.raises(ValueError, match="uint8"):
        m.compute(left.astype(np.float32), right.astype(np.float32), CAM, BASELINE)
    with pytest.raises(ValueError, match="baseline"):
        m.compute(left, right, CAM, 0.0)
    with pytest.raises(ValueError, match="stereo camera"):
        m.compute(left, right, PinholeCamera(80, 60, 50, 50, 40, 30), BASELINE)
    with pytest.raises(ValueError, match="multiple of 16"):
        StereoConfig(num_disparities=20)
    with pytest.raises(ValueError, match="mode"):
        StereoConfig(mode="bm")


def test_all_black_pair_gives_no_depth_not_an_error():
    z = np.zeros((H, W), np.uint8)
    res = _matcher().compute(z, z, CAM, BASELINE)
    assert not res.valid.any()


def _two_planes(d_near: float, d_far: float, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Near plane on the upper half (disparity d_near), far plane below (d_far); full-resolution pixels."""
    la, ra = _pair(d_near, seed)
    lb, rb = _pair(d_far, seed + 1)
    return np.vstack([la[: H // 2], lb[H // 2:]]), np.vstack([ra[: H // 2], rb[H // 2:]])


def test_downsampled_matching_is_metric_at_full_size():
    d = 14.0  # full-resolution disparity: 7 matched pixels at half size
    left, right = _pair(d, seed=2)
    m = _matcher(downsample=2)
    assert m.config.matched_num_disparities == 16  # the range shrinks with the image
    res = m.compute(left, right, CAM, BASELINE)
    assert res.depth_m.shape == (H, W) and res.valid.shape == (H, W)
    # disparities and f b are in matched (half-size) pixels, so z = f b / d holds pixel by pixel
    assert res.focal_baseline_px_m == pytest.approx(50.0 * BASELINE)
    inner = np.zeros((H, W), bool)
    inner[10:-10, 60:-10] = True
    v = res.valid & inner
    assert v.sum() > 0.7 * inner.sum()
    assert abs(np.median(res.disparity_px[v]) - d / 2) < 0.1
    z = 100 * BASELINE / d
    assert abs(np.median(res.depth_m[v]) - z) < 0.015 * z
    assert np.all(res.depth_m[~res.valid] == 0)
    np.testing.assert_allclose(res.depth_m[v], 50.0 * BASELINE / res.disparity_px[v], rtol=1e-5)


def test_downsampled_matching_keeps_depth_edges_sharp():
    # a fronto-parallel step: near at 0.25 m, far at 0.5 m. Upsampling must not invent depths between the
    # two surfaces (bilinear blending across the step would).
    left, right = _two_planes(20.0, 10.0)
    res = _matcher(downsample=2).compute(left, right, CAM, BASELINE)
    z = res.depth_m[:, 70:-10]
    v = z > 0
    assert v.mean() > 0.6
    between = v & (z > 0.25 * 1.1) & (z < 0.5 * 0.9)
    assert between.sum() <= 0.01 * v.sum(), between.sum()


def test_downsampled_stereo_is_cheaper():
    import time

    rng = np.random.default_rng(0)
    big = cv2.GaussianBlur(rng.uniform(0, 255, (240, 400)).astype(np.float32), (0, 0), 0.8)
    left = np.clip(big[:, 40:360], 0, 255).astype(np.uint8)
    right = np.clip(big[:, 30:350], 0, 255).astype(np.uint8)
    cam = PinholeCamera(320, 240, 200.0, 200.0, 159.5, 119.5)
    cost = {}
    for ds in (1, 2):
        m = StereoMatcher(StereoConfig(num_disparities=64, downsample=ds))
        m.compute(left, right, cam, BASELINE)  # warm-up
        c0 = time.thread_time()
        for _ in range(3):
            m.compute(left, right, cam, BASELINE)
        cost[ds] = time.thread_time() - c0
    assert cost[2] < 0.6 * cost[1], cost


def test_downsample_must_be_1_2_or_4():
    with pytest.raises(ValueError, match="downsample"):
        StereoConfig(downsample=3)
    assert StereoConfig(num_disparities=96, downsample=2).matched_num_disparities == 48
    assert StereoConfig(num_disparities=96, downsample=4).matched_num_disparities == 32  # rounded up to 16s
