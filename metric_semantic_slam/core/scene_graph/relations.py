"""Spatial relations between object boxes (gravity frame, z up), vectorised over candidate pairs and
updated incrementally.

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

Cost: two boxes farther apart (horizontal centre distance) than the largest relation reach cannot
relate, so only *candidate pairs* found with a uniform grid are evaluated (all at once, numpy).
:class:`RelationIndex` keeps the relations between updates and re-evaluates only the pairs that touch
an object whose box, reference direction or container flag changed (plus the pairs whose ``on``
choice changed); the result equals a from-scratch :func:`compute_relations` on the same input.
"""
from __future__ import annotations

import functools

import numpy as np

from .boxes import footprint_corners, rect_gaps
from .config import SceneGraphConfig
from .model import PREDICATES, Relation

__all__ = ["compute_relations", "RelationIndex", "candidate_pairs", "directional_reach"]

# Predicate codes in string order, so that sorting by (subject, code, object) is the order of the
# ``Relation`` named tuples (subject, predicate, object).
_PRED_NAMES: tuple[str, ...] = tuple(sorted(PREDICATES))
_CODE = {p: i for i, p in enumerate(_PRED_NAMES)}
# Per-object state columns that relations depend on: centre (3), extents (3), yaw, reference
# direction (2, NaN when none), intrinsic front (0/1), container (0/1).
_STATE_COLS = 11
# Queries with (queried objects x all objects) up to this many distances skip the grid.
_DENSE_MAX = 60_000


def _score(margin, scale: float):
    # = np.clip(..., 0, 1) without its Python overhead (called for every predicate of every update)
    return np.minimum(np.maximum(0.5 + np.asarray(margin) / (2.0 * scale), 0.0), 1.0)


def candidate_pairs(xy: np.ndarray, half_diag: np.ndarray, config: SceneGraphConfig,
                    query: np.ndarray | None = None, reach_m: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Unordered index pairs (i < j) that may hold a relation, found with a uniform grid.

    A pair can relate only when its horizontal centre distance is within the longest directional
    range or the ``near`` reach (``near_m`` plus both half diagonals; this also covers ``on`` /
    ``under`` / ``inside``, which need one centre inside the other footprint). Cells are that reach
    wide, so the 3x3 cells around an object hold all its candidates. ``query`` (indices): only pairs
    with at least one object in it (None: all pairs). ``reach_m`` (G,): each object's own directional
    reach as a reference (:func:`directional_reach`); a pair's is the larger of its two (None: the
    longest range for every object).
    Shape: xy (G, 2), half_diag (G,) -> i (P,), j (P,) int64 sorted by (i, j).
    """
    G = len(xy)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    if G < 2 or (query is not None and len(query) == 0):
        return empty
    c = config
    if reach_m is None:
        reach_m = np.full(G, max(c.front_range_m, c.viewer_range_m, c.side_range_m))
    dir_reach = float(reach_m.max())
    eps = 1e-6
    nq = G if query is None else len(query)
    if nq * G <= _DENSE_MAX:
        # Few objects or a few queried ones: all distances at once cost less than the grid.
        q = np.arange(G) if query is None else np.unique(np.asarray(query, np.int64))
        d = np.hypot(xy[q, 0][:, None] - xy[None, :, 0], xy[q, 1][:, None] - xy[None, :, 1])
        ok = ((d <= np.maximum(reach_m[q][:, None], reach_m[None, :]) + eps)
              | (d - half_diag[q][:, None] - half_diag[None, :] < c.near_m + eps))
        ok[np.arange(len(q)), q] = False
        r, j = np.nonzero(ok)
        a, b = q[r], j
        u = np.unique(np.minimum(a, b) * G + np.maximum(a, b))
        return u // G, u % G
    cell = max(dir_reach, c.near_m + 2.0 * float(half_diag.max())) * (1 + 1e-9) + 1e-9
    ij = np.floor((xy - xy.min(axis=0)) / cell).astype(np.int64)
    ny = int(ij[:, 1].max()) + 3  # key stride: neighbour offsets never wrap into another column
    key = ij[:, 0] * ny + ij[:, 1]
    order = np.argsort(key, kind="stable")
    skey = key[order]
    q = np.arange(G) if query is None else np.unique(np.asarray(query, np.int64))
    qi_all, qj_all = [], []
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            nk = key[q] + dx * ny + dy
            lo = np.searchsorted(skey, nk, "left")
            hi = np.searchsorted(skey, nk, "right")
            n = hi - lo
            if not n.any():
                continue
            rep_q = np.repeat(q, n)
            # positions lo..hi-1 of every query, flattened
            pos = np.repeat(lo - np.cumsum(np.r_[0, n[:-1]]), n) + np.arange(int(n.sum()))
            qi_all.append(rep_q)
            qj_all.append(order[pos])
    if not qi_all:
        return empty
    a = np.concatenate(qi_all)
    b = np.concatenate(qj_all)
    i, j = np.minimum(a, b), np.maximum(a, b)
    keep = i != j
    i, j = i[keep], j[keep]
    u = np.unique(i * G + j)  # a pair of two queried objects is found from both sides
    i, j = u // G, u % G
    d = np.hypot(xy[i, 0] - xy[j, 0], xy[i, 1] - xy[j, 1])
    ok = (d <= np.maximum(reach_m[i], reach_m[j]) + eps) | (d - half_diag[i] - half_diag[j] < c.near_m + eps)
    return i[ok], j[ok]  # sorted by (i, j): np.unique sorted the keys


def directional_reach(intrinsic: np.ndarray, has_ref: np.ndarray, config: SceneGraphConfig) -> np.ndarray:
    """Largest centre distance at which an object is the reference of a directional relation:
    ``front_range_m`` with its own front, ``viewer_range_m`` towards the viewer, ``side_range_m`` for
    left / right; 0 without a reference direction. Shape: (G,), (G,) -> (G,)."""
    c = config
    r = np.maximum(np.where(intrinsic, c.front_range_m, c.viewer_range_m), c.side_range_m)
    return np.where(has_ref, r, 0.0)


class _Geometry:
    """Per-object derived quantities of the current state (gravity frame)."""

    def __init__(self, state: np.ndarray):
        self.centres = state[:, 0:3]
        self.extents = state[:, 3:6]
        self.yaw = state[:, 6]
        self.ref = state[:, 7:9]
        self.intrinsic = state[:, 9] > 0.5
        self.container = state[:, 10] > 0.5
        self.cos_y, self.sin_y = np.cos(self.yaw), np.sin(self.yaw)
        self.zmin = self.centres[:, 2] - self.extents[:, 2] / 2
        self.zmax = self.centres[:, 2] + self.extents[:, 2] / 2
        self.area = self.extents[:, 0] * self.extents[:, 1]
        self.vol = np.prod(self.extents, axis=1)
        self.half_diag = np.linalg.norm(self.extents[:, :2], axis=1) / 2
        self.has_ref = np.isfinite(self.ref).all(axis=1)

    def reach(self, config: SceneGraphConfig) -> np.ndarray:
        return directional_reach(self.intrinsic, self.has_ref, config)


def _pair_terms(g: _Geometry, a: np.ndarray, b: np.ndarray, tol: float):
    """Footprint and contact tests of ordered pairs (a relative to b). Shape: (P,) each."""
    dx = g.centres[a, 0] - g.centres[b, 0]
    dy = g.centres[a, 1] - g.centres[b, 1]
    cb, sb = g.cos_y[b], g.sin_y[b]
    lx = dx * cb + dy * sb
    ly = -dx * sb + dy * cb
    fp_margin = np.minimum(g.extents[b, 0] / 2 - np.abs(lx), g.extents[b, 1] / 2 - np.abs(ly))
    in_fp = fp_margin >= 0
    za, zb = g.zmin[a], g.zmin[b]
    on_cand = in_fp & (zb + tol < za) & (za <= g.zmax[b] + tol)
    return dx, dy, lx, ly, fp_margin, in_fp, on_cand


def _on_choice(g: _Geometry, a: np.ndarray, b: np.ndarray, on_cand: np.ndarray, tol: float, G: int):
    """Support of each object among its ``on`` candidates: a level top if any (smallest footprint,
    then lowest index), else the smallest footprint. Shape: ordered pairs (P,) -> choice (G,) index
    or -1, level (G,) bool (whether the pool was level tops)."""
    choice = np.full(G, -1, np.int64)
    level_any = np.zeros(G, dtype=bool)
    a, b = a[on_cand], b[on_cand]
    if len(a) == 0:
        return choice, level_any
    level = np.abs(g.zmax[b] - g.zmin[a]) <= tol
    level_any[a[level]] = True
    pool = level | ~level_any[a]
    a, b = a[pool], b[pool]
    o = np.lexsort((b, g.area[b], a))
    a, b = a[o], b[o]
    first = np.r_[True, a[1:] != a[:-1]]
    choice[a[first]] = b[first]
    return choice, level_any


def _evaluate_pairs(g: _Geometry, i: np.ndarray, j: np.ndarray, choice: np.ndarray, level_any: np.ndarray,
                    c: SceneGraphConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All relations of the unordered index pairs (i < j), both directions.

    Returns subject index, predicate code, object index, score arrays (unsorted)."""
    tol = c.contact_tol_m + c.box_tol_m
    n = len(i)
    a = np.concatenate([i, j])
    b = np.concatenate([j, i])
    rev = np.concatenate([np.arange(n, 2 * n), np.arange(n)])
    dx, dy, lx, ly, fp_margin, in_fp, on_cand = _pair_terms(g, a, b, tol)
    za, zb = g.zmin[a], g.zmin[b]
    xa, xb = g.zmax[a], g.zmax[b]
    dz_bottom = np.abs(za - zb)
    under = in_fp & ~on_cand & (dz_bottom <= tol) & (xa < xb - tol)
    chosen = choice[a] == b
    linked = under | under[rev] | chosen | chosen[rev]
    out_s, out_p, out_o, out_x = [], [], [], []

    def emit(mask, pred, score, subj=None, obj=None):
        k = np.nonzero(mask)[0]
        if len(k) == 0:
            return
        out_s.append((a if subj is None else subj)[k])
        out_o.append((b if obj is None else obj)[k])
        out_p.append(np.full(len(k), _CODE[pred], np.int64))
        out_x.append(np.asarray(score)[k] if np.ndim(score) else np.full(len(k), score))

    # on / supports
    s_on = _score(fp_margin, 0.05) * np.where(level_any[a], 1.0, 0.8)
    emit(chosen, "on", s_on)
    emit(chosen, "supports", s_on, subj=b, obj=a)
    # under
    m = np.minimum(np.minimum(fp_margin / 0.05, (xb - tol - xa) / 0.05), (tol - dz_bottom) / tol)
    emit(under, "under", _score(m, 1.0))
    # near (each unordered pair once: the first half, a = lower index)
    dist_xy = np.sqrt(dx * dx + dy * dy)  # = np.linalg.norm over (dx, dy)
    h = slice(0, n)
    hd = g.half_diag
    cand = (~linked[h] & (dz_bottom[h] <= c.level_tol_m + c.box_tol_m)
            & (dist_xy[h] - hd[i] - hd[j] < c.near_m))
    k = np.nonzero(cand)[0]
    if len(k):
        ai, bi = i[k], j[k]
        corners_a = footprint_corners(g.centres[ai], g.extents[ai], g.yaw[ai])
        corners_b = footprint_corners(g.centres[bi], g.extents[bi], g.yaw[bi])
        gxy = rect_gaps(corners_a, corners_b)
        gz = np.maximum(0.0, np.maximum(g.zmin[ai], g.zmin[bi]) - np.minimum(g.zmax[ai], g.zmax[bi]))
        gap = np.hypot(gxy, gz)
        ok = gap < c.near_m
        near_mask = np.zeros(2 * n, dtype=bool)
        near_mask[k[ok]] = True
        sc = np.zeros(2 * n)
        sc[k[ok]] = _score(c.near_m - gap[ok], c.near_m / 2)
        # ids are sorted like the indices, so the lower index is the smaller id
        emit(near_mask, "near", sc)
    # in_front_of / behind / left_of / right_of, relative to b's reference direction
    ref = g.ref[b]
    with np.errstate(invalid="ignore", divide="ignore"):
        cos_f = (dx * ref[:, 0] + dy * ref[:, 1]) / dist_xy
        # Left of b = up x front = (-f_y, f_x); for a viewer facing b (front = towards the viewer),
        # the viewer's left is b's right, so the relative frame flips the side.
        side_sign = np.where(g.intrinsic[b], 1.0, -1.0)
        cos_l = side_sign * (-dx * ref[:, 1] + dy * ref[:, 0]) / dist_xy
    free = ~linked & g.has_ref[b] & (dist_xy > 1e-6)
    cf, cs = np.cos(c.front_half_angle_rad), np.cos(c.side_half_angle_rad)
    front_range = np.where(g.intrinsic[b], c.front_range_m, c.viewer_range_m)
    front_ok = free & (dist_xy <= front_range)
    side_ok = free & (dist_xy <= c.side_range_m)
    with np.errstate(invalid="ignore"):
        emit(front_ok & (cos_f >= cf), "in_front_of", _score(cos_f - cf, 0.3))
        emit(front_ok & (cos_f <= -cf), "behind", _score(-cos_f - cf, 0.3))
        emit(side_ok & (cos_l >= cs), "left_of", _score(cos_l - cs, 0.3))
        emit(side_ok & (cos_l <= -cs), "right_of", _score(-cos_l - cs, 0.3))
    # inside: A's box (as an axis-aligned box in B's frame) mostly within B's box.
    z_ov = np.minimum(xa, xb) - np.maximum(za, zb)
    cand = in_fp & ~under & (z_ov > 0) & (g.vol[a] < g.vol[b]) & g.container[b]
    k = np.nonzero(cand)[0]
    if len(k):
        ak, bk = a[k], b[k]
        ea, eb = g.extents[ak], g.extents[bk]
        dyaw = g.yaw[ak] - g.yaw[bk]
        ca, sa = np.abs(np.cos(dyaw)), np.abs(np.sin(dyaw))
        hx = ca * ea[:, 0] / 2 + sa * ea[:, 1] / 2
        hy = sa * ea[:, 0] / 2 + ca * ea[:, 1] / 2
        lxk, lyk = lx[k], ly[k]
        ox = np.maximum(0.0, np.minimum(lxk + hx, eb[:, 0] / 2) - np.maximum(lxk - hx, -eb[:, 0] / 2))
        oy = np.maximum(0.0, np.minimum(lyk + hy, eb[:, 1] / 2) - np.maximum(lyk - hy, -eb[:, 1] / 2))
        share = ox * oy * z_ov[k] / np.maximum(4 * hx * hy * ea[:, 2], 1e-12)
        ok = share >= c.inside_share
        mask = np.zeros(2 * n, dtype=bool)
        mask[k[ok]] = True
        sc = np.zeros(2 * n)
        sc[k[ok]] = _score(share[ok] - c.inside_share, max(1 - c.inside_share, 1e-3))
        emit(mask, "inside", sc)
    if not out_s:
        z = np.zeros(0, np.int64)
        return z, z, z, np.zeros(0)
    return (np.concatenate(out_s), np.concatenate(out_p), np.concatenate(out_o),
            np.concatenate(out_x).astype(np.float64))


# Relation(*fields) without the Python-level named-tuple __new__ (thousands per full update).
_new_relation = functools.partial(tuple.__new__, Relation)


def _object_array(items: list) -> np.ndarray:
    return np.fromiter(items, dtype=object, count=len(items))


class RelationIndex:
    """Relations of the last update, kept for the next one (see the module docstring).

    ``update`` returns the ``Relation`` list (sorted by subject, predicate, object) and the matching
    relation dicts (``relations_to_dicts`` form). Both lists hold objects shared with later updates
    for the relations that did not change: treat them as read-only.
    """

    def __init__(self, config: SceneGraphConfig) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        self._ids = np.zeros(0, np.int64)
        self._state = np.zeros((0, _STATE_COLS))
        self._choice_id = np.zeros(0, np.int64)  # id of each object's ``on`` support, -1: none
        self._rs = np.zeros(0, np.int64)  # relations: subject id, predicate code, object id
        self._rp = np.zeros(0, np.int64)
        self._ro = np.zeros(0, np.int64)
        self._objs = np.zeros(0, dtype=object)  # Relation per relation
        self._dicts = np.zeros(0, dtype=object)  # its dict
        self._level = np.zeros(0, dtype=bool)
        self.last_pairs = 0  # pairs evaluated by the last update (for tests / benchmarks)

    def pairs(self, predicate: str) -> tuple[np.ndarray, np.ndarray]:
        """Subject and object ids of the last update's relations with ``predicate``, in relation order."""
        m = self._rp == _CODE[predicate]
        return self._rs[m], self._ro[m]

    @staticmethod
    def state(centres: np.ndarray, extents: np.ndarray, yaw_rad: np.ndarray, fronts_xy: np.ndarray,
              viewpoint_g: np.ndarray | None, is_container: np.ndarray | None) -> np.ndarray:
        """Per-object state rows the relations depend on. Shape: (G, 3), (G, 3), (G,), (G, 2) -> (G, 11)."""
        G = len(centres)
        has_front = np.isfinite(fronts_xy).all(axis=1)
        ref = np.where(has_front[:, None], fronts_xy, np.nan)
        if viewpoint_g is not None:
            to_viewer = np.asarray(viewpoint_g, np.float64)[None, :2] - centres[:, :2]
            n = np.linalg.norm(to_viewer, axis=1, keepdims=True)
            ok = (~has_front) & (n[:, 0] > 1e-6)
            ref[ok] = to_viewer[ok] / n[ok]
        container = np.zeros(G, dtype=bool) if is_container is None else np.asarray(is_container, dtype=bool)
        return np.column_stack([centres, extents, yaw_rad, ref, has_front.astype(np.float64),
                                container.astype(np.float64)])

    def update(self, ids: np.ndarray, state: np.ndarray, full: bool = False) -> tuple[list, list]:
        """Relations of objects ``ids`` (sorted ascending) with ``state`` rows (:meth:`state`).
        ``full``: re-evaluate every candidate pair (what a fresh index does)."""
        c = self.config
        tol = c.contact_tol_m + c.box_tol_m
        ids = np.asarray(ids, np.int64)
        G = len(ids)
        if G and np.any(ids[1:] <= ids[:-1]):
            raise ValueError("ids must be sorted ascending and unique")
        g = _Geometry(state)
        reach = g.reach(c)
        # Match to the previous objects; dirty = new or any state value changed (NaN == NaN).
        pos = np.searchsorted(self._ids, ids)
        pos_c = np.minimum(pos, max(len(self._ids) - 1, 0))
        known = (pos < len(self._ids)) & (self._ids[pos_c] == ids) if len(self._ids) else np.zeros(G, bool)
        dirty = ~known
        if known.any():
            old = self._state[pos_c[known]]
            new = state[known]
            same = ((old == new) | (np.isnan(old) & np.isnan(new))).all(axis=1)
            dirty[known] = ~same
        gone = ~np.isin(self._ids, ids)
        if full or not len(self._ids):
            dirty[:] = True
        dirty_idx = np.nonzero(dirty)[0]
        dirty_ids = np.concatenate([ids[dirty_idx], self._ids[gone]])
        # Pairs touching a dirty object.
        i, j = candidate_pairs(g.centres[:, :2], g.half_diag, c, reach_m=reach,
                               query=None if dirty.all() else dirty_idx)
        # ``on`` choices: of dirty objects, of those that a dirty object is now a candidate for, and of
        # those whose previous support changed or went away (removing a candidate that was not chosen
        # cannot change a choice).
        old_choice_id = np.full(G, -1, np.int64)
        old_choice_id[known] = self._choice_id[pos_c[known]]
        A = dirty.copy()
        A |= (old_choice_id >= 0) & np.isin(old_choice_id, dirty_ids)
        a2 = np.concatenate([i, j])
        b2 = np.concatenate([j, i])
        on_c = _pair_terms(g, a2, b2, tol)[6]
        A[a2[on_c & dirty[b2]]] = True
        choice = np.full(G, -1, np.int64)
        level_any = np.zeros(G, dtype=bool)
        if known.any():  # unchanged choices carry over (ids -> current indices)
            cid = old_choice_id
            cpos = np.searchsorted(ids, cid)
            cpos = np.minimum(cpos, max(G - 1, 0))
            valid = (cid >= 0) & (ids[cpos] == cid)
            choice = np.where(valid, cpos, -1)
        A_idx = np.nonzero(A)[0]
        if len(A_idx):
            # Candidates of the objects in A: those of the dirty ones are known already.
            extra_A = np.nonzero(A & ~dirty)[0]
            if len(extra_A):
                xi, xj = candidate_pairs(g.centres[:, :2], g.half_diag, c, reach_m=reach, query=extra_A)
                xa, xb = np.concatenate([xi, xj]), np.concatenate([xj, xi])
                a2 = np.concatenate([a2, xa])
                b2 = np.concatenate([b2, xb])
                on_c = np.concatenate([on_c, _pair_terms(g, xa, xb, tol)[6]])
            sel = A[a2] & on_c  # pairs of two objects in A appear twice: harmless for the choice
            ch, lv = _on_choice(g, a2[sel], b2[sel], np.ones(int(sel.sum()), dtype=bool), tol, G)
            choice[A_idx] = ch[A_idx]
            level_any[A_idx] = lv[A_idx]
        # level flags of objects outside A are unchanged: keep them
        if not A.all() and known.any():
            keepA = ~A & known
            level_any[keepA] = self._level[pos_c[keepA]]
        # Extra pairs: an object in A with its old and new support (the pair's ``linked`` flag and
        # the ``on`` relation itself).
        oc = np.minimum(np.searchsorted(ids, old_choice_id), max(G - 1, 0))
        old_valid = (old_choice_id >= 0) & (ids[oc] == old_choice_id) if G else np.zeros(0, bool)
        m_new = A & (choice >= 0)
        m_old = A & old_valid
        ea = np.concatenate([np.nonzero(m_new)[0], np.nonzero(m_old)[0]])
        eb = np.concatenate([choice[m_new], oc[m_old]])
        extra_keys = np.unique(np.minimum(ea, eb) * G + np.maximum(ea, eb))
        if len(extra_keys):
            u = np.union1d(i * G + j, extra_keys)
            i, j = u // G, u % G
        # Drop old relations of dirty / gone objects and of the re-evaluated extra pairs.
        keep = ~(np.isin(self._rs, dirty_ids) | np.isin(self._ro, dirty_ids))
        if len(extra_keys) and keep.any():
            si = np.searchsorted(ids, self._rs[keep])  # kept relations touch present objects only
            oi = np.searchsorted(ids, self._ro[keep])
            rk = np.minimum(si, oi) * G + np.maximum(si, oi)
            keep[keep] = ~np.isin(rk, extra_keys)
        s, p, o, x = _evaluate_pairs(g, i, j, choice, level_any, c)
        s_id, o_id = ids[s], ids[o]
        names = [_PRED_NAMES[k] for k in p.tolist()]
        new_objs = list(map(_new_relation, zip(s_id.tolist(), names, o_id.tolist(), x.tolist())))
        new_dicts = [{"subject_id": r[0], "predicate": r[1], "object_id": r[2], "score": r[3]} for r in new_objs]
        rs = np.concatenate([self._rs[keep], s_id])
        rp = np.concatenate([self._rp[keep], p])
        ro = np.concatenate([self._ro[keep], o_id])
        objs = np.concatenate([self._objs[keep], _object_array(new_objs)])
        dicts = np.concatenate([self._dicts[keep], _object_array(new_dicts)])
        M = int(max(rs.max(initial=0), ro.max(initial=0))) + 1
        if len(_PRED_NAMES) * M * M < 2 ** 62:
            # One key (subject, predicate, object); the kept relations are sorted already, so the
            # stable sort (timsort) mostly merges two runs.
            order = np.argsort((rs * len(_PRED_NAMES) + rp) * M + ro, kind="stable")
        else:
            order = np.lexsort((ro, rp, rs))
        self._rs, self._rp, self._ro = rs[order], rp[order], ro[order]
        self._objs, self._dicts = objs[order], dicts[order]
        self._ids, self._state = ids.copy(), state.copy()
        self._choice_id = np.where(choice >= 0, ids[np.maximum(choice, 0)], -1) if G else np.zeros(0, np.int64)
        self._level = level_any
        self.last_pairs = len(i)
        return self._objs.tolist(), self._dicts.tolist()


def compute_relations(ids: np.ndarray, centres: np.ndarray, extents: np.ndarray, yaw_rad: np.ndarray,
                      fronts_xy: np.ndarray, config: SceneGraphConfig,
                      viewpoint_g: np.ndarray | None = None, is_container: np.ndarray | None = None
                      ) -> list[Relation]:
    """All relations between the boxes (gravity frame), from scratch.

    ``is_container`` marks the objects that can hold others (``inside`` is only tested against those;
    None: none).
    Shape: ids (G,) int; centres (G, 3); extents (G, 3); yaw_rad (G,); fronts_xy (G, 2) unit facing
    directions, NaN where an object has none; viewpoint_g (3,) or None; is_container (G,) bool ->
    list of Relation sorted by (subject, predicate, object).
    """
    ids = np.asarray(ids, dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    state = RelationIndex.state(centres, extents, yaw_rad, fronts_xy, viewpoint_g, is_container)[order]
    return RelationIndex(config).update(ids[order], state)[0]
