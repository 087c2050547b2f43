"""Active depth model (noise curve, quantization, dropouts) and the IR stereo pair."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from test_sim_render import Renderer, box_room_world, look_at, small_camera

from metric_semantic_slam.sim.sensors import (ActiveDepthConfig, DepthErrorAccumulator, IrStereoConfig,
                                              depth_error_curve, dot_pattern, format_depth_error_table,
                                              nguyen_axial_sigma_m, render_ir_pair, simulate_active_depth)

NO_DROPS = dict(speckle_holes_per_frame=0.0, edge_dropout_prob=0.0)


def _planes(z_values, h=120, w=160):
    return [np.full((h, w), z, np.float32) for z in z_values]


def test_model_curve_matches_nguyen_values():
    # Published numbers (Nguyen et al. 2012): ~1.2 mm at 0.4 m, ~4 cm at 5 m (fronto-parallel).
    assert nguyen_axial_sigma_m(0.4) == pytest.approx(0.0012)
    assert nguyen_axial_sigma_m(5.0) == pytest.approx(0.0012 + 0.0019 * 4.6**2)
    # Grows with the incidence angle.
    assert nguyen_axial_sigma_m(2.0, np.deg2rad(70)) > 1.1 * nguyen_axial_sigma_m(2.0, 0.0)


def test_measured_noise_curve_within_20_percent_of_model_on_planes():
    cfg = ActiveDepthConfig(**NO_DROPS)
    rng = np.random.default_rng(0)
    noisy, exact, sigma = [], [], []
    for z in np.arange(0.55, 6.0, 0.1):
        for ex in _planes([z]):
            r = simulate_active_depth(ex, np.ones_like(ex), np.full_like(ex, 0.8), cfg, rng)
            noisy.append(r.depth_m)
            exact.append(ex)
            sigma.append(r.model_sigma_m)
    rows = depth_error_curve(noisy, exact, sigma)
    print("\n" + format_depth_error_table(rows))
    checked = 0
    for row in rows:
        if row.n >= 5000:
            checked += 1
            assert 0.8 < row.ratio < 1.2, row
            assert abs(row.mean_m) < 0.3 * row.model_std_m + 2e-4, row
    assert checked >= 10


def test_measured_noise_curve_within_20_percent_on_rendered_room():
    r = Renderer(box_room_world())
    cam = small_camera(320, 240)
    cfg = ActiveDepthConfig()
    acc = DepthErrorAccumulator(np.arange(0.5, 5.01, 0.5))
    rng = np.random.default_rng(3)
    for k in range(6):
        T = look_at([-1.7 + 0.1 * k, -1.2, 1.5], [1.5, 1.0 - 0.3 * k, 0.6])
        out = r.render(cam, T)
        res = simulate_active_depth(out.depth_m, out.cos_incidence, r.ir_albedo(out.material), cfg, rng)
        acc.add(res.depth_m, out.depth_m, res.model_sigma_m, exclude=res.edge_mask)
    rows = acc.rows()
    print("\n" + format_depth_error_table(rows))
    checked = [row for row in rows if row.n >= 3000]
    assert len(checked) >= 3
    for row in checked:
        assert 0.8 < row.ratio < 1.2, row


def test_disparity_is_quantized_to_subpixel_steps():
    cfg = ActiveDepthConfig(axial_noise=False, lateral_sigma_px=0.0, **NO_DROPS)
    z = np.linspace(0.5, 5.0, 160 * 120, dtype=np.float32).reshape(120, 160)
    r = simulate_active_depth(z, np.ones_like(z), np.full_like(z, 0.8), cfg, np.random.default_rng(0))
    ok = r.depth_m > 0
    disp = cfg.focal_px * cfg.baseline_m / r.depth_m[ok].astype(np.float64)
    steps = disp / cfg.subpixel_step_px
    np.testing.assert_allclose(steps, np.rint(steps), atol=1e-3)
    # The quantized depth is within half a step of the exact one.
    half_step_m = 0.5 * cfg.subpixel_step_px * z[ok] ** 2 / (cfg.focal_px * cfg.baseline_m)
    assert (np.abs(r.depth_m[ok] - z[ok]) <= half_step_m * 1.01 + 1e-6).all()


def test_dropouts_at_edges_dark_grazing_and_range():
    h, w = 120, 160
    rng = np.random.default_rng(1)
    cfg = ActiveDepthConfig(speckle_holes_per_frame=0.0, axial_noise=False)
    step = np.full((h, w), 3.0, np.float32)
    step[:, : w // 2] = 1.0
    r = simulate_active_depth(step, np.ones_like(step), np.full_like(step, 0.8), cfg, rng)
    near = r.depth_m[:, w // 2 - 2: w // 2 + 2]
    far = np.concatenate([r.depth_m[:, : w // 2 - 10], r.depth_m[:, w // 2 + 10:]], axis=1)
    assert (near == 0).mean() > 0.4
    assert (far == 0).mean() == 0.0
    assert r.dropout_edge.any() and r.edge_mask[:, w // 2].all()

    dark = simulate_active_depth(_planes([2.0])[0], np.ones((h, w), np.float32), np.full((h, w), 0.05, np.float32),
                                 cfg, rng)
    assert (dark.depth_m == 0).all() and dark.dropout_dark.all()
    grazing = simulate_active_depth(_planes([2.0])[0], np.full((h, w), np.cos(np.deg2rad(84)), np.float32),
                                    np.full((h, w), 0.8, np.float32), cfg, rng)
    assert (grazing.depth_m == 0).all() and grazing.dropout_grazing.all()
    for z in (0.2, 7.0):
        rr = simulate_active_depth(_planes([z])[0], np.ones((h, w), np.float32), np.full((h, w), 0.8, np.float32),
                                   cfg, rng)
        assert (rr.depth_m == 0).all() and rr.dropout_range.all()
    holes = simulate_active_depth(_planes([2.0])[0], np.ones((h, w), np.float32), np.full((h, w), 0.8, np.float32),
                                  ActiveDepthConfig(speckle_holes_per_frame=20.0), rng)
    assert 0 < (holes.depth_m == 0).mean() < 0.2 and holes.dropout_speckle.any()


def test_rendered_room_has_dropouts_on_dark_box():
    world = box_room_world()
    r = Renderer(world)
    cam = small_camera()
    out = r.render(cam, look_at([0.5, -0.5, 1.2], [-0.9, 0.9, 0.3]))
    res = simulate_active_depth(out.depth_m, out.cos_incidence, r.ir_albedo(out.material), ActiveDepthConfig(),
                                np.random.default_rng(0))
    dark = out.instance == 2
    assert dark.sum() > 100
    assert (res.depth_m[dark] == 0).all()
    assert (res.depth_m[~dark] > 0).mean() > 0.8


def test_bad_inputs_raise():
    with pytest.raises(ValueError):
        ActiveDepthConfig(min_range_m=3.0, max_range_m=1.0)
    with pytest.raises(ValueError, match="must be equal"):
        simulate_active_depth(np.ones((4, 4)), np.ones((4, 5)), np.ones((4, 4)), ActiveDepthConfig(),
                              np.random.default_rng(0))
    with pytest.raises(ValueError):
        IrStereoConfig(baseline_m=0.0)


def _block_match_disparity(left: np.ndarray, right: np.ndarray, v: int, u: int, half: int, max_d: int) -> float:
    """Sub-pixel disparity of the patch at (v, u) of ``left`` found in ``right`` at (v, u - d), by NCC."""
    L = left[v - half: v + half + 1, u - half: u + half + 1].astype(np.float64)
    L = (L - L.mean()) / (L.std() + 1e-9)
    scores = []
    for d in range(max_d + 1):
        R = right[v - half: v + half + 1, u - d - half: u - d + half + 1].astype(np.float64)
        R = (R - R.mean()) / (R.std() + 1e-9)
        scores.append(float((L * R).mean()))
    s = np.array(scores)
    k = int(np.argmax(s))
    assert 0 < k < max_d and s[k] > 0.7, (k, s[k])
    denom = s[k - 1] - 2 * s[k] + s[k + 1]
    return k + 0.5 * (s[k - 1] - s[k + 1]) / denom


@pytest.mark.parametrize("z", [1.0, 1.5])
def test_ir_dot_disparity_equals_fx_b_over_z(z):
    r = Renderer(box_room_world())
    cam = small_camera(320, 240)
    cfg = IrStereoConfig(baseline_m=0.05, noise_sigma_dn=0.0)
    T = look_at([2.0 - z, 0.0, 1.6], [5.0, 0.0, 1.6])  # fronto-parallel to the x = 2 wall
    pair = render_ir_pair(r, cam, T, 0.0, cfg, None)
    assert pair.left.dtype == np.uint8 and pair.left.shape == (240, 320)
    expected = cam.fx * cfg.baseline_m / z
    ds = [_block_match_disparity(pair.left, pair.right, v, u, 10, 30) for v, u in ((120, 160), (80, 200), (170, 120))]
    print(f"z={z}: expected disparity {expected:.3f} px, block matching {np.round(ds, 3)}")
    for d in ds:
        assert d == pytest.approx(expected, abs=0.25)


def test_ir_dots_are_projected_and_emitter_shadow_is_dark():
    """The right camera sees wall behind the table's edge that the emitter (at the left camera) cannot light."""
    r = Renderer(box_room_world())
    cam = small_camera(320, 240)
    cfg = IrStereoConfig(baseline_m=0.15, noise_sigma_dn=0.0, ambient=0.0)
    # Looking along +x, the right camera sits at -y: beside the table's -y side it sees a strip of wall
    # hidden from the emitter by the table.
    T = look_at([-0.3, -0.45, 0.5], [5.0, -0.45, 0.5])
    pair = render_ir_pair(r, cam, T, 0.0, cfg, None)
    # Without ambient light every visible, lit pixel is dots only: left image full of dots.
    assert (pair.left > 40).mean() > 0.05
    # Right camera: pixels on the wall (class 2) that the emitter cannot see are black.
    T_world_right = T.copy()
    T_world_right[:3, 3] += T[:3, 0] * cfg.baseline_m
    hits_r = r.cast(cam, T_world_right)
    hits_l = r.cast(cam, T)
    from metric_semantic_slam.core.geometry import invert_transform

    p = hits_r.points_world.reshape(-1, 3) @ invert_transform(T)[:3, :3].T + invert_transform(T)[:3, 3]
    u = np.rint(cam.fx * p[:, 0] / p[:, 2] + cam.cx).astype(int)
    v = np.rint(cam.fy * p[:, 1] / p[:, 2] + cam.cy).astype(int)
    inside = (u >= 0) & (u < cam.width) & (v >= 0) & (v < cam.height)
    occluded = np.zeros(len(p), bool)
    occluded[inside] = p[inside, 2] > hits_l.depth_m[v[inside], u[inside]] + 0.05
    occluded = occluded.reshape(cam.shape)
    occluded = cv2.erode(occluded.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert occluded.sum() > 50
    assert pair.right[occluded].max() == 0
    assert (pair.right[~occluded & hits_r.hit] > 40).mean() > 0.05


def test_dot_pattern_is_fixed_by_the_device_seed():
    a = dot_pattern(60, 80, IrStereoConfig())
    b = dot_pattern(60, 80, IrStereoConfig())
    c = dot_pattern(60, 80, IrStereoConfig(pattern_seed=7))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert 0.0 <= a.min() and a.max() == pytest.approx(1.0)


def test_ir_pair_with_offset_left_camera_equals_moving_the_color_camera():
    r = Renderer(box_room_world())
    cam = small_camera()
    T_cl = np.eye(4)
    T_cl[:3, 3] = [0.015, 0.0, 0.0]  # left IR 1.5 cm right of the color camera (D435-like)
    T = look_at([-0.5, 0.2, 1.2], [2.0, -0.3, 0.8])
    offset = render_ir_pair(r, cam, T, 0.0, IrStereoConfig(T_color_left=tuple(map(tuple, T_cl)), noise_sigma_dn=0.0), None)
    moved = render_ir_pair(r, cam, T @ T_cl, 0.0, IrStereoConfig(noise_sigma_dn=0.0), None)
    np.testing.assert_array_equal(offset.left, moved.left)
    np.testing.assert_array_equal(offset.right, moved.right)
    np.testing.assert_allclose(offset.T_color_left, T_cl)
    with pytest.raises(ValueError, match="4x4"):
        IrStereoConfig(T_color_left=((1.0, 0.0), (0.0, 1.0)))
