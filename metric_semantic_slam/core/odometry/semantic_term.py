"""Semantic reprojection term for dense tracking (Lianos et al. 2018, "VSO: Visual Semantic Odometry").

3D points of a *semantic anchor* frame, each with a class, are reprojected into the current frame and
penalised by the image distance to the nearest current pixel of the same class, read from per-class
distance transforms of the current labels: ``r_i = DT_{c_i}(pi(T_cur_world X_i)) / sigma_px``. Class
regions change little with lighting, texture or viewpoint, so the anchor's points keep constraining the
pose over many frames (medium-term tracking) after the photometric and ICP keyframes have been renewed,
which bounds the drift accumulated across keyframe switches.

As in VSO, every point carries a soft weight, the running mean of its semantic observation likelihood
``exp(-DT^2 / (2 sigma^2))`` at the tracked poses: points that keep landing outside their class
(mislabelled, occluded, moving) fade out instead of pulling the pose. Only points near a class boundary
are kept: inside a region the distance and its gradient are zero, so they carry no information.

Frames: points are stored in the world frame; the tracker's pose is ``T_ref_cur`` with the reference
(keyframe) pose ``T_world_ref`` known, and updates are ``T <- exp(xi) T`` with ``xi = (rho, phi)``.
Pixel distances are measured at pyramid level ``SemanticConfig.level``.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .dense_terms_np import huber_weights_np, remap_points, subsample_indices

__all__ = ["SemanticConfig", "SemanticDistanceMaps", "SemanticAnchor", "level_intrinsics", "downsample_labels"]


@dataclass(frozen=True)
class SemanticConfig:
    """Settings of the semantic reprojection term."""

    #: Weight of the term relative to ICP (after dividing residuals by ``sigma_px``); 0 disables it.
    #: (4 with sigma 2 px at 320x240 gave -21% ATE under lighting changes and low texture when the sim
    #: ablation renewed its keyframe at every frame; with keyframes that last, the ablation's 320x240
    #: frames use 1 at level 1 (160x120), chosen on seed 5: -11% there, see benchmarks/bench_odometry.py.)
    weight: float = 4.0
    #: Expected reprojection distance (pixels at ``level``) of a correctly labelled point.
    sigma_px: float = 2.0
    #: Pyramid level of the label images, distance transforms and anchor points (1 = half resolution,
    #: i.e. 320x240 for 640x480 frames).
    level: int = 1
    #: Classes used (None = every class in the labels except ``ignore_classes``).
    classes: tuple[int, ...] | None = None
    #: Classes never used (0 = unlabelled in the project's label space).
    ignore_classes: tuple[int, ...] = (0,)
    #: Points per anchor at most (evenly subsampled).
    max_points: int = 1500
    #: Anchor points lie within this many pixels (at ``level``) of a boundary of their class.
    boundary_px: int = 2
    #: Distances are clipped here (pixels at ``level``): beyond it a point gives no gradient.
    max_distance_px: float = 12.0
    #: Huber threshold on the normalised residual.
    huber_k: float = 2.0
    #: Gain of the running mean that updates a point's soft weight from each tracked frame.
    weight_gain: float = 0.2
    #: The anchor is renewed when fewer than this fraction of its points project into the image ...
    min_visible_fraction: float = 0.5
    #: ... or fewer than this fraction keep a soft weight above 0.5, or it is this many frames old.
    min_good_fraction: float = 0.3
    max_age_frames: int = 300
    #: A point whose reprojected depth disagrees with the current depth by more than this fraction is
    #: occluded (or disoccluded) and left out: near an occluding edge its label is the occluder's.
    occlusion_rel: float = 0.1

    def __post_init__(self) -> None:
        if self.weight < 0 or self.sigma_px <= 0 or self.huber_k <= 0 or self.max_distance_px <= 0:
            raise ValueError("semantic weight must be >= 0 and sigma_px, huber_k, max_distance_px positive")
        if self.level < 0 or self.max_points < 6 or self.boundary_px < 1:
            raise ValueError("semantic level must be >= 0, max_points >= 6 and boundary_px >= 1")
        if not 0 < self.weight_gain <= 1:
            raise ValueError(f"weight_gain must be in (0, 1], got {self.weight_gain}")


def level_intrinsics(fx: float, fy: float, cx: float, cy: float, level: int) -> tuple[float, float, float, float]:
    """Intrinsics at pyramid ``level`` (the convention of :mod:`.pyramid`)."""
    s = 2.0 ** level
    return fx / s, fy / s, (cx + 0.5) / s - 0.5, (cy + 0.5) / s - 0.5


def downsample_labels(labels: np.ndarray, level: int) -> np.ndarray:
    """Nearest-neighbour label image at pyramid ``level`` (a label is never averaged).

    Shape: (H, W) int -> (H // 2^level, W // 2^level) int32.
    """
    s = 2 ** level
    h, w = labels.shape[0] // s, labels.shape[1] // s
    return np.ascontiguousarray(labels[s // 2::s, s // 2::s][:h, :w], dtype=np.int32)


def _used_classes(labels: np.ndarray, cfg: SemanticConfig) -> np.ndarray:
    cls = np.unique(labels)
    if cfg.classes is not None:
        cls = cls[np.isin(cls, np.asarray(cfg.classes))]
    return cls[~np.isin(cls, np.asarray(cfg.ignore_classes))]


class SemanticDistanceMaps:
    """Per-class distance transforms of one frame's labels and their gradients, at one pyramid level.

    Shape: labels (H, W) int at full resolution; maps are stacked as (C * h, w, 3) float32 channels
    ``(distance, d/du, d/dv)`` in pixels of the level, one (h, w) block per class.
    """

    def __init__(self, labels: np.ndarray, cfg: SemanticConfig, only_classes: np.ndarray | None = None) -> None:
        """``only_classes``: compute maps for these classes only (e.g. those of the anchor's points)."""
        lab = downsample_labels(np.asarray(labels), cfg.level)
        self.shape = lab.shape
        self.labels = lab
        h, w = lab.shape
        self.classes = _used_classes(lab, cfg)
        if only_classes is not None:
            self.classes = self.classes[np.isin(self.classes, only_classes)]
        # cv2.remap reads images of < 32767 rows: keep the largest classes that fit.
        if len(self.classes) * h >= 32767:
            counts = np.array([(lab == c).sum() for c in self.classes])
            self.classes = np.sort(self.classes[np.argsort(-counts)[:32766 // h]])
        dist = np.empty((max(len(self.classes), 1) * h, w), np.float32)
        if len(self.classes) == 0:
            dist[:] = cfg.max_distance_px
        for k, c in enumerate(self.classes):
            # Distance of every pixel to the nearest pixel of class c (0 on the class itself).
            dist[k * h:(k + 1) * h] = cv2.distanceTransform((lab != c).astype(np.uint8), cv2.DIST_L2, 5)
        np.minimum(dist, np.float32(cfg.max_distance_px), out=dist)
        # One Sobel call over all blocks: only the rows where two blocks meet mix classes, and those are
        # image borders, which the reprojection rarely reaches.
        gx = cv2.Sobel(dist, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
        gy = cv2.Sobel(dist, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
        self.stack = cv2.merge([dist, gx, gy])
        self.distance = dist
        self._row = {int(c): k * h for k, c in enumerate(self.classes)}

    def class_rows(self, classes: np.ndarray) -> np.ndarray:
        """Row offset of each class's block in ``stack`` (-1 where the class is absent). Shape: (N,) -> (N,)."""
        out = np.full(classes.shape, -1, np.int64)
        for c, row in self._row.items():
            out[classes == c] = row
        return out


class SemanticAnchor:
    """Class-labelled 3D points of one frame (world frame) with VSO soft weights.

    Shape: points_w (3, N) float32 m, classes (N,) int, weights (N,) float32 in [0, 1].
    """

    def __init__(self, points_w: np.ndarray, classes: np.ndarray, stamp_s: float) -> None:
        self.points_w = np.ascontiguousarray(points_w, dtype=np.float32)
        self.classes = np.asarray(classes, dtype=np.int64)
        self.weights = np.ones(len(self.classes), np.float32)
        self.stamp_s = stamp_s
        self.age_frames = 0

    def __len__(self) -> int:
        return len(self.classes)

    @classmethod
    def from_frame(cls, labels_level: np.ndarray, vertices: np.ndarray, depth_valid: np.ndarray,
                   T_world_camera: np.ndarray, cfg: SemanticConfig, stamp_s: float) -> "SemanticAnchor":
        """Anchor points from a frame: labelled pixels with depth near a class boundary.

        Shape: labels_level (h, w), vertices (h, w, 3) camera frame, depth_valid (h, w) at ``cfg.level``.
        """
        lab = labels_level
        edge = np.zeros(lab.shape, np.uint8)
        edge[:, 1:] |= (lab[:, 1:] != lab[:, :-1])
        edge[:, :-1] |= (lab[:, 1:] != lab[:, :-1])
        edge[1:, :] |= (lab[1:, :] != lab[:-1, :])
        edge[:-1, :] |= (lab[1:, :] != lab[:-1, :])
        if cfg.boundary_px > 1:
            k = 2 * (cfg.boundary_px - 1) + 1
            edge = cv2.dilate(edge, np.ones((k, k), np.uint8))
        used = np.isin(lab, _used_classes(lab, cfg))
        idx = np.flatnonzero((edge > 0) & used & depth_valid)
        idx = subsample_indices(idx, cfg.max_points)
        P = vertices.reshape(-1, 3)[idx].astype(np.float64)
        Pw = P @ T_world_camera[:3, :3].T + T_world_camera[:3, 3]
        return cls(Pw.T, lab.reshape(-1)[idx], stamp_s)

    # ---------------------------------------------------------------- the term
    def system(self, maps: SemanticDistanceMaps, k_level: tuple[float, float, float, float],
               T_ref_world: np.ndarray, cfg: SemanticConfig, depth_level: np.ndarray | None = None):
        """The term's linear system as a function of ``T_ref_cur`` (for ``RgbdTracker.track``).

        ``depth_level`` (h, w) is the current depth at ``cfg.level`` for the occlusion test (None: no test).
        Returns ``T_ref_cur (4, 4) -> (H (6, 6), b (6,), weighted squared sum, count)``.
        """
        P = (T_ref_world[:3, :3].astype(np.float32) @ self.points_w
             + T_ref_world[:3, 3].astype(np.float32)[:, None])
        rows = maps.class_rows(self.classes)
        present = (rows >= 0) & (self.weights > 0.05)
        P, rows, pw = P[:, present], rows[present], self.weights[present]
        fx, fy, cx, cy = k_level
        h, w = maps.shape
        stack = maps.stack
        w_sem = cfg.weight
        inv_sigma = np.float32(1.0 / cfg.sigma_px)

        def system(T: np.ndarray):
            if P.shape[1] == 0 or w_sem <= 0:
                return np.zeros((6, 6)), np.zeros(6), 0.0, 0
            R = T[:3, :3].astype(np.float32)
            t = T[:3, 3].astype(np.float32)
            p = R.T @ (P - t[:, None])
            z = p[2]
            iz = 1.0 / np.maximum(z, np.float32(1e-6))
            u = (fx * p[0] * iz + cx).astype(np.float32)
            v = (fy * p[1] * iz + cy).astype(np.float32)
            inside = (z > 1e-3) & (u >= 0) & (u <= w - 1) & (v >= 0) & (v <= h - 1)
            if depth_level is not None:
                un = np.clip(np.rint(u), 0, w - 1).astype(np.intp)
                vn = np.clip(np.rint(v), 0, h - 1).astype(np.intp)
                dcur = np.take(depth_level.reshape(-1), vn * w + un)
                inside &= (dcur > 0) & (np.abs(dcur - z) <= cfg.occlusion_rel * z)
            vv = (np.clip(v, 0, h - 1) + rows).astype(np.float32)
            smp = remap_points(stack, u, vv)
            d, gx, gy = smp[:, 0], smp[:, 1], smp[:, 2]
            r = np.where(inside, d * inv_sigma, np.float32(0.0))
            jp = np.stack([gx * fx * iz, gy * fy * iz, -(gx * fx * p[0] + gy * fy * p[1]) * iz * iz])
            g = R @ jp
            J = -np.concatenate([g, np.cross(P, g, axis=0)], axis=0) * inv_sigma
            wgt = huber_weights_np(r, cfg.huber_k) * pw * inside * np.float32(w_sem)
            Jw = J * wgt
            return ((Jw @ J.T).astype(np.float64), (Jw @ r).astype(np.float64), float(np.dot(r * r, wgt)),
                    int(inside.sum()))

        return system

    def update(self, maps: SemanticDistanceMaps, k_level: tuple[float, float, float, float],
               T_world_camera: np.ndarray, cfg: SemanticConfig) -> tuple[float, float]:
        """Update the soft weights at a tracked pose; returns (visible fraction, good fraction)."""
        self.age_frames += 1
        if len(self) == 0:
            return 0.0, 0.0
        T_cw = np.linalg.inv(T_world_camera)
        p = T_cw[:3, :3] @ self.points_w + T_cw[:3, 3:4]
        fx, fy, cx, cy = k_level
        h, w = maps.shape
        z = p[2]
        iz = 1.0 / np.maximum(z, 1e-6)
        u = (fx * p[0] * iz + cx).astype(np.float32)
        v = (fy * p[1] * iz + cy).astype(np.float32)
        inside = (z > 1e-3) & (u >= 0) & (u <= w - 1) & (v >= 0) & (v <= h - 1)
        rows = maps.class_rows(self.classes)
        vv = (np.clip(v, 0, h - 1) + np.maximum(rows, 0)).astype(np.float32)
        d = remap_points(maps.distance, u, vv)
        d = np.where(rows >= 0, d, np.float32(cfg.max_distance_px))
        like = np.exp(-0.5 * (d / cfg.sigma_px) ** 2).astype(np.float32)
        g = np.float32(cfg.weight_gain)
        self.weights = np.where(inside, (1 - g) * self.weights + g * like, self.weights).astype(np.float32)
        visible = float(inside.mean())
        good = float(((self.weights > 0.5) & inside).mean())
        return visible, good

    def needs_renewal(self, visible: float, good: float, cfg: SemanticConfig) -> bool:
        """Whether to take a new anchor (too few points visible or consistent, or too old)."""
        return (len(self) < 6 or visible < cfg.min_visible_fraction or good < cfg.min_good_fraction
                or self.age_frames >= cfg.max_age_frames)
