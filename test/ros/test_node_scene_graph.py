"""scene_graph_node as a real process over DDS (ROS_DOMAIN_ID 92): a map snapshot (semantic cloud +
instance table, as the mapper publishes them) in -> the latched scene graph JSON (schema-valid, sequence
numbers, late joiners), incremental updates with deleted ids, markers, and queries over
scene_graph/query; private objects never appear; bad input is dropped and the node keeps answering."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy")

from sensor_msgs.msg import PointCloud2  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from visualization_msgs.msg import MarkerArray  # noqa: E402

from metric_semantic_slam.core.labels import load_label_space  # noqa: E402
from metric_semantic_slam.core.mapping import SemanticCloud  # noqa: E402
from metric_semantic_slam.ros.markers import CUBE, DELETEALL, TEXT_VIEW_FACING  # noqa: E402
from metric_semantic_slam.ros.node_runtime import NodeProcess  # noqa: E402
from metric_semantic_slam.ros.pointcloud import cloud_to_pointcloud2  # noqa: E402
from metric_semantic_slam.ros.qos import qos_profile  # noqa: E402
from metric_semantic_slam.ros.stamps import seconds_to_stamp, stamp_to_ns  # noqa: E402
from metric_semantic_slam.ros.testing import TopicCollector, ros_env  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.timeout(120)]

DOMAIN = 92
NS = "/t"
GRAPH, UPDATES, MARKERS, RESULT, STATUS = (f"{NS}/scene_graph", f"{NS}/scene_graph/updates",
                                           f"{NS}/scene_graph/markers", f"{NS}/scene_graph/query_result",
                                           f"{NS}/scene_graph/status")
SCHEMA = Path(__file__).resolve().parents[2] / "config" / "schemas" / "scene_graph.schema.json"
def box_surface(center, size, step=0.04):
    """Points on the surface of an axis-aligned box, spaced ~step."""
    c, s = np.asarray(center, float), np.asarray(size, float)
    pts = []
    for axis in range(3):
        a, b = [i for i in range(3) if i != axis]
        ua = np.arange(-s[a] / 2, s[a] / 2 + 1e-9, step)
        ub = np.arange(-s[b] / 2, s[b] / 2 + 1e-9, step)
        A, B = np.meshgrid(ua, ub, indexing="ij")
        for sign in (-1, 1):
            p = np.zeros((A.size, 3))
            p[:, a], p[:, b], p[:, axis] = A.ravel(), B.ravel(), sign * s[axis] / 2
            pts.append(p + c)
    return np.unique(np.round(np.concatenate(pts), 4), axis=0)

def scene(labels, with_cup=True, with_person=True):
    """Floor, a table, a cup on it, a chair, and (private) a person: (cloud, instance dicts)."""
    C = labels.max_id + 1
    parts = []  # (points, class, instance)
    g = np.arange(-2, 2, 0.04)
    X, Y = np.meshgrid(g, g, indexing="ij")
    parts.append((np.stack([X.ravel(), Y.ravel(), np.zeros(X.size)], 1), labels.id_of("floor"), 0))
    objs = [(1, "table", (0.5, 0.5, 0.375), (1.2, 0.8, 0.75)), (3, "chair", (0.5, -0.6, 0.45), (0.5, 0.5, 0.9))]
    if with_cup:
        objs.append((2, "cup", (0.5, 0.5, 0.83), (0.16, 0.16, 0.16)))
    if with_person:
        objs.append((4, "person", (-1.0, -1.0, 0.9), (0.5, 0.3, 1.8)))
    table = []
    for iid, name, c, s in objs:
        p = box_surface(c, s)
        parts.append((p, labels.id_of(name), iid))
        votes = np.zeros(C, np.int64); votes[labels.id_of(name)] = 5
        table.append({"id": iid, "class_votes": votes.tolist(), "first_seen": 0, "last_seen": 4,
                      "bounds_min_m": (np.asarray(c) - np.asarray(s) / 2).tolist(),
                      "bounds_max_m": (np.asarray(c) + np.asarray(s) / 2).tolist(), "voxel_count": len(p),
                      "merged_ids": []})
    pts = np.concatenate([p for p, _c, _i in parts]).astype(np.float32)
    cls = np.concatenate([np.full(len(p), c) for p, c, _i in parts])
    ins = np.concatenate([np.full(len(p), i) for p, _c, i in parts])
    col = np.full((len(pts), 3), 128, np.uint8)
    return SemanticCloud(pts, col, cls, ins), table


def _publish_snapshot(pubs, cloud, table, stamp_s):
    st = seconds_to_stamp(stamp_s)
    pubs["cloud"].publish(cloud_to_pointcloud2(cloud, "map", stamp=st))
    pubs["instances"].publish(String(data=json.dumps({"stamp_ns": stamp_to_ns(st), "stamp_s": stamp_s,
                                                      "frame_id": "map", "instances": table})))


def _last(col, topic) -> dict:
    return json.loads(col.messages[topic][-1][1].data)


def test_snapshot_to_graph_markers_updates_queries(tmp_path):
    labels = load_label_space()
    node = NodeProcess("metric_semantic_slam.nodes.scene_graph_node", "scene_graph", ros_env(DOMAIN), namespace="t",
                       parameters={"min_object_points": 10, "viewpoint_source": "none", "status_period_s": 0.3,
                                   "drop_log_period_s": 0.0},
                       log_path=tmp_path / "scene_graph.log")
    col = TopicCollector(DOMAIN, {GRAPH: String, UPDATES: String, MARKERS: MarkerArray, RESULT: String,
                                  STATUS: String})
    n = col.node
    pubs = {"cloud": n.create_publisher(PointCloud2, f"{NS}/map/semantic_cloud", qos_profile("reliable")),
            "instances": n.create_publisher(String, f"{NS}/map/instances", qos_profile("reliable")),
            "query": n.create_publisher(String, f"{NS}/scene_graph/query", qos_profile("reliable"))}
    late = None
    try:
        assert node.wait_for_log("ready", 60), node.log()
        assert col.spin_until(lambda: all(p.get_subscription_count() > 0 for p in pubs.values()), 20), node.log()

        # 1. a snapshot -> the whole graph, schema-valid, without the (private) person
        cloud, table = scene(labels)
        _publish_snapshot(pubs, cloud, table, 100.0)
        assert col.spin_until(lambda: col.count(GRAPH) >= 1 and col.count(MARKERS) >= 1, 30), node.log()[-3000:]
        g = _last(col, GRAPH)
        if SCHEMA.is_file():
            import jsonschema

            jsonschema.validate(g, json.loads(SCHEMA.read_text()))
        assert g["schema"] == "msslam_scene_graph" and g["sequence"] == 1 and g["stamp_s"] == pytest.approx(100.0)
        assert sorted((o["id"], o["class_name"]) for o in g["objects"]) == [(1, "table"), (2, "cup"), (3, "chair")]
        assert "person" not in json.dumps(g)
        assert {"subject_id": 2, "predicate": "on", "object_id": 1} in [
            {k: r[k] for k in ("subject_id", "predicate", "object_id")} for r in g["relations"]]
        cup = next(o for o in g["objects"] if o["id"] == 2)
        np.testing.assert_allclose(cup["centroid_m"], [0.5, 0.5, 0.83], atol=0.03)

        # markers: DELETEALL, a class-colored box and a label per object
        arr = col.messages[MARKERS][-1][1].markers
        assert arr[0].action == DELETEALL and all(m.header.frame_id == "map" for m in arr[1:])
        boxes = {m.id: m for m in arr if m.type == CUBE and m.ns == "objects"}
        assert sorted(boxes) == [1, 2, 3]
        np.testing.assert_allclose([boxes[1].color.r, boxes[1].color.g, boxes[1].color.b],
                                   np.asarray(labels.by_id(labels.id_of("table")).color) / 255.0, atol=1e-6)
        assert sorted(m.text for m in arr if m.type == TEXT_VIEW_FACING) == ["chair #3", "cup #2", "table #1"]

        # 2. queries over DDS
        pubs["query"].publish(String(data=json.dumps({"id": 7, "query": "cup on table"})))
        pubs["query"].publish(String(data="class:sofa"))
        pubs["query"].publish(String(data="cup flies_over table"))
        assert col.spin_until(lambda: col.count(RESULT) >= 3, 20)
        results = [json.loads(m.data) for _t, m in col.messages[RESULT]]
        by_query = {r["query"]: r for r in results}
        r = by_query["cup on table"]
        assert r["id"] == 7 and r["error"] is None and r["sequence"] == 1
        assert [m["ids"] for m in r["matches"]] == [[2, 1]]
        assert by_query["class:sofa"]["matches"] == [] and by_query["class:sofa"]["error"] is None
        assert by_query["cup flies_over table"]["error"]

        # 3. late joiner: a new transient-local subscriber gets the current graph at once
        late = TopicCollector(DOMAIN, {GRAPH: String}, qos=qos_profile("latched"), name="late")
        assert late.spin_until(lambda: late.count(GRAPH) >= 1, 20)
        assert _last(late, GRAPH)["sequence"] == 1

        # 4. bad input is dropped; the node keeps working
        pubs["instances"].publish(String(data="not json"))
        bad = cloud_to_pointcloud2(cloud, "map", stamp=seconds_to_stamp(101.0))
        bad.data = bytes(bad.data)[:-5]
        pubs["cloud"].publish(bad)
        pubs["instances"].publish(String(data=json.dumps({"stamp_ns": stamp_to_ns(seconds_to_stamp(101.0)),
                                                          "instances": table})))

        def drops() -> dict:
            return _last(col, STATUS).get("drops", {}) if col.count(STATUS) else {}

        assert col.spin_until(lambda: "bad_instances" in drops() and "bad_cloud" in drops(), 20), drops()
        assert node.alive() and _last(col, GRAPH)["sequence"] == 1

        # 5. the cup is gone from the next snapshot: sequence 2, an update naming it deleted
        cloud2, table2 = scene(labels, with_cup=False)
        _publish_snapshot(pubs, cloud2, table2, 102.0)
        assert col.spin_until(lambda: _last(col, GRAPH)["sequence"] == 2, 30), node.log()[-3000:]
        assert sorted(o["id"] for o in _last(col, GRAPH)["objects"]) == [1, 3]
        assert col.spin_until(lambda: col.count(UPDATES) >= 2, 10)
        updates = [json.loads(m.data) for _t, m in col.messages[UPDATES]]
        assert updates[0]["full"] and updates[-1]["sequence"] == 2 and 2 in updates[-1]["deleted_ids"]
        assert late.spin_until(lambda: _last(late, GRAPH)["sequence"] == 2, 10)
    finally:
        if late is not None:
            late.close()
        col.close()
        code = node.stop()
    assert code == 0, node.log()[-3000:]
