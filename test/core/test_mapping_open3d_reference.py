"""Cross-check against Open3D's VoxelBlockGrid on the same frames (skipped without open3d)."""
import numpy as np
import pytest

from mapping_scenes import look_at_T, plane_depth, small_camera, sphere_depth
from metric_semantic_slam.core.geometry import invert_transform
from metric_semantic_slam.core.mapping import MapperConfig, SemanticVoxelMapper
from metric_semantic_slam.eval.mesh_metrics import point_to_mesh_distances



def test_same_surface_as_open3d_voxel_block_grid():
    o3d = pytest.importorskip("open3d")
    o3c = o3d.core
    cam = small_camera(200, 150)
    grid = o3d.t.geometry.VoxelBlockGrid(("tsdf", "weight", "color"), (o3c.float32,) * 3, ((1), (1), (3)),
                                         0.04, 8, 10000, o3c.Device("CPU:0"))
    ours = SemanticVoxelMapper(MapperConfig(device="cpu"))
    K = o3c.Tensor(cam.K, o3c.float64)
    for x in np.linspace(-0.5, 0.5, 4):
        T = look_at_T([x, 0.2, 0.0], [0.0, 0.0, 2.0])
        wall = plane_depth(cam, T, [0, 0, 3.0], [0, 0, 1.0])
        ball = sphere_depth(cam, T, [0.0, 0.0, 2.0], 0.4)
        depth = np.where(ball > 0, ball, wall).astype(np.float32)
        color = np.full(cam.shape + (3,), 128, np.uint8)
        ours.integrate(depth, color, cam, T)
        di = o3d.t.geometry.Image(o3c.Tensor(depth))
        ci = o3d.t.geometry.Image(o3c.Tensor(color.astype(np.float32) / 255.0))
        E = o3c.Tensor(invert_transform(T), o3c.float64)
        blocks = grid.compute_unique_block_coordinates(di, K, E, 1.0, 5.0, 4.0)
        grid.integrate(blocks, di, ci, K, E, 1.0, 5.0, 4.0)
    # Open3D drops cubes with a corner below weight_threshold; 0.5 matches our mesh_min_weight.
    theirs = grid.extract_triangle_mesh(weight_threshold=0.5).to_legacy()
    tv, tf = np.asarray(theirs.vertices), np.asarray(theirs.triangles)
    mesh = ours.extract_mesh()
    ov = mesh.vertices.astype(np.float64)
    assert len(ov) > 1000 and len(tv) > 1000
    # Vertex sets differ (Open3D samples voxels at i * size, we at centres), so compare each set of
    # vertices with the other mesh's surface.
    d_ot = point_to_mesh_distances(ov, tv, tf)
    d_to = point_to_mesh_distances(tv, ov, mesh.triangles)
    assert np.median(d_ot) < 0.003 and np.median(d_to) < 0.003
    assert np.mean(d_ot < 0.02) > 0.95 and np.mean(d_to < 0.02) > 0.95
