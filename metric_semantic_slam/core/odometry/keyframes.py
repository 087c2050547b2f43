"""Keyframes for frame-to-keyframe tracking and the rule that decides when to take a new one.

Tracking against a keyframe instead of the previous frame lets the error of many frames share one
reference, so drift grows per keyframe, not per frame.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..geometry import rotation_angle_rad
from .pyramid import PyramidLevel

__all__ = ["Keyframe", "KeyframePolicy"]


@dataclass
class Keyframe:
    """A reference frame: its pyramid and pose. Shape: T_world_camera (4, 4)."""

    index: int
    stamp_s: float
    pyramid: list[PyramidLevel]
    T_world_camera: np.ndarray
    semantic: np.ndarray | None = None


@dataclass(frozen=True)
class KeyframePolicy:
    """When the current frame becomes the next keyframe (any condition suffices)."""

    #: Rotation from the keyframe (rad) above which the overlap gets too small.
    max_rotation_rad: float = 0.15
    #: Translation from the keyframe (m).
    max_translation_m: float = 0.1
    #: Fraction of current pixels associated with the keyframe below which the keyframe is renewed.
    min_inlier_ratio: float = 0.6
    #: Keyframe age in frames after which it is renewed anyway (0 = never).
    max_age_frames: int = 0

    def __post_init__(self) -> None:
        if self.max_rotation_rad <= 0 or self.max_translation_m <= 0:
            raise ValueError("keyframe motion thresholds must be positive")
        if not 0 <= self.min_inlier_ratio <= 1:
            raise ValueError(f"min_inlier_ratio must be in [0, 1], got {self.min_inlier_ratio}")

    def needs_new(self, T_kf_cur: np.ndarray, inlier_ratio: float, age_frames: int) -> bool:
        """Whether to renew the keyframe. Shape: T_kf_cur (4, 4)."""
        return bool(
            rotation_angle_rad(T_kf_cur[:3, :3]) > self.max_rotation_rad
            or np.linalg.norm(T_kf_cur[:3, 3]) > self.max_translation_m
            or inlier_ratio < self.min_inlier_ratio
            or (self.max_age_frames > 0 and age_frames >= self.max_age_frames)
        )
