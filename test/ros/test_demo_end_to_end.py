"""``msslam demo`` end to end over real DDS (ROS_DOMAIN_ID 81): a short simulated bag (40 frames, 320x240)
replayed through all five nodes with the oracle profile (ground-truth poses via vio_node, labels via
panoptic_node's oracle), saved on SIGINT, rendered and evaluated. The saved trajectory, mesh and scene graph
are checked against the offline pipeline on the same bag (what ``msslam reconstruct BAG --labels
ground_truth`` runs: same core objects, same voxel size). The mapper reads the raw depth like the offline
pipeline (``--param mapper.depth_topic=depth/image_raw``) and every queue is long enough that no frame drops."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy")


DOMAIN = 81
FRAMES = 40
VOXEL_M = 0.04
MSSLAM = [sys.executable, "-m", "metric_semantic_slam.cli.main"]
NODE_NAMES = ("depth_fusion", "vio", "panoptic", "mapper", "scene_graph")


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> Path:
    from metric_semantic_slam.sim.simulate import simulate

    root = tmp_path_factory.mktemp("demo_sim") / "seq"
    simulate(root, seed=1, frames=FRAMES, width=320, height=240, write_bag=True, verbose=False)
    return root


def _offline(bag: Path):
    """The offline pipeline on the bag, as `msslam reconstruct BAG --labels ground_truth` configures it, and the
    scene graph the scene-graph node's builder makes from its map (default parameters)."""
    from metric_semantic_slam.core.labels import load_label_space
    from metric_semantic_slam.core.scene_graph import SceneGraphBuilder
    from metric_semantic_slam.io.sequence import open_sequence
    from metric_semantic_slam.nodes.scene_graph_node import PARAMS as SG_PARAMS
    from metric_semantic_slam.nodes.scene_graph_node import scene_graph_config
    from metric_semantic_slam.pipeline.mapping_open3d import TsdfMapperConfig
    from metric_semantic_slam.pipeline.pipeline import Pipeline, PipelineConfig
    from metric_semantic_slam.ros.node_runtime import with_runtime_params
    from metric_semantic_slam.ros.params import ParamValues

    pipe = Pipeline(PipelineConfig(odometry="ground_truth", labels="ground_truth", device="cpu",
                                   mapping=TsdfMapperConfig(voxel_size_m=VOXEL_M, truncation_voxels=4.0,
                                                            depth_max_m=5.0)))
    seq = open_sequence(bag)
    for frame in seq:
        pipe.step(frame)
    mapper = pipe.mapper.mapper
    cloud = mapper.extract_point_cloud()
    table = [i.to_dict() for i in mapper.instances()]
    known = np.isin(cloud.instances, np.array([d["id"] for d in table], dtype=np.int64))
    params = ParamValues({s.name: s.default for s in with_runtime_params(SG_PARAMS)})
    builder = SceneGraphBuilder(load_label_space(), scene_graph_config(params))
    builder.update(cloud.points, cloud.classes, np.where(known, cloud.instances, 0), table, 0.0, None)
    return pipe, seq.gt_trajectory(), builder.graph.to_dict()


def _fscore(a: np.ndarray, b: np.ndarray, threshold_m: float) -> float:
    """F-score between two vertex sets: precision of a against b, recall of b against a."""
    from scipy.spatial import cKDTree

    precision = float(np.mean(cKDTree(b).query(a)[0] < threshold_m))
    recall = float(np.mean(cKDTree(a).query(b)[0] < threshold_m))
    return 2 * precision * recall / max(precision + recall, 1e-12)


def test_demo_overrides_and_generated_launch_config(tmp_path):
    import yaml

    from metric_semantic_slam.cli.demo import REPO, parse_overrides, write_launch_config
    from metric_semantic_slam.cli.launch import load_config

    over = parse_overrides(["mapper.voxel_size_m=0.05", "panoptic.backend=geometric", "extra.flag=true"])
    assert over == {"mapper": {"voxel_size_m": 0.05}, "panoptic": {"backend": "geometric"}, "extra": {"flag": True}}
    for bad in ("mapper=1", "voxel_size_m=0.05", ".x=1", "mapper.x"):
        with pytest.raises(ValueError):
            parse_overrides([bad])
    src = REPO / "config" / "launch" / "sim_replay.yaml"
    dest = write_launch_config(src, tmp_path / "sub" / "launch.yaml",
                               {"mapper": {"output_dir": "/x/suite"}, "panoptic": {"backend": "geometric"}})
    cfg = load_config(dest)  # params files resolve from the new folder
    nodes = {n.name: n for n in cfg.nodes}
    assert nodes["mapper"].parameters["output_dir"] == "/x/suite"
    assert nodes["panoptic"].parameters["backend"] == "geometric"  # the override wins over the profile's oracle
    assert nodes["vio"].parameters["pose_source"] == "ground_truth"  # the profile's own parameters stay
    assert yaml.safe_load(dest.read_text())["remappings"] == yaml.safe_load(src.read_text())["remappings"]


def test_demo_summary_rows_and_table():
    from metric_semantic_slam.cli.demo import format_table, summarize_nodes

    def status(count, rate, dropped):
        return {"stages": {"integrate": {"count": count, "mean_ms": 20.0, "p95_ms": 30.0, "cpu_mean_ms": 10.0,
                                         "rate_hz": rate}},
                "queues": {"frames": {"size": 0, "maxsize": 2, "high_water": 2, "received": count + dropped,
                                      "dropped": dropped}},
                "drops": {"bad_encoding": 1}, "errors": 0,
                "latency": {"mesh": {"count": count, "p50_ms": 100.0, "p95_ms": 200.0}}}

    rows = summarize_nodes({"mapper": status(30, 0.5, 4)}, {"mapper": [status(10, 6.0, 0), status(30, 0.5, 4)]})
    r = rows[0]
    assert (r["processed"], r["queue_dropped"], r["received"], r["bad_input_dropped"]) == (30, 4, 34, 1)
    assert r["rate_hz"] == 6.0  # the peak while frames flowed, not the decayed rate after the last one
    assert (r["latency_name"], r["latency_p95_ms"]) == ("mesh", 200.0)
    table = format_table(rows, {"mesh_fscore": 0.9, "ate_rmse_m": 0.012, "threshold_m": 0.05},
                         {"mesh_fscore": 0.95})
    assert "mesh F-score @ 5 cm" in table and "0.900" in table and "0.950" in table and "1.20" in table
    assert "mapper" in table and "bad_encoding" in table


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_demo_replays_a_bag_through_five_nodes_like_the_offline_pipeline(sim, tmp_path):
    from metric_semantic_slam.io.ply import read_ply

    out = tmp_path / "demo"
    queues = [f"--param={n}.queue_size=50" for n in ("depth_fusion", "vio", "panoptic", "mapper")]
    proc = subprocess.Popen(
        [*MSSLAM, "demo", str(sim / "bag"), "--output", str(out), "--rate", "0.5", "--domain", str(DOMAIN),
         "--idle-s", "3", "--drain-timeout-s", "300", "--param=mapper.depth_topic=depth/image_raw",
         "--param=mapper.sync_queue_size=200", "--param=mapper.device=cpu", "--param=mapper.cloud_period_s=0.5",
         "--param=mapper.mesh_period_s=5.0", *queues],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        stdout, _ = proc.communicate(timeout=540)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)  # the demo stops its launcher (own session) on the way out
        stdout, _ = proc.communicate(timeout=90)
        pytest.fail("msslam demo timed out:\n" + stdout[-4000:])
    suite = out / "suite"
    log = (suite / "launch.log").read_text(errors="replace")[-4000:] if (suite / "launch.log").is_file() else ""
    assert proc.returncode == 0, stdout[-4000:] + log
    # what the demo promises: saved map files, pictures, evaluation, a summary with every node
    for name in ("mesh.ply", "map.npz", "trajectory.txt", "instances.json", "scene_graph.json", "mesh.png",
                 "mesh_semantic.png", "metrics.json", "eval/metrics.json"):
        assert (suite / name).is_file(), (name, stdout[-3000:])
    summary = json.loads((suite / "metrics.json").read_text())
    assert [r["node"] for r in summary["nodes"]] == list(NODE_NAMES), summary["nodes"]
    assert all(r["errors"] == 0 for r in summary["nodes"]), summary["nodes"]
    assert "mesh F-score" in stdout and "3D mIoU" in stdout, stdout[-3000:]

    pipe, gt_traj, graph_offline = _offline(sim / "bag")
    # trajectory: every fused frame at its ground-truth pose and stamp
    rows = np.atleast_2d(np.loadtxt(suite / "trajectory.txt"))
    # most frames (the mapper's sync may drop a set that completes after a newer one under load)
    assert len(rows) >= 0.75 * FRAMES, (len(rows), summary["nodes"])
    stamps_off, poses_off = pipe.trajectory()
    idx = np.searchsorted(stamps_off, rows[:, 0])
    assert np.all(idx < len(stamps_off))
    np.testing.assert_allclose(stamps_off[idx], rows[:, 0], atol=1e-6)
    np.testing.assert_allclose(poses_off[idx, :3, 3], rows[:, 1:4], atol=1e-5)
    gt_idx = np.searchsorted(gt_traj.stamps_s, rows[:, 0] - 1e-6)
    np.testing.assert_allclose(gt_traj.T_world_camera[gt_idx, :3, 3], rows[:, 1:4], atol=1e-5)
    assert summary["metrics"]["ate_rmse_m"] < 1e-4, summary["metrics"]
    # mesh: the same surface (F-score at 2 voxels between the two meshes) with the same labels on it
    online = read_ply(suite / "mesh.ply")
    offline_mesh = pipe.mesh()
    off_v = np.asarray(offline_mesh.vertices, dtype=np.float64)
    assert _fscore(np.asarray(online.vertices, dtype=np.float64), off_v, 2 * VOXEL_M) >= 0.9
    from scipy.spatial import cKDTree

    _, nearest = cKDTree(off_v).query(online.vertices)
    agree = np.mean(online.vertex_props["class"] == np.asarray(offline_mesh.classes)[nearest])
    assert agree > 0.9, agree
    # the demo's own evaluation against the simulator's ground truth agrees with the offline map's quality
    assert summary["metrics"]["mesh_fscore"] > 0.8, summary["metrics"]
    # scene graph: the same object classes
    graph_online = json.loads((suite / "scene_graph.json").read_text())
    classes_on = {o["class_name"] for o in graph_online["objects"]}
    classes_off = {o["class_name"] for o in graph_offline["objects"]}
    assert classes_off, "the offline graph has objects (the comparison can fail)"
    assert len(classes_on ^ classes_off) <= max(1, len(classes_off) // 10), (classes_on, classes_off)
