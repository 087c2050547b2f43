"""Trajectory error metrics: absolute trajectory error (ATE) and relative pose error (RPE).

Definitions follow evo (github.com/MichaelGrupp/evo, v1.38) so numbers can be cross-checked
(``test/eval/test_trajectory_metrics.py`` compares both to 1e-6):

- **Association** (evo ``sync.associate_trajectories`` with ``SyncMethod.nearest_time``): every
  pose of the trajectory with FEWER poses is paired with the nearest stamp of the other one when
  ``|dt| <= max_diff_s`` (default 0.01 s, evo's default); on a tie the earlier stamp wins. A pose
  of the longer trajectory may be used more than once.
- **Alignment** of the estimate onto the ground truth (Umeyama 1991, least squares on positions):
  ``"se3"`` (rotation + translation), ``"sim3"`` (plus a scale), ``"origin"`` (first poses made
  equal, evo ``align_origin``) or ``"none"``.
- **ATE** (evo ``APE`` with ``PoseRelation.translation_part``): per pose
  ``|| p_est_aligned(i) - p_gt(i) ||`` in meters; rmse/mean/median/std/min/max over poses.
- **RPE** (evo ``RPE``, ``all_pairs=False``): pairs ``(i, i + delta)`` stepping by ``delta``
  (frames), or consecutive pairs ``delta`` meters of travelled path apart (meters);
  ``E = (Q_i^-1 Q_j)^-1 (P_i^-1 P_j)`` with Q ground truth, P estimate; translation error
  ``||t(E)||`` (m), rotation error ``angle(R(E))`` (deg).

Reference: S. Umeyama, "Least-squares estimation of transformation parameters between two point
patterns", IEEE TPAMI 13(4), 1991. J. Sturm et al., "A benchmark for the evaluation of RGB-D
SLAM systems", IROS 2012 (ATE/RPE).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from scipy.spatial.transform import Rotation

from metric_semantic_slam.core.geometry import invert_transform

__all__ = [
    "TrajectoryLike",
    "ErrorStats",
    "Alignment",
    "AteResult",
    "RpeResult",
    "associate_stamps",
    "align_umeyama",
    "align_trajectories",
    "compute_ate",
    "compute_rpe",
]

ALIGN_MODES = ("se3", "sim3", "origin", "none")


class TrajectoryLike(Protocol):
    """Anything with ``stamps_s`` (N,) and ``T_world_camera`` (N, 4, 4), e.g. ``io.trajectory.Trajectory``."""

    stamps_s: np.ndarray
    T_world_camera: np.ndarray


@dataclass(frozen=True)
class ErrorStats:
    """Summary statistics of a 1-D error array (same definitions as evo: std is population std)."""

    rmse: float
    mean: float
    median: float
    std: float
    min: float
    max: float
    count: int

    @staticmethod
    def of(errors: np.ndarray) -> "ErrorStats":
        e = np.asarray(errors, dtype=np.float64)
        if e.size == 0:
            raise ValueError("cannot compute statistics of an empty error array")
        return ErrorStats(
            rmse=float(np.sqrt(np.mean(e**2))),
            mean=float(np.mean(e)),
            median=float(np.median(e)),
            std=float(np.std(e)),
            min=float(np.min(e)),
            max=float(np.max(e)),
            count=int(e.size),
        )

    def to_dict(self) -> dict:
        return dict(rmse=self.rmse, mean=self.mean, median=self.median, std=self.std,
                    min=self.min, max=self.max, count=self.count)


@dataclass(frozen=True)
class Alignment:
    """Similarity applied to the estimate: ``p_aligned = scale * R @ p + t``.

    ``T_gt_est`` is the rigid part as a 4x4 (rotation ``R``, translation ``t``).
    """

    mode: str
    R: np.ndarray
    t: np.ndarray
    scale: float

    @property
    def T_gt_est(self) -> np.ndarray:
        T = np.eye(4)
        T[:3, :3] = self.R
        T[:3, 3] = self.t
        return T

    def to_dict(self) -> dict:
        return {"mode": self.mode, "R": self.R.tolist(), "t": self.t.tolist(), "scale": self.scale}


@dataclass
class AteResult:
    """Absolute trajectory error (translation part, meters) after alignment.

    Shape: stamps_s (M,), errors_m (M,), rotation_errors_deg (M,), gt_positions (M, 3),
    est_positions_aligned (M, 3); M = matched pose count.
    """

    stats: ErrorStats
    alignment: Alignment
    stamps_s: np.ndarray
    errors_m: np.ndarray
    rotation_errors_deg: np.ndarray
    gt_positions: np.ndarray
    est_positions_aligned: np.ndarray
    matched: int = field(default=0)

    @property
    def rmse(self) -> float:
        return self.stats.rmse

    def to_dict(self) -> dict:
        return {"translation_m": self.stats.to_dict(),
                "rotation_deg": ErrorStats.of(self.rotation_errors_deg).to_dict(),
                "matched": self.matched, "alignment": self.alignment.to_dict()}


@dataclass
class RpeResult:
    """Relative pose error over pose pairs ``(i, j)`` (indices into the associated trajectories).

    Shape: pairs (K, 2) int, translation_errors_m (K,), rotation_errors_deg (K,).
    """

    translation: ErrorStats
    rotation_deg: ErrorStats
    pairs: np.ndarray
    translation_errors_m: np.ndarray
    rotation_errors_deg: np.ndarray
    delta: float
    delta_unit: str
    matched: int

    def to_dict(self) -> dict:
        return {"translation_m": self.translation.to_dict(), "rotation_deg": self.rotation_deg.to_dict(),
                "delta": self.delta, "delta_unit": self.delta_unit, "pairs": int(len(self.pairs)),
                "matched": self.matched}


def _check_traj(traj: TrajectoryLike, name: str) -> tuple[np.ndarray, np.ndarray]:
    stamps = np.asarray(traj.stamps_s, dtype=np.float64)
    T = np.asarray(traj.T_world_camera, dtype=np.float64)
    if stamps.ndim != 1 or T.shape != (len(stamps), 4, 4):
        raise ValueError(f"{name}: expected stamps (N,) and T_world_camera (N, 4, 4), "
                         f"got {stamps.shape} and {T.shape}")
    if len(stamps) == 0:
        raise ValueError(f"{name} trajectory is empty")
    return stamps, T


def _nearest_indices(stamps_short: np.ndarray, stamps_long: np.ndarray, max_diff_s: float
                     ) -> tuple[np.ndarray, np.ndarray]:
    if np.all(np.diff(stamps_long) >= 0):
        # searchsorted(side="right") then prefer the lower neighbour on a tie, as evo does.
        hi = np.clip(np.searchsorted(stamps_long, stamps_short, side="right"), 0, len(stamps_long) - 1)
        diff_ub = stamps_long[hi] - stamps_short
        diff_lb = np.where(hi > 0, stamps_short - stamps_long[np.maximum(hi - 1, 0)], np.inf)
        in_range = (stamps_short >= stamps_long[0] - max_diff_s) & (stamps_short <= stamps_long[-1] + max_diff_s)
        take_ub = (diff_ub <= max_diff_s) & (diff_ub < diff_lb)
        take_lb = ~take_ub & (diff_lb <= max_diff_s) & (diff_lb <= diff_ub)
        ok = in_range & (take_ub | take_lb)
        best = np.where(take_ub, hi, hi - 1)
        idx_short = np.nonzero(ok)[0]
        return idx_short, best[ok].astype(np.int64)
    # Unsorted stamps: plain nearest neighbour (first minimum), like evo's linear fallback.
    diffs = np.abs(stamps_long[None, :] - stamps_short[:, None])
    best = np.argmin(diffs, axis=1)
    ok = diffs[np.arange(len(stamps_short)), best] <= max_diff_s
    return np.nonzero(ok)[0], best[ok].astype(np.int64)


def associate_stamps(stamps_gt: np.ndarray, stamps_est: np.ndarray, max_diff_s: float = 0.01
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(i_gt, i_est)`` of matched poses, nearest stamp within ``max_diff_s`` (evo rules).

    The trajectory with fewer poses drives the search (each of its poses matched at most once); on
    equal length the estimate drives. Pairs come out in the order of the driving trajectory.
    Shape: stamps (N,), (M,) -> i_gt (K,), i_est (K,).
    """
    if max_diff_s < 0:
        raise ValueError(f"max_diff_s must be >= 0, got {max_diff_s}")
    stamps_gt = np.asarray(stamps_gt, dtype=np.float64)
    stamps_est = np.asarray(stamps_est, dtype=np.float64)
    if len(stamps_est) > len(stamps_gt):
        i_gt, i_est = _nearest_indices(stamps_gt, stamps_est, max_diff_s)
    else:
        i_est, i_gt = _nearest_indices(stamps_est, stamps_gt, max_diff_s)
    if len(i_gt) == 0:
        raise ValueError(f"no matching timestamps between ground truth and estimate within "
                         f"max_diff_s={max_diff_s} s (gt {stamps_gt.min() if len(stamps_gt) else 'empty'}.., "
                         f"est {stamps_est.min() if len(stamps_est) else 'empty'}..)")
    return i_gt, i_est


def align_umeyama(src: np.ndarray, dst: np.ndarray, with_scale: bool = False
                  ) -> tuple[np.ndarray, np.ndarray, float]:
    """Least-squares similarity ``dst ~ s * R @ src + t`` (Umeyama 1991, eqs. 34-43).

    Returns ``(R (3, 3), t (3,), s)``; ``s = 1`` when ``with_scale`` is False.
    Shape: src (N, 3), dst (N, 3).
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 3:
        raise ValueError(f"src and dst must both be (N, 3), got {src.shape} and {dst.shape}")
    n = len(src)
    mu_src, mu_dst = src.mean(axis=0), dst.mean(axis=0)
    xs, ys = src - mu_src, dst - mu_dst
    var_src = float(np.sum(xs**2)) / n
    cov = ys.T @ xs / n
    U, d, Vt = np.linalg.svd(cov)
    if np.count_nonzero(d > np.finfo(np.float64).eps) < 2:
        raise ValueError("degenerate point configuration (rank < 2): alignment is not defined")
    S = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        S[2, 2] = -1.0  # a reflection would fit better; force a proper rotation
    R = U @ S @ Vt
    s = float(np.trace(np.diag(d) @ S) / var_src) if with_scale else 1.0
    t = mu_dst - s * R @ mu_src
    return R, t, s


def _associate(gt: TrajectoryLike, est: TrajectoryLike, max_diff_s: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    stamps_gt, T_gt = _check_traj(gt, "ground truth")
    stamps_est, T_est = _check_traj(est, "estimate")
    i_gt, i_est = associate_stamps(stamps_gt, stamps_est, max_diff_s)
    return stamps_gt[i_gt], T_gt[i_gt], T_est[i_est]


def align_trajectories(T_gt: np.ndarray, T_est: np.ndarray, align: str = "se3"
                       ) -> tuple[np.ndarray, Alignment]:
    """Align associated estimate poses onto ground-truth poses.

    Returns the aligned estimate (rotation ``R @ R_est``, position ``s * R @ p + t``) and the
    :class:`Alignment`. Shape: T_gt (N, 4, 4), T_est (N, 4, 4) -> (N, 4, 4).
    """
    if align not in ALIGN_MODES:
        raise ValueError(f"unknown alignment {align!r}; choose one of {ALIGN_MODES}")
    if align in ("se3", "sim3"):
        if len(T_gt) < 3:
            raise ValueError(f"{align} alignment needs at least 3 matched poses, got {len(T_gt)}")
        R, t, s = align_umeyama(T_est[:, :3, 3], T_gt[:, :3, 3], with_scale=(align == "sim3"))
    elif align == "origin":
        T = T_gt[0] @ invert_transform(T_est[0])
        R, t, s = T[:3, :3], T[:3, 3], 1.0
    else:
        R, t, s = np.eye(3), np.zeros(3), 1.0
    out = np.array(T_est, dtype=np.float64, copy=True)
    out[:, :3, :3] = R @ T_est[:, :3, :3]
    out[:, :3, 3] = s * T_est[:, :3, 3] @ R.T + t
    return out, Alignment(mode=align, R=np.asarray(R), t=np.asarray(t), scale=float(s))


def _rotation_angles_deg(R: np.ndarray) -> np.ndarray:
    return np.rad2deg(Rotation.from_matrix(R).magnitude())


def compute_ate(gt: TrajectoryLike, est: TrajectoryLike, align: str = "se3",
                max_diff_s: float = 0.01) -> AteResult:
    """Absolute trajectory error of ``est`` against ``gt`` (see module docstring).

    Shape: gt, est with stamps (N,), (M,) and T_world_camera (N, 4, 4), (M, 4, 4).
    """
    stamps, T_gt, T_est = _associate(gt, est, max_diff_s)
    T_al, alignment = align_trajectories(T_gt, T_est, align)
    errors = np.linalg.norm(T_al[:, :3, 3] - T_gt[:, :3, 3], axis=1)
    R_err = np.swapaxes(T_gt[:, :3, :3], 1, 2) @ T_al[:, :3, :3]
    return AteResult(
        stats=ErrorStats.of(errors),
        alignment=alignment,
        stamps_s=stamps,
        errors_m=errors,
        rotation_errors_deg=_rotation_angles_deg(R_err),
        gt_positions=T_gt[:, :3, 3].copy(),
        est_positions_aligned=T_al[:, :3, 3].copy(),
        matched=len(stamps),
    )


def _pairs(T: np.ndarray, delta: float, delta_unit: str) -> np.ndarray:
    n = len(T)
    if delta_unit == "frames":
        if delta < 1 or float(delta) != int(delta):
            raise ValueError(f"delta in frames must be a positive integer, got {delta}")
        ids = np.arange(0, n, int(delta))
    elif delta_unit == "meters":
        if delta <= 0:
            raise ValueError(f"delta in meters must be positive, got {delta}")
        # Consecutive pairs: restart the path count each time it reaches delta (evo's rule).
        steps = np.linalg.norm(np.diff(T[:, :3, 3], axis=0), axis=1)
        ids_list, acc = [0], 0.0
        for i, step in enumerate(steps, start=1):
            acc += float(step)
            if acc >= delta:
                ids_list.append(i)
                acc = 0.0
        ids = np.array(ids_list)
    else:
        raise ValueError(f"unknown delta_unit {delta_unit!r}; choose 'frames' or 'meters'")
    pairs = np.stack([ids[:-1], ids[1:]], axis=1) if len(ids) > 1 else np.zeros((0, 2), np.int64)
    if len(pairs) == 0:
        raise ValueError(f"delta={delta} {delta_unit} gives no pose pairs among {n} matched poses")
    return pairs.astype(np.int64)


def compute_rpe(gt: TrajectoryLike, est: TrajectoryLike, delta: float = 1, delta_unit: str = "frames",
                max_diff_s: float = 0.01, align: str = "none") -> RpeResult:
    """Relative pose error of ``est`` against ``gt`` (evo ``RPE``, consecutive pairs).

    Pairs are chosen on the (aligned) estimate, as evo does by default. A rigid alignment does not
    change RPE; ``align="sim3"`` rescales the estimate first (monocular systems).
    Shape: gt, est with stamps (N,), (M,) and T_world_camera (N, 4, 4), (M, 4, 4).
    """
    _, T_gt, T_est = _associate(gt, est, max_diff_s)
    if align != "none":
        T_est, _ = align_trajectories(T_gt, T_est, align)
    pairs = _pairs(T_est, delta, delta_unit)
    i, j = pairs[:, 0], pairs[:, 1]
    Q_rel = invert_transform(T_gt[i]) @ T_gt[j]
    P_rel = invert_transform(T_est[i]) @ T_est[j]
    E = invert_transform(Q_rel) @ P_rel
    t_err = np.linalg.norm(E[:, :3, 3], axis=1)
    r_err = _rotation_angles_deg(E[:, :3, :3])
    return RpeResult(
        translation=ErrorStats.of(t_err),
        rotation_deg=ErrorStats.of(r_err),
        pairs=pairs,
        translation_errors_m=t_err,
        rotation_errors_deg=r_err,
        delta=float(delta),
        delta_unit=delta_unit,
        matched=len(T_gt),
    )
