"""Variational (primal-dual Huber-TV) fusion."""
import numpy as np
import pytest
import torch

from metric_semantic_slam.core.depth_confidence import SourceConfidence, sigma_to_confidence
from metric_semantic_slam.core.depth_fusion import DepthFuser, DepthFusionConfig
from metric_semantic_slam.core.depth_fusion_variational import _div, _grad, primal_dual_huber_tv

H, W = 60, 80


def _src(depth, sigma):
    depth = depth.astype(np.float32)
    valid = depth > 0
    s = np.where(valid, np.float32(sigma), np.inf).astype(np.float32)
    return SourceConfidence(np.where(valid, depth, 0).astype(np.float32), s, sigma_to_confidence(s, 0.02), valid)


def _rmse(d, gt):
    v = d > 0
    return float(np.sqrt(np.mean((d[v] - gt[v]) ** 2)))


def test_divergence_is_minus_adjoint_of_gradient():
    g = torch.Generator().manual_seed(0)
    u, px, py = (torch.randn(7, 9, generator=g, dtype=torch.float64) for _ in range(3))
    gx, gy = _grad(u)
    assert float((gx * px + gy * py).sum() + (u * _div(px, py)).sum()) == pytest.approx(0.0, abs=1e-12)


def test_without_smoothness_the_solution_is_the_weighted_mean():
    f = torch.stack([torch.full((H, W), 1.0), torch.full((H, W), 2.0)])
    lam = torch.stack([torch.full((H, W), 3.0), torch.full((H, W), 1.0)])
    w = torch.ones(H, W)
    u = primal_dual_huber_tv(torch.zeros(H, W), f, lam, w, w, mu=0.0, delta=1.0, iterations=200)
    assert torch.allclose(u, torch.full((H, W), 1.25), atol=1e-3)


def test_tv_denoises_a_plane_and_keeps_a_step_with_edge_weights():
    rng = np.random.default_rng(0)
    gt = np.full((H, W), 100.0, np.float32)
    gt[:, W // 2:] = 150.0
    noisy = gt + rng.normal(0, 1.0, gt.shape).astype(np.float32)
    f = torch.from_numpy(noisy)[None]
    lam = torch.ones(1, H, W)
    wx = torch.ones(H, W)
    wx[:, W // 2 - 1] = 0.0  # no smoothing across the known edge
    wy = torch.ones(H, W)
    u = primal_dual_huber_tv(torch.from_numpy(noisy), f, lam, wx, wy, mu=3.0, delta=1.0, iterations=100).numpy()
    assert _rmse(u, gt) < 0.6 * _rmse(noisy, gt)
    assert np.abs(u[:, W // 2] - 150).max() < 2.0 and np.abs(u[:, W // 2 - 1] - 100).max() < 2.0


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shape"):
        primal_dual_huber_tv(torch.zeros(H, W), torch.zeros(1, H, W + 1), torch.zeros(1, H, W + 1),
                             torch.ones(H, W), torch.ones(H, W), 1.0, 1.0, 5)


def _scene(seed=0):
    rng = np.random.default_rng(seed)
    gt = np.full((H, W), 2.0, np.float32)
    gt[:, W // 2:] = 3.0
    a = gt + rng.normal(0, 0.01, gt.shape).astype(np.float32)
    s = gt + rng.normal(0, 0.03, gt.shape).astype(np.float32)
    a[10:20, 10:20] = 0
    return gt, _src(a, 0.01), _src(s, 0.03)


def test_variational_fusion_beats_the_better_input_and_keeps_validity():
    gt, a, s = _scene()
    cfg = DepthFusionConfig(method="variational", max_relative_sigma=0, smooth_sigma_px=0, iterations=60)
    out = DepthFuser(cfg).fuse_sources(a, s)
    local = DepthFuser(DepthFusionConfig(max_relative_sigma=0, smooth_sigma_px=0)).fuse_sources(a, s)
    assert out.method == "variational"
    assert np.array_equal(out.valid, local.valid)
    assert _rmse(out.depth_m, gt) < 0.7 * _rmse(a.depth_m, gt)
    assert _rmse(out.depth_m, gt) < _rmse(local.depth_m, gt)
    assert np.abs(out.depth_m[:, W // 2] - 3.0).max() < 0.1  # the 1 m step survives


def test_variational_passes_a_single_source_through():
    _, a, _ = _scene()
    out = DepthFuser(DepthFusionConfig(method="variational")).fuse_sources(a, None)
    np.testing.assert_array_equal(out.depth_m, a.depth_m)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_variational_on_cuda_matches_cpu():
    gt, a, s = _scene()
    cpu = DepthFuser(DepthFusionConfig(method="variational")).fuse_sources(a, s)
    gpu = DepthFuser(DepthFusionConfig(method="variational", device="cuda")).fuse_sources(a, s)
    np.testing.assert_allclose(cpu.depth_m, gpu.depth_m, atol=1e-4)


def test_refine_leaves_its_inputs_unchanged():
    # The CPU solver wraps numpy arrays without copying; it must not scale them in place.
    from metric_semantic_slam.core.depth_fusion import fuse_local
    from metric_semantic_slam.core.depth_fusion_variational import VariationalFusion

    _, a, s = _scene(1)
    cfg = DepthFusionConfig(method="variational", iterations=5)
    local = fuse_local(a, s, cfg)
    saved = [x.copy() for x in (local.depth_m, local.sigma_m, a.depth_m, a.sigma_m, s.depth_m, s.sigma_m)]
    out = VariationalFusion(cfg).refine(local, a, s)
    for x, y in zip((local.depth_m, local.sigma_m, a.depth_m, a.sigma_m, s.depth_m, s.sigma_m), saved):
        assert np.array_equal(x, y)
    assert np.array_equal(out.valid, local.valid) and not np.array_equal(out.depth_m, local.depth_m)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_graph_replay_matches_eager_and_reuses_its_buffers():
    from metric_semantic_slam.core.depth_fusion import fuse_local
    from metric_semantic_slam.core.depth_fusion_variational import VariationalFusion

    cfg = DepthFusionConfig(method="variational", device="cuda", iterations=20, reweight_every=5)
    graph, eager = VariationalFusion(cfg), VariationalFusion(cfg, use_cuda_graph=False)
    outs = []
    for seed in (2, 3):  # two frames through the same graph: the second must not see the first's data
        _, a, s = _scene(seed)
        local = fuse_local(a, s, cfg)
        g, e = graph.refine(local, a, s), eager.refine(local, a, s)
        np.testing.assert_allclose(g.depth_m, e.depth_m, atol=1e-5)
        outs.append(g.depth_m)
    assert graph._graphs and graph.use_cuda_graph  # captured, not fallen back
    assert not np.array_equal(outs[0], outs[1])  # the returned array is not the reused pinned buffer


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device"))])
def test_fusers_in_parallel_threads_give_what_one_gives(device):
    # depth_fusion_node's workers: each thread refines with its own object. On CUDA one thread's graph capture
    # must not be broken by another's copies (the capture failed and a frame was lost before the solves took
    # turns); every result equals the sequential one.
    from concurrent.futures import ThreadPoolExecutor

    from metric_semantic_slam.core.depth_fusion import fuse_local
    from metric_semantic_slam.core.depth_fusion_variational import VariationalFusion

    cfg = DepthFusionConfig(method="variational", device=device, iterations=10)
    frames = []
    for seed in range(8):
        _, a, s = _scene(seed)
        frames.append((fuse_local(a, s, cfg), a, s))
    expected = [VariationalFusion(cfg).refine(*f).depth_m for f in frames]
    fusers = [VariationalFusion(cfg) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:  # thread k refines frames k and k + 4 with fuser k
        got = list(pool.map(lambda k: [fusers[k].refine(*frames[i]).depth_m for i in (k, k + 4)], range(4)))
    for k in range(4):
        for i, g in zip((k, k + 4), got[k]):
            np.testing.assert_allclose(g, expected[i], atol=1e-5)
    assert all(f.use_cuda_graph for f in fusers) or device == "cpu"
