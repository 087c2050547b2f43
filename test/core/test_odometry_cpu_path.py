"""The CPU fast path (numpy + cv2) computes what the torch code computes."""
import numpy as np
import torch

from metric_semantic_slam.core.camera import PinholeCamera
from metric_semantic_slam.core.geometry import se3_exp
from metric_semantic_slam.core.odometry import pyramid as pyr_mod
from metric_semantic_slam.core.odometry.dense_terms_np import remap_points
from metric_semantic_slam.core.odometry.pyramid import build_pyramid, rgb_to_intensity
from metric_semantic_slam.core.odometry.rgbd_tracker import RgbdTracker, TrackerConfig
from metric_semantic_slam.core.odometry.synthetic import box_room, render_planes

CAM = PinholeCamera(160, 120, 130.0, 130.0, 79.5, 59.5)
T1 = se3_exp(np.array([0.03, -0.02, 0.04, 0.02, -0.03, 0.015]))


def _torch_pyramid(intensity, depth, levels):
    """The torch functions of pyramid.py composed like build_pyramid's non-CPU path."""
    d = torch.where((depth >= 0.1) & (depth <= 6.0), depth, torch.zeros_like(depth))
    img = intensity
    k = (CAM.fx, CAM.fy, CAM.cx, CAM.cy)
    out = []
    for level in range(levels):
        if level:
            d = pyr_mod._downsample_depth(d)
            img = pyr_mod._downsample_image(img)
            k = (k[0] / 2, k[1] / 2, (k[2] + 0.5) / 2 - 0.5, (k[3] + 0.5) / 2 - 0.5)
        verts = pyr_mod.vertex_map(d, k)
        normals, nvalid = pyr_mod.normal_map(verts, d > 0)
        gx, gy = pyr_mod._gradients(img)
        out.append((img, d, verts, normals, nvalid, gx, gy, k))
    return out


def test_numpy_pyramid_matches_torch_functions():
    depth, color, _ = render_planes(CAM, T1, box_room())
    depth[40:50, 30:90] = 0.0  # a hole
    depth[60:70, 100:120] *= 1.5  # depth edges
    inten = rgb_to_intensity(color)
    ref = (0.299 * color[..., 0] + 0.587 * color[..., 1] + 0.114 * color[..., 2]) / 255.0
    assert np.abs(inten.numpy() - ref).max() < 1e-5
    fast = build_pyramid(inten, torch.as_tensor(depth), CAM, 3)
    slow = _torch_pyramid(inten, torch.as_tensor(depth), 3)
    for a, (img, d, verts, normals, nvalid, gx, gy, k) in zip(fast, slow):
        assert a.intrinsics == k
        assert torch.allclose(a.intensity, img, atol=1e-6) and torch.equal(a.depth, d)
        assert torch.allclose(a.vertices, verts, atol=1e-6) and torch.equal(a.normal_valid, nvalid)
        assert torch.allclose(a.normals, normals, atol=1e-5)
        assert torch.allclose(a.grad_x, gx, atol=1e-6) and torch.allclose(a.grad_y, gy, atol=1e-6)


def test_numpy_terms_give_the_torch_solution():
    def pyr(T):
        d, c, _ = render_planes(CAM, T, box_room())
        return build_pyramid(rgb_to_intensity(c), torch.as_tensor(d), CAM, 3)

    ref, cur = pyr(np.eye(4)), pyr(T1)
    results = []
    for fast in (True, False):
        tracker = RgbdTracker(TrackerConfig(iterations=(4, 4, 4), max_points=3000))
        tracker.cpu_fast_path = fast
        results.append(tracker.track(ref, cur, np.eye(4)))
    a, b = results
    assert np.allclose(a.T_ref_cur, b.T_ref_cur, atol=2e-4)
    assert a.num_icp == b.num_icp and abs(a.num_rgb - b.num_rgb) <= 0.01 * b.num_rgb
    assert np.allclose(a.hessian, b.hessian, rtol=0.05, atol=1e-3 * np.abs(b.hessian).max())


def test_remap_points_handles_more_points_than_cv2_map_width():
    img = np.arange(12 * 10, dtype=np.float32).reshape(12, 10)
    rng = np.random.default_rng(0)
    u = rng.uniform(0, 9, 40000).astype(np.float32)
    v = rng.uniform(0, 11, 40000).astype(np.float32)
    got = remap_points(img, u, v)
    assert got.shape == (40000,)
    assert np.allclose(got, v * 10 + u, atol=0.05)  # a linear image is reproduced by bilinear sampling
