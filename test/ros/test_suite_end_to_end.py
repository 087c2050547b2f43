"""End to end over real DDS (ROS_DOMAIN_ID 77): a short simulated bag replayed by ``msslam play --clock``
through all five nodes started by ``msslam launch`` (profile sim_replay: ground-truth poses via vio_node,
oracle labels via panoptic_node; the mapper reads the raw depth like the offline pipeline). SIGINT to the
launcher makes the mapper save; the saved trajectory, mesh and scene graph match the offline pipeline
(``Pipeline.step`` + the scene-graph builder) on the same bag within a tolerance."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("rclpy")

from std_msgs.msg import String  # noqa: E402

from metric_semantic_slam.graph import NODES  # noqa: E402
from metric_semantic_slam.ros.testing import TopicCollector, ros_env  # noqa: E402

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


def _offline(sim: Path):
    """The offline pipeline on the same bag: ground-truth poses and labels, raw depth, same voxel size."""
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
                                   mapping=TsdfMapperConfig(voxel_size_m=0.04, truncation_voxels=4.0,
                                                            depth_max_m=5.0)))
    for f in open_sequence(sim / "bag"):
        assert pipe.step(f).status == "ok"
    mapper = pipe.mapper.mapper
    cloud = mapper.extract_point_cloud()
    table = [i.to_dict() for i in mapper.instances()]
    known = np.isin(cloud.instances, np.array([d["id"] for d in table], dtype=np.int64))
    params = ParamValues({s.name: s.default for s in with_runtime_params(SG_PARAMS)})
    builder = SceneGraphBuilder(load_label_space(), scene_graph_config(params))
    builder.update(cloud.points, cloud.classes, np.where(known, cloud.instances, 0), table, 0.0, None)
    return pipe, builder.graph.to_dict()


def test_replayed_bag_through_five_nodes_matches_the_offline_pipeline(sim, tmp_path):
    from metric_semantic_slam.io.ply import read_ply

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
            play = subprocess.run([*MSSLAM, "play", str(sim / "bag"), "--clock", "--rate", "0.2",
                                   "--wait-for-subscribers", "--delay", "0.5", "--topics", *sorted(set(remaps.values()))],
                                  env=env, capture_output=True, text=True, timeout=120)
            assert play.returncode == 0, play.stdout + play.stderr
            ok = col.spin_until(lambda: count("mapper", "integrate") >= FRAMES, 90)
            assert ok, (last("mapper"), (tmp_path / "launch.log").read_text()[-4000:])
            graphs_before = count("scene_graph", "scene_graph_update")
            # a cloud published after the last frame reaches the scene graph, whose graph reaches the mapper
            assert col.spin_until(lambda: count("scene_graph", "scene_graph_update") > graphs_before, 30), last("scene_graph")
            col.spin_until(lambda: False, 1.0)
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

    pipe, graph_offline = _offline(sim)
    # trajectory: the same poses at the same stamps
    stamps, poses = pipe.trajectory()
    rows = np.loadtxt(online / "trajectory.txt")
    assert rows.shape == (FRAMES, 8)
    np.testing.assert_allclose(rows[:, 0], stamps, atol=1e-6)
    np.testing.assert_allclose(rows[:, 1:4], poses[:, :3, 3], atol=1e-6)
    # mesh: same surface (vertex positions) and the same labels on it
    from scipy.spatial import cKDTree

    on, off_mesh = read_ply(online / "mesh.ply"), pipe.mesh()
    off_v = np.asarray(off_mesh.vertices, dtype=np.float64)
    assert abs(len(on.vertices) - len(off_v)) <= 0.02 * len(off_v), (len(on.vertices), len(off_v))
    d_on, i_on = cKDTree(off_v).query(on.vertices)
    d_off, _ = cKDTree(on.vertices).query(off_v)
    assert np.percentile(d_on, 99) < 0.005 and np.percentile(d_off, 99) < 0.005
    off_cls = np.asarray(off_mesh.classes)
    on_cls = on.vertex_props["class"]
    assert np.mean(on_cls == off_cls[i_on]) > 0.97
    # scene graph: the same objects (ids and classes)
    assert (online / "scene_graph.json").is_file(), text[-4000:]
    graph_online = json.loads((online / "scene_graph.json").read_text())
    objs_on = {(o["id"], o["class_name"]) for o in graph_online["objects"]}
    objs_off = {(o["id"], o["class_name"]) for o in graph_offline["objects"]}
    assert objs_off, "the offline graph has objects (the comparison can fail)"
    assert len(objs_on ^ objs_off) <= max(1, len(objs_off) // 10), (objs_on, objs_off)
