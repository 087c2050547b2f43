"""Mapping stage backed by the project's semantic voxel mapper (``core/mapping``, torch on CPU/CUDA)."""
from __future__ import annotations

import numpy as np

from ..core.camera import PinholeCamera
from ..core.labels import LabelSpace
from ..core.mapping import MapperConfig, SemanticVoxelMapper, TsdfConfig
from .mapping_open3d import MeshArrays, TsdfMapperBase, TsdfMapperConfig

__all__ = ["SemanticTsdfMapper"]


class SemanticTsdfMapper(TsdfMapperBase):
    """TSDF + color + per-voxel classes and instances; dynamic/private classes are never fused."""

    keeps_labels = True

    def __init__(self, config: TsdfMapperConfig = TsdfMapperConfig(), label_space: LabelSpace | None = None,
                 device: str = "auto") -> None:
        config.validate()
        self.config = config
        self.mapper = SemanticVoxelMapper(
            MapperConfig(
                tsdf=TsdfConfig(voxel_size_m=config.voxel_size_m, truncation_voxels=config.truncation_voxels,
                                depth_max_m=config.depth_max_m, block_resolution=config.block_resolution),
                device=device,
            ),
            label_space=label_space,
        )

    def integrate(self, depth_m: np.ndarray, color_rgb: np.ndarray, camera: PinholeCamera,
                  T_world_camera: np.ndarray, semantic: np.ndarray | None = None,
                  instance: np.ndarray | None = None) -> None:
        """Fuse one frame; invalid input raises ValueError and leaves the map unchanged.

        Shape: depth_m (H, W) meters, color_rgb (H, W, 3) uint8, semantic / instance (H, W) ids.
        """
        self.mapper.integrate(depth_m, color_rgb, camera, T_world_camera, semantic=semantic, instance=instance)

    def extract_mesh(self) -> MeshArrays:
        m = self.mapper.extract_mesh()
        return MeshArrays(vertices=m.vertices.astype(np.float64), triangles=m.triangles.astype(np.int64),
                          colors=m.colors, classes=m.classes, instances=m.instances)
