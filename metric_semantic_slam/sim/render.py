"""Ray-cast renderer of a simulated :class:`~metric_semantic_slam.sim.world.World`.

Geometry comes from a ray-cast scene (:mod:`.raycast`: Open3D's ``RaycastingScene``, or brute-force torch
where Open3D is absent), built once for the static mesh; the dynamic mesh, e.g. the walking person, is ray cast
in a small per-frame scene and the nearer hit wins. Per pixel
we get exact depth (z, not ray length), class / instance / material ids from the face labels, the
world hit point and the unit normal facing the camera. Color is the material's procedural texture
(:mod:`.textures`) times Lambert shading from ``World.light_positions_m`` plus ambient (and a small
Blinn-Phong highlight for specular materials), an optional global lighting gain/offset that varies
over time, camera vignetting and Gaussian sensor noise.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.camera import PinholeCamera
from .raycast import make_raycast_scene
from .textures import evaluate_texture
from .world import TriangleMesh, World

__all__ = ["RenderConfig", "RayHits", "RenderResult", "Renderer", "lighting_gain_offset"]


@dataclass(frozen=True)
class RenderConfig:
    """Options of the color renderer (all intensities relative, 1.0 = full white)."""

    ambient: float = 0.38
    """Ambient light level added to every surface."""
    light_intensity: float = 0.75
    """Diffuse irradiance of each point light at a surface ``light_falloff_m`` away, facing it."""
    light_falloff_m: float = 3.0
    """Distance at which a light's irradiance halves (``1 / (1 + (d / falloff)^2)``)."""
    specular_exponent: float = 24.0
    """Blinn-Phong exponent for materials with ``specular > 0``."""
    vignetting: float = 0.25
    """Relative darkening at the image corners (0 = none)."""
    noise_sigma_dn: float = 1.5
    """Std of the additive Gaussian sensor noise, in 8-bit digital numbers."""
    lighting_variation: float = 0.0
    """Amplitude of a smooth global gain/offset change over time, in [0, 1] (0 = constant lighting)."""
    lighting_period_s: float = 6.0
    """Main period of the lighting change."""
    raycast_threads: int = 0
    """Open3D ray-casting threads per call (0 = all cores; 1 when frames are rendered in parallel)."""
    texture_contrast: float = 1.0
    """Scale of every texture's variation about its material's base color (1 = as designed, 0 = flat
    color; small values give the low-texture scenes that defeat photometric tracking)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.lighting_variation <= 1.0:
            raise ValueError(f"lighting_variation must be in [0, 1], got {self.lighting_variation}")
        if self.noise_sigma_dn < 0 or self.ambient < 0 or self.light_intensity < 0:
            raise ValueError("ambient, light_intensity and noise_sigma_dn must be >= 0")
        if not 0.0 <= self.vignetting < 1.0:
            raise ValueError(f"vignetting must be in [0, 1), got {self.vignetting}")
        if self.raycast_threads < 0:
            raise ValueError(f"raycast_threads must be >= 0, got {self.raycast_threads}")
        if self.light_falloff_m <= 0 or self.lighting_period_s <= 0:
            raise ValueError("light_falloff_m and lighting_period_s must be positive")
        if not 0.0 <= self.texture_contrast <= 1.0:
            raise ValueError(f"texture_contrast must be in [0, 1], got {self.texture_contrast}")


def lighting_gain_offset(t_s: float, variation: float, period_s: float = 6.0) -> tuple[float, float]:
    """Global lighting ``(gain, offset)`` at time ``t_s``; ``(1, 0)`` when ``variation`` is 0.

    Two incommensurate sinusoids so the change never repeats exactly within a sequence; color is
    ``radiance * gain + offset``. Shape: scalars -> (gain, offset).
    """
    if variation == 0.0:
        return 1.0, 0.0
    w = 2.0 * np.pi / period_s
    gain = 1.0 + variation * (0.35 * np.sin(w * t_s) + 0.15 * np.sin(2.7 * w * t_s + 1.3))
    offset = variation * 0.05 * np.sin(1.63 * w * t_s + 0.4)
    return float(gain), float(offset)


@dataclass
class RayHits:
    """Per-pixel ray-cast geometry of one view.

    Shape: depth_m (H, W) float32 (z in meters, 0 = no hit); semantic, instance (H, W) uint16;
    material (H, W) int32 (-1 = no hit); points_world, normals_world (H, W, 3) float32 (normals are
    unit and face the camera); cos_incidence (H, W) float32 (|cos| of the angle between the ray and
    the normal); hit, dynamic (H, W) bool (dynamic: the hit is on the moving mesh).
    """

    depth_m: np.ndarray
    semantic: np.ndarray
    instance: np.ndarray
    material: np.ndarray
    points_world: np.ndarray
    normals_world: np.ndarray
    cos_incidence: np.ndarray
    hit: np.ndarray
    dynamic: np.ndarray


@dataclass
class RenderResult(RayHits):
    """:class:`RayHits` plus the shaded color image. Shape: color (H, W, 3) uint8 RGB."""

    color: np.ndarray = None  # type: ignore[assignment]


class Renderer:
    """Renders depth, labels and color of a :class:`World` from any pinhole camera pose.

    The static scene is built once; ``World.dynamic_mesh_at(t_s)`` is queried per call.
    Thread-safe for concurrent ``render``/``cast`` calls (only a cache of per-camera ray directions).
    ``raycaster``: :data:`.raycast.RAYCASTERS` (``auto``: Open3D when it imports, else torch). The backends
    agree to float precision (test_sim_raycast), not bit for bit.
    """

    def __init__(self, world: World, config: RenderConfig | None = None, raycaster: str = "auto") -> None:
        self.world = world
        self.config = config or RenderConfig()
        self.raycaster = raycaster
        mesh = world.static_mesh
        if len(mesh.triangles) == 0:
            raise ValueError("world.static_mesh has no triangles")
        if len(world.materials) >= 65535:
            raise ValueError(f"at most 65534 materials are supported, got {len(world.materials)}")
        if mesh.face_material.size and (mesh.face_material.min() < 0 or mesh.face_material.max() >= len(world.materials)):
            raise ValueError("static_mesh.face_material indexes outside world.materials")
        self._static = self._scene(mesh)
        # Per face (class, instance, material + 1), plus a final "no hit" row (0, 0, 0).
        self._static_labels = np.zeros((len(mesh.triangles) + 1, 3), np.uint16)
        self._static_labels[:-1, 0] = mesh.face_class
        self._static_labels[:-1, 1] = mesh.face_instance
        self._static_labels[:-1, 2] = mesh.face_material + 1
        self._ir_albedo = np.array([m.ir_albedo for m in world.materials] + [0.0], np.float32)
        lights = np.asarray(world.light_positions_m, np.float64).reshape(-1, 3)
        if len(lights) == 0:
            # No lights given: one ceiling light in the room centre keeps the scene readable.
            centre = 0.5 * (np.asarray(world.room_min_m) + np.asarray(world.room_max_m))
            lights = np.array([[centre[0], centre[1], float(world.room_max_m[2]) - 0.2]])
        self._lights = lights.astype(np.float32)
        self._dirs_cache: dict[tuple, np.ndarray] = {}

    def _scene(self, mesh: TriangleMesh):
        return make_raycast_scene(mesh.vertices, mesh.triangles, self.raycaster, self.config.raycast_threads)

    def _ray_dirs(self, camera: PinholeCamera) -> np.ndarray:
        key = (camera.width, camera.height, camera.fx, camera.fy, camera.cx, camera.cy)
        d = self._dirs_cache.get(key)
        if d is None:
            d = camera.ray_directions().reshape(-1, 3).astype(np.float32)
            self._dirs_cache[key] = d  # benign race: threads may compute the same array twice
        return d

    def _inv_ray_len(self, camera: PinholeCamera) -> np.ndarray:
        key = ("inv", camera.width, camera.height, camera.fx, camera.fy, camera.cx, camera.cy)
        d = self._dirs_cache.get(key)
        if d is None:
            d = (1.0 / np.linalg.norm(self._ray_dirs(camera), axis=1)).astype(np.float32)
            self._dirs_cache[key] = d
        return d

    def _vignette(self, camera: PinholeCamera) -> np.ndarray:
        key = ("vig", camera.width, camera.height, camera.cx, camera.cy)
        g = self._dirs_cache.get(key)
        if g is None:
            h, w = camera.shape
            u, v = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
            # Normalised so the corners of the image darken by about ``vignetting``.
            r2 = ((u - camera.cx) / (0.5 * w)) ** 2 + ((v - camera.cy) / (0.5 * h)) ** 2
            g = (1.0 - self.config.vignetting * 0.5 * r2).reshape(-1).astype(np.float32)
            self._dirs_cache[key] = g
        return g

    def ir_albedo(self, material: np.ndarray) -> np.ndarray:
        """IR reflectivity per pixel (0 where nothing was hit). Shape: (H, W) int -> (H, W) float32."""
        return self._ir_albedo[np.where(material >= 0, material, len(self._ir_albedo) - 1)]

    def dynamic_mesh(self, t_s: float) -> TriangleMesh | None:
        """The moving geometry at ``t_s`` (None when the world has none or it is empty).

        Shape: -> TriangleMesh of F faces, or None.
        """
        if self.world.dynamic_mesh_at is None:
            return None
        mesh = self.world.dynamic_mesh_at(t_s)
        if mesh is None or len(mesh.triangles) == 0:
            return None
        return mesh

    def cast(self, camera: PinholeCamera, T_world_camera: np.ndarray, t_s: float = 0.0,
             dynamic_mesh: TriangleMesh | None | str = "auto") -> RayHits:
        """Ray cast one view. ``dynamic_mesh="auto"`` asks the world for its mesh at ``t_s``.

        Shape: T_world_camera (4, 4) -> :class:`RayHits` of shape (H, W).
        """
        T = np.asarray(T_world_camera, np.float64)
        if T.shape != (4, 4):
            raise ValueError(f"T_world_camera must be 4x4, got {T.shape}")
        h, w = camera.shape
        dirs_cam = self._ray_dirs(camera)
        # z = 1 directions: Open3D's t_hit is in units of the direction length, i.e. exactly depth z.
        dirs = dirs_cam @ T[:3, :3].T.astype(np.float32)
        origin = T[:3, 3].astype(np.float32)
        t_hit, prim, normals = self._static.cast(origin, dirs)
        hit = np.isfinite(t_hit)
        # Misses (-1) take the extra last row of the label table.
        labels = self._static_labels[prim]
        sem = labels[:, 0].copy()
        inst = labels[:, 1].copy()
        mat = labels[:, 2].astype(np.int32) - 1
        dyn = np.zeros(h * w, bool)

        dmesh = self.dynamic_mesh(t_s) if isinstance(dynamic_mesh, str) else dynamic_mesh
        if dmesh is not None:
            sel = self._screen_box_rays(camera, T, dmesh)
            if sel is None or len(sel):
                idx = slice(None) if sel is None else sel
                dt = np.full(h * w, np.inf, np.float32)
                dprim_all = np.zeros(h * w, np.int64)
                dnorm = np.zeros((h * w, 3), np.float32)
                dt[idx], dprim_all[idx], dnorm[idx] = self._scene(dmesh).cast(origin, dirs[idx])
                closer = np.isfinite(dt) & (dt < t_hit)
                if closer.any():
                    dprim = dprim_all[closer]
                    t_hit = np.where(closer, dt, t_hit)
                    normals[closer] = dnorm[closer]
                    sem[closer] = dmesh.face_class[dprim]
                    inst[closer] = dmesh.face_instance[dprim]
                    mat[closer] = dmesh.face_material[dprim]
                    dyn = closer
                    hit = hit | closer

        depth = np.where(hit, t_hit, np.float32(0.0))
        points = origin[None, :] + dirs * depth[:, None]
        # Face the normal towards the camera: meshes need not be consistently wound.
        dn = np.einsum("ij,ij->i", normals, dirs)
        # Misses have zero normals and zero direction products, so they stay 0 without masking.
        normals *= np.where(dn > 0, np.float32(-1.0), np.float32(1.0))[:, None]
        cos_inc = np.abs(dn) * self._inv_ray_len(camera)
        return RayHits(
            depth_m=depth.reshape(h, w),
            semantic=sem.reshape(h, w),
            instance=inst.reshape(h, w),
            material=mat.reshape(h, w),
            points_world=points.reshape(h, w, 3),
            normals_world=normals.reshape(h, w, 3),
            cos_incidence=cos_inc.reshape(h, w),
            hit=hit.reshape(h, w),
            dynamic=dyn.reshape(h, w),
        )

    @staticmethod
    def _screen_box_rays(camera: PinholeCamera, T_world_camera: np.ndarray, mesh: TriangleMesh) -> np.ndarray | None:
        """Flat indices of the pixels inside the mesh's projected bounding box (None = all pixels).

        Only these rays can hit the mesh, so the per-frame dynamic cast skips the rest of the image.
        """
        R, t = T_world_camera[:3, :3], T_world_camera[:3, 3]
        p = (mesh.vertices - t) @ R  # world -> camera
        if (p[:, 2] <= 1e-3).any():
            if (p[:, 2] <= 1e-3).all():
                return np.zeros(0, np.int64)
            return None  # straddles the image plane: projection unreliable, cast everything
        u = camera.fx * p[:, 0] / p[:, 2] + camera.cx
        v = camera.fy * p[:, 1] / p[:, 2] + camera.cy
        u0, u1 = int(max(np.floor(u.min()) - 1, 0)), int(min(np.ceil(u.max()) + 1, camera.width - 1))
        v0, v1 = int(max(np.floor(v.min()) - 1, 0)), int(min(np.ceil(v.max()) + 1, camera.height - 1))
        if u0 > u1 or v0 > v1:
            return np.zeros(0, np.int64)
        vv, uu = np.mgrid[v0: v1 + 1, u0: u1 + 1]
        return (vv * camera.width + uu).reshape(-1)

    def albedo(self, hits: RayHits) -> np.ndarray:
        """Texture albedo per pixel (0 where nothing was hit). Shape: (H, W, 3) float32 in [0, 1]."""
        h, w = hits.depth_m.shape
        out = np.zeros((h * w, 3), np.float32)
        mat = hits.material.reshape(-1)
        pts = hits.points_world.reshape(-1, 3)
        nrm = hits.normals_world.reshape(-1, 3)
        for m in np.unique(mat[mat >= 0]):
            sel = np.nonzero(mat == m)[0]
            mt = self.world.materials[int(m)]
            out[sel] = evaluate_texture(mt.texture, pts[sel], nrm[sel], mt.texture_scale_m, mt.base_rgb,
                                        mt.secondary_rgb, seed=int(m) * 7919)
            if self.config.texture_contrast != 1.0:  # skipped at the default: output stays bit-identical
                base = np.asarray(mt.base_rgb, np.float32)
                out[sel] = base + np.float32(self.config.texture_contrast) * (out[sel] - base)
        return out.reshape(h, w, 3)

    def shade(self, hits: RayHits, camera: PinholeCamera, T_world_camera: np.ndarray, t_s: float,
              rng: np.random.Generator | None) -> np.ndarray:
        """Shaded, vignetted, noisy color of ray-cast hits. Shape: -> (H, W, 3) uint8 RGB."""
        cfg = self.config
        h, w = hits.depth_m.shape
        albedo = self.albedo(hits).reshape(-1, 3)
        pts = hits.points_world.reshape(-1, 3)
        nrm = hits.normals_world.reshape(-1, 3)
        irr = np.full(h * w, cfg.ambient, np.float32)
        spec = np.zeros(h * w, np.float32)
        ks = np.array([m.specular for m in self.world.materials] + [0.0], np.float32)
        mat = hits.material.reshape(-1)
        kspec = ks[np.where(mat >= 0, mat, len(ks) - 1)]
        shiny = np.nonzero(kspec > 0)[0]
        eye = np.asarray(T_world_camera, np.float32)[:3, 3]
        inv_f2 = np.float32(1.0 / cfg.light_falloff_m**2)
        if len(shiny):
            view = eye[None, :] - pts[shiny]
            view *= (1.0 / np.sqrt(np.maximum(np.einsum("ij,ij->i", view, view), 1e-12)))[:, None]
        # Expand |L - p|^2 and n.(L - p) so each light costs two (N, 3) @ (3,) products, not (N, 3) passes.
        pp = np.einsum("ij,ij->i", pts, pts)
        npdot = np.einsum("ij,ij->i", nrm, pts)
        for L in self._lights:
            d2 = np.maximum(pp - 2.0 * (pts @ L) + np.float32(L @ L), np.float32(1e-6))
            inv_d = 1.0 / np.sqrt(d2)
            ndotl = (nrm @ L - npdot) * inv_d
            np.clip(ndotl, 0.0, None, out=ndotl)
            fall = np.float32(cfg.light_intensity) / (1.0 + d2 * inv_f2)
            irr += fall * ndotl
            if len(shiny):
                # Blinn-Phong only where a material is specular (most surfaces are not).
                half = (L[None, :] - pts[shiny]) * inv_d[shiny, None] + view
                half *= (1.0 / np.sqrt(np.maximum(np.einsum("ij,ij->i", half, half), 1e-12)))[:, None]
                nh = np.clip(np.einsum("ij,ij->i", nrm[shiny], half), 0.0, None)
                spec[shiny] += fall[shiny] * nh**cfg.specular_exponent * (ndotl[shiny] > 0)
        rgb = albedo * irr[:, None] + (kspec * spec)[:, None]
        gain, offset = lighting_gain_offset(t_s, cfg.lighting_variation, cfg.lighting_period_s)
        rgb = rgb * gain + offset
        if cfg.vignetting > 0:
            rgb = rgb * self._vignette(camera)[:, None]
        rgb[~hits.hit.reshape(-1)] = 0.0
        dn = rgb * 255.0
        if rng is not None and cfg.noise_sigma_dn > 0:
            dn = dn + rng.normal(0.0, cfg.noise_sigma_dn, dn.shape).astype(np.float32)
        return np.clip(np.rint(dn), 0, 255).astype(np.uint8).reshape(h, w, 3)

    def render(self, camera: PinholeCamera, T_world_camera: np.ndarray, t_s: float = 0.0,
               rng: np.random.Generator | None = None,
               dynamic_mesh: TriangleMesh | None | str = "auto") -> RenderResult:
        """Ray cast and shade one color view; ``rng=None`` renders without sensor noise.

        Shape: T_world_camera (4, 4) -> :class:`RenderResult` of shape (H, W).
        """
        hits = self.cast(camera, T_world_camera, t_s, dynamic_mesh)
        color = self.shade(hits, camera, T_world_camera, t_s, rng)
        return RenderResult(**vars(hits), color=color)
