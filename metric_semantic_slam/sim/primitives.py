"""Closed, labelled triangle meshes of simple solids (numpy only).

Every builder returns a :class:`~metric_semantic_slam.sim.world.TriangleMesh` whose faces carry one
class id, one instance id and one material index. Solids are posed by their *centre* (the centre of
their own bounding box) and a yaw about world z. Surfaces are closed and wound counter-clockwise
seen from outside, so face normals ``(v1 - v0) x (v2 - v0)`` point outwards.
"""
from __future__ import annotations

import numpy as np

from metric_semantic_slam.sim.world import TriangleMesh

__all__ = [
    "rot_z",
    "pose_matrix",
    "labelled_mesh",
    "transform_mesh",
    "box_mesh",
    "frustum_mesh",
    "cylinder_mesh",
    "ellipsoid_mesh",
    "sphere_mesh",
    "quad_mesh",
    "face_normals",
]

_UINT16_MAX = 65535


def rot_z(yaw_rad: float) -> np.ndarray:
    """Rotation about z. Shape: () -> (3, 3)."""
    c, s = np.cos(yaw_rad), np.sin(yaw_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def pose_matrix(center: np.ndarray, yaw_rad: float = 0.0) -> np.ndarray:
    """4x4 ``T_parent_local`` of a frame at ``center`` rotated by ``yaw_rad`` about z. Shape: (3,) -> (4, 4)."""
    T = np.eye(4)
    T[:3, :3] = rot_z(yaw_rad)
    T[:3, 3] = np.asarray(center, dtype=np.float64)
    return T


def _check_labels(class_id: int, instance_id: int, material: int) -> None:
    if not 0 <= int(class_id) <= _UINT16_MAX:
        raise ValueError(f"class_id must be in [0, {_UINT16_MAX}], got {class_id}")
    if not 0 <= int(instance_id) <= _UINT16_MAX:
        raise ValueError(f"instance_id must be in [0, {_UINT16_MAX}], got {instance_id}")
    if int(material) < 0:
        raise ValueError(f"material index must be >= 0, got {material}")


def labelled_mesh(vertices: np.ndarray, triangles: np.ndarray, class_id: int, instance_id: int,
                  material: int) -> TriangleMesh:
    """Wrap raw arrays into a mesh whose faces all carry the same labels.

    Shape: vertices (V, 3), triangles (F, 3) -> TriangleMesh with F faces.
    """
    _check_labels(class_id, instance_id, material)
    tris = np.asarray(triangles, dtype=np.int32).reshape(-1, 3)
    n = len(tris)
    return TriangleMesh(
        np.asarray(vertices, dtype=np.float64).reshape(-1, 3),
        tris,
        np.full(n, class_id, np.uint16),
        np.full(n, instance_id, np.uint16),
        np.full(n, material, np.int32),
    )


def transform_mesh(mesh: TriangleMesh, T_target_source: np.ndarray) -> TriangleMesh:
    """Apply a rigid 4x4 transform to a mesh's vertices (labels and winding unchanged).

    Shape: T (4, 4); mesh V vertices -> mesh V vertices.
    """
    T = np.asarray(T_target_source, dtype=np.float64)
    if T.shape != (4, 4):
        raise ValueError(f"transform must be 4x4, got {T.shape}")
    v = mesh.vertices @ T[:3, :3].T + T[:3, 3]
    return TriangleMesh(v, mesh.triangles.copy(), mesh.face_class.copy(), mesh.face_instance.copy(),
                        mesh.face_material.copy())


def face_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Unnormalised face normals ``(v1 - v0) x (v2 - v0)``. Shape: (V, 3), (F, 3) -> (F, 3)."""
    v = np.asarray(vertices)[np.asarray(triangles)]
    return np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])


def _orient_outwards(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    # All solids built here are convex and centred at the origin, so a face is wound correctly
    # exactly when its normal points away from the origin.
    tris = triangles.copy()
    n = face_normals(vertices, tris)
    centroid = vertices[tris].mean(axis=1)
    flip = np.einsum("ij,ij->i", n, centroid) < 0
    tris[flip] = tris[flip][:, [0, 2, 1]]
    return tris


def _finish(vertices_local: np.ndarray, triangles: np.ndarray, center, yaw_rad: float, class_id: int,
            instance_id: int, material: int) -> TriangleMesh:
    tris = _orient_outwards(vertices_local, np.asarray(triangles, dtype=np.int32))
    v = vertices_local @ rot_z(yaw_rad).T + np.asarray(center, dtype=np.float64)
    return labelled_mesh(v, tris, class_id, instance_id, material)


def _positive(name: str, *values: float) -> None:
    for x in values:
        if not np.isfinite(x) or x <= 0:
            raise ValueError(f"{name} must be positive and finite, got {x}")


def box_mesh(extents_m, center=(0.0, 0.0, 0.0), yaw_rad: float = 0.0, *, class_id: int,
             instance_id: int, material: int) -> TriangleMesh:
    """Closed box with full sizes ``extents_m`` along its local x, y, z (8 vertices, 12 faces).

    Shape: extents (3,), center (3,) -> TriangleMesh(V=8, F=12).
    """
    e = np.asarray(extents_m, dtype=np.float64)
    _positive("box extents", *e)
    corners = np.array([[(i & 1) * 2 - 1, ((i >> 1) & 1) * 2 - 1, ((i >> 2) & 1) * 2 - 1] for i in range(8)],
                       dtype=np.float64) * (e / 2)
    # Two triangles per side; the winding is fixed by _orient_outwards.
    quads = [(0, 2, 3, 1), (4, 5, 7, 6), (0, 1, 5, 4), (2, 6, 7, 3), (0, 4, 6, 2), (1, 3, 7, 5)]
    tris = [[a, b, c] for a, b, c, d in quads] + [[a, c, d] for a, b, c, d in quads]
    return _finish(corners, np.array(tris), center, yaw_rad, class_id, instance_id, material)


def frustum_mesh(radius_bottom_m: float, radius_top_m: float, height_m: float, center=(0.0, 0.0, 0.0),
                 yaw_rad: float = 0.0, *, segments: int = 16, class_id: int, instance_id: int,
                 material: int) -> TriangleMesh:
    """Closed truncated cone about local z (a cone when ``radius_top_m == 0``), with end caps.

    ``center`` is the middle of its axis. Shape: -> TriangleMesh(V = 2 * segments + 2, ...).
    """
    _positive("frustum height/bottom radius", height_m, radius_bottom_m)
    if not np.isfinite(radius_top_m) or radius_top_m < 0:
        raise ValueError(f"top radius must be >= 0, got {radius_top_m}")
    if segments < 3:
        raise ValueError(f"segments must be >= 3, got {segments}")
    ang = np.arange(segments) * (2 * np.pi / segments)
    ring = np.stack([np.cos(ang), np.sin(ang)], axis=1)
    h2 = height_m / 2
    bottom = np.column_stack([ring * radius_bottom_m, np.full(segments, -h2)])
    k = np.arange(segments)
    k1 = (k + 1) % segments
    if radius_top_m == 0.0:
        apex = np.array([[0.0, 0.0, h2]])
        verts = np.vstack([bottom, apex, [[0.0, 0.0, -h2]]])
        ia, ib = segments, segments + 1
        side = np.column_stack([k, k1, np.full(segments, ia)])
        cap = np.column_stack([k1, k, np.full(segments, ib)])
        tris = np.vstack([side, cap])
    else:
        top = np.column_stack([ring * radius_top_m, np.full(segments, h2)])
        verts = np.vstack([bottom, top, [[0.0, 0.0, -h2]], [[0.0, 0.0, h2]]])
        t = k + segments
        t1 = k1 + segments
        ib, it = 2 * segments, 2 * segments + 1
        tris = np.vstack([
            np.column_stack([k, k1, t1]),
            np.column_stack([k, t1, t]),
            np.column_stack([k1, k, np.full(segments, ib)]),
            np.column_stack([t, t1, np.full(segments, it)]),
        ])
    return _finish(verts, tris, center, yaw_rad, class_id, instance_id, material)


def cylinder_mesh(radius_m: float, height_m: float, center=(0.0, 0.0, 0.0), yaw_rad: float = 0.0, *,
                  segments: int = 16, class_id: int, instance_id: int, material: int) -> TriangleMesh:
    """Closed cylinder about local z; ``center`` is the middle of its axis. Shape: -> TriangleMesh."""
    return frustum_mesh(radius_m, radius_m, height_m, center, yaw_rad, segments=segments,
                        class_id=class_id, instance_id=instance_id, material=material)


def ellipsoid_mesh(radii_m, center=(0.0, 0.0, 0.0), yaw_rad: float = 0.0, *, n_lat: int = 6,
                   n_lon: int = 12, class_id: int, instance_id: int, material: int) -> TriangleMesh:
    """Closed low-poly ellipsoid (UV sphere scaled by ``radii_m`` along local x, y, z).

    Shape: radii (3,), center (3,) -> TriangleMesh(V = (n_lat - 1) * n_lon + 2, F = 2 * (n_lat - 1) * n_lon).
    """
    r = np.asarray(radii_m, dtype=np.float64)
    _positive("ellipsoid radii", *r)
    if n_lat < 2 or n_lon < 3:
        raise ValueError(f"need n_lat >= 2 and n_lon >= 3, got {n_lat}, {n_lon}")
    lat = np.linspace(0, np.pi, n_lat + 1)[1:-1]
    lon = np.arange(n_lon) * (2 * np.pi / n_lon)
    sl, cl = np.sin(lat)[:, None], np.cos(lat)[:, None]
    ring = np.stack([sl * np.cos(lon), sl * np.sin(lon), np.broadcast_to(cl, (len(lat), n_lon))], axis=-1)
    verts = np.vstack([[[0.0, 0.0, 1.0]], ring.reshape(-1, 3), [[0.0, 0.0, -1.0]]]) * r
    top, bot = 0, len(verts) - 1
    k = np.arange(n_lon)
    k1 = (k + 1) % n_lon
    tris = [np.column_stack([np.full(n_lon, top), 1 + k, 1 + k1])]
    for i in range(len(lat) - 1):
        a, b = 1 + i * n_lon, 1 + (i + 1) * n_lon
        tris.append(np.column_stack([a + k, b + k, b + k1]))
        tris.append(np.column_stack([a + k, b + k1, a + k1]))
    last = 1 + (len(lat) - 1) * n_lon
    tris.append(np.column_stack([last + k, np.full(n_lon, bot), last + k1]))
    return _finish(verts, np.vstack(tris), center, yaw_rad, class_id, instance_id, material)


def sphere_mesh(radius_m: float, center=(0.0, 0.0, 0.0), *, n_lat: int = 6, n_lon: int = 12,
                class_id: int, instance_id: int, material: int) -> TriangleMesh:
    """Closed low-poly sphere. Shape: center (3,) -> TriangleMesh."""
    return ellipsoid_mesh((radius_m, radius_m, radius_m), center, 0.0, n_lat=n_lat, n_lon=n_lon,
                          class_id=class_id, instance_id=instance_id, material=material)


def quad_mesh(corners_m, *, class_id: int, instance_id: int, material: int) -> TriangleMesh:
    """One planar quad (two triangles, an open surface) whose front side sees ``corners_m`` counter-clockwise.

    Used for the room shell, whose faces must point into the room. Shape: corners (4, 3) -> TriangleMesh(F=2).
    """
    c = np.asarray(corners_m, dtype=np.float64)
    if c.shape != (4, 3):
        raise ValueError(f"quad corners must be (4, 3), got {c.shape}")
    return labelled_mesh(c, np.array([[0, 1, 2], [0, 2, 3]]), class_id, instance_id, material)
