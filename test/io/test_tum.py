"""TUM folders (real data) and the simulator folder layout (tiny synthetic folders)."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from metric_semantic_slam.core.geometry import make_transform, so3_exp
from metric_semantic_slam.io.sequence import detect_sequence_type, open_sequence
from metric_semantic_slam.io.trajectory import write_tum_trajectory

SIM_W, SIM_H = 64, 48
SIM_T0 = 1000.0


def make_sim_folder(root: Path, n_frames: int = 4, seed: int = 0, imu_rate_hz: float = 200.0) -> Path:
    """A tiny folder in the simulator layout of docs/formats.md (random images, 30 Hz, 200 Hz IMU)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for sub in ("rgb", "depth", "depth_gt", "ir_left", "ir_right", "semantic", "instance"):
        (root / sub).mkdir(exist_ok=True)
    stamps = SIM_T0 + np.arange(n_frames) / 30.0
    names = [f"{t:.6f}.png" for t in stamps]
    header = "# generated\n# by test\n# timestamp filename\n"
    (root / "rgb.txt").write_text(header + "".join(f"{t:.6f} rgb/{n}\n" for t, n in zip(stamps, names)))
    (root / "depth.txt").write_text(header + "".join(f"{t:.6f} depth/{n}\n" for t, n in zip(stamps, names)))
    for n in names:
        cv2.imwrite(str(root / "rgb" / n), rng.integers(0, 256, (SIM_H, SIM_W, 3), dtype=np.uint8))
        depth = rng.integers(2500, 20000, (SIM_H, SIM_W)).astype(np.uint16)  # 0.5-4 m at scale 5000
        depth[0, :5] = 0
        cv2.imwrite(str(root / "depth" / n), depth)
        cv2.imwrite(str(root / "depth_gt" / n), depth + 3)
        cv2.imwrite(str(root / "ir_left" / n), rng.integers(0, 256, (SIM_H, SIM_W), dtype=np.uint8))
        cv2.imwrite(str(root / "ir_right" / n), rng.integers(0, 256, (SIM_H, SIM_W), dtype=np.uint8))
        cv2.imwrite(str(root / "semantic" / n), rng.integers(0, 20, (SIM_H, SIM_W)).astype(np.uint16))
        cv2.imwrite(str(root / "instance" / n), rng.integers(0, 300, (SIM_H, SIM_W)).astype(np.uint16))
    poses = np.stack([make_transform(so3_exp(rng.normal(size=3) * 0.3), rng.normal(size=3)) for _ in stamps])
    write_tum_trajectory(root / "groundtruth.txt", stamps, poses)
    t_imu = np.round(np.arange(SIM_T0 - 0.1, stamps[-1] + 1e-9, 1.0 / imu_rate_hz), 6)
    gyro = rng.normal(size=(len(t_imu), 3)) * 0.1
    accel = rng.normal(size=(len(t_imu), 3)) * 0.1 + [0.0, -9.81, 0.0]
    (root / "imu.txt").write_text("# t wx wy wz ax ay az\n" + "".join(
        f"{t:.6f} " + " ".join(f"{v:.9f}" for v in (*g, *a)) + "\n" for t, g, a in zip(t_imu, gyro, accel)))
    (root / "accelerometer.txt").write_text("# t ax ay az\n" + "".join(
        f"{t:.6f} " + " ".join(f"{v:.9f}" for v in a) + "\n" for t, a in zip(t_imu, accel)))
    T_camera_imu = make_transform(so3_exp([0.0, 0.0, 0.1]), [0.01, 0.0, 0.0])
    T_color_left = make_transform(np.eye(3), [-0.015, 0.0, 0.0])
    camera = {
        "width": SIM_W, "height": SIM_H, "fx": 50.0, "fy": 51.0, "cx": 31.5, "cy": 23.5,
        "depth_scale": 5000.0, "depth_registered_to_color": True,
        "stereo": {"baseline_m": 0.05, "T_color_left": T_color_left.tolist(), "width": SIM_W, "height": SIM_H,
                   "fx": 48.0, "fy": 48.0, "cx": 32.0, "cy": 24.0},
        "imu": {"rate_hz": imu_rate_hz, "T_camera_imu": T_camera_imu.tolist(), "gravity_m_s2": 9.81},
        "frame_rate_hz": 30.0,
    }
    (root / "camera.json").write_text(json.dumps(camera))
    (root / "labels.yaml").write_text("version: 1\nname: test\nlabels: []\n")
    (root / "sim_config.json").write_text(json.dumps({"seed": seed, "frames": n_frames}))
    return root


def test_tum_fr1_rpy_90(shared_data: Path) -> None:
    seq = open_sequence(shared_data / "tum_fr1_rpy_90")
    assert len(seq) == 90
    assert seq.camera.fx == pytest.approx(517.3) and seq.camera.cy == pytest.approx(255.3)
    assert seq.camera.distortion == pytest.approx((0.2624, -0.9531, -0.0054, 0.0026, 1.1633))
    stamps, norms = [], []
    for i, frame in enumerate(seq):
        stamps.append(frame.stamp_s)
        assert frame.color.shape == (480, 640, 3) and frame.color.dtype == np.uint8
        assert frame.depth_m.dtype == np.float32
        valid = frame.depth_m[frame.depth_m > 0]
        assert valid.size > 0.5 * frame.depth_m.size
        assert 0.5 < np.median(valid) < 4.0 and valid.max() < 6.0
        assert frame.gt.T_world_camera is not None
        R = frame.gt.T_world_camera[:3, :3]
        assert np.allclose(R.T @ R, np.eye(3), atol=1e-9)
        if i > 0:
            assert len(frame.imu) >= 5  # ~500 Hz log at 30 Hz frames
            assert np.all(frame.imu.stamps_s > stamps[-2]) and np.all(frame.imu.stamps_s <= frame.stamp_s)
            assert np.all(np.isnan(frame.imu.gyro_rad_s))
            norms.append(np.linalg.norm(frame.imu.accel_m_s2, axis=1))
            assert 5.0 < np.median(norms[-1]) < 15.0  # handheld motion adds a few m/s^2
        else:
            assert len(frame.imu) == 0
    assert np.all(np.diff(stamps) > 0)
    assert np.median(np.concatenate(norms)) == pytest.approx(9.8, abs=0.3)
    assert stamps[0] == pytest.approx(1305031233.693779)
    assert len(seq.imu()) == 2010
    assert len(seq.gt_trajectory()) == 396
    assert seq.label_space_path is None and seq.T_camera_imu is None


def test_tum_gt_pose_is_interpolated(shared_data: Path) -> None:
    seq = open_sequence(shared_data / "tum_fr1_rpy_90", max_frames=3)
    gt = seq.gt_trajectory()
    for frame in seq:
        j = np.searchsorted(gt.stamps_s, frame.stamp_s)
        lo, hi = gt.T_world_camera[j - 1, :3, 3], gt.T_world_camera[j, :3, 3]
        a = (frame.stamp_s - gt.stamps_s[j - 1]) / (gt.stamps_s[j] - gt.stamps_s[j - 1])
        assert 0 < a < 1
        np.testing.assert_allclose(frame.gt.T_world_camera[:3, 3], (1 - a) * lo + a * hi, atol=1e-9)


def test_tum_fr1_desk_9(shared_data: Path) -> None:
    seq = open_sequence(shared_data / "tum_fr1_desk_9")
    assert len(seq) == 9
    assert seq.imu() is None
    f = seq[-1]
    assert f.index == 8 and f.imu is None
    assert f.gt.T_world_camera is not None
    assert 0.5 < np.median(f.depth_m[f.depth_m > 0]) < 2.5


def test_stride_and_max_frames(shared_data: Path) -> None:
    full = open_sequence(shared_data / "tum_fr1_rpy_90")
    sub = open_sequence(shared_data / "tum_fr1_rpy_90", stride=3, max_frames=5)
    assert len(sub) == 5
    np.testing.assert_array_equal(sub.stamps_s, full.stamps_s[0:15:3])
    # IMU of a strided frame covers the whole gap since the previous kept frame.
    assert len(sub[1].imu) == len(full.imu().between(full.stamps_s[0], full.stamps_s[3]))
    with pytest.raises(ValueError, match="stride"):
        open_sequence(shared_data / "tum_fr1_rpy_90", stride=0)


def test_sim_folder(tmp_path: Path) -> None:
    root = make_sim_folder(tmp_path / "sim", n_frames=4)
    assert detect_sequence_type(root) == "sim"
    seq = open_sequence(root)
    assert len(seq) == 4
    assert seq.camera.width == SIM_W and seq.camera.fy == 51.0
    assert seq.label_space_path == root / "labels.yaml"
    assert seq.T_camera_imu is not None and seq.T_camera_imu[0, 3] == pytest.approx(0.01)
    f = seq[2]
    assert f.stamp_s == pytest.approx(SIM_T0 + 2 / 30.0, abs=1e-6)
    raw = cv2.imread(str(root / "depth" / f"{f.stamp_s:.6f}.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_allclose(f.depth_m, raw / 5000.0, rtol=1e-6)
    np.testing.assert_allclose(f.gt.depth_m, (raw + 3) / 5000.0, rtol=1e-6)
    assert f.gt.semantic.dtype == np.uint16 and f.gt.semantic.max() >= 10
    assert f.gt.instance.max() >= 200
    assert f.stereo is not None and f.stereo.baseline_m == 0.05 and f.stereo.left.shape == (SIM_H, SIM_W)
    assert f.stereo.T_color_left[0, 3] == pytest.approx(-0.015)
    # imu.txt wins over accelerometer.txt: gyro present, 200 Hz -> ~6-7 samples per 33 ms frame.
    assert 6 <= len(f.imu) <= 7 and np.all(np.isfinite(f.imu.gyro_rad_s))
    rgb = cv2.cvtColor(cv2.imread(str(root / "rgb" / f"{f.stamp_s:.6f}.png")), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(f.color, rgb)


def test_unpaired_rgb_is_dropped_and_gt_gap_gives_none(tmp_path: Path) -> None:
    root = make_sim_folder(tmp_path / "sim", n_frames=4)
    (root / "sim_config.json").unlink()
    lines = (root / "depth.txt").read_text().splitlines()
    (root / "depth.txt").write_text("\n".join(lines[:4] + lines[5:]) + "\n")  # drop depth of frame 1
    gt_lines = (root / "groundtruth.txt").read_text().splitlines()
    (root / "groundtruth.txt").write_text("\n".join(gt_lines[:-1]) + "\n")  # no GT for the last frame
    assert detect_sequence_type(root) == "tum"
    seq = open_sequence(root)
    assert len(seq) == 3
    assert seq[-1].gt.T_world_camera is None and seq[0].gt.T_world_camera is not None


def test_missing_camera_json_and_unknown_folder(tmp_path: Path) -> None:
    root = make_sim_folder(tmp_path / "sim", n_frames=3)
    (root / "camera.json").unlink()
    with pytest.raises(ValueError, match="camera.json"):
        open_sequence(root)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a known sequence"):
        open_sequence(tmp_path / "empty")
