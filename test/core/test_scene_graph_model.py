"""Scene-graph builder on synthetic boxes: boxes, relations, structure, JSON schema, incremental
updates (stable ids, merges, deletions, late joiners), gravity handling, plotting, bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest

from metric_semantic_slam.core.labels import load_label_space
from metric_semantic_slam.core.mapping.instances import MapInstance
from metric_semantic_slam.core.scene_graph import (SceneGraph, SceneGraphBuilder, SceneGraphConfig,
                                                   validate_scene_graph_dict)
from metric_semantic_slam.core.scene_graph.boxes import box_iou_3d, fit_boxes, rect_gaps, rect_overlap_area

LABELS = load_label_space()
VOX = 0.04


def box_surface(centre, ext, yaw, step=VOX / 2, top_only_above=None):
    """Points on the surface of a box (all six faces). Shape: -> (N, 3)."""
    ext = np.asarray(ext, float)
    axes = []
    for a in range(3):
        n = max(2, int(np.ceil(ext[a] / step)) + 1)
        axes.append(np.linspace(-ext[a] / 2, ext[a] / 2, n))
    g = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    on_face = np.any(np.isclose(np.abs(g), ext / 2), axis=1)
    u = g[on_face]
    c, s = np.cos(yaw), np.sin(yaw)
    return np.column_stack([c * u[:, 0] - s * u[:, 1], s * u[:, 0] + c * u[:, 1], u[:, 2]]) + np.asarray(centre)


class Scene:
    """A room with floor, four walls and objects given as (id, class, centre, extents, yaw) boxes."""

    def __init__(self, size=(5.0, 4.0, 2.5)):
        self.size = size
        self.objects = {}
        self.extra = {}  # id -> extra points of the instance (e.g. a back rest)

    def add(self, oid, cls, centre, ext, yaw=0.0):
        self.objects[oid] = (cls, np.asarray(centre, float), np.asarray(ext, float), yaw)

    def cloud(self, rng=None):
        L, W, H = self.size
        pts, cls, ins = [], [], []
        gx, gy = np.meshgrid(np.arange(0, L, VOX), np.arange(0, W, VOX), indexing="ij")
        floor = np.column_stack([gx.ravel(), gy.ravel(), np.zeros(gx.size)])
        hz = np.arange(0, H, VOX)
        walls = []
        for x in (0.0, L):
            yy, zz = np.meshgrid(np.arange(0, W, VOX), hz, indexing="ij")
            walls.append(np.column_stack([np.full(yy.size, x), yy.ravel(), zz.ravel()]))
        for y in (0.0, W):
            xx, zz = np.meshgrid(np.arange(0, L, VOX), hz, indexing="ij")
            walls.append(np.column_stack([xx.ravel(), np.full(xx.size, y), zz.ravel()]))
        walls = np.concatenate(walls)
        pts += [floor, walls]
        cls += [np.full(len(floor), LABELS.id_of("floor")), np.full(len(walls), LABELS.id_of("wall"))]
        ins += [np.zeros(len(floor), int), np.zeros(len(walls), int)]
        table = []
        for oid, (c, centre, ext, yaw) in self.objects.items():
            p = box_surface(centre, ext, yaw)
            if oid in self.extra:
                p = np.concatenate([p, self.extra[oid]])
            pts.append(p)
            cid = LABELS.id_of(c)
            cls.append(np.full(len(p), cid))
            ins.append(np.full(len(p), oid))
            votes = np.zeros(LABELS.max_id + 1, np.int64)
            votes[cid] = 9
            votes[0] = 1
            table.append(MapInstance(oid, votes, 3, 40, p.min(0), p.max(0), len(p)))
        return np.concatenate(pts).astype(np.float32), np.concatenate(cls), np.concatenate(ins), table


def desk_scene() -> Scene:
    s = Scene()
    s.add(1, "table", (0.4, 2.0, 0.375), (0.7, 1.2, 0.75))          # desk against the west wall (x = 0)
    s.add(2, "monitor", (0.15, 2.0, 0.95), (0.1, 0.5, 0.4))          # on the desk, screen facing +x
    s.add(3, "cup", (0.5, 2.4, 0.80), (0.08, 0.08, 0.1))             # on the desk
    s.add(4, "box", (0.4, 1.7, 0.15), (0.3, 0.3, 0.3))               # under the desk
    s.add(5, "chair", (1.05, 2.0, 0.45), (0.45, 0.45, 0.9), np.pi)   # in front of the desk, facing -x
    # The chair's back rest: the tall part on the side away from the desk (+x).
    bz = np.linspace(0.5, 0.9, 11)
    by = np.linspace(1.8, 2.2, 11)
    yy, zz = np.meshgrid(by, bz)
    s.extra[5] = np.column_stack([np.full(yy.size, 1.25), yy.ravel(), zz.ravel()])
    s.objects[5] = ("chair", np.array([1.05, 2.0, 0.25]), np.array([0.45, 0.45, 0.5]), np.pi)  # seat block
    s.add(6, "tv", (4.9, 2.0, 0.8), (0.12, 1.0, 0.6))                 # against the east wall, facing -x
    s.add(7, "sofa", (3.4, 2.0, 0.4), (0.9, 1.8, 0.8))                # in front of the tv
    s.add(8, "plant", (2.5, 0.3, 0.4), (0.4, 0.4, 0.8))
    s.add(9, "shelf", (2.5, 3.75, 0.9), (1.0, 0.4, 1.8))               # against the north wall
    s.add(10, "book", (2.4, 3.75, 1.05), (0.2, 0.15, 0.25))            # on a board inside the shelf
    return s


def build(scene: Scene, config=SceneGraphConfig(), **kw):
    b = SceneGraphBuilder(LABELS, config)
    pts, cls, ins, table = scene.cloud()
    u = b.update(pts, cls, ins, table, stamp_s=1.0, **kw)
    return b, u


def rel_set(graph, pred):
    return {(r.subject_id, r.object_id) for r in graph.relations if r.predicate == pred}


def test_fit_boxes_recovers_rotated_box():
    rng = np.random.default_rng(3)
    groups = []
    truth = []
    for k in range(5):
        ext = rng.uniform(0.2, 1.5, 3)
        ext[:2] = np.sort(ext[:2])[::-1]
        yaw = rng.uniform(-1.5, 1.5)
        c = rng.uniform(-3, 3, 3)
        groups.append(box_surface(c, ext, yaw, step=0.02))
        truth.append((c, ext, yaw))
    starts = np.cumsum([0] + [len(g) for g in groups[:-1]])
    centres, extents, yaw = fit_boxes(np.concatenate(groups), starts)
    for k, (c, ext, y) in enumerate(truth):
        assert np.allclose(centres[k], c, atol=0.01)
        assert np.allclose(extents[k], ext, atol=0.02)
        d = (yaw[k] - y + np.pi / 2) % np.pi - np.pi / 2  # boxes are symmetric under a half turn
        assert abs(d) < np.deg2rad(1.0)
        assert box_iou_3d(c, ext, y, centres[k], extents[k], yaw[k]) > 0.95


def test_rectangle_helpers():
    sq = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
    assert rect_overlap_area(sq, sq + 0.5) == pytest.approx(0.25)
    assert rect_overlap_area(sq, sq + 2.0) == 0.0
    assert rect_gaps(sq[None], (sq + [3.0, 0.0])[None])[0] == pytest.approx(2.0)
    assert rect_gaps(sq[None], (sq + [0.5, 0.5])[None])[0] == 0.0


def test_objects_structure_and_relations():
    b, u = build(desk_scene(), viewpoint_m=np.array([2.5, -1.0, 1.5]))
    g = b.graph
    assert set(g.objects) == set(range(1, 11))  # ids are the map instance ids
    t = g.objects[1]
    assert t.class_name == "table" and t.confidence == pytest.approx(0.9)
    assert np.allclose(t.box.center_m, (0.4, 2.0, 0.375), atol=0.03)
    assert np.allclose(np.sort(t.box.extents_m[:2]), (0.7, 1.2), atol=0.05)
    # structure
    s = g.structure
    assert s.floor is not None and abs(s.floor.offset_m) < 0.02 and s.floor.normal_world[2] > 0.99
    assert len(s.walls) == 4
    assert len(s.rooms) == 1 and set(s.rooms[0].object_ids) == set(range(1, 11))
    assert all(o.room_id == 0 for o in g.objects.values())
    # fronts: monitor / tv face away from their walls, the chair away from its back rest
    assert g.objects[2].front_world @ np.array([1, 0, 0]) > 0.99
    assert g.objects[6].front_world @ np.array([-1, 0, 0]) > 0.99
    assert g.objects[5].front_world @ np.array([-1, 0, 0]) > 0.99
    assert g.objects[3].front_world is None
    # relations (same definitions as the simulator's ground truth)
    assert {(2, 1), (3, 1)} <= rel_set(g, "on")
    assert {(1, 2), (1, 3)} <= rel_set(g, "supports")
    assert (4, 1) in rel_set(g, "under")
    assert (5, 2) in rel_set(g, "in_front_of")      # chair in front of the monitor
    assert (2, 5) in rel_set(g, "in_front_of")      # and the monitor in front of the chair (it faces it)
    assert (7, 6) in rel_set(g, "in_front_of")      # sofa in front of the tv
    assert (1, 5) in rel_set(g, "near") or (5, 1) in rel_set(g, "near")
    assert (8, 6) not in rel_set(g, "near")
    assert (10, 9) in rel_set(g, "on") and (10, 9) in rel_set(g, "inside")
    assert not {(4, 1), (2, 1), (3, 1)} & rel_set(g, "inside")  # a table is no container
    assert g.objects[9].front_world @ np.array([0, -1, 0]) > 0.99   # the shelf faces into the room
    for r in g.relations:
        assert 0.0 <= r.score <= 1.0 and r.subject_id != r.object_id
    # support surfaces: the desk top minus what stands on it; the floor
    desk = next(x for x in s.support_surfaces if x.object_id == 1)
    assert desk.height_m == pytest.approx(0.75, abs=0.03) and set(desk.occupied_by) == {2, 3}
    assert desk.free_area_m2 < desk.area_m2
    assert any(x.object_id is None and x.class_name == "floor" for x in s.support_surfaces)


def test_json_schema_roundtrip_and_updates():
    scene = desk_scene()
    b = SceneGraphBuilder(LABELS)
    pts, cls, ins, table = scene.cloud()
    u1 = b.update(pts, cls, ins, table, 1.0)
    d1 = u1.to_dict()
    validate_scene_graph_dict(d1)
    validate_scene_graph_dict(b.graph.to_dict())
    validate_scene_graph_dict(json.loads(b.graph.to_json()))
    assert d1["full"] and d1["sequence"] == 1 and len(d1["changed"]) == 10
    # round trip
    g2 = SceneGraph.from_dict(json.loads(b.graph.to_json()))
    assert g2.to_dict() == json.loads(b.graph.to_json())
    # same map again: nothing changed
    u2 = b.update(pts, cls, ins, table, 2.0)
    assert not u2.full and u2.sequence == 2 and u2.changed == [] and u2.deleted_ids == []
    # move the cup by 10 cm, delete the plant, merge the box (4) into a new instance 9
    moved = pts.copy()
    moved[ins == 3, 0] += 0.1
    keep = ins != 8
    ins3 = ins.copy()
    ins3[ins == 4] = 9
    table3 = [t for t in table if t.id not in (8, 4)]
    box = next(t for t in table if t.id == 4)
    table3.append(MapInstance(9, box.class_votes.copy(), 1, 50, box.bounds_min_m, box.bounds_max_m,
                              box.voxel_count, merged_ids=[4]))
    u3 = b.update(moved[keep], cls[keep], ins3[keep], table3, 3.0)
    d3 = u3.to_dict()
    validate_scene_graph_dict(d3)
    assert {o["id"] for o in d3["changed"]} == {3, 9}
    assert set(d3["deleted_ids"]) == {4, 8} and d3["merged"] == {"4": 9}
    assert any(r["subject_id"] == 9 and r["predicate"] == "under" for r in d3["relations"])
    # a subscriber that applies every update ends with the builder's graph
    sub = SceneGraph()
    for u in (u1, u2, u3):
        sub.apply_update(json.loads(u.to_json()))
    assert sub.to_dict() == b.graph.to_dict()
    # a late joiner gets everything in one full update
    late = SceneGraph()
    late.apply_update(b.full_update().to_dict())
    assert late.to_dict() == b.graph.to_dict()
    # reset: the next update is full again, sequence restarts
    b.reset()
    u4 = b.update(pts, cls, ins, table, 4.0)
    assert u4.full and u4.sequence == 1
    # schema violations are caught
    bad = b.graph.to_dict()
    bad["objects"][0]["confidence"] = 2.0
    with pytest.raises(ValueError):
        validate_scene_graph_dict(bad)
    bad = u4.to_dict()
    del bad["deleted_ids"]
    with pytest.raises(ValueError):
        validate_scene_graph_dict(bad)
    with pytest.raises(ValueError):
        SceneGraph.from_dict({"schema": "something_else", "version": 1})


def test_gravity_not_z_up():
    """The same room with up = +y of the map frame gives the same objects and relations."""
    scene = desk_scene()
    pts, cls, ins, table = scene.cloud()
    R = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], float)  # maps the z-up world to a y-up map: p_map = R p
    b0 = SceneGraphBuilder(LABELS)
    b0.update(pts, cls, ins, table, 1.0)
    b1 = SceneGraphBuilder(LABELS, SceneGraphConfig(up_world=(0.0, 1.0, 0.0)))
    b1.update((pts.astype(float) @ R.T).astype(np.float32), cls, ins, table, 1.0)
    g0, g1 = b0.graph, b1.graph
    assert {(r.subject_id, r.predicate, r.object_id) for r in g0.relations} == \
        {(r.subject_id, r.predicate, r.object_id) for r in g1.relations}
    for k in g0.objects:
        assert np.allclose(R @ g0.objects[k].box.center_m, g1.objects[k].box.center_m, atol=1e-6)
        assert np.allclose(np.sort(g0.objects[k].box.extents_m), np.sort(g1.objects[k].box.extents_m), atol=1e-6)
    validate_scene_graph_dict(g1.to_dict())


def test_small_private_and_dynamic_instances_get_no_node():
    scene = desk_scene()
    scene.add(20, "person", (2.5, 2.0, 0.9), (0.4, 0.3, 1.8))
    scene.add(21, "book", (2.0, 3.0, 0.01), (0.04, 0.04, 0.02))  # a handful of points only
    b, _ = build(scene, SceneGraphConfig(min_object_points=20))
    assert 20 not in b.graph.objects and 21 not in b.graph.objects
    assert "person" not in b.graph.to_json()


def test_bad_input_and_config():
    b = SceneGraphBuilder(LABELS)
    with pytest.raises(ValueError):
        b.update(np.zeros((5, 2)), np.zeros(5, int), np.zeros(5, int), [], 0.0)
    with pytest.raises(ValueError):
        b.update(np.zeros((5, 3)), np.zeros(4, int), np.zeros(5, int), [], 0.0)
    with pytest.raises(ValueError):
        b.update(np.zeros((5, 3)), np.zeros(5, int), np.zeros(5, int), [], float("nan"))
    with pytest.raises(ValueError):
        b.update(np.zeros((5, 3)), np.zeros(5, int), np.zeros(5, int), [], 0.0, viewpoint_m=np.zeros(2))
    for bad in ({"near_m": 0.0}, {"up_world": (0.0, 0.0, 0.0)}, {"inside_share": 1.5},
                {"front_half_angle_rad": 2.0}, {"min_object_points": -1}):
        with pytest.raises(ValueError):
            SceneGraphBuilder(LABELS, SceneGraphConfig(**bad))
    cfg = SceneGraphConfig(near_m=0.4)
    assert SceneGraphConfig.from_dict(cfg.to_dict()) == cfg
    # class ids outside the label space and NaN points are ignored, not fatal
    pts, cls, ins, table = desk_scene().cloud()
    pts[:10] = np.nan
    cls[10:20] = 999
    b.update(pts, cls, ins, table, 1.0)
    assert len(b.graph.objects) == 10


def test_plot_writes_png(tmp_path):
    from metric_semantic_slam.core.scene_graph.plot import plot_scene_graph

    b, _ = build(desk_scene())
    pts, cls, _, _ = desk_scene().cloud()
    out = plot_scene_graph(b.graph, tmp_path / "g.png", LABELS, points_m=pts, point_classes=cls)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10000
