"""Sequence writer: folder layout, readability, determinism across worker counts, privacy, CLI."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_sim_render import PERSON, WobbleTrajectory, box_room_world

from metric_semantic_slam.cli import simulate as cli_simulate
from metric_semantic_slam.io.ply import read_ply
from metric_semantic_slam.io.tum import open_tum_folder
from metric_semantic_slam.sim.simulate import SimConfig, default_camera, simulate, simulate_sequence

FRAME_DIRS = ("rgb", "depth", "depth_gt", "ir_left", "ir_right", "semantic", "instance")
TOP_FILES = ("rgb.txt", "depth.txt", "groundtruth.txt", "imu.txt", "accelerometer.txt", "camera.json",
             "labels.yaml", "sim_config.json")
SCENE_FILES = ("mesh.ply", "observed_points.ply", "objects.json", "relations.json")


def _run(out: Path, workers: int, frames: int = 5, seed: int = 4) -> Path:
    return simulate(out, seed=seed, frames=frames, width=160, height=120, fps=10.0, with_person=True,
                    write_bag=False, workers=workers, world=box_room_world(with_person=True),
                    trajectory=WobbleTrajectory(duration_s=(frames - 1) / 10.0), verbose=False)


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory) -> Path:
    return _run(tmp_path_factory.mktemp("sim") / "seq", workers=2)


def test_folder_layout(sim_dir):
    for f in TOP_FILES:
        assert (sim_dir / f).is_file(), f
    for f in SCENE_FILES:
        assert (sim_dir / "scene" / f).is_file(), f
    stamps = [f"{1000.0 + i / 10.0:.6f}.png" for i in range(5)]
    for d in FRAME_DIRS:
        assert sorted(p.name for p in (sim_dir / d).iterdir()) == stamps, d
    rgb = cv2.imread(str(sim_dir / "rgb" / stamps[0]), cv2.IMREAD_UNCHANGED)
    assert rgb.shape == (120, 160, 3) and rgb.dtype == np.uint8
    for d in ("depth", "depth_gt", "semantic", "instance"):
        im = cv2.imread(str(sim_dir / d / stamps[0]), cv2.IMREAD_UNCHANGED)
        assert im.shape == (120, 160) and im.dtype == np.uint16, d
    for d in ("ir_left", "ir_right"):
        im = cv2.imread(str(sim_dir / d / stamps[0]), cv2.IMREAD_UNCHANGED)
        assert im.shape == (120, 160) and im.dtype == np.uint8, d
    cam = json.loads((sim_dir / "camera.json").read_text())
    assert cam["fx"] == pytest.approx(525.0 / 4) and cam["cx"] == pytest.approx(79.5)
    assert cam["depth_scale"] == 5000.0 and cam["stereo"]["baseline_m"] == 0.05
    assert np.asarray(cam["imu"]["T_camera_imu"]).shape == (4, 4) and cam["imu"]["rate_hz"] == 200.0
    rgb_txt = (sim_dir / "rgb.txt").read_text().splitlines()
    assert rgb_txt[:3][0].startswith("#") and rgb_txt[3] == "1000.000000 rgb/1000.000000.png"
    cfg = json.loads((sim_dir / "sim_config.json").read_text())
    assert cfg["seed"] == 4 and cfg["frames"] == 5 and "depth_sensor" in cfg and "imu_noise" in cfg


def test_readable_as_tum_folder_with_ground_truth(sim_dir):
    seq = open_tum_folder(sim_dir)
    assert len(seq) == 5
    traj = WobbleTrajectory(duration_s=0.4)
    for i in (0, 4):
        f = seq[i]
        assert f.stamp_s == pytest.approx(1000.0 + i / 10.0)
        np.testing.assert_allclose(f.gt.T_world_camera, traj.T_world_camera(i / 10.0), atol=1e-6)
        assert f.camera == default_camera(160, 120)
        valid = (f.depth_m > 0) & (f.gt.depth_m > 0)
        assert valid.mean() > 0.5
        # Noisy depth is close to the exact depth (a few cm at room range).
        assert np.median(np.abs(f.depth_m[valid] - f.gt.depth_m[valid])) < 0.02
        assert f.stereo is not None and f.stereo.left.shape == (120, 160)
    imu = seq.imu()
    assert imu is not None and len(imu) == 81  # 0.4 s at 200 Hz, both ends
    assert imu.stamps_s[0] == pytest.approx(1000.0)
    # Mostly gravity: the accelerometer magnitude is about 9.81.
    assert np.median(np.linalg.norm(imu.accel_m_s2, axis=1)) == pytest.approx(9.81, abs=0.3)
    acc = np.loadtxt(sim_dir / "accelerometer.txt", comments="#")
    np.testing.assert_allclose(acc[:, 1:], imu.accel_m_s2, atol=1e-6)


def test_person_in_images_but_not_in_scene_files(sim_dir):
    sem = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted((sim_dir / "semantic").iterdir())]
    inst = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted((sim_dir / "instance").iterdir())]
    assert any((s == PERSON).any() for s in sem)
    assert all(((s == PERSON) == (i == 99)).all() for s, i in zip(sem, inst))
    mesh = read_ply(sim_dir / "scene" / "mesh.ply")
    assert set(mesh.face_props) >= {"class", "instance"}
    assert PERSON not in mesh.face_props["class"] and 99 not in mesh.face_props["instance"]
    assert len(mesh.faces) == len(box_room_world().static_mesh.triangles)
    pts = read_ply(sim_dir / "scene" / "observed_points.ply")
    assert len(pts.vertices) > 1000
    assert PERSON not in pts.vertex_props["class"]
    objs = json.loads((sim_dir / "scene" / "objects.json").read_text())["objects"]
    assert {o["instance_id"] for o in objs} == {1, 2}
    rels = json.loads((sim_dir / "scene" / "relations.json").read_text())["relations"]
    assert rels == [{"subject_id": 2, "predicate": "near", "object_id": 1}]


def test_observed_points_lie_on_surfaces_seen_by_the_camera(sim_dir):
    pts = read_ply(sim_dir / "scene" / "observed_points.ply")
    # Looking along +x from x ~ -0.6: the -x wall (x = -2) behind the camera is never seen.
    assert (pts.vertices[:, 0] > -1.99).all()
    assert pts.vertices[:, 0].max() > 1.99  # the +x wall is
    # Density ~1 point per cm^2 of the seen surfaces: far fewer than the 300k cap.
    assert len(pts.vertices) < 300000


def test_same_seed_gives_byte_identical_pngs_for_any_worker_count(sim_dir, tmp_path):
    other = _run(tmp_path / "seq1", workers=1)
    for d in FRAME_DIRS:
        for p in sorted((sim_dir / d).iterdir()):
            assert (other / d / p.name).read_bytes() == p.read_bytes(), f"{d}/{p.name} differs"
    for f in ("imu.txt", "groundtruth.txt"):
        assert (other / f).read_bytes() == (sim_dir / f).read_bytes()
    assert (other / "scene" / "observed_points.ply").read_bytes() == (sim_dir / "scene" / "observed_points.ply").read_bytes()
    diff = _run(tmp_path / "seq2", workers=2, seed=5)
    assert (diff / "depth" / "1000.000000.png").read_bytes() != (sim_dir / "depth" / "1000.000000.png").read_bytes()


def test_simulate_sequence_reports_noise_curve_and_timings(tmp_path, capsys):
    cfg = SimConfig(seed=2, frames=3, width=160, height=120, fps=10.0)
    res = simulate_sequence(tmp_path / "s", cfg, write_bag=False, workers=1, world=box_room_world(),
                            trajectory=WobbleTrajectory(0.2), verbose=True)
    out = capsys.readouterr().out
    assert "measured vs model" in out and "wrote 3 frames" in out and "timing" in out
    assert any(r.n > 0 for r in res.depth_error)
    for r in res.depth_error:
        if r.n >= 3000:
            assert 0.8 < r.ratio < 1.2
    assert res.timings_s["total"] > 0


def test_bad_options_raise(tmp_path):
    with pytest.raises(ValueError, match="frames"):
        SimConfig(frames=1)
    with pytest.raises(ValueError, match="imu_rate"):
        SimConfig(imu_rate_hz=100.0)
    with pytest.raises(ValueError, match="preset"):
        SimConfig(preset="drone")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        _run(tmp_path / "full", workers=1)
    with pytest.raises(ValueError, match="trajectory lasts"):
        simulate(tmp_path / "short", frames=5, width=160, height=120, fps=10.0, write_bag=False,
                 world=box_room_world(), trajectory=WobbleTrajectory(0.1), verbose=False)


def test_cli_parser_options():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="verb")
    cli_simulate.add_parser(sub)
    a = parser.parse_args(["simulate", "--seed", "3", "--frames", "10", "--output", "/x", "--width", "320",
                           "--height", "240", "--preset", "robot", "--no-person", "--imu-rate", "400",
                           "--baseline", "0.08", "--no-bag", "--lighting-variation", "0.5"])
    assert (a.seed, a.frames, a.output, a.width, a.height, a.preset) == (3, 10, "/x", 320, 240, "robot")
    assert a.no_person and a.no_bag and a.imu_rate == 400.0 and a.baseline == 0.08 and a.lighting_variation == 0.5
    d = parser.parse_args(["simulate", "--output", "/y"])
    assert (d.seed, d.frames, d.width, d.height, d.fps, d.preset) == (1, 300, 640, 480, 30.0, "handheld")
    assert not d.no_person and not d.no_bag
    with pytest.raises(SystemExit):
        parser.parse_args(["simulate", "--output", "/y", "--preset", "drone"])


def test_cli_end_to_end_with_generated_world(tmp_path, capsys):
    pytest.importorskip("metric_semantic_slam.sim.scene")
    out = tmp_path / "cli"
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="verb")
    cli_simulate.add_parser(sub)
    args = parser.parse_args(["simulate", "--seed", "1", "--frames", "3", "--width", "160", "--height", "120",
                              "--output", str(out), "--no-bag"])
    assert cli_simulate.run(args) == 0
    assert f"to {out.resolve()}" in capsys.readouterr().out
    assert len(list((out / "rgb").iterdir())) == 3 and (out / "scene" / "mesh.ply").is_file()


def test_texture_contrast_flattens_textures_and_is_invisible_at_its_default(sim_dir, tmp_path):
    with pytest.raises(ValueError, match="texture_contrast"):
        SimConfig(texture_contrast=1.5)
    cfg = json.loads((sim_dir / "sim_config.json").read_text())
    assert "texture_contrast" not in cfg and "texture_contrast" not in cfg["render"]  # default: file unchanged
    flat = simulate(tmp_path / "flat", seed=4, frames=2, width=160, height=120, fps=10.0, with_person=False,
                    write_bag=False, workers=1, world=box_room_world(with_person=False),
                    trajectory=WobbleTrajectory(duration_s=0.1), verbose=False, texture_contrast=0.2)
    full = simulate(tmp_path / "full", seed=4, frames=2, width=160, height=120, fps=10.0, with_person=False,
                    write_bag=False, workers=1, world=box_room_world(with_person=False),
                    trajectory=WobbleTrajectory(duration_s=0.1), verbose=False)
    assert json.loads((flat / "sim_config.json").read_text())["texture_contrast"] == 0.2
    name = sorted((full / "rgb").iterdir())[0].name

    def detail(folder: Path) -> float:  # high-pass energy of the gray image: texture, not shading
        g = cv2.imread(str(folder / "rgb" / name), cv2.IMREAD_GRAYSCALE).astype(np.float32)
        return float(np.abs(g - cv2.GaussianBlur(g, (0, 0), 3.0)).mean())

    assert detail(flat) < 0.6 * detail(full)
    # geometry and labels do not depend on the texture
    for sub in ("depth_gt", "semantic"):
        assert (flat / sub / name).read_bytes() == (full / sub / name).read_bytes()
