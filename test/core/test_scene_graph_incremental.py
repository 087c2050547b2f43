"""Incremental scene-graph updates equal a from-scratch rebuild on the same input.

The builder keeps box fits, object nodes, relations (``RelationIndex``) and what subscribers got
between updates and re-evaluates only what touches changed objects. These tests feed a sequence of
map changes (moves, stacking an object onto another, removing its support, deletions, new objects,
relabelling, viewpoint changes) and compare every graph with the one a fresh builder makes.
"""
from __future__ import annotations

import numpy as np

from metric_semantic_slam.core.labels import load_label_space
from metric_semantic_slam.core.mapping.instances import MapInstance
from metric_semantic_slam.core.scene_graph import SceneGraphBuilder, SceneGraphConfig
from metric_semantic_slam.core.scene_graph.relations import (RelationIndex, candidate_pairs, compute_relations,
                                                              directional_reach)

LABELS = load_label_space()
CLASSES = ("table", "chair", "sofa", "shelf", "cabinet", "tv", "monitor", "plant", "lamp", "box", "cup", "book")


def box_points(rng, centre, ext, yaw, n=120):
    u = rng.uniform(-0.5, 0.5, (n, 3)) * ext
    face = rng.integers(0, 3, n)
    u[np.arange(n), face] = np.sign(u[np.arange(n), face]) * ext[face] / 2
    c, s = np.cos(yaw), np.sin(yaw)
    return np.column_stack([c * u[:, 0] - s * u[:, 1], s * u[:, 0] + c * u[:, 1], u[:, 2]]) + centre


class World:
    """Boxes (id -> class, points) in a walled room; every few boxes carries a smaller one on top."""

    def __init__(self, seed: int, n: int = 48):
        self.rng = np.random.default_rng(seed)
        self.objects: dict[int, tuple[str, np.ndarray]] = {}
        side = int(np.ceil(np.sqrt(n)))
        self.size = side * 0.9 + 0.6
        oid = 1
        for k in range(n):
            cls = CLASSES[k % len(CLASSES)]
            ext = self.rng.uniform(0.15, 0.7, 3)
            centre = np.array([(k % side) * 0.9 + 0.6, (k // side) * 0.9 + 0.6, ext[2] / 2])
            self.objects[oid] = (cls, box_points(self.rng, centre, ext, self.rng.uniform(-np.pi, np.pi)))
            oid += 1
            if k % 4 == 0:  # a cup or a book on top of it
                top = np.array([centre[0], centre[1], ext[2] + 0.05])
                self.objects[oid] = (("cup", "book")[k % 2], box_points(self.rng, top, np.array([0.1, 0.1, 0.1]), 0.0))
                oid += 1
        self.next_id = oid

    def move(self, oid: int, delta) -> None:
        cls, p = self.objects[oid]
        self.objects[oid] = (cls, p + np.asarray(delta, float))

    def cloud(self):
        L = self.size
        g = self.rng.uniform(0, L, (3000, 2))
        floor = np.column_stack([g, np.zeros(len(g))])
        h = np.linspace(0.0, 2.4, 300)
        walls = np.concatenate([np.column_stack([g[:300, 0], np.zeros(300), h]),
                                np.column_stack([g[300:600, 0], np.full(300, L), h]),
                                np.column_stack([np.zeros(300), g[600:900, 1], h]),
                                np.column_stack([np.full(300, L), g[900:1200, 1], h])])
        pts = [floor, walls]
        cls = [np.full(len(floor), LABELS.id_of("floor")), np.full(len(walls), LABELS.id_of("wall"))]
        ins = [np.zeros(len(floor), np.int64), np.zeros(len(walls), np.int64)]
        table = []
        for oid, (name, p) in sorted(self.objects.items()):
            cid = LABELS.id_of(name)
            votes = np.zeros(LABELS.max_id + 1, np.int64)
            votes[cid] = 8
            votes[0] = oid % 3
            pts.append(p)
            cls.append(np.full(len(p), cid))
            ins.append(np.full(len(p), oid))
            table.append(MapInstance(oid, votes, 0, 5, p.min(0), p.max(0), len(p)))
        return np.concatenate(pts).astype(np.float32), np.concatenate(cls), np.concatenate(ins), table


def graph_dict(builder: SceneGraphBuilder) -> dict:
    d = builder.graph.to_dict()
    d.pop("sequence")
    d.pop("stamp_s")
    return d


def check_step(inc: SceneGraphBuilder, world: World, stamp: float, viewpoint, sent: dict) -> dict:
    pts, cls, ins, table = world.cloud()
    u = inc.update(pts, cls, ins, table, stamp, viewpoint_m=viewpoint)
    fresh = SceneGraphBuilder(LABELS, inc.config)
    fu = fresh.update(pts, cls, ins, table, stamp, viewpoint_m=viewpoint)
    assert graph_dict(inc) == graph_dict(fresh)
    assert u.relations == fu.relations and u.structure == fu.structure
    # What a subscriber holds after the update equals the fresh graph's objects, up to the
    # position tolerance of unsent small moves (none here: every move is larger).
    for o in u.changed:
        sent[o["id"]] = o
    for i in u.deleted_ids:
        sent.pop(i)
    assert sorted(sent) == sorted(o["id"] for o in fu.changed)
    return {"pairs": inc._relations.last_pairs, "relations": len(u.relations), "changed": len(u.changed)}


def test_incremental_updates_equal_a_rebuild():
    world = World(seed=5)
    inc = SceneGraphBuilder(LABELS, SceneGraphConfig())
    sent: dict = {}
    vp = np.array([0.2, 0.3, 1.5])
    first = check_step(inc, world, 1.0, None, sent)
    assert first["relations"] > 100
    full_pairs = check_step(inc, world, 2.0, vp, sent)["pairs"]  # new viewpoint: every object is dirty
    ids = sorted(world.objects)
    rng = np.random.default_rng(1)
    # 1. a few objects move sideways: only their pairs are re-evaluated
    for oid in rng.choice(ids, 4, replace=False):
        world.move(int(oid), (rng.uniform(-0.3, 0.3), rng.uniform(-0.3, 0.3), 0.0))
    st = check_step(inc, world, 3.0, vp, sent)
    assert 0 < st["pairs"] < full_pairs / 3 and 0 < st["changed"] <= 4
    # 2. stack a cup onto another object, then slide a small box under it (its support changes)
    cup = next(i for i in ids if world.objects[i][0] == "cup")
    base = next(i for i in ids if world.objects[i][0] == "table" and i != cup - 1)
    bp, cp = world.objects[base][1], world.objects[cup][1]
    world.move(cup, (bp[:, 0].mean() - cp[:, 0].mean(), bp[:, 1].mean() - cp[:, 1].mean(),
                     bp[:, 2].max() - cp[:, 2].min() + 0.01))
    check_step(inc, world, 4.0, vp, sent)
    assert any(r.subject_id == cup and r.predicate == "on" and r.object_id == base for r in inc.graph.relations)
    world.move(base, (0.0, 0.0, -0.02))  # the base sinks a little: the cup keeps it only if still in reach
    check_step(inc, world, 5.0, vp, sent)
    # 3. the base goes away: the cup's support changes, its old pairs must go
    del world.objects[base]
    check_step(inc, world, 6.0, vp, sent)
    assert not any(r.subject_id == cup and r.predicate == "on" and r.object_id == base for r in inc.graph.relations)
    # 4. new objects, one of them a shelf around a book; deletions; a relabelled object
    p = box_points(rng, np.array([1.5, 1.5, 0.6]), np.array([1.0, 0.5, 1.2]), 0.3)
    world.objects[world.next_id] = ("shelf", p)
    book = box_points(rng, np.array([1.5, 1.5, 0.5]), np.array([0.2, 0.15, 0.25]), 0.3)
    world.objects[world.next_id + 1] = ("book", book)
    for oid in rng.choice(sorted(world.objects), 3, replace=False):
        world.objects.pop(int(oid), None)
    some = sorted(world.objects)[7]
    world.objects[some] = ("cabinet", world.objects[some][1])
    check_step(inc, world, 7.0, vp, sent)
    # 5. the viewer moves (viewer-relative relations of objects without a front change), then nothing
    check_step(inc, world, 8.0, np.array([3.0, 2.0, 1.6]), sent)
    st = check_step(inc, world, 9.0, np.array([3.0, 2.0, 1.6]), sent)
    assert st["pairs"] == 0 and st["changed"] == 0


def test_relation_index_matches_compute_relations_on_random_boxes():
    rng = np.random.default_rng(2)
    cfg = SceneGraphConfig()
    G = 80
    index = RelationIndex(cfg)
    centres = np.column_stack([rng.uniform(0, 6, G), rng.uniform(0, 6, G), rng.uniform(0.05, 1.0, G)])
    extents = rng.uniform(0.05, 1.2, (G, 3))
    yaw = rng.uniform(-1.5, 1.5, G)
    fronts = np.full((G, 2), np.nan)
    has = rng.random(G) < 0.4
    ang = rng.uniform(-np.pi, np.pi, G)
    fronts[has] = np.column_stack([np.cos(ang), np.sin(ang)])[has]
    container = rng.random(G) < 0.3
    ids = np.sort(rng.choice(1000, G, replace=False))
    vp = np.array([3.0, -1.0, 1.5])
    alive = np.ones(G, dtype=bool)
    for step in range(6):
        a = np.nonzero(alive)[0]
        state = RelationIndex.state(centres[a], extents[a], yaw[a], fronts[a], vp, container[a])
        got = index.update(ids[a], state)[0]
        want = compute_relations(ids[a], centres[a], extents[a], yaw[a], fronts[a], cfg, vp, container[a])
        assert got == want
        assert {r.predicate for r in want} >= {"on", "supports", "near", "in_front_of", "left_of"}
        # move / resize a few boxes, drop one on another, delete and revive some
        k = rng.choice(G, 5, replace=False)
        centres[k, :2] += rng.uniform(-0.4, 0.4, (5, 2))
        extents[k[:2]] *= 1.3
        top = rng.integers(G)
        centres[k[0]] = [centres[top, 0], centres[top, 1], centres[top, 2] + extents[top, 2] / 2 + extents[k[0], 2] / 2]
        alive[rng.choice(G, 3, replace=False)] ^= True


def test_candidate_pairs_cover_every_relation():
    rng = np.random.default_rng(4)
    cfg = SceneGraphConfig()
    xy = rng.uniform(0, 20, (300, 2))
    hd = rng.uniform(0.05, 0.8, 300)
    d = np.hypot(*(xy[:, None] - xy[None]).transpose(2, 0, 1))
    upper = np.triu(np.ones(d.shape, dtype=bool), 1)
    intrinsic, has_ref = rng.random(300) < 0.4, rng.random(300) < 0.9
    for reach in (None, directional_reach(intrinsic, has_ref, cfg)):
        r = np.full(300, max(cfg.front_range_m, cfg.viewer_range_m, cfg.side_range_m)) if reach is None else reach
        want = (d <= np.maximum(r[:, None], r[None, :])) | (d - hd[:, None] - hd[None, :] < cfg.near_m)
        want &= upper
        i, j = candidate_pairs(xy, hd, cfg, reach_m=reach)
        assert set(zip(i.tolist(), j.tolist())) == set(zip(*np.nonzero(want)))
        for q in (np.array([3, 17, 250]), np.arange(299, 39, -1)):  # few queried objects: dense; many: grid
            qi, qj = candidate_pairs(xy, hd, cfg, q, reach_m=reach)
            qs = set(q.tolist())
            assert set(zip(qi.tolist(), qj.tolist())) == {(a, b) for a, b in zip(*np.nonzero(want))
                                                          if a in qs or b in qs}
