"""Voxel blocks and projective TSDF integration against analytic scenes."""
import numpy as np
import pytest
import torch

from mapping_scenes import look_at_T, plane_depth, small_camera, sphere_depth
from metric_semantic_slam.core.mapping import BlockIndex, MapperConfig, SemanticVoxelMapper, TsdfConfig
from metric_semantic_slam.core.mapping.voxel_blocks import pack_keys, unpack_keys



def _mapper(**tsdf):
    return SemanticVoxelMapper(MapperConfig(tsdf=TsdfConfig(**tsdf), device="cpu"))


def _voxels(m):
    n = m.num_blocks * m.store.voxels_per_block
    v = torch.arange(n)
    w = m.store.view("weight")[:n]
    return m.voxel_centres(v).numpy(), m.store.view("tsdf")[:n].numpy(), w.numpy(), m.store.view("color")[:n].numpy()


def test_pack_keys_round_trip_and_order():
    c = torch.tensor([[0, 0, 0], [-5, 7, 1000], [-(2**20), 2**20 - 1, -1]])
    assert torch.equal(unpack_keys(pack_keys(c)), c)
    a = pack_keys(torch.tensor([[1, 0, 0], [0, 5, 5]]))
    assert a[0] > a[1]  # x is the most significant axis


def test_block_index_insert_lookup_keep():
    idx = BlockIndex()
    slots, new = idx.insert(torch.tensor([[1, 2, 3], [0, 0, 0], [1, 2, 3]]))
    assert len(idx) == 2 and slots[0] == slots[2] and new.tolist() == [0, 1]
    assert idx.lookup(torch.tensor([[9, 9, 9]])).item() == -1
    slots2, new2 = idx.insert(torch.tensor([[0, 0, 0], [4, 4, 4]]))
    assert slots2[0] == slots[1] and new2.tolist() == [2]
    old = idx.keep(torch.tensor([True, False, True]))
    assert old.tolist() == [0, 2] and len(idx) == 2
    # slot 0 = (0,0,0) (smallest key first), slot 1 = (1,2,3) dropped, slot 2 = (4,4,4) renumbered to 1
    assert idx.lookup(torch.tensor([[4, 4, 4], [0, 0, 0], [1, 2, 3]])).tolist() == [1, 0, -1]


def test_fronto_parallel_plane_sdf_is_exact():
    cam = small_camera()
    T = np.eye(4)
    depth = np.full(cam.shape, 2.0, np.float32)
    m = _mapper()
    stats = m.integrate(depth, np.full(cam.shape + (3,), 90, np.uint8), cam, T)
    assert stats.voxels_updated > 1000 and stats.blocks_allocated == m.num_blocks
    p, t, w, col = _voxels(m)
    tr = m.config.tsdf.truncation_m
    seen = w > 0
    # Voxels projecting inside the image with a positive projective SDF below the truncation.
    band = seen & (np.abs(2.0 - p[:, 2]) < tr * 0.99)
    assert band.sum() > 500
    np.testing.assert_allclose(t[band] * tr, 2.0 - p[band, 2], atol=1e-5)
    assert np.all(t[seen] >= -1.0) and np.all(t[seen] <= 1.0)
    np.testing.assert_allclose(col[seen], 90.0)
    # Nothing behind the truncation band is touched.
    assert not np.any(seen & (p[:, 2] > 2.0 + tr + 1e-6))


def test_running_average_and_weight_cap():
    cam = small_camera()
    m = _mapper(max_weight=3.0)
    for d in (2.0, 2.1):
        m.integrate(np.full(cam.shape, d, np.float32), None, cam, np.eye(4))
    p, t, w, _ = _voxels(m)
    tr = m.config.tsdf.truncation_m
    both = (w == 2) & (np.abs(p[:, 2] - 2.05) < 0.03) & (np.abs(p[:, 0]) < 0.3) & (np.abs(p[:, 1]) < 0.3)
    assert both.sum() > 10
    np.testing.assert_allclose(t[both] * tr, 2.05 - p[both, 2], atol=1e-5)
    for _ in range(5):
        m.integrate(np.full(cam.shape, 2.0, np.float32), None, cam, np.eye(4))
    assert m.store.view("weight").max().item() == pytest.approx(3.0)


def test_inverse_square_weights_depend_on_depth():
    cam = small_camera()
    m = _mapper(weight_mode="inverse_square")
    m.integrate(np.full(cam.shape, 2.0, np.float32), None, cam, np.eye(4))
    p, t, w, _ = _voxels(m)
    near = (w > 0) & (np.abs(p[:, 2] - 2.0) < 0.02)
    np.testing.assert_allclose(w[near], 1.0 / p[near, 2] ** 2, rtol=1e-5)


def test_sphere_surface_voxels_match_analytic_sdf():
    cam = small_camera(200, 150)
    centre, r = np.array([0.0, 0.0, 0.0]), 0.5
    m = _mapper(voxel_size_m=0.02)
    for ang in np.linspace(0, 2 * np.pi, 8, endpoint=False):
        eye = centre + 1.6 * np.array([np.cos(ang), 0.3, np.sin(ang)])
        T = look_at_T(eye, centre)
        m.integrate(sphere_depth(cam, T, centre, r), None, cam, T)
    p, t, w, _ = _voxels(m)
    tr = m.config.tsdf.truncation_m
    near = (w > 0) & (np.abs(t) * tr < 0.02)
    true_sdf = np.linalg.norm(p[near] - centre, axis=1) - r
    assert near.sum() > 2000
    # Projective distance ~ true distance near the surface (view angles up to ~70 deg).
    assert np.abs(t[near] * tr - true_sdf).mean() < 0.3 * 0.02  # nearest-pixel lookup: < 0.3 voxel
    assert np.abs(true_sdf).max() < 0.03


def test_depth_range_limits():
    cam = small_camera()
    m = _mapper(depth_max_m=1.5)
    with pytest.raises(ValueError):
        TsdfConfig(depth_min_m=2.0, depth_max_m=1.0).validate()
    m.integrate(np.full(cam.shape, 2.0, np.float32), None, cam, np.eye(4))
    assert m.num_blocks == 0


def test_block_dense_update_leaves_unobserved_voxels_bit_identical():
    # integrate_tsdf blends whole blocks with weight 0 where a voxel is not updated; those voxels must
    # keep their exact state (no rounding drift), and the observation lists exactly the updated voxels.
    from metric_semantic_slam.core.mapping.tsdf import allocate_blocks, integrate_tsdf

    cam = small_camera()
    m = _mapper()
    T1 = look_at_T([0.0, 0.0, 0.0], [0.0, 0.0, 3.0])
    m.integrate(sphere_depth(cam, T1, [0.0, 0.0, 2.0], 0.5), np.full(cam.shape + (3,), 50, np.uint8), cam, T1)
    T2 = look_at_T([0.6, 0.0, 0.2], [0.0, 0.0, 2.0])
    depth2 = torch.as_tensor(plane_depth(cam, T2, [0, 0, 2.4], [0, 0, 1.0]))
    K, T = torch.as_tensor(cam.K, dtype=torch.float32), torch.as_tensor(T2)
    cfg = m.config.tsdf
    slots = allocate_blocks(m.store, cfg, depth2, K, T)
    before = {k: m.store.view(k).clone() for k in ("tsdf", "weight", "color")}
    obs = integrate_tsdf(m.store, cfg, slots, depth2, torch.full(cam.shape + (3,), 200, dtype=torch.uint8), K, T,
                         m._offsets, select_band_m=None)
    assert obs.num_updated == obs.voxel.numel() > 500 and torch.unique(obs.voxel).numel() == obs.voxel.numel()
    changed = torch.zeros(before["weight"].shape[0], dtype=torch.bool)
    changed[obs.voxel] = True
    for k in ("tsdf", "weight", "color"):
        assert torch.equal(m.store.view(k)[~changed], before[k][~changed]), k
    assert torch.equal(m.store.view("weight")[changed], before["weight"][changed] + 1)
    # A first observation (weight 0 before) takes the observed TSDF and color as they are.
    first = before["weight"][obs.voxel] == 0
    assert first.sum() > 100
    tr = cfg.truncation_m
    np.testing.assert_allclose(m.store.view("tsdf")[obs.voxel[first]].numpy(),
                               (obs.sdf_m[first] / tr).clamp(max=1.0).numpy(), atol=1e-6)
    assert torch.all(m.store.view("color")[obs.voxel[first]] == 200.0)
    # The band selection is the subset |sdf| < band of the same update.
    tsdf_after = m.store.view("tsdf").clone()
    for k, v in before.items():
        m.store.view(k).copy_(v)
    band = integrate_tsdf(m.store, cfg, slots, depth2, None, K, T, m._offsets, select_band_m=0.08)
    near = obs.sdf_m.abs() < 0.08
    assert torch.equal(torch.sort(band.voxel).values, torch.sort(obs.voxel[near]).values)
    assert band.num_updated == obs.num_updated
    assert torch.equal(m.store.view("tsdf"), tsdf_after)
    none = integrate_tsdf(m.store, cfg, slots, depth2, None, K, T, m._offsets, select_band_m=0.0)
    assert none.voxel.numel() == 0 and none.num_updated == obs.num_updated
