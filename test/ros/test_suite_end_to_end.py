"""End to end over real DDS (ROS_DOMAIN_ID 77): a short simulated bag replayed by ``msslam play --clock``
through all five nodes started by ``msslam launch`` (profile sim_replay: ground-truth poses via vio_node,
oracle labels via panoptic_node; the mapper reads the raw depth like the offline pipeline). SIGINT to the
launcher makes the mapper save. This test checks the equivalence strictly: every frame, no drop, no error,
and the saved trajectory, mesh and scene graph equal the offline pipeline's on the same bag
(``ros.testing.offline_reference``/``compare_saved_map``, shared with test_demo_end_to_end.py, which checks
what ``msslam demo`` delivers instead)."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("rclpy")

from std_msgs.msg import String  # noqa: E402

from metric_semantic_slam.graph import NODES  # noqa: E402
from metric_semantic_slam.cli.play import subscribers_arguments  # noqa: E402
from metric_semantic_slam.ros.testing import (TopicCollector, compare_saved_map, offline_reference,  # noqa: E402
                                              ros_env)

pytestmark = [pytest.mark.ros, pytest.mark.slow, pytest.mark.timeout(480)]

DOMAIN = 77
REPO = Path(__file__).resolve().parents[2]
MSSLAM = [sys.executable, "-m", "metric_semantic_slam.cli.main"]
FRAMES = 8


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    from metric_semantic_slam.sim.simulate import simulate

    root = tmp_path_factory.mktemp("sim") / "seq"
    simulate(root, seed=1, frames=FRAMES, width=160, height=120, write_bag=True, verbose=False)
    return root


def _launch_config(tmp_path: Path) -> Path:
    src = REPO / "config" / "launch" / "sim_replay.yaml"
    cfg = yaml.safe_load(src.read_text())
    extra = {
        "depth_fusion": {"queue_size": 50},
        "vio": {"queue_size": 50},
        "panoptic": {"queue_size": 50},
        # raw depth as offline; nothing dropped; a cloud soon after the last frame; the mesh only at save
        "mapper": {"depth_topic": "depth/image_raw", "queue_size": 50, "sync_queue_size": 100, "device": "cpu",
                   "cloud_period_s": 0.5, "mesh_period_s": 30.0, "save_on_shutdown": True,
                   "output_dir": str(tmp_path / "online")},
        "scene_graph": {"queue_size": 2},
    }
    for name, node in cfg["nodes"].items():
        node["params_file"] = str((src.parent / node["params_file"]).resolve())
        node["parameters"] = {**(node.get("parameters") or {}), "status_period_s": 0.5, **extra[name]}
    cfg["max_respawns"] = 1  # tolerates a node that fails to start on a loaded machine (state loss would show)
    out = tmp_path / "launch.yaml"
    out.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out


def test_replayed_bag_through_five_nodes_matches_the_offline_pipeline(sim, tmp_path):
    config = _launch_config(tmp_path)
    env = ros_env(DOMAIN)
    log = open(tmp_path / "launch.log", "wb")
    launcher = subprocess.Popen([*MSSLAM, "launch", str(config)], env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    topics = {f"/msslam/{n}/status": String for n in NODES}
    try:
        with TopicCollector(DOMAIN, topics) as col:
            def last(name):
                msgs = col.messages[f"/msslam/{name}/status"]
                return json.loads(msgs[-1][1].data) if msgs else {}

            def count(name, stage):
                return last(name).get("stages", {}).get(stage, {}).get("count", 0)

            # generous: five processes import torch/open3d at once on a loaded 2-core machine
            up = col.spin_until(lambda: all(col.count(t) for t in topics), 240)
            assert up, ([t for t in topics if not col.count(t)], (tmp_path / "launch.log").read_text()[-6000:])
            remaps = yaml.safe_load(config.read_text())["remappings"]
            played = sorted(set(remaps.values()))
            col.spin_until(lambda: False, 1.0)
            # every reader the collector sees must be matched before playback (as msslam demo does)
            play = subprocess.run([*MSSLAM, "play", str(sim / "bag"), "--clock", "--rate", "0.2",
                                   "--wait-for-subscribers", "--delay", "0.5", "--topics", *played,
                                   *subscribers_arguments(col.node, played)],
                                  env=env, capture_output=True, text=True, timeout=120)
            assert play.returncode == 0, play.stdout + play.stderr
            ok = col.spin_until(lambda: count("mapper", "integrate") >= FRAMES, 90)
            assert ok, (last("mapper"), (tmp_path / "launch.log").read_text()[-4000:])
            # The mapper publishes a cloud at most every cloud_period_s (0.5 s) after new frames; the scene graph
            # turns each into a graph, which the mapper keeps for its save. Settled: the mapper's cloud count has
            # not moved for 2 s (> the period, after the last frame) and the scene graph took every cloud.
            def settled_for(seconds: float, deadline_s: float = 60.0) -> bool:
                stable_since, seen = time.monotonic(), None
                end = time.monotonic() + deadline_s
                while time.monotonic() < end:
                    col.spin_until(lambda: False, 0.5)
                    clouds = count("mapper", "cloud")
                    taken = last("scene_graph").get("queues", {}).get("map_snapshots", {}).get("received", 0)
                    if clouds != seen:
                        stable_since, seen = time.monotonic(), clouds
                    elif clouds > 0 and taken >= clouds and count("scene_graph", "scene_graph_update") > 0 \
                            and time.monotonic() - stable_since >= seconds:
                        return True
                return False

            assert settled_for(2.0), (last("mapper"), last("scene_graph"))
            col.spin_until(lambda: False, 1.0)  # the last graph travels back to the mapper (latched topic)
            for name in NODES:
                st = last(name)
                assert st["errors"] == 0, st
                assert all(q["dropped"] == 0 for k, q in st["queues"].items() if name != "scene_graph"), st
    finally:
        launcher.send_signal(signal.SIGINT)
        try:
            launcher.wait(timeout=60)
        except subprocess.TimeoutExpired:
            launcher.kill()
            launcher.wait()
        log.close()
    text = (tmp_path / "launch.log").read_text()
    online = tmp_path / "online"
    assert (online / "mesh.ply").is_file() and (online / "trajectory.txt").is_file(), text[-4000:]

    ref = offline_reference(sim / "bag", voxel_size_m=0.04)
    cmp = compare_saved_map(online, ref, threshold_m=0.01)
    # trajectory: the same poses at the same stamps, every frame
    assert cmp.frames == FRAMES == len(ref.stamps_s), cmp
    assert cmp.all_at_reference_stamps and cmp.max_position_error_m < 1e-6, cmp
    # mesh: same surface (vertex positions, both ways) and the same labels on it
    assert abs(cmp.vertex_count_ratio - 1) <= 0.02, cmp
    assert cmp.p99_saved_to_ref_m < 0.005 and cmp.p99_ref_to_saved_m < 0.005, cmp
    assert cmp.class_agreement > 0.97, cmp
    # scene graph: the same objects (ids and classes)
    assert cmp.objects_ref, "the offline graph has objects (the comparison can fail)"
    assert cmp.objects_differ() <= max(1, len(cmp.objects_ref) // 10), cmp
