"""Panoptic fusion of a semantic head and an instance head (Panoptic-FPN style heuristic).

Inputs are in the label space already (see ``remap.py`` for model ids -> label-space ids):

- a semantic map (H, W) of class ids (e.g. the argmax of semantic logits),
- instance predictions: N masks (N, H, W) (bool, or float probabilities thresholded at
  ``mask_threshold``), classes (N,), scores (N,) and optional boxes (N, 4) ``x0, y0, x1, y1`` in pixels
  (masks are clipped to their box when given).

Rules, in order:
1. instances below ``score_threshold`` or whose class is not a *thing* of the label space are dropped;
2. the rest are pasted by descending score: a pixel belongs to the best instance covering it; an instance
   whose visible part is less than ``overlap_threshold`` of its own mask (mostly hidden by better ones) or
   smaller than ``min_instance_area_px`` is dropped; connected pieces of a visible mask smaller than
   ``min_instance_area_px`` are removed;
3. pixels without an instance take the semantic map's class (stuff regions, and thing pixels that no
   instance claimed: class kept, instance 0);
4. connected regions of one semantic class (outside instances) smaller than ``min_stuff_area_px`` become 0
   (unknown).
Instance ids are 1..K in order of score, unique within the frame. Optional per-class probabilities
(C, H, W) are passed through unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..labels import LabelSpace
from .types import PanopticResult

__all__ = ["FusionConfig", "fuse_panoptic", "softmax_probabilities", "remove_small_regions"]


@dataclass(frozen=True)
class FusionConfig:
    score_threshold: float = 0.5
    mask_threshold: float = 0.5
    overlap_threshold: float = 0.5
    """Keep an instance only when at least this fraction of its mask is not taken by better ones."""
    min_instance_area_px: int = 16
    min_stuff_area_px: int = 64

    def validate(self) -> None:
        for name in ("score_threshold", "mask_threshold", "overlap_threshold"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v}")
        if self.min_instance_area_px < 0 or self.min_stuff_area_px < 0:
            raise ValueError("minimum areas must be >= 0")


def softmax_probabilities(logits: np.ndarray) -> np.ndarray:
    """Softmax over the class axis. Shape: (C, H, W) -> (C, H, W) float32."""
    x = np.asarray(logits, dtype=np.float32)
    x = x - x.max(axis=0, keepdims=True)
    np.exp(x, out=x)
    x /= x.sum(axis=0, keepdims=True)
    return x


def remove_small_regions(mask: np.ndarray, min_area_px: int) -> np.ndarray:
    """Drop 8-connected pieces of a boolean mask smaller than ``min_area_px``. Shape: (H, W) bool."""
    if min_area_px <= 1 or not mask.any():
        return mask
    n, lab, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_area_px
    keep[0] = False
    return keep[lab]


def _check_instances(masks, classes, scores, boxes, hw):
    masks = np.zeros((0,) + hw, dtype=bool) if masks is None else np.asarray(masks)
    n = masks.shape[0]
    if masks.ndim != 3 or masks.shape[1:] != hw:
        raise ValueError(f"instance masks must be (N, H, W) with (H, W) = {hw}, got {masks.shape}")
    classes = np.zeros(0, np.int64) if classes is None else np.asarray(classes).reshape(-1)
    scores = np.ones(n, np.float64) if scores is None else np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(classes) != n or len(scores) != n:
        raise ValueError(f"instance arrays disagree: {n} masks, {len(classes)} classes, {len(scores)} scores")
    if boxes is not None:
        boxes = np.asarray(boxes, dtype=np.float64)
        if boxes.shape != (n, 4):
            raise ValueError(f"instance boxes must be (N, 4) = ({n}, 4), got {boxes.shape}")
    return masks, classes.astype(np.int64), scores, boxes


def fuse_panoptic(
    semantic: np.ndarray,
    label_space: LabelSpace,
    masks: np.ndarray | None = None,
    classes: np.ndarray | None = None,
    scores: np.ndarray | None = None,
    boxes: np.ndarray | None = None,
    probabilities: np.ndarray | None = None,
    config: FusionConfig = FusionConfig(),
) -> PanopticResult:
    """Fuse a semantic map and instance predictions into one panoptic result (rules in the module doc).

    Shape: semantic (H, W) integer class ids; masks (N, H, W) bool or float; classes (N,) label-space ids;
    scores (N,) in [0, 1]; boxes (N, 4) or None; probabilities (C, H, W) or None -> PanopticResult (H, W).
    Class ids outside the label space become 0 (unknown).
    """
    config.validate()
    sem = np.asarray(semantic)
    if sem.ndim != 2 or sem.size == 0 or not np.issubdtype(sem.dtype, np.integer):
        raise ValueError(f"semantic must be a non-empty (H, W) integer array, got {sem.shape} {sem.dtype}")
    hw = sem.shape
    masks, classes, scores, boxes = _check_instances(masks, classes, scores, boxes, hw)
    if probabilities is not None:
        probabilities = np.asarray(probabilities, dtype=np.float32)
        if probabilities.ndim != 3 or probabilities.shape[1:] != hw:
            raise ValueError(f"probabilities must be (C, H, W) with (H, W) = {hw}, got {probabilities.shape}")

    max_id = label_space.max_id
    known = np.zeros(max_id + 1, dtype=bool)
    for lab in label_space.labels:
        known[lab.id] = True
    is_thing = label_space.thing_mask
    sem_out = np.where((sem >= 0) & (sem <= max_id), sem, 0).astype(np.int64)
    sem_out = np.where(known[sem_out], sem_out, 0)

    instance = np.zeros(hw, dtype=np.uint16)
    taken = np.zeros(hw, dtype=bool)
    inst_classes: dict[int, int] = {}
    inst_scores: dict[int, float] = {}
    next_id = 1
    for k in np.argsort(-scores, kind="stable"):
        c = int(classes[k])
        if scores[k] < config.score_threshold or not (0 < c <= max_id and known[c] and is_thing[c]):
            continue
        m = masks[k]
        m = m >= config.mask_threshold if m.dtype != bool else m
        if boxes is not None:
            x0, y0, x1, y1 = boxes[k]
            box = np.zeros(hw, dtype=bool)
            r0, r1 = max(0, int(np.floor(y0))), max(0, int(np.ceil(y1)))
            c0, c1 = max(0, int(np.floor(x0))), max(0, int(np.ceil(x1)))
            box[r0:r1, c0:c1] = True
            m = m & box
        area = int(m.sum())
        if area == 0:
            continue
        visible = m & ~taken
        if visible.sum() < config.overlap_threshold * area:
            continue  # mostly hidden by better instances
        visible = remove_small_regions(visible, config.min_instance_area_px)
        if visible.sum() < max(1, config.min_instance_area_px):
            continue
        if next_id > np.iinfo(np.uint16).max:
            break
        instance[visible] = next_id
        sem_out[visible] = c
        taken |= visible
        inst_classes[next_id] = c
        inst_scores[next_id] = float(np.clip(scores[k], 0.0, 1.0))
        next_id += 1

    # small connected regions of one class outside instances -> unknown
    if config.min_stuff_area_px > 1:
        free = ~taken
        for c in np.unique(sem_out[free]):
            if c == 0:
                continue
            region = free & (sem_out == c)
            small = region & ~remove_small_regions(region, config.min_stuff_area_px)
            sem_out[small] = 0
    return PanopticResult(sem_out.astype(np.uint16), instance, probabilities, inst_classes, inst_scores)
