"""The GPU formulations (few host syncs, fixed-size tables) give the same map as the CPU ones.

On CUDA the mapper allocates blocks with one host sync and associates instances through dense
per-id tables; here, on the CPU, both are forced on and compared with the default (compacting) path.
"""
import numpy as np
import pytest
import torch

from mapping_scenes import look_at_T, plane_depth, small_camera, sphere_depth
from metric_semantic_slam.core.labels import load_label_space
from metric_semantic_slam.core.mapping import MapperConfig, SemanticVoxelMapper, TsdfConfig
from metric_semantic_slam.core.mapping.tsdf import allocate_blocks
from metric_semantic_slam.core.mapping.voxel_blocks import BlockStore, to_numpy

LABELS = load_label_space()
CHAIR, TABLE, WALL = LABELS.id_of("chair"), LABELS.id_of("table"), LABELS.id_of("wall")


def _frame(cam, T, split: bool):
    """A wall, a "chair" sphere (one segment, or two halves with their own ids) and a "table" sphere."""
    wall = plane_depth(cam, T, [0, 0, 3.2], [0, 0, 1.0])
    chair = sphere_depth(cam, T, [-0.3, 0.0, 2.0], 0.35)
    table = sphere_depth(cam, T, [0.6, 0.1, 2.4], 0.3)
    depth = wall.copy()
    sem = np.full(cam.shape, WALL, np.uint16)
    inst = np.zeros(cam.shape, np.uint16)
    for d, cls, ids in ((table, TABLE, (40, 40)), (chair, CHAIR, (3, 5) if split else (12, 12))):
        on = (d > 0) & ((d < depth) | (depth <= 0))
        depth[on] = d[on]
        sem[on] = cls
        cols = np.broadcast_to(np.arange(cam.shape[1])[None, :], cam.shape)
        left = cols < np.median(cols[on])  # the object's own halves
        inst[on] = np.where(left, ids[0], ids[1])[on]
    depth[:6, :] = 0.0  # a hole: invalid samples in the allocation
    rng = np.random.default_rng(int(1000 * T[0, 3]) % 97)
    color = rng.integers(0, 255, cam.shape + (3,), dtype=np.uint8)
    return depth.astype(np.float32), color, sem, inst


def _views():
    eyes = [[0.0, 0.0, 0.0], [0.3, -0.1, 0.1], [-0.4, 0.1, 0.0], [0.2, 0.2, 0.4], [0.0, 0.0, 0.2]]
    return [look_at_T(e, [0.1, 0.0, 2.2]) for e in eyes]


def _state(m):
    n = m.num_blocks
    return (m.store.index.coords.clone(), {k: t[:n].clone() for k, t in m.store.layers.items()},
            [i.to_dict() for i in m.instances()], m.instance_tracker.next_id)


def test_sync_free_mapper_equals_the_default_path():
    cam = small_camera()
    ref = SemanticVoxelMapper(MapperConfig(device="cpu"))
    gpu_like = SemanticVoxelMapper(MapperConfig(device="cpu"))
    gpu_like._sync_free = True
    for i, T in enumerate(_views()):
        depth, color, sem, inst = _frame(cam, T, split=i < 2)  # halves first, then one segment: a merge
        a = ref.integrate(depth, color, cam, T, semantic=sem, instance=inst)
        b = gpu_like.integrate(depth, color, cam, T, semantic=sem, instance=inst)
        assert (a.blocks_visited, a.blocks_allocated, a.voxels_updated) == (
            b.blocks_visited, b.blocks_allocated, b.voxels_updated)
        ma, mb = ref.update_mesh().mesh, gpu_like.update_mesh().mesh  # the GPU path re-meshes differently
        assert len(ma) > 0
        for k in ("vertices", "triangles", "colors", "classes", "instances", "triangle_block", "block_coords"):
            assert np.array_equal(getattr(ma, k), getattr(mb, k)), k
    sa, sb = _state(ref), _state(gpu_like)
    assert torch.equal(sa[0], sb[0])
    for k in sa[1]:
        assert torch.equal(sa[1][k], sb[1][k]), k
    assert sa[2:] == sb[2:]
    inst = sa[2]
    assert len(inst) >= 2 and any(d["merged_ids"] for d in inst)  # the scene exercised a merge


def test_sync_free_allocation_returns_the_same_slots():
    cam = small_camera()
    stores = [BlockStore(8), BlockStore(8)]
    cfg = TsdfConfig()
    for T in _views()[:3] + _views()[:1]:  # the last frame allocates nothing new
        depth = torch.as_tensor(_frame(cam, T, split=False)[0])
        s0 = allocate_blocks(stores[0], cfg, depth, cam.K, T, sync_free=False)
        s1 = allocate_blocks(stores[1], cfg, depth, cam.K, T, sync_free=True)
        assert torch.equal(s0, s1) and s0.numel() > 0
        assert torch.equal(stores[0].index.coords, stores[1].index.coords)
        assert torch.equal(stores[0].index.lookup(stores[0].index.coords), torch.arange(len(stores[0])))


def test_packed_device_to_host_copy_round_trips_dtypes_and_shapes():
    g = torch.Generator().manual_seed(0)
    ts = [torch.randn(5, 3, generator=g), torch.arange(7, dtype=torch.int64).view(7, 1),
          torch.randint(0, 255, (4, 3), generator=g).to(torch.uint8), torch.zeros(0, 3),
          torch.tensor([1, -2], dtype=torch.int16)]
    out = to_numpy(ts, pack=True)
    for t, a in zip(ts, out):
        assert a.dtype == t.numpy().dtype and a.shape == tuple(t.shape) and np.array_equal(a, t.numpy())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_mapper_matches_the_cpu_map():
    cam = small_camera()
    maps = {d: SemanticVoxelMapper(MapperConfig(device=d)) for d in ("cpu", "cuda")}
    meshes = {d: [] for d in maps}
    for i, T in enumerate(_views()):
        depth, color, sem, inst = _frame(cam, T, split=i < 2)
        for d, m in maps.items():
            m.integrate(depth, color, cam, T, semantic=sem, instance=inst)
            meshes[d].append(m.update_mesh().mesh)
    a, b = _state(maps["cpu"]), _state(maps["cuda"])
    assert torch.equal(a[0], b[0].cpu())
    # Float rounding may differ on the GPU (fused multiply-adds): a voxel on a pixel border can see its
    # neighbour pixel. Nearly every voxel must agree exactly, the rest closely.
    for k in ("tsdf", "weight", "inst_id"):
        same = (a[1][k] == b[1][k].cpu()).float().mean()
        assert same > 0.999, (k, float(same))
    assert [d["id"] for d in a[2]] == [d["id"] for d in b[2]]
    assert [d["class_votes"] for d in a[2]] == [d["class_votes"] for d in b[2]]
    for ma, mb in zip(meshes["cpu"], meshes["cuda"]):
        assert abs(len(ma) - len(mb)) <= 0.01 * len(ma) + 2
