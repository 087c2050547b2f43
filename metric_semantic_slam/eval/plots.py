"""PNG plots of evaluation results (matplotlib, Agg canvas: works without a display).

Figures are built with ``matplotlib.figure.Figure`` + the Agg canvas instead of ``pyplot`` so no
global backend or figure state is touched (safe inside nodes, tests and notebooks).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from metric_semantic_slam.eval.trajectory_metrics import AteResult

__all__ = ["PLANES", "plot_trajectory", "plot_confusion_matrix"]

PLANES = ("xy", "xz", "yz", "auto")
_AXIS = {"x": 0, "y": 1, "z": 2}


def _new_figure(width_in: float, height_in: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _project(gt: np.ndarray, est: np.ndarray, plane: str) -> tuple[np.ndarray, np.ndarray, tuple[str, str]]:
    if plane not in PLANES:
        raise ValueError(f"unknown plane {plane!r}; choose one of {PLANES}")
    if plane == "auto":
        # Datasets that are not gravity-aligned: show the plane of largest ground-truth motion.
        mu = gt.mean(axis=0)
        _, _, Vt = np.linalg.svd(gt - mu, full_matrices=False)
        B = Vt[:2].T
        return (gt - mu) @ B, (est - mu) @ B, ("principal axis 1 [m]", "principal axis 2 [m]")
    i, j = _AXIS[plane[0]], _AXIS[plane[1]]
    return gt[:, [i, j]], est[:, [i, j]], (f"{plane[0]} [m]", f"{plane[1]} [m]")


def plot_trajectory(ate: AteResult, path: str | Path, title: str | None = None, plane: str = "xy") -> Path:
    """Two panels: ground truth vs aligned estimate seen from above, and translation error per pose.

    ``plane`` picks the projection (``"auto"``: the two principal axes of the ground truth).
    Shape: uses ate.gt_positions (M, 3), ate.est_positions_aligned (M, 3), ate.errors_m (M,).
    """
    gt2, est2, (xl, yl) = _project(ate.gt_positions, ate.est_positions_aligned, plane)
    fig = _new_figure(11.0, 4.5)
    ax, ax_err = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.3]})
    step = max(1, len(gt2) // 60)  # a subset of error segments keeps the plot readable
    for a, b in zip(gt2[::step], est2[::step]):
        ax.plot([a[0], b[0]], [a[1], b[1]], color="tab:red", alpha=0.35, lw=0.8)
    ax.plot(gt2[:, 0], gt2[:, 1], "-", color="black", lw=1.5, label="ground truth")
    ax.plot(est2[:, 0], est2[:, 1], "-", color="tab:blue", lw=1.2, label=f"estimate ({ate.alignment.mode} aligned)")
    ax.plot(gt2[0, 0], gt2[0, 1], "o", color="black", ms=5)
    ax.set_xlabel(xl)
    ax.set_ylabel(yl)
    ax.set_aspect("equal", adjustable="datalim")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    ax.set_title(f"trajectory ({plane} plane)")
    t = ate.stamps_s - ate.stamps_s[0]
    ax_err.plot(t, ate.errors_m * 100.0, color="tab:red", lw=1.0)
    ax_err.axhline(ate.stats.rmse * 100.0, color="black", ls="--", lw=1.0,
                   label=f"RMSE {ate.stats.rmse * 100:.2f} cm")
    ax_err.set_xlabel("time [s]")
    ax_err.set_ylabel("translation error [cm]")
    ax_err.set_ylim(bottom=0.0)
    ax_err.grid(True, alpha=0.3)
    ax_err.legend(loc="best", fontsize=8)
    ax_err.set_title(f"ATE per pose ({ate.matched} poses)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def plot_confusion_matrix(
    confusion: np.ndarray,
    path: str | Path,
    class_ids: Sequence[int] | None = None,
    class_names: Mapping[int, str] | None = None,
    normalize: bool = True,
    title: str = "semantic confusion (rows: ground truth)",
) -> Path:
    """Heat map of a confusion matrix (rows GT, columns prediction), row-normalised by default.

    ``class_ids`` selects and orders the classes shown (default: those with any count).
    Shape: confusion (C, C).
    """
    M = np.asarray(confusion, dtype=np.float64)
    if M.ndim != 2 or M.shape[0] != M.shape[1]:
        raise ValueError(f"confusion must be square, got {M.shape}")
    if class_ids is None:
        class_ids = [c for c in range(len(M)) if M[c].sum() + M[:, c].sum() > 0]
    ids = np.asarray(list(class_ids), dtype=np.int64)
    if len(ids) == 0:
        raise ValueError("no classes to plot (empty confusion matrix)")
    if ids.max() >= len(M) or ids.min() < 0:
        raise ValueError(f"class ids {ids.tolist()} outside confusion matrix of size {len(M)}")
    sub = M[np.ix_(ids, ids)]
    if normalize:
        rows = sub.sum(axis=1, keepdims=True)
        sub = np.divide(sub, rows, out=np.zeros_like(sub), where=rows > 0)
    names = [(class_names or {}).get(int(c), str(int(c))) for c in ids]
    n = len(ids)
    size = min(4.0 + 0.45 * n, 16.0)
    fig = _new_figure(size + 1.0, size)
    ax = fig.subplots()
    im = ax.imshow(sub, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(n), names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    if n <= 25:
        hi = sub.max() if sub.size else 1.0
        for i in range(n):
            for j in range(n):
                if sub[i, j] > 0:
                    ax.text(j, i, f"{sub[i, j]:.2f}" if normalize else f"{int(sub[i, j])}",
                            ha="center", va="center", fontsize=7,
                            color="white" if sub[i, j] > 0.6 * hi else "black")
    ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
