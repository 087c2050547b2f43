"""rviz/metric_semantic_slam.rviz: every display's topic and type is published by a node of the suite
(read from each node module's PUBLISHES table, the one source), in the launch namespace and the fixed
frame ``map``; a Transient Local display listens only to a latched publisher (else RViz never matches)."""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

from metric_semantic_slam.graph import NODES

RVIZ = Path(__file__).resolve().parents[2] / "rviz" / "metric_semantic_slam.rviz"

# RViz display class -> the message type it subscribes to
DISPLAY_TYPES = {
    "rviz_default_plugins/MarkerArray": "visualization_msgs/msg/MarkerArray",
    "rviz_default_plugins/Marker": "visualization_msgs/msg/Marker",
    "rviz_default_plugins/Path": "nav_msgs/msg/Path",
    "rviz_default_plugins/Image": "sensor_msgs/msg/Image",
    "rviz_default_plugins/PointCloud2": "sensor_msgs/msg/PointCloud2",
    "rviz_default_plugins/Odometry": "nav_msgs/msg/Odometry",
    "rviz_default_plugins/Pose": "geometry_msgs/msg/PoseStamped",
}


def _displays(tree: dict) -> list[dict]:
    out = []
    for d in tree.get("Displays", []) or []:
        out.append(d)
        if d.get("Class") == "rviz_common/Group":
            out.extend(_displays(d))
    return out


def _publishers() -> dict[tuple[str, str], list[tuple[str, str]]]:
    """(relative topic, type) -> [(node, qos profile name)] over every node of the graph."""
    table: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for name, (_exe, target) in NODES.items():
        module = importlib.import_module(target.split(":")[0])
        pubs = getattr(module, "PUBLISHES", None)
        assert pubs is not None, f"node module {module.__name__} has no PUBLISHES table"
        for spec in pubs:
            table.setdefault((spec.name, spec.msg_type), []).append((name, spec.qos))
    return table


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load(RVIZ.read_text())


def test_fixed_frame_is_map(config):
    manager = config["Visualization Manager"]
    assert manager["Global Options"]["Fixed Frame"] == "map"


def test_every_topic_is_published_by_the_suite(config):
    from metric_semantic_slam.cli.launch import load_config

    namespace = "/" + load_config(None).namespace.strip("/")
    published = _publishers()
    displays = [d for d in _displays(config["Visualization Manager"]) if "Topic" in d]
    assert {d["Name"] for d in displays} >= {"Semantic mesh", "Trajectory", "Label overlay", "Semantic cloud",
                                             "Scene graph"}
    for d in displays:
        topic = d["Topic"]["Value"]
        assert d["Class"] in DISPLAY_TYPES, f"{d['Name']}: unknown display class {d['Class']}"
        msg_type = DISPLAY_TYPES[d["Class"]]
        assert topic.startswith(namespace + "/"), f"{d['Name']}: {topic} is not in the launch namespace {namespace}"
        key = (topic[len(namespace) + 1:], msg_type)
        assert key in published, f"{d['Name']}: no node publishes {key[0]} as {msg_type}"
        if d["Topic"].get("Durability Policy") == "Transient Local":
            assert any(qos == "latched" for _n, qos in published[key]), \
                f"{d['Name']}: a Transient Local display needs a latched publisher of {key[0]}"


def test_cloud_display_reads_fields_the_mapper_writes(config):
    from metric_semantic_slam.ros.pointcloud import CLOUD_FIELDS

    cloud = next(d for d in _displays(config["Visualization Manager"]) if d["Name"] == "Semantic cloud")
    fields = {f[0] for f in CLOUD_FIELDS}
    assert cloud["Color Transformer"] != "RGB8" or "rgb" in fields
    assert cloud.get("Channel Name", "x") in fields
