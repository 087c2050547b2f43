"""Scene-graph data: object nodes, structure (floor, walls, ceiling, support surfaces, rooms),
relations, the graph and its incremental updates, with their versioned JSON form.

Frames: everything is in the map frame ``frame_id`` (meters). Boxes are *gravity-aligned*: their
third axis is the graph's ``up_world``; ``yaw_rad`` turns the box about it, measured in the
gravity frame whose axes are returned by :func:`gravity_frame` (for the default z-up map this is the
map frame itself, so yaw is the usual yaw about z). ``quaternion_xyzw`` is the box orientation in the
map frame (x, y, z, w), ready for a marker. The schema is documented in ``docs/scene_graph.md`` and
``config/schemas/scene_graph.schema.json``; ``SCHEMA_VERSION`` changes whenever a field changes meaning.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ..geometry import matrix_to_quat_xyzw

__all__ = [
    "SCHEMA_NAME", "UPDATE_SCHEMA_NAME", "SCHEMA_VERSION", "PREDICATES", "INVERSE_PREDICATES",
    "Box", "ObjectNode", "Plane", "SupportSurface", "Room", "Structure", "Relation", "SceneGraph",
    "SceneGraphUpdate", "gravity_frame",
]

SCHEMA_NAME = "msslam_scene_graph"
UPDATE_SCHEMA_NAME = "msslam_scene_graph_update"
SCHEMA_VERSION = 1

#: Object-object predicates ("A predicate B"); ``supports`` is the inverse of ``on``.
PREDICATES: tuple[str, ...] = ("on", "supports", "under", "near", "in_front_of", "behind", "left_of",
                               "right_of", "inside")
#: Inverse of each predicate (used by queries that name the relation from the other side).
INVERSE_PREDICATES: dict[str, str] = {"on": "supports", "supports": "on", "in_front_of": "behind",
                                      "behind": "in_front_of", "left_of": "right_of", "right_of": "left_of",
                                      "near": "near"}
_IDENTITY = np.eye(3)
_IDENTITY.flags.writeable = False  # shared: gravity_frame returns it for z-up maps


def gravity_frame(up_world) -> np.ndarray:
    """Rotation ``R_world_gravity`` whose third column is the unit ``up_world``.

    Convention: for up = +z it is the identity; otherwise the first column is the map x axis (or y when
    x is nearly vertical) made orthogonal to up. Shape: (3,) -> (3, 3).
    """
    up = np.asarray(up_world, dtype=np.float64)
    up = up / np.linalg.norm(up)
    if np.allclose(up, (0.0, 0.0, 1.0)):
        return _IDENTITY
    ref = np.array([1.0, 0.0, 0.0]) if abs(up[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x = ref - up * float(ref @ up)
    x /= np.linalg.norm(x)
    y = np.cross(up, x)
    return np.stack([x, y, up], axis=1)


def relations_to_dicts(relations) -> list[dict]:
    """Relation dicts of many relations (one comprehension: graphs hold thousands; the builder's
    relations hold Python ints and floats already)."""
    return [{"subject_id": s, "predicate": p, "object_id": o, "score": x} for s, p, o, x in relations]


def _f(v) -> list[float]:
    return [float(x) for x in np.asarray(v, dtype=np.float64).ravel()]


@dataclass
class Box:
    """Gravity-aligned oriented box. Shape: center_m (3,) map frame; extents_m (3,) full sizes along
    the box's own x (longest horizontal), y, and up axes."""

    center_m: np.ndarray
    extents_m: np.ndarray
    yaw_rad: float

    def R_gravity_box(self) -> np.ndarray:
        c, s = np.cos(self.yaw_rad), np.sin(self.yaw_rad)
        return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])

    def to_dict(self, R_world_gravity: np.ndarray) -> dict:
        if R_world_gravity is _IDENTITY or np.array_equal(R_world_gravity, _IDENTITY):
            # A yaw about z: the quaternion in closed form (the common z-up case, many boxes per update).
            h = 0.5 * float(self.yaw_rad)
            q = (0.0, 0.0, float(np.sin(h)), float(np.cos(h)))
        else:
            q = matrix_to_quat_xyzw(R_world_gravity @ self.R_gravity_box())
        return {"center_m": _f(self.center_m), "extents_m": _f(self.extents_m), "yaw_rad": float(self.yaw_rad),
                "quaternion_xyzw": _f(q)}

    @classmethod
    def from_dict(cls, d: dict) -> "Box":
        return cls(np.asarray(d["center_m"], np.float64), np.asarray(d["extents_m"], np.float64),
                   float(d["yaw_rad"]))

    @property
    def volume_m3(self) -> float:
        return float(np.prod(self.extents_m))


@dataclass
class ObjectNode:
    """One map instance as a graph node (id = the mapper's instance id).

    ``confidence`` = share of the instance's class votes that went to ``class_id``; ``point_count`` =
    surface voxels of the instance in the cloud; ``first_seen`` / ``last_seen`` = mapper frame indices;
    ``front_world`` = unit facing direction (None for classes without a front or when unknown).
    """

    id: int
    class_id: int
    class_name: str
    confidence: float
    centroid_m: np.ndarray
    box: Box
    point_count: int
    voxel_count: int
    first_seen: int
    last_seen: int
    is_dynamic: bool = False
    front_world: np.ndarray | None = None
    room_id: int | None = None
    merged_ids: list[int] = field(default_factory=list)

    def to_dict(self, R_world_gravity: np.ndarray) -> dict:
        return {"id": int(self.id), "class_id": int(self.class_id), "class_name": self.class_name,
                "confidence": float(self.confidence), "centroid_m": _f(self.centroid_m),
                "box": self.box.to_dict(R_world_gravity), "size_m": _f(self.box.extents_m),
                "point_count": int(self.point_count), "voxel_count": int(self.voxel_count),
                "first_seen": int(self.first_seen), "last_seen": int(self.last_seen),
                "is_dynamic": bool(self.is_dynamic),
                "front_world": None if self.front_world is None else _f(self.front_world),
                "room_id": None if self.room_id is None else int(self.room_id),
                "merged_ids": [int(i) for i in self.merged_ids]}

    @classmethod
    def from_dict(cls, d: dict) -> "ObjectNode":
        return cls(id=int(d["id"]), class_id=int(d["class_id"]), class_name=str(d["class_name"]),
                   confidence=float(d["confidence"]), centroid_m=np.asarray(d["centroid_m"], np.float64),
                   box=Box.from_dict(d["box"]), point_count=int(d["point_count"]),
                   voxel_count=int(d.get("voxel_count", 0)), first_seen=int(d["first_seen"]),
                   last_seen=int(d["last_seen"]), is_dynamic=bool(d.get("is_dynamic", False)),
                   front_world=None if d.get("front_world") is None else np.asarray(d["front_world"], np.float64),
                   room_id=None if d.get("room_id") is None else int(d["room_id"]),
                   merged_ids=[int(i) for i in d.get("merged_ids", [])])


@dataclass
class Plane:
    """A structure plane (floor, ceiling or wall): points x with ``normal_world . x = offset_m``.

    ``normal_world`` points into the room (up for the floor, down for the ceiling). ``extent_min_m`` /
    ``extent_max_m`` bound the plane's supporting points (map frame). Shape: (3,) each.
    """

    id: int
    kind: str
    normal_world: np.ndarray
    offset_m: float
    extent_min_m: np.ndarray
    extent_max_m: np.ndarray
    point_count: int

    def to_dict(self) -> dict:
        return {"id": int(self.id), "kind": self.kind, "normal_world": _f(self.normal_world),
                "offset_m": float(self.offset_m), "extent_min_m": _f(self.extent_min_m),
                "extent_max_m": _f(self.extent_max_m), "point_count": int(self.point_count)}

    @classmethod
    def from_dict(cls, d: dict) -> "Plane":
        return cls(int(d["id"]), str(d["kind"]), np.asarray(d["normal_world"], np.float64), float(d["offset_m"]),
                   np.asarray(d["extent_min_m"], np.float64), np.asarray(d["extent_max_m"], np.float64),
                   int(d["point_count"]))


@dataclass
class SupportSurface:
    """The horizontal top face of an object (or the floor, ``object_id`` None).

    ``box`` is the face as a flat box (extents x, y, ~0); ``height_m`` its height along up;
    ``free_area_m2`` = area minus the footprints of the objects ``on`` it (``occupied_by``).
    """

    id: int
    object_id: int | None
    class_name: str
    box: Box
    height_m: float
    area_m2: float
    free_area_m2: float
    occupied_by: list[int] = field(default_factory=list)

    def to_dict(self, R_world_gravity: np.ndarray) -> dict:
        return {"id": int(self.id), "object_id": None if self.object_id is None else int(self.object_id),
                "class_name": self.class_name, "box": self.box.to_dict(R_world_gravity),
                "height_m": float(self.height_m), "area_m2": float(self.area_m2),
                "free_area_m2": float(self.free_area_m2), "occupied_by": [int(i) for i in self.occupied_by]}

    @classmethod
    def from_dict(cls, d: dict) -> "SupportSurface":
        return cls(int(d["id"]), None if d.get("object_id") is None else int(d["object_id"]), str(d["class_name"]),
                   Box.from_dict(d["box"]), float(d["height_m"]), float(d["area_m2"]), float(d["free_area_m2"]),
                   [int(i) for i in d.get("occupied_by", [])])


@dataclass
class Room:
    """A room: its floor outline (polygon in the gravity frame's x-y plane, counter-clockwise),
    floor and ceiling heights along up, and the objects whose centroid lies inside (containment).
    Shape: footprint_xy (P, 2)."""

    id: int
    name: str
    footprint_xy: np.ndarray
    floor_height_m: float
    ceiling_height_m: float | None
    object_ids: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"id": int(self.id), "name": self.name, "footprint_xy": np.asarray(self.footprint_xy, float).tolist(),
                "floor_height_m": float(self.floor_height_m),
                "ceiling_height_m": None if self.ceiling_height_m is None else float(self.ceiling_height_m),
                "object_ids": [int(i) for i in self.object_ids]}

    @classmethod
    def from_dict(cls, d: dict) -> "Room":
        return cls(int(d["id"]), str(d["name"]), np.asarray(d["footprint_xy"], np.float64).reshape(-1, 2),
                   float(d["floor_height_m"]),
                   None if d.get("ceiling_height_m") is None else float(d["ceiling_height_m"]),
                   [int(i) for i in d.get("object_ids", [])])


@dataclass
class Structure:
    """The structure layer."""

    floor: Plane | None = None
    ceiling: Plane | None = None
    walls: list[Plane] = field(default_factory=list)
    support_surfaces: list[SupportSurface] = field(default_factory=list)
    rooms: list[Room] = field(default_factory=list)

    def to_dict(self, R_world_gravity: np.ndarray) -> dict:
        return {"floor": None if self.floor is None else self.floor.to_dict(),
                "ceiling": None if self.ceiling is None else self.ceiling.to_dict(),
                "walls": [w.to_dict() for w in self.walls],
                "support_surfaces": [s.to_dict(R_world_gravity) for s in self.support_surfaces],
                "rooms": [r.to_dict() for r in self.rooms]}

    @classmethod
    def from_dict(cls, d: dict) -> "Structure":
        return cls(floor=None if d.get("floor") is None else Plane.from_dict(d["floor"]),
                   ceiling=None if d.get("ceiling") is None else Plane.from_dict(d["ceiling"]),
                   walls=[Plane.from_dict(w) for w in d.get("walls", [])],
                   support_surfaces=[SupportSurface.from_dict(s) for s in d.get("support_surfaces", [])],
                   rooms=[Room.from_dict(r) for r in d.get("rooms", [])])


class Relation(NamedTuple):
    """``subject predicate object`` between two object ids, with a score in [0, 1] (immutable; a
    named tuple because graphs of hundreds of objects hold thousands of relations)."""

    subject_id: int
    predicate: str
    object_id: int
    score: float = 1.0

    def to_dict(self) -> dict:
        return {"subject_id": int(self.subject_id), "predicate": self.predicate, "object_id": int(self.object_id),
                "score": float(self.score)}

    @classmethod
    def from_dict(cls, d: dict) -> "Relation":
        return cls(int(d["subject_id"]), str(d["predicate"]), int(d["object_id"]), float(d.get("score", 1.0)))


@dataclass
class SceneGraph:
    """The whole graph: objects by id, structure, relations, sequence number and stamp."""

    objects: dict[int, ObjectNode] = field(default_factory=dict)
    structure: Structure = field(default_factory=Structure)
    relations: list[Relation] = field(default_factory=list)
    sequence: int = 0
    stamp_s: float = 0.0
    frame_id: str = "map"
    up_world: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, 1.0]))
    label_space: str = ""

    @property
    def R_world_gravity(self) -> np.ndarray:
        return gravity_frame(self.up_world)

    def relations_of(self, predicate: str | None = None, subject_id: int | None = None,
                     object_id: int | None = None) -> list[Relation]:
        return [r for r in self.relations if (predicate is None or r.predicate == predicate)
                and (subject_id is None or r.subject_id == subject_id)
                and (object_id is None or r.object_id == object_id)]

    def to_dict(self) -> dict:
        R = self.R_world_gravity
        return {"schema": SCHEMA_NAME, "version": SCHEMA_VERSION, "frame_id": self.frame_id,
                "sequence": int(self.sequence), "stamp_s": float(self.stamp_s), "up_world": _f(self.up_world),
                "label_space": self.label_space,
                "objects": [self.objects[k].to_dict(R) for k in sorted(self.objects)],
                "structure": self.structure.to_dict(R),
                "relations": relations_to_dicts(self.relations)}

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: dict) -> "SceneGraph":
        if d.get("schema") != SCHEMA_NAME:
            raise ValueError(f"not a scene graph: schema {d.get('schema')!r}, expected {SCHEMA_NAME!r}")
        if int(d.get("version", -1)) != SCHEMA_VERSION:
            raise ValueError(f"unsupported scene graph version {d.get('version')!r}, expected {SCHEMA_VERSION}")
        objs = [ObjectNode.from_dict(o) for o in d.get("objects", [])]
        return cls(objects={o.id: o for o in objs}, structure=Structure.from_dict(d.get("structure", {})),
                   relations=[Relation.from_dict(r) for r in d.get("relations", [])],
                   sequence=int(d.get("sequence", 0)), stamp_s=float(d.get("stamp_s", 0.0)),
                   frame_id=str(d.get("frame_id", "map")),
                   up_world=np.asarray(d.get("up_world", (0.0, 0.0, 1.0)), np.float64),
                   label_space=str(d.get("label_space", "")))

    @classmethod
    def from_json(cls, text: str) -> "SceneGraph":
        return cls.from_dict(json.loads(text))

    def apply_update(self, update: "SceneGraphUpdate | dict") -> None:
        """Apply an update (object or its dict) in place: what a subscriber of updates does.

        A full update replaces all objects; otherwise changed objects are upserted and deleted ids
        removed. Structure and relations are always sent whole and replace the current ones.
        """
        u = update.to_dict() if isinstance(update, SceneGraphUpdate) else update
        if u.get("schema") != UPDATE_SCHEMA_NAME or int(u.get("version", -1)) != SCHEMA_VERSION:
            raise ValueError(f"not a version-{SCHEMA_VERSION} scene graph update: {u.get('schema')!r} "
                             f"v{u.get('version')!r}")
        if u["full"]:
            self.objects = {}
        for i in u["deleted_ids"]:
            self.objects.pop(int(i), None)
        for o in u["changed"]:
            node = ObjectNode.from_dict(o)
            self.objects[node.id] = node
        self.structure = Structure.from_dict(u["structure"])
        self.relations = [Relation.from_dict(r) for r in u["relations"]]
        self.sequence = int(u["sequence"])
        self.stamp_s = float(u["stamp_s"])
        self.frame_id = str(u.get("frame_id", self.frame_id))
        self.up_world = np.asarray(u.get("up_world", self.up_world), np.float64)
        self.label_space = str(u.get("label_space", self.label_space))


@dataclass
class SceneGraphUpdate:
    """What changed since the previous update.

    ``changed``: object dicts (new or moved / relabelled objects; all objects when ``full``);
    ``deleted_ids``: ids gone (instance evicted, or merged into another: see ``merged``, old -> new id);
    ``relations`` and ``structure`` are complete (they are small), so a subscriber replaces them.
    """

    sequence: int
    stamp_s: float
    full: bool
    changed: list[dict]
    deleted_ids: list[int]
    relations: list[dict]
    structure: dict
    merged: dict[int, int] = field(default_factory=dict)
    frame_id: str = "map"
    up_world: tuple[float, float, float] = (0.0, 0.0, 1.0)
    label_space: str = ""

    def to_dict(self) -> dict:
        return {"schema": UPDATE_SCHEMA_NAME, "version": SCHEMA_VERSION, "frame_id": self.frame_id,
                "label_space": self.label_space,
                "sequence": int(self.sequence), "stamp_s": float(self.stamp_s), "full": bool(self.full),
                "up_world": _f(self.up_world), "changed": self.changed,
                "deleted_ids": [int(i) for i in self.deleted_ids],
                "merged": {str(int(k)): int(v) for k, v in self.merged.items()},
                "relations": self.relations, "structure": self.structure}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())
