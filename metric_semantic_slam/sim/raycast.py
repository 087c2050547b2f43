"""Ray casting of a triangle mesh from one viewpoint: Open3D's ``RaycastingScene``, or torch where Open3D is absent.

Both backends answer the same question for rays sharing one origin (a pinhole camera's): for each direction
``d`` the nearest hit ``origin + t * d`` with ``t > 0`` (``t`` in units of the direction's length, so z = 1
directions give depth), the hit triangle's index and its unit geometric normal ``normalize((v1 - v0) x
(v2 - v0))``. The torch backend tests every ray against every triangle (Moeller-Trumbore, the formulation of
Moeller & Trumbore 1997, rewritten for a shared origin so that the three numerators become one matrix product per
chunk of rays). That is brute force, fine for the simulator's few thousand triangles: a 640x480 view of a
2.5k-triangle room is ~0.8 G ray-triangle tests, milliseconds on a GPU, a few seconds on a CPU. It lets the
simulator run where only torch is installed (the GPU benchmark machine has no Open3D).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Protocol

import numpy as np

__all__ = ["RaycastScene", "Open3DRaycastScene", "TorchRaycastScene", "make_raycast_scene", "RAYCASTERS"]

RAYCASTERS = ("auto", "open3d", "torch")
"""Backend names: ``auto`` takes Open3D when it imports, torch otherwise."""


class RaycastScene(Protocol):
    def cast(self, origin: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Nearest hits of rays ``origin + t * dirs``.

        Shape: origin (3,), dirs (N, 3) float32 -> t_hit (N,) float32 (inf on a miss), triangle (N,) int64
        (-1 on a miss), normal (N, 3) float32 (zero on a miss).
        """
        ...


class Open3DRaycastScene:
    """Open3D's ``RaycastingScene`` (Embree BVH) over the mesh."""

    def __init__(self, vertices: np.ndarray, triangles: np.ndarray, threads: int = 0) -> None:
        import open3d as o3d

        self._o3d = o3d
        self.threads = int(threads)
        self.scene = o3d.t.geometry.RaycastingScene()
        if len(triangles):
            self.scene.add_triangles(o3d.core.Tensor(np.ascontiguousarray(vertices, dtype=np.float32)),
                                     o3d.core.Tensor(np.ascontiguousarray(triangles, dtype=np.uint32)))

    def cast(self, origin: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rays = np.empty((len(dirs), 6), np.float32)
        rays[:, :3] = np.asarray(origin, np.float32)
        rays[:, 3:] = dirs
        res = self.scene.cast_rays(self._o3d.core.Tensor(rays), nthreads=self.threads)
        t_hit = res["t_hit"].numpy()
        prim = res["primitive_ids"].numpy().astype(np.int64)
        prim[~np.isfinite(t_hit)] = -1  # Open3D's INVALID_ID (2^32 - 1)
        return t_hit, prim, res["primitive_normals"].numpy()


class TorchRaycastScene:
    """Brute-force ray-triangle tests in torch (CUDA when available): every ray against every triangle.

    ``chunk_elements`` bounds the (rays x triangles) block tested at once (memory: about 6 float32 arrays of
    that size); default 2^25 on CUDA, 2^22 on the CPU.
    """

    _EDGE_EPS = 1e-6  # barycentric slack: a ray on an edge shared by two triangles hits at least one of them

    def __init__(self, vertices: np.ndarray, triangles: np.ndarray, device: str | None = None,
                 chunk_elements: int | None = None) -> None:
        import torch

        self._torch = torch
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.chunk_elements = int(chunk_elements or (1 << 25 if self.device.type == "cuda" else 1 << 22))
        v = torch.as_tensor(np.asarray(vertices, np.float32), device=self.device)
        tri = torch.as_tensor(np.asarray(triangles, np.int64), device=self.device)
        self.n_triangles = len(tri)
        self.v0 = v[tri[:, 0]]
        self.e1 = v[tri[:, 1]] - self.v0
        self.e2 = v[tri[:, 2]] - self.v0
        n = torch.linalg.cross(self.e1, self.e2)
        self.normals = n / n.norm(dim=1, keepdim=True).clamp_min(1e-30)
        self.e2_x_e1 = torch.linalg.cross(self.e2, self.e1)  # det = d . (e2 x e1)

    def cast(self, origin: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        torch = self._torch
        n_rays = len(dirs)
        t_out = np.full(n_rays, np.inf, np.float32)
        prim_out = np.full(n_rays, -1, np.int64)
        nrm_out = np.zeros((n_rays, 3), np.float32)
        n_tri = self.n_triangles
        if n_tri == 0 or n_rays == 0:
            return t_out, prim_out, nrm_out
        o = torch.as_tensor(np.asarray(origin, np.float32), device=self.device)
        d_all = torch.as_tensor(np.ascontiguousarray(dirs, np.float32), device=self.device)
        # Shared origin: with s = o - v0, the Moeller-Trumbore numerators are u = d . (e2 x s),
        # v = d . (s x e1), t = e2 . (s x e1), all over det = d . (e2 x e1): one (N, 3) @ (3, 3T) product.
        s = o[None, :] - self.v0
        s_x_e1 = torch.linalg.cross(s, self.e1)
        weights = torch.cat([self.e2_x_e1, torch.linalg.cross(self.e2, s), s_x_e1], 0).T.contiguous()  # (3, 3T)
        t_num = (self.e2 * s_x_e1).sum(1)  # (T,)
        eps = self._EDGE_EPS
        step = max(1, self.chunk_elements // n_tri)
        t_hit = torch.empty(n_rays, dtype=torch.float32, device=self.device)
        prim = torch.empty(n_rays, dtype=torch.int64, device=self.device)
        with torch.inference_mode():
            for a in range(0, n_rays, step):
                r = d_all[a:a + step] @ weights
                det, u, v = r[:, :n_tri], r[:, n_tri:2 * n_tri], r[:, 2 * n_tri:]
                inv = det.reciprocal_()  # parallel rays: inf -> nan or inf below, rejected by the tests
                u.mul_(inv)
                v.mul_(inv)
                t = inv.mul_(t_num)
                miss = (u < -eps) | (v < -eps) | (u + v > 1.0 + eps) | ~(t > 0)
                t.masked_fill_(miss, float("inf"))
                best, idx = t.min(dim=1)
                t_hit[a:a + step] = best
                prim[a:a + step] = idx
            hit = torch.isfinite(t_hit)
            prim = torch.where(hit, prim, torch.full_like(prim, -1))
            nrm = torch.where(hit[:, None], self.normals[prim.clamp_min(0)], torch.zeros((), device=self.device))
        return t_hit.cpu().numpy(), prim.cpu().numpy(), nrm.cpu().numpy()


def make_raycast_scene(vertices: np.ndarray, triangles: np.ndarray, backend: str = "auto",
                       threads: int = 0) -> RaycastScene:
    """A ray-cast scene of the mesh. ``backend``: one of :data:`RAYCASTERS`; ``threads`` is Open3D's (0 = all)."""
    if backend not in RAYCASTERS:
        raise ValueError(f"raycaster must be one of {RAYCASTERS}, got {backend!r}")
    if backend == "open3d" or (backend == "auto" and _open3d_imports()):
        return Open3DRaycastScene(vertices, triangles, threads)
    return TorchRaycastScene(vertices, triangles)


@lru_cache(maxsize=1)
def _open3d_imports() -> bool:
    # once: a failed import is not cached by Python, and the renderer builds a scene per dynamic cast
    try:
        import open3d  # noqa: F401
    except ImportError:
        return False
    return True

