"""The incremental SLAM pipeline shared by ``msslam reconstruct`` and (later) the ROS nodes.

``Pipeline.step(frame)`` runs the stages on one frame; the stages are chosen by name from small
registries so later issues plug in their implementations (odometry: ``ground_truth`` or ``vio``;
mapper: ``semantic`` (the project's torch voxel mapper) or ``open3d``; labels: ``none``,
``ground_truth`` (the frame's labels as they are), or a panoptic backend of ``core/panoptic``:
``oracle`` (ground truth with optional noise), ``geometric`` (model-free), ``builtin`` (the trained
network), ``torchscript`` / ``onnx`` (a user's model with an adapter YAML)).

With a label source set, the labels are computed first and given to the odometry as well
(``frame.semantic`` / ``frame.instance`` of a copy of the frame): the VIO then uses its semantic
reprojection term and leaves dynamic classes (a walking person) out of tracking. With ``labels="none"``
the frame goes to the odometry unchanged.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from ..io.frame import Frame
from .mapping_open3d import MeshArrays, Open3DTsdfMapper, TsdfMapperBase, TsdfMapperConfig

if TYPE_CHECKING:
    from ..core.odometry import VioConfig

__all__ = ["PipelineConfig", "StepResult", "Pipeline", "ODOMETRY_SOURCES", "MAPPERS", "LABEL_SOURCES",
           "PANOPTIC_LABEL_SOURCES"]

log = logging.getLogger(__name__)

ODOMETRY_SOURCES = ("ground_truth", "vio")
MAPPERS = ("semantic", "open3d")
LABEL_SOURCES = ("none", "ground_truth", "oracle", "geometric", "builtin", "torchscript", "onnx")
PANOPTIC_LABEL_SOURCES = ("oracle", "geometric", "builtin", "torchscript", "onnx")


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
    """Per-pixel labels fed to the mapper: ``none``; ``ground_truth`` (the frame's known labels: an
    oracle for evaluating the rest of the system); or a panoptic backend (``PANOPTIC_LABEL_SOURCES``).
    ``geometric`` gets gravity from the ground-truth pose when the odometry is ``ground_truth`` (the
    world frame must be z-up, as in the simulator and TUM), else from the mean accelerometer reading of
    the frame's IMU samples (needs ``T_camera_imu``), else estimates it from the depth normals."""
    panoptic_model: str | None = None
    """Model file of the ``torchscript`` / ``onnx`` label sources."""
    panoptic_adapter: str | None = None
    """Adapter YAML of the ``torchscript`` / ``onnx`` label sources (see ``core/panoptic/model.py``)."""
    oracle_noise: float = 0.0
    """Fraction of segments the ``oracle`` label source relabels wrongly (seeded)."""
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
        if self.labels in ("torchscript", "onnx") and (not self.panoptic_model or not self.panoptic_adapter):
            raise ValueError(f"labels {self.labels!r} need panoptic_model and panoptic_adapter")
        if not 0.0 <= self.oracle_noise <= 1.0:
            raise ValueError(f"oracle_noise must be in [0, 1], got {self.oracle_noise}")
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
        self.panoptic = None
        if config.labels in PANOPTIC_LABEL_SOURCES:
            from ..core.panoptic import make_backend  # lazy: torch / onnxruntime

            options: dict = {}
            if config.labels in ("torchscript", "onnx"):
                options = {"model_path": config.panoptic_model, "adapter_path": config.panoptic_adapter,
                           "device": config.device}
            elif config.labels == "builtin":
                options = {"device": config.device, "return_probabilities": False}  # labels are what the map uses
            elif config.labels == "oracle":
                options = {"noise_fraction": config.oracle_noise, "seed": 0}
            self.panoptic = make_backend(config.labels, **options)
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

    def _gravity_camera(self, frame: Frame) -> np.ndarray | None:
        """Gravity direction in the camera frame (unit (3,)), or None when unknown."""
        if self.config.odometry == "ground_truth" and frame.gt is not None and frame.gt.T_world_camera is not None:
            R = np.asarray(frame.gt.T_world_camera, np.float64)[:3, :3]
            if np.all(np.isfinite(R)):
                return R.T @ np.array([0.0, 0.0, -1.0])  # z-up world
        imu = frame.imu
        if imu is not None and len(imu) > 0 and frame.T_camera_imu is not None:
            a = np.nanmean(np.asarray(imu.accel_m_s2, np.float64), axis=0)
            if np.all(np.isfinite(a)) and 7.0 < np.linalg.norm(a) < 12.5:  # roughly static: reads -gravity
                g = -np.asarray(frame.T_camera_imu, np.float64)[:3, :3] @ a
                return g / np.linalg.norm(g)
        return None

    def _labels_of(self, frame: Frame) -> tuple[np.ndarray | None, np.ndarray | None]:
        if self.config.labels == "ground_truth":
            if frame.gt is None or frame.gt.semantic is None:
                return None, None
            return frame.gt.semantic, frame.gt.instance
        if self.panoptic is not None:
            from ..core.panoptic import PanopticInput

            gt = frame.gt
            if self.config.labels == "oracle" and (gt is None or gt.semantic is None):
                return None, None
            inp = PanopticInput(
                color=frame.color, depth_m=frame.depth_m, camera=frame.camera,
                gravity_camera=self._gravity_camera(frame) if self.config.labels == "geometric" else None,
                gt_semantic=None if gt is None else gt.semantic, gt_instance=None if gt is None else gt.instance)
            res = self.panoptic.predict(inp)  # ValueError on bad input: the frame is dropped by step()
            return res.semantic, res.instance
        return None, None

    def step(self, frame: Frame) -> StepResult:
        """Process one frame. Bad input is logged and skipped; the map is never left half-updated.

        Labels (when a source is set) are computed before the odometry and passed to it in a copy of the
        frame; a label failure (ValueError) still tracks the frame, without labels, and then drops it.
        """
        semantic = instance = None
        label_error: ValueError | None = None
        if self.config.labels != "none":
            try:
                semantic, instance = self._labels_of(frame)
                if semantic is not None:
                    frame = replace(frame, semantic=semantic, instance=instance)  # the caller's frame stays
            except ValueError as e:
                label_error = e
        T_world_camera = self._pose_of(frame)
        if T_world_camera is None:
            self.counts["no_pose"] += 1
            log.warning("frame %d (t=%.6f): no pose from %s; skipped", frame.index, frame.stamp_s,
                        self.config.odometry)
            return StepResult(frame.index, frame.stamp_s, None, "no_pose", "no pose")
        try:
            if label_error is not None:
                raise label_error
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
