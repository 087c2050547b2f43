"""Thresholds of the scene-graph builder (one frozen dataclass, validated)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["SceneGraphConfig", "DEFAULT_FRONT_CLASSES", "DEFAULT_SUPPORT_CLASSES"]

#: Classes whose objects face a direction (the simulator's ``FRONT_CLASSES``).
DEFAULT_FRONT_CLASSES: tuple[str, ...] = ("tv", "monitor", "sofa", "chair", "bed", "cabinet", "shelf")
#: Classes whose top faces are reported as support surfaces.
DEFAULT_SUPPORT_CLASSES: tuple[str, ...] = ("table", "cabinet", "shelf", "bed", "sofa", "box")


@dataclass(frozen=True)
class SceneGraphConfig:
    """Parameters of :class:`~metric_semantic_slam.core.scene_graph.builder.SceneGraphBuilder`.

    Relation thresholds default to those of the simulator's ``compute_relations`` so that the
    graph's relations are comparable with the simulated ground truth (see ``docs/scene_graph.md``).
    """

    up_world: tuple[float, float, float] = (0.0, 0.0, 1.0)
    """Unit "up" direction (against gravity) in the map frame; the simulator's world is z-up."""
    min_object_points: int = 10
    """Instances with fewer surface points (voxels) in the cloud get no object node."""
    min_object_voxels: int = 0
    """Instances whose ``MapInstance.voxel_count`` is below this get no node (0 = not checked)."""
    require_class_match: bool = True
    """Use only an instance's points whose voxel class equals the instance's class."""
    voxel_size_m: float = 0.04
    """Map voxel size; surface points are voxel centres, so boxes are grown by one voxel."""
    box_grow_voxels: float = 0.0
    """Boxes around the surface voxel centres are grown by this many voxels (calibrated on the
    simulator: the surface band already reaches about half a voxel beyond the true surface)."""
    # --- relations (defaults match sim/scene.py: compute_relations)
    contact_tol_m: float = 0.01
    """Simulator's tolerance for "resting on"; measured boxes add ``box_tol_m`` to it."""
    box_tol_m: float = 0.06
    """Extra tolerance for measured boxes (voxel quantisation, noise)."""
    near_m: float = 0.5
    """Gap between two boxes below which they are ``near``."""
    level_tol_m: float = 0.05
    """Bottoms within this (plus ``box_tol_m``) stand on the same level (for ``near``)."""
    front_range_m: float = 3.0
    """``in_front_of`` / ``behind`` only within this horizontal centre distance."""
    front_half_angle_rad: float = float(np.pi / 4)
    """Half angle of the front / back cones."""
    side_half_angle_rad: float = float(np.pi / 4)
    """Half angle of the left / right cones (about the reference's side axis)."""
    viewer_range_m: float = 1.5
    """Viewer-relative ``in_front_of`` / ``behind`` (objects without a front) only within this distance."""
    side_range_m: float = 1.5
    """``left_of`` / ``right_of`` only within this horizontal centre distance."""
    inside_share: float = 0.9
    """``inside``: share of A's box volume inside B's box (B a container class, A not under B)."""
    container_classes: tuple[str, ...] = ("shelf", "cabinet", "box")
    """Classes that can hold objects (``inside``)."""
    front_classes: tuple[str, ...] = DEFAULT_FRONT_CLASSES
    """Classes that have a front direction (estimated as pointing away from the nearest wall)."""
    front_wall_max_m: float = 0.6
    """A front object's back must be within this of a wall for the wall rule to apply."""
    support_classes: tuple[str, ...] = DEFAULT_SUPPORT_CLASSES
    """Classes whose top faces become support surfaces."""
    min_support_area_m2: float = 0.02
    """Smaller top faces are not reported as support surfaces."""
    # --- structure
    plane_min_points: int = 200
    """Floor / ceiling / wall planes need at least this many stuff points."""
    wall_bin_m: float = 0.05
    """Histogram bin used to find wall planes along their normal."""
    # --- updates
    position_change_m: float = 0.01
    """An object counts as changed when its box centre or extents move more than this."""
    full_every: int = 0
    """Every n-th update is a full update (0 = only the first one and after ``reset``)."""

    def validate(self) -> None:
        up = np.asarray(self.up_world, dtype=np.float64)
        if up.shape != (3,) or not np.isfinite(up).all() or np.linalg.norm(up) < 1e-6:
            raise ValueError(f"up_world must be a finite nonzero 3-vector, got {self.up_world}")
        for name in ("contact_tol_m", "box_tol_m", "level_tol_m", "position_change_m", "min_support_area_m2"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("near_m", "front_range_m", "viewer_range_m", "side_range_m", "voxel_size_m", "wall_bin_m", "front_wall_max_m"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("front_half_angle_rad", "side_half_angle_rad"):
            if not 0 < getattr(self, name) <= np.pi / 2:
                raise ValueError(f"{name} must be in (0, pi/2], got {getattr(self, name)}")
        if not 0 < self.inside_share <= 1:
            raise ValueError(f"inside_share must be in (0, 1], got {self.inside_share}")
        if not -2 <= self.box_grow_voxels <= 4:
            raise ValueError(f"box_grow_voxels must be in [-2, 4], got {self.box_grow_voxels}")
        for name in ("min_object_points", "min_object_voxels", "plane_min_points", "full_every"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["up_world"] = list(self.up_world)
        d["front_classes"] = list(self.front_classes)
        d["support_classes"] = list(self.support_classes)
        d["container_classes"] = list(self.container_classes)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SceneGraphConfig":
        d = dict(d)
        for k in ("up_world", "front_classes", "support_classes", "container_classes"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)
