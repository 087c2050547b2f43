"""Marching cubes: generated case table, analytic sphere, semantic vertex attributes, changed blocks."""
import numpy as np
import pytest
import torch

from mapping_scenes import small_camera
from metric_semantic_slam.core.mapping import MapperConfig, SemanticVoxelMapper, TsdfConfig, marching_cubes_tables
from metric_semantic_slam.core.mapping.meshing import EDGE_CORNERS



def _fill_sphere(m, centre, r, half=0.8):
    vs = m.config.tsdf.voxel_size_m
    bs = m.config.tsdf.block_size_m
    lo = np.floor((np.asarray(centre) - half) / bs).astype(int)
    hi = np.floor((np.asarray(centre) + half) / bs).astype(int)
    g = np.stack(np.meshgrid(*[np.arange(a, b + 1) for a, b in zip(lo, hi)], indexing="ij"), -1).reshape(-1, 3)
    m.store.insert(torch.as_tensor(g))
    n = m.num_blocks * m.store.voxels_per_block
    p = m.voxel_centres(torch.arange(n)).double().numpy()
    sdf = np.linalg.norm(p - centre, axis=1) - r
    tr = m.config.tsdf.truncation_m
    m.store.view("tsdf")[:n] = torch.as_tensor(np.clip(sdf / tr, -1, 1), dtype=torch.float32)
    m.store.view("weight")[:n] = 1.0
    m._changed = torch.ones(m.num_blocks, dtype=torch.bool)
    return p


def _edges(tris):
    e = np.sort(np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]]), axis=1)
    _, counts = np.unique(e, axis=0, return_counts=True)
    return len(_), counts


def test_case_table_properties():
    tri_edges, tri_count = marching_cubes_tables()
    assert tri_count[0] == 0 and tri_count[255] == 0
    assert tri_count.max() <= 5 and tri_count[1] == 1 and tri_count[3] == 2
    for case in range(256):
        inside = [(case >> i) & 1 for i in range(8)]
        crossing = {e for e, (a, b) in enumerate(EDGE_CORNERS) if inside[a] != inside[b]}
        used = set(tri_edges[case, :tri_count[case]].ravel().tolist())
        assert used == crossing, case  # every crossing edge gets a vertex, no other edge does
        # complementary cases cut the same edges
        assert tri_count[case] > 0 or case in (0, 255)


def test_sphere_mesh_is_watertight_outward_and_on_surface():
    m = SemanticVoxelMapper(MapperConfig(tsdf=TsdfConfig(voxel_size_m=0.04), device="cpu"))
    centre, r = np.array([0.13, -0.07, 0.21]), 0.5
    _fill_sphere(m, centre, r)
    mesh = m.extract_mesh()
    v, f = mesh.vertices.astype(np.float64), mesh.triangles
    assert len(f) > 1000
    d = np.linalg.norm(v - centre, axis=1) - r
    assert np.abs(d).max() < 0.1 * 0.04  # linear interpolation of an exact SDF
    n_edges, counts = _edges(f)
    assert np.all(counts == 2)  # closed 2-manifold: every edge in exactly two triangles
    assert len(v) - n_edges + len(f) == 2  # Euler characteristic of a sphere
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    vol = np.einsum("ij,ij->i", a - centre, np.cross(b - centre, c - centre)).sum() / 6.0
    assert vol == pytest.approx(4 / 3 * np.pi * r**3, rel=0.02)  # positive: normals point outwards


def test_vertex_class_and_instance_come_from_voxels():
    m = SemanticVoxelMapper(MapperConfig(device="cpu"))
    centre = np.zeros(3)
    p = _fill_sphere(m, centre, 0.4, half=0.6)
    n = len(p)
    right = torch.as_tensor(p[:, 0] > 0)
    scores = m.store.view("sem_scores")[:n]
    scores[right, 6] = 20.0  # well above the reporting margin
    scores[~right, 7] = 20.0
    m.store.view("inst_id")[:n][right] = 3
    mesh = m.extract_mesh()
    x = mesh.vertices[:, 0]
    clear = np.abs(x) > 0.05
    assert np.all(mesh.classes[clear & (x > 0)] == 6) and np.all(mesh.classes[clear & (x < 0)] == 7)
    assert np.all(mesh.instances[clear & (x > 0)] == 3) and np.all(mesh.instances[clear & (x < 0)] == 0)


def test_update_mesh_covers_only_changed_blocks():
    cam = small_camera()
    m = SemanticVoxelMapper(MapperConfig(device="cpu"))
    T_a = np.eye(4)
    m.integrate(np.full(cam.shape, 2.0, np.float32), None, cam, T_a)
    up1 = m.update_mesh()
    assert len(up1.mesh) > 0 and len(m.changed_blocks) == 0
    assert len(m.update_mesh().mesh.block_coords) == 0  # nothing changed since
    T_b = np.eye(4)
    T_b[0, 3] = 6.0  # far to the side: a disjoint part of the map
    m.integrate(np.full(cam.shape, 2.0, np.float32), None, cam, T_b)
    changed = m.changed_blocks
    up2 = m.update_mesh()
    assert np.all(changed[:, 0] >= 10)  # blocks near x = 6 m (0.32 m blocks)
    assert set(map(tuple, changed)) <= set(map(tuple, up2.mesh.block_coords))
    assert np.all(up2.mesh.vertices[:, 0] > 3.0)
    full = m.extract_mesh()
    assert len(full) == pytest.approx(len(up1.mesh) + len(up2.mesh), rel=0.01)


def test_ply_export_has_class_and_instance(tmp_path):
    from metric_semantic_slam.io.ply import read_ply

    m = SemanticVoxelMapper(MapperConfig(device="cpu"))
    _fill_sphere(m, np.zeros(3), 0.3, half=0.5)
    path = m.write_mesh_ply(tmp_path / "mesh.ply")
    ply = read_ply(path)
    mesh = m.extract_mesh()
    assert ply.faces.shape == mesh.triangles.shape
    assert ply.vertex_props["class"].dtype == np.uint16 and "instance" in ply.vertex_props
    np.testing.assert_array_equal(ply.vertex_colors, mesh.colors)
    o3d = pytest.importorskip("open3d")
    om = o3d.io.read_triangle_mesh(str(path))
    assert len(om.triangles) == len(mesh.triangles)


def test_cube_cases_and_validity_match_a_per_cube_reference():
    """Random signs and unobserved voxels: triangles only in cubes whose 8 corners are all observed, as
    many as the case table says for the case of the corner signs (checked cube by cube in numpy)."""
    from metric_semantic_slam.core.mapping.meshing import CORNER_OFFSETS

    rng = np.random.default_rng(3)
    m = SemanticVoxelMapper(MapperConfig(tsdf=TsdfConfig(voxel_size_m=0.05), device="cpu"))
    R = m.store.R
    dims = np.array([3, 2, 2])                      # blocks along x, y, z
    g = np.stack(np.meshgrid(*[np.arange(d) for d in dims], indexing="ij"), -1).reshape(-1, 3)
    m.store.insert(torch.as_tensor(g))
    n = m.num_blocks * m.store.voxels_per_block
    tsdf = rng.uniform(-1.0, 1.0, n).astype(np.float32)
    weight = np.where(rng.random(n) < 0.15, 0.0, 1.0).astype(np.float32)  # 15 % unobserved
    m.store.view("tsdf")[:n] = torch.as_tensor(tsdf)
    m.store.view("weight")[:n] = torch.as_tensor(weight)
    m._changed = torch.ones(m.num_blocks, dtype=torch.bool)
    mesh = m.extract_mesh()

    # the same voxels on one dense grid, indexed [x, y, z]
    centres = m.voxel_centres(torch.arange(n)).double().numpy()
    ijk = np.floor(centres / 0.05).astype(int)
    shape = dims * R
    F = np.zeros(shape, np.float32)
    W = np.zeros(shape, np.float32)
    F[ijk[:, 0], ijk[:, 1], ijk[:, 2]] = tsdf
    W[ijk[:, 0], ijk[:, 1], ijk[:, 2]] = weight
    _, tri_count = marching_cubes_tables()
    expected = 0
    for x in range(shape[0] - 1):
        for y in range(shape[1] - 1):
            for z in range(shape[2] - 1):
                c = [(x + ox, y + oy, z + oz) for ox, oy, oz in CORNER_OFFSETS.tolist()]
                if all(W[p] > 0 for p in c):
                    expected += int(tri_count[sum(int(F[p] < 0) << i for i, p in enumerate(c))])
    assert 1000 < expected == len(mesh.triangles)
