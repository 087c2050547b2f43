"""`msslam reconstruct` end to end on real data and on the simulator."""
import json

import numpy as np
import pytest

from metric_semantic_slam.cli.main import main as msslam
from metric_semantic_slam.io.ply import read_ply
from metric_semantic_slam.io.trajectory import read_tum_trajectory


def test_reconstruct_tum_desk_writes_mesh_trajectory_picture(shared_data, tmp_path, capsys):
    out = tmp_path / "rec"
    rc = msslam(["reconstruct", str(shared_data / "tum_fr1_rpy_90"), "--output", str(out), "--max-frames", "15"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert str(out / "mesh.ply") in printed
    mesh = read_ply(out / "mesh.ply")
    assert len(mesh.faces) > 2000
    # The desk scene spans about a meter or more and sits 0.5-4 m from the cameras.
    extent = mesh.vertices.max(0) - mesh.vertices.min(0)
    assert extent.max() > 1.0
    traj = read_tum_trajectory(out / "trajectory.txt")
    assert len(traj.stamps_s) == 15
    cam_to_mesh = np.linalg.norm(mesh.vertices - traj.T_world_camera[0, :3, 3], axis=1)
    assert 0.4 < np.median(cam_to_mesh) < 4.0
    assert (out / "mesh.png").stat().st_size > 10_000
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["frames_mapped"] == 15
    assert metrics["ate_rmse_m"] < 0.005  # poses are the (interpolated) ground truth


def test_reconstruct_rejects_unknown_odometry(shared_data, tmp_path, capsys):
    rc = msslam(["reconstruct", str(shared_data / "tum_fr1_desk_9"), "--output", str(tmp_path), "--odometry", "x"])
    assert rc == 2
    assert "unknown odometry" in capsys.readouterr().out


def test_reconstruct_with_vio_odometry_on_real_frames(shared_data, tmp_path, capsys):
    out = tmp_path / "vio"
    assert msslam(["reconstruct", str(shared_data / "tum_fr1_desk_9"), "--output", str(out), "--odometry", "vio",
                   "--no-picture"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["frames_mapped"] == 9
    assert metrics["ate_rmse_m"] < 0.01  # tracked, not copied from ground truth
    assert metrics["ate_rmse_m"] > 0.0
