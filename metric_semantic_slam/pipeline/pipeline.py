"""The incremental SLAM pipeline shared by ``msslam reconstruct`` and (later) the ROS nodes.

``Pipeline.step(frame)`` runs the stages on one frame; the stages are chosen by name from small
registries so later issues plug in their implementations (odometry: ``ground_truth`` or ``vio``;
mapper: ``semantic`` (the project's torch voxel mapper) or ``open3d``; labels: ``none`` or
``ground_truth`` (an oracle for evaluation) until the panoptic stage of issue #6 lands).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..io.frame import Frame
from .mapping_open3d import MeshArrays, Open3DTsdfMapper, TsdfMapperBase, TsdfMapperConfig

if TYPE_CHECKING:
    from ..core.odometry import VioConfig

__all__ = ["PipelineConfig", "StepResult", "Pipeline", "ODOMETRY_SOURCES", "MAPPERS", "LABEL_SOURCES"]

log = logging.getLogger(__name__)

ODOMETRY_SOURCES = ("ground_truth", "vio")
MAPPERS = ("semantic", "open3d")
LABEL_SOURCES = ("none", "ground_truth")


@dataclass(frozen=True)
class PipelineConfig:
    """Which stage implementations run, and their parameters."""

    odometry: str = "ground_truth"
    """Pose source: ``ground_truth`` (the frame's known pose) or ``vio`` (dense RGB-D tracking with the
    gyro as a rotation prior, ``core/odometry``)."""
    mapper: str = "semantic"
    """Mapping backend: ``semantic`` (torch voxel mapper with classes and instances) or ``open3d``
    (Open3D VoxelBlockGrid, geometry + color only)."""
    labels: str = "none"
    """Per-pixel labels fed to the mapper: ``none``, or ``ground_truth`` (the frame's known labels:
    an oracle for evaluating the rest of the system)."""
    device: str = "auto"
    """Torch device of the semantic mapper: ``auto`` (CUDA when present), ``cpu``, ``cuda``."""
    mapping: TsdfMapperConfig = field(default_factory=TsdfMapperConfig)
    vio: "VioConfig | None" = None
    """Odometry settings when ``odometry == "vio"`` (None: the defaults)."""

    def validate(self) -> None:
        if self.odometry not in ODOMETRY_SOURCES:
            raise ValueError(f"unknown odometry {self.odometry!r}; available: {ODOMETRY_SOURCES}")
        if self.mapper not in MAPPERS:
            raise ValueError(f"unknown mapper {self.mapper!r}; available: {MAPPERS}")
        if self.labels not in LABEL_SOURCES:
            raise ValueError(f"unknown labels {self.labels!r}; available: {LABEL_SOURCES}")
        if self.labels != "none" and self.mapper == "open3d":
            raise ValueError("the open3d mapper keeps no labels; use mapper 'semantic' with labels")
        self.mapping.validate()


@dataclass
class StepResult:
    """What one ``step`` did. ``status`` is ``ok``, ``no_pose`` or ``bad_input``."""

    index: int
    stamp_s: float
    T_world_camera: np.ndarray | None
    status: str
    message: str = ""


def _make_mapper(config: PipelineConfig) -> TsdfMapperBase:
    if config.mapper == "open3d":
        return Open3DTsdfMapper(config.mapping)
    if config.mapper == "semantic":
        from .mapping_semantic import SemanticTsdfMapper  # lazy: torch

        return SemanticTsdfMapper(config.mapping, device=config.device)
    raise ValueError(f"unknown mapper {config.mapper!r}")


class Pipeline:
    """Runs pose estimation and mapping frame by frame; keeps the estimated trajectory."""

    def __init__(self, config: PipelineConfig = PipelineConfig()) -> None:
        config.validate()
        self.config = config
        self.mapper = _make_mapper(config)
        self._vio = None
        if config.odometry == "vio":
            from ..core.odometry import VioConfig, VisualInertialOdometry  # lazy: torch

            self._vio = VisualInertialOdometry(config.vio if config.vio is not None else VioConfig())
        self.last_tracking = None
        self._stamps: list[float] = []
        self._poses: list[np.ndarray] = []
        self.counts = {"ok": 0, "no_pose": 0, "bad_input": 0}

    def _pose_of(self, frame: Frame) -> np.ndarray | None:
        if self.config.odometry == "ground_truth":
            return None if frame.gt is None else frame.gt.T_world_camera
        if self.config.odometry == "vio":
            result = self._vio.track(frame)  # never raises; a status says what happened
            self.last_tracking = result
            return result.T_world_camera if result.in_trajectory else None
        raise ValueError(f"unknown odometry {self.config.odometry!r}")

    def _labels_of(self, frame: Frame) -> tuple[np.ndarray | None, np.ndarray | None]:
        if self.config.labels == "ground_truth":
            if frame.gt is None or frame.gt.semantic is None:
                return None, None
            return frame.gt.semantic, frame.gt.instance
        return None, None

    def step(self, frame: Frame) -> StepResult:
        """Process one frame. Bad input is logged and skipped; the map is never left half-updated."""
        T_world_camera = self._pose_of(frame)
        if T_world_camera is None:
            self.counts["no_pose"] += 1
            log.warning("frame %d (t=%.6f): no pose from %s; skipped", frame.index, frame.stamp_s,
                        self.config.odometry)
            return StepResult(frame.index, frame.stamp_s, None, "no_pose", "no pose")
        semantic, instance = self._labels_of(frame)
        try:
            self.mapper.integrate(frame.depth_m, frame.color, frame.camera, T_world_camera,
                                  semantic=semantic, instance=instance)
        except ValueError as e:
            self.counts["bad_input"] += 1
            log.error("frame %d (t=%.6f) dropped: %s", frame.index, frame.stamp_s, e)
            return StepResult(frame.index, frame.stamp_s, T_world_camera, "bad_input", str(e))
        self._stamps.append(frame.stamp_s)
        self._poses.append(np.asarray(T_world_camera, dtype=np.float64))
        self.counts["ok"] += 1
        return StepResult(frame.index, frame.stamp_s, T_world_camera, "ok")

    def trajectory(self) -> tuple[np.ndarray, np.ndarray]:
        """Estimated ``(stamps_s (N,), T_world_camera (N, 4, 4))`` of the frames that were mapped."""
        if not self._poses:
            return np.zeros(0), np.zeros((0, 4, 4))
        return np.asarray(self._stamps), np.stack(self._poses)

    def mesh(self) -> MeshArrays:
        return self.mapper.extract_mesh()
