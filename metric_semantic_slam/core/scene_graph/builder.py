"""Incremental scene-graph builder: mapper surface cloud + instance table -> graph and updates.

One ``update`` call rebuilds every node from the current map (the map, not the graph, holds the
state), then diffs against what was last sent: new / changed objects, deleted ids (evicted or merged
instances, following ``MapInstance.merged_ids``), and always the complete relations and structure.
Ids are the mapper's instance ids, so they stay stable across updates. Private and dynamic classes
never produce a node (the mapper does not fuse them either; this is the second line of defence).
"""
from __future__ import annotations

import copy

import numpy as np

from ..labels import LabelSpace
from .boxes import fit_boxes, footprint_corners, rect_overlap_area
from .config import SceneGraphConfig
from .model import (Box, ObjectNode, SceneGraph, SceneGraphUpdate, Structure, SupportSurface, gravity_frame,
                    relations_to_dicts)
from .relations import compute_relations
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
        self._sent: dict[int, ObjectNode] = {}
        self._sent_geo: dict[int, np.ndarray] = {}
        self._fit_cache: dict[int, tuple] = {}
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
        known = (cls >= 0) & (cls <= self.labels.max_id)
        cls = np.where(known, cls, 0)
        finite = np.isfinite(pts).all(axis=1)
        keep = finite & ~self._excluded[cls]
        pts_g = pts.astype(np.float64)
        if not np.array_equal(R, np.eye(3)):
            pts_g = pts_g @ R  # row vectors: p_g = R^T p_w
        stuff_g = {name: pts_g[keep & (cls == cid)] for name, cid in self._stuff_ids.items()}
        floor, ceiling, walls, rooms = self._structure_cached(stuff_g)

        # ---- objects: group points by instance id.
        table = {}
        for inst in instance_table:
            if isinstance(inst, dict):
                from ..mapping.instances import MapInstance
                inst = MapInstance.from_dict(inst)
            table[int(inst.id)] = inst
        # MapInstance.class_id is an argmax over the votes: look it up once per instance.
        cid_of = {k: v.class_id for k, v in table.items()}
        ok_ids = np.array(sorted(k for k, v in table.items()
                                 if not self._excluded[min(cid_of[k], self.labels.max_id)]
                                 and cid_of[k] in self.labels and v.voxel_count >= c.min_object_voxels),
                          dtype=np.int64)
        ins_c = np.clip(ins, 0, None)
        max_id = int(max(ins_c.max(initial=0), ok_ids.max(initial=0)))
        ok_lut = np.zeros(max_id + 1, dtype=bool)
        ok_lut[ok_ids] = True
        sel = keep & (ins > 0) & ok_lut[ins_c]
        if c.require_class_match and len(ok_ids):
            # Voxels that carry an instance id but another class (unknown, a wall behind a lamp) are
            # association noise at object borders; they would inflate the boxes.
            lut = np.full(int(ok_ids.max()) + 1, -1, dtype=np.int64)
            lut[ok_ids] = [cid_of[int(k)] for k in ok_ids]
            sel &= cls == lut[np.clip(ins, 0, len(lut) - 1)]
        counts_all = np.bincount(ins_c[sel], minlength=max_id + 1)
        sel &= (counts_all >= max(c.min_object_points, 1))[ins_c]
        order = np.argsort(ins[sel], kind="stable")
        p_obj = pts_g[sel][order]
        i_obj = ins[sel][order]
        # i_obj is sorted: groups start where the id changes (no second sort as np.unique would do).
        starts = np.flatnonzero(np.r_[True, i_obj[1:] != i_obj[:-1]]) if len(i_obj) else np.zeros(0, np.int64)
        ids = i_obj[starts]
        counts = np.diff(np.r_[starts, len(i_obj)])
        G = len(ids)
        objects: dict[int, ObjectNode] = {}
        relations = []
        support: list[SupportSurface] = []
        if G:
            sums = np.add.reduceat(p_obj, starts, axis=0)
            centroid_g = sums / counts[:, None]
            centres, extents, yaw, top_off = self._fit_cached(ids, starts, counts, sums, p_obj)
            names = [self.labels.by_id(cid_of[int(i)]).name for i in ids]
            walls_g = [(R.T @ w.normal_world, w.offset_m) for w in walls]
            room_centre = rooms[0].footprint_xy.mean(axis=0) if rooms else None
            fronts = estimate_fronts(names, centres, extents, yaw, top_off, walls_g, room_centre, c)
            vp_g = None if viewpoint_m is None else R.T @ viewpoint_m
            containers = set(c.container_classes)
            relations = compute_relations(ids, centres, extents, yaw, fronts, c, vp_g,
                                          is_container=np.array([n in containers for n in names]))
            # Map-frame vectors of all objects at once (row vectors: x_w = R x_g).
            centroid_w, centre_w = centroid_g @ R.T, centres @ R.T
            front_w = np.column_stack([fronts, np.zeros(G)]) @ R.T
            has_front = np.isfinite(fronts).all(axis=1)
            for k, oid in enumerate(ids.tolist()):
                inst = table[oid]
                cid = cid_of[oid]
                votes = np.asarray(inst.class_votes, np.float64)
                total = float(votes.sum())
                conf = float(votes[cid] / total) if total > 0 else 0.0
                objects[oid] = ObjectNode(
                    id=oid, class_id=int(cid), class_name=names[k], confidence=conf,
                    centroid_m=centroid_w[k], box=Box(centre_w[k], extents[k], float(yaw[k])),
                    point_count=int(counts[k]), voxel_count=int(inst.voxel_count), first_seen=int(inst.first_seen),
                    last_seen=int(inst.last_seen), is_dynamic=bool(self._dynamic[cid]),
                    front_world=front_w[k] if has_front[k] else None,
                    merged_ids=[int(m) for m in inst.merged_ids])
            # ---- containment in rooms
            for room in rooms:
                inside = points_in_polygon(centroid_g[:, :2], room.footprint_xy, margin_m=0.1)
                room.object_ids = [int(i) for i in ids[inside]]
                for i in room.object_ids:
                    objects[i].room_id = room.id
            support = self._support_surfaces(ids, names, centres, extents, yaw, relations, floor, rooms)

        g = SceneGraph(objects=objects, structure=Structure(floor, ceiling, walls, support, rooms),
                       relations=relations, sequence=self._graph.sequence + 1, stamp_s=float(stamp_s),
                       frame_id=self._graph.frame_id, up_world=self._graph.up_world, label_space=self.labels.name)
        if objects:
            geo_ids, geo_rows = ids.tolist(), np.column_stack([centre_w, extents, yaw])
        else:
            geo_ids, geo_rows = [], np.zeros((0, 7))
        return self._diff(g, table, geo_ids, geo_rows)

    # ------------------------------------------------------------------------------------------
    def _structure_cached(self, stuff_g: dict[str, np.ndarray]):
        """Structure from stuff points; reused while those points are unchanged (count and sum)."""
        key = tuple((name, len(p), *np.round(p.sum(axis=0), 6).tolist()) for name, p in sorted(stuff_g.items()))
        if self._structure_cache is not None and self._structure_cache[0] == key:
            floor, ceiling, walls, rooms = self._structure_cache[1]
            return floor, ceiling, list(walls), [copy.deepcopy(r) for r in rooms]
        out = fit_structure(stuff_g, self.config, self.R_world_gravity)
        self._structure_cache = (key, out)
        return out[0], out[1], list(out[2]), [copy.deepcopy(r) for r in out[3]]

    def _fit_cached(self, ids, starts, counts, sums, p_obj):
        """Boxes and top-quarter offsets per object; objects whose points are unchanged (same count
        and coordinate sums) reuse the previous fit, so an update costs little when few objects change."""
        c = self.config
        G = len(ids)
        centres, extents = np.zeros((G, 3)), np.zeros((G, 3))
        yaw, top_off = np.zeros(G), np.zeros((G, 2))
        redo = np.ones(G, dtype=bool)
        hits = [self._fit_cache.get(oid) for oid in ids.tolist()]
        have = np.array([h is not None for h in hits], dtype=bool)
        if have.any():
            kk = np.nonzero(have)[0]
            c_cnt = np.array([hits[k][0] for k in kk])
            c_sum = np.array([hits[k][1] for k in kk])
            same = (c_cnt == counts[kk]) & (np.abs(c_sum - sums[kk]).max(axis=1) <= 1e-6)
            for k in kk[same]:
                h = hits[k]
                centres[k], extents[k], yaw[k], top_off[k] = h[2], h[3], h[4], h[5]
            redo[kk[same]] = False
        if redo.any():
            sub = np.repeat(redo, counts)
            p = p_obj[sub]
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
            centres[redo], extents[redo], yaw[redo], top_off[redo] = ce, ex, yw, to
        self._fit_cache = {oid: (counts[k], sums[k].copy(), centres[k].copy(), extents[k].copy(), yaw[k],
                                 top_off[k].copy()) for k, oid in enumerate(ids.tolist())}
        return centres, extents, yaw, top_off

    def _support_surfaces(self, ids, names, centres, extents, yaw, relations, floor, rooms) -> list[SupportSurface]:
        c = self.config
        R = self.R_world_gravity
        index = {int(i): k for k, i in enumerate(ids)}
        corners = footprint_corners(centres, extents, yaw)
        on_map: dict[int, list[int]] = {}
        supported = set()
        for r in relations:
            if r.predicate == "on":
                on_map.setdefault(r.object_id, []).append(r.subject_id)
                supported.add(r.subject_id)
        out: list[SupportSurface] = []
        support_set = set(c.support_classes)
        for k, oid in enumerate(ids):
            area = float(extents[k, 0] * extents[k, 1])
            if names[k] not in support_set or area < c.min_support_area_m2:
                continue
            occ = sorted(on_map.get(int(oid), []))
            used = sum(rect_overlap_area(corners[index[o]], corners[k]) for o in occ)
            top = support_surface_box(centres[k], extents[k], float(yaw[k]))
            out.append(SupportSurface(int(oid), int(oid), names[k], Box(R @ top.center_m, top.extents_m, top.yaw_rad),
                                      float(top.center_m[2]), area, max(area - used, 0.0), occ))
        if floor is not None and rooms:
            fp = rooms[0].footprint_xy
            h = float(rooms[0].floor_height_m)
            tol = c.contact_tol_m + c.box_tol_m
            zmin = centres[:, 2] - extents[:, 2] / 2
            occ = [int(i) for k, i in enumerate(ids) if int(i) not in supported and abs(zmin[k] - h) <= tol]
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

    def _diff(self, g: SceneGraph, table: dict, geo_ids: list[int], geo_rows: np.ndarray) -> SceneGraphUpdate:
        c = self.config
        R = self.R_world_gravity
        full = self._force_full or (c.full_every > 0 and g.sequence % c.full_every == 0)
        changed = []
        keys = sorted(g.objects)
        # Geometry test for all objects at once (vs what each subscriber last got); the rest per object.
        moved = np.ones(len(keys), dtype=bool)
        prev = [self._sent.get(k) for k in keys]
        have = [i for i, o in enumerate(prev) if o is not None]
        # Box geometry rows (centre, extents, yaw), in the order of the sorted ids.
        geo = {k: r for k, r in zip(geo_ids, geo_rows)}
        if have and not full:
            tol = c.position_change_m
            new_geo = np.array([geo[keys[i]] for i in have])
            old_geo = np.array([self._sent_geo[keys[i]] for i in have])
            diff = np.abs(new_geo - old_geo)
            moved[have] = (diff[:, :6].max(axis=1) > tol) | (diff[:, 6] > 0.02)
        for i, k in enumerate(keys):
            node = g.objects[k]
            old = prev[i]
            if full or old is None or moved[i] or self._differs(old, node):
                changed.append(node.to_dict(R))
                self._sent[k] = node
                self._sent_geo[k] = geo[k]
        deleted = sorted(k for k in self._sent if k not in g.objects)
        merged = {}
        for inst in table.values():
            for m in inst.merged_ids:
                if int(m) in deleted and int(inst.id) in g.objects:
                    merged[int(m)] = int(inst.id)
        for k in deleted:
            del self._sent[k]
            self._sent_geo.pop(k, None)
        self._force_full = False
        self._graph = g
        return SceneGraphUpdate(sequence=g.sequence, stamp_s=g.stamp_s, full=full, changed=changed,
                                deleted_ids=[] if full else deleted, relations=relations_to_dicts(g.relations),
                                structure=g.structure.to_dict(R), merged=merged, frame_id=g.frame_id,
                                up_world=tuple(float(x) for x in g.up_world), label_space=g.label_space)

    def _differs(self, old: ObjectNode, new: ObjectNode) -> bool:
        """Whether a node changed enough to be re-sent, apart from its box (tested in ``_diff`` for all
        objects at once): class, room, merges, confidence, front."""
        if old.class_id != new.class_id or old.room_id != new.room_id or old.merged_ids != new.merged_ids:
            return True
        if abs(old.confidence - new.confidence) > 0.02:
            return True
        if (old.front_world is None) != (new.front_world is None):
            return True
        return new.front_world is not None and float(np.abs(old.front_world - new.front_world).max()) > 0.1
