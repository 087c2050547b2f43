"""The panoptic stage contract: input, result and the backend protocol.

Every backend (``oracle``, ``geometric``, ``builtin``, ``torchscript``, ``onnx``) takes a
:class:`PanopticInput` and returns a :class:`PanopticResult` in the project's label space.
Images are in the color camera's pixel grid; depth is registered to color (see ``core/camera.py``
for the optical-frame convention: z forward, x right, y down).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from ..camera import PinholeCamera
from ..labels import LabelSpace

__all__ = ["PanopticInput", "PanopticResult", "PanopticBackend", "validate_input", "validate_result",
           "empty_result"]


@dataclass
class PanopticInput:
    """One frame for the panoptic stage.

    Shape: color (H, W, 3) uint8 RGB; depth_m (H, W) float32 meters (0 or NaN = invalid), registered to
    color; gravity_camera (3,) unit vector: the direction gravity pulls, in the camera optical frame
    (for a level camera looking forward it is about (0, 1, 0)); gt_semantic / gt_instance (H, W) uint16
    ground-truth labels, read only by the ``oracle`` backend.
    """

    color: np.ndarray
    depth_m: np.ndarray | None = None
    camera: PinholeCamera | None = None
    gravity_camera: np.ndarray | None = None
    gt_semantic: np.ndarray | None = None
    gt_instance: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """Image shape ``(H, W)``."""
        return (int(self.color.shape[0]), int(self.color.shape[1]))


@dataclass
class PanopticResult:
    """Panoptic labels of one frame in a label space.

    Shape: semantic (H, W) uint16 class ids (0 = unknown); instance (H, W) uint16 instance ids
    (0 = none / stuff; every other id is unique within the frame and has one class);
    probabilities (C, H, W) float32 over label-space ids 0..C-1 (C = max_id + 1) or None.
    ``instance_classes`` maps instance id -> class id, ``instance_scores`` instance id -> score in [0, 1].
    """

    semantic: np.ndarray
    instance: np.ndarray
    probabilities: np.ndarray | None = None
    instance_classes: dict[int, int] = field(default_factory=dict)
    instance_scores: dict[int, float] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.semantic.shape[0]), int(self.semantic.shape[1]))


@runtime_checkable
class PanopticBackend(Protocol):
    """What every panoptic backend provides. ``predict`` raises ValueError on bad input."""

    name: str
    label_space: LabelSpace

    def predict(self, inp: PanopticInput) -> PanopticResult: ...

    def predict_batch(self, inputs: list[PanopticInput]) -> list[PanopticResult]: ...


def validate_input(inp: PanopticInput, *, need_depth: bool = False, need_camera: bool = False,
                   need_gt: bool = False) -> None:
    """Check a :class:`PanopticInput`; raise ValueError saying what is wrong.

    Checks: color is (H, W, 3) uint8 with H, W > 0; depth (when given or needed) is (H, W) floating;
    camera (when given) matches (H, W); gravity (when given) is a finite nonzero 3-vector; gt labels
    (when given or needed) are (H, W) integer arrays.
    """
    if not isinstance(inp, PanopticInput):
        raise ValueError(f"expected a PanopticInput, got {type(inp).__name__}")
    c = inp.color
    if not isinstance(c, np.ndarray):
        raise ValueError(f"color must be a numpy array, got {type(c).__name__}")
    if c.ndim != 3 or c.shape[2] != 3:
        raise ValueError(f"color must be (H, W, 3) RGB, got shape {c.shape}")
    if c.shape[0] == 0 or c.shape[1] == 0:
        raise ValueError(f"color image is empty: shape {c.shape}")
    if c.dtype != np.uint8:
        raise ValueError(f"color must be uint8, got {c.dtype}")
    hw = c.shape[:2]
    if inp.depth_m is None:
        if need_depth:
            raise ValueError("this backend needs depth_m (registered to color); got None")
    else:
        d = inp.depth_m
        if not isinstance(d, np.ndarray) or d.shape != hw:
            raise ValueError(f"depth_m must be (H, W) = {hw}, got {getattr(d, 'shape', type(d).__name__)}")
        if not np.issubdtype(d.dtype, np.floating):
            raise ValueError(f"depth_m must be float meters, got {d.dtype}")
    if inp.camera is None:
        if need_camera:
            raise ValueError("this backend needs the camera intrinsics; got None")
    elif inp.camera.shape != hw:
        raise ValueError(f"camera {inp.camera.shape} does not match image {hw}")
    if inp.gravity_camera is not None:
        g = np.asarray(inp.gravity_camera, dtype=np.float64)
        if g.shape != (3,) or not np.all(np.isfinite(g)) or np.linalg.norm(g) < 1e-9:
            raise ValueError(f"gravity_camera must be a finite nonzero (3,) vector, got {inp.gravity_camera!r}")
    for name in ("gt_semantic", "gt_instance"):
        a = getattr(inp, name)
        if a is None:
            if need_gt and name == "gt_semantic":
                raise ValueError("this backend needs gt_semantic (ground-truth labels); got None")
            continue
        if not isinstance(a, np.ndarray) or a.shape != hw or not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"{name} must be an (H, W) = {hw} integer array, got "
                             f"{getattr(a, 'shape', None)} {getattr(a, 'dtype', type(a).__name__)}")


def validate_result(res: PanopticResult, shape: tuple[int, int], num_classes: int | None = None) -> None:
    """Check a result's shapes, dtypes and instance bookkeeping (used by tests and the node)."""
    if res.semantic.shape != shape or res.instance.shape != shape:
        raise ValueError(f"result shapes {res.semantic.shape}/{res.instance.shape} != {shape}")
    if res.semantic.dtype != np.uint16 or res.instance.dtype != np.uint16:
        raise ValueError(f"result dtypes must be uint16, got {res.semantic.dtype}/{res.instance.dtype}")
    ids = set(int(i) for i in np.unique(res.instance)) - {0}
    if ids != set(res.instance_classes):
        raise ValueError(f"instance ids {sorted(ids)} != instance_classes keys {sorted(res.instance_classes)}")
    if res.probabilities is not None:
        p = res.probabilities
        if p.ndim != 3 or p.shape[1:] != shape or p.dtype != np.float32:
            raise ValueError(f"probabilities must be (C, H, W) float32, got {p.shape} {p.dtype}")
        if num_classes is not None and p.shape[0] != num_classes:
            raise ValueError(f"probabilities have {p.shape[0]} classes, expected {num_classes}")


def empty_result(shape: tuple[int, int]) -> PanopticResult:
    """All-unknown result of the given ``(H, W)``."""
    return PanopticResult(np.zeros(shape, np.uint16), np.zeros(shape, np.uint16), None, {}, {})
