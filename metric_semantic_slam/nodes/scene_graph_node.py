"""ROS 2 node ``scene_graph_node``: the mapper's semantic cloud + instance table -> the 3D scene graph.

Thin adapter over :class:`metric_semantic_slam.core.scene_graph.SceneGraphBuilder`. The mapper
publishes ``map/semantic_cloud`` and ``map/instances`` together with the same stamp; each matching pair
(the newest one; older pairs are dropped when the builder is busy) rebuilds the graph. Outputs:

- ``scene_graph`` (std_msgs/String, latched): the whole graph as JSON (schema ``msslam_scene_graph``
  v1, ``docs/scene_graph.md``) with its ``sequence`` number, so a late joiner has everything;
- ``scene_graph/updates`` (String, ``full`` profile only): the incremental update (changed objects,
  deleted ids, ``full`` flag) for consumers that follow deltas;
- ``scene_graph/markers`` (MarkerArray, latched): boxes colored by class, labels, relation edges;
- ``scene_graph/query`` (String in) -> ``scene_graph/query_result`` (String JSON out): queries such as
  ``chair in_front_of tv``, ``cup on table`` or ``support_surface free_area_m2>=0.3`` answered by
  :func:`run_query`. The input is the query text, or JSON ``{"id": ..., "query": "..."}``; the
  result echoes both.

Privacy: private classes are scrubbed from everything published (they never reach the map anyway);
the ``edge`` profile also removes dynamic classes and publishes no incremental updates.
:class:`SceneGraphStage` (builder + publishers + queries) is shared with the mapper node, which runs
it in-process in its ``edge`` profile (where no cloud leaves the mapper).
"""
from __future__ import annotations

import json
import threading
from typing import Any

import numpy as np

from ..ros.node_runtime import StageNode, TopicSpec, run_node
from ..ros.params import ParamSpec
from ..ros.qos import qos_profile

__all__ = ["PARAMS", "SUBSCRIBES", "PUBLISHES", "PROFILES", "SceneGraphStage", "SceneGraphNode", "main"]

PROFILES: tuple[str, ...] = ("full", "edge")

PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("profile", "full", f"output profile, one of {list(PROFILES)}: 'edge' also removes dynamic classes "
              "and publishes no incremental updates"),
    ParamSpec("label_space", "", "label space YAML ('' = the bundled indoor space); must be the mapper's"),
    ParamSpec("map_frame", "map", "frame of the map (the graph's frame_id)"),
    ParamSpec("up_world", [0.0, 0.0, 1.0], "unit up direction (against gravity) in the map frame",
              dimensionless=True),
    ParamSpec("voxel_size_m", 0.04, "the mapper's voxel size (boxes are built from voxel centres)"),
    ParamSpec("min_object_points", 30, "instances with fewer surface points get no object node"),
    ParamSpec("near_m", 0.5, "gap between two boxes below which they are 'near'"),
    ParamSpec("viewpoint_source", "odometry", "camera position for viewer-relative relations: 'odometry' "
              "(nav_msgs/Odometry on odometry), 'pose' (PoseStamped on pose) or 'none'"),
    ParamSpec("queue_size", 1, "pending cloud+instances pairs (the oldest is dropped when full)"),
)

SUBSCRIBES: tuple[TopicSpec, ...] = (
    TopicSpec("map/semantic_cloud", "sensor_msgs/msg/PointCloud2", "reliable", "the mapper's surface voxels"),
    TopicSpec("map/instances", "std_msgs/msg/String", "reliable", "the mapper's instance table (JSON)"),
    TopicSpec("odometry", "nav_msgs/msg/Odometry", "input_qos", "viewpoint (viewpoint_source = odometry)"),
    TopicSpec("pose", "geometry_msgs/msg/PoseStamped", "input_qos", "viewpoint (viewpoint_source = pose)"),
    TopicSpec("scene_graph/query", "std_msgs/msg/String", "reliable", "query text or {\"id\", \"query\"} JSON"),
)
PUBLISHES: tuple[TopicSpec, ...] = (
    TopicSpec("scene_graph", "std_msgs/msg/String", "latched", "the whole graph, JSON (versioned schema)"),
    TopicSpec("scene_graph/updates", "std_msgs/msg/String", "reliable", "incremental updates, JSON (full only)"),
    TopicSpec("scene_graph/markers", "visualization_msgs/msg/MarkerArray", "latched", "boxes, labels, relations"),
    TopicSpec("scene_graph/query_result", "std_msgs/msg/String", "reliable", "answers to scene_graph/query"),
)


class SceneGraphStage:
    """The scene-graph builder with its publishers and query interface, on any node.

    ``update`` is called from one worker thread; ``query`` may come from the executor thread.
    """

    def __init__(self, node: Any, label_space: Any, config: Any, profile: str, frame_id: str = "map",
                 queries: bool = True) -> None:
        from std_msgs.msg import String
        from visualization_msgs.msg import MarkerArray

        from ..core.scene_graph import SceneGraph, SceneGraphBuilder

        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {list(PROFILES)}, got {profile!r}")
        self.node, self.labels, self.profile, self.frame_id = node, label_space, profile, frame_id
        self.builder = SceneGraphBuilder(label_space, config)
        self._lock = threading.Lock()
        self.public_graph = SceneGraph(frame_id=frame_id)  # what was last published (scrubbed)
        self.public_dict: dict | None = None
        self.graph_pub = node.create_publisher(String, "scene_graph", qos_profile("latched"))
        self.marker_pub = node.create_publisher(MarkerArray, "scene_graph/markers", qos_profile("latched"))
        self.update_pub = (node.create_publisher(String, "scene_graph/updates", qos_profile("reliable"))
                           if profile == "full" else None)
        self.result_pub = None
        if queries:
            self.result_pub = node.create_publisher(String, "scene_graph/query_result", qos_profile("reliable"))
            node.create_subscription(String, "scene_graph/query", self._on_query, qos_profile("reliable"))

    def _scrub(self, d: dict) -> dict:
        from ..core.privacy import scrub_scene_graph

        return scrub_scene_graph(d, self.labels, drop_dynamic=self.profile == "edge")

    def update(self, points_m: np.ndarray, classes: np.ndarray, instances: np.ndarray, instance_table: list,
               stamp_s: float, viewpoint_m: np.ndarray | None) -> dict:
        """Rebuild from one map snapshot and publish; returns the published graph dict."""
        from std_msgs.msg import String

        from ..core.scene_graph import SceneGraph
        from ..ros.markers import scene_graph_markers, serialize_marker_array
        from ..ros.stamps import seconds_to_stamp

        with self.node.timed("scene_graph_update"), self._lock:
            upd = self.builder.update(points_m, classes, instances, instance_table, stamp_s, viewpoint_m)
            graph = self._scrub(dict(self.builder.graph.to_dict(), frame_id=self.frame_id))
        with self.node.timed("scene_graph_publish"):
            self.graph_pub.publish(String(data=json.dumps(graph)))
            if self.update_pub is not None:
                self.update_pub.publish(String(data=json.dumps(self._scrub(dict(upd.to_dict(),
                                                                                frame_id=self.frame_id)))))
            specs = scene_graph_markers(graph, self.labels)
            self.marker_pub.publish(serialize_marker_array(specs, self.frame_id, seconds_to_stamp(stamp_s)))
        with self._lock:
            self.public_dict = graph
            self.public_graph = SceneGraph.from_dict(graph)
        return graph

    def reset(self) -> None:
        with self._lock:
            self.builder.reset()

    def answer(self, text: str) -> dict:
        """The result dict of one query (``error`` set instead of raising on a bad query)."""
        from ..core.scene_graph import run_query

        request_id = None
        query = text.strip()
        if query.startswith("{"):
            try:
                req = json.loads(query)
                request_id, query = req.get("id"), str(req["query"])
            except (ValueError, KeyError, TypeError) as exc:
                return {"id": None, "query": text, "matches": [], "error": f"bad query JSON: {exc}"}
        with self._lock:
            graph = self.public_graph
        out = {"id": request_id, "query": query, "sequence": graph.sequence, "stamp_s": graph.stamp_s,
               "matches": [], "error": None}
        try:
            out["matches"] = [m.to_dict() for m in run_query(graph, query)]
        except ValueError as exc:
            out["error"] = str(exc)
        return out

    def _on_query(self, msg: Any) -> None:
        from std_msgs.msg import String

        result = self.answer(msg.data)
        if result["error"]:
            self.node.drop("bad_query", f"{result['query']!r}: {result['error']}")
        self.result_pub.publish(String(data=json.dumps(result)))


def scene_graph_config(params: Any) -> Any:
    """A :class:`SceneGraphConfig` from node parameters."""
    from ..core.scene_graph import SceneGraphConfig

    return SceneGraphConfig(up_world=tuple(float(v) for v in params.up_world), voxel_size_m=params.voxel_size_m,
                            min_object_points=int(params.min_object_points), near_m=params.near_m)


def load_labels(path: str) -> Any:
    from ..core.labels import load_label_space

    return load_label_space(path or None)


class SceneGraphNode(StageNode):
    """Subscribes the mapper's cloud + instance table, publishes the scene graph and answers queries."""

    def __init__(self, **node_kwargs: Any) -> None:
        from sensor_msgs.msg import PointCloud2
        from std_msgs.msg import String

        super().__init__("scene_graph", PARAMS, **node_kwargs)
        p = self.params
        if p.viewpoint_source not in ("odometry", "pose", "none"):
            raise ValueError(f"viewpoint_source must be 'odometry', 'pose' or 'none', got {p.viewpoint_source!r}")
        self.labels = load_labels(p.label_space)
        self.stage = SceneGraphStage(self, self.labels, scene_graph_config(p), p.profile, p.map_frame)
        self._pairs = self.make_queue("map_snapshots", int(p.queue_size))
        self._pending_lock = threading.Lock()
        self._cloud: tuple[int, Any] | None = None      # (stamp ns, PointCloud2)
        self._table: tuple[int, list] | None = None     # (stamp ns, instance dicts)
        self._viewpoint: np.ndarray | None = None
        self.create_subscription(PointCloud2, "map/semantic_cloud", self._on_cloud, qos_profile("reliable", 2))
        self.create_subscription(String, "map/instances", self._on_instances, qos_profile("reliable", 10))
        if p.viewpoint_source == "odometry":
            from nav_msgs.msg import Odometry

            self.create_subscription(Odometry, "odometry", lambda m: self._on_pose(m.pose.pose), self.input_qos())
        elif p.viewpoint_source == "pose":
            from geometry_msgs.msg import PoseStamped

            self.create_subscription(PoseStamped, "pose", lambda m: self._on_pose(m.pose), self.input_qos())
        self.start_worker(self._work)

    # ------------------------------------------------------------------ callbacks: convert + pair
    def _on_pose(self, pose: Any) -> None:
        v = np.array([pose.position.x, pose.position.y, pose.position.z], dtype=np.float64)
        if not np.isfinite(v).all():
            self.drop("bad_pose", f"viewpoint {v.tolist()}")
            return
        self._viewpoint = v

    def _on_cloud(self, msg: Any) -> None:
        from ..ros.stamps import stamp_to_ns

        with self._pending_lock:
            self._cloud = (stamp_to_ns(msg.header.stamp), msg)
        self._pair()

    def _on_instances(self, msg: Any) -> None:
        try:
            d = json.loads(msg.data)
            table = list(d["instances"])
            stamp_ns = int(d["stamp_ns"])
        except (ValueError, KeyError, TypeError) as exc:
            self.drop("bad_instances", f"map/instances is not the mapper's JSON: {exc}")
            return
        with self._pending_lock:
            self._table = (stamp_ns, table)
        self._pair()

    def _pair(self) -> None:
        with self._pending_lock:
            if self._cloud is None or self._table is None or self._cloud[0] != self._table[0]:
                return
            item = (self._cloud[0], self._cloud[1], self._table[1], self._viewpoint)
            self._cloud = self._table = None
        self._pairs.put(item)

    # ------------------------------------------------------------------ worker
    def _work(self) -> None:
        from ..ros.pointcloud import pointcloud2_to_cloud

        item = self._pairs.get(timeout=0.1)
        if item is None:
            return
        stamp_ns, cloud_msg, table, viewpoint = item
        try:
            with self.timed("convert"):
                cloud = pointcloud2_to_cloud(cloud_msg)
        except ValueError as exc:
            self.drop("bad_cloud", str(exc))
            return
        try:
            self.stage.update(cloud.points, cloud.classes, cloud.instances, table, stamp_ns * 1e-9, viewpoint)
        except (ValueError, KeyError, TypeError) as exc:
            self.drop("bad_snapshot", f"scene graph update failed: {exc}")
            return
        self.record_latency(stamp_ns * 1e-9, "scene_graph")


def main(argv: list[str] | None = None) -> int:
    return run_node(SceneGraphNode, argv)


if __name__ == "__main__":
    raise SystemExit(main())
