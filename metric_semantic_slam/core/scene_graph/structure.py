"""Structure layer from stuff-class points (gravity frame, z up): floor, ceiling, walls, one room,
support surfaces, and object front directions that need walls.

Walls are found under a Manhattan assumption: the room's dominant yaw is the smallest-area
rectangle of the wall points; wall planes are peaks of the wall points' histogram along the two
rectangle axes. Rooms: one room per graph, bounded by the outermost wall planes on each side (or the
floor points' rectangle when fewer walls are seen). Separating several rooms by free-space
segmentation is not implemented (documented limit in ``docs/scene_graph.md``).
"""
from __future__ import annotations

import numpy as np

from .boxes import fit_boxes, footprint_corners
from .config import SceneGraphConfig
from .model import Box, Plane, Room

__all__ = ["fit_structure", "estimate_fronts"]


def _horizontal_plane(kind: str, pid: int, pts_g: np.ndarray, sign: float, R: np.ndarray) -> Plane:
    h = float(np.median(pts_g[:, 2]))
    pts_w = pts_g @ R.T
    n_w = R @ np.array([0.0, 0.0, sign])
    # n . x = offset with n = sign * up: offset = sign * h.
    return Plane(pid, kind, n_w, sign * h, pts_w.min(0), pts_w.max(0), len(pts_g))


def fit_structure(points_g: dict[str, np.ndarray], config: SceneGraphConfig, R_world_gravity: np.ndarray
                  ) -> tuple[Plane | None, Plane | None, list[Plane], list[Room]]:
    """Floor, ceiling, walls and rooms.

    ``points_g`` maps ``floor``, ``ceiling``, ``wall`` to their points in the gravity frame (M, 3).
    Returns planes in the map frame and rooms in the gravity frame's x-y plane.
    """
    c = config
    R = R_world_gravity
    floor = ceiling = None
    f = points_g.get("floor", np.zeros((0, 3)))
    if len(f) >= c.plane_min_points:
        floor = _horizontal_plane("floor", 0, f, 1.0, R)
    ce = points_g.get("ceiling", np.zeros((0, 3)))
    if len(ce) >= c.plane_min_points:
        ceiling = _horizontal_plane("ceiling", 1, ce, -1.0, R)
    walls: list[Plane] = []
    w = points_g.get("wall", np.zeros((0, 3)))
    rect_pts = w if len(w) >= c.plane_min_points else f
    rooms: list[Room] = []
    if len(rect_pts) < c.plane_min_points:
        return floor, ceiling, walls, rooms
    cen, ext, yaw = fit_boxes(rect_pts, np.array([0]))
    yaw = float(yaw[0])
    axes = np.array([[np.cos(yaw), np.sin(yaw)], [-np.sin(yaw), np.cos(yaw)]])  # rows: room x, room y
    bounds = np.array([[-ext[0, 0] / 2, ext[0, 0] / 2], [-ext[0, 1] / 2, ext[0, 1] / 2]])
    if len(w) >= c.plane_min_points:
        local = (w[:, :2] - cen[0, :2]) @ axes.T
        bounds = np.array([[np.inf, -np.inf], [np.inf, -np.inf]])
        room_centre_local = np.zeros(2)
        for k in range(2):
            u = local[:, k]
            edges = np.arange(u.min() - c.wall_bin_m, u.max() + 2 * c.wall_bin_m, c.wall_bin_m)
            hist, edges = np.histogram(u, bins=edges)
            # A wall is a local maximum holding enough points.
            thr = max(c.plane_min_points // 2, int(0.1 * hist.max()))
            peaks = [i for i in range(len(hist)) if hist[i] >= thr and hist[i] == hist[max(0, i - 1):i + 2].max()]
            merged: list[int] = []
            for i in peaks:  # neighbouring equal bins are one peak
                if merged and i - merged[-1] <= 2:
                    if hist[i] > hist[merged[-1]]:
                        merged[-1] = i
                    continue
                merged.append(i)
            for i in merged:
                sel = np.abs(u - (edges[i] + edges[i + 1]) / 2) <= 1.5 * c.wall_bin_m
                pos = float(np.median(u[sel]))
                sign = 1.0 if pos < room_centre_local[k] else -1.0  # normal towards the room centre
                n_g = np.zeros(3)
                n_g[:2] = sign * axes[k]
                pts = w[sel]
                pts_w = pts @ R.T
                offset = float(np.median(pts @ n_g))
                walls.append(Plane(2 + len(walls), "wall", R @ n_g, offset, pts_w.min(0), pts_w.max(0), int(sel.sum())))
                bounds[k, 0] = min(bounds[k, 0], pos)
                bounds[k, 1] = max(bounds[k, 1], pos)
        for k in range(2):  # fewer than two walls on an axis: fall back to the points' extent
            if not bounds[k, 1] - bounds[k, 0] > c.wall_bin_m:
                bounds[k] = [local[:, k].min(), local[:, k].max()]
    corners_local = np.array([[bounds[0, 0], bounds[1, 0]], [bounds[0, 1], bounds[1, 0]],
                              [bounds[0, 1], bounds[1, 1]], [bounds[0, 0], bounds[1, 1]]])
    footprint = cen[0, :2] + corners_local @ axes
    floor_h = float(np.median(f[:, 2])) if len(f) else float(rect_pts[:, 2].min())
    ceil_h = float(np.median(ce[:, 2])) if len(ce) >= c.plane_min_points else None
    rooms.append(Room(0, "room_0", footprint, floor_h, ceil_h, []))
    return floor, ceiling, walls, rooms


def points_in_polygon(xy: np.ndarray, poly: np.ndarray, margin_m: float = 0.0) -> np.ndarray:
    """Points inside a convex counter-clockwise polygon grown by ``margin_m``. Shape: (N, 2), (P, 2) -> (N,)."""
    inside = np.ones(len(xy), dtype=bool)
    for i in range(len(poly)):
        a, b = poly[i], poly[(i + 1) % len(poly)]
        e = b - a
        n = np.array([e[1], -e[0]]) / max(np.linalg.norm(e), 1e-12)  # outward for ccw
        inside &= (xy - a) @ n <= margin_m
    return inside


def estimate_fronts(class_names: list[str], centres: np.ndarray, extents: np.ndarray, yaw_rad: np.ndarray,
                    top_offsets_xy: np.ndarray, walls_g: list[tuple[np.ndarray, float]], room_centre_xy: np.ndarray | None,
                    config: SceneGraphConfig) -> np.ndarray:
    """Horizontal front direction of each object whose class has one (NaN rows otherwise).

    1. Seating and beds (chair, sofa, bed): the back rest / head board is the tall part, so the
       front points away from where the object's highest points lie (``top_offsets_xy`` = mean x-y
       offset of the points in the top quarter of the box from the box centre), along the box axis
       that offset is most aligned with; used when the offset is clear (> 15% of the half extent).
    2. Otherwise (tv, monitor, cabinet, shelf, ...: furniture standing with a long side against a
       wall): along the box's short horizontal axis (either axis for footprints within 20% of square),
       away from the nearest wall parallel to that side within ``front_wall_max_m``; without such a
       wall, towards the room centre.

    Shape: centres (G, 3), extents (G, 3), yaw (G,), top_offsets_xy (G, 2); walls_g: (normal (3,) into
    the room, offset) in the gravity frame -> (G, 2).
    """
    G = len(class_names)
    out = np.full((G, 2), np.nan)
    if G == 0:
        return out
    front_set = set(config.front_classes)
    has_front = np.array([n in front_set for n in class_names], dtype=bool)
    backrest = has_front & np.array([n in ("chair", "sofa", "bed") for n in class_names], dtype=bool)
    c, s_ = np.cos(yaw_rad), np.sin(yaw_rad)
    axes = np.stack([np.stack([c, s_], 1), np.stack([-s_, c], 1)], axis=1)  # (G, 2 axes, 2)
    half = np.maximum(extents[:, :2] / 2, 1e-6)
    # 1. back rests / head boards: front = away from the top quarter's offset, along that box axis.
    off = np.einsum("gaj,gj->ga", axes, top_offsets_xy)
    rel = np.abs(off) / half
    k = np.argmax(rel, axis=1)
    g_idx = np.arange(G)
    use_back = backrest & (rel[g_idx, k] > 0.15)
    out[use_back] = (-np.sign(off[g_idx, k])[:, None] * axes[g_idx, k])[use_back]
    # 2. the rest: away from the nearest wall parallel to an allowed side, else towards the room centre.
    todo = has_front & ~use_back
    if not todo.any():
        return out
    elongated = extents[:, 0] > 1.2 * extents[:, 1]  # then only the short axis (box y) may face out
    want = np.full((G, 2), np.nan)
    if walls_g:
        n_w = np.array([n[:2] for n, _ in walls_g])
        off_w = np.array([o for _, o in walls_g])
        corners = footprint_corners(centres, extents, yaw_rad)
        # Distance of each box's nearest footprint corner from each wall plane. Shape: (G, W).
        wall_dist = np.einsum("gkj,wj->gkw", corners, n_w).min(axis=1) - off_w[None, :]
        align = np.abs(np.einsum("gaj,wj->gaw", axes, n_w))  # (G, 2, W)
        para = np.where(elongated[:, None], align[:, 1], align.max(axis=1)) > np.cos(np.deg2rad(30.0))
        dist = np.where(para, wall_dist, np.inf)
        w = np.argmin(dist, axis=1)
        near_wall = dist[g_idx, w] <= config.front_wall_max_m
        want[near_wall] = n_w[w[near_wall]]
    if room_centre_xy is not None:
        miss = ~np.isfinite(want).all(axis=1)
        to_c = np.asarray(room_centre_xy)[None, :] - centres[:, :2]
        want[miss] = to_c[miss]
    proj = np.einsum("gaj,gj->ga", axes, np.nan_to_num(want))
    k = np.where(elongated, 1, np.argmax(np.abs(proj), axis=1))
    pk = proj[g_idx, k]
    ok = todo & np.isfinite(want).all(axis=1) & (np.abs(pk) > 1e-9)
    out[ok] = (np.sign(pk)[:, None] * axes[g_idx, k])[ok]
    return out


def support_surface_box(centre: np.ndarray, extents: np.ndarray, yaw: float) -> Box:
    """The top face of a box as a flat box (gravity frame). Shape: (3,), (3,) -> Box."""
    top = centre.copy()
    top[2] = centre[2] + extents[2] / 2
    return Box(top, np.array([extents[0], extents[1], 0.0]), float(yaw))
