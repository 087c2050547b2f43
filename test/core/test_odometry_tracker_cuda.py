"""The fixed-shape GPU tracker (tracker_cuda.py) gives the CPU tracker's poses; on CUDA it never syncs."""
import numpy as np
import pytest
import torch

from metric_semantic_slam.core.camera import PinholeCamera
from metric_semantic_slam.core.geometry import invert_transform, rotation_angle_rad, se3_exp
from metric_semantic_slam.core.odometry.pyramid import build_pyramid, rgb_to_intensity
from metric_semantic_slam.core.odometry.rgbd_tracker import RgbdTracker, RotationPrior, TrackerConfig, _subsample
from metric_semantic_slam.core.odometry.synthetic import box_room, render_planes
from metric_semantic_slam.core.odometry.tracker_cuda import CudaRgbdTracker, strided_subset, strided_subset_mask

CAM = PinholeCamera(160, 120, 130.0, 130.0, 79.5, 59.5)
T1 = se3_exp(np.array([0.03, -0.02, 0.04, 0.02, -0.03, 0.015]))
T_PREV = se3_exp(np.array([0.01, 0.0, 0.02, 0.0, -0.01, 0.01]))
CUDA = torch.cuda.is_available()


def _pyr(T, device="cpu"):
    d, c, _ = render_planes(CAM, T, box_room())
    return build_pyramid(rgb_to_intensity(c, device), torch.as_tensor(d, device=device), CAM, 3)


def _err(Ta, Tb):
    E = invert_transform(Ta) @ Tb
    return np.linalg.norm(E[:3, 3]), rotation_angle_rad(E[:3, :3])


@pytest.mark.parametrize("n, m", [(3000, 5), (3000, 777), (3000, 1799), (3000, 5000), (1, 1), (0, 4)])
def test_strided_subset_is_the_cpu_subsample(n, m):
    g = torch.Generator().manual_seed(n + m)
    mask = torch.rand(max(n, 1), generator=g) > 0.4 if n else torch.zeros(4, dtype=torch.bool)
    ours = strided_subset_mask(mask, m)
    cpu = torch.zeros_like(mask)
    cpu[_subsample(torch.nonzero(mask).squeeze(1), m)] = True
    assert torch.equal(ours, cpu)
    assert int(ours.sum()) == min(int(mask.sum()), m)


@pytest.mark.parametrize("n, m", [(3000, 1000), (3000, 1500), (4800, 600), (6, 4)])
def test_strided_subset_exact_multiples(n, m):
    mask = torch.ones(2, n, dtype=torch.bool)  # batched rows; n a multiple of m: boundary cases of the rule
    mask[1, ::3] = False
    keep, pos = strided_subset(mask, m)
    for b in range(2):
        cpu = _subsample(torch.nonzero(mask[b]).squeeze(1), m)
        assert torch.equal(torch.nonzero(keep[b]).squeeze(1), cpu)
        assert torch.equal(pos[b][keep[b]], torch.arange(cpu.numel()))


@pytest.mark.parametrize("terms", [dict(), dict(use_rgb=False), dict(use_icp=False), dict(max_points=500),
                                   dict(icp_depth_weighting=True, rgb_offset_compensation=True, max_points=800),
                                   dict(icp_finest_level=1)])
@pytest.mark.parametrize("with_previous", [False, True])
def test_same_solution_as_cpu_tracker(terms, with_previous):
    ref, cur, prev = _pyr(np.eye(4)), _pyr(T1), _pyr(T_PREV)
    cfg = TrackerConfig(iterations=(8, 8, 8), **terms)
    extra = [(prev, T_PREV)] if with_previous else None
    a = RgbdTracker(cfg).track(ref, cur, np.eye(4), extra_refs=extra)
    b = CudaRgbdTracker(cfg).track(ref, cur, np.eye(4), extra_refs=extra)
    dt, dr = _err(a.T_ref_cur, b.T_ref_cur)
    assert dt < 3e-5 and dr < 3e-5
    # float32 rounding (another BLAS, FMA) may flip a sample at a gate or the early stop by one step
    assert abs(a.iterations - b.iterations) <= 1
    assert abs(a.num_icp - b.num_icp) <= 2 + 1e-3 * a.num_icp and abs(a.num_rgb - b.num_rgb) <= 2 + 1e-3 * a.num_rgb
    assert b.inlier_ratio == pytest.approx(a.inlier_ratio, rel=1e-3)
    assert b.residual == pytest.approx(a.residual, rel=1e-2)
    np.testing.assert_allclose(b.hessian, a.hessian, rtol=1e-2, atol=1e-2 * np.abs(a.hessian).max())
    assert _err(np.eye(4), T1)[0] > 1e3 * dt  # the solution is not the start


def test_affine_brightness_compensation_matches_cpu():
    from metric_semantic_slam.core.odometry import dense_terms_np
    from metric_semantic_slam.core.odometry.tracker_cuda import _brightness_affine

    fit_brightness_affine = getattr(dense_terms_np, "fit_brightness_affine", None)
    if fit_brightness_affine is None or "rgb_affine_compensation" not in TrackerConfig.__dataclass_fields__:
        pytest.skip("this tree's CPU tracker has no affine brightness compensation")

    g = np.random.default_rng(3)
    x = g.uniform(0.1, 0.9, (2, 500)).astype(np.float32)
    y = (1.3 * x + 0.05 + g.normal(0, 0.01, x.shape)).astype(np.float32)
    y[:, :40] = 0.99  # outliers (a specular spot)
    ok = g.uniform(size=x.shape) > 0.2
    ok[1, 10:] = False  # too few samples: (1, 0)
    gain, offset = _brightness_affine(torch.as_tensor(x), torch.as_tensor(y), torch.as_tensor(ok))
    for b in range(2):
        ref = fit_brightness_affine(x[b][ok[b]], y[b][ok[b]])
        assert float(gain[b]) == pytest.approx(ref[0], abs=1e-6)
        assert float(offset[b]) == pytest.approx(ref[1], abs=1e-6)
    assert float(gain[0]) == pytest.approx(1.3, abs=0.02) and float(gain[1]) == 1.0

    d0, c0, _ = render_planes(CAM, np.eye(4), box_room())
    d1, c1, _ = render_planes(CAM, T1, box_room(), brightness=1.25)
    ref = build_pyramid(rgb_to_intensity(c0), torch.as_tensor(d0), CAM, 3)
    cur = build_pyramid(rgb_to_intensity(c1), torch.as_tensor(d1), CAM, 3)
    cfg = TrackerConfig(iterations=(6, 6, 6), rgb_affine_compensation=True)
    a = RgbdTracker(cfg).track(ref, cur, np.eye(4))
    b = CudaRgbdTracker(cfg).track(ref, cur, np.eye(4))
    assert max(_err(a.T_ref_cur, b.T_ref_cur)) < 3e-5
    assert max(_err(b.T_ref_cur, T1)) < 5e-3


def test_rotation_prior_and_dynamic_mask_match_cpu():
    ref, cur = _pyr(np.eye(4)), _pyr(T1)
    for lvl in cur:  # a moving object in the middle of the current frame
        m = np.zeros(lvl.shape, bool)
        h, w = lvl.shape
        m[h // 3: h // 2, w // 3: w // 2] = True
        lvl.cache["dynamic"] = m
    prior = RotationPrior(T1[:3, :3] @ se3_exp(np.array([0, 0, 0, 0.0, 0.01, 0.0]))[:3, :3], 1e-4)
    cfg = TrackerConfig(iterations=(6, 6, 6))
    a = RgbdTracker(cfg).track(ref, cur, np.eye(4), prior)
    b = CudaRgbdTracker(cfg).track(ref, cur, np.eye(4), prior)
    assert max(_err(a.T_ref_cur, b.T_ref_cur)) < 1e-5
    assert a.num_rgb == b.num_rgb
    free = CudaRgbdTracker(cfg).track(ref, cur, np.eye(4))
    assert max(_err(free.T_ref_cur, b.T_ref_cur)) > 1e-3  # the prior pulled


def test_vio_on_real_frames_matches_cpu(shared_data):
    from metric_semantic_slam.core.odometry.vio import TrackingStatus, VisualInertialOdometry
    from metric_semantic_slam.io.sequence import open_sequence

    folder = shared_data / "tum_fr1_rpy_90"
    if not folder.is_dir():
        pytest.skip("tum_fr1_rpy_90 missing")
    seq = open_sequence(folder, max_frames=5)
    cpu, ours = VisualInertialOdometry(), VisualInertialOdometry()
    ours._tracker = CudaRgbdTracker(ours._tracker.config)
    ours._tracker_icp = CudaRgbdTracker(ours._tracker_icp.config)
    for i in range(len(seq)):
        a, b = cpu.track(seq[i]), ours.track(seq[i])
        assert a.status == b.status and b.status in (TrackingStatus.INITIALIZED, TrackingStatus.OK)
        dt, dr = _err(a.T_world_camera, b.T_world_camera)
        assert dt < 2e-4 and dr < 2e-4  # cv2.remap's 1/32-pixel bilinear weights vs exact bilinear


def test_mismatched_levels_use_the_general_path():
    ref = _pyr(np.eye(4))
    small = PinholeCamera(80, 60, 65.0, 65.0, 39.5, 29.5)
    d, c, _ = render_planes(small, T1, box_room())
    cur = build_pyramid(rgb_to_intensity(c), torch.as_tensor(d), small, 3)
    res = CudaRgbdTracker(TrackerConfig(iterations=(2, 2, 2))).track(ref, cur, np.eye(4))
    assert np.all(np.isfinite(res.T_ref_cur))


@pytest.mark.skipif(not CUDA, reason="needs CUDA: the no-sync and graph checks only mean something on a GPU")
def test_cuda_linearization_has_no_host_sync_and_graph_matches_eager():
    ref, cur, prev = _pyr(np.eye(4), "cuda"), _pyr(T1, "cuda"), _pyr(T_PREV, "cuda")
    cfg = TrackerConfig(iterations=(8, 8, 8))
    graphed = CudaRgbdTracker(cfg)
    eager = CudaRgbdTracker(cfg)
    eager.use_cuda_graphs = False
    a = graphed.track(ref, cur, np.eye(4), extra_refs=[(prev, T_PREV)])
    assert all(pb.graphs is not None for pb in graphed._problems.values())
    b = eager.track(ref, cur, np.eye(4), extra_refs=[(prev, T_PREV)])
    assert max(_err(a.T_ref_cur, b.T_ref_cur)) < 1e-6
    c = RgbdTracker(cfg).track(_pyr(np.eye(4)), _pyr(T1), np.eye(4), extra_refs=[(_pyr(T_PREV), T_PREV)])
    assert max(_err(a.T_ref_cur, c.T_ref_cur)) < 1e-4
    pb = next(iter(eager._problems.values()))
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        pb.step(True)  # pose in, setup, linearisation, moments out: what one graph replay does
        pb.step(False)
    finally:
        torch.cuda.set_sync_debug_mode(0)


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if CUDA else []))
def test_pyramid_builder_matches_build_pyramid(device):
    from metric_semantic_slam.core.odometry.tracker_cuda import CudaPyramidBuilder

    d, c, _ = render_planes(CAM, T1, box_room())
    d[:5, :7] = np.nan  # invalid depth must be cleaned the same way
    builder = CudaPyramidBuilder(CAM, 3, 0.1, 6.0, 1, device)
    first = builder(c, d)
    second = builder(c[::-1].copy(), d[::-1].copy())  # a later call must not change earlier pyramids
    ref = build_pyramid(rgb_to_intensity(c, device), torch.as_tensor(d, device=device), CAM, 3, 0.1, 6.0, 1)
    for a, b in zip(ref, first):
        assert a.intrinsics == b.intrinsics
        for name in CudaPyramidBuilder._FIELDS:
            x, y = getattr(a, name), getattr(b, name)
            assert x.shape == y.shape and x.dtype == y.dtype, name
            if x.numel():
                assert float((x.float() - y.float()).abs().max()) < 1e-5, name
    assert not torch.equal(first[1].depth, second[1].depth)
    black = builder(None, d)
    assert float(black[0].intensity.abs().max()) == 0.0


def test_builder_pyramids_load_as_one_arena(monkeypatch):
    from metric_semantic_slam.core.odometry.tracker_cuda import CudaPyramidBuilder

    builder = CudaPyramidBuilder(CAM, 4, 0.1, 6.0, 1, "cpu")

    def pyr(T):
        d, c, _ = render_planes(CAM, T, box_room())
        return builder(c, d)

    ref, cur, prev = pyr(np.eye(4)), pyr(T1), pyr(T_PREV)
    calls = []
    monkeypatch.setattr(torch, "_foreach_copy_", lambda *a: calls.append(a))  # the field-by-field path
    cfg = TrackerConfig(iterations=(0, 6, 6, 6), finest_level=1, max_points=3000)
    ours = CudaRgbdTracker(cfg).track(ref, cur, np.eye(4), extra_refs=[(prev, T_PREV)])
    assert not calls
    monkeypatch.undo()
    cpu = RgbdTracker(cfg).track(ref, cur, np.eye(4), extra_refs=[(prev, T_PREV)])
    assert max(_err(ours.T_ref_cur, cpu.T_ref_cur)) < 3e-5
    assert max(_err(np.eye(4), T1)) > 1e-2
