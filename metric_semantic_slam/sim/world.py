"""Data types of the synthetic semantic world (the contract between scene generation and rendering).

Frames: the world frame is z-up (REP 103 ``map``), meters. Object boxes are gravity-aligned:
an object's local frame is its box centre rotated by ``yaw_rad`` about world z; ``extents_m`` are
the full box sizes along local x, y, z. Cameras use the optical frame (z forward, x right, y down).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

__all__ = ["Material", "TriangleMesh", "SceneObject", "Relation", "World", "CameraTrajectory"]


@dataclass(frozen=True)
class Material:
    """Surface appearance, evaluated procedurally at a hit point.

    ``texture`` is one of ``plain, wood, checker, noise, stripes, fabric``; ``texture_scale_m`` its
    spatial period; ``ir_albedo`` in [0, 1] the reflectivity for the active depth sensor (low values
    give dropouts, like dark surfaces on a real structured-light sensor).
    """

    base_rgb: tuple[float, float, float]
    texture: str = "plain"
    texture_scale_m: float = 0.2
    secondary_rgb: tuple[float, float, float] = (0.0, 0.0, 0.0)
    ir_albedo: float = 0.8
    specular: float = 0.0


@dataclass
class TriangleMesh:
    """Triangle soup with per-face labels.

    Shape: vertices (V, 3) float64 world meters; triangles (F, 3) int32; face_class (F,) uint16;
    face_instance (F,) uint16 (0 = stuff / none); face_material (F,) int32 index into
    ``World.materials``.
    """

    vertices: np.ndarray
    triangles: np.ndarray
    face_class: np.ndarray
    face_instance: np.ndarray
    face_material: np.ndarray

    @staticmethod
    def concatenate(meshes: list["TriangleMesh"]) -> "TriangleMesh":
        verts, tris, fc, fi, fm = [], [], [], [], []
        offset = 0
        for m in meshes:
            verts.append(m.vertices)
            tris.append(m.triangles + offset)
            fc.append(m.face_class)
            fi.append(m.face_instance)
            fm.append(m.face_material)
            offset += len(m.vertices)
        if not meshes:
            return TriangleMesh(np.zeros((0, 3)), np.zeros((0, 3), np.int32), np.zeros(0, np.uint16),
                                np.zeros(0, np.uint16), np.zeros(0, np.int32))
        return TriangleMesh(
            np.concatenate(verts).astype(np.float64),
            np.concatenate(tris).astype(np.int32),
            np.concatenate(fc).astype(np.uint16),
            np.concatenate(fi).astype(np.uint16),
            np.concatenate(fm).astype(np.int32),
        )


@dataclass
class SceneObject:
    """One object instance (things) or structural element with its gravity-aligned oriented box.

    ``front_local`` is the unit direction (in the object's local frame) its front faces, for classes
    that have one (tv, monitor, sofa, chair, ...), else None. ``support_id`` is the instance id of the
    object it stands on (None when it stands on the floor).
    """

    instance_id: int
    class_id: int
    class_name: str
    center_m: np.ndarray
    yaw_rad: float
    extents_m: np.ndarray
    front_local: np.ndarray | None = None
    support_id: int | None = None
    is_dynamic: bool = False

    def R_world_object(self) -> np.ndarray:
        c, s = np.cos(self.yaw_rad), np.sin(self.yaw_rad)
        return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])

    def to_dict(self) -> dict:
        return {
            "instance_id": int(self.instance_id),
            "class_id": int(self.class_id),
            "class_name": self.class_name,
            "center_m": [float(x) for x in self.center_m],
            "yaw_rad": float(self.yaw_rad),
            "extents_m": [float(x) for x in self.extents_m],
            "front_local": None if self.front_local is None else [float(x) for x in self.front_local],
            "support_id": self.support_id,
            "is_dynamic": bool(self.is_dynamic),
        }


@dataclass(frozen=True)
class Relation:
    """A ground-truth spatial relation ``subject predicate object`` between instance ids.

    Predicates: ``on``, ``under``, ``near``, ``in_front_of``, ``behind`` (and more may be added).
    """

    subject_id: int
    predicate: str
    object_id: int

    def to_dict(self) -> dict:
        return {"subject_id": self.subject_id, "predicate": self.predicate, "object_id": self.object_id}


class CameraTrajectory(Protocol):
    """A smooth camera motion, defined for any time in ``[0, duration_s]``."""

    duration_s: float

    def T_world_camera(self, t_s: float) -> np.ndarray:
        """4x4 pose of the color optical frame in the world at time ``t_s`` (seconds from start)."""
        ...


@dataclass
class World:
    """A generated scene: static geometry, objects, relations, and optional dynamic content.

    ``dynamic_mesh_at(t_s)`` returns the mesh of moving things (the walking person) at time ``t_s``,
    or None when the scene has none. ``room_min_m`` / ``room_max_m`` bound the room interior.
    """

    seed: int
    static_mesh: TriangleMesh
    materials: list[Material]
    objects: list[SceneObject]
    relations: list[Relation]
    room_min_m: np.ndarray
    room_max_m: np.ndarray
    light_positions_m: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    dynamic_mesh_at: Callable[[float], TriangleMesh | None] | None = None
    dynamic_objects_at: Callable[[float], list[SceneObject]] | None = None
