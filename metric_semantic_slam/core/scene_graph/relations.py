"""Spatial relations between object boxes (vectorised over all pairs; gravity frame, z up).

The definitions follow the simulator's ground truth (``sim/scene.py: compute_relations``) with the
contact tolerance widened by ``box_tol_m`` for measured boxes:

- ``A on B``: A's footprint centre is inside B's footprint and ``zmin_B + tol < zmin_A <= zmax_B + tol``
  (A rests on B's top or an inner board). Several candidates: the one whose top is level with A's
  bottom, else the smallest footprint. ``B supports A`` is added as the inverse.
- ``A under B``: A's footprint centre is inside B's footprint, bottoms within ``tol`` and A's top below
  B's top by more than ``tol`` (and A is not on anything in B).
- ``A near B``: not on / under each other, bottoms within ``level_tol_m + box_tol_m``, box gap
  (horizontal footprint gap and vertical gap, combined) below ``near_m``; stored once, smaller id first.
- ``A in_front_of B`` / ``A behind B``: B has a front direction f; the horizontal direction from B's
  centre to A's is within ``front_half_angle_rad`` of f (or of -f) and at most ``front_range_m`` away.
  When B has no front and a ``viewpoint`` is given, "front" is the direction from B towards the viewer
  (A is between the viewer and B), within ``viewer_range_m``.
- ``A left_of B`` / ``A right_of B``: in B's own frame when B has a front (B's left = up x front),
  otherwise as seen from the viewpoint; within ``side_half_angle_rad`` and ``side_range_m``.
- ``A inside B``: B is a container class (shelf, cabinet, box), at least ``inside_share`` of A's box
  volume lies in B's box and A is not under B (a book on a shelf board is both ``on`` and ``inside``).

Scores: each relation holds when some margins are positive; the score is ``clip(0.5 + m / (2 s))``
of the smallest margin m over its scale s, so 0.5 at the decision boundary and 1 well inside it.
"""
from __future__ import annotations

import numpy as np

from .boxes import footprint_corners, rect_gaps
from .config import SceneGraphConfig
from .model import Relation

__all__ = ["compute_relations"]


def _score(margin, scale: float):
    return np.clip(0.5 + np.asarray(margin) / (2.0 * scale), 0.0, 1.0)


def compute_relations(ids: np.ndarray, centres: np.ndarray, extents: np.ndarray, yaw_rad: np.ndarray,
                      fronts_xy: np.ndarray, config: SceneGraphConfig,
                      viewpoint_g: np.ndarray | None = None, is_container: np.ndarray | None = None
                      ) -> list[Relation]:
    """All relations between the boxes (gravity frame).

    ``is_container`` marks the objects that can hold others (``inside`` is only tested against those;
    None: none).
    Shape: ids (G,) int; centres (G, 3); extents (G, 3); yaw_rad (G,); fronts_xy (G, 2) unit facing
    directions, NaN where an object has none; viewpoint_g (3,) or None; is_container (G,) bool ->
    list of Relation sorted by (subject, predicate, object).
    """
    ids = np.asarray(ids, dtype=np.int64)
    G = len(ids)
    if G < 2:
        return []
    c = config
    tol = c.contact_tol_m + c.box_tol_m
    zmin = centres[:, 2] - extents[:, 2] / 2
    zmax = centres[:, 2] + extents[:, 2] / 2
    cos_y, sin_y = np.cos(yaw_rad), np.sin(yaw_rad)
    # d[a, b] = centre of a minus centre of b; local[a, b] = that in b's box frame.
    d = centres[:, None, :2] - centres[None, :, :2]
    lx = d[..., 0] * cos_y[None] + d[..., 1] * sin_y[None]
    ly = -d[..., 0] * sin_y[None] + d[..., 1] * cos_y[None]
    fp_margin = np.minimum(extents[None, :, 0] / 2 - np.abs(lx), extents[None, :, 1] / 2 - np.abs(ly))
    eye = np.eye(G, dtype=bool)
    in_fp = (fp_margin >= 0) & ~eye
    on_cand = in_fp & (zmin[None, :] + tol < zmin[:, None]) & (zmin[:, None] <= zmax[None, :] + tol)
    under = in_fp & ~on_cand & (np.abs(zmin[:, None] - zmin[None, :]) <= tol) & (zmax[:, None] < zmax[None, :] - tol)
    area = extents[:, 0] * extents[:, 1]
    rels: list[Relation] = []
    linked = under | under.T
    for a in np.nonzero(on_cand.any(axis=1))[0]:
        cand = np.nonzero(on_cand[a])[0]
        level = cand[np.abs(zmax[cand] - zmin[a]) <= tol]
        pool = level if len(level) else cand
        b = pool[np.argmin(area[pool])]
        s = float(_score(fp_margin[a, b], 0.05)) * (1.0 if len(level) else 0.8)
        rels.append(Relation(int(ids[a]), "on", int(ids[b]), s))
        rels.append(Relation(int(ids[b]), "supports", int(ids[a]), s))
        linked[a, b] = linked[b, a] = True
    for a, b in zip(*np.nonzero(under)):
        m = min(fp_margin[a, b] / 0.05, (zmax[b] - tol - zmax[a]) / 0.05, (tol - abs(zmin[a] - zmin[b])) / tol)
        rels.append(Relation(int(ids[a]), "under", int(ids[b]), float(_score(m, 1.0))))

    # near: cheap bound first (centre distance minus half diagonals), exact rectangle gap on the rest.
    level_ok = np.abs(zmin[:, None] - zmin[None, :]) <= c.level_tol_m + c.box_tol_m
    half_diag = np.linalg.norm(extents[:, :2], axis=1) / 2
    dist_xy = np.linalg.norm(d, axis=-1)
    upper = np.triu(np.ones((G, G), dtype=bool), 1)
    cand = upper & ~linked & level_ok & (dist_xy - half_diag[:, None] - half_diag[None, :] < c.near_m)
    ai, bi = np.nonzero(cand)
    if len(ai):
        corners = footprint_corners(centres, extents, yaw_rad)
        gxy = rect_gaps(corners[ai], corners[bi])
        gz = np.maximum(0.0, np.maximum(zmin[ai], zmin[bi]) - np.minimum(zmax[ai], zmax[bi]))
        gap = np.hypot(gxy, gz)
        ok = gap < c.near_m
        ia, ib = ids[ai[ok]], ids[bi[ok]]
        sc = _score(c.near_m - gap[ok], c.near_m / 2).tolist()
        rels.extend(Relation(lo, "near", hi, x) for lo, hi, x in
                    zip(np.minimum(ia, ib).tolist(), np.maximum(ia, ib).tolist(), sc))

    # Reference directions per object b: own front, or towards the viewer.
    has_front = np.isfinite(fronts_xy).all(axis=1)
    ref = np.where(has_front[:, None], fronts_xy, np.nan)
    intrinsic = has_front.copy()
    if viewpoint_g is not None:
        to_viewer = np.asarray(viewpoint_g, np.float64)[None, :2] - centres[:, :2]
        n = np.linalg.norm(to_viewer, axis=1, keepdims=True)
        ok = (~has_front) & (n[:, 0] > 1e-6)
        ref[ok] = to_viewer[ok] / n[ok]
    has_ref = np.isfinite(ref).all(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos_f = (d[..., 0] * ref[None, :, 0] + d[..., 1] * ref[None, :, 1]) / dist_xy
        # Left of b = up x front = (-f_y, f_x); for a viewer facing b (front = towards the viewer),
        # the viewer's left is b's right, so the relative frame flips the side.
        side_sign = np.where(intrinsic, 1.0, -1.0)
        cos_l = side_sign[None, :] * (-d[..., 0] * ref[None, :, 1] + d[..., 1] * ref[None, :, 0]) / dist_xy
    free = ~linked & ~eye & has_ref[None, :] & (dist_xy > 1e-6)
    cf, cs = np.cos(c.front_half_angle_rad), np.cos(c.side_half_angle_rad)
    front_range = np.where(intrinsic, c.front_range_m, c.viewer_range_m)
    front_ok = free & (dist_xy <= front_range[None, :])
    side_ok = free & (dist_xy <= c.side_range_m)
    for pred, mask, margin in (("in_front_of", front_ok & (cos_f >= cf), cos_f - cf),
                               ("behind", front_ok & (cos_f <= -cf), -cos_f - cf),
                               ("left_of", side_ok & (cos_l >= cs), cos_l - cs),
                               ("right_of", side_ok & (cos_l <= -cs), -cos_l - cs)):
        ai, bi = np.nonzero(mask)
        sc = _score(margin[ai, bi], 0.3).tolist()
        rels.extend(Relation(s_, pred, o_, x) for s_, o_, x in zip(ids[ai].tolist(), ids[bi].tolist(), sc))

    # inside: A's box (as an axis-aligned box in B's frame) mostly within B's box.
    vol = np.prod(extents, axis=1)
    z_ov = np.minimum(zmax[:, None], zmax[None, :]) - np.maximum(zmin[:, None], zmin[None, :])
    container = np.zeros(G, dtype=bool) if is_container is None else np.asarray(is_container, dtype=bool)
    cand = in_fp & ~under & (z_ov > 0) & (vol[:, None] < vol[None, :]) & container[None, :]
    for a, b in zip(*np.nonzero(cand)):
        dyaw = yaw_rad[a] - yaw_rad[b]
        hx = abs(np.cos(dyaw)) * extents[a, 0] / 2 + abs(np.sin(dyaw)) * extents[a, 1] / 2
        hy = abs(np.sin(dyaw)) * extents[a, 0] / 2 + abs(np.cos(dyaw)) * extents[a, 1] / 2
        ox = max(0.0, min(lx[a, b] + hx, extents[b, 0] / 2) - max(lx[a, b] - hx, -extents[b, 0] / 2))
        oy = max(0.0, min(ly[a, b] + hy, extents[b, 1] / 2) - max(ly[a, b] - hy, -extents[b, 1] / 2))
        share = ox * oy * z_ov[a, b] / max(4 * hx * hy * extents[a, 2], 1e-12)
        if share >= c.inside_share:
            rels.append(Relation(int(ids[a]), "inside", int(ids[b]),
                                 float(_score(share - c.inside_share, max(1 - c.inside_share, 1e-3)))))
    rels.sort()  # named tuples order by (subject, predicate, object)
    return rels
