"""The mapper facade: input checks, privacy, persistence, reset, eviction, instances."""
import numpy as np
import pytest
import torch

from mapping_scenes import look_at_T, plane_depth, small_camera, sphere_depth
from metric_semantic_slam.core.labels import load_label_space
from metric_semantic_slam.core.mapping import MapperConfig, SemanticConfig, SemanticVoxelMapper

LABELS = load_label_space()
PERSON = LABELS.id_of("person")
CHAIR, TABLE, WALL = LABELS.id_of("chair"), LABELS.id_of("table"), LABELS.id_of("wall")


def _scene(cam, T):
    """A wall at z = 3 with a sphere (a "chair") in front; labels and instances per pixel."""
    wall = plane_depth(cam, T, [0, 0, 3.0], [0, 0, 1.0])
    ball = sphere_depth(cam, T, [0.0, 0.0, 2.0], 0.35)
    on_ball = ball > 0
    depth = np.where(on_ball, ball, wall).astype(np.float32)
    sem = np.where(on_ball, CHAIR, WALL).astype(np.uint16)
    inst = np.where(on_ball, 7, 0).astype(np.uint16)
    color = np.zeros(cam.shape + (3,), np.uint8)
    color[on_ball] = (200, 10, 10)
    color[~on_ball] = (10, 10, 200)
    return depth, color, sem, inst


def _mapper(**kw):
    return SemanticVoxelMapper(MapperConfig(device="cpu", **kw))


def _state(m):
    n = m.num_blocks
    return (n, m.store.index.coords.clone(), {k: t[:n].clone() for k, t in m.store.layers.items()},
            [i.to_dict() for i in m.instance_tracker.instances.values()], m.frames_integrated,
            m.changed_blocks.tolist())


def _same(a, b):
    return (a[0] == b[0] and torch.equal(a[1], b[1]) and all(torch.equal(a[2][k], b[2][k]) for k in a[2])
            and a[3:] == b[3:])


BAD_INPUTS = {
    "empty depth": dict(depth=np.zeros((0, 0), np.float32)),
    "wrong-size depth": dict(depth=np.ones((10, 10), np.float32)),
    "negative depth": dict(depth_fn=lambda d: np.where(d > 2.5, -1.0, d).astype(np.float32)),
    "all-NaN depth": dict(depth_fn=lambda d: np.full_like(d, np.nan)),
    "inf depth": dict(depth_fn=lambda d: np.where(d > 2.5, np.inf, d).astype(np.float32)),
    "integer depth": dict(depth_fn=lambda d: (d * 1000).astype(np.uint16)),
    "NaN pose": dict(T_fn=lambda T: np.where(np.eye(4) > 0, np.nan, T)),
    "non-rigid pose": dict(T_fn=lambda T: T * 2.0),
    "label outside the space": dict(sem_fn=lambda s: np.where(s == WALL, 99, s).astype(np.uint16)),
    "negative label": dict(sem_fn=lambda s: np.where(s == WALL, -1, s.astype(np.int32))),  # -1 fits no uint16
    "float labels": dict(sem_fn=lambda s: s.astype(np.float32)),
    "wrong-size labels": dict(sem_fn=lambda s: s[:-1]),
    "bad color": dict(color_fn=lambda c: c[..., :2]),
    "negative instance": dict(inst_fn=lambda i: i.astype(np.int32) - 1),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_rejected_and_map_unchanged(case):
    cam = small_camera()
    T = np.eye(4)
    depth, color, sem, inst = _scene(cam, T)
    m = _mapper()
    m.integrate(depth, color, cam, T, sem, inst)
    before = _state(m)
    b = BAD_INPUTS[case]
    args = dict(depth_m=b.get("depth", b.get("depth_fn", lambda d: d)(depth)),
                color=b.get("color_fn", lambda c: c)(color), camera=cam,
                T_world_camera=b.get("T_fn", lambda t: t)(T),
                semantic=b.get("sem_fn", lambda s: s)(sem), instance=b.get("inst_fn", lambda i: i)(inst))
    with pytest.raises(ValueError):
        m.integrate(**args)
    assert _same(_state(m), before)


def test_nan_pixels_are_invalid_not_an_error():
    cam = small_camera()
    depth, color, _, _ = _scene(cam, np.eye(4))
    depth[:10] = np.nan
    stats = _mapper().integrate(depth, color, cam, np.eye(4))
    assert stats.voxels_updated > 0


def test_dynamic_and_private_classes_leave_no_trace(tmp_path):
    assert LABELS.by_id(PERSON).is_private and LABELS.by_id(PERSON).is_dynamic
    cam = small_camera()
    T = np.eye(4)
    depth, color, sem, inst = _scene(cam, T)
    sem_p = np.where(sem == CHAIR, PERSON, sem).astype(np.uint16)
    m = _mapper()
    for _ in range(3):
        m.integrate(depth, color, cam, T, sem_p, inst)
    mesh = m.extract_mesh()
    cloud = m.extract_point_cloud()
    assert len(mesh) > 0
    # No surface where the person stood (z ~ 1.65 m), no person class, no red, no instance.
    assert not np.any(mesh.vertices[:, 2] < 2.5) and not np.any(cloud.points[:, 2] < 2.5)
    assert PERSON not in mesh.classes and PERSON not in cloud.classes
    assert not np.any(mesh.colors[:, 0] > 100)
    assert m.instances() == [] and np.all(mesh.instances == 0)


def test_save_load_round_trip_is_exact(tmp_path):
    cam = small_camera()
    m = _mapper()
    for x in (0.0, 0.2):
        T = look_at_T([x, 0, 0], [0, 0, 2.0])
        depth, color, sem, inst = _scene(cam, T)
        m.integrate(depth, color, cam, T, sem, inst)
    a = m.save(tmp_path / "a.npz")
    m2 = SemanticVoxelMapper.load(a)
    b = m2.save(tmp_path / "b.npz")
    assert a.read_bytes() == b.read_bytes()
    for name, t in m.store.layers.items():
        n = m.num_blocks
        order1 = torch.argsort(m.store.index.coords[:, 0] * 10**8 + m.store.index.coords[:, 1] * 10**4
                               + m.store.index.coords[:, 2])
        order2 = torch.argsort(m2.store.index.coords[:, 0] * 10**8 + m2.store.index.coords[:, 1] * 10**4
                               + m2.store.index.coords[:, 2])
        assert torch.equal(t[:n][order1], m2.store.layers[name][:n][order2]), name
    e1, e2 = m.extract_mesh(), m2.extract_mesh()
    assert len(e1) == len(e2) and np.allclose(np.sort(e1.vertices, 0), np.sort(e2.vertices, 0))
    assert [i.to_dict() for i in m.instances()] == [i.to_dict() for i in m2.instances()]
    with pytest.raises(ValueError):
        (tmp_path / "junk.npz").write_bytes(b"")
        np.savez(tmp_path / "junk.npz", meta=np.zeros(3, np.uint8))
        SemanticVoxelMapper.load(tmp_path / "junk.npz")


def test_reset_clears_everything_and_reports_removed_blocks():
    cam = small_camera()
    depth, color, sem, inst = _scene(cam, np.eye(4))
    m = _mapper()
    m.integrate(depth, color, cam, np.eye(4), sem, inst)
    n = m.num_blocks
    m.reset()
    assert m.num_blocks == 0 and len(m.extract_mesh()) == 0 and m.instances() == []
    assert len(m.update_mesh().removed_blocks) == n
    m.integrate(depth, color, cam, np.eye(4), sem, inst)  # usable after reset
    assert m.num_blocks == n


def test_clearing_radius_bounds_the_block_count():
    cam = small_camera()
    depth = np.full(cam.shape, 1.5, np.float32)
    bounded, free = _mapper(clear_radius_m=3.0), _mapper()
    for k in range(12):
        T = np.eye(4)
        T[0, 3] = 1.0 * k  # walk sideways along a wall
        bounded.integrate(depth, None, cam, T)
        free.integrate(depth, None, cam, T)
    assert free.num_blocks > 2.5 * bounded.num_blocks
    centres = (bounded.store.index.coords.float() + 0.5) * bounded.config.tsdf.block_size_m
    assert torch.linalg.norm(centres - torch.tensor([11.0, 0, 0]), dim=1).max() <= 3.0
    up = bounded.update_mesh()
    assert len(up.removed_blocks) > 0 and np.all(up.removed_blocks[:, 0] * 0.32 < 8.5)
    capped = _mapper(max_blocks=50)
    for k in range(4):
        T = np.eye(4)
        T[0, 3] = 1.0 * k
        capped.integrate(depth, None, cam, T)
    assert capped.num_blocks == 50


def test_one_object_seen_from_several_views_is_one_instance():
    cam = small_camera()
    m = _mapper(semantics=SemanticConfig(min_margin=0.0))
    for x in np.linspace(-0.4, 0.4, 5):
        T = look_at_T([x, 0.1, 0], [0, 0, 2.0])
        depth, color, sem, inst = _scene(cam, T)
        inst = np.where(inst > 0, 3 + int(x * 10), 0).astype(np.uint16)  # frame ids change per frame
        m.integrate(depth, color, cam, T, sem, inst)
    insts = m.instances()
    assert len(insts) == 1
    i = insts[0]
    assert i.class_id == CHAIR and i.first_seen == 0 and i.last_seen == 4 and i.voxel_count > 50
    assert np.all(i.bounds_min_m > [-0.5, -0.5, 1.5]) and np.all(i.bounds_max_m < [0.5, 0.5, 2.5])
    mesh = m.extract_mesh()
    on_ball = np.linalg.norm(mesh.vertices - [0, 0, 2.0], axis=1) < 0.4
    front = on_ball & (mesh.vertices[:, 2] < 1.9)
    assert np.mean(mesh.instances[front] == i.id) > 0.98
    # The rim is seen only at grazing angles, where projective distances exceed the label band.
    assert np.mean(mesh.instances[on_ball] == i.id) > 0.85
    assert np.all(mesh.instances[mesh.vertices[:, 2] > 2.9] == 0)


def test_two_objects_make_two_instances_and_class_must_agree():
    cam = small_camera()
    T = np.eye(4)
    depth, color, sem, inst = _scene(cam, T)
    left = np.zeros(cam.shape, bool)
    left[:, : cam.width // 2] = True
    inst2 = np.where((inst > 0) & left, 1, np.where(inst > 0, 2, 0)).astype(np.uint16)
    sem2 = np.where((inst > 0) & left, TABLE, sem).astype(np.uint16)
    m = _mapper()
    for _ in range(2):
        m.integrate(depth, color, cam, T, sem2, inst2)
    classes = sorted(i.class_id for i in m.instances())
    assert classes == sorted([TABLE, CHAIR])


def test_histogram_unique_matches_torch_unique():
    from metric_semantic_slam.core.mapping.instances import _unique_small

    g = torch.Generator().manual_seed(0)
    for values in (torch.randint(0, 40, (1000,), generator=g), torch.tensor([7, 7, 0, 3]),
                   torch.tensor([5, 2**40, 5]), torch.zeros(0, dtype=torch.int64)):
        got = _unique_small(values)
        want = torch.unique(values, return_inverse=True, return_counts=True)
        for a, b in zip(got, want):
            assert torch.equal(a, b)


def test_reserved_storage_changes_nothing_but_the_capacity():
    cam = small_camera()
    depth, color, sem, inst = _scene(cam, np.eye(4))
    plain, reserved = _mapper(), _mapper(reserve_blocks=300)
    assert reserved.store.capacity == 300 and reserved.num_blocks == 0
    for m in (plain, reserved):
        m.integrate(depth, color, cam, np.eye(4), sem, inst)
    assert 0 < reserved.num_blocks < 300 and reserved.store.capacity == 300  # no growth step
    assert _same(_state(plain), _state(reserved))
    a, b = plain.extract_mesh(), reserved.extract_mesh()
    assert np.array_equal(a.vertices, b.vertices) and np.array_equal(a.triangles, b.triangles)
    reserved.reset()
    assert reserved.store.capacity == 300  # the reservation survives a reset
    with pytest.raises(ValueError, match="reserve_blocks"):
        _mapper(reserve_blocks=-1)
