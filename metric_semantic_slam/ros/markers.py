"""visualization_msgs/MarkerArray builders: the semantic mesh per block, and the scene graph.

Speed (DESIGN.md §5): a ``Marker`` whose ``points`` / ``colors`` are filled with Python ``Point`` /
``ColorRGBA`` objects costs ~6 us a vertex (200k vertices: ~1.2 s to build and serialize here). This
module never builds them. :func:`serialize_marker_array` lets rclpy serialize the array with ONE
placeholder point and color per marker (unique sentinel values), then splices the numpy bytes of the
real points and colors in place of each placeholder and patches the sequence lengths. A point is 24
bytes and a color 16, both multiples of 8, so every byte after a splice keeps its CDR alignment and
the result is exactly what rclpy would have produced. Publish it with ``publisher.publish(raw_bytes)``
(rclpy's raw publish); :func:`marker_array_message` deserializes it when an object is needed (tests).

Mesh markers: one TRIANGLE_LIST marker per map block, keyed (namespace, id) by the block coordinate,
so RViz replaces a block's marker when the block is re-meshed; a block that lost its triangles or was
evicted gets a DELETE; a full republish starts with DELETEALL.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..core.labels import LabelSpace
from ..core.mapping import SemanticMesh

__all__ = ["ARROW", "CUBE", "SPHERE", "LINE_LIST", "TEXT_VIEW_FACING", "TRIANGLE_LIST", "ADD", "DELETE",
           "DELETEALL", "MESH_COLOR_MODES", "MarkerSpec", "serialize_marker_array", "marker_array_message",
           "block_marker_keys", "mesh_block_markers", "scene_graph_markers", "PREDICATE_COLORS"]

# visualization_msgs/Marker constants
ARROW, CUBE, SPHERE, LINE_LIST, TEXT_VIEW_FACING, TRIANGLE_LIST = 0, 1, 2, 5, 9, 11
ADD, DELETE, DELETEALL = 0, 2, 3

MESH_COLOR_MODES: tuple[str, ...] = ("rgb", "class", "instance", "gray")

# 10 bits a block axis in one int32 id; blocks beyond +-512 go to another namespace (no collisions).
_ID_BITS = 10
_ID_HALF = 1 << (_ID_BITS - 1)
_ID_MASK = (1 << _ID_BITS) - 1

# Placeholder values: a point (A, i, B) and a color (C, D, i, E) marks marker i's sequences.
_SENT_P = (-7.77e-291, 3.33e-287)
_SENT_C = (-1.17e-37, 2.71e-37, 3.9e-38)


@dataclass
class MarkerSpec:
    """One Marker, ROS-free.

    Shape: points (N, 3) float meters (frame of the array); colors (N, 4) float RGBA in [0, 1] or None;
    position (3,); quaternion_xyzw (4,); scale (3,); color (4,) RGBA in [0, 1].
    """

    ns: str
    id: int
    type: int = TRIANGLE_LIST
    action: int = ADD
    points: np.ndarray | None = None
    colors: np.ndarray | None = None
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    quaternion_xyzw: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)
    scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    color: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    text: str = ""


def _template_marker(spec: MarkerSpec, index: int, frame_id: str, stamp: object):
    from geometry_msgs.msg import Point
    from std_msgs.msg import ColorRGBA
    from visualization_msgs.msg import Marker

    m = Marker(ns=spec.ns, id=int(spec.id), type=int(spec.type), action=int(spec.action), text=spec.text)
    m.header.frame_id = frame_id
    if stamp is not None:
        m.header.stamp = stamp
    m.pose.position.x, m.pose.position.y, m.pose.position.z = (float(v) for v in spec.position)
    q = m.pose.orientation
    q.x, q.y, q.z, q.w = (float(v) for v in spec.quaternion_xyzw)
    m.scale.x, m.scale.y, m.scale.z = (float(v) for v in spec.scale)
    m.color.r, m.color.g, m.color.b, m.color.a = (float(v) for v in spec.color)
    if spec.points is not None and len(spec.points):
        m.points = [Point(x=_SENT_P[0], y=float(index), z=_SENT_P[1])]
        if spec.colors is not None:
            m.colors = [ColorRGBA(r=_SENT_C[0], g=_SENT_C[1], b=float(index), a=_SENT_C[2])]
    return m


def _check_spec(spec: MarkerSpec) -> tuple[np.ndarray | None, np.ndarray | None]:
    if spec.points is None or len(spec.points) == 0:
        return None, None
    pts = np.asarray(spec.points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"marker {spec.ns}/{spec.id}: points must be (N, 3), got {pts.shape}")
    cols = None
    if spec.colors is not None:
        cols = np.asarray(spec.colors, dtype=np.float32)
        if cols.shape != (len(pts), 4):
            raise ValueError(f"marker {spec.ns}/{spec.id}: colors must be ({len(pts)}, 4), got {cols.shape}")
    return pts, cols


def serialize_marker_array(specs: Sequence[MarkerSpec], frame_id: str = "map", stamp: object | None = None) -> bytes:
    """CDR bytes of a ``visualization_msgs/MarkerArray`` of ``specs`` (publish with ``publisher.publish(bytes)``).

    ``stamp`` is a builtin_interfaces Time (None: zero). Raises ValueError for malformed specs.
    """
    from rclpy.serialization import serialize_message
    from visualization_msgs.msg import MarkerArray

    arrays = [_check_spec(s) for s in specs]
    template = serialize_message(MarkerArray(markers=[_template_marker(s, i, frame_id, stamp)
                                                      for i, s in enumerate(specs)]))
    # Encapsulation header: byte 1 odd = little endian (CDR_LE / PL_CDR_LE / CDR2_LE ...).
    little = bool(template[1] & 1)
    e = "<" if little else ">"
    chunks: list[bytes] = []
    pos = 0  # bytes of the template copied so far

    def splice(pattern: bytes, payload: bytes, n: int, search_from: int) -> int:
        nonlocal pos
        at = template.find(pattern, search_from)
        if at < 0:
            raise RuntimeError("marker placeholder not found in the serialized template")
        # The uint32 sequence length (=1) sits right before the element, or before 4 padding bytes.
        one = struct.pack(e + "I", 1)
        length_at = at - 4 if template[at - 4:at] == one else at - 8
        if template[length_at:length_at + 4] != one:
            raise RuntimeError("unexpected CDR layout around a marker placeholder")
        chunks.append(template[pos:length_at])
        chunks.append(struct.pack(e + "I", n))
        chunks.append(template[length_at + 4:at])
        chunks.append(payload)
        pos = at + len(pattern)
        return pos

    cursor = 0
    for i, (pts, cols) in enumerate(arrays):
        if pts is None:
            continue
        p_pat = np.array([_SENT_P[0], float(i), _SENT_P[1]], dtype=e + "f8").tobytes()
        cursor = splice(p_pat, pts.astype(e + "f8", copy=False).tobytes(), len(pts), cursor)
        if cols is not None:
            c_pat = np.array([_SENT_C[0], _SENT_C[1], float(i), _SENT_C[2]], dtype=e + "f4").tobytes()
            cursor = splice(c_pat, cols.astype(e + "f4", copy=False).tobytes(), len(cols), cursor)
    chunks.append(template[pos:])
    return b"".join(chunks)


def marker_array_message(specs: Sequence[MarkerSpec], frame_id: str = "map", stamp: object | None = None):
    """The ``MarkerArray`` object of :func:`serialize_marker_array` (slow for big meshes: tests, small arrays)."""
    from rclpy.serialization import deserialize_message
    from visualization_msgs.msg import MarkerArray

    return deserialize_message(serialize_marker_array(specs, frame_id, stamp), MarkerArray)


def block_marker_keys(block_coords: np.ndarray, prefix: str = "mesh") -> tuple[list[str], np.ndarray]:
    """(namespace, id) of each block's marker: unique per block coordinate and stable over time.

    Blocks with every coordinate in [-512, 511] share the namespace ``prefix``; others get
    ``prefix_RX_RY_RZ`` for their 1024-block region. Shape: (B, 3) int -> B names, (B,) int32 ids.
    """
    c = np.asarray(block_coords, dtype=np.int64).reshape(-1, 3) + _ID_HALF
    region = c >> _ID_BITS
    local = c & _ID_MASK
    ids = (local[:, 0] | (local[:, 1] << _ID_BITS) | (local[:, 2] << (2 * _ID_BITS))).astype(np.int32)
    names = [prefix if not (r[0] or r[1] or r[2]) else f"{prefix}_{r[0]}_{r[1]}_{r[2]}" for r in region.tolist()]
    return names, ids


def _vertex_rgba(mesh: SemanticMesh, mode: str, label_space: LabelSpace | None) -> np.ndarray:
    """Per-vertex RGBA float32 for a color mode. Shape: -> (V, 4)."""
    n = len(mesh.vertices)
    if mode == "rgb":
        rgb = np.asarray(mesh.colors, dtype=np.float32) / 255.0
    elif mode == "class":
        if label_space is None:
            raise ValueError("color mode 'class' needs a label space")
        lut = label_space.color_table().astype(np.float32) / 255.0
        cls = np.clip(np.asarray(mesh.classes, dtype=np.int64), 0, len(lut) - 1)
        rgb = lut[cls]
    elif mode == "instance":
        inst = np.asarray(mesh.instances, dtype=np.uint64)
        h = (inst * np.uint64(2654435761)) & np.uint64(0xFFFFFF)  # Knuth hash: stable color per id
        rgb = np.stack([(h >> np.uint64(16)) & np.uint64(255), (h >> np.uint64(8)) & np.uint64(255),
                        h & np.uint64(255)], axis=-1).astype(np.float32) / 255.0
        rgb[inst == 0] = 0.6
    elif mode == "gray":
        rgb = np.full((n, 3), 0.7, np.float32)
    else:
        raise ValueError(f"unknown mesh color mode {mode!r}; choose one of {list(MESH_COLOR_MODES)}")
    return np.concatenate([rgb, np.ones((n, 1), np.float32)], axis=1)


def mesh_block_markers(mesh: SemanticMesh, removed_blocks: np.ndarray | None = None, color_mode: str = "rgb",
                       label_space: LabelSpace | None = None, full: bool = False,
                       prefix: str = "mesh") -> list[MarkerSpec]:
    """TRIANGLE_LIST markers of a (changed-block) mesh.

    Every block listed in ``mesh.block_coords`` gets an ADD marker with its triangles, or a DELETE when
    it has none; every block in ``removed_blocks`` a DELETE; ``full`` puts a DELETEALL first (a
    consumer then holds exactly this mesh). Vertex colors follow ``color_mode`` (MESH_COLOR_MODES).
    Shape: removed_blocks (R, 3) int block coordinates.
    """
    specs: list[MarkerSpec] = []
    if full:
        specs.append(MarkerSpec(ns="", id=0, type=TRIANGLE_LIST, action=DELETEALL))
    blocks = np.asarray(mesh.block_coords, dtype=np.int64).reshape(-1, 3)
    tri = np.asarray(mesh.triangles, dtype=np.int64).reshape(-1, 3)
    tri_block = np.asarray(mesh.triangle_block, dtype=np.int64)
    names, ids = block_marker_keys(blocks, prefix)
    if len(tri):
        rgba = _vertex_rgba(mesh, color_mode, label_space)
        verts = np.asarray(mesh.vertices, dtype=np.float64)
        order = np.argsort(tri_block, kind="stable")
        flat = tri[order].reshape(-1)
        # TRIANGLE_LIST has no index buffer: three points per triangle, gathered in one take.
        pts_all, col_all = verts[flat], rgba[flat]
        counts = np.bincount(tri_block, minlength=len(blocks))
        ends = np.cumsum(counts) * 3
    else:
        counts = np.zeros(len(blocks), np.int64)
    for b in range(len(blocks)):
        if counts[b] == 0:
            if not full:
                specs.append(MarkerSpec(ns=names[b], id=int(ids[b]), action=DELETE))
            continue
        lo, hi = int(ends[b] - 3 * counts[b]), int(ends[b])
        specs.append(MarkerSpec(ns=names[b], id=int(ids[b]), points=pts_all[lo:hi], colors=col_all[lo:hi]))
    if removed_blocks is not None and len(removed_blocks) and not full:
        rnames, rids = block_marker_keys(np.asarray(removed_blocks), prefix)
        specs.extend(MarkerSpec(ns=n, id=int(i), action=DELETE) for n, i in zip(rnames, rids.tolist()))
    return specs


PREDICATE_COLORS: dict[str, tuple[float, float, float, float]] = {
    "on": (1.0, 0.5, 0.0, 1.0), "supports": (1.0, 0.5, 0.0, 1.0), "under": (0.6, 0.3, 0.0, 1.0),
    "near": (0.5, 0.5, 0.5, 0.6), "in_front_of": (0.0, 0.6, 1.0, 1.0), "behind": (0.0, 0.3, 0.7, 1.0),
    "left_of": (0.7, 0.0, 0.9, 0.8), "right_of": (0.9, 0.0, 0.6, 0.8), "inside": (0.0, 0.8, 0.3, 1.0),
}


def scene_graph_markers(graph: dict, label_space: LabelSpace | None = None, box_alpha: float = 0.35,
                        text_height_m: float = 0.12, predicates: Sequence[str] | None = None) -> list[MarkerSpec]:
    """Markers of a scene graph dict (``SceneGraph.to_dict()``): DELETEALL, then per object a CUBE
    (its oriented box, class color) and a TEXT_VIEW_FACING label above it, then one LINE_LIST per
    predicate joining related objects' centroids (namespace ``relation/<predicate>``), and the support
    surfaces as flat boxes. ``predicates`` limits the edges drawn (None: all but the inverse duplicates
    ``supports``, ``behind``, ``right_of``)."""
    lut = label_space.color_table().astype(np.float32) / 255.0 if label_space is not None else None
    specs = [MarkerSpec(ns="", id=0, type=CUBE, action=DELETEALL)]
    centroids: dict[int, np.ndarray] = {}
    for obj in graph.get("objects", []):
        oid = int(obj["id"])
        box = obj["box"]
        cid = int(obj.get("class_id", 0))
        rgb = tuple(lut[cid]) if lut is not None and 0 <= cid < len(lut) else (0.8, 0.8, 0.8)
        centre = np.asarray(box["center_m"], np.float64)
        ext = np.maximum(np.asarray(box["extents_m"], np.float64), 0.01)
        centroids[oid] = np.asarray(obj.get("centroid_m", centre), np.float64)
        specs.append(MarkerSpec(ns="objects", id=oid, type=CUBE, position=tuple(centre),
                                quaternion_xyzw=tuple(box.get("quaternion_xyzw", (0.0, 0.0, 0.0, 1.0))),
                                scale=tuple(ext), color=(*rgb, box_alpha)))
        top = centre + np.array([0.0, 0.0, ext[2] / 2.0 + text_height_m])
        specs.append(MarkerSpec(ns="labels", id=oid, type=TEXT_VIEW_FACING, position=tuple(top),
                                scale=(0.0, 0.0, text_height_m), color=(1.0, 1.0, 1.0, 1.0),
                                text=f"{obj.get('class_name', cid)} #{oid}"))
    wanted = set(predicates) if predicates is not None else set(PREDICATE_COLORS) - {"supports", "behind", "right_of"}
    by_pred: dict[str, list[np.ndarray]] = {}
    for rel in graph.get("relations", []):
        p = str(rel["predicate"])
        a, b = int(rel["subject_id"]), int(rel["object_id"])
        if p in wanted and a in centroids and b in centroids:
            by_pred.setdefault(p, []).extend([centroids[a], centroids[b]])
    for k, (p, pts) in enumerate(sorted(by_pred.items())):
        specs.append(MarkerSpec(ns=f"relation/{p}", id=k, type=LINE_LIST, points=np.asarray(pts),
                                scale=(0.015, 0.0, 0.0), color=PREDICATE_COLORS.get(p, (1.0, 1.0, 1.0, 1.0))))
    for s in graph.get("structure", {}).get("support_surfaces", []):
        box = s["box"]
        ext = np.asarray(box["extents_m"], np.float64)
        specs.append(MarkerSpec(ns="support_surfaces", id=int(s["id"]), type=CUBE,
                                position=tuple(box["center_m"]),
                                quaternion_xyzw=tuple(box.get("quaternion_xyzw", (0.0, 0.0, 0.0, 1.0))),
                                scale=(max(ext[0], 0.01), max(ext[1], 0.01), 0.01), color=(0.2, 1.0, 0.2, 0.3)))
    return specs
