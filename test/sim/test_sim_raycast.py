"""Ray casting backends (sim.raycast): torch's brute force against hand-computed hits and against Open3D."""
from __future__ import annotations

import numpy as np
import pytest

from metric_semantic_slam.sim.raycast import TorchRaycastScene, make_raycast_scene

# One triangle in the plane z = 2, wound counter-clockwise seen from +z: normal (0, 0, 1).
TRI_V = np.array([[0.0, 0.0, 2.0], [1.0, 0.0, 2.0], [0.0, 1.0, 2.0]], np.float32)
TRI_F = np.array([[0, 1, 2]])


def test_torch_hits_misses_and_normal_of_one_triangle():
    scene = TorchRaycastScene(TRI_V, TRI_F, device="cpu")
    dirs = np.array([
        [0.1, 0.1, 1.0],    # through (0.2, 0.2, 2) at t = 2: inside
        [0.6, 0.6, 1.0],    # through (1.2, 1.2, 2): outside (u + v > 1)
        [-0.1, 0.1, 1.0],   # through (-0.2, 0.2, 2): outside (u < 0)
        [0.1, 0.1, -1.0],   # away from the plane: t < 0
        [1.0, 0.0, 0.0],    # parallel to the plane
        [0.05, 0.05, 0.5],  # same line as the first, half as long: t = 4
    ], np.float32)
    t, prim, nrm = scene.cast(np.zeros(3, np.float32), dirs)
    np.testing.assert_allclose(t[[0, 5]], [2.0, 4.0], rtol=1e-6)
    assert np.isinf(t[1:5]).all()
    np.testing.assert_array_equal(prim, [0, -1, -1, -1, -1, 0])
    np.testing.assert_allclose(nrm[0], [0.0, 0.0, 1.0], atol=1e-7)
    np.testing.assert_array_equal(nrm[1:5], 0.0)


def test_torch_picks_the_nearest_of_stacked_triangles_and_chunks_alike():
    # The same triangle at z = 3 (listed first) and z = 2: every ray through both takes z = 2.
    v = np.concatenate([TRI_V + [0, 0, 1], TRI_V]).astype(np.float32)
    f = np.array([[0, 1, 2], [3, 4, 5]])
    rng = np.random.default_rng(0)
    dirs = np.c_[rng.uniform(-0.2, 0.6, (500, 2)), np.ones(500)].astype(np.float32)
    whole = TorchRaycastScene(v, f, device="cpu").cast(np.zeros(3), dirs)
    chunked = TorchRaycastScene(v, f, device="cpu", chunk_elements=7).cast(np.zeros(3), dirs)
    for a, b in zip(whole, chunked):
        np.testing.assert_array_equal(a, b)
    t, prim, _ = whole
    assert (prim >= 0).any() and (prim != 0).all()  # never the farther copy
    np.testing.assert_allclose(t[prim == 1], 2.0, rtol=1e-6)


def test_empty_mesh_and_no_rays():
    scene = TorchRaycastScene(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int64), device="cpu")
    t, prim, nrm = scene.cast(np.zeros(3), np.ones((4, 3), np.float32))
    assert np.isinf(t).all() and (prim == -1).all() and (nrm == 0).all()
    t, prim, nrm = TorchRaycastScene(TRI_V, TRI_F, device="cpu").cast(np.zeros(3), np.zeros((0, 3), np.float32))
    assert t.shape == (0,) and prim.shape == (0,) and nrm.shape == (0, 3)


def test_unknown_backend_raises():
    with pytest.raises(ValueError, match="raycaster must be one of"):
        make_raycast_scene(TRI_V, TRI_F, backend="embree")


def test_torch_agrees_with_open3d_on_a_simulated_room():
    pytest.importorskip("open3d")
    from metric_semantic_slam.core.camera import PinholeCamera
    from metric_semantic_slam.sim.render import Renderer
    from metric_semantic_slam.sim.scene import generate_world
    from metric_semantic_slam.sim.trajectory import make_trajectory

    world = generate_world(1, with_person=True)
    cam = PinholeCamera(128, 96, 105.0, 105.0, 63.5, 47.5)
    traj = make_trajectory(world, preset="handheld", duration_s=10.0, seed=1)
    ref, new = Renderer(world, raycaster="open3d"), Renderer(world, raycaster="torch")
    for t_s in (0.0, 4.0, 8.0):
        T = traj.T_world_camera(t_s)
        a, b = ref.cast(cam, T, t_s), new.cast(cam, T, t_s)
        # Ties at edges shared by two surfaces may go either way: a handful of pixels at most.
        assert (a.hit == b.hit).mean() >= 0.999
        assert (a.instance == b.instance).mean() >= 0.999 and (a.semantic == b.semantic).mean() >= 0.999
        same = a.hit & b.hit & (a.instance == b.instance)
        assert np.percentile(np.abs(a.depth_m[same] - b.depth_m[same]), 99.9) < 1e-4
