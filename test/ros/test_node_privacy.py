"""The ``edge`` profile over DDS (ROS_DOMAIN_ID 93): a simulated sequence with a walking person (seed 2,
ground-truth labels fed as panoptic/semantic + panoptic/instance) goes into the mapper; every message
it publishes is collected and none carries private-class pixels, points or vertices:

- no Image / PointCloud2 / CompressedImage publisher exists, and no cloud or instance table topic;
- no mesh vertex (incremental or full mesh) lies on the person: within 3 cm of any 3D point of the
  person's ground-truth pixels above the floor band, and none carries the person's class color;
- no scene-graph message (JSON or markers) names or holds a private or dynamic object.
A control shows the vertex check does catch person geometry when it is there.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("rclpy")

from nav_msgs.msg import Odometry  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from visualization_msgs.msg import MarkerArray  # noqa: E402

from metric_semantic_slam.core.labels import load_label_space  # noqa: E402
from metric_semantic_slam.core.privacy import contains_private_graph  # noqa: E402
from metric_semantic_slam.ros.camera_info import camera_to_camera_info  # noqa: E402
from metric_semantic_slam.ros.image_conversion import numpy_to_image  # noqa: E402
from metric_semantic_slam.ros.markers import TRIANGLE_LIST  # noqa: E402
from metric_semantic_slam.ros.node_runtime import NodeProcess  # noqa: E402
from metric_semantic_slam.ros.qos import qos_profile  # noqa: E402
from metric_semantic_slam.ros.stamps import seconds_to_stamp  # noqa: E402
from metric_semantic_slam.ros.testing import TopicCollector, ros_env  # noqa: E402
from metric_semantic_slam.ros.tf import matrix_to_pose  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.timeout(300)]

DOMAIN = 93
NS = "/t"
FIRST, LAST = 28, 40  # seed 2: the person walks into view at frame 29 of a 40-frame 160x120 run
OUTPUTS = {f"{NS}/map/mesh": MarkerArray, f"{NS}/map/mesh_full": MarkerArray, f"{NS}/scene_graph": String,
           f"{NS}/scene_graph/markers": MarkerArray, f"{NS}/mapper/status": String}
ALLOWED_TOPICS = {f"{NS}/map/mesh", f"{NS}/map/mesh_full", f"{NS}/scene_graph", f"{NS}/scene_graph/markers",
                  f"{NS}/mapper/status", "/rosout", "/parameter_events"}
IMAGE_TYPES = {"sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage", "sensor_msgs/msg/PointCloud2"}


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    from metric_semantic_slam.io.sequence import open_sequence
    from metric_semantic_slam.sim.simulate import SimConfig, simulate_sequence

    root = tmp_path_factory.mktemp("sim") / "seq"
    simulate_sequence(root, SimConfig(seed=2, frames=LAST, width=160, height=120), write_bag=False, verbose=False)
    return list(open_sequence(root))[FIRST:LAST]


def person_points(frames, label_id: int) -> np.ndarray:
    """World points of every ground-truth person pixel. Shape: -> (P, 3)."""
    out = []
    for f in frames:
        m = (f.gt.semantic == label_id) & (f.gt.depth_m > 0)
        v, u = np.nonzero(m)
        z = f.gt.depth_m[m].astype(np.float64)
        c = f.camera
        p_cam = np.stack([(u - c.cx) / c.fx * z, (v - c.cy) / c.fy * z, z, np.ones_like(z)], axis=1)
        out.append((p_cam @ f.gt.T_world_camera.T)[:, :3])
    return np.concatenate(out)


def vertices_on_person(vertices: np.ndarray, person_m: np.ndarray, floor_band_m: float = 0.3,
                       radius_m: float = 0.03) -> int:
    """How many vertices lie within ``radius_m`` of a person point (feet on the floor excluded: the
    floor under them is static geometry)."""
    from scipy.spatial import cKDTree

    if len(vertices) == 0:
        return 0
    dist, _ = cKDTree(person_m).query(vertices)
    return int(((dist < radius_m) & (vertices[:, 2] > floor_band_m)).sum())


def _mesh_vertices_and_colors(arrays) -> tuple[np.ndarray, np.ndarray]:
    pts, cols = [], []
    for arr in arrays:
        for m in arr.markers:
            if m.type == TRIANGLE_LIST and m.points:
                pts.append(np.array([[p.x, p.y, p.z] for p in m.points]))
                cols.append(np.array([[c.r, c.g, c.b] for c in m.colors]))
    if not pts:
        return np.zeros((0, 3)), np.zeros((0, 3))
    return np.concatenate(pts), np.concatenate(cols)


def _status(col) -> dict:
    msgs = col.messages[f"{NS}/mapper/status"]
    return json.loads(msgs[-1][1].data) if msgs else {}


def test_edge_profile_publishes_nothing_private(frames, tmp_path):
    labels = load_label_space()
    person = labels.id_of("person")
    assert labels.by_id(person).is_private
    person_m = person_points(frames, person)
    assert len(person_m) > 2000, "the sequence must show the person for this test to mean anything"

    node = NodeProcess("metric_semantic_slam.nodes.mapper_node", "mapper", ros_env(DOMAIN), namespace="t",
                       parameters={"profile": "edge", "depth_topic": "depth/image_raw", "device": "cpu",
                                   "mesh_period_s": 0.3, "scene_graph_period_s": 1.0, "queue_size": 50,
                                   "mesh_color_mode": "class", "status_period_s": 0.3,
                                   "output_dir": str(tmp_path / "out")},
                       log_path=tmp_path / "mapper.log")
    col = TopicCollector(DOMAIN, OUTPUTS)
    n = col.node
    inputs = {"depth": ("depth/image_raw", Image), "color": ("color/image_raw", Image),
              "info": ("color/camera_info", CameraInfo), "odom": ("odometry", Odometry),
              "semantic": ("panoptic/semantic", Image), "instance": ("panoptic/instance", Image)}
    pubs = {k: n.create_publisher(t, f"{NS}/{name}", qos_profile("reliable")) for k, (name, t) in inputs.items()}
    try:
        assert node.wait_for_log("ready", 60), node.log()
        assert col.spin_until(lambda: all(p.get_subscription_count() > 0 for p in pubs.values()), 20), node.log()
        for f in frames:
            st = seconds_to_stamp(f.stamp_s)
            pubs["info"].publish(camera_to_camera_info(f.camera, stamp=st, frame_id="cam"))
            pubs["depth"].publish(numpy_to_image(f.depth_m.astype(np.float32), "32FC1", stamp=st, frame_id="cam"))
            pubs["color"].publish(numpy_to_image(f.color, "rgb8", stamp=st, frame_id="cam"))
            odom = Odometry()
            odom.header.stamp, odom.header.frame_id = st, "map"
            odom.pose.pose = matrix_to_pose(f.gt.T_world_camera)
            pubs["odom"].publish(odom)
            pubs["semantic"].publish(numpy_to_image(f.gt.semantic.astype(np.uint16), "mono16", stamp=st))
            pubs["instance"].publish(numpy_to_image(f.gt.instance.astype(np.uint16), "mono16", stamp=st))
            # pace on the synchronizer: topics may arrive out of order across readers, and a set
            # completed after a newer one is discarded by design (live streams want the newest)
            k = len(frames) - sum(1 for g in frames if g.stamp_s > f.stamp_s)
            col.spin_until(lambda: _status(col).get("queues", {}).get("frames", {}).get("received", 0) >= k, 15)

        def fused() -> int:
            return _status(col).get("latency", {}).get("integrated", {}).get("count", 0)

        assert col.spin_until(lambda: fused() >= len(frames), 180), node.log()[-3000:]
        cli = n.create_client(Trigger, f"{NS}/publish_full_mesh")
        assert cli.wait_for_service(timeout_sec=30)
        fut = cli.call_async(Trigger.Request())
        assert col.spin_until(fut.done, 60) and fut.result().success
        assert col.spin_until(lambda: col.count(f"{NS}/map/mesh_full") >= 1 and col.count(f"{NS}/scene_graph") >= 1, 30)

        # what the mapper publishes: no images, no clouds, only the allowed topics
        mine = {}
        for topic, types in n.get_topic_names_and_types():
            if any(i.node_name == "mapper" for i in n.get_publishers_info_by_topic(topic)):
                mine[topic] = set(types)
        assert set(mine) <= ALLOWED_TOPICS, f"edge mapper publishes {sorted(set(mine) - ALLOWED_TOPICS)}"
        assert not set().union(*mine.values()) & IMAGE_TYPES

        # meshes: no vertex on the person, no vertex of the person's class
        mesh_msgs = [m for topic in (f"{NS}/map/mesh", f"{NS}/map/mesh_full") for _t, m in col.messages[topic]]
        verts, cols = _mesh_vertices_and_colors(mesh_msgs)
        full_verts, _ = _mesh_vertices_and_colors([col.messages[f"{NS}/map/mesh_full"][-1][1]])
        assert len(full_verts) > 1000, "the edge mesh should still show the room"
        assert vertices_on_person(verts, person_m) == 0
        person_rgb = np.asarray(labels.by_id(person).color) / 255.0
        assert not (np.abs(cols - person_rgb).sum(axis=1) < 1e-3).any()
        # the check has teeth: the same vertices plus a few person points are caught
        assert vertices_on_person(np.concatenate([verts, person_m[person_m[:, 2] > 0.5][:20]]), person_m) >= 20

        # scene graph: valid, non-empty, nothing private or dynamic anywhere
        graphs = [json.loads(m.data) for _t, m in col.messages[f"{NS}/scene_graph"]]
        assert graphs[-1]["objects"], "the scene graph should hold the room's objects"
        for g in graphs:
            assert not contains_private_graph(g, labels, include_dynamic=True)
            assert "person" not in json.dumps(g)
        texts = [m.text for _t, arr in col.messages[f"{NS}/scene_graph/markers"] for m in arr.markers]
        assert texts and not any("person" in t for t in texts)
    finally:
        col.close()
        code = node.stop(timeout_s=90)
    assert code == 0, node.log()[-3000:]


def test_edge_launch_config_runs_the_mapper_in_the_edge_profile():
    from pathlib import Path

    from metric_semantic_slam.cli.launch import load_config, node_command

    cfg = load_config(Path(__file__).resolve().parents[2] / "config" / "launch" / "edge.yaml")
    names = [n.name for n in cfg.nodes]
    assert "scene_graph" not in names and "mapper" in names  # the mapper builds the graph in-process
    args = " ".join(node_command(next(n for n in cfg.nodes if n.name == "mapper"), cfg.namespace, True))
    assert "profile:=edge" in args
    panoptic = " ".join(node_command(next(n for n in cfg.nodes if n.name == "panoptic"), cfg.namespace, True))
    assert "publish_overlay:=false" in panoptic
