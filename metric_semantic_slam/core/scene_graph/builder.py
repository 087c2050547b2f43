"""Incremental scene-graph builder: mapper surface cloud + instance table -> graph and updates.

Every ``update`` takes the whole current map (the map, not the graph, holds the state) and returns
the graph that a from-scratch build of that map gives; it then diffs against what was last sent: new /
changed objects, deleted ids (evicted or merged instances, following ``MapInstance.merged_ids``), and
always the complete relations and structure. Ids are the mapper's instance ids, so they stay stable
across updates. Private and dynamic classes never produce a node (the mapper does not fuse them
either; this is the second line of defence).

Cost: the per-point work is a few vectorised passes over the cloud; per-object work is skipped for
objects whose points did not change. Kept between updates: box fits (keyed on each instance's point
count and coordinate sums), front directions, object nodes (reused when all their values are equal),
support surfaces, the structure, the relations (:class:`~.relations.RelationIndex`: only pairs that
touch a changed object are re-evaluated) and the dicts already serialised for them. Objects handed out
(``graph`` nodes, relation tuples, the update's relation / structure dicts) are shared with later
updates: treat them as read-only.
"""
from __future__ import annotations

import copy

import numpy as np

from ..labels import LabelSpace
from .boxes import fit_boxes, footprint_corners, rect_overlap_area
from .config import SceneGraphConfig
from .model import (Box, ObjectNode, SceneGraph, SceneGraphUpdate, Structure, SupportSurface, gravity_frame,
                    relations_to_dicts)
from .relations import RelationIndex
from .structure import estimate_fronts, fit_structure, points_in_polygon, support_surface_box

__all__ = ["SceneGraphBuilder"]


class SceneGraphBuilder:
    """Builds the scene graph from the mapper's outputs and emits incremental updates."""

    def __init__(self, label_space: LabelSpace, config: SceneGraphConfig = SceneGraphConfig()) -> None:
        config.validate()
        self.labels = label_space
        self.config = config
        self.R_world_gravity = gravity_frame(config.up_world)
        self._dynamic = label_space.dynamic_mask
        self._excluded = self._dynamic | label_space.private_mask
        self._known_class = np.array([i in label_space for i in range(label_space.max_id + 1)], dtype=bool)
        self._class_names = [label_space.by_id(i).name if i in label_space else ""
                             for i in range(label_space.max_id + 1)]
        containers = set(config.container_classes)
        self._container_lut = np.array([n in containers for n in self._class_names], dtype=bool)
        self._support_lut = np.array([n in set(config.support_classes) for n in self._class_names], dtype=bool)
        self._stuff_ids = {}
        for name in ("floor", "wall", "ceiling"):
            try:
                self._stuff_ids[name] = label_space.id_of(name)
            except KeyError:
                pass
        self.reset()

    def reset(self) -> None:
        """Forget everything; the next update is a full one with sequence 1."""
        self._graph = SceneGraph(up_world=np.asarray(self.config.up_world, np.float64) /
                                 np.linalg.norm(self.config.up_world), label_space=self.labels.name)
        # What subscribers last got, per object (sorted ids; rows: box centre, extents, yaw | class,
        # room (-1 none), confidence, front x y z (NaN none)) and the merged ids.
        self._sent_ids = np.zeros(0, np.int64)
        self._sent_rows = np.zeros((0, 13))
        self._sent_merged: list[list[int]] = []
        # Box fits by object (sorted ids; count, coordinate sums, centre, extents, yaw, top offset).
        self._fit_ids = np.zeros(0, np.int64)
        self._fit_rows = np.zeros((0, 13))
        # Object nodes of the last update with the values they were built from (reused when equal).
        self._node_ids = np.zeros(0, np.int64)
        self._node_rows = np.zeros((0, 0))
        self._nodes: list[ObjectNode] = []
        self._relations = RelationIndex(self.config)
        self._refit = np.zeros(0, dtype=bool)
        self._structure_same = False
        self._front_ids = np.zeros(0, np.int64)  # front directions of the last update (gravity x-y)
        self._front_cid = np.zeros(0, np.int64)
        self._front_rows = np.zeros((0, 2))
        # Support surfaces by object id: (class name, occupant ids, surface) of the last update.
        self._surfaces: dict[int, tuple] = {}
        # Dicts of structure parts (planes, support surfaces) by identity: (object, dict).
        self._part_dicts: dict[int, tuple] = {}
        self._structure_cache = None
        self._force_full = True

    @property
    def graph(self) -> SceneGraph:
        """The graph after the last update (do not modify)."""
        return self._graph

    def full_update(self) -> SceneGraphUpdate:
        """The current graph as a full update (for late joiners); does not advance the sequence."""
        g = self._graph
        R = self.R_world_gravity
        return SceneGraphUpdate(sequence=g.sequence, stamp_s=g.stamp_s, full=True,
                                changed=[g.objects[k].to_dict(R) for k in sorted(g.objects)], deleted_ids=[],
                                relations=relations_to_dicts(g.relations), structure=g.structure.to_dict(R),
                                frame_id=g.frame_id, up_world=tuple(float(x) for x in g.up_world), label_space=g.label_space)

    # ------------------------------------------------------------------------------------------
    def update(self, points_m: np.ndarray, classes: np.ndarray, instances: np.ndarray,
               instance_table: list, stamp_s: float, viewpoint_m: np.ndarray | None = None) -> SceneGraphUpdate:
        """Rebuild the graph from the map's surface points and instance table; return the update.

        ``points_m``/``classes``/``instances`` are the mapper's ``SemanticCloud`` (surface voxel
        centres, map frame); ``instance_table`` is ``SemanticVoxelMapper.instances()`` (``MapInstance``
        objects or their dicts); ``viewpoint_m`` (3,) is the camera position used for viewer-relative
        relations of objects without a front (None: no such relations).
        Shape: points_m (N, 3) float; classes (N,) int; instances (N,) int.
        """
        pts = np.asarray(points_m)
        cls = np.asarray(classes)
        ins = np.asarray(instances)
        if pts.ndim != 2 or pts.shape[1] != 3:
            raise ValueError(f"points_m must be (N, 3), got {pts.shape}")
        if cls.shape != (len(pts),) or ins.shape != (len(pts),):
            raise ValueError(f"classes and instances must be ({len(pts)},), got {cls.shape} and {ins.shape}")
        if not np.isfinite(stamp_s):
            raise ValueError(f"stamp_s must be finite, got {stamp_s}")
        if viewpoint_m is not None:
            viewpoint_m = np.asarray(viewpoint_m, np.float64).reshape(-1)
            if viewpoint_m.shape != (3,) or not np.isfinite(viewpoint_m).all():
                raise ValueError(f"viewpoint_m must be a finite (3,) position, got {viewpoint_m}")
        c = self.config
        R = self.R_world_gravity
        cls = cls.astype(np.int64)
        ins = ins.astype(np.int64)
        if len(cls) and not (cls.min() >= 0 and cls.max() <= self.labels.max_id):
            cls = np.where((cls >= 0) & (cls <= self.labels.max_id), cls, 0)
        # (column by column: an all(axis=1) over 3 columns costs ten times more)
        finite = np.isfinite(pts[:, 0]) & np.isfinite(pts[:, 1]) & np.isfinite(pts[:, 2])
        keep = finite & ~self._excluded[cls]
        pts_g = pts.astype(np.float64)
        if not np.array_equal(R, np.eye(3)):
            pts_g = pts_g @ R  # row vectors: p_g = R^T p_w
        # np.take gathers rows several times faster than boolean / fancy indexing.
        stuff_g = {name: np.take(pts_g, np.flatnonzero(keep & (cls == cid)), axis=0)
                   for name, cid in self._stuff_ids.items()}
        floor, ceiling, walls, rooms = self._structure_cached(stuff_g)

        # ---- objects: group points by instance id.
        table = {}
        for inst in instance_table:
            if isinstance(inst, dict):
                from ..mapping.instances import MapInstance
                inst = MapInstance.from_dict(inst)
            table[int(inst.id)] = inst
        insts = list(table.values())
        t_ids = np.fromiter(table.keys(), dtype=np.int64, count=len(insts))
        # MapInstance.class_id is an argmax over the votes: all instances at once.
        votes = [np.asarray(v.class_votes) for v in insts]
        if insts and len({len(v) for v in votes}) == 1:
            votes_m = np.stack(votes).astype(np.float64)
            t_cid = np.argmax(votes_m, axis=1).astype(np.int64)
            t_total = votes_m.sum(axis=1)
            t_conf = np.where(t_total > 0, votes_m[np.arange(len(insts)), t_cid] / np.where(t_total > 0, t_total, 1.0),
                              0.0)
        else:  # votes of different lengths (instances from another label space): one by one
            t_cid = np.array([v.class_id for v in insts], dtype=np.int64)
            t_conf = np.zeros(len(insts))
            for k, v in enumerate(votes):
                tot = float(np.asarray(v, np.float64).sum())
                t_conf[k] = float(v[t_cid[k]] / tot) if tot > 0 else 0.0
        t_vox = np.fromiter((v.voxel_count for v in insts), dtype=np.int64, count=len(insts))
        mx = self.labels.max_id
        t_ok = (~self._excluded[np.minimum(t_cid, mx)] & self._known_class[np.minimum(t_cid, mx)] & (t_cid <= mx)
                & (t_vox >= c.min_object_voxels))
        ok_ids = np.sort(t_ids[t_ok])
        ins_c = np.clip(ins, 0, None)
        max_id = int(max(ins_c.max(initial=0), ok_ids.max(initial=0)))
        if c.require_class_match:
            # Voxels that carry an instance id but another class (unknown, a wall behind a lamp) are
            # association noise at object borders; they would inflate the boxes. One look-up: the
            # class each usable instance's points must have (-1: instance not usable; classes >= 0).
            lut = np.full(max_id + 1, -1, dtype=np.int64)
            lut[t_ids[t_ok]] = t_cid[t_ok]
            sel = keep & (ins > 0) & (lut[ins_c] == cls)
        else:
            ok_lut = np.zeros(max_id + 1, dtype=bool)
            ok_lut[ok_ids] = True
            sel = keep & (ins > 0) & ok_lut[ins_c]
        counts_all = np.bincount(ins_c[sel], minlength=max_id + 1)
        sel &= (counts_all >= max(c.min_object_points, 1))[ins_c]
        i_sel = ins[sel]
        # Radix sort for ids that fit 16 bits (a map's instance ids usually do); same stable order.
        key = i_sel.astype(np.uint16) if max_id < 65536 else i_sel
        order = np.argsort(key, kind="stable")
        p_obj = np.take(pts_g, np.flatnonzero(sel)[order], axis=0)
        i_obj = i_sel[order]
        # i_obj is sorted: groups start where the id changes (no second sort as np.unique would do).
        starts = np.flatnonzero(np.r_[True, i_obj[1:] != i_obj[:-1]]) if len(i_obj) else np.zeros(0, np.int64)
        ids = i_obj[starts]
        counts = np.diff(np.r_[starts, len(i_obj)])
        G = len(ids)
        objects: dict[int, ObjectNode] = {}
        relations, rel_dicts = [], []
        support: list[SupportSurface] = []
        if G:
            sums = np.add.reduceat(p_obj, starts, axis=0)
            centroid_g = sums / counts[:, None]
            centres, extents, yaw, top_off = self._fit_cached(ids, starts, counts, sums, p_obj)
            # Per-object table values, in the order of ids.
            t_order = np.argsort(t_ids, kind="stable")
            t_pos = t_order[np.searchsorted(t_ids[t_order], ids)]
            o_cid, o_conf = t_cid[t_pos], t_conf[t_pos]
            names = [self._class_names[k] for k in o_cid.tolist()]
            walls_g = [(R.T @ w.normal_world, w.offset_m) for w in walls]
            room_centre = rooms[0].footprint_xy.mean(axis=0) if rooms else None
            fronts = self._fronts_cached(ids, o_cid, names, centres, extents, yaw, top_off, walls_g, room_centre)
            vp_g = None if viewpoint_m is None else R.T @ viewpoint_m
            state = RelationIndex.state(centres, extents, yaw, fronts, vp_g, self._container_lut[o_cid])
            relations, rel_dicts = self._relations.update(ids, state)
            # Map-frame vectors of all objects at once (row vectors: x_w = R x_g).
            centroid_w, centre_w = centroid_g @ R.T, centres @ R.T
            front_w = np.column_stack([fronts, np.zeros(G)]) @ R.T
            has_front = np.isfinite(fronts).all(axis=1)
            front_w[~has_front] = np.nan
            # ---- containment in rooms (the last room holding a centroid names it)
            room_of = np.full(G, -1, np.int64)
            for room in rooms:
                inside = points_in_polygon(centroid_g[:, :2], room.footprint_xy, margin_m=0.1)
                room.object_ids = [int(i) for i in ids[inside]]
                room_of[inside] = room.id
            objects = self._object_nodes(ids, t_pos, insts, o_cid, o_conf, names, counts, centroid_w, centre_w,
                                         extents, yaw, front_w, room_of)
            support = self._support_surfaces(ids, names, o_cid, centres, extents, yaw, floor, rooms)
        else:
            self._relations.reset()
            front_w = np.zeros((0, 3))
            o_cid = np.zeros(0, np.int64)
            o_conf = np.zeros(0)
            room_of = np.zeros(0, np.int64)
            centre_w, extents, yaw = np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0)

        g = SceneGraph(objects=objects, structure=Structure(floor, ceiling, walls, support, rooms),
                       relations=relations, sequence=self._graph.sequence + 1, stamp_s=float(stamp_s),
                       frame_id=self._graph.frame_id, up_world=self._graph.up_world, label_space=self.labels.name)
        rows = np.column_stack([centre_w, extents, yaw, o_cid, room_of, o_conf, front_w]).astype(np.float64)
        return self._diff(g, table, ids, rows, rel_dicts)

    def _object_nodes(self, ids, t_pos, insts, o_cid, o_conf, names, counts, centroid_w, centre_w, extents, yaw,
                      front_w, room_of) -> dict[int, ObjectNode]:
        """Object nodes by id; a node whose values all equal those of the last update is reused."""
        G = len(ids)
        seen = np.array([(insts[k].voxel_count, insts[k].first_seen, insts[k].last_seen) for k in t_pos.tolist()],
                        dtype=np.float64).reshape(G, 3)
        merged = [[int(m) for m in insts[k].merged_ids] for k in t_pos.tolist()]
        vals = np.column_stack([o_cid, o_conf, centroid_w, centre_w, extents, yaw, counts, seen, front_w, room_of])
        pos = np.searchsorted(self._node_ids, ids)
        reuse = np.zeros(G, dtype=bool)
        if len(self._node_ids):
            pc = np.minimum(pos, len(self._node_ids) - 1)
            known = self._node_ids[pc] == ids
            old = self._node_rows[pc]
            reuse = known & ((old == vals) | (np.isnan(old) & np.isnan(vals))).all(axis=1)
        objects: dict[int, ObjectNode] = {}
        nodes = []
        dyn = self._dynamic
        old_nodes = self._nodes
        for k, (oid, re, pk) in enumerate(zip(ids.tolist(), reuse.tolist(), pos.tolist())):
            if re and old_nodes[pk].merged_ids == merged[k]:
                node = old_nodes[pk]
            else:
                cid = int(o_cid[k])
                node = ObjectNode(
                    id=oid, class_id=cid, class_name=names[k], confidence=float(o_conf[k]),
                    centroid_m=centroid_w[k], box=Box(centre_w[k], extents[k], float(yaw[k])),
                    point_count=int(counts[k]), voxel_count=int(seen[k, 0]), first_seen=int(seen[k, 1]),
                    last_seen=int(seen[k, 2]), is_dynamic=bool(dyn[cid]),
                    front_world=None if np.isnan(front_w[k, 0]) else front_w[k],
                    room_id=None if room_of[k] < 0 else int(room_of[k]), merged_ids=merged[k])
            objects[oid] = node
            nodes.append(node)
        self._node_ids, self._node_rows, self._nodes = ids.copy(), vals, nodes
        return objects

    # ------------------------------------------------------------------------------------------
    def _structure_cached(self, stuff_g: dict[str, np.ndarray]):
        """Structure from stuff points; reused while those points are unchanged (count and sum)."""
        key = tuple((name, len(p), *np.round(p.sum(axis=0), 6).tolist()) for name, p in sorted(stuff_g.items()))
        self._structure_same = self._structure_cache is not None and self._structure_cache[0] == key
        if self._structure_same:
            floor, ceiling, walls, rooms = self._structure_cache[1]
            return floor, ceiling, list(walls), [copy.deepcopy(r) for r in rooms]
        out = fit_structure(stuff_g, self.config, self.R_world_gravity)
        self._structure_cache = (key, out)
        return out[0], out[1], list(out[2]), [copy.deepcopy(r) for r in out[3]]

    def _fronts_cached(self, ids, o_cid, names, centres, extents, yaw, top_off, walls_g, room_centre) -> np.ndarray:
        """``estimate_fronts`` of every object (each row depends only on its own object, the walls and
        the room): rows of objects with the same box fit and class under the same structure are reused."""
        G = len(ids)
        redo = np.ones(G, dtype=bool)
        fronts = np.full((G, 2), np.nan)
        if self._structure_same and len(self._front_ids):
            pos = np.minimum(np.searchsorted(self._front_ids, ids), len(self._front_ids) - 1)
            same = (self._front_ids[pos] == ids) & (self._front_cid[pos] == o_cid) & ~self._refit
            fronts[same] = self._front_rows[pos[same]]
            redo = ~same
        if redo.any():
            k = np.nonzero(redo)[0]
            fronts[k] = estimate_fronts([names[i] for i in k.tolist()], centres[k], extents[k], yaw[k], top_off[k],
                                        walls_g, room_centre, self.config)
        self._front_ids, self._front_cid, self._front_rows = ids.copy(), o_cid.copy(), fronts
        return fronts

    def _fit_cached(self, ids, starts, counts, sums, p_obj):
        """Boxes and top-quarter offsets per object; objects whose points are unchanged (same count
        and coordinate sums) reuse the previous fit, so an update costs little when few objects change."""
        c = self.config
        G = len(ids)
        rows = np.zeros((G, 13))  # count, sums (3), centre (3), extents (3), yaw, top offset (2)
        redo = np.ones(G, dtype=bool)
        if len(self._fit_ids):
            pos = np.minimum(np.searchsorted(self._fit_ids, ids), len(self._fit_ids) - 1)
            old = self._fit_rows[pos]
            same = ((self._fit_ids[pos] == ids) & (old[:, 0] == counts)
                    & (np.abs(old[:, 1:4] - sums).max(axis=1) <= 1e-6))
            rows[same] = old[same]
            redo = ~same
        if redo.any():
            sub = np.repeat(redo, counts)
            p = np.take(p_obj, np.flatnonzero(sub), axis=0)
            cnt = counts[redo]
            st = np.concatenate([[0], np.cumsum(cnt)[:-1]])
            ce, ex, yw = fit_boxes(p, st)
            # Surface points sit within a voxel of the surface: grow by the configured share of a voxel.
            ex = ex + c.voxel_size_m * c.box_grow_voxels
            # A surface seen as one layer of voxels is still at least one voxel thick.
            ex = np.maximum(ex, c.voxel_size_m)
            # Mean x-y offset of the points in each box's top quarter (back rests, head boards).
            zmax_pt = np.repeat(ce[:, 2] + ex[:, 2] / 2, cnt)
            h_pt = np.repeat(ex[:, 2], cnt)
            top = (p[:, 2] >= zmax_pt - 0.25 * h_pt).astype(np.float64)
            n_top = np.maximum(np.add.reduceat(top, st), 1.0)
            to = np.add.reduceat(p[:, :2] * top[:, None], st, axis=0) / n_top[:, None] - ce[:, :2]
            rows[redo] = np.column_stack([counts[redo], sums[redo], ce, ex, yw, to])
        self._fit_ids, self._fit_rows = ids.copy(), rows
        self._refit = redo  # boxes that were fitted anew (order of ids)
        return rows[:, 4:7], rows[:, 7:10], rows[:, 10], rows[:, 11:13]

    def _support_surfaces(self, ids, names, o_cid, centres, extents, yaw, floor, rooms) -> list[SupportSurface]:
        c = self.config
        R = self.R_world_gravity
        index = {int(i): k for k, i in enumerate(ids)}
        corners = footprint_corners(centres, extents, yaw)
        on_s, on_o = self._relations.pairs("on")
        on_map: dict[int, list[int]] = {}
        for sid, oid in zip(on_s.tolist(), on_o.tolist()):
            on_map.setdefault(oid, []).append(sid)
        out: list[SupportSurface] = []
        refit = self._refit.tolist()
        cache, new_cache = self._surfaces, {}
        areas = extents[:, 0] * extents[:, 1]
        cand = np.nonzero(self._support_lut[o_cid] & (areas >= c.min_support_area_m2))[0]
        for k, oid in zip(cand.tolist(), ids[cand].tolist()):
            area = float(areas[k])
            occ = sorted(on_map.get(oid, []))
            hit = cache.get(oid)
            # Reuse the last surface while its box, class and occupants (and their boxes) are unchanged.
            if (hit is not None and not refit[k] and hit[0] == names[k] and hit[1] == occ
                    and not any(refit[index[o]] for o in occ)):
                surf = hit[2]
            else:
                used = sum(rect_overlap_area(corners[index[o]], corners[k]) for o in occ)
                top = support_surface_box(centres[k], extents[k], float(yaw[k]))
                surf = SupportSurface(oid, oid, names[k], Box(R @ top.center_m, top.extents_m, top.yaw_rad),
                                      float(top.center_m[2]), area, max(area - used, 0.0), occ)
            new_cache[oid] = (names[k], occ, surf)
            out.append(surf)
        self._surfaces = new_cache
        if floor is not None and rooms:
            fp = rooms[0].footprint_xy
            h = float(rooms[0].floor_height_m)
            tol = c.contact_tol_m + c.box_tol_m
            zmin = centres[:, 2] - extents[:, 2] / 2
            on_floor = ~np.isin(ids, on_s) & (np.abs(zmin - h) <= tol)
            occ = ids[on_floor].tolist()
            area = float(0.5 * abs(np.dot(fp[:, 0], np.roll(fp[:, 1], -1)) - np.dot(fp[:, 1], np.roll(fp[:, 0], -1))))
            e1, e2 = fp[1] - fp[0], fp[2] - fp[1]
            fp_ccw = fp if e1[0] * e2[1] - e1[1] * e2[0] > 0 else fp[::-1]
            # Footprints fully inside the room count whole; only those crossing its outline are clipped.
            used = 0.0
            if occ:
                ko = np.array([index[o] for o in occ])
                whole = points_in_polygon(corners[ko].reshape(-1, 2), fp_ccw).reshape(-1, 4).all(axis=1)
                used = float(np.sum(extents[ko[whole], 0] * extents[ko[whole], 1]))
                used += sum(rect_overlap_area(corners[k], fp_ccw) for k in ko[~whole])
            e = fp[1] - fp[0]
            cen = np.array([fp[:, 0].mean(), fp[:, 1].mean(), h])
            box = Box(R @ cen, np.array([np.linalg.norm(e), np.linalg.norm(fp[2] - fp[1]), 0.0]),
                      float(np.arctan2(e[1], e[0])))
            out.append(SupportSurface(0, None, "floor", box, h, area, max(area - used, 0.0), occ))
        return out

    def _diff(self, g: SceneGraph, table: dict, ids: np.ndarray, rows: np.ndarray, rel_dicts: list
              ) -> SceneGraphUpdate:
        """The update against what subscribers last got. ``rows`` per object (order of ``ids``): box
        centre (3, map frame), extents (3), yaw, class id, room id (-1 none), confidence, front (3, NaN
        none)."""
        c = self.config
        R = self.R_world_gravity
        full = self._force_full or (c.full_every > 0 and g.sequence % c.full_every == 0)
        G = len(ids)
        nodes = [g.objects[k] for k in ids.tolist()]
        merged_new = [n.merged_ids for n in nodes]
        changed_mask = np.ones(G, dtype=bool)
        pos = np.searchsorted(self._sent_ids, ids)
        if len(self._sent_ids) and not full:
            pc = np.minimum(pos, len(self._sent_ids) - 1)
            known = self._sent_ids[pc] == ids
            old = self._sent_rows[pc]
            diff = np.abs(rows - old)
            moved = (diff[:, :6].max(axis=1) > c.position_change_m) | (diff[:, 6] > 0.02)
            f_old, f_new = np.isnan(old[:, 10]), np.isnan(rows[:, 10])
            with np.errstate(invalid="ignore"):
                front_moved = ~f_new & (np.nan_to_num(diff[:, 10:13], nan=0.0).max(axis=1) > 0.1)
            differs = ((rows[:, 7] != old[:, 7]) | (rows[:, 8] != old[:, 8]) | (diff[:, 9] > 0.02)
                       | (f_old != f_new) | front_moved)
            changed_mask = ~known | moved | differs
            for k in np.nonzero(~changed_mask)[0].tolist():  # merges: compare the id lists
                if self._sent_merged[pc[k]] != merged_new[k]:
                    changed_mask[k] = True
            keep_old = ~changed_mask
            new_rows = np.where(keep_old[:, None], old, rows)
            new_merged = [self._sent_merged[pc[k]] if keep_old[k] else merged_new[k] for k in range(G)]
        else:
            new_rows, new_merged = rows.copy(), list(merged_new)
        changed = [nodes[k].to_dict(R) for k in np.nonzero(changed_mask)[0].tolist()]
        deleted = self._sent_ids[~np.isin(self._sent_ids, ids)].tolist()
        merged = {}
        if deleted:
            dset = set(deleted)
            for inst in table.values():
                for m in inst.merged_ids:
                    if int(m) in dset and int(inst.id) in g.objects:
                        merged[int(m)] = int(inst.id)
        self._sent_ids, self._sent_rows, self._sent_merged = ids.copy(), new_rows, new_merged
        self._force_full = False
        self._graph = g
        return SceneGraphUpdate(sequence=g.sequence, stamp_s=g.stamp_s, full=full, changed=changed,
                                deleted_ids=[] if full else deleted, relations=rel_dicts,
                                structure=self._structure_dict(g.structure), merged=merged, frame_id=g.frame_id,
                                up_world=tuple(float(x) for x in g.up_world), label_space=g.label_space)

    def _structure_dict(self, st: Structure) -> dict:
        """``st.to_dict(R)``, reusing the dicts of planes and support surfaces that are the same objects
        as in the last update (the structure and surface caches hand those out unchanged)."""
        R = self.R_world_gravity
        old, new = self._part_dicts, {}

        def part(obj, *args):
            hit = old.get(id(obj))
            d = hit[1] if hit is not None and hit[0] is obj else obj.to_dict(*args)
            new[id(obj)] = (obj, d)
            return d

        out = {"floor": None if st.floor is None else part(st.floor),
               "ceiling": None if st.ceiling is None else part(st.ceiling),
               "walls": [part(w) for w in st.walls],
               "support_surfaces": [part(s, R) for s in st.support_surfaces],
               "rooms": [r.to_dict() for r in st.rooms]}
        self._part_dicts = new
        return out
