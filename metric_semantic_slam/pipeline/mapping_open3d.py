"""TSDF mapping stage backed by Open3D's tensor ``VoxelBlockGrid`` (CPU).

This is the foundation's interim mapper: geometry and color only. The project's own semantic
voxel mapper (torch, CPU/CUDA) replaces it behind the same :class:`TsdfMapperBase` interface.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.camera import PinholeCamera
from ..core.geometry import invert_transform

__all__ = ["MeshArrays", "TsdfMapperConfig", "TsdfMapperBase", "Open3DTsdfMapper"]


@dataclass
class MeshArrays:
    """A triangle mesh as arrays.

    Shape: vertices (V, 3) float64 world meters, triangles (F, 3) int64, colors (V, 3) uint8 RGB;
    classes / instances (V,) int (None when the mapper keeps no labels).
    """

    vertices: np.ndarray
    triangles: np.ndarray
    colors: np.ndarray
    classes: np.ndarray | None = None
    instances: np.ndarray | None = None


@dataclass(frozen=True)
class TsdfMapperConfig:
    """TSDF integration parameters."""

    voxel_size_m: float = 0.04
    """Voxel edge length."""
    truncation_voxels: float = 4.0
    """Truncation distance as a multiple of the voxel size (0.16 m at 4 cm voxels)."""
    depth_max_m: float = 5.0
    """Depth beyond this range is ignored (structured-light noise grows with z^2)."""
    block_resolution: int = 8
    """Voxels per block edge (8^3 voxels per block)."""
    initial_block_count: int = 40000
    """Initial hash-map capacity in blocks (grows on demand)."""

    def validate(self) -> None:
        if not self.voxel_size_m > 0:
            raise ValueError(f"voxel_size_m must be > 0, got {self.voxel_size_m}")
        if not self.truncation_voxels >= 1:
            raise ValueError(f"truncation_voxels must be >= 1, got {self.truncation_voxels}")
        if not self.depth_max_m > 0:
            raise ValueError(f"depth_max_m must be > 0, got {self.depth_max_m}")


class TsdfMapperBase:
    """Interface of a mapping stage: integrate posed RGB-D frames (with optional labels), extract a mesh."""

    keeps_labels = False

    def integrate(self, depth_m: np.ndarray, color_rgb: np.ndarray, camera: PinholeCamera,
                  T_world_camera: np.ndarray, semantic: np.ndarray | None = None,
                  instance: np.ndarray | None = None) -> None:
        raise NotImplementedError

    def extract_mesh(self) -> MeshArrays:
        raise NotImplementedError


def _check_frame(depth_m: np.ndarray, color_rgb: np.ndarray, camera: PinholeCamera, T_world_camera: np.ndarray) -> None:
    if depth_m.shape != camera.shape:
        raise ValueError(f"depth shape {depth_m.shape} does not match camera {camera.shape}")
    if color_rgb.shape != camera.shape + (3,):
        raise ValueError(f"color shape {color_rgb.shape} does not match camera {camera.shape + (3,)}")
    T = np.asarray(T_world_camera)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        raise ValueError("T_world_camera must be a finite 4x4 matrix")


class Open3DTsdfMapper(TsdfMapperBase):
    """TSDF + color fusion in an Open3D ``VoxelBlockGrid`` on the CPU (labels are ignored)."""

    def __init__(self, config: TsdfMapperConfig = TsdfMapperConfig()) -> None:
        import open3d as o3d  # lazy: open3d is optional outside this stage
        import open3d.core as o3c

        config.validate()
        self.config = config
        self._o3d, self._o3c = o3d, o3c
        self._device = o3c.Device("CPU:0")
        self._grid = o3d.t.geometry.VoxelBlockGrid(
            attr_names=("tsdf", "weight", "color"),
            attr_dtypes=(o3c.float32, o3c.float32, o3c.float32),
            attr_channels=((1), (1), (3)),
            voxel_size=config.voxel_size_m,
            block_resolution=config.block_resolution,
            block_count=config.initial_block_count,
            device=self._device,
        )
        self.frames_integrated = 0

    def integrate(self, depth_m: np.ndarray, color_rgb: np.ndarray, camera: PinholeCamera,
                  T_world_camera: np.ndarray, semantic: np.ndarray | None = None,
                  instance: np.ndarray | None = None) -> None:
        """Fuse one registered RGB-D frame (``semantic``/``instance`` are not used by this backend).

        Shape: depth_m (H, W) float meters (0/NaN invalid), color_rgb (H, W, 3) uint8.
        """
        _check_frame(depth_m, color_rgb, camera, T_world_camera)
        o3d, o3c = self._o3d, self._o3c
        depth = np.where(np.isfinite(depth_m) & (depth_m > 0), depth_m, 0.0).astype(np.float32)
        if not np.any(depth > 0):
            return
        depth_img = o3d.t.geometry.Image(o3c.Tensor(np.ascontiguousarray(depth)))
        color_img = o3d.t.geometry.Image(o3c.Tensor(np.ascontiguousarray(color_rgb.astype(np.float32) / 255.0)))
        K = o3c.Tensor(camera.K, o3c.float64)
        T_camera_world = o3c.Tensor(invert_transform(np.asarray(T_world_camera, np.float64)), o3c.float64)
        c = self.config
        blocks = self._grid.compute_unique_block_coordinates(depth_img, K, T_camera_world, 1.0, c.depth_max_m,
                                                             c.truncation_voxels)
        self._grid.integrate(blocks, depth_img, color_img, K, T_camera_world, 1.0, c.depth_max_m,
                             c.truncation_voxels)
        self.frames_integrated += 1

    def extract_mesh(self) -> MeshArrays:
        """Marching-cubes mesh of the zero level set with interpolated colors."""
        if self.frames_integrated == 0:
            return MeshArrays(np.zeros((0, 3)), np.zeros((0, 3), np.int64), np.zeros((0, 3), np.uint8))
        mesh = self._grid.extract_triangle_mesh(weight_threshold=1.0).to_legacy()
        colors = np.asarray(mesh.vertex_colors)
        return MeshArrays(
            vertices=np.asarray(mesh.vertices).astype(np.float64),
            triangles=np.asarray(mesh.triangles).astype(np.int64),
            colors=(np.clip(colors, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8) if len(colors)
            else np.zeros((len(mesh.vertices), 3), np.uint8),
        )
