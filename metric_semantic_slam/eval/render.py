"""Headless mesh pictures: CPU ray casting with Open3D's ``RaycastingScene`` (no display, no OpenGL).

One ray per pixel through a :class:`PinholeCamera` at ``T_world_camera`` (optical frame: z forward,
x right, y down). The hit triangle's id and barycentric coordinates interpolate vertex colors
(or pick a face color); a headlight Lambert term (light at the camera) shades them. Misses are
the background color (white by default). Where Open3D does not import (the GPU machine, platforms
without its wheels) the triangles are rasterized with OpenCV instead, far to near, one flat color each
(``_rasterize``): the same view, edges within a pixel.

Views (:func:`auto_view`): ``"oblique"`` looks down at the mesh centre from above at an elevation
angle (world up given, z-up for the simulator); ``"top"`` looks straight down (pair it with a
narrow field of view, as :func:`save_mesh_png` does, for a near-orthographic plan);
``"principal"`` takes "up" from the mesh's principal axes (smallest-variance direction), for
datasets that are not gravity-aligned; ``"trajectory"`` starts from a camera pose (e.g. the first
pose of a trajectory: its -y axis is "up"), backs off and aims at the mesh centre.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from metric_semantic_slam.core.camera import PinholeCamera

__all__ = [
    "ErrorColors",
    "render_mesh",
    "look_at",
    "auto_view",
    "error_colored_mesh",
    "add_colorbar",
    "save_mesh_png",
    "VIEWS",
]

VIEWS = ("oblique", "top", "principal", "trajectory")
_DEFAULT_GRAY = np.array([200, 200, 200], dtype=np.float64)


@dataclass(frozen=True)
class ErrorColors:
    """Per-vertex error colors. Shape: colors (V, 3) uint8; distances_m (V,) float64."""

    colors: np.ndarray
    distances_m: np.ndarray
    threshold_m: float
    colormap: str = "turbo"


def _check_mesh(vertices: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(triangles)
    if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0:
        raise ValueError(f"vertices must be a non-empty (V, 3) array, got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3 or len(f) == 0:
        raise ValueError(f"triangles must be a non-empty (F, 3) array, got {f.shape}")
    if f.min() < 0 or f.max() >= len(v):
        raise ValueError("triangle indices out of range")
    return v, f.astype(np.int64)


def render_mesh(
    vertices: np.ndarray,
    triangles: np.ndarray,
    vertex_colors: np.ndarray | None,
    camera: PinholeCamera,
    T_world_camera: np.ndarray,
    face_colors: np.ndarray | None = None,
    background: tuple[int, int, int] = (255, 255, 255),
    ambient: float = 0.35,
) -> np.ndarray:
    """Render a triangle mesh to an RGB image.

    Colors: ``vertex_colors`` (interpolated), else ``face_colors``, else light gray.
    Shading: ``ambient + (1 - ambient) * |n . view_dir|`` (two-sided headlight).
    Without Open3D (e.g. the GPU machine, platforms without its wheels) the triangles are rasterized instead
    (``_rasterize``: flat colors per face, far to near), a picture of the same view.
    Shape: vertices (V, 3), triangles (F, 3), vertex_colors (V, 3) uint8, face_colors (F, 3)
    uint8, T_world_camera (4, 4) -> image (H, W, 3) uint8.
    """
    v, f = _check_mesh(vertices, triangles)
    if vertex_colors is not None:
        vertex_colors = np.asarray(vertex_colors)
        if vertex_colors.shape != (len(v), 3):
            raise ValueError(f"vertex_colors must be ({len(v)}, 3), got {vertex_colors.shape}")
    if face_colors is not None:
        face_colors = np.asarray(face_colors)
        if face_colors.shape != (len(f), 3):
            raise ValueError(f"face_colors must be ({len(f)}, 3), got {face_colors.shape}")
    T = np.asarray(T_world_camera, dtype=np.float64)
    if T.shape != (4, 4):
        raise ValueError(f"T_world_camera must be (4, 4), got {T.shape}")
    if not 0.0 <= ambient <= 1.0:
        raise ValueError(f"ambient must be in [0, 1], got {ambient}")
    try:
        import open3d as o3d  # lazy: heavy import, absent on the GPU machine
    except ImportError:
        return _rasterize(v, f, vertex_colors, face_colors, camera, T, background, ambient)

    # Ray cast in float32 around the mesh centre so distant scenes keep their precision.
    centre = v.mean(axis=0)
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor((v - centre).astype(np.float32)),
                        o3d.core.Tensor(f.astype(np.uint32)))
    dirs = camera.ray_directions().reshape(-1, 3) @ T[:3, :3].T
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    origins = np.broadcast_to(T[:3, 3] - centre, dirs.shape)
    rays = np.concatenate([origins, dirs], axis=1).astype(np.float32)
    hit = scene.cast_rays(o3d.core.Tensor(rays))
    prim = hit["primitive_ids"].numpy().astype(np.int64)
    valid = prim != int(o3d.t.geometry.RaycastingScene.INVALID_ID)
    img = np.empty((len(rays), 3), dtype=np.float64)
    img[:] = background
    if np.any(valid):
        pid = prim[valid]
        if vertex_colors is not None:
            uv = hit["primitive_uvs"].numpy()[valid].astype(np.float64)
            w = np.stack([1.0 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]], axis=1)
            c = vertex_colors.astype(np.float64)[f[pid]]  # (K, 3 corners, 3 rgb)
            rgb = np.einsum("kc,kcj->kj", w, c)
        elif face_colors is not None:
            rgb = face_colors.astype(np.float64)[pid]
        else:
            rgb = np.broadcast_to(_DEFAULT_GRAY, (len(pid), 3))
        n = hit["primitive_normals"].numpy()[valid].astype(np.float64)
        lambert = np.abs(np.sum(n * dirs[valid], axis=1))
        img[valid] = rgb * (ambient + (1.0 - ambient) * lambert)[:, None]
    return np.clip(np.round(img), 0, 255).astype(np.uint8).reshape(camera.height, camera.width, 3)


def _rasterize(v: np.ndarray, f: np.ndarray, vertex_colors: np.ndarray | None, face_colors: np.ndarray | None,
               camera: PinholeCamera, T_world_camera: np.ndarray, background: tuple[int, int, int],
               ambient: float, near_m: float = 0.05) -> np.ndarray:
    """``render_mesh`` without Open3D: every triangle in front of the camera filled (OpenCV, 1/16 px vertices)
    from the farthest to the nearest by mean depth (painter's order: right for the small triangles of a
    reconstructed mesh, which do not interpenetrate), with its mean vertex color (or face color) and the
    headlight term of its normal towards its centroid. Triangles crossing the near plane are left out. One
    OpenCV call per triangle, ~10 us each: about a second for a room's 75k-triangle mesh.
    Shape: as ``render_mesh``."""
    import cv2

    R, t = T_world_camera[:3, :3], T_world_camera[:3, 3]
    pc = (v - t) @ R                                   # camera frame: R^T (v - t)
    zf = pc[:, 2][f]                                   # (F, 3)
    keep = np.all(zf > near_m, axis=1) & np.all(np.isfinite(zf), axis=1)
    px = np.stack([camera.fx * pc[:, 0] / np.maximum(pc[:, 2], near_m) + camera.cx,
                   camera.fy * pc[:, 1] / np.maximum(pc[:, 2], near_m) + camera.cy], axis=1)
    tri = px[f]                                        # (F, 3, 2) pixel coordinates
    lo, hi = tri.min(axis=1), tri.max(axis=1)
    keep &= (hi[:, 0] >= 0) & (hi[:, 1] >= 0) & (lo[:, 0] < camera.width) & (lo[:, 1] < camera.height)
    keep &= np.all(np.abs(tri) < 1e5, axis=(1, 2))     # within OpenCV's fixed-point range
    idx = np.flatnonzero(keep)
    img = np.empty((camera.height, camera.width, 3), np.uint8)
    img[:] = background
    if len(idx) == 0:
        return img
    if vertex_colors is not None:
        rgb = vertex_colors.astype(np.float64)[f[idx]].mean(axis=1)
    elif face_colors is not None:
        rgb = face_colors.astype(np.float64)[idx]
    else:
        rgb = np.broadcast_to(_DEFAULT_GRAY, (len(idx), 3))
    corners = v[f[idx]]                                # (K, 3, 3) world
    n = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    ray = corners.mean(axis=1) - t
    ray /= np.maximum(np.linalg.norm(ray, axis=1, keepdims=True), 1e-12)
    shade = ambient + (1.0 - ambient) * np.abs(np.sum(n * ray, axis=1))
    colors = np.clip(np.round(rgb * shade[:, None]), 0, 255).astype(np.int64)
    order = np.argsort(-zf[idx].mean(axis=1), kind="stable")
    pts = np.round(tri[idx] * 16).astype(np.int32)     # 4 fractional bits (shift=4)
    for k in order:
        c = colors[k]
        cv2.fillConvexPoly(img, pts[k], (int(c[0]), int(c[1]), int(c[2])), lineType=cv2.LINE_8, shift=4)
    return img


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """``T_world_camera`` of an optical-frame camera at ``eye`` looking at ``target``, image-up ~ ``up``.

    Shape: eye (3,), target (3,), up (3,) -> (4, 4).
    """
    eye, target, up = (np.asarray(a, dtype=np.float64) for a in (eye, target, up))
    z = target - eye
    if np.linalg.norm(z) < 1e-12:
        raise ValueError("eye and target coincide")
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-6:
        # Looking along "up": any horizontal image axis will do; pick one that is stable.
        alt = np.array([0.0, 1.0, 0.0]) if abs(up[1]) < 0.9 * np.linalg.norm(up) else np.array([1.0, 0.0, 0.0])
        x = np.cross(z, alt)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)  # optical y points down in the image
    T = np.eye(4)
    T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = x, y, z, eye
    return T


def _principal_up(v: np.ndarray) -> np.ndarray:
    centred = v - v.mean(axis=0)
    _, vecs = np.linalg.eigh(centred.T @ centred)
    up = vecs[:, 0]  # smallest variance: the normal of the dominant "floor" extent
    # The sign of an eigenvector is arbitrary; prefer +z so z-up scenes stay upright.
    return up if up[2] >= 0 else -up


def auto_view(
    vertices: np.ndarray,
    camera: PinholeCamera,
    view: str = "oblique",
    up: np.ndarray = (0.0, 0.0, 1.0),
    elevation_deg: float = 35.0,
    azimuth_deg: float = -60.0,
    T_world_start: np.ndarray | None = None,
    backoff: float = 0.5,
    margin: float = 1.1,
) -> np.ndarray:
    """A ``T_world_camera`` that frames the whole mesh in ``camera`` (module docstring for views).

    The camera aims at the bounding-box centre and backs off just far enough that every vertex
    projects inside the image shrunk by ``margin`` (tight framing, not a bounding sphere). For
    ``"trajectory"`` give ``T_world_start``; the camera moves back along its optical axis by
    ``backoff`` x the bounding radius and re-aims at the mesh centre.
    Shape: vertices (V, 3), up (3,), T_world_start (4, 4) -> (4, 4).
    """
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; choose one of {VIEWS}")
    v = np.asarray(vertices, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0:
        raise ValueError(f"vertices must be a non-empty (V, 3) array, got {v.shape}")
    lo, hi = v.min(axis=0), v.max(axis=0)
    centre = 0.5 * (lo + hi)
    radius = max(float(np.linalg.norm(v - centre, axis=1).max()), 1e-3)
    up = np.asarray(up, dtype=np.float64)
    if view == "trajectory":
        if T_world_start is None:
            raise ValueError("view='trajectory' needs T_world_start (e.g. the first camera pose)")
        T0 = np.asarray(T_world_start, dtype=np.float64)
        eye = T0[:3, 3] - backoff * radius * T0[:3, 2] - 0.25 * backoff * radius * T0[:3, 1]
        return look_at(eye, centre, -T0[:3, 1])
    if view == "principal":
        up = _principal_up(v)
    if np.linalg.norm(up) < 1e-9:
        raise ValueError("up must be a non-zero vector")
    up = up / np.linalg.norm(up)
    if view == "top":
        return _fit_distance(v, centre, look_at(centre + up, centre, up), camera, margin)
    # Oblique: build a horizontal basis orthogonal to "up", then tilt by the elevation.
    ref = np.array([1.0, 0.0, 0.0]) if abs(up[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = np.cross(up, ref)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(up, e1)
    el, az = np.deg2rad(elevation_deg), np.deg2rad(azimuth_deg)
    direction = np.cos(el) * (np.cos(az) * e1 + np.sin(az) * e2) + np.sin(el) * up
    return _fit_distance(v, centre, look_at(centre + direction, centre, up), camera, margin)


def _fit_distance(v: np.ndarray, centre: np.ndarray, T_dir: np.ndarray, camera: PinholeCamera,
                  margin: float) -> np.ndarray:
    """Move a camera with orientation ``T_dir`` along its axis so all vertices fit the image."""
    if margin < 1.0:
        raise ValueError(f"margin must be >= 1, got {margin}")
    R = T_dir[:3, :3]
    q0 = (v - centre) @ R  # vertices in a camera frame sitting at the centre
    tan_x = min(camera.cx + 0.5, camera.width - 0.5 - camera.cx) / camera.fx / margin
    tan_y = min(camera.cy + 0.5, camera.height - 0.5 - camera.cy) / camera.fy / margin
    shift = np.zeros(2)
    for _ in range(4):
        # Camera at centre + shift - d * z: a vertex at depth q_z + d fits when |q_x| <= tan_x (q_z + d).
        q = q0 - np.r_[shift, 0.0]
        d = float(np.max(np.maximum(np.abs(q[:, 0]) / tan_x, np.abs(q[:, 1]) / tan_y) - q[:, 2]))
        d = max(d, float(np.max(-q[:, 2])) + 1e-3, 1e-3)
        # Perspective makes the projection lopsided: slide sideways to centre its extent, refit.
        ratio = q[:, :2] / (q[:, 2:3] + d)
        mid = 0.5 * (ratio.min(axis=0) + ratio.max(axis=0))
        shift = shift + mid * float(np.median(q[:, 2] + d))
    q = q0 - np.r_[shift, 0.0]
    d = float(np.max(np.maximum(np.abs(q[:, 0]) / tan_x, np.abs(q[:, 1]) / tan_y) - q[:, 2]))
    d = max(d, float(np.max(-q[:, 2])) + 1e-3, 1e-3)
    T = T_dir.copy()
    T[:3, 3] = centre + R[:, :2] @ shift - d * R[:, 2]
    return T


def error_colored_mesh(
    vertices: np.ndarray,
    gt_points: np.ndarray | None = None,
    gt_vertices: np.ndarray | None = None,
    gt_triangles: np.ndarray | None = None,
    threshold_m: float = 0.05,
    colormap: str = "turbo",
) -> ErrorColors:
    """Color each vertex by its distance to the ground truth, saturating at ``threshold_m``.

    Give a GT mesh (``gt_vertices`` + ``gt_triangles``: exact surface distance with Open3D, else the nearest
    of its samples 1 cm apart) or ``gt_points`` (nearest point). 0 m maps to the low end of ``colormap``,
    ``>= threshold_m`` to the high end.
    Shape: vertices (V, 3), gt_points (M, 3), gt_vertices (G, 3), gt_triangles (F, 3) ->
    colors (V, 3) uint8, distances (V,).
    """
    from matplotlib import colormaps

    from metric_semantic_slam.eval.machine import has_module
    from metric_semantic_slam.eval.mesh_metrics import (
        DEFAULT_DENSITY_PER_M2,
        nearest_distances,
        point_to_mesh_distances,
        sample_mesh_points,
    )

    if not threshold_m > 0:
        raise ValueError(f"threshold_m must be positive, got {threshold_m}")
    if (gt_points is None) == (gt_vertices is None or gt_triangles is None):
        raise ValueError("give either gt_points or both gt_vertices and gt_triangles")
    if gt_points is not None:
        d = nearest_distances(vertices, gt_points)
    elif has_module("open3d"):
        d = point_to_mesh_distances(vertices, gt_vertices, gt_triangles)
    else:
        gt_samples = sample_mesh_points(gt_vertices, gt_triangles, density=DEFAULT_DENSITY_PER_M2, rng=0).points
        d = nearest_distances(vertices, gt_samples)
    try:
        cmap = colormaps[colormap]
    except KeyError:
        raise ValueError(f"unknown matplotlib colormap {colormap!r}") from None
    rgba = cmap(np.clip(d / threshold_m, 0.0, 1.0))
    return ErrorColors(colors=np.round(rgba[:, :3] * 255).astype(np.uint8), distances_m=d,
                       threshold_m=float(threshold_m), colormap=colormap)


def add_colorbar(image: np.ndarray, threshold_m: float, colormap: str = "turbo",
                 label: str = "distance to ground truth") -> np.ndarray:
    """Append a horizontal color bar (0 m .. >= ``threshold_m``) under an error picture.

    Shape: image (H, W, 3) uint8 -> (H + 40, W, 3) uint8.
    """
    from matplotlib import colormaps
    from PIL import Image, ImageDraw

    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3), got {img.shape}")
    h, w = img.shape[:2]
    strip = np.full((40, w, 3), 255, dtype=np.uint8)
    x0, x1 = w // 8, w - w // 8
    ramp = colormaps[colormap](np.linspace(0.0, 1.0, max(x1 - x0, 1)))[:, :3]
    strip[4:16, x0:x1] = np.round(ramp * 255).astype(np.uint8)[None]
    canvas = Image.fromarray(np.concatenate([img.astype(np.uint8), strip], axis=0))
    draw = ImageDraw.Draw(canvas)
    draw.text((x0, h + 20), "0 m", fill=(0, 0, 0))
    right = f">= {threshold_m:g} m"
    draw.text((x1 - 6 * len(right), h + 20), right, fill=(0, 0, 0))
    draw.text((w // 2 - 3 * len(label), h + 20), label, fill=(0, 0, 0))
    return np.asarray(canvas)


def _load_mesh(mesh: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    if isinstance(mesh, (str, Path)):
        from metric_semantic_slam.io.ply import read_ply

        mesh = read_ply(mesh)
    if hasattr(mesh, "vertices") and hasattr(mesh, "faces"):
        if mesh.faces is None:
            raise ValueError("the PLY has no faces: cannot render a point cloud as a mesh")
        return mesh.vertices, mesh.faces, getattr(mesh, "vertex_colors", None)
    if isinstance(mesh, (tuple, list)) and len(mesh) in (2, 3):
        return mesh[0], mesh[1], (mesh[2] if len(mesh) == 3 else None)
    raise ValueError("mesh must be a PLY path, a PlyData, or a (vertices, triangles[, vertex_colors]) tuple")


def save_mesh_png(
    mesh: Any,
    path: str | Path,
    width: int = 640,
    height: int = 480,
    view: str = "oblique",
    vertex_colors: np.ndarray | None = None,
    face_colors: np.ndarray | None = None,
    T_world_camera: np.ndarray | None = None,
    camera: PinholeCamera | None = None,
    up: np.ndarray = (0.0, 0.0, 1.0),
    T_world_start: np.ndarray | None = None,
    fov_deg: float = 60.0,
    colorbar: ErrorColors | None = None,
) -> Path:
    """Render ``mesh`` (PLY path, PlyData, or arrays) to a PNG and return its path.

    ``T_world_camera`` + ``camera`` fix the view; otherwise :func:`auto_view` picks one (``"top"``
    uses a 10 degree field of view, far away: nearly orthographic). ``vertex_colors`` overrides
    the file's colors; ``colorbar`` (the :func:`error_colored_mesh` result) adds its scale.
    Shape: vertex_colors (V, 3) uint8, face_colors (F, 3) uint8, T_world_camera (4, 4).
    """
    from PIL import Image

    v, f, file_colors = _load_mesh(mesh)
    colors = vertex_colors if vertex_colors is not None else (file_colors if face_colors is None else None)
    if camera is None:
        fov = 10.0 if view == "top" else fov_deg
        fx = 0.5 * width / np.tan(np.deg2rad(fov) / 2.0)
        camera = PinholeCamera(width, height, fx, fx, (width - 1) / 2.0, (height - 1) / 2.0)
    if T_world_camera is None:
        T_world_camera = auto_view(v, camera, view=view, up=up, T_world_start=T_world_start)
    img = render_mesh(v, f, colors, camera, T_world_camera, face_colors=face_colors)
    if colorbar is not None:
        img = add_colorbar(img, colorbar.threshold_m, colorbar.colormap)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)
    return path
