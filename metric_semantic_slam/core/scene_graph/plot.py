"""Top-down PNG of a scene graph over the map (matplotlib, headless)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..labels import LabelSpace
from .boxes import footprint_corners
from .model import SceneGraph

__all__ = ["plot_scene_graph"]

_EDGE_STYLE = {"on": ("tab:orange", "-"), "under": ("tab:brown", "-"), "near": ("0.6", ":"),
               "in_front_of": ("tab:blue", "--"), "inside": ("tab:purple", "-")}


def plot_scene_graph(graph: SceneGraph, path: str | Path, label_space: LabelSpace,
                     points_m: np.ndarray | None = None, point_classes: np.ndarray | None = None,
                     predicates: tuple[str, ...] = ("on", "under", "in_front_of", "near"), title: str = "",
                     max_points: int = 60000) -> Path:
    """Draw the map points (gravity-frame x-y, colored by class), object boxes colored by class with
    ``id class`` labels and front arrows, room outlines, and relation edges of ``predicates``.

    Shape: points_m (N, 3) map frame; point_classes (N,) -> writes a PNG, returns its path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    R = graph.R_world_gravity
    lut = label_space.color_table().astype(np.float64) / 255.0
    fig, ax = plt.subplots(figsize=(10, 9), dpi=110)
    if points_m is not None and len(points_m):
        p = np.asarray(points_m, np.float64)
        step = max(1, len(p) // max_points)
        pg = p[::step] @ R
        if point_classes is not None:
            cc = np.clip(np.asarray(point_classes)[::step].astype(np.int64), 0, len(lut) - 1)
            col = 0.55 * lut[cc] + 0.45
        else:
            col = np.full((len(pg), 3), 0.7)
        order = np.argsort(pg[:, 2])  # higher points drawn last (seen from above)
        ax.scatter(pg[order, 0], pg[order, 1], s=1.0, c=col[order], linewidths=0, rasterized=True)
    for room in graph.structure.rooms:
        fp = np.vstack([room.footprint_xy, room.footprint_xy[:1]])
        ax.plot(fp[:, 0], fp[:, 1], color="k", lw=1.5)
    cen = {}
    for oid, o in sorted(graph.objects.items()):
        c_g = R.T @ o.box.center_m
        cen[oid] = c_g
        corners = footprint_corners(c_g[None], o.box.extents_m[None], np.array([o.box.yaw_rad]))[0]
        color = lut[o.class_id] if o.class_id < len(lut) else np.zeros(3)
        ax.fill(corners[:, 0], corners[:, 1], facecolor=(*color, 0.25), edgecolor=color, lw=1.5)
        ax.text(c_g[0], c_g[1], f"{oid} {o.class_name}", fontsize=6, ha="center", va="center")
        if o.front_world is not None:
            f = R.T @ o.front_world
            L = 0.5 * max(o.box.extents_m[:2].min(), 0.2)
            ax.arrow(c_g[0], c_g[1], f[0] * L, f[1] * L, width=0.01, color=color, length_includes_head=True)
    drawn = set()
    for r in graph.relations:
        if r.predicate not in predicates or r.subject_id not in cen or r.object_id not in cen:
            continue
        key = (r.predicate, min(r.subject_id, r.object_id), max(r.subject_id, r.object_id))
        if key in drawn:
            continue
        drawn.add(key)
        a, b = cen[r.subject_id], cen[r.object_id]
        col, ls = _EDGE_STYLE.get(r.predicate, ("k", "-"))
        ax.plot([a[0], b[0]], [a[1], b[1]], color=col, ls=ls, lw=1.0, alpha=0.8)
    handles = [plt.Line2D([], [], color=_EDGE_STYLE.get(p, ("k", "-"))[0], ls=_EDGE_STYLE.get(p, ("k", "-"))[1],
                          label=p) for p in predicates]
    ax.legend(handles=handles, loc="upper right", fontsize=7)
    ax.set_aspect("equal")
    ax.set_xlabel("x [m] (gravity frame)")
    ax.set_ylabel("y [m]")
    ax.set_title(title or f"scene graph: {len(graph.objects)} objects, {len(graph.relations)} relations, "
                          f"sequence {graph.sequence}")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out
