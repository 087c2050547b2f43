"""3DMatch, ICL-NUIM and TUM keyframe readers on the shared real data."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from metric_semantic_slam.io.datasets import SYNTHETIC_T0_S, read_redwood_log
from metric_semantic_slam.io.sequence import detect_sequence_type, open_sequence


def _orthonormal(T: np.ndarray, tol: float) -> bool:
    R = T[:3, :3]
    return bool(np.abs(R.T @ R - np.eye(3)).max() < tol and abs(np.linalg.det(R) - 1) < tol)


def test_tum_keyframes(shared_data: Path) -> None:
    root = shared_data / "tum_fr3_cabinet_keyframes58"
    assert detect_sequence_type(root) == "tum_keyframes"
    seq = open_sequence(root)
    assert len(seq) == 58
    assert seq.camera.fx == pytest.approx(535.4) and seq.camera.cy == pytest.approx(247.6)
    assert np.all(np.diff(seq.stamps_s) > 0)
    assert seq.stamps_s[0] == pytest.approx(1341841278.8427)
    traj = seq.gt_trajectory()
    assert len(traj) == 58
    np.testing.assert_allclose(traj.positions[0], [-2.5508, 0.9872, 1.1019])
    f = seq[10]
    assert _orthonormal(f.gt.T_world_camera, 1e-9)
    assert f.color.shape == (480, 640, 3) and f.imu is None
    assert 0.8 < np.median(f.depth_m[f.depth_m > 0]) < 4.0


def test_3dmatch(shared_data: Path) -> None:
    root = shared_data / "3dmatch_sun3d_studyroom_5"
    assert detect_sequence_type(root) == "3dmatch"
    seq = open_sequence(root)
    assert len(seq) == 5
    assert seq.camera.fx == pytest.approx(570.342205) and seq.camera.cx == 320.0
    # Synthetic 30 Hz stamps keep the gaps of the frame ids 0, 1, 2, 116, 422.
    np.testing.assert_allclose(seq.stamps_s - SYNTHETIC_T0_S, np.array([0, 1, 2, 116, 422]) / 30.0, atol=1e-6)
    for f in seq:
        assert _orthonormal(f.gt.T_world_camera, 1e-4)
        d = f.depth_m[f.depth_m > 0]
        assert 1.0 < np.median(d) < 5.0 and d.max() < 10.0  # depth_scale 1000 (mm)
    np.testing.assert_allclose(seq[0].gt.T_world_camera[:3, 3], [1.973046, 1.125734, 0.30982])


def test_icl_nuim(shared_data: Path) -> None:
    root = shared_data / "icl_nuim_livingroom_open3d_5"
    assert detect_sequence_type(root) == "icl_nuim"
    seq = open_sequence(root)
    assert len(seq) == 5
    np.testing.assert_allclose(np.diff(seq.stamps_s), 1 / 30.0, atol=1e-6)
    np.testing.assert_allclose(seq[0].gt.T_world_camera[:3, 3], [2.0, 2.0, -0.3])
    np.testing.assert_allclose(seq[1].gt.T_world_camera[:3, 3], [1.99962, 1.97704, -0.300486])
    f = seq[4]
    assert _orthonormal(f.gt.T_world_camera, 1e-4)
    assert 1.0 < np.median(f.depth_m[f.depth_m > 0]) < 2.7


def test_redwood_log_errors(tmp_path: Path) -> None:
    p = tmp_path / "bad.log"
    p.write_text("0 0 1\n1 0 0 0\n0 1 0 0\n0 0 1 0\n")
    with pytest.raises(ValueError, match="multiple of 5"):
        read_redwood_log(p)
    p.write_text("0 0 1\n2 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n")
    with pytest.raises(ValueError, match="not a rigid transform"):
        read_redwood_log(p)
