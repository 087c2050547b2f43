"""Tests of the primitive meshes, the procedural room, its relations and the walking person."""
from collections import Counter

import numpy as np
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import ConvexHull

from metric_semantic_slam.core.labels import LabelSpace, load_label_space
from metric_semantic_slam.sim.primitives import (box_mesh, cylinder_mesh, ellipsoid_mesh, face_normals,
                                                 frustum_mesh, sphere_mesh)
from metric_semantic_slam.sim.scene import build_scene, compute_relations, generate_world
from metric_semantic_slam.sim.world import SceneObject

LABELS = load_label_space()
STUFF = [LABELS.id_of(n) for n in ("floor", "wall", "ceiling", "door", "window")]


@pytest.fixture(scope="module")
def scene1():
    return build_scene(1)


@pytest.fixture(scope="module")
def world1(scene1):
    return scene1.world


# ---------------------------------------------------------------- primitives

def _closed_and_outward(mesh) -> tuple[bool, float]:
    t = mesh.triangles
    edges = np.concatenate([t[:, [0, 1]], t[:, [1, 2]], t[:, [2, 0]]])
    directed = Counter(map(tuple, edges))
    closed = max(directed.values()) == 1 and all(directed.get((b, a), 0) == 1 for a, b in directed)
    n = face_normals(mesh.vertices, t)
    volume = float(np.einsum("ij,ij->i", mesh.vertices[t[:, 0]], n).sum() / 6.0)
    return closed, volume


@pytest.mark.parametrize("make, volume", [
    (lambda: box_mesh((0.4, 0.6, 1.0), (1, 2, 3), 0.7, class_id=6, instance_id=3, material=1), 0.24),
    (lambda: cylinder_mesh(0.2, 0.5, (0, 1, 0), 0.3, segments=64, class_id=6, instance_id=3, material=1),
     np.pi * 0.04 * 0.5),
    (lambda: frustum_mesh(0.3, 0.1, 0.6, (0, 0, 1), segments=64, class_id=6, instance_id=3, material=1),
     np.pi * 0.6 / 3 * (0.09 + 0.03 + 0.01)),
    (lambda: frustum_mesh(0.3, 0.0, 0.6, segments=64, class_id=6, instance_id=3, material=1),
     np.pi * 0.09 * 0.6 / 3),
    (lambda: sphere_mesh(0.5, (2, 0, 0), n_lat=24, n_lon=48, class_id=6, instance_id=3, material=1),
     4 / 3 * np.pi * 0.125),
    (lambda: ellipsoid_mesh((0.2, 0.3, 0.4), (0, 0, 0), 1.0, n_lat=24, n_lon=48, class_id=6, instance_id=3,
                            material=1), 4 / 3 * np.pi * 0.024),
])
def test_primitives_closed_outward_and_labelled(make, volume):
    mesh = make()
    closed, vol = _closed_and_outward(mesh)
    assert closed
    # Positive signed volume means counter-clockwise winding seen from outside.
    assert vol == pytest.approx(volume, rel=0.03)
    assert np.all(mesh.face_class == 6) and np.all(mesh.face_instance == 3) and np.all(mesh.face_material == 1)
    assert mesh.face_class.dtype == np.uint16 and mesh.triangles.dtype == np.int32


def test_box_pose_and_extents():
    m = box_mesh((0.4, 0.6, 1.0), (1.0, 2.0, 3.0), np.pi / 2, class_id=1, instance_id=0, material=0)
    assert np.allclose(m.vertices.min(0), [0.7, 1.8, 2.5]) and np.allclose(m.vertices.max(0), [1.3, 2.2, 3.5])


def test_primitives_reject_bad_input():
    with pytest.raises(ValueError):
        box_mesh((0.1, -0.2, 0.3), class_id=1, instance_id=0, material=0)
    with pytest.raises(ValueError):
        box_mesh((0.1, 0.2, 0.3), class_id=1, instance_id=70000, material=0)
    with pytest.raises(ValueError):
        frustum_mesh(0.1, 0.1, 0.2, segments=2, class_id=1, instance_id=0, material=0)


# ---------------------------------------------------------------- world structure

def test_deterministic_per_seed(world1):
    again = generate_world(1)
    for name in ("vertices", "triangles", "face_class", "face_instance", "face_material"):
        assert np.array_equal(getattr(world1.static_mesh, name), getattr(again.static_mesh, name))
    assert [o.to_dict() for o in world1.objects] == [o.to_dict() for o in again.objects]
    assert world1.relations == again.relations
    assert world1.materials == again.materials
    assert np.array_equal(world1.dynamic_mesh_at(2.5).vertices, again.dynamic_mesh_at(2.5).vertices)
    other = generate_world(2)
    assert not np.array_equal(world1.room_max_m, other.room_max_m)
    assert len(world1.static_mesh.vertices) != len(other.static_mesh.vertices) or \
        not np.array_equal(world1.static_mesh.vertices, other.static_mesh.vertices)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_thing_classes_and_instances(seed):
    world = world_for(seed)
    counts = Counter(o.class_name for o in world.objects)
    assert len(counts) >= 12, counts
    assert sum(1 for c in counts.values() if c >= 2) >= 9, counts
    assert all(LABELS.by_id(o.class_id).is_thing and LABELS.by_id(o.class_id).name == o.class_name
               for o in world.objects)
    lo, hi = world.room_max_m - world.room_min_m, world.room_max_m
    assert 5.0 <= lo[0] <= 7.0 and 4.0 <= lo[1] <= 6.0 and 2.6 <= hi[2] <= 3.0


_WORLDS: dict = {}


def world_for(seed: int):
    if seed not in _WORLDS:
        _WORLDS[seed] = generate_world(seed)
    return _WORLDS[seed]


def test_instance_ids_label_faces(world1):
    mesh = world1.static_mesh
    ids = [o.instance_id for o in world1.objects]
    assert len(set(ids)) == len(ids) and min(ids) >= 1 and max(ids) <= 65535
    by_id = {o.instance_id: o for o in world1.objects}
    present = set(np.unique(mesh.face_instance)) - {0}
    assert present == set(ids)
    for iid, obj in by_id.items():
        assert np.all(mesh.face_class[mesh.face_instance == iid] == obj.class_id)
    stuff = np.isin(mesh.face_class, STUFF)
    assert np.all(mesh.face_instance[stuff] == 0)
    assert np.all(mesh.face_instance[~stuff] > 0)
    for name in ("floor", "wall", "ceiling", "door", "window"):
        assert np.any(mesh.face_class == LABELS.id_of(name)), name
    assert mesh.face_material.min() >= 0 and mesh.face_material.max() < len(world1.materials)


def _local(obj: SceneObject, pts: np.ndarray) -> np.ndarray:
    return (pts - obj.center_m) @ obj.R_world_object()


def test_boxes_tightly_bound_meshes(world1):
    mesh = world1.static_mesh
    for obj in world1.objects:
        verts = mesh.vertices[np.unique(mesh.triangles[mesh.face_instance == obj.instance_id])]
        loc = _local(obj, verts)
        assert np.allclose(loc.min(0), -obj.extents_m / 2, atol=1e-9), obj.class_name
        assert np.allclose(loc.max(0), obj.extents_m / 2, atol=1e-9), obj.class_name


def test_fronts(world1):
    for obj in world1.objects:
        has = obj.class_name in ("tv", "monitor", "sofa", "chair", "bed", "cabinet", "shelf")
        assert (obj.front_local is not None) == has, obj.class_name
        if has:
            assert np.linalg.norm(obj.front_local) == pytest.approx(1.0)
    # tv and monitor screens face away from the wall behind them, into the room.
    centre = 0.5 * (world1.room_min_m + world1.room_max_m)
    for obj in world1.objects:
        if obj.class_name in ("tv", "monitor", "sofa", "shelf"):
            f = obj.R_world_object() @ obj.front_local
            assert np.dot(f[:2], centre[:2] - obj.center_m[:2]) > 0, obj.class_name


def test_supported_objects_touch_their_support(world1):
    mesh = world1.static_mesh
    by_id = {o.instance_id: o for o in world1.objects}
    n_supported = 0
    for obj in world1.objects:
        if obj.support_id is None:
            continue
        n_supported += 1
        sup = by_id[obj.support_id]
        bottom = obj.center_m[2] - obj.extents_m[2] / 2
        tris = mesh.triangles[mesh.face_instance == sup.instance_id]
        v = mesh.vertices[tris]
        normals = face_normals(mesh.vertices, tris)
        flat_up = (np.abs(v[:, :, 2] - bottom).max(1) < 1e-9) & (normals[:, 2] > 0)
        assert flat_up.any(), f"{obj.class_name} {obj.instance_id} floats above {sup.class_name}"
        # The object's centre lies over one of those upward faces.
        p = obj.center_m[:2]
        inside = []

        def cross2(u, w):
            return u[0] * w[1] - u[1] * w[0]

        for tri in v[flat_up][:, :, :2]:
            a, b, c = tri
            d1 = cross2(b - a, p - a)
            d2 = cross2(c - b, p - b)
            d3 = cross2(a - c, p - c)
            inside.append(min(d1, d2, d3) >= -1e-12)
        assert any(inside), f"{obj.class_name} {obj.instance_id} is not over {sup.class_name}"
    assert n_supported >= 15
    floor_ids = [o for o in world1.objects if o.support_id is None]
    assert all(abs(o.center_m[2] - o.extents_m[2] / 2) < 1e-9 for o in floor_ids)


def _parts(world):
    """Convex parts of every object: connected components of its faces (each primitive is one)."""
    mesh = world.static_mesh
    parts = []
    for obj in world.objects:
        tris = mesh.triangles[mesh.face_instance == obj.instance_id]
        vids, inv = np.unique(tris, return_inverse=True)
        inv = inv.reshape(-1, 3)
        rows = np.concatenate([inv[:, 0], inv[:, 1]])
        cols = np.concatenate([inv[:, 1], inv[:, 2]])
        g = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(vids), len(vids)))
        n, lab = connected_components(g, directed=False)
        for k in range(n):
            v = mesh.vertices[vids[lab == k]]
            hull = v[:, :2][ConvexHull(v[:, :2]).vertices]
            parts.append((obj.instance_id, hull, v[:, 2].min(), v[:, 2].max()))
    return parts


def _penetration(pa: np.ndarray, pb: np.ndarray) -> float:
    best = np.inf
    for poly in (pa, pb):
        e = np.roll(poly, -1, axis=0) - poly
        n = np.stack([e[:, 1], -e[:, 0]], 1)
        n /= np.linalg.norm(n, axis=1, keepdims=True)
        a, b = pa @ n.T, pb @ n.T
        best = min(best, float((np.minimum(a.max(0), b.max(0)) - np.maximum(a.min(0), b.min(0))).min()))
    return best


@pytest.mark.parametrize("seed", [1, 3])
def test_no_interpenetration_between_objects(seed):
    parts = _parts(world_for(seed))
    margin = 1e-3
    lo = np.array([np.r_[h.min(0), z0] for _, h, z0, _ in parts])
    hi = np.array([np.r_[h.max(0), z1] for _, h, _, z1 in parts])
    ids = np.array([p[0] for p in parts])
    for i in range(len(parts)):
        cand = np.flatnonzero(np.all(np.minimum(hi[i], hi) - np.maximum(lo[i], lo) > margin, axis=1) & (ids != ids[i]))
        for j in cand[cand > i]:
            assert _penetration(parts[i][1], parts[j][1]) <= margin, (ids[i], ids[j])


@pytest.mark.parametrize("seed", [1, 3])
def test_everything_inside_the_room(seed):
    world = world_for(seed)
    v = world.static_mesh.vertices
    assert np.all(v >= world.room_min_m - 1e-9) and np.all(v <= world.room_max_m + 1e-9)
    for obj in world.objects:
        corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]) * obj.extents_m / 2
        w = corners @ obj.R_world_object().T + obj.center_m
        assert np.all(w >= world.room_min_m - 1e-9) and np.all(w <= world.room_max_m + 1e-9), obj.class_name


def test_room_shell_faces_inward_and_openings_on_walls(world1):
    mesh = world1.static_mesh
    centre = 0.5 * (world1.room_min_m + world1.room_max_m)
    shell = np.isin(mesh.face_class, [LABELS.id_of(n) for n in ("floor", "wall", "ceiling")])
    tris = mesh.triangles[shell]
    n = face_normals(mesh.vertices, tris)
    to_centre = centre - mesh.vertices[tris].mean(1)
    assert np.all(np.einsum("ij,ij->i", n, to_centre) > 0)
    for name, max_proud in (("door", 0.09), ("window", 0.04)):
        v = mesh.vertices[mesh.triangles[mesh.face_class == LABELS.id_of(name)].ravel()]
        d_wall = np.minimum(v[:, :2] - world1.room_min_m[:2], world1.room_max_m[:2] - v[:, :2]).min(1)
        assert d_wall.max() <= max_proud + 1e-9, name
    door_v = mesh.vertices[mesh.triangles[mesh.face_class == LABELS.id_of("door")].ravel()]
    assert door_v[:, 2].min() == pytest.approx(0.0) and door_v[:, 2].max() > 1.9


def test_materials_are_varied_and_some_are_dark(world1):
    mats = world1.materials
    textures = {m.texture for m in mats}
    assert textures <= {"plain", "wood", "checker", "noise", "stripes", "fabric"}
    assert len(textures - {"plain"}) >= 5
    assert all(0.02 <= m.texture_scale_m <= 0.4 for m in mats)
    assert all(0.0 <= m.ir_albedo <= 1.0 and all(0 <= c <= 1 for c in m.base_rgb) for m in mats)
    mesh = world1.static_mesh
    for name in ("tv", "monitor"):
        used = np.unique(mesh.face_material[mesh.face_class == LABELS.id_of(name)])
        assert min(mats[k].ir_albedo for k in used) < 0.2, name
    wall_mats = {mats[k].texture for k in np.unique(mesh.face_material[mesh.face_class == LABELS.id_of("wall")])}
    assert wall_mats <= {"noise", "stripes"}


def test_lights_on_the_ceiling(world1):
    L = world1.light_positions_m
    assert L.shape[1] == 3 and 1 <= len(L) <= 3
    assert np.all(L[:, :2] > world1.room_min_m[:2]) and np.all(L[:, :2] < world1.room_max_m[:2])
    assert np.all(world1.room_max_m[2] - L[:, 2] < 0.2) and np.all(L[:, 2] < world1.room_max_m[2])


def test_missing_class_in_label_space_raises():
    d = LABELS.to_dict()
    d["labels"] = [e for e in d["labels"] if e["name"] != "cup"]
    with pytest.raises(ValueError, match="cup"):
        generate_world(0, label_space=LabelSpace.from_dict(d))


# ---------------------------------------------------------------- relations

def test_relations_of_seed_1(world1):
    rels = world1.relations
    preds = Counter(r.predicate for r in rels)
    assert len(rels) >= 20
    for p in ("on", "near", "in_front_of"):
        assert preds[p] >= 1, preds
    ids = {o.instance_id for o in world1.objects}
    assert all(r.subject_id in ids and r.object_id in ids and r.subject_id != r.object_id for r in rels)
    # Geometric "on" agrees with the placement's support links, both ways.
    on = {(r.subject_id, r.object_id) for r in rels if r.predicate == "on"}
    supported = {(o.instance_id, o.support_id) for o in world1.objects if o.support_id is not None}
    assert on == supported
    near = [(r.subject_id, r.object_id) for r in rels if r.predicate == "near"]
    assert len({frozenset(p) for p in near}) == len(near)
    assert all(a < b for a, b in near)
    assert rels == compute_relations(world1.objects)


def test_boxes_under_tables_are_under(scene1):
    world = scene1.world
    by_id = {o.instance_id: o for o in world.objects}
    under = {(r.subject_id, r.object_id) for r in world.relations if r.predicate == "under"}
    for s, o in under:
        assert by_id[o].center_m[2] + by_id[o].extents_m[2] / 2 > by_id[s].center_m[2] + by_id[s].extents_m[2] / 2
    n_desk_boxes = sum(1 for w in (world_for(s) for s in (0, 1, 2, 3)) for r in w.relations if r.predicate == "under")
    assert n_desk_boxes >= 1


def _obj(iid, name, center, extents, yaw=0.0, front=None, support=None):
    return SceneObject(iid, LABELS.id_of(name), name, np.asarray(center, float), yaw, np.asarray(extents, float),
                       None if front is None else np.asarray(front, float), support)


def test_compute_relations_on_a_hand_made_scene():
    table = _obj(1, "table", (0, 0, 0.375), (1.0, 0.6, 0.75))
    cup = _obj(2, "cup", (0.2, 0.1, 0.8), (0.08, 0.08, 0.1), support=1)
    box = _obj(3, "box", (0, 0, 0.15), (0.3, 0.3, 0.3))
    tv = _obj(4, "tv", (-2.5, 0, 0.4), (0.1, 1.0, 0.8), front=(1, 0, 0))  # faces +x, towards the table
    chair = _obj(5, "chair", (0.8, 0.0, 0.45), (0.45, 0.45, 0.9), yaw=np.pi, front=(1, 0, 0))  # faces -x
    far = _obj(6, "plant", (4.0, 3.0, 0.3), (0.3, 0.3, 0.6))
    person = SceneObject(7, LABELS.id_of("person"), "person", np.array([0.8, 0.8, 0.85]), 0.0,
                         np.array([0.3, 0.5, 1.7]), is_dynamic=True)
    rels = {(r.subject_id, r.predicate, r.object_id) for r in
            compute_relations([table, cup, box, tv, chair, far, person])}
    assert (2, "on", 1) in rels
    assert (3, "under", 1) in rels
    assert (1, "near", 5) in rels and (1, "near", 3) not in rels  # the box is under, not near
    assert (1, "in_front_of", 4) in rels  # table within 3 m in front of the tv
    assert (1, "in_front_of", 5) in rels  # the chair faces the table
    assert (5, "in_front_of", 4) not in rels  # 3.3 m away: out of range
    assert (4, "behind", 5) not in rels
    assert not any(6 in (s, o) for s, _, o in rels)  # far away and not in front of anything
    assert not any(7 in (s, o) for s, _, o in rels)  # dynamic objects are skipped
    assert not any(p == "on" and s != 2 for s, p, o in rels)


def test_behind_relation():
    shelf = _obj(1, "shelf", (0, 0, 0.9), (0.35, 0.9, 1.8), yaw=np.pi / 2, front=(1, 0, 0))  # faces +y
    box_front = _obj(2, "box", (0.2, 1.5, 0.2), (0.4, 0.4, 0.4))
    box_back = _obj(3, "box", (0.0, -1.2, 0.2), (0.4, 0.4, 0.4))
    box_side = _obj(4, "box", (2.0, 0.1, 0.2), (0.4, 0.4, 0.4))
    rels = {(r.subject_id, r.predicate, r.object_id) for r in
            compute_relations([shelf, box_front, box_back, box_side])}
    assert (2, "in_front_of", 1) in rels and (3, "behind", 1) in rels
    assert not any(s == 4 and o == 1 for s, p, o in rels if p in ("in_front_of", "behind"))


# ---------------------------------------------------------------- person

def test_person_walks_inside_the_room_without_hitting_furniture(scene1):
    world = scene1.world
    pid = max(o.instance_id for o in world.objects) + 1
    parts = _parts(world)
    times = np.arange(0.0, 12.0, 0.25)
    centres, lengths = [], []
    for t in times:
        mesh = world.dynamic_mesh_at(t)
        (obj,) = world.dynamic_objects_at(t)
        assert obj.is_dynamic and obj.class_name == "person" and obj.instance_id == pid
        assert np.all(mesh.face_instance == pid) and np.all(mesh.face_class == LABELS.id_of("person"))
        v = mesh.vertices
        assert np.all(v >= world.room_min_m) and np.all(v <= world.room_max_m)
        assert 1.6 <= v[:, 2].max() <= 1.8 and v[:, 2].min() >= 0.0
        loc = _local(obj, v)
        assert np.allclose(loc.min(0), -obj.extents_m / 2) and np.allclose(loc.max(0), obj.extents_m / 2)
        hull = v[:, :2][ConvexHull(v[:, :2]).vertices]
        for _, ph, z0, z1 in parts:
            if z0 < v[:, 2].max() and z1 > 0.0:
                assert _penetration(hull, ph) <= 0.0
        centres.append(obj.center_m[:2])
        lengths.append(obj.extents_m[0])
    centres = np.array(centres)
    steps = np.linalg.norm(np.diff(centres, axis=0), axis=1) / 0.25
    assert np.ptp(centres[:, 0]) > 1.5  # walks the length of its segment
    assert 0.7 <= np.median(steps) <= 1.3  # at about 1 m/s
    assert np.ptp(lengths) > 0.3  # legs and arms swing


def test_world_without_person():
    world = generate_world(1, with_person=False)
    assert world.dynamic_mesh_at(1.0) is None and world.dynamic_objects_at(1.0) == []
    with_p = world_for(1)
    assert [o.to_dict() for o in world.objects] == [o.to_dict() for o in with_p.objects]
