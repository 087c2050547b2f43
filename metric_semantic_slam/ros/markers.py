"""visualization_msgs/MarkerArray builders: the semantic mesh per block, and the scene graph.

Speed (DESIGN.md §5): a ``Marker`` whose ``points`` / ``colors`` are filled with Python ``Point`` /
``ColorRGBA`` objects costs ~6 us a vertex (200k vertices: ~1.2 s to build and serialize here), and
even a ``Marker`` object without points costs tens of microseconds to build and convert (a mesh update
of 500 blocks: ~40 ms). This module builds none: :func:`serialize_marker_array` writes the CDR bytes
itself, the numpy bytes of each marker's points and colors in one piece; the tests check the bytes
against rclpy's serialization of the same array built from objects. Publish it with
``publisher.publish(raw_bytes)`` (rclpy's raw publish); :func:`marker_array_message` deserializes it
when an object is needed (tests).

Mesh markers: one TRIANGLE_LIST marker per map block, keyed (namespace, id) by the block coordinate,
so RViz replaces a block's marker when the block is re-meshed; a block that lost its triangles or was
evicted gets a DELETE; a full republish starts with DELETEALL.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from ..core.labels import LabelSpace
from ..core.mapping import SemanticMesh
from .cdr import CdrWriter

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


def _write_marker(w: CdrWriter, spec: MarkerSpec, pts: np.ndarray | None, cols: np.ndarray | None,
                  sec: int, nanosec: int, frame_id: str) -> None:
    # The fields around the two arrays come from templates cached per start offset modulo 8 (CDR pads
    # depend on nothing else): a mesh update of hundreds of blocks writes a few bytes objects per marker
    # instead of packing every field.
    prefix, id_offset = _marker_prefix(w.n % 8, sec, nanosec, frame_id, spec.ns, int(spec.type), int(spec.action),
                                       tuple(map(float, spec.position)), tuple(map(float, spec.quaternion_xyzw)),
                                       tuple(map(float, spec.scale)), tuple(map(float, spec.color)))
    head = bytearray(prefix)
    struct.pack_into("<i", head, id_offset, int(spec.id))
    w.raw(head)
    w.sequence(pts, 8)                       # geometry_msgs/Point[]: 3 float64
    w.sequence(cols, 4)                      # std_msgs/ColorRGBA[]: 4 float32
    w.raw(_marker_trailer(w.n % 8, spec.text))


def _template_writer(residue: int) -> CdrWriter:
    """A writer whose offset is ``residue`` (what alignment sees) and that holds no bytes yet."""
    w = CdrWriter()
    w.parts, w.n = [], residue
    return w


@lru_cache(maxsize=256)
def _marker_prefix(residue: int, sec: int, nanosec: int, frame_id: str, ns: str, type_: int, action: int,
                   position: tuple, quaternion_xyzw: tuple, scale: tuple, color: tuple) -> tuple[bytes, int]:
    """A Marker's bytes from its header to ``frame_locked`` written at an offset ``residue`` (mod 8), id 0,
    and the offset of the id in them."""
    # field order of visualization_msgs/Marker (Jazzy/Kilted), checked against rclpy in the tests
    w = _template_writer(residue)
    w.header(sec, nanosec, frame_id)
    w.string(ns)
    w.align(4)
    id_offset = w.n - residue
    w.pack(4, "iii", 0, type_, action)
    w.pack(8, "7d", *position, *quaternion_xyzw)
    w.pack(8, "3d", *scale)
    w.pack(4, "4f", *color)
    w.pack(4, "iI", 0, 0)                    # lifetime: forever
    w.raw(b"\0")                             # frame_locked
    return w.getvalue(), id_offset


@lru_cache(maxsize=64)
def _marker_trailer(residue: int, text: str) -> bytes:
    """A Marker's bytes after its colors, written at an offset ``residue`` (mod 8)."""
    w = _template_writer(residue)
    w.string("")                             # texture_resource
    w.header(0, 0, "")                       # texture: sensor_msgs/CompressedImage
    w.string("")                             #   format
    w.sequence(None, 1)                      #   data
    w.sequence(None, 4)                      # uv_coordinates
    w.string(text)
    w.string("")                             # mesh_resource
    w.string("")                             # mesh_file.filename
    w.sequence(None, 1)                      # mesh_file.data
    w.raw(b"\0")                             # mesh_use_embedded_materials
    return w.getvalue()


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
    arrays = [_check_spec(s) for s in specs]
    sec, nanosec = (0, 0) if stamp is None else (int(stamp.sec), int(stamp.nanosec))
    w = CdrWriter()
    w.pack(4, "I", len(specs))
    for spec, (pts, cols) in zip(specs, arrays):
        _write_marker(w, spec, None if pts is None else pts.astype("<f8", copy=False),
                      None if cols is None else cols.astype("<f4", copy=False), sec, nanosec, frame_id)
    return w.getvalue()


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
