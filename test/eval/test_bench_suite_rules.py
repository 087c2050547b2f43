"""benchmarks/bench_suite.py's rules: the GPU profile's full-rate target, publication-time latency, map quality."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("yaml")

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_suite.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_suite_under_test", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(node, queue=0, skipped=0, drops=None, integrated=None):
    latency = {} if integrated is None else {"integrated": {"count": integrated}}
    return {"node": node, "missing": False, "queue_dropped": queue, "rate_skipped": skipped,
            "drops": drops or {}, "latency": latency}


def test_full_rate_passes_only_when_no_node_lost_a_frame_and_the_mapper_took_them_all(bench):
    rows = [_row("depth_fusion"), _row("vio"), _row("panoptic"), _row("mapper", integrated=900),
            {"node": "scene_graph", "missing": True}]
    assert bench.full_rate_failures(rows, 900) == []
    rows[1] = _row("vio", queue=2)
    rows[3] = _row("mapper", drops={"no_pose": 3}, integrated=895)
    failures = bench.full_rate_failures(rows, 900)
    assert failures == ["vio dropped frames: {'queue': 2}", "mapper dropped frames: {'no_pose': 3}",
                        "the mapper integrated 895 of 900 frames"]
    rows[1] = _row("vio", drops={"imu_gap": 2})  # tracked without IMU: no frame lost
    assert bench.full_rate_failures(rows, 900) == ["mapper dropped frames: {'no_pose': 3}",
                                                   "the mapper integrated 895 of 900 frames"]
    rows = [_row("panoptic", skipped=280), _row("mapper", integrated=900)]  # a slot profile is not full rate
    assert bench.full_rate_failures(rows, 900) == ["panoptic dropped frames: {'skipped': 280}"]


def test_rate_is_the_mean_while_frames_flowed_not_the_decayed_rate_after_the_run(bench):
    def status(count, rate):
        return {"stages": {"integrate": {"count": count, "rate_hz": rate}}}

    # frames at 30 Hz from t = 1.3 s to t = 31.3 s (900), a status every 2 s from t = 0 to 40
    history = [(t, status(int(min(max(t - 1.3, 0.0), 30.0) * 30), 18.7 if t > 32 else 29.0))
               for t in np.arange(0.0, 40.0, 2.0)]
    assert history[-1][1]["stages"]["integrate"]["count"] == 900
    assert bench.flowing_rate_hz(history, "integrate") == pytest.approx(30.0, abs=0.1)
    # a start-up backlog of 40 frames taken before the first status (which shows the burst's rate): the steady
    # rate, not the burst
    burst = [(t, status(c + 40 if c else 0, 90.0 if t == 2.0 else 30.0)) for t, st in history
             for c in [st["stages"]["integrate"]["count"]]]
    assert bench.flowing_rate_hz(burst, "integrate") == pytest.approx(30.0, abs=0.1)
    # a run shorter than two statuses: up to the first status with the final count
    assert bench.flowing_rate_hz([(0.0, status(0, None)), (2.0, status(45, 30.0)), (4.0, status(50, 20.0)),
                                  (6.0, status(50, 10.0))], "integrate") == 2.5
    assert bench.flowing_rate_hz([(0.0, status(0, None))], "integrate") is None
    assert bench.flowing_rate_hz([], None) is None


def test_publication_latency_counts_from_the_first_clock_tick_at_the_stamp_in_the_mesh_pass(bench):
    ms = 1_000_000
    # the player's clock: bag time 1000 s + k * 10 ms published at wall 5 s + k * 10 ms, two passes of 3 s
    clock = [(5_000 * ms + (p * 300 + k) * 10 * ms, 1_000_000 * ms + k * 10 * ms) for p in range(2) for k in range(300)]
    mesh = [(5_250 * ms, 1_000_100 * ms),     # frame at 1000.1 s, meshed 150 ms later
            (8_090 * ms, 1_002_950 * ms),     # a last frame of the first pass, meshed after the loop
            (8_050 * ms, 1_002_955 * ms),     # the same, its stamp between two ticks
            (6_250 * ms, 1_000_100 * ms),     # a late mesh of the frame at 1000.1 s
            (8_120 * ms, 1_000_000 * ms)]     # the first frame of the second pass (not the first pass's)
    got = bench.publication_latencies_ms(clock, mesh)
    assert got == pytest.approx([150.0, 8090 - 7950.0, 8050 - 7960.0, 1150.0, 120.0])
    assert bench.publication_latencies_ms(clock, [(4_000 * ms, 1_000_000 * ms)]) == []  # before any tick
    s = bench.latency_summary(got[:3])
    assert s["count"] == 3 and s["max_ms"] == pytest.approx(150.0) and bench.latency_summary([]) == {}


_POSES = "0.0 0 0 0 0 0 0 1\n1.0 0.1 0 0 0 0 0 1\n2.0 0 0.1 0 0 0 0 1\n3.0 0.1 0.1 0.1 0 0 0 1\n"


@pytest.fixture
def box_scene(bench, tmp_path):
    """A simulator-like folder whose scene is a 1 m box (``sim/bag`` stands for the bag, ``sim/scene/mesh.ply``,
    ``sim/groundtruth.txt``) and the oracle-rt launch config of a benchmark run in ``work`` (ground-truth poses:
    no alignment). Returns (bag, work, the box mesh, a function saving a map as that profile's mapper would)."""
    from metric_semantic_slam.io.ply import write_ply
    from metric_semantic_slam.sim.primitives import box_mesh

    sim = tmp_path / "sim"
    (sim / "bag").mkdir(parents=True)
    (sim / "scene").mkdir()
    box = box_mesh((1.0, 1.0, 1.0), (0.5, 0.5, 0.5), class_id=1, instance_id=0, material=0)
    write_ply(sim / "scene" / "mesh.ply", box.vertices, box.triangles)
    (sim / "groundtruth.txt").write_text(_POSES)
    work = tmp_path / "work"
    work.mkdir()
    bench.write_launch_config("oracle-rt", work, status_period_s=1.0)

    def save_map(vertices) -> Path:
        saved = bench.mapper_dir(work, "oracle-rt")
        saved.mkdir(exist_ok=True)
        (saved / "trajectory.txt").write_text(_POSES)
        write_ply(saved / "mesh.ply", vertices, box.triangles)
        return saved

    return sim / "bag", work, box, save_map


def test_map_quality_scores_the_saved_map_against_the_scene_or_says_why_not(bench, box_scene):
    pytest.importorskip("open3d")
    bag, work, box, save_map = box_scene
    assert bench.map_quality(bag, work, "oracle-rt") == {"note": "no saved mesh"}
    saved = save_map(box.vertices)
    q = bench.map_quality(bag, work, "oracle-rt")
    assert q["mesh_fscore"] == pytest.approx(1.0) and q["ate_rmse_m"] == pytest.approx(0.0, abs=1e-9)
    assert "mesh_distance" not in q  # exact surface distances
    save_map(box.vertices + [0.2, 0.0, 0.0])  # the map 20 cm off
    assert bench.map_quality(bag, work, "oracle-rt")["mesh_fscore"] < 0.9
    (saved / "mesh.ply").write_bytes(b"ply\nnot a mesh\n")
    q = bench.map_quality(bag, work, "oracle-rt")  # a broken file: said, not raised
    assert "mesh_fscore" not in q and "eval" in q["note"]


def test_map_quality_without_open3d_measures_to_the_other_meshs_samples(bench, box_scene, monkeypatch):
    """The GPU machine has no Open3D: the F-score is taken to the other mesh's samples (1 cm apart) instead of its
    exact surface, and says so; it still tells a map on the scene from one 20 cm off, and the pictures are drawn
    (rasterized, error colors to the samples)."""
    import sys

    monkeypatch.setitem(sys.modules, "open3d", None)  # import open3d raises ImportError
    bag, work, box, save_map = box_scene
    saved = save_map(box.vertices)
    q = bench.map_quality(bag, work, "oracle-rt")
    assert q["mesh_distance"] == "points" and q["mesh_fscore"] == pytest.approx(1.0), q
    assert q["ate_rmse_m"] == pytest.approx(0.0, abs=1e-9)
    assert {p.name for p in (saved / "eval").glob("*.png")} >= {"mesh.png", "mesh_error.png", "trajectory.png"}
    save_map(box.vertices + [0.2, 0.0, 0.0])
    assert bench.map_quality(bag, work, "oracle-rt")["mesh_fscore"] < 0.9


def test_the_mappers_row_is_its_integrate_stage_even_when_meshing_took_longer(bench):
    def stage(count, mean_ms):
        return {"count": count, "mean_ms": mean_ms, "p95_ms": mean_ms, "cpu_mean_ms": mean_ms}

    status = {"queues": {"depth": {"received": 60, "dropped": 0, "high_water": 3, "maxsize": 30}},
              "stages": {"integrate": stage(60, 40.0), "mesh_update": stage(30, 150.0), "pose_wait": stage(60, 5.0)}}
    row = next(r for r in bench.summarize({"mapper": status}) if r["node"] == "mapper")
    assert row["stage"] == "integrate" and row["stage_count"] == 60 and row["stage_mean_ms"] == 40.0
    # a node without its usual stage (vio republishing ground-truth poses): the busiest one
    vio = {"queues": {}, "stages": {"publish": stage(900, 0.5)}}
    assert next(r for r in bench.summarize({"vio": vio}) if r["node"] == "vio")["stage"] == "publish"
