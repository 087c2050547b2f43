"""Semantic voxel mapping (torch, CPU/CUDA): voxel blocks, TSDF, semantics, instances, meshing."""
from .instances import InstanceConfig, InstanceTracker, MapInstance
from .mapper import IntegrationStats, MapperConfig, MeshUpdate, SemanticCloud, SemanticVoxelMapper, resolve_device
from .meshing import SemanticMesh, marching_cubes_blocks, marching_cubes_tables
from .semantics import SEMANTIC_FUSIONS, SemanticConfig, make_semantic_fusion
from .tsdf import TsdfConfig
from .voxel_blocks import BlockIndex, BlockStore

__all__ = [
    "BlockIndex", "BlockStore", "InstanceConfig", "InstanceTracker", "IntegrationStats", "MapInstance",
    "MapperConfig", "MeshUpdate", "SEMANTIC_FUSIONS", "SemanticCloud", "SemanticConfig", "SemanticMesh",
    "SemanticVoxelMapper", "TsdfConfig", "make_semantic_fusion", "marching_cubes_blocks",
    "marching_cubes_tables", "resolve_device",
]
