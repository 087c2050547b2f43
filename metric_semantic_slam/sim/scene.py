"""Procedural indoor scene: one furnished room, ground-truth objects, relations and a walking person.

Layout (world z-up, floor at z = 0, room from the origin to ``(L, W, H)``):

- The camera loop (:func:`~metric_semantic_slam.sim.trajectory.plan_camera_loop`) is planned first
  from the room size; a walkway along the south wall (y = 0, the window wall) is kept for the person.
- Furniture comes in *groups* standing with their back to a wall (a desk with chair, monitor, cup,
  book and a box under it; a tv on a cabinet; a shelf filled with books; ...). Each group is put at
  a wall position whose footprint keeps ``LOOP_CLEARANCE_M`` from the loop, stays off the person's
  walkway and the area in front of the door, and does not touch other groups.
- Objects standing on others rest exactly on their support's top surface (shelf boards included).

Everything random comes from ``np.random.default_rng(seed)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from metric_semantic_slam.core.labels import LabelSpace, load_label_space
from metric_semantic_slam.sim.person import WalkingPerson
from metric_semantic_slam.sim.primitives import (box_mesh, cylinder_mesh, ellipsoid_mesh, frustum_mesh,
                                                 pose_matrix, quad_mesh, transform_mesh)
from metric_semantic_slam.sim.trajectory import LOOP_CLEARANCE_M, CameraLoop, plan_camera_loop
from metric_semantic_slam.sim.world import Material, Relation, SceneObject, TriangleMesh, World

__all__ = [
    "FRONT_CLASSES",
    "OrientedBox",
    "GeneratedScene",
    "generate_world",
    "build_scene",
    "compute_relations",
    "box_gap_m",
    "footprint_corners",
    "obb_penetration_m",
]

#: Classes whose objects face a direction (``SceneObject.front_local`` is set).
FRONT_CLASSES = ("tv", "monitor", "sofa", "chair", "bed", "cabinet", "shelf")

_WALL_GAP_M = 0.01  # furniture stands this far from its wall
_GROUP_GAP_M = 0.05  # minimum gap between neighbouring groups
_ITEM_GAP_M = 0.03  # minimum gap between items sharing a surface
_PERSON_Y_M = 0.7  # distance of the person's walking line from the south wall
_PERSON_HALF_WIDTH_M = 0.4  # keep-out half width around the walking line
_PERSON_END_MARGIN_M = 0.45  # limbs reach this far beyond the walking segment


@dataclass(frozen=True)
class OrientedBox:
    """Gravity-aligned box: centre, yaw about z, full extents. Shape: center (3,), extents (3,)."""

    center: np.ndarray
    yaw_rad: float
    extents: np.ndarray


@dataclass
class GeneratedScene:
    """A world plus the layout facts the generator guaranteed (for tests and the trajectory).

    ``part_boxes`` maps an instance id to the tight boxes of its primitive parts (objects may nest
    inside each other's boxes, e.g. a box under a table, but their parts never interpenetrate).
    ``walk_segment_xy`` is the person's walking line (2, 2), or None without a person.
    """

    world: World
    part_boxes: dict[int, list[OrientedBox]]
    camera_loop: CameraLoop
    walk_segment_xy: np.ndarray | None
    person: WalkingPerson | None


# --------------------------------------------------------------------------------------------------
# 2-D footprint geometry


def footprint_corners(center_xy: np.ndarray, yaw_rad: float, extents_xy: np.ndarray) -> np.ndarray:
    """Corners of a rotated rectangle, counter-clockwise. Shape: (2,), (2,) -> (4, 2)."""
    hx, hy = np.asarray(extents_xy, dtype=np.float64)[:2] / 2
    local = np.array([[-hx, -hy], [hx, -hy], [hx, hy], [-hx, hy]])
    c, s = np.cos(yaw_rad), np.sin(yaw_rad)
    return local @ np.array([[c, s], [-s, c]]) + np.asarray(center_xy, dtype=np.float64)[:2]


def _sat_penetration(pa: np.ndarray, pb: np.ndarray) -> float:
    # Smallest overlap of the projections over all edge normals of two convex polygons:
    # negative (the separation) when apart, positive (the penetration depth) when overlapping.
    best = np.inf
    for poly in (pa, pb):
        edges = np.roll(poly, -1, axis=0) - poly
        normals = np.stack([edges[:, 1], -edges[:, 0]], axis=1)
        normals /= np.linalg.norm(normals, axis=1, keepdims=True)
        a = pa @ normals.T
        b = pb @ normals.T
        overlap = np.minimum(a.max(0), b.max(0)) - np.maximum(a.min(0), b.min(0))
        best = min(best, float(overlap.min()))
    return best


def _segment_distances(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = np.clip(((p[:, None, :] - a[None]) * ab[None]).sum(-1) / (ab * ab).sum(-1)[None], 0.0, 1.0)
    closest = a[None] + t[..., None] * ab[None]
    return np.linalg.norm(p[:, None, :] - closest, axis=-1)


def _polygon_gap(pa: np.ndarray, pb: np.ndarray) -> float:
    if _sat_penetration(pa, pb) >= 0:
        return 0.0
    da = _segment_distances(pa, pb, np.roll(pb, -1, axis=0)).min()
    db = _segment_distances(pb, pa, np.roll(pa, -1, axis=0)).min()
    return float(min(da, db))


def _points_to_rect_distance(points: np.ndarray, center_xy, yaw_rad: float, extents_xy) -> np.ndarray:
    c, s = np.cos(yaw_rad), np.sin(yaw_rad)
    d = points - np.asarray(center_xy)[:2]
    local = np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]], axis=1)
    return np.linalg.norm(np.maximum(np.abs(local) - np.asarray(extents_xy)[:2] / 2, 0.0), axis=1)


def obb_penetration_m(a: OrientedBox | SceneObject, b: OrientedBox | SceneObject) -> float:
    """Interpenetration depth of two gravity-aligned boxes (<= 0 when they only touch or are apart).

    The smaller of the vertical overlap and the horizontal (separating-axis) overlap.
    Shape: two boxes -> scalar meters.
    """
    ca, ea, ya = _box_fields(a)
    cb, eb, yb = _box_fields(b)
    z_overlap = min(ca[2] + ea[2] / 2, cb[2] + eb[2] / 2) - max(ca[2] - ea[2] / 2, cb[2] - eb[2] / 2)
    xy = _sat_penetration(footprint_corners(ca, ya, ea), footprint_corners(cb, yb, eb))
    return float(min(z_overlap, xy))


def _box_fields(o) -> tuple[np.ndarray, np.ndarray, float]:
    if isinstance(o, SceneObject):
        return np.asarray(o.center_m), np.asarray(o.extents_m), float(o.yaw_rad)
    return np.asarray(o.center), np.asarray(o.extents), float(o.yaw_rad)


def box_gap_m(a: SceneObject, b: SceneObject) -> float:
    """Euclidean gap between two gravity-aligned object boxes (0 when they touch or overlap).

    Shape: two boxes -> scalar meters.
    """
    gxy = _polygon_gap(footprint_corners(a.center_m, a.yaw_rad, a.extents_m),
                       footprint_corners(b.center_m, b.yaw_rad, b.extents_m))
    za = (a.center_m[2] - a.extents_m[2] / 2, a.center_m[2] + a.extents_m[2] / 2)
    zb = (b.center_m[2] - b.extents_m[2] / 2, b.center_m[2] + b.extents_m[2] / 2)
    gz = max(0.0, max(za[0], zb[0]) - min(za[1], zb[1]))
    return float(np.hypot(gxy, gz))


# --------------------------------------------------------------------------------------------------
# Relations


def _local_xy(o: SceneObject, p_xy: np.ndarray) -> np.ndarray:
    c, s = np.cos(o.yaw_rad), np.sin(o.yaw_rad)
    d = np.asarray(p_xy)[:2] - o.center_m[:2]
    return np.array([c * d[0] + s * d[1], -s * d[0] + c * d[1]])


def _inside_footprint(o: SceneObject, p_xy: np.ndarray, tol: float = 1e-6) -> bool:
    return bool(np.all(np.abs(_local_xy(o, p_xy)) <= o.extents_m[:2] / 2 + tol))


def compute_relations(objects: list[SceneObject], *, contact_tol_m: float = 0.01, near_m: float = 0.5,
                      level_tol_m: float = 0.05, front_range_m: float = 3.0,
                      front_half_angle_rad: float = np.pi / 4) -> list[Relation]:
    """Ground-truth spatial relations computed from object boxes alone (dynamic objects skipped).

    Definitions (``zmin``/``zmax`` = box bottom/top, footprint = the box seen from above):

    - ``A on B``: A's footprint centre lies inside B's footprint and A's bottom is above B's bottom
      by more than ``contact_tol_m`` but not above B's top by more than it (A rests on B's top or on
      an inner board of B). With several candidates B, the one whose top is level with A's bottom
      wins, otherwise the one with the smallest footprint.
    - ``A under B``: A's footprint centre lies inside B's footprint, both stand at the same level
      (bottoms within ``contact_tol_m``) and A's top is below B's top by more than ``contact_tol_m``
      (a box under a table).
    - ``A near B``: neither is on / under the other, their bottoms are within ``level_tol_m`` (same
      support level) and the gap between the boxes is below ``near_m``. Each unordered pair is stored
      once, with the smaller instance id as subject.
    - ``A in_front_of B`` / ``A behind B``: B has a front, A is not on / under B nor B on / under A,
      the horizontal distance between the centres is at most ``front_range_m`` and the direction from
      B's centre to A's is within ``front_half_angle_rad`` of B's front (or its opposite for behind).

    Shape: N objects -> list of Relation, sorted by (subject, predicate, object).
    """
    objs = [o for o in objects if not o.is_dynamic]
    zmin = {o.instance_id: o.center_m[2] - o.extents_m[2] / 2 for o in objs}
    zmax = {o.instance_id: o.center_m[2] + o.extents_m[2] / 2 for o in objs}
    rel: set[tuple[int, str, int]] = set()
    linked: set[frozenset[int]] = set()

    for a in objs:
        ia = a.instance_id
        cands = []
        for b in objs:
            ib = b.instance_id
            if ib == ia or not _inside_footprint(b, a.center_m):
                continue
            if zmin[ib] + contact_tol_m < zmin[ia] <= zmax[ib] + contact_tol_m:
                cands.append(b)
            elif abs(zmin[ia] - zmin[ib]) <= contact_tol_m and zmax[ia] < zmax[ib] - contact_tol_m:
                rel.add((ia, "under", ib))
                linked.add(frozenset((ia, ib)))
        if cands:
            level = [b for b in cands if abs(zmax[b.instance_id] - zmin[ia]) <= contact_tol_m]
            pool = level if level else cands
            sup = min(pool, key=lambda b: float(b.extents_m[0] * b.extents_m[1]))
            rel.add((ia, "on", sup.instance_id))
            linked.add(frozenset((ia, sup.instance_id)))

    for i, a in enumerate(objs):
        for b in objs[i + 1:]:
            pair = frozenset((a.instance_id, b.instance_id))
            if pair in linked or abs(zmin[a.instance_id] - zmin[b.instance_id]) > level_tol_m:
                continue
            if box_gap_m(a, b) < near_m:
                lo, hi = sorted(pair)
                rel.add((lo, "near", hi))

    for b in objs:
        if b.front_local is None:
            continue
        f = b.R_world_object() @ np.asarray(b.front_local, dtype=np.float64)
        f_xy = f[:2] / max(np.linalg.norm(f[:2]), 1e-12)
        for a in objs:
            if a.instance_id == b.instance_id or frozenset((a.instance_id, b.instance_id)) in linked:
                continue
            d = a.center_m[:2] - b.center_m[:2]
            dist = float(np.linalg.norm(d))
            if dist < 1e-6 or dist > front_range_m:
                continue
            cos_ang = float(np.dot(d, f_xy) / dist)
            if cos_ang >= np.cos(front_half_angle_rad):
                rel.add((a.instance_id, "in_front_of", b.instance_id))
            elif cos_ang <= -np.cos(front_half_angle_rad):
                rel.add((a.instance_id, "behind", b.instance_id))
    return [Relation(s, p, o) for s, p, o in sorted(rel)]


# --------------------------------------------------------------------------------------------------
# Materials


class _Palette:
    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.materials: list[Material] = []
        self.index: dict[str, int] = {}

    def _jitter(self, rgb, amount: float = 0.06) -> tuple[float, float, float]:
        c = np.clip(np.asarray(rgb) + self.rng.uniform(-amount, amount, 3), 0.0, 1.0)
        return tuple(float(x) for x in c)

    def add(self, name: str, base, texture: str, scale: float, secondary=None, ir: float = 0.8,
            specular: float = 0.0) -> int:
        base_j = self._jitter(base)
        sec = self._jitter(secondary) if secondary is not None else tuple(0.7 * x for x in base_j)
        self.materials.append(Material(base_j, texture, float(scale), sec, float(ir), float(specular)))
        self.index[name] = len(self.materials) - 1
        return self.index[name]

    def __getitem__(self, name: str) -> int:
        return self.index[name]


def _make_palette(rng: np.random.Generator) -> _Palette:
    p = _Palette(rng)
    u = rng.uniform
    if rng.random() < 0.5:
        p.add("floor", (0.55, 0.38, 0.22), "wood", u(0.12, 0.25), (0.40, 0.26, 0.14))
    else:
        p.add("floor", (0.75, 0.74, 0.70), "checker", u(0.25, 0.4), (0.45, 0.45, 0.48))
    if rng.random() < 0.5:
        p.add("wall", (0.86, 0.84, 0.78), "noise", u(0.03, 0.08), (0.74, 0.72, 0.66))
    else:
        p.add("wall", (0.80, 0.84, 0.86), "stripes", u(0.08, 0.2), (0.68, 0.74, 0.78))
    p.add("ceiling", (0.94, 0.94, 0.92), "noise", u(0.1, 0.3), (0.88, 0.88, 0.86))
    p.add("door", (0.50, 0.32, 0.18), "wood", u(0.08, 0.15), (0.36, 0.22, 0.12))
    p.add("door_handle", (0.75, 0.75, 0.72), "noise", 0.02, (0.55, 0.55, 0.52), specular=0.6)
    p.add("window", (0.62, 0.78, 0.90), "noise", u(0.1, 0.3), (0.75, 0.86, 0.95), ir=0.3, specular=0.8)
    p.add("window_frame", (0.93, 0.93, 0.93), "noise", 0.05, (0.83, 0.83, 0.83))
    p.add("wood_light", (0.76, 0.60, 0.40), "wood", u(0.05, 0.12), (0.62, 0.46, 0.28))
    p.add("wood_dark", (0.40, 0.26, 0.16), "wood", u(0.05, 0.12), (0.28, 0.17, 0.10))
    p.add("metal", (0.55, 0.56, 0.58), "noise", 0.02, (0.42, 0.43, 0.45), specular=0.5)
    p.add("sofa_dark", (0.10, 0.10, 0.12), "fabric", u(0.02, 0.05), (0.05, 0.05, 0.06), ir=0.08)
    p.add("sofa_light", (0.55, 0.42, 0.35), "fabric", u(0.02, 0.05), (0.42, 0.30, 0.25))
    p.add("bed_cover", (0.35, 0.45, 0.70), "stripes", u(0.05, 0.12), (0.85, 0.85, 0.90))
    p.add("pillow", (0.92, 0.90, 0.86), "fabric", 0.03, (0.80, 0.78, 0.74))
    p.add("screen", (0.04, 0.04, 0.05), "noise", 0.2, (0.08, 0.08, 0.10), ir=0.05, specular=0.7)
    p.add("plastic_black", (0.12, 0.12, 0.13), "noise", 0.03, (0.20, 0.20, 0.22), ir=0.3)
    p.add("cabinet_paint", (0.85, 0.83, 0.78), "checker", u(0.15, 0.3), (0.75, 0.73, 0.68))
    p.add("pot", (0.70, 0.38, 0.22), "stripes", 0.04, (0.55, 0.28, 0.16))
    p.add("foliage", (0.18, 0.45, 0.16), "noise", 0.03, (0.08, 0.28, 0.08))
    p.add("shade", (0.95, 0.90, 0.75), "fabric", 0.02, (0.85, 0.80, 0.65))
    p.add("cardboard", (0.66, 0.50, 0.32), "noise", 0.05, (0.55, 0.40, 0.24))
    p.add("cup", (0.85, 0.20, 0.20), "stripes", 0.02, (0.95, 0.95, 0.95))
    for i, rgb in enumerate([(0.70, 0.15, 0.15), (0.15, 0.30, 0.60), (0.15, 0.50, 0.25), (0.85, 0.70, 0.20),
                             (0.45, 0.20, 0.50)]):
        p.add(f"book{i}", rgb, "stripes", u(0.02, 0.04), (0.9, 0.88, 0.8))
    p.add("skin", (0.80, 0.62, 0.50), "noise", 0.02, (0.72, 0.54, 0.44))
    p.add("shirt", (0.20, 0.35, 0.55), "stripes", 0.05, (0.85, 0.85, 0.85))
    p.add("trousers", (0.20, 0.20, 0.25), "fabric", 0.02, (0.12, 0.12, 0.16))
    return p


# --------------------------------------------------------------------------------------------------
# Object builders: parts in the object frame (origin at the base centre, x = front, z up).


@dataclass
class _Item:
    class_name: str
    parts: list[TriangleMesh]
    pose: np.ndarray = field(default_factory=lambda: np.zeros(4))  # x, y, z, yaw in the group frame
    support: int | None = None  # index of the supporting item within the group
    surfaces: list[tuple[float, float, float, float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Rest exactly on z = 0 so that "standing on" is an exact contact.
        zmin = min(float(m.vertices[:, 2].min()) for m in self.parts)
        for m in self.parts:
            m.vertices[:, 2] -= zmin

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        v = np.vstack([m.vertices for m in self.parts])
        return v.min(0), v.max(0)

    def group_aabb(self) -> tuple[np.ndarray, np.ndarray]:
        v = np.vstack([m.vertices for m in self.parts])
        c, s = np.cos(self.pose[3]), np.sin(self.pose[3])
        xy = v[:, :2] @ np.array([[c, s], [-s, c]]) + self.pose[:2]
        z = v[:, 2] + self.pose[2]
        return np.array([*xy.min(0), z.min()]), np.array([*xy.max(0), z.max()])


def _box(cid, mat, ext, center) -> TriangleMesh:
    return box_mesh(ext, center, class_id=cid, instance_id=0, material=mat)


def _table(cid, mat_top, mat_leg, w, d, h, top_t=0.035, leg=0.05) -> _Item:
    parts = [_box(cid, mat_top, (d, w, top_t), (0, 0, h - top_t / 2))]
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append(_box(cid, mat_leg, (leg, leg, h - top_t),
                              (sx * (d / 2 - leg / 2 - 0.015), sy * (w / 2 - leg / 2 - 0.015), (h - top_t) / 2)))
    return _Item("table", parts, surfaces=[(-d / 2, d / 2, -w / 2, w / 2, h)])


def _chair(cid, mat_seat, mat_leg, s, seat_h, back_h) -> _Item:
    t = 0.05
    parts = [_box(cid, mat_seat, (s, s, t), (0, 0, seat_h - t / 2)),
             _box(cid, mat_seat, (0.04, s, back_h - seat_h), (-s / 2 + 0.02, 0, seat_h + (back_h - seat_h) / 2))]
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append(_box(cid, mat_leg, (0.04, 0.04, seat_h - t),
                              (sx * (s / 2 - 0.03), sy * (s / 2 - 0.03), (seat_h - t) / 2)))
    return _Item("chair", parts)


def _sofa(cid, mat, w, d) -> _Item:
    arm = 0.18
    inner = w - 2 * arm
    parts = [_box(cid, mat, (d, inner, 0.42), (0, 0, 0.21)),
             _box(cid, mat, (0.22, inner, 0.82), (-d / 2 + 0.11, 0, 0.41))]
    for sy in (-1, 1):
        parts.append(_box(cid, mat, (d, arm, 0.62), (0, sy * (w / 2 - arm / 2), 0.31)))
    return _Item("sofa", parts)


def _bed(cid, m, length, width) -> _Item:
    parts = [_box(cid, m["wood_dark"], (length, width, 0.3), (0, 0, 0.15)),
             _box(cid, m["bed_cover"], (length - 0.1, width - 0.04, 0.2), (0.03, 0, 0.4)),
             _box(cid, m["wood_dark"], (0.06, width, 0.95), (-length / 2 + 0.03, 0, 0.475)),
             _box(cid, m["pillow"], (0.35, width * 0.7, 0.1), (-length / 2 + 0.3, 0, 0.55))]
    return _Item("bed", parts)


def _shelf(cid, mat, w, d, h, n_boards) -> _Item:
    t = 0.02
    parts = [_box(cid, mat, (d, t, h), (0, sy * (w / 2 - t / 2), h / 2)) for sy in (-1, 1)]
    inner_w = w - 2 * t
    parts.append(_box(cid, mat, (0.01, inner_w, h - t), (-d / 2 + 0.005, 0, (h - t) / 2)))
    parts.append(_box(cid, mat, (d, inner_w, t), (0, 0, h - t / 2)))
    plinth = 0.06
    parts.append(_box(cid, mat, (d, inner_w, plinth), (0, 0, plinth / 2)))
    levels = np.linspace(plinth, h - t, n_boards + 1)[:-1]
    surfaces = [(-d / 2 + 0.01, d / 2, -inner_w / 2, inner_w / 2, plinth)]
    for zb in levels[1:]:
        parts.append(_box(cid, mat, (d - 0.01, inner_w, t), (0.005, 0, zb - t / 2)))
        surfaces.append((-d / 2 + 0.01, d / 2, -inner_w / 2, inner_w / 2, float(zb)))
    item = _Item("shelf", parts, surfaces=surfaces)
    return item


def _cabinet(cid, mat, mat_handle, w, d, h) -> _Item:
    parts = [_box(cid, mat, (d, w, h), (0, 0, h / 2))]
    n_doors = 2 if w > 0.7 else 1
    for k in range(n_doors):
        y = (k - (n_doors - 1) / 2) * w / n_doors + (0.12 * w / n_doors if n_doors == 2 else 0.0) * (1 - 2 * k)
        parts.append(_box(cid, mat_handle, (0.02, 0.02, 0.12), (d / 2 + 0.01, y, h - 0.15)))
    return _Item("cabinet", parts, surfaces=[(-d / 2, d / 2, -w / 2, w / 2, h)])


def _tv(cid, m, w, h) -> _Item:
    parts = [_box(cid, m["plastic_black"], (0.2, 0.3, 0.02), (0, 0, 0.01)),
             _box(cid, m["plastic_black"], (0.04, 0.06, 0.07), (-0.02, 0, 0.055)),
             _box(cid, m["screen"], (0.06, w, h), (-0.02, 0, 0.09 + h / 2))]
    return _Item("tv", parts)


def _monitor(cid, m, w, h) -> _Item:
    parts = [_box(cid, m["plastic_black"], (0.16, 0.22, 0.015), (0, 0, 0.0075)),
             _box(cid, m["plastic_black"], (0.03, 0.05, 0.11), (-0.04, 0, 0.07)),
             _box(cid, m["screen"], (0.03, w, h), (-0.015, 0, 0.1 + h / 2))]
    return _Item("monitor", parts)


def _plant(cid, m, r_pot, h_pot, leaf_r, cone: bool) -> _Item:
    parts = [frustum_mesh(0.75 * r_pot, r_pot, h_pot, (0, 0, h_pot / 2), class_id=cid, instance_id=0,
                          material=m["pot"])]
    if cone:
        parts.append(frustum_mesh(leaf_r, 0.0, 3 * leaf_r, (0, 0, h_pot + 1.5 * leaf_r - 0.02), segments=12,
                                  class_id=cid, instance_id=0, material=m["foliage"]))
    else:
        parts.append(ellipsoid_mesh((leaf_r, leaf_r, 1.2 * leaf_r), (0, 0, h_pot + 1.1 * leaf_r), class_id=cid,
                                    instance_id=0, material=m["foliage"]))
    return _Item("plant", parts)


def _lamp(cid, m, base_r, pole_h, shade_r) -> _Item:
    parts = [cylinder_mesh(base_r, 0.03, (0, 0, 0.015), class_id=cid, instance_id=0, material=m["metal"]),
             cylinder_mesh(0.012, pole_h, (0, 0, 0.03 + pole_h / 2), segments=8, class_id=cid, instance_id=0,
                           material=m["metal"]),
             frustum_mesh(shade_r, 0.6 * shade_r, 1.2 * shade_r, (0, 0, 0.03 + pole_h), class_id=cid,
                          instance_id=0, material=m["shade"])]
    return _Item("lamp", parts)


def _cardbox(cid, m, ext) -> _Item:
    return _Item("box", [_box(cid, m["cardboard"], ext, (0, 0, ext[2] / 2))])


def _cup(cid, m, r, h) -> _Item:
    return _Item("cup", [cylinder_mesh(r, h, (0, 0, h / 2), segments=12, class_id=cid, instance_id=0,
                                       material=m["cup"]),
                         _box(cid, m["cup"], (0.012, 0.03, 0.5 * h), (0, r + 0.015, 0.5 * h))])


def _book(cid, mat, ext) -> _Item:
    return _Item("book", [_box(cid, mat, ext, (0, 0, ext[2] / 2))])


# --------------------------------------------------------------------------------------------------
# Groups: items in a frame with x pointing into the room from the wall (x = 0), y along the wall.


class _Builder:
    """Draws object sizes and assembles groups; holds the rng, palette and class ids."""

    def __init__(self, rng: np.random.Generator, pal: _Palette, labels: LabelSpace) -> None:
        self.rng, self.m, self.labels = rng, pal, labels

    def cid(self, name: str) -> int:
        return self.labels.id_of(name)

    def book_mat(self) -> int:
        return self.m[f"book{int(self.rng.integers(5))}"]

    def place_on(self, items: list[_Item], support: int, item: _Item, surface: int = 0, yaw: float | None = None,
                 x_range: tuple[float, float] | None = None, tries: int = 60) -> bool:
        """Drop ``item`` at a free random spot of a support's surface (supports have yaw 0 in the group)."""
        sup = items[support]
        x0, x1, y0, y1, z = sup.surfaces[surface]
        x0, x1, y0, y1 = x0 + sup.pose[0], x1 + sup.pose[0], y0 + sup.pose[1], y1 + sup.pose[1]
        if x_range is not None:
            x0, x1 = max(x0, sup.pose[0] + x_range[0]), min(x1, sup.pose[0] + x_range[1])
        zs = z + sup.pose[2]
        others = [o.group_aabb() for o in items if o.support == support and abs(o.pose[2] - zs) < 1e-9]
        for _ in range(tries):
            item.pose = np.array([0.0, 0.0, zs, self.rng.uniform(-0.4, 0.4) if yaw is None else yaw])
            lo, hi = item.group_aabb()
            hx, hy = (hi[:2] - lo[:2]) / 2
            if x1 - x0 < 2 * hx or y1 - y0 < 2 * hy:
                return False
            cx = self.rng.uniform(x0 + hx, x1 - hx)
            cy = self.rng.uniform(y0 + hy, y1 - hy)
            off = np.array([cx, cy]) - (lo[:2] + hi[:2]) / 2
            item.pose[:2] = off
            lo, hi = item.group_aabb()
            if all(np.any(lo[:2] > ohi[:2] + _ITEM_GAP_M) or np.any(hi[:2] < olo[:2] - _ITEM_GAP_M)
                   for olo, ohi in others):
                item.support = support
                items.append(item)
                return True
        return False

    def desk(self) -> list[_Item]:
        r = self.rng
        w, d, h = r.uniform(1.1, 1.4), r.uniform(0.6, 0.7), r.uniform(0.72, 0.76)
        desk = _table(self.cid("table"), self.m["wood_light"], self.m["metal"], w, d, h)
        desk.pose = np.array([_WALL_GAP_M + d / 2, 0.0, 0.0, 0.0])
        s = r.uniform(0.42, 0.47)
        chair = _chair(self.cid("chair"), self.m["sofa_light"] if r.random() < 0.5 else self.m["wood_dark"],
                       self.m["metal"], s, r.uniform(0.44, 0.47), r.uniform(0.85, 0.95))
        chair.pose = np.array([_WALL_GAP_M + d + 0.05 + s / 2, r.uniform(-0.2, 0.2) * (w - s), 0.0, np.pi])
        items = [desk, chair]
        mon = _monitor(self.cid("monitor"), self.m, r.uniform(0.5, 0.6), r.uniform(0.3, 0.35))
        self.place_on(items, 0, mon, yaw=0.0, x_range=(-d / 2, 0.0))
        self.place_on(items, 0, _cup(self.cid("cup"), self.m, r.uniform(0.035, 0.045), r.uniform(0.09, 0.11)))
        book = _book(self.cid("book"), self.book_mat(), (r.uniform(0.15, 0.2), r.uniform(0.21, 0.27),
                                                         r.uniform(0.02, 0.04)))
        self.place_on(items, 0, book)
        # A desk lamp and / or a small plant, at least one of them.
        lamp_first = bool(r.random() < 0.5)
        for k, kind in enumerate(("lamp", "plant") if lamp_first else ("plant", "lamp")):
            if k == 1 and r.random() < 0.5:
                break
            extra = _lamp(self.cid("lamp"), self.m, 0.07, r.uniform(0.3, 0.38), 0.08) if kind == "lamp" else \
                _plant(self.cid("plant"), self.m, r.uniform(0.05, 0.07), r.uniform(0.08, 0.12), r.uniform(0.07, 0.1),
                       bool(r.random() < 0.5))
            self.place_on(items, 0, extra, yaw=0.0)
        if r.random() < 0.7:
            # A box on the floor between the legs, under the top.
            bx, by = r.uniform(0.25, d - 0.16), r.uniform(0.25, min(0.45, w - 0.3))
            bz = r.uniform(0.2, min(0.4, h - 0.12))
            box = _cardbox(self.cid("box"), self.m, (bx, by, bz))
            ylim = w / 2 - 0.08 - by / 2
            box.pose = np.array([desk.pose[0], r.uniform(-ylim, ylim), 0.0, 0.0])
            items.append(box)
        return items

    def tv_stand(self) -> list[_Item]:
        r = self.rng
        w, d, h = r.uniform(1.2, 1.6), r.uniform(0.4, 0.48), r.uniform(0.45, 0.6)
        cab = _cabinet(self.cid("cabinet"), self.m["wood_dark"], self.m["metal"], w, d, h)
        cab.pose = np.array([_WALL_GAP_M + d / 2, 0.0, 0.0, 0.0])
        items = [cab]
        tv = _tv(self.cid("tv"), self.m, r.uniform(0.8, min(1.2, w - 0.3)), r.uniform(0.5, 0.65))
        tv.pose = np.array([cab.pose[0], 0.0, h, 0.0])
        tv.support = 0
        items.append(tv)
        extra = _plant(self.cid("plant"), self.m, 0.06, 0.1, 0.08, False) if r.random() < 0.5 else \
            _cardbox(self.cid("box"), self.m, (r.uniform(0.12, 0.18), r.uniform(0.1, 0.12), r.uniform(0.08, 0.15)))
        self.place_on(items, 0, extra)
        return items

    def shelf(self) -> list[_Item]:
        r = self.rng
        w, d, h = r.uniform(0.8, 1.0), r.uniform(0.3, 0.36), r.uniform(1.6, 1.9)
        n = int(r.integers(4, 6))
        sh = _shelf(self.cid("shelf"), self.m["wood_light"] if r.random() < 0.5 else self.m["wood_dark"], w, d, h, n)
        sh.pose = np.array([_WALL_GAP_M + d / 2, 0.0, 0.0, 0.0])
        items = [sh]
        spacing = sh.surfaces[1][4] - sh.surfaces[0][4] - 0.02
        board_ids = r.choice(np.arange(1, len(sh.surfaces)), size=2, replace=False)
        for k in board_ids:
            x0, x1, y0, y1, z = sh.surfaces[k]
            y = y0 + r.uniform(0.01, 0.12)
            for _ in range(int(r.integers(3, 7))):
                t_b = r.uniform(0.025, 0.05)
                ext = (r.uniform(0.14, min(0.2, x1 - x0 - 0.02)), t_b, r.uniform(0.17, min(0.26, spacing - 0.04)))
                if y + t_b + 0.005 > y1:
                    break
                book = _book(self.cid("book"), self.book_mat(), ext)
                book.pose = np.array([sh.pose[0] + x1 - ext[0] / 2 - 0.01, y + t_b / 2, z, 0.0])
                book.support = 0
                items.append(book)
                y += t_b + r.uniform(0.003, 0.01)
        free = [k for k in range(len(sh.surfaces)) if k not in board_ids]
        k = int(r.choice(free))
        box_h = min(r.uniform(0.12, 0.22), spacing - 0.04)
        box = _cardbox(self.cid("box"), self.m, (r.uniform(0.2, d - 0.04), r.uniform(0.2, 0.3), box_h))
        self.place_on(items, 0, box, surface=k, yaw=0.0)
        return items

    def cabinet(self) -> list[_Item]:
        r = self.rng
        w, d, h = r.uniform(0.6, 0.9), r.uniform(0.4, 0.5), r.uniform(0.75, 1.0)
        cab = _cabinet(self.cid("cabinet"), self.m["cabinet_paint"], self.m["metal"], w, d, h)
        cab.pose = np.array([_WALL_GAP_M + d / 2, 0.0, 0.0, 0.0])
        items = [cab]
        self.place_on(items, 0, _plant(self.cid("plant"), self.m, r.uniform(0.06, 0.08), r.uniform(0.1, 0.14),
                                       r.uniform(0.08, 0.11), bool(r.random() < 0.5)))
        book = _book(self.cid("book"), self.book_mat(), (r.uniform(0.15, 0.2), r.uniform(0.21, 0.27),
                                                         r.uniform(0.02, 0.04)))
        self.place_on(items, 0, book)
        return items

    def side_table(self) -> list[_Item]:
        r = self.rng
        s, h = r.uniform(0.45, 0.55), r.uniform(0.5, 0.6)
        tab = _table(self.cid("table"), self.m["wood_dark"], self.m["wood_dark"], s, s, h, top_t=0.03, leg=0.04)
        tab.pose = np.array([_WALL_GAP_M + s / 2, 0.0, 0.0, 0.0])
        items = [tab]
        if r.random() < 0.6:
            self.place_on(items, 0, _lamp(self.cid("lamp"), self.m, 0.07, r.uniform(0.3, 0.38), 0.09), yaw=0.0)
        else:
            self.place_on(items, 0, _plant(self.cid("plant"), self.m, r.uniform(0.06, 0.08), r.uniform(0.1, 0.14),
                                           r.uniform(0.08, 0.11), bool(r.random() < 0.5)))
        self.place_on(items, 0, _cup(self.cid("cup"), self.m, r.uniform(0.035, 0.045), r.uniform(0.09, 0.11)))
        return items

    def sofa(self, dark: bool) -> list[_Item]:
        r = self.rng
        w, d = r.uniform(1.6, 2.0), r.uniform(0.8, 0.9)
        sofa = _sofa(self.cid("sofa"), self.m["sofa_dark" if dark else "sofa_light"], w, d)
        sofa.pose = np.array([_WALL_GAP_M + d / 2, 0.0, 0.0, 0.0])
        return [sofa]

    def bed(self) -> list[_Item]:
        r = self.rng
        length, width = r.uniform(1.9, 2.0), r.uniform(0.85, 0.93)
        bed = _bed(self.cid("bed"), self.m, length, width)
        bed.pose = np.array([_WALL_GAP_M + width / 2, 0.0, 0.0, float(r.choice([-np.pi / 2, np.pi / 2]))])
        return [bed]

    def floor_lamp(self) -> list[_Item]:
        r = self.rng
        lamp = _lamp(self.cid("lamp"), self.m, 0.14, r.uniform(1.3, 1.5), r.uniform(0.17, 0.21))
        lamp.pose = np.array([_WALL_GAP_M + 0.22, 0.0, 0.0, 0.0])
        return [lamp]

    def floor_plant(self) -> list[_Item]:
        r = self.rng
        rp = r.uniform(0.12, 0.18)
        plant = _plant(self.cid("plant"), self.m, rp, r.uniform(0.25, 0.35), r.uniform(0.22, 0.3),
                       bool(r.random() < 0.4))
        lo, hi = plant.bounds()
        plant.pose = np.array([_WALL_GAP_M - lo[0], 0.0, 0.0, 0.0])
        return [plant]

    def boxes(self) -> list[_Item]:
        r = self.rng
        ext = (r.uniform(0.35, 0.5), r.uniform(0.35, 0.6), r.uniform(0.3, 0.45))
        low = _cardbox(self.cid("box"), self.m, ext)
        low.pose = np.array([_WALL_GAP_M + ext[0] / 2, 0.0, 0.0, 0.0])
        low.surfaces = [(-ext[0] / 2, ext[0] / 2, -ext[1] / 2, ext[1] / 2, ext[2])]
        items = [low]
        if r.random() < 0.6:
            top = _cardbox(self.cid("box"), self.m, (r.uniform(0.2, ext[0] - 0.05), r.uniform(0.2, ext[1] - 0.05),
                                                     r.uniform(0.15, 0.3)))
            self.place_on(items, 0, top, yaw=0.0)
        return items


# --------------------------------------------------------------------------------------------------
# Placement


@dataclass(frozen=True)
class _Wall:
    name: str
    origin: np.ndarray  # world xy of s = 0
    along: np.ndarray  # unit direction of increasing s
    inward: np.ndarray  # unit normal into the room
    length: float

    def yaw(self) -> float:
        return float(np.arctan2(self.inward[1], self.inward[0]))


def _walls(L: float, W: float) -> list[_Wall]:
    # Group frames have x = inward and y = z x x, so "along" is the group's +y.
    return [
        _Wall("south", np.array([L, 0.0]), np.array([-1.0, 0.0]), np.array([0.0, 1.0]), L),
        _Wall("east", np.array([L, W]), np.array([0.0, -1.0]), np.array([-1.0, 0.0]), W),
        _Wall("north", np.array([0.0, W]), np.array([1.0, 0.0]), np.array([0.0, -1.0]), L),
        _Wall("west", np.array([0.0, 0.0]), np.array([0.0, 1.0]), np.array([1.0, 0.0]), W),
    ]


@dataclass
class _Footprint:
    center: np.ndarray
    yaw: float
    extents: np.ndarray

    def corners(self) -> np.ndarray:
        return footprint_corners(self.center, self.yaw, self.extents)


def _group_bounds(items: list[_Item]) -> tuple[np.ndarray, np.ndarray]:
    bb = [it.group_aabb() for it in items]
    return np.min([b[0] for b in bb], axis=0), np.max([b[1] for b in bb], axis=0)


def _aabb(fp: _Footprint) -> np.ndarray:
    c = fp.corners()
    return np.concatenate([c.min(0), c.max(0)])


def _aabb_gaps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # Pairwise distances between axis-aligned rectangles (xmin, ymin, xmax, ymax); 0 when they meet.
    gx = np.maximum(np.maximum(a[:, None, 0] - b[None, :, 2], b[None, :, 0] - a[:, None, 2]), 0.0)
    gy = np.maximum(np.maximum(a[:, None, 1] - b[None, :, 3], b[None, :, 1] - a[:, None, 3]), 0.0)
    return np.hypot(gx, gy)


def _place_group(rng: np.random.Generator, items: list[_Item], walls: list[_Wall], room_xy: np.ndarray,
                 loop_pts: np.ndarray, placed: list[_Footprint], keep_out: list[_Footprint],
                 step: float = 0.05) -> tuple[np.ndarray, float] | None:
    """Choose a wall pose for a group; returns (world xy of the group origin, yaw) or None.

    Walls are axis-aligned and groups stand square to them, so every footprint is an axis-aligned
    rectangle ``(xmin, ymin, xmax, ymax)`` and all candidate positions are tested at once.
    """
    lo, hi = _group_bounds(items)
    mid_y = 0.5 * (lo[1] + hi[1])
    ext = np.array([hi[0], hi[1] - lo[1]])  # depth from the wall (x = 0), width along it
    placed_bb = np.array([_aabb(p) for p in placed]).reshape(-1, 4)
    keep_bb = np.array([_aabb(k) for k in keep_out]).reshape(-1, 4)
    cands, scores = [], []
    for wall in walls:
        yaw = wall.yaw()
        s = np.arange(ext[1] / 2 + 0.01, wall.length - ext[1] / 2 - 0.01 + 1e-9, step)
        if len(s) == 0:
            continue
        c_xy = wall.origin + np.outer(s, wall.along) + wall.inward * (ext[0] / 2)
        half = np.abs(np.array([[wall.inward[0], wall.along[0]], [wall.inward[1], wall.along[1]]])) @ (ext / 2)
        bb = np.concatenate([c_xy - half, c_xy + half], axis=1)  # (N, 4)
        ok = np.all(bb[:, :2] >= -1e-9, axis=1) & np.all(bb[:, 2:] <= room_xy + 1e-9, axis=1)
        # Distance from every loop point to every candidate rectangle.
        ok &= _aabb_gaps(bb, np.hstack([loop_pts, loop_pts])).min(axis=1) >= LOOP_CLEARANCE_M
        if len(keep_bb):
            inter = ((bb[:, None, 0] < keep_bb[None, :, 2]) & (keep_bb[None, :, 0] < bb[:, None, 2])
                     & (bb[:, None, 1] < keep_bb[None, :, 3]) & (keep_bb[None, :, 1] < bb[:, None, 3]))
            ok &= ~inter.any(axis=1)
        side = np.minimum(s - ext[1] / 2, wall.length - s - ext[1] / 2)
        slack = side
        if len(placed_bb):
            gap = _aabb_gaps(bb, placed_bb).min(axis=1)
            ok &= gap >= _GROUP_GAP_M
            # Prefer spots snug against a neighbour or a corner so that walls fill up densely.
            slack = np.minimum(side, gap)
        for k in np.flatnonzero(ok):
            cands.append((wall.origin + wall.along * (s[k] - mid_y), yaw))
            scores.append(slack[k])
    if not cands:
        return None
    w = np.exp(-np.asarray(scores) / 0.25)
    k = int(rng.choice(len(cands), p=w / w.sum()))
    return cands[k]


# --------------------------------------------------------------------------------------------------
# Room shell, door, window, lights


def _room_shell(L: float, W: float, H: float, labels: LabelSpace, pal: _Palette) -> TriangleMesh:
    f, w_, c = labels.id_of("floor"), labels.id_of("wall"), labels.id_of("ceiling")
    P = np.array
    quads = [
        (P([[0, 0, 0], [L, 0, 0], [L, W, 0], [0, W, 0]]), f, pal["floor"]),  # normal +z
        (P([[0, 0, H], [0, W, H], [L, W, H], [L, 0, H]]), c, pal["ceiling"]),  # normal -z
        (P([[0, 0, 0], [0, 0, H], [L, 0, H], [L, 0, 0]]), w_, pal["wall"]),  # south, normal +y
        (P([[0, W, 0], [L, W, 0], [L, W, H], [0, W, H]]), w_, pal["wall"]),  # north, normal -y
        (P([[0, 0, 0], [0, W, 0], [0, W, H], [0, 0, H]]), w_, pal["wall"]),  # west, normal +x
        (P([[L, 0, 0], [L, 0, H], [L, W, H], [L, W, 0]]), w_, pal["wall"]),  # east, normal -x
    ]
    return TriangleMesh.concatenate([quad_mesh(q.astype(float), class_id=k, instance_id=0, material=m)
                                     for q, k, m in quads])


def _wall_panel(wall: _Wall, s: float, z0: float, width: float, height: float, proud: float,
                class_id: int, material: int) -> TriangleMesh:
    yaw = wall.yaw()
    c_xy = wall.origin + wall.along * s + wall.inward * (proud / 2)
    return box_mesh((proud, width, height), (c_xy[0], c_xy[1], z0 + height / 2), yaw, class_id=class_id,
                    instance_id=0, material=material)


# --------------------------------------------------------------------------------------------------
# Public entry points


def generate_world(seed: int, *, with_person: bool = True, label_space: LabelSpace | None = None) -> World:
    """A furnished room for ``seed`` (deterministic). See :func:`build_scene`.

    Shape: -> World (static mesh with per-face class / instance / material, objects, relations).
    """
    return build_scene(seed, with_person=with_person, label_space=label_space).world


def build_scene(seed: int, *, with_person: bool = True, label_space: LabelSpace | None = None) -> GeneratedScene:
    """Generate the room, its furniture, relations and (optionally) a walking person.

    Raises ValueError when ``label_space`` lacks a class the generator needs.
    Shape: -> GeneratedScene.
    """
    labels = label_space if label_space is not None else load_label_space()
    needed = ["floor", "wall", "ceiling", "door", "window", "table", "chair", "sofa", "bed", "shelf", "cabinet",
              "tv", "monitor", "plant", "lamp", "box", "cup", "book"] + (["person"] if with_person else [])
    missing = [n for n in needed if n not in labels.names()]
    if missing:
        raise ValueError(f"label space {labels.name!r} lacks classes the simulator needs: {missing}")
    rng = np.random.default_rng(int(seed))
    L, W, H = rng.uniform(5.6, 7.0), rng.uniform(4.6, 6.0), rng.uniform(2.6, 3.0)
    room_min, room_max = np.zeros(3), np.array([L, W, H])
    loop = plan_camera_loop(room_min, room_max)
    pal = _make_palette(rng)
    walls = {w.name: w for w in _walls(L, W)}

    statics = [_room_shell(L, W, H, labels, pal)]
    keep_out: list[_Footprint] = []

    # Window on the south wall, above the person's walkway.
    win_w = rng.uniform(1.2, min(2.0, L - 2.4))
    win_s = rng.uniform(1.0 + win_w / 2, L - 1.0 - win_w / 2)
    win_z0, win_h = rng.uniform(0.85, 1.0), rng.uniform(1.1, min(1.4, H - 1.3))
    wid, wmat = labels.id_of("window"), pal["window"]
    statics.append(_wall_panel(walls["south"], win_s, win_z0, win_w, win_h, 0.015, wid, wmat))
    for dz, hh in ((-0.05, 0.05), (win_h, 0.05)):
        statics.append(_wall_panel(walls["south"], win_s, win_z0 + dz, win_w + 0.1, hh, 0.03, wid,
                                   pal["window_frame"]))
    statics.append(_wall_panel(walls["south"], win_s, win_z0, 0.05, win_h, 0.03, wid, pal["window_frame"]))

    # Door on the west or east wall with a clear area in front of it.
    door_wall = walls["west" if rng.random() < 0.5 else "east"]
    door_w, door_h = rng.uniform(0.8, 0.9), rng.uniform(2.0, 2.1)
    door_s = rng.uniform(0.15 + door_w / 2, door_wall.length - 0.15 - door_w / 2)
    did = labels.id_of("door")
    statics.append(_wall_panel(door_wall, door_s, 0.0, door_w, door_h, 0.03, did, pal["door"]))
    handle_s = door_s + (door_w / 2 - 0.1)
    statics.append(_wall_panel(door_wall, handle_s, 1.0, 0.12, 0.03, 0.08, did, pal["door_handle"]))
    door_c = door_wall.origin + door_wall.along * door_s + door_wall.inward * 0.45
    keep_out.append(_Footprint(door_c, door_wall.yaw(), np.array([0.9, door_w + 0.3])))

    # The person's walkway along the south wall, clear of the loop by construction. It is kept
    # free even without a person so that both variants of a seed share the same furniture.
    half = min(1.0, 0.5 * L - 1.6)
    walk = np.array([[0.5 * L - half, _PERSON_Y_M], [0.5 * L + half, _PERSON_Y_M]])
    if rng.random() < 0.5:
        walk = walk[::-1].copy()
    keep_out.append(_Footprint(np.array([0.5 * L, 0.5 * (_PERSON_Y_M + _PERSON_HALF_WIDTH_M)]), 0.0,
                               np.array([2 * (half + _PERSON_END_MARGIN_M), _PERSON_Y_M + _PERSON_HALF_WIDTH_M])))

    b = _Builder(rng, pal, labels)
    dark_first = bool(rng.random() < 0.5)
    plan = [b.bed, b.desk, b.desk, b.tv_stand, lambda: b.sofa(dark_first), b.cabinet, b.shelf, b.shelf,
            b.side_table, b.floor_plant, b.boxes, b.floor_lamp, b.floor_plant, b.boxes,
            lambda: b.sofa(not dark_first), b.cabinet]
    loop_pts = loop.points(360)
    placed: list[_Footprint] = []
    objects: list[SceneObject] = []
    meshes: list[TriangleMesh] = []
    part_boxes: dict[int, list[OrientedBox]] = {}
    fronts = set(FRONT_CLASSES)
    next_id = 1
    for make in plan:
        items = make()
        pose = _place_group(rng, items, list(walls.values()), np.array([L, W]), loop_pts, placed, keep_out)
        if pose is None:
            continue
        origin, gyaw = pose
        lo, hi = _group_bounds(items)
        T_wg = pose_matrix((origin[0], origin[1], 0.0), gyaw)
        fp_c = T_wg[:2, :2] @ (0.5 * (lo[:2] + hi[:2])) + origin
        placed.append(_Footprint(fp_c, gyaw, hi[:2] - lo[:2]))
        ids = list(range(next_id, next_id + len(items)))
        next_id += len(items)
        for it, iid in zip(items, ids):
            T_wo = T_wg @ pose_matrix(it.pose[:3], it.pose[3])
            yaw = float(np.arctan2(T_wo[1, 0], T_wo[0, 0]))
            mesh = transform_mesh(TriangleMesh.concatenate(it.parts), T_wo)
            mesh.face_instance[:] = iid
            meshes.append(mesh)
            olo, ohi = it.bounds()
            center = T_wo[:3, :3] @ (0.5 * (olo + ohi)) + T_wo[:3, 3]
            cid = labels.id_of(it.class_name)
            objects.append(SceneObject(
                instance_id=iid, class_id=cid, class_name=it.class_name, center_m=center, yaw_rad=yaw,
                extents_m=ohi - olo, front_local=np.array([1.0, 0.0, 0.0]) if it.class_name in fronts else None,
                support_id=None if it.support is None else ids[it.support]))
            boxes = []
            for part in it.parts:
                plo, phi = part.vertices.min(0), part.vertices.max(0)
                boxes.append(OrientedBox(T_wo[:3, :3] @ (0.5 * (plo + phi)) + T_wo[:3, 3], yaw, phi - plo))
            part_boxes[iid] = boxes

    person = None
    if with_person:
        # Walk through the middle of the camera loop when it is wide enough: the camera looks
        # inwards there, so the dynamic/private person is actually seen (the south walkway stays
        # reserved so both variants of a seed keep the same furniture).
        person_walk = walk
        a_loop, b_loop = loop.semi_axes_m
        clear = _PERSON_HALF_WIDTH_M + 0.35 + 0.3
        if b_loop >= clear and a_loop - _PERSON_END_MARGIN_M - 0.35 >= 0.8:
            half_mid = min(1.5, a_loop - _PERSON_END_MARGIN_M - 0.35)
            cx, cy = loop.center_xy
            person_walk = np.array([[cx - half_mid, cy], [cx + half_mid, cy]])
            if walk[0, 0] > walk[1, 0]:
                person_walk = person_walk[::-1].copy()
        person = WalkingPerson(person_walk[0].copy(), person_walk[1].copy(), instance_id=next_id,
                               class_id=labels.id_of("person"), skin_material=pal["skin"],
                               shirt_material=pal["shirt"], trousers_material=pal["trousers"])
    n_lights = int(rng.integers(1, 4))
    lights = np.array([[L * (k + 1) / (n_lights + 1), W * rng.uniform(0.35, 0.65), H - 0.05]
                       for k in range(n_lights)])

    def dynamic_mesh_at(t_s: float) -> TriangleMesh | None:
        return None if person is None else person.mesh_at(t_s)

    def dynamic_objects_at(t_s: float) -> list[SceneObject]:
        return [] if person is None else [person.object_at(t_s)]

    world = World(
        seed=int(seed),
        static_mesh=TriangleMesh.concatenate(statics + meshes),
        materials=list(pal.materials),
        objects=objects,
        relations=compute_relations(objects),
        room_min_m=room_min,
        room_max_m=room_max,
        light_positions_m=lights,
        dynamic_mesh_at=dynamic_mesh_at,
        dynamic_objects_at=dynamic_objects_at,
    )
    return GeneratedScene(world, part_boxes, loop, person_walk if with_person else None, person)
