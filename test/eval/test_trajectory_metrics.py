"""ATE / RPE: Umeyama, association, and a cross-check against evo on real TUM ground truth."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from metric_semantic_slam.core.geometry import se3_exp
from metric_semantic_slam.eval.trajectory_metrics import (
    align_umeyama,
    associate_stamps,
    compute_ate,
    compute_rpe,
)
from metric_semantic_slam.io.trajectory import Trajectory, read_tum_trajectory, write_tum_trajectory


def _read_tum(path: Path) -> Trajectory:
    return read_tum_trajectory(path)


def _write_tum(path: Path, traj: Trajectory) -> None:
    write_tum_trajectory(path, traj.stamps_s, traj.T_world_camera)


def _perturbed(gt: Trajectory, seed: int = 0, scale: float = 1.0) -> Trajectory:
    """Every 3rd pose, stamps shifted 2 ms, smooth drift + noise, then a global rigid offset."""
    rng = np.random.default_rng(seed)
    idx = np.arange(0, len(gt.stamps_s), 3)
    T = gt.T_world_camera[idx].copy()
    n = len(idx)
    s = np.linspace(0.0, 1.0, n)
    drift_t = np.stack([0.05 * s, -0.03 * s**2, 0.02 * np.sin(3 * s)], axis=1)
    drift_r = np.stack([0.02 * s, 0.01 * np.sin(2 * s), -0.015 * s], axis=1)
    T_off = se3_exp(np.array([0.3, -0.2, 0.1, 0.1, -0.2, 0.3]))
    out = np.empty_like(T)
    for k in range(n):
        dT = se3_exp(np.concatenate([drift_t[k] + 0.005 * rng.standard_normal(3),
                                     drift_r[k] + 0.002 * rng.standard_normal(3)]))
        Tk = T[k] @ dT
        Tk[:3, 3] *= scale
        out[k] = T_off @ Tk
    return Trajectory(gt.stamps_s[idx] + 0.002, out)


@pytest.fixture(scope="module")
def rpy_gt_path(shared_data: Path) -> Path:
    return shared_data / "tum_fr1_rpy_90" / "groundtruth.txt"


def test_umeyama_recovers_known_similarity():
    rng = np.random.default_rng(1)
    src = rng.normal(size=(50, 3))
    R = Rotation.from_rotvec([0.3, -1.1, 0.5]).as_matrix()
    t = np.array([1.0, -2.0, 0.5])
    dst = 2.5 * src @ R.T + t
    R_e, t_e, s_e = align_umeyama(src, dst, with_scale=True)
    np.testing.assert_allclose(R_e, R, atol=1e-10)
    np.testing.assert_allclose(t_e, t, atol=1e-10)
    assert s_e == pytest.approx(2.5, abs=1e-10)
    # Without scale the rotation is still right but the fit is not exact.
    R_e, _, s_e = align_umeyama(src, dst, with_scale=False)
    np.testing.assert_allclose(R_e, R, atol=1e-10)
    assert s_e == 1.0


def test_umeyama_rejects_degenerate_points():
    pts = np.zeros((5, 3))
    pts[:, 0] = np.arange(5)  # collinear
    with pytest.raises(ValueError, match="degenerate"):
        align_umeyama(pts, pts)


def test_association_nearest_within_max_diff_and_tie_prefers_earlier():
    gt = np.array([0.0, 0.01, 0.02, 0.03, 0.04, 0.05])
    est = np.array([0.005, 0.021, 0.5])
    i_gt, i_est = associate_stamps(gt, est, max_diff_s=0.01)
    # 0.005 is equidistant from 0.0 and 0.01: the earlier wins; 0.5 has no partner.
    np.testing.assert_array_equal(i_est, [0, 1])
    np.testing.assert_array_equal(i_gt, [0, 2])
    with pytest.raises(ValueError, match="no matching timestamps"):
        associate_stamps(gt, est + 10.0)


def test_ate_identical_is_zero(rpy_gt_path: Path):
    gt = _read_tum(rpy_gt_path)
    for align in ("se3", "sim3", "origin", "none"):
        res = compute_ate(gt, gt, align=align)
        assert res.matched == len(gt.stamps_s)
        assert res.stats.rmse < 1e-9 and res.stats.max < 1e-9
    rpe = compute_rpe(gt, gt)
    assert rpe.translation.max < 1e-9 and rpe.rotation_deg.max < 1e-5


def test_ate_rejects_unknown_alignment(rpy_gt_path: Path):
    gt = _read_tum(rpy_gt_path)
    with pytest.raises(ValueError, match="unknown alignment"):
        compute_ate(gt, gt, align="se2")


def test_ate_sim3_undoes_scale_and_offset(rpy_gt_path: Path):
    gt = _read_tum(rpy_gt_path)
    T = gt.T_world_camera.copy()
    T[:, :3, 3] *= 0.7
    T = se3_exp(np.array([1.0, 2.0, 3.0, 0.2, 0.1, -0.3])) @ T
    est = Trajectory(gt.stamps_s, T)
    assert compute_ate(gt, est, align="sim3").rmse < 1e-9
    assert compute_ate(gt, est, align="se3").rmse > 1e-3
    res = compute_ate(gt, est, align="sim3")
    assert res.alignment.scale == pytest.approx(1 / 0.7, rel=1e-9)


@pytest.mark.parametrize("align,scale", [("se3", 1.0), ("sim3", 0.8), ("none", 1.0), ("origin", 1.0)])
def test_ate_matches_evo(rpy_gt_path: Path, tmp_path: Path, align: str, scale: float):
    from evo.core import metrics, sync
    from evo.tools import file_interface

    est_path = tmp_path / "est.txt"
    _write_tum(est_path, _perturbed(_read_tum(rpy_gt_path), scale=scale))
    ours = compute_ate(_read_tum(rpy_gt_path), _read_tum(est_path), align=align)

    ref = file_interface.read_tum_trajectory_file(str(rpy_gt_path))
    est = file_interface.read_tum_trajectory_file(str(est_path))
    ref, est = sync.associate_trajectories(ref, est, max_diff=0.01)
    if align in ("se3", "sim3"):
        est.align(ref, correct_scale=(align == "sim3"))
    elif align == "origin":
        est.align_origin(ref)
    ape = metrics.APE(metrics.PoseRelation.translation_part)
    ape.process_data((ref, est))
    evo_stats = ape.get_all_statistics()

    assert ours.matched == ref.num_poses
    np.testing.assert_allclose(ours.errors_m, ape.error, atol=1e-6)
    for key in ("rmse", "mean", "median", "std", "min", "max"):
        assert getattr(ours.stats, key) == pytest.approx(evo_stats[key], abs=1e-6), key
    assert ours.stats.rmse > 0.005  # the perturbation is really there


@pytest.mark.parametrize("delta,unit", [(1, "frames"), (5, "frames"), (0.05, "meters")])
def test_rpe_matches_evo(rpy_gt_path: Path, tmp_path: Path, delta, unit: str):
    from evo.core import metrics, sync
    from evo.tools import file_interface

    est_path = tmp_path / "est.txt"
    _write_tum(est_path, _perturbed(_read_tum(rpy_gt_path), seed=3))
    ours = compute_rpe(_read_tum(rpy_gt_path), _read_tum(est_path), delta=delta, delta_unit=unit)

    ref = file_interface.read_tum_trajectory_file(str(rpy_gt_path))
    est = file_interface.read_tum_trajectory_file(str(est_path))
    ref, est = sync.associate_trajectories(ref, est, max_diff=0.01)
    evo_unit = metrics.Unit.frames if unit == "frames" else metrics.Unit.meters
    for relation, errs, stats in (
        (metrics.PoseRelation.translation_part, ours.translation_errors_m, ours.translation),
        (metrics.PoseRelation.rotation_angle_deg, ours.rotation_errors_deg, ours.rotation_deg),
    ):
        rpe = metrics.RPE(relation, delta=delta, delta_unit=evo_unit, all_pairs=False)
        rpe.process_data((ref, est))
        assert len(errs) == len(rpe.error)
        np.testing.assert_allclose(errs, rpe.error, atol=1e-6)
        evo_stats = rpe.get_all_statistics()
        for key in ("rmse", "mean", "median", "std", "min", "max"):
            assert getattr(stats, key) == pytest.approx(evo_stats[key], abs=1e-6), key
    assert ours.translation.rmse > 1e-3
