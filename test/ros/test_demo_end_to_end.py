"""``msslam demo`` end to end over real DDS (ROS_DOMAIN_ID 81): a short simulated bag (40 frames, 320x240)
replayed through all five nodes with the oracle profile (ground-truth poses via vio_node, labels via
panoptic_node's oracle), saved on SIGINT, rendered and evaluated. This test checks what the demo delivers:
every output file, the pictures, the per-node summary and table, its evaluation against the simulator's
ground truth; the saved map is only bounded loosely against the offline pipeline (the shared
``ros.testing.compare_saved_map``). The strict equivalence of the ``msslam launch`` + ``msslam play`` path is
test_suite_end_to_end.py's. The mapper reads the raw depth like the offline pipeline
(``--param mapper.depth_topic=depth/image_raw``) and the queues are long."""
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
                                      "dropped": dropped},
                           # a second input of the same frames (depth_fusion's IR pairs): not counted twice
                           "pairs": {"size": 0, "maxsize": 4, "high_water": 1, "received": count + dropped,
                                     "dropped": 0}},
                "drops": {"bad_encoding": 1}, "errors": 0,
                "latency": {"mesh": {"count": count, "p50_ms": 100.0, "p95_ms": 200.0}},
                "memory_mb": {"rss": 400.0, "peak": 512.4}}

    history = [(0.0, status(0, None, 0)), (2.0, status(10, 9.0, 0)), (4.0, status(22, 6.0, 2)),
               (6.0, status(30, 6.0, 4)), (8.0, status(30, 0.5, 4))]
    rows = summarize_nodes({"mapper": status(30, 0.5, 4)}, {"mapper": history})
    r = rows[0]
    assert (r["processed"], r["queue_dropped"], r["received"], r["bad_input_dropped"]) == (30, 4, 34, 1)
    assert r["rate_hz"] == 6.0  # the mean while frames flowed, not the start's burst or the decayed rate after
    assert (r["latency_name"], r["latency_p95_ms"]) == ("mesh", 200.0)
    table = format_table(rows, {"mesh_fscore": 0.9, "ate_rmse_m": 0.012, "threshold_m": 0.05},
                         {"mesh_fscore": 0.95})
    assert "mesh F-score @ 5 cm" in table and "0.900" in table and "0.950" in table and "1.20" in table
    assert "mapper" in table and "bad_encoding" in table
    assert r["memory_peak_mb"] == 512.4 and " 512 " in table  # the node's peak resident memory


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_demo_replays_a_bag_through_five_nodes_like_the_offline_pipeline(sim, tmp_path):
    from metric_semantic_slam.ros.testing import compare_saved_map, offline_reference

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

    # the pictures are real renders of the map (not blank)
    import cv2

    for name in ("mesh.png", "mesh_semantic.png"):
        img = cv2.imread(str(suite / name))
        assert img is not None and img.shape[0] >= 100 and img.shape[1] >= 100, name
        assert img.reshape(-1, 3).std(axis=0).max() > 10, f"{name} is nearly uniform"
    # the summary: every node processed frames; the table printed one row per node
    rows = {r["node"]: r for r in summary["nodes"]}
    assert rows["mapper"]["processed"] >= 0.75 * FRAMES and rows["vio"]["processed"] >= 0.75 * FRAMES, rows
    table = stdout[stdout.index("msslam demo:"):]
    assert all(f"\n{name}" in table for name in NODE_NAMES), table
    # its evaluation against the simulator's ground truth: poses exact by construction, the map good
    m = summary["metrics"]
    assert m["ate_rmse_m"] < 1e-4 and m["mesh_fscore"] > 0.8 and 0 < m["miou_3d"] <= 1, m
    assert m["frames_mapped"] == len(np.atleast_2d(np.loadtxt(suite / "trajectory.txt")))
    # the saved map against the offline pipeline (`msslam reconstruct BAG --labels ground_truth`, same voxel
    # size), loosely: the mapper's sync may drop a set that completes after a newer one under load
    ref = offline_reference(sim / "bag", voxel_size_m=VOXEL_M)
    cmp = compare_saved_map(suite, ref, threshold_m=2 * VOXEL_M)
    assert cmp.frames >= 0.75 * FRAMES and cmp.all_at_reference_stamps and cmp.max_position_error_m < 1e-5, cmp
    assert cmp.fscore >= 0.9 and cmp.class_agreement > 0.9, cmp
    assert cmp.objects_ref, "the offline graph has objects (the comparison can fail)"
    assert cmp.object_classes_differ() <= max(1, len({c for _i, c in cmp.objects_ref}) // 10), cmp
