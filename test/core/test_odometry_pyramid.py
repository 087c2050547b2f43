"""Pyramid construction: intrinsics scaling, back-projection, normals, depth-edge handling."""
import numpy as np
import pytest
import torch

from metric_semantic_slam.core.camera import PinholeCamera
from metric_semantic_slam.core.odometry.pyramid import build_pyramid, rgb_to_intensity

CAM = PinholeCamera(160, 120, 130.0, 128.0, 79.5, 59.5)




def _plane_depth(cam: PinholeCamera, n: np.ndarray, d: float) -> np.ndarray:
    rays = cam.ray_directions()
    return (d / (rays @ n)).astype(np.float32)


def test_intrinsics_scale_like_camera_scaled():
    pyr = build_pyramid(torch.zeros(120, 160), torch.ones(120, 160), CAM, 3)
    for level, lvl in enumerate(pyr):
        s = CAM.scaled(0.5 ** level)
        assert lvl.shape == (s.height, s.width)
        assert np.allclose(lvl.intrinsics, (s.fx, s.fy, s.cx, s.cy))


def test_vertices_match_camera_backproject_and_plane_normals():
    n = np.array([0.2, -0.3, -1.0])
    n /= np.linalg.norm(n)
    depth = _plane_depth(CAM, -n, 2.0)  # plane facing the camera
    pyr = build_pyramid(torch.zeros(120, 160), torch.as_tensor(depth), CAM, 2)
    assert np.allclose(pyr[0].vertices.numpy(), CAM.backproject(depth), atol=1e-5)
    for lvl in pyr:
        nv = lvl.normals[lvl.normal_valid].numpy()
        assert len(nv) > 0.8 * lvl.depth.numel()
        assert np.allclose(nv, n, atol=1e-3)  # oriented towards the camera (n . p < 0)


def test_depth_edges_and_invalid_pixels_do_not_average():
    depth = np.full((120, 160), 1.0, np.float32)
    depth[:, 81:] = 3.0  # an edge inside a 2x2 block (columns 80/81)
    depth[:10, :10] = 0.0
    depth[20, 20] = np.nan
    pyr = build_pyramid(torch.zeros(120, 160), torch.as_tensor(depth), CAM, 2)
    d1 = pyr[1].depth.numpy()
    assert np.all(d1[:, 40] == 0.0)  # the block straddling the edge is invalid, not 2.0
    assert np.all(np.isin(np.unique(d1), [0.0, 1.0, 3.0]))
    assert np.all(d1[:5, :5] == 0.0)
    assert pyr[0].depth[20, 20] == 0.0 and not pyr[0].depth_valid[20, 20]
    assert not pyr[0].normal_valid[:, 80:82].any()  # no normals across the jump


def test_intensity_and_bad_shapes():
    img = np.zeros((4, 5, 3), np.uint8)
    img[..., 1] = 255
    assert torch.allclose(rgb_to_intensity(img), torch.full((4, 5), 0.587))
    with pytest.raises(ValueError):
        rgb_to_intensity(np.zeros((4, 5, 2), np.uint8))
    with pytest.raises(ValueError):
        build_pyramid(torch.zeros(10, 10), torch.zeros(120, 160), CAM, 2)
