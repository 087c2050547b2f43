"""Privacy filters for everything that leaves a node (the ``edge`` profile's outputs).

Classes marked ``is_private`` in the label space never appear in any output; with ``drop_dynamic``
(the default) dynamic classes are removed too. Meshes lose the vertices of those classes and every
triangle touching one; clouds lose those points; scene-graph dicts (full graphs and updates) lose
those objects and every relation, room membership and support-surface reference to them.
``drop_color`` zeroes all colors (geometry and labels only). The ``contains_private*`` helpers are
what the privacy tests assert with.
"""
from __future__ import annotations

import copy

import numpy as np

from .labels import LabelSpace
from .mapping.mapper import SemanticCloud
from .mapping.meshing import SemanticMesh

__all__ = ["excluded_class_mask", "anonymise_mesh", "anonymise_cloud", "scrub_scene_graph", "edge_outputs",
           "contains_private", "contains_private_mesh", "contains_private_cloud", "contains_private_graph"]


def excluded_class_mask(label_space: LabelSpace, drop_dynamic: bool = True) -> np.ndarray:
    """Boolean lookup table of the class ids to remove. Shape: (max_id + 1,)."""
    m = label_space.private_mask.copy()
    if drop_dynamic:
        m |= label_space.dynamic_mask
    return m


def _bad(class_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    ids = np.asarray(class_ids).astype(np.int64)
    ok = (ids >= 0) & (ids < len(mask))
    return ok & mask[np.clip(ids, 0, len(mask) - 1)]


def _bad_instances(instances: np.ndarray, instance_table, mask: np.ndarray) -> np.ndarray:
    # Map instances whose class is excluded: their voxels can carry another class (e.g. "unknown" at
    # the border of a fused person) while still holding the person's instance id.
    if not instance_table:
        return np.zeros(len(instances), dtype=bool)
    ids = []
    for inst in instance_table:
        cid = int(np.argmax(inst["class_votes"])) if isinstance(inst, dict) else int(inst.class_id)
        if 0 <= cid < len(mask) and mask[cid]:
            ids.append(int(inst["id"]) if isinstance(inst, dict) else int(inst.id))
    return np.isin(np.asarray(instances).astype(np.int64), np.asarray(ids, np.int64)) if ids else \
        np.zeros(len(instances), dtype=bool)


def anonymise_mesh(mesh: SemanticMesh, label_space: LabelSpace, drop_dynamic: bool = True,
                   drop_color: bool = False, instance_table: list | None = None) -> SemanticMesh:
    """Copy of ``mesh`` without private (and dynamic) vertices and their triangles.

    With ``instance_table`` (the mapper's ``instances()``), vertices of instances whose class is
    private (or dynamic) go too, whatever their own class. Vertices are re-indexed; unreferenced
    vertices are dropped; ``triangle_block`` / ``block_coords`` are kept consistent.
    Shape: a mesh with V vertices, F triangles -> V' <= V, F' <= F.
    """
    mask = excluded_class_mask(label_space, drop_dynamic)
    bad_v = _bad(mesh.classes, mask) | _bad_instances(mesh.instances, instance_table, mask)
    tri = np.asarray(mesh.triangles)
    keep_t = ~bad_v[tri].any(axis=1) if len(tri) else np.zeros(0, dtype=bool)
    tri = tri[keep_t]
    used = np.zeros(len(mesh.vertices), dtype=bool)
    used[tri.ravel()] = True
    used &= ~bad_v
    remap = np.full(len(mesh.vertices), -1, dtype=np.int64)
    remap[used] = np.arange(int(used.sum()))
    colors = np.asarray(mesh.colors)[used].copy()
    if drop_color:
        colors[:] = 0
    return SemanticMesh(vertices=np.asarray(mesh.vertices)[used].copy(), triangles=remap[tri], colors=colors,
                        classes=np.asarray(mesh.classes)[used].copy(), instances=np.asarray(mesh.instances)[used].copy(),
                        triangle_block=np.asarray(mesh.triangle_block)[keep_t].copy(),
                        block_coords=np.asarray(mesh.block_coords).copy())


def anonymise_cloud(cloud: SemanticCloud, label_space: LabelSpace, drop_dynamic: bool = True,
                    drop_color: bool = False, instance_table: list | None = None) -> SemanticCloud:
    """Copy of ``cloud`` without private (and dynamic) points (and, with ``instance_table``, the points
    of private / dynamic instances). Shape: N points -> N' <= N."""
    mask = excluded_class_mask(label_space, drop_dynamic)
    keep = ~(_bad(cloud.classes, mask) | _bad_instances(cloud.instances, instance_table, mask))
    colors = np.asarray(cloud.colors)[keep].copy()
    if drop_color:
        colors[:] = 0
    return SemanticCloud(points=np.asarray(cloud.points)[keep].copy(), colors=colors,
                         classes=np.asarray(cloud.classes)[keep].copy(), instances=np.asarray(cloud.instances)[keep].copy())


def _excluded_names(label_space: LabelSpace, drop_dynamic: bool) -> set[str]:
    m = excluded_class_mask(label_space, drop_dynamic)
    return {lab.name for lab in label_space.labels if m[lab.id]}


def _object_is_bad(o: dict, mask: np.ndarray, names: set[str]) -> bool:
    cid = o.get("class_id")
    if cid is not None and bool(_bad(np.array([cid]), mask)[0]):
        return True
    return o.get("class_name") in names


def scrub_scene_graph(graph_dict: dict, label_space: LabelSpace, drop_dynamic: bool = True) -> dict:
    """Copy of a scene-graph dict (full graph, ``"objects"``, or update, ``"changed"``) without
    private (and dynamic) objects or anything that refers to them. Objects flagged ``is_dynamic`` go
    too when ``drop_dynamic``."""
    d = copy.deepcopy(graph_dict)
    mask = excluded_class_mask(label_space, drop_dynamic)
    names = _excluded_names(label_space, drop_dynamic)
    gone: set[int] = set()
    for key in ("objects", "changed"):
        if key in d:
            kept = []
            for o in d[key]:
                bad = _object_is_bad(o, mask, names) or (drop_dynamic and bool(o.get("is_dynamic", False)))
                (gone.add(int(o["id"])) if bad else kept.append(o))
            d[key] = kept
    if "relations" in d:
        d["relations"] = [r for r in d["relations"] if r["subject_id"] not in gone and r["object_id"] not in gone]
    s = d.get("structure")
    if s:
        s["rooms"] = [dict(r, object_ids=[i for i in r.get("object_ids", []) if i not in gone])
                      for r in s.get("rooms", [])]
        surfaces = []
        for sf in s.get("support_surfaces", []):
            if sf.get("object_id") in gone or sf.get("class_name") in names:
                continue
            sf["occupied_by"] = [i for i in sf.get("occupied_by", []) if i not in gone]
            surfaces.append(sf)
        s["support_surfaces"] = surfaces
    return d


def edge_outputs(mesh: SemanticMesh, graph_dict: dict, label_space: LabelSpace, drop_color: bool = False,
                 instance_table: list | None = None) -> tuple[SemanticMesh, dict]:
    """What the ``edge`` profile publishes: the anonymised mesh (private and dynamic regions removed,
    optionally without color) and the scrubbed scene graph. No images, no clouds."""
    return (anonymise_mesh(mesh, label_space, drop_dynamic=True, drop_color=drop_color,
                           instance_table=instance_table),
            scrub_scene_graph(graph_dict, label_space, drop_dynamic=True))


def contains_private_mesh(mesh: SemanticMesh, label_space: LabelSpace, include_dynamic: bool = False) -> bool:
    return bool(_bad(mesh.classes, excluded_class_mask(label_space, include_dynamic)).any())


def contains_private_cloud(cloud: SemanticCloud, label_space: LabelSpace, include_dynamic: bool = False) -> bool:
    return bool(_bad(cloud.classes, excluded_class_mask(label_space, include_dynamic)).any())


def contains_private_graph(graph_dict: dict, label_space: LabelSpace, include_dynamic: bool = False) -> bool:
    """True when any object, relation end, room member or support surface names an excluded class,
    anywhere in the dict (also found by searching every string for the class names)."""
    mask = excluded_class_mask(label_space, include_dynamic)
    names = _excluded_names(label_space, include_dynamic)
    bad_ids: set[int] = set()
    for key in ("objects", "changed"):
        for o in graph_dict.get(key, []):
            if _object_is_bad(o, mask, names) or (include_dynamic and o.get("is_dynamic", False)):
                bad_ids.add(int(o["id"]))
    if bad_ids:
        return True

    def walk(x) -> bool:
        if isinstance(x, dict):
            return any(walk(v) for v in x.values())
        if isinstance(x, list):
            return any(walk(v) for v in x)
        return isinstance(x, str) and x in names

    return walk(graph_dict)


def contains_private(obj, label_space: LabelSpace, include_dynamic: bool = False) -> bool:
    """Dispatch on the output type: SemanticMesh, SemanticCloud, or a scene-graph dict."""
    if isinstance(obj, SemanticMesh):
        return contains_private_mesh(obj, label_space, include_dynamic)
    if isinstance(obj, SemanticCloud):
        return contains_private_cloud(obj, label_space, include_dynamic)
    if isinstance(obj, dict):
        return contains_private_graph(obj, label_space, include_dynamic)
    raise ValueError(f"contains_private: unsupported output type {type(obj).__name__}")
