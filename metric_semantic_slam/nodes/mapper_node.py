"""ROS 2 node ``mapper_node``: posed depth + color (+ panoptic labels) -> semantic voxel map.

Thin adapter over :class:`metric_semantic_slam.core.mapping.SemanticVoxelMapper` (the offline
pipeline's object). Depth (``depth_topic``: ``depth/fused`` or ``depth/image_raw``), ``color/image_raw``,
the camera pose (``odometry`` as nav_msgs/Odometry, or ``pose`` as PoseStamped: ``pose_source``) and,
with ``use_labels``, ``panoptic/semantic`` + ``panoptic/instance`` are synchronized by stamp
(message_filters when it imports, else ``ros/sync.py``); intrinsics come from ``color/camera_info``
(depth is registered to color). The pose is the odometry child frame's; ``camera_pose_in_body`` turns
it into the camera's (identity when the odometry is the camera's, as the suite's vio node publishes).
With ``pose_max_gap_s`` > 0 the pose is not part of the synchronized set: poses are buffered and each
frame takes the interpolation of the two around its stamp (``io.trajectory.PoseBuffer``), waiting up to
``pose_wait_s`` for the later one, so odometry slower than the camera or tracking that skipped the frame
still places it.

Outputs (``full`` profile):

- ``map/mesh``: MarkerArray, one TRIANGLE_LIST per changed block every ``mesh_period_s`` (DELETE for
  emptied/evicted blocks); ``publish_full_mesh`` (or load/reset) sends DELETEALL + the whole mesh,
  there and on the latched ``map/mesh_full`` for late joiners;
- ``map/semantic_cloud`` (PointCloud2 x,y,z,rgb,label,instance of the surface voxels) and
  ``map/instances`` (String JSON ``{"stamp_ns", "stamp_s", "frame_id", "instances": [MapInstance dicts]}``),
  together with the same stamp every ``cloud_period_s``.

The ``edge`` profile (privacy, DESIGN.md §5) publishes only the anonymised mesh (private and dynamic
regions removed, colors too with ``edge_drop_color``) and the scene graph, which it builds in-process
(no cloud and no instance table leave the node, so a separate scene_graph node has nothing to read).

Services (std_srvs/Trigger): ``save_map`` (into ``output_dir``: ``mesh.ply`` with class/instance,
``map.npz``, ``trajectory.txt`` of the integrated poses (TUM), ``instances.json``, and
``scene_graph.json`` when a graph was received on ``scene_graph`` or built in-process), ``load_map``
(from ``map_file``, default ``output_dir/map.npz``), ``reset``, ``pause``, ``resume``,
``publish_full_mesh``. With ``save_on_shutdown`` the map is saved on SIGINT/SIGTERM.

Bad input (undecodable images, sizes that disagree, NaN or non-rigid poses, label ids outside the label
space, missing camera_info, stamps going backwards) is logged and dropped; the map is untouched.
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..ros.node_runtime import CameraInfoCache, StageNode, TopicSpec, matrix_param, run_node
from ..ros.params import ParamSpec
from ..ros.qos import qos_profile
from .scene_graph_node import PROFILES

__all__ = ["PARAMS", "SUBSCRIBES", "PUBLISHES", "SERVICES", "MapperNode", "main"]

_IDENTITY = [float(v) for v in np.eye(4).ravel()]

PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("profile", "full", f"output profile, one of {list(PROFILES)}: 'edge' publishes only the anonymised "
              "mesh and the scene graph (built in-process); no cloud, no instance table"),
    ParamSpec("depth_topic", "depth/fused", "depth input: 'depth/fused' (depth_fusion node) or 'depth/image_raw'"),
    ParamSpec("pose_source", "odometry", "camera pose input: 'odometry' (nav_msgs/Odometry) or 'pose' (PoseStamped)"),
    ParamSpec("use_color", True, "subscribe color/image_raw and fuse color"),
    ParamSpec("use_labels", True, "subscribe panoptic/semantic + panoptic/instance (mono16) and fuse them"),
    ParamSpec("label_space", "", "label space YAML ('' = the bundled indoor space)"),
    ParamSpec("camera_pose_in_body", list(_IDENTITY), "T_body_camera: camera pose in the pose input's child frame "
              "(row-major 4x4)", dimensionless=True),
    ParamSpec("voxel_size_m", 0.04, "TSDF voxel edge"),
    ParamSpec("truncation_voxels", 4.0, "TSDF truncation distance in voxels", dimensionless=True),
    ParamSpec("block_resolution", 8, "voxels per block edge"),
    ParamSpec("depth_min_m", 0.1, "closer depth is ignored"),
    ParamSpec("depth_max_m", 5.0, "farther depth is ignored"),
    ParamSpec("semantic_method", "bayesian", "per-voxel class fusion: 'bayesian' or 'bayesian_topk'"),
    ParamSpec("device", "auto", "torch device: 'auto' (CUDA when present), 'cpu', 'cuda'"),
    ParamSpec("clear_radius_m", 0.0, "evict blocks farther than this from the camera (0 = never)"),
    ParamSpec("max_blocks", 0, "upper bound of allocated blocks (0 = unbounded)"),
    ParamSpec("reserve_blocks", 2048, "storage allocated up front for this many blocks (~35 kB each), so the "
              "first frames of a map do not wait for the store to grow (0 = grow from empty)"),
    ParamSpec("sync_slop_s", 0.02, "largest stamp difference inside a synchronized input set"),
    ParamSpec("pose_max_gap_s", 0.0, "0: the pose is synchronized with the images (stamp within sync_slop_s); "
              "> 0: poses are buffered and interpolated at each frame's stamp between the two around it, each "
              "at most this far (odometry slower than the camera, or tracking that skipped frames)"),
    ParamSpec("pose_wait_s", 0.5, "with pose_max_gap_s > 0: how long a frame waits for a pose at or after its stamp"),
    ParamSpec("sync_queue_size", 30, "messages per input the synchronizer keeps (covers the pose's latency)"),
    ParamSpec("queue_size", 1, "synchronized frames waiting for the mapper (the oldest is dropped when full; 1: "
              "always the newest set, so a slow integration or mesh update adds no queueing delay)"),
    ParamSpec("mesh_period_s", 0.5, "publish the changed blocks' mesh at most this often (0 = after every frame)"),
    ParamSpec("mesh_color_mode", "rgb", "mesh marker colors: 'rgb', 'class', 'instance' or 'gray'"),
    ParamSpec("cloud_period_s", 2.0, "publish map/semantic_cloud + map/instances this often (0 = every frame)"),
    ParamSpec("scene_graph_period_s", 2.0, "edge profile: rebuild the in-process scene graph this often"),
    ParamSpec("edge_drop_color", False, "edge profile: publish and save the mesh without colors"),
    ParamSpec("map_frame", "map", "frame of the map outputs"),
    ParamSpec("output_dir", "output/mapper", "folder save_map (and save_on_shutdown) writes into"),
    ParamSpec("map_file", "", "map load_map reads ('' = output_dir/map.npz)"),
    ParamSpec("load_on_start", False, "load map_file at start"),
    ParamSpec("reset_on_time_reset", False, "a time reset of the inputs (a looping bag) also resets the map, as the "
              "reset service does: for tracked poses, whose new trajectory starts in a new frame, so the passes would "
              "be fused into one map at different places; with ground-truth poses the map carries over (false)"),
    ParamSpec("save_on_shutdown", True, "save the map into output_dir on SIGINT/SIGTERM"),
)

SUBSCRIBES: tuple[TopicSpec, ...] = (
    TopicSpec("depth/fused", "sensor_msgs/msg/Image", "input_qos", "depth 32FC1 m / 16UC1 mm (depth_topic)"),
    TopicSpec("color/image_raw", "sensor_msgs/msg/Image", "input_qos", "color rgb8/bgr8 (use_color)"),
    TopicSpec("color/camera_info", "sensor_msgs/msg/CameraInfo", "input_qos", "intrinsics of color and depth"),
    TopicSpec("odometry", "nav_msgs/msg/Odometry", "input_qos", "camera pose (pose_source = odometry)"),
    TopicSpec("pose", "geometry_msgs/msg/PoseStamped", "input_qos", "camera pose (pose_source = pose)"),
    TopicSpec("panoptic/semantic", "sensor_msgs/msg/Image", "input_qos", "class ids mono16 (use_labels)"),
    TopicSpec("panoptic/instance", "sensor_msgs/msg/Image", "input_qos", "instance ids mono16 (use_labels)"),
    TopicSpec("scene_graph", "std_msgs/msg/String", "latched", "latest graph, saved by save_map"),
)
PUBLISHES: tuple[TopicSpec, ...] = (
    TopicSpec("map/mesh", "visualization_msgs/msg/MarkerArray", "reliable", "changed blocks' mesh (edge: anonymised)"),
    TopicSpec("map/mesh_full", "visualization_msgs/msg/MarkerArray", "latched", "whole mesh on request, late joiners"),
    TopicSpec("map/semantic_cloud", "sensor_msgs/msg/PointCloud2", "reliable", "surface voxels (full only)"),
    TopicSpec("map/instances", "std_msgs/msg/String", "reliable", "instance table JSON (full only)"),
    TopicSpec("scene_graph", "std_msgs/msg/String", "latched", "edge only: the in-process scene graph"),
    TopicSpec("scene_graph/markers", "visualization_msgs/msg/MarkerArray", "latched", "edge only: graph markers"),
)
SERVICES: tuple[str, ...] = ("save_map", "load_map", "reset", "pause", "resume", "publish_full_mesh")


class MapperNode(StageNode):
    """The mapper as a node: synchronized inputs -> queue -> worker (integrate, publish) + services."""

    def __init__(self, **node_kwargs: Any) -> None:
        from sensor_msgs.msg import Image
        from std_msgs.msg import String
        from std_srvs.srv import Trigger
        from visualization_msgs.msg import MarkerArray

        from ..core.mapping import MapperConfig, SemanticConfig, SemanticVoxelMapper, TsdfConfig
        from ..ros.markers import MESH_COLOR_MODES
        from ..ros.sync import SyncedSubscriptions
        from .scene_graph_node import load_labels

        super().__init__("mapper", PARAMS, **node_kwargs)
        p = self.params
        if p.profile not in PROFILES:
            raise ValueError(f"profile must be one of {list(PROFILES)}, got {p.profile!r}")
        if p.pose_source not in ("odometry", "pose"):
            raise ValueError(f"pose_source must be 'odometry' or 'pose', got {p.pose_source!r}")
        if p.mesh_color_mode not in MESH_COLOR_MODES:
            raise ValueError(f"mesh_color_mode must be one of {list(MESH_COLOR_MODES)}, got {p.mesh_color_mode!r}")
        self.edge = p.profile == "edge"
        self.labels = load_labels(p.label_space)
        self.T_body_camera = matrix_param(p.camera_pose_in_body, "camera_pose_in_body")
        self.config = MapperConfig(
            tsdf=TsdfConfig(voxel_size_m=p.voxel_size_m, truncation_voxels=p.truncation_voxels,
                            block_resolution=int(p.block_resolution), depth_min_m=p.depth_min_m,
                            depth_max_m=p.depth_max_m),
            semantics=SemanticConfig(method=p.semantic_method), device=p.device,
            clear_radius_m=p.clear_radius_m, max_blocks=int(p.max_blocks),
            reserve_blocks=int(p.reserve_blocks))
        self.config.validate()
        self._map_lock = threading.RLock()
        self.mapper = SemanticVoxelMapper(self.config, self.labels)
        self._stamps: list[float] = []
        self._poses: list[np.ndarray] = []
        self._paused = False
        self._last_mesh = self._last_cloud = self._last_graph = 0.0
        self._mesh_dirty = self._cloud_dirty = self._graph_dirty = False
        self._newest_stamp_s = float("nan")
        self._camera_position: np.ndarray | None = None
        self._graph_json: str | None = None

        # publishers
        self._mesh_pub = self.create_publisher(MarkerArray, "map/mesh", qos_profile("reliable"))
        self._mesh_full_pub = self.create_publisher(MarkerArray, "map/mesh_full", qos_profile("latched"))
        self._cloud_pub = self._instances_pub = None
        self.scene_graph = None
        if self.edge:
            from .scene_graph_node import SceneGraphStage

            from ..core.scene_graph import SceneGraphConfig

            self.scene_graph = SceneGraphStage(self, self.labels, SceneGraphConfig(voxel_size_m=p.voxel_size_m),
                                               "edge", p.map_frame, queries=False)
        else:
            from sensor_msgs.msg import PointCloud2

            self._cloud_pub = self.create_publisher(PointCloud2, "map/semantic_cloud", qos_profile("reliable", 2))
            self._instances_pub = self.create_publisher(String, "map/instances", qos_profile("reliable"))
            self.create_subscription(String, "scene_graph", self._on_scene_graph, qos_profile("latched"))

        # inputs: camera info cached, the rest synchronized into one queue
        self.camera_info = CameraInfoCache(self, "color/camera_info", self.input_qos())
        topics: list[tuple[type, str]] = [(Image, p.depth_topic)]
        if p.use_color:
            topics.append((Image, "color/image_raw"))
        if p.pose_source == "odometry":
            from nav_msgs.msg import Odometry

            pose_input = (Odometry, "odometry")
        else:
            from geometry_msgs.msg import PoseStamped

            pose_input = (PoseStamped, "pose")
        if not p.pose_max_gap_s >= 0 or not p.pose_wait_s >= 0:
            raise ValueError("pose_max_gap_s and pose_wait_s must be >= 0")
        self._pose_buffer = None
        if p.pose_max_gap_s > 0:
            from ..io.trajectory import PoseBuffer

            self._pose_lock = threading.Lock()
            self._pose_buffer = PoseBuffer(capacity=600, time_reset_s=p.time_reset_jump_s)
            self._poses_received = 0
            self.create_subscription(*pose_input, self._on_pose, self.input_qos())
            self.add_status_source("poses", self._pose_status)
        else:
            topics.append(pose_input)
        if p.use_labels:
            topics += [(Image, "panoptic/semantic"), (Image, "panoptic/instance")]
        self._frames = self.make_queue("frames", int(p.queue_size))
        self.sync = SyncedSubscriptions(self, topics, self._on_synced, self.input_qos(),
                                        queue_size=int(p.sync_queue_size), slop_s=p.sync_slop_s,
                                        time_reset_s=p.time_reset_jump_s)
        self.add_sync_status("sync", self.sync)
        for name in SERVICES:
            self.create_service(Trigger, name, getattr(self, f"_srv_{name}"))
        if p.load_on_start:
            ok, text = self._load(self._map_file())
            (self.get_logger().info if ok else self.get_logger().error)(text)
        self.start_worker(self._work)

    # ------------------------------------------------------------------ callbacks
    def _on_synced(self, *msgs: Any) -> None:
        self._frames.put(msgs)

    def _on_pose(self, msg: Any) -> None:
        from ..ros.stamps import stamp_to_seconds

        try:
            T_world_camera = self._pose_matrix(msg)
        except ValueError as exc:
            self.drop("bad_pose", str(exc))
            return
        with self._pose_lock:
            self._pose_buffer.add(stamp_to_seconds(msg.header.stamp), T_world_camera)
            self._poses_received += 1

    def _pose_status(self) -> dict[str, int]:
        """The pose input of ``pose_max_gap_s`` > 0: poses received, and held for interpolation."""
        with self._pose_lock:
            return {"received": self._poses_received, "buffered": len(self._pose_buffer)}

    def _pose_matrix(self, msg: Any) -> np.ndarray:
        """T_world_camera of an Odometry / PoseStamped message; ValueError when it is not a finite rigid pose."""
        from ..ros.tf import pose_to_matrix

        T_world_body = pose_to_matrix(msg.pose.pose if self.params.pose_source == "odometry" else msg.pose)
        T_world_camera = T_world_body @ self.T_body_camera
        if not np.isfinite(T_world_camera).all():
            raise ValueError("pose position is not finite")
        return T_world_camera

    def _buffered_pose(self, stamp_s: float) -> np.ndarray | None:
        """The interpolated pose at ``stamp_s``, waiting up to ``pose_wait_s`` for a later pose; None after a
        logged drop."""
        deadline = time.monotonic() + self.params.pose_wait_s
        while True:
            with self._pose_lock:
                state, T = self._pose_buffer.lookup(stamp_s, self.params.pose_max_gap_s)
            if state == "ok":
                return T
            if state == "missing" or time.monotonic() >= deadline or self.stopping:
                self.drop("no_pose", f"no poses within {self.params.pose_max_gap_s} s on both sides of "
                          f"{stamp_s:.3f} s" + (" (waited for a later one)" if state == "wait" else ""))
                return None
            time.sleep(0.005)

    def _on_scene_graph(self, msg: Any) -> None:
        self._graph_json = msg.data

    # ------------------------------------------------------------------ worker
    def _work(self) -> None:
        item = self._frames.get(timeout=0.05)
        if item is not None:
            if self._paused:
                self.drop("paused", "mapping is paused (call resume)")
            else:
                self._integrate(item)
        self._publish_due()

    def _decode(self, msgs: tuple) -> tuple[float, dict] | None:
        """Messages -> integrate() arguments (``T_world_camera`` None when poses are buffered), or None after a
        logged drop."""
        from ..ros.image_conversion import image_to_depth_m, image_to_numpy, image_to_rgb8
        from ..ros.stamps import stamp_to_seconds

        p = self.params
        msgs = list(msgs)
        depth_msg = msgs.pop(0)
        color_msg = msgs.pop(0) if p.use_color else None
        pose_msg = msgs.pop(0) if self._pose_buffer is None else None
        sem_msg, ins_msg = (msgs[0], msgs[1]) if p.use_labels else (None, None)
        stamp_s = stamp_to_seconds(depth_msg.header.stamp)
        camera = self.camera_info.camera
        if camera is None:
            self.drop("no_camera_info", "no valid color/camera_info received yet")
            return None
        if not self.accept_stamp("frames", stamp_s):
            return None
        try:
            depth = image_to_depth_m(depth_msg)
            color = image_to_rgb8(color_msg) if color_msg is not None else None
        except ValueError as exc:
            self.drop("bad_image", str(exc))
            return None
        if depth.shape != camera.shape:
            self.drop("size_mismatch", f"depth {depth.shape} vs camera_info {camera.shape}")
            return None
        if pose_msg is None:
            T_world_camera = None  # interpolated from the pose buffer by _integrate (stage pose_wait)
        else:
            try:
                T_world_camera = self._pose_matrix(pose_msg)
            except ValueError as exc:
                self.drop("bad_pose", str(exc))
                return None
        semantic = instance = None
        if sem_msg is not None:
            try:
                semantic = image_to_numpy(sem_msg)
                instance = image_to_numpy(ins_msg)
            except ValueError as exc:
                self.drop("bad_labels", str(exc))
                return None
            if semantic.ndim != 2 or instance.ndim != 2 or not np.issubdtype(semantic.dtype, np.integer) \
                    or not np.issubdtype(instance.dtype, np.integer):
                self.drop("bad_labels", f"label images must be one-channel integer images, got "
                          f"{sem_msg.encoding} / {ins_msg.encoding}")
                return None
            semantic, instance = semantic.astype(np.int64), instance.astype(np.int64)
        return stamp_s, dict(depth_m=depth, color=color, camera=camera, T_world_camera=T_world_camera,
                             semantic=semantic, instance=instance)

    def _integrate(self, msgs: tuple) -> None:
        with self.timed("decode"):
            decoded = self._decode(msgs)
        if decoded is None:
            return
        stamp_s, args = decoded
        if args["T_world_camera"] is None:
            with self.timed("pose_wait"):  # its own stage: waiting for a later pose is not decoding
                args["T_world_camera"] = self._buffered_pose(stamp_s)
            if args["T_world_camera"] is None:
                return
        try:
            with self.timed("integrate"), self._map_lock:
                self.mapper.integrate(**args)
                self._stamps.append(stamp_s)
                self._poses.append(args["T_world_camera"])
        except ValueError as exc:  # the mapper checks everything before touching the map
            self.drop("rejected_by_mapper", str(exc))
            return
        self._newest_stamp_s = stamp_s
        self._camera_position = args["T_world_camera"][:3, 3].copy()
        self._mesh_dirty = self._cloud_dirty = self._graph_dirty = True
        self.record_latency(stamp_s, "integrated")

    def _publish_due(self) -> None:
        p = self.params
        now = time.monotonic()
        if self._mesh_dirty and now - self._last_mesh >= p.mesh_period_s:
            self._last_mesh = now
            self._mesh_dirty = False
            self.publish_mesh_update()
        if self._cloud_pub is not None and self._cloud_dirty and now - self._last_cloud >= p.cloud_period_s:
            self._last_cloud = now
            self._cloud_dirty = False
            self.publish_cloud()
        if self.scene_graph is not None and self._graph_dirty and now - self._last_graph >= p.scene_graph_period_s:
            self._last_graph = now
            self._graph_dirty = False
            self.update_scene_graph()

    # ------------------------------------------------------------------ outputs
    def _public_mesh(self, mesh: Any) -> Any:
        if not self.edge:
            return mesh
        from ..core.privacy import anonymise_mesh

        return anonymise_mesh(mesh, self.labels, drop_dynamic=True, drop_color=self.params.edge_drop_color)

    def _stamp(self) -> Any:
        from ..ros.stamps import seconds_to_stamp

        return seconds_to_stamp(self._newest_stamp_s) if np.isfinite(self._newest_stamp_s) else None

    def publish_mesh_update(self) -> None:
        from ..ros.markers import mesh_block_markers, serialize_marker_array

        with self.timed("mesh_update"), self._map_lock:
            update = self.mapper.update_mesh()
            stamp_s = self._newest_stamp_s
        with self.timed("mesh_publish"):
            mesh = self._public_mesh(update.mesh)
            specs = mesh_block_markers(mesh, update.removed_blocks, self.params.mesh_color_mode, self.labels)
            if specs:
                self._mesh_pub.publish(serialize_marker_array(specs, self.params.map_frame, self._stamp()))
        if specs:
            # the suite's sensor-to-mesh latency: publish time minus the newest stamp integrated into this mesh
            self.record_latency(stamp_s, "mesh")

    def publish_full_mesh(self) -> int:
        """DELETEALL + the whole mesh on map/mesh and the latched map/mesh_full; returns the triangle count."""
        from ..ros.markers import mesh_block_markers, serialize_marker_array

        with self.timed("mesh_full"):
            with self._map_lock:
                mesh = self._public_mesh(self.mapper.extract_mesh())
            raw = serialize_marker_array(mesh_block_markers(mesh, None, self.params.mesh_color_mode, self.labels,
                                                            full=True), self.params.map_frame, self._stamp())
            self._mesh_pub.publish(raw)
            self._mesh_full_pub.publish(raw)
        return len(mesh.triangles)

    def _instances_dicts(self) -> list[dict]:
        return [i.to_dict() for i in self.mapper.instances()]

    def _snapshot(self) -> tuple[Any, list[dict]]:
        """The surface cloud and the instance table, consistent with each other (call under the map lock).

        Voxels can keep the id of an instance the table no longer lists (its confidence ran out): they
        are published as instance 0, so every id in the cloud is in the table.
        """
        cloud = self.mapper.extract_point_cloud()
        table = self._instances_dicts()
        known = np.isin(cloud.instances, np.array([d["id"] for d in table], dtype=np.int64))
        cloud.instances = np.where(known, cloud.instances, 0)
        return cloud, table

    def publish_cloud(self) -> None:
        from std_msgs.msg import String

        from ..ros.pointcloud import cloud_to_pointcloud2
        from ..ros.stamps import seconds_to_stamp, stamp_to_ns

        with self.timed("cloud"):
            with self._map_lock:
                cloud, table = self._snapshot()
            stamp = self._stamp() or seconds_to_stamp(0.0)
            self._cloud_pub.publish(cloud_to_pointcloud2(cloud, self.params.map_frame, stamp=stamp))
            stamp_ns = stamp_to_ns(stamp)
            self._instances_pub.publish(String(data=json.dumps(
                {"stamp_ns": stamp_ns, "stamp_s": stamp_ns * 1e-9, "frame_id": self.params.map_frame,
                 "instances": table})))

    def update_scene_graph(self) -> None:
        with self._map_lock:
            cloud, table = self._snapshot()
        stamp_s = self._newest_stamp_s if np.isfinite(self._newest_stamp_s) else 0.0
        try:
            graph = self.scene_graph.update(cloud.points, cloud.classes, cloud.instances, table, stamp_s,
                                            self._camera_position)
        except ValueError as exc:
            self.drop("scene_graph_failed", str(exc))
            return
        self._graph_json = json.dumps(graph)

    # ------------------------------------------------------------------ services
    def _output_dir(self) -> Path:
        return Path(str(self.get_parameter("output_dir").value))

    def _map_file(self) -> Path:
        f = str(self.get_parameter("map_file").value)
        return Path(f) if f else self._output_dir() / "map.npz"

    def save(self, out_dir: Path | None = None) -> dict[str, str]:
        """Write mesh, map, trajectory, instances (and scene graph) into ``out_dir``; returns the paths."""
        from ..io.trajectory import write_tum_trajectory

        out = Path(out_dir) if out_dir is not None else self._output_dir()
        out.mkdir(parents=True, exist_ok=True)
        paths: dict[str, str] = {}
        with self.timed("save"), self._map_lock:
            tmp = out / ".map.npz.tmp"
            self.mapper.save(tmp)
            os.replace(tmp, out / "map.npz")  # a kill mid-save never leaves a torn map file
            paths["map"] = str(out / "map.npz")
            mesh = self._public_mesh(self.mapper.extract_mesh())
            table = self._instances_dicts()
            stamps, poses = list(self._stamps), list(self._poses)
        if len(mesh.triangles):
            paths["mesh"] = str(self.mapper.write_mesh_ply(out / "mesh.ply", mesh))
        if stamps:
            paths["trajectory"] = str(write_tum_trajectory(out / "trajectory.txt", np.asarray(stamps),
                                                           np.stack(poses)))
        (out / "instances.json").write_text(json.dumps({"frame_id": self.params.map_frame, "instances": table}))
        paths["instances"] = str(out / "instances.json")
        if self._graph_json is not None:
            (out / "scene_graph.json").write_text(self._graph_json)
            paths["scene_graph"] = str(out / "scene_graph.json")
        return paths

    def _load(self, path: Path) -> tuple[bool, str]:
        from ..core.mapping import SemanticVoxelMapper

        try:
            mapper = SemanticVoxelMapper.load(path, device=self.params.device)
        except (OSError, ValueError, KeyError) as exc:
            return False, f"could not load {path}: {type(exc).__name__}: {exc}"
        if [lab.name for lab in mapper.labels.labels] != [lab.name for lab in self.labels.labels]:
            return False, f"{path} uses label space {mapper.labels.name!r}, this node {self.labels.name!r}"
        with self._map_lock:
            self.mapper = mapper
            self._stamps, self._poses = [], []
            self._mesh_dirty = self._cloud_dirty = self._graph_dirty = True
            mapper.update_mesh()  # everything is in the full mesh below; start the changed set empty
            n = self.publish_full_mesh()
        return True, f"loaded {path}: {mapper.num_blocks} blocks, {n} triangles, {len(mapper.instances())} instances"

    def _srv_save_map(self, _req: Any, res: Any) -> Any:
        try:
            paths = self.save()
            res.success, res.message = True, json.dumps(paths)
        except Exception as exc:  # a full disk must not kill the node
            res.success, res.message = False, f"save failed: {type(exc).__name__}: {exc}"
        return res

    def _srv_load_map(self, _req: Any, res: Any) -> Any:
        res.success, res.message = self._load(self._map_file())
        return res

    def reset_map(self, drop_queued: bool = True) -> None:
        """Forget the map and its trajectory (and the queued frames with ``drop_queued``); publish the (empty)
        full mesh."""
        with self._map_lock:
            self.mapper.reset()
            self.mapper.update_mesh()
            self._stamps, self._poses = [], []
            if drop_queued:
                self._frames.clear()
            if self.scene_graph is not None:
                self.scene_graph.reset()
            self.publish_full_mesh()
            self._cloud_dirty = self._graph_dirty = True

    def on_time_reset(self) -> None:
        if self.params.reset_on_time_reset:
            self.get_logger().warning("time reset: the map starts over (reset_on_time_reset)")
            # what is queued came after the frame that jumped back: the new pass (the synchronizers hand out no
            # set of the old pass once the new one has formed its first)
            self.reset_map(drop_queued=False)

    def _srv_reset(self, _req: Any, res: Any) -> Any:
        self.reset_map()
        res.success, res.message = True, "map reset"
        return res

    def _srv_pause(self, _req: Any, res: Any) -> Any:
        self._paused = True
        res.success, res.message = True, "paused: frames are dropped until resume"
        return res

    def _srv_resume(self, _req: Any, res: Any) -> Any:
        self._paused = False
        res.success, res.message = True, "resumed"
        return res

    def _srv_publish_full_mesh(self, _req: Any, res: Any) -> Any:
        n = self.publish_full_mesh()
        res.success, res.message = True, f"{n} triangles"
        return res

    # ------------------------------------------------------------------ shutdown
    def on_shutdown(self) -> None:
        if not self.params.save_on_shutdown:
            return
        with self._map_lock:
            empty = self.mapper.num_blocks == 0
        if empty:
            self.get_logger().info("map is empty: nothing saved at shutdown")
            return
        paths = self.save()
        self.get_logger().info(f"saved at shutdown: {json.dumps(paths)}")


def main(argv: list[str] | None = None) -> int:
    return run_node(MapperNode, argv)


if __name__ == "__main__":
    raise SystemExit(main())
