"""Simulator -> folder + bag -> readers -> reconstruction -> metrics, on the real generated world."""
import json

import numpy as np
import pytest

from metric_semantic_slam.cli.main import main as msslam
from metric_semantic_slam.io.sequence import open_sequence


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "seed1"
    rc = msslam(["simulate", "--seed", "1", "--frames", "24", "--width", "320", "--height", "240",
                 "--output", str(out)])
    assert rc == 0
    return out


def test_simulate_writes_folder_and_bag_with_the_same_frames(sim_dir):
    folder = open_sequence(sim_dir)
    bag = open_sequence(sim_dir / "bag")
    assert len(folder) == len(bag) == 24
    for i in (1, 11, 23):  # frame 0 has no IMU samples before it, by definition
        f, b = folder[i], bag[i]
        assert f.stamp_s == pytest.approx(b.stamp_s, abs=1e-6)
        np.testing.assert_array_equal(f.color, b.color)
        assert np.abs(f.depth_m - b.depth_m).max() <= 0.0006  # bag depth is 16UC1 millimetres
        np.testing.assert_allclose(f.gt.T_world_camera, b.gt.T_world_camera, atol=1e-9)
        np.testing.assert_array_equal(f.gt.semantic, b.gt.semantic)
        assert f.stereo is not None and b.stereo is not None
        assert len(f.imu) == len(b.imu) > 0
    relations = json.loads((sim_dir / "scene" / "relations.json").read_text())["relations"]
    assert len(relations) >= 20


def test_reconstruct_simulated_sequence_matches_ground_truth_mesh(sim_dir, tmp_path, capsys):
    rc = msslam(["reconstruct", str(sim_dir), "--output", str(tmp_path / "rec"), "--labels", "ground_truth"])
    assert rc == 0
    assert "F-score" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "rec" / "metrics.json").read_text())
    # The 300-frame 640x480 run gives F = 0.97; this short low-resolution run must not be far off.
    assert metrics["mesh"]["fscore"] >= 0.85
    assert metrics["mesh"]["accuracy_m"] <= 0.015
    assert metrics["ate_rmse_m"] < 1e-6
    assert (tmp_path / "rec" / "mesh.png").is_file() and (tmp_path / "rec" / "mesh_semantic.png").is_file()
    assert metrics["semantic_3d"]["miou"] >= 0.5  # ground-truth labels fused: most surface gets the right class


def test_eval_cli_on_reconstruction(sim_dir, tmp_path):
    rec = tmp_path / "rec"
    assert msslam(["reconstruct", str(sim_dir), "--output", str(rec), "--no-picture"]) == 0
    rc = msslam(["eval", "--gt", str(sim_dir / "groundtruth.txt"), "--est", str(rec / "trajectory.txt"),
                 "--mesh", str(rec / "mesh.ply"), "--gt-mesh", str(sim_dir / "scene" / "mesh.ply"),
                 "--gt-points", str(sim_dir / "scene" / "observed_points.ply"), "--output", str(tmp_path / "ev")])
    assert rc == 0
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert m["trajectory"]["ate"]["translation_m"]["rmse"] < 1e-6
    assert m["mesh"]["fscore"] >= 0.85
    assert (tmp_path / "ev" / "trajectory.png").is_file()
