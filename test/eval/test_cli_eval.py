"""``msslam eval``: ATE 0 on identical input, evo agreement on a perturbed copy, mesh metrics + files."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from metric_semantic_slam.cli.main import main
from metric_semantic_slam.core.geometry import se3_exp
from metric_semantic_slam.eval.machine import has_module
from metric_semantic_slam.io.ply import write_ply
from metric_semantic_slam.io.trajectory import read_tum_trajectory, write_tum_trajectory


@pytest.fixture(scope="module")
def rpy_gt(shared_data: Path) -> Path:
    return shared_data / "tum_fr1_rpy_90" / "groundtruth.txt"


def _perturb(gt_path: Path, out: Path) -> Path:
    """Every 2nd pose, stamps +3 ms, smooth drift and noise on positions and rotations."""
    gt = read_tum_trajectory(gt_path)
    rng = np.random.default_rng(7)
    idx = np.arange(0, len(gt), 2)
    s = np.linspace(0, 1, len(idx))
    drift = [np.r_[np.full(3, 0.04 * k) + 0.004 * rng.standard_normal(3),
                   np.array([0.03, -0.02, 0.01]) * k + 0.002 * rng.standard_normal(3)] for k in s]
    T = np.stack([gt.T_world_camera[i] @ se3_exp(xi) for i, xi in zip(idx, drift)])
    return write_tum_trajectory(out, gt.stamps_s[idx] + 0.003, T)


def _printed(stdout: str, row: str) -> float:
    m = re.search(re.escape(row) + r".*?rmse (\S+)", stdout)
    assert m, stdout
    return float(m.group(1))


def test_eval_identical_gives_zero_ate(rpy_gt: Path, tmp_path: Path, capsys):
    assert main(["eval", "--gt", str(rpy_gt), "--est", str(rpy_gt), "--output", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert _printed(out, "ATE translation") == 0.0
    assert _printed(out, "RPE translation") == 0.0
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["trajectory"]["ate"]["translation_m"]["rmse"] < 1e-9
    assert metrics["trajectory"]["ate"]["matched"] == len(read_tum_trajectory(rpy_gt))
    img = np.asarray(Image.open(tmp_path / "o" / "trajectory.png"))
    assert img.shape[0] > 300 and img.std() > 5


@pytest.mark.parametrize("align", ["se3", "sim3"])
def test_eval_matches_evo_on_perturbed_copy(rpy_gt: Path, tmp_path: Path, capsys, align: str):
    from evo.core import metrics, sync
    from evo.tools import file_interface

    est_path = _perturb(rpy_gt, tmp_path / "est.txt")
    assert main(["eval", "--gt", str(rpy_gt), "--est", str(est_path), "--align", align,
                 "--output", str(tmp_path / "o")]) == 0
    printed = capsys.readouterr().out
    ours = json.loads((tmp_path / "o" / "metrics.json").read_text())["trajectory"]

    ref = file_interface.read_tum_trajectory_file(str(rpy_gt))
    est = file_interface.read_tum_trajectory_file(str(est_path))
    ref, est = sync.associate_trajectories(ref, est, max_diff=0.01)
    rpe_t = metrics.RPE(metrics.PoseRelation.translation_part, delta=1, delta_unit=metrics.Unit.frames)
    rpe_t.process_data((ref, est))
    rpe_r = metrics.RPE(metrics.PoseRelation.rotation_angle_deg, delta=1, delta_unit=metrics.Unit.frames)
    rpe_r.process_data((ref, est))
    est.align(ref, correct_scale=(align == "sim3"))
    ape = metrics.APE(metrics.PoseRelation.translation_part)
    ape.process_data((ref, est))

    assert ours["ate"]["matched"] == ref.num_poses
    for key, val in ape.get_all_statistics().items():
        if key in ours["ate"]["translation_m"]:
            assert abs(ours["ate"]["translation_m"][key] - val) < 1e-6, key
    for key, val in rpe_t.get_all_statistics().items():
        if key in ours["rpe"]["translation_m"]:
            assert abs(ours["rpe"]["translation_m"][key] - val) < 1e-6, key
    for key, val in rpe_r.get_all_statistics().items():
        if key in ours["rpe"]["rotation_deg"]:
            assert abs(ours["rpe"]["rotation_deg"][key] - val) < 1e-6, key
    # The printed table is precise enough for the same comparison.
    assert abs(_printed(printed, "ATE translation") - ape.get_statistic(metrics.StatisticsType.rmse)) < 1e-6
    assert ours["ate"]["translation_m"]["rmse"] > 0.005


def _grid(n: int, size: float, z: float):
    g = np.linspace(0.0, size, n + 1)
    xx, yy = np.meshgrid(g, g, indexing="ij")
    v = np.stack([xx.ravel(), yy.ravel(), np.full(xx.size, z)], axis=1)
    idx = np.arange((n + 1) ** 2).reshape(n + 1, n + 1)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()
    return v, np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])


def test_eval_mesh_writes_metrics_and_pictures(tmp_path: Path, capsys):
    v, f = _grid(8, 1.0, 0.0)
    face_class = np.where(v[f[:, 0], 0] < 0.5, 1, 2).astype(np.uint16)
    gt = write_ply(tmp_path / "gt.ply", v, f, face_props={"class": face_class})
    pv = v + [0.0, 0.0, 0.02]
    pred_class = np.where(pv[:, 0] < 0.5, 1, 2).astype(np.uint16)
    pred = write_ply(tmp_path / "pred.ply", pv, f, vertex_props={"class": pred_class},
                     vertex_colors=np.tile([90, 160, 90], (len(v), 1)).astype(np.uint8))
    out_dir = tmp_path / "out"
    rc = main(["eval", "--mesh", str(pred), "--gt-mesh", str(gt), "--threshold", "0.05",
               "--density", "2000", "--output", str(out_dir)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "F-score 1.0000" in printed
    m = json.loads((out_dir / "metrics.json").read_text())
    assert m["mesh"]["accuracy_m"] == pytest.approx(0.02, abs=1e-5)
    assert m["mesh"]["fscore"] == 1.0
    assert m["mesh"]["distance"] == ("surface" if has_module("open3d") else "points")  # --mesh-distance auto
    assert m["semantic_3d"]["miou"] > 0.8
    for name in ("mesh_error.png", "mesh.png", "confusion_3d.png"):
        assert (out_dir / name).is_file(), name
    assert "trajectory" not in m
    # Observed GT points (left half only, labeled) drive completeness/recall and the 3D labels.
    rng = np.random.default_rng(0)
    obs = np.c_[rng.random((800, 2)) * [0.5, 1.0], np.zeros(800)]
    obs_ply = write_ply(tmp_path / "obs.ply", obs, vertex_props={"class": np.full(800, 1, np.uint16)})
    assert main(["eval", "--mesh", str(pred), "--gt-mesh", str(gt), "--gt-points", str(obs_ply),
                 "--density", "2000", "--view", "top", "--output", str(tmp_path / "out2")]) == 0
    m2 = json.loads((tmp_path / "out2" / "metrics.json").read_text())
    assert m2["mesh"]["completeness_reference"] == "gt_points" and m2["mesh"]["n_gt"] == 800
    assert m2["mesh"]["recall"] == 1.0
    # Predicted wall labels sit 2 cm above floor-only observed points: the wall class scores 0.
    assert m2["semantic_3d"]["per_class_iou"]["2"] == 0.0
    capsys.readouterr()
    # At a 1 cm threshold the 2 cm offset fails everywhere.
    assert main(["eval", "--mesh", str(pred), "--gt-mesh", str(gt), "--threshold", "0.01",
                 "--density", "2000"]) == 0
    assert "F-score 0.0000" in capsys.readouterr().out
    assert main(["eval", "--mesh", str(pred), "--gt-mesh", str(gt), "--density", "2000", "--no-pictures",
                 "--output", str(tmp_path / "out3")]) == 0
    assert [p.name for p in (tmp_path / "out3").iterdir()] == ["metrics.json"]



def test_eval_without_matplotlib_writes_the_metrics_only(tmp_path: Path, capsys, monkeypatch):
    import sys

    v, f = _grid(4, 1.0, 0.0)
    gt = write_ply(tmp_path / "gt.ply", v, f)
    pred = write_ply(tmp_path / "pred.ply", v + [0.0, 0.0, 0.01], f)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    assert main(["eval", "--mesh", str(pred), "--gt-mesh", str(gt), "--density", "2000",
                 "--output", str(tmp_path / "out")]) == 0
    assert "no matplotlib: metrics.json without pictures" in capsys.readouterr().out
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["metrics.json"]


def test_eval_bad_input_is_a_clear_error(tmp_path: Path, capsys):
    assert main(["eval", "--gt", str(tmp_path / "missing.txt"), "--est", str(tmp_path / "missing.txt")]) == 1
    assert "file not found" in capsys.readouterr().err
    assert main(["eval", "--gt", str(tmp_path / "x.txt")]) == 1
    assert "needs both --gt and --est" in capsys.readouterr().err
    assert main(["eval"]) == 1
    assert "nothing to evaluate" in capsys.readouterr().err
