"""ROS 2 node ``vio_node``: color + depth (+ IMU, + semantic labels) -> ``odometry``, ``pose``, ``path``, TF.

Thin adapter over :class:`metric_semantic_slam.core.odometry.VisualInertialOdometry` (the offline
pipeline's object). Color and depth (``depth/fused`` or ``depth/image_raw``, parameter ``depth_input``;
plus ``panoptic/semantic`` when ``use_semantic``) are synchronized by stamp; IMU messages are buffered and
the samples between two frames go with the later frame. ``pose_source: ground_truth`` instead republishes
``ground_truth/pose`` (PoseStamped ``T_world_camera``, e.g. a simulator bag's oracle poses) on the same
outputs, so the rest of the suite runs on known poses.

Frames: outputs are in ``world_frame`` (default ``map``); TF ``map -> odom`` is the identity and
``odom -> camera`` is ``T_world_camera`` (published through tf2 when it imports). The IMU's rotation in
the camera frame comes from TF when ``tf2_ros`` imports, else from ``imu_pose_in_color``.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..ros.node_runtime import CameraInfoCache, StageNode, TopicSpec, matrix_param, run_node
from ..ros.params import ParamSpec

__all__ = ["PARAMS", "SUBSCRIBES", "PUBLISHES", "VioNode", "main", "POSE_SOURCES", "DEPTH_INPUTS"]

POSE_SOURCES = ("vio", "ground_truth")
DEPTH_INPUTS = {"fused": "depth/fused", "raw": "depth/image_raw"}
_IDENTITY = [float(v) for v in np.eye(4).ravel()]
_UNKNOWN_COV = 1e6  # covariance entries reported where the tracker knows nothing (inf is not portable)

PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("pose_source", "vio", f"where poses come from: {list(POSE_SOURCES)} ('ground_truth' republishes "
              "ground_truth/pose, e.g. a simulator bag's oracle poses)"),
    ParamSpec("depth_input", "fused", f"depth topic: {list(DEPTH_INPUTS)} -> {list(DEPTH_INPUTS.values())}"),
    ParamSpec("use_imu", True, "subscribe to imu and use the gyro as rotation prior"),
    ParamSpec("use_semantic", False, "synchronize panoptic/semantic with the images (frame.semantic for the "
              "semantic reprojection term)"),
    ParamSpec("semantic_weight", 0.5, "weight of the semantic reprojection term relative to ICP (0 disables it; "
              "used only with use_semantic)", dimensionless=True),
    ParamSpec("device", "cpu", "torch device of the dense tracker ('cpu', 'cuda')"),
    ParamSpec("min_depth_m", 0.1, "depth below this is invalid for tracking"),
    ParamSpec("max_depth_m", 6.0, "depth above this is invalid for tracking"),
    ParamSpec("use_previous_frame", True, "also track against the previous frame (more accurate, ~1.5x cost)"),
    ParamSpec("gravity_aligned_world", False, "rotate the world so z is up, from the first accelerometer samples"),
    ParamSpec("imu_time_offset_s", 0.0, "IMU stamp + offset = camera stamp"),
    ParamSpec("imu_max_gap_s", 0.05, "a gap between IMU samples longer than this drops the IMU for that frame"),
    ParamSpec("imu_wait_s", 0.05, "how long a frame waits for IMU samples up to its stamp while the IMU streams"),
    ParamSpec("imu_buffer_size", 4000, "IMU samples kept (about 20 s at 200 Hz)"),
    ParamSpec("imu_pose_in_color", list(_IDENTITY), "IMU pose in the color camera, T_camera_imu row-major 4x4, "
              "used when TF does not know it", dimensionless=True),
    ParamSpec("process_rate_hz", 0.0, "track only the first frame of each 1/process_rate_hz slot of sensor time "
              "(0: every frame it can take); the others are skipped and counted (rate_skipped). On a busy CPU a "
              "fixed rate keeps the poses evenly spaced, and a multiple of depth_fusion's and panoptic's rate "
              "includes the frames they pick, so the mapper gets a pose at each of its frames' stamps"),
    ParamSpec("sync_slop_s", 0.02, "largest stamp difference between color, depth (and labels)"),
    ParamSpec("queue_size", 2, "frame queue length (the oldest frame is dropped when full)"),
    ParamSpec("sync_queue_size", 10, "messages per input the synchronizer keeps (must cover the fused depth's "
              "latency behind the color image)"),
    ParamSpec("world_frame", "map", "frame of odometry/pose/path"),
    ParamSpec("odom_frame", "odom", "TF: map -> odom (identity) -> camera"),
    ParamSpec("camera_frame", "", "child frame of the odometry ('' = the color image's frame id)"),
    ParamSpec("publish_tf", True, "publish map -> odom -> camera on /tf when tf2 is importable"),
    ParamSpec("path_max_length", 5000, "poses kept in the published path"),
    ParamSpec("path_period_s", 0.5, "the path is republished at most this often"),
    ParamSpec("trajectory_path", "", "write the trajectory as a TUM file here at shutdown ('' = no file)"),
)

SUBSCRIBES: tuple[TopicSpec, ...] = (
    TopicSpec("color/image_raw", "sensor_msgs/msg/Image", "input_qos", "color rgb8/bgr8/mono8"),
    TopicSpec("color/camera_info", "sensor_msgs/msg/CameraInfo", "input_qos", "color intrinsics"),
    TopicSpec("depth/fused", "sensor_msgs/msg/Image", "input_qos", "depth (or depth/image_raw, depth_input)"),
    TopicSpec("imu", "sensor_msgs/msg/Imu", "input_qos", "gyro + accelerometer"),
    TopicSpec("panoptic/semantic", "sensor_msgs/msg/Image", "input_qos", "class ids mono16 (use_semantic)"),
    TopicSpec("ground_truth/pose", "geometry_msgs/msg/PoseStamped", "input_qos", "oracle T_world_camera "
              "(pose_source ground_truth)"),
)
PUBLISHES: tuple[TopicSpec, ...] = (
    TopicSpec("odometry", "nav_msgs/msg/Odometry", "reliable", "T_world_camera with 6x6 covariance"),
    TopicSpec("pose", "geometry_msgs/msg/PoseStamped", "reliable", "T_world_camera"),
    TopicSpec("path", "nav_msgs/msg/Path", "latched", "the trajectory so far"),
)


@dataclass
class _FrameIn:
    stamp_s: float
    stamp: Any
    color: np.ndarray
    depth_m: np.ndarray
    semantic: np.ndarray | None
    frame_id: str


class VioNode(StageNode):
    """Tracks synchronized color + depth frames (+ IMU) and publishes the camera pose."""

    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__("vio", PARAMS, **node_kwargs)
        from geometry_msgs.msg import PoseStamped
        from nav_msgs.msg import Odometry, Path
        from sensor_msgs.msg import Image, Imu

        from ..ros.qos import qos_profile
        from ..ros.sync import SyncedSubscriptions
        from ..ros.tf import TfPublisher, TfReader

        p = self.params
        if p.pose_source not in POSE_SOURCES:
            raise ValueError(f"pose_source must be one of {POSE_SOURCES}, got {p.pose_source!r}")
        if p.depth_input not in DEPTH_INPUTS:
            raise ValueError(f"depth_input must be one of {list(DEPTH_INPUTS)}, got {p.depth_input!r}")
        if p.process_rate_hz < 0:
            raise ValueError(f"process_rate_hz must be >= 0, got {p.process_rate_hz}")
        self.T_camera_imu_param = matrix_param(p.imu_pose_in_color, "imu_pose_in_color")
        qos = self.input_qos()
        self.tracking_counts: dict[str, int] = {}
        self._stamps: list[float] = []
        self._poses: list[np.ndarray] = []
        self._path = deque(maxlen=max(1, p.path_max_length))
        self._path_published_at = 0.0
        out_qos = qos_profile("reliable")
        self.pub_odom = self.create_publisher(Odometry, "odometry", out_qos)
        self.pub_pose = self.create_publisher(PoseStamped, "pose", out_qos)
        self.pub_path = self.create_publisher(Path, "path", qos_profile("latched"))
        self.tf_pub = TfPublisher(self) if p.publish_tf else None
        self.tf_static = TfPublisher(self, static=True) if p.publish_tf else None
        if self.tf_static is not None and self.tf_static.available:
            from ..ros.tf import matrix_to_transform_stamped

            self.tf_static.publish([matrix_to_transform_stamped(np.eye(4), p.world_frame, p.odom_frame,
                                                                stamp=self.get_clock().now().to_msg())])
        self.frame_q = self.make_queue("frames", p.queue_size)
        if p.pose_source == "ground_truth":
            self.vio = None
            self.create_subscription(PoseStamped, "ground_truth/pose", self._on_gt_pose, qos)
            self.start_worker(self._work_ground_truth)
            return
        from dataclasses import replace

        from ..core.odometry import VioConfig, VisualInertialOdometry

        base = VioConfig()
        self.vio = VisualInertialOdometry(replace(
            base, device=p.device, min_depth_m=p.min_depth_m, max_depth_m=p.max_depth_m,
            use_previous_frame=p.use_previous_frame, gravity_aligned_world=p.gravity_aligned_world,
            imu_time_offset_s=p.imu_time_offset_s, use_gyro=p.use_imu,
            use_semantic=bool(p.use_semantic and p.semantic_weight > 0),
            semantic=replace(base.semantic, weight=float(p.semantic_weight))))
        self.color_info = CameraInfoCache(self, "color/camera_info", qos)
        self.tf_reader = TfReader(self, fallbacks={})
        self._imu: deque[tuple[float, np.ndarray, np.ndarray]] = deque(maxlen=max(10, p.imu_buffer_size))
        # the IMU's previous pass (a looping bag) while the tracker is still in it: see _on_imu
        self._imu_previous_pass: deque[tuple[float, np.ndarray, np.ndarray]] = deque()
        self._imu_lock = threading.Lock()
        self._last_imu_rx: float | None = None
        self._imu_frame = ""
        self._last_frame_stamp: float | None = None  # last frame in the trajectory (IMU integration starts there)
        self._last_track_stamp: float | None = None  # last frame given to the tracker (time resets)
        if p.use_imu:
            self.create_subscription(Imu, "imu", self._on_imu, qos_profile(p.input_qos, depth=400))
        topics = [(Image, "color/image_raw"), (Image, DEPTH_INPUTS[p.depth_input])]
        if p.use_semantic:
            topics.append((Image, "panoptic/semantic"))
        self._sync = SyncedSubscriptions(self, topics, self._on_images, qos, queue_size=int(p.sync_queue_size),
                                         slop_s=p.sync_slop_s, time_reset_s=p.time_reset_jump_s)
        self.add_sync_status("sync", self._sync)
        self.start_worker(self._work)

    # ------------------------------------------------------------------ callbacks: convert + enqueue
    def _on_images(self, color_msg: Any, depth_msg: Any, semantic_msg: Any = None) -> None:
        from ..ros.image_conversion import image_to_depth_m, image_to_numpy, image_to_rgb8
        from ..ros.stamps import stamp_to_seconds

        stamp_s = stamp_to_seconds(color_msg.header.stamp)
        if not self.on_rate_grid("frames", stamp_s, self.params.process_rate_hz):
            return  # before converting: a skipped frame costs nothing
        try:
            color = image_to_rgb8(color_msg)
        except ValueError as exc:
            self.drop("bad_color", str(exc))
            return
        try:
            depth = image_to_depth_m(depth_msg)
        except ValueError as exc:
            self.drop("bad_depth", str(exc))
            return
        semantic = None
        if semantic_msg is not None:
            try:
                if semantic_msg.encoding not in ("mono16", "16UC1"):
                    raise ValueError(f"semantic labels must be mono16, got {semantic_msg.encoding}")
                semantic = image_to_numpy(semantic_msg)
            except ValueError as exc:
                self.drop("bad_semantic", str(exc))
                return
        if color.size == 0 or depth.size == 0:
            self.drop("empty_image", f"color {color.shape}, depth {depth.shape}")
            return
        if color.shape[:2] != depth.shape or (semantic is not None and semantic.shape != depth.shape):
            self.drop("size_mismatch", f"color {color.shape[:2]}, depth {depth.shape}"
                      + ("" if semantic is None else f", semantic {semantic.shape}"))
            return
        if not self.accept_stamp("frames", stamp_s):
            return
        self.frame_q.put(_FrameIn(stamp_s, color_msg.header.stamp, color, depth, semantic, color_msg.header.frame_id))

    def _on_imu(self, msg: Any) -> None:
        from ..ros.stamps import stamp_to_seconds

        stamp_s = stamp_to_seconds(msg.header.stamp)
        gyro = np.array([msg.angular_velocity.x, msg.angular_velocity.y, msg.angular_velocity.z])
        accel = np.array([msg.linear_acceleration.x, msg.linear_acceleration.y, msg.linear_acceleration.z])
        has_gyro = msg.angular_velocity_covariance[0] != -1  # -1: no gyroscope (e.g. TUM's Kinect accelerometer)
        if not has_gyro:
            gyro = np.full(3, np.nan)
        if not np.all(np.isfinite(accel)) or (has_gyro and not np.all(np.isfinite(gyro))):
            self.drop("bad_imu", f"non-finite IMU sample at {stamp_s:.6f}")
            return
        if not self.accept_stamp("imu", stamp_s):
            return
        self._last_imu_rx = time.monotonic()
        self._imu_frame = msg.header.frame_id
        with self._imu_lock:
            # The IMU's own loop-back starts a new buffer (no on_time_reset override: whichever stream jumps back
            # first, the others may still deliver the previous pass). The IMU usually loops first: the last frames
            # of the pass complete late (the fused depth trails the color), so while the tracker is still in that
            # pass its samples are kept for them until tracking starts the new pass (_apply_reset).
            jump = self.params.time_reset_jump_s
            if self._imu and stamp_s < self._imu[-1][0] - jump:
                last = self._last_track_stamp
                in_pass = last is not None and last >= self._imu[-1][0] - jump
                self._imu_previous_pass = deque(self._imu) if in_pass else deque()
                self._imu.clear()
            self._imu.append((stamp_s, gyro, accel))

    def _on_gt_pose(self, msg: Any) -> None:
        from ..ros.stamps import stamp_to_seconds
        from ..ros.tf import pose_to_matrix

        try:
            T = pose_to_matrix(msg)
        except ValueError as exc:
            self.drop("bad_pose", str(exc))
            return
        if not np.all(np.isfinite(T)):
            self.drop("bad_pose", "non-finite ground-truth pose")
            return
        stamp_s = stamp_to_seconds(msg.header.stamp)
        if not self.accept_stamp("ground_truth", stamp_s):
            return
        self.frame_q.put((stamp_s, msg.header.stamp, T, msg.header.frame_id))

    # ------------------------------------------------------------------------------ worker
    def _imu_between(self, t0: float | None, t1: float) -> Any:
        """IMU samples in ``(t0, t1]`` (camera time), or None when there are none or a gap is too long."""
        from ..io.frame import ImuSamples

        if not self.params.use_imu:
            return None
        offset = self.params.imu_time_offset_s

        def buffer() -> deque:  # under the lock: a late frame of the IMU's previous pass reads that pass
            prev = self._imu_previous_pass
            return prev if prev and prev[-1][0] + offset >= t1 - self.params.imu_max_gap_s else self._imu

        deadline = time.monotonic() + self.params.imu_wait_s
        # the IMU may trail the images by a few ms: wait briefly while it streams
        while (self._last_imu_rx is not None and time.monotonic() - self._last_imu_rx < 0.5
               and (self._last_imu_stamp_s() or -np.inf) + offset < t1 and time.monotonic() < deadline):
            with self._imu_lock:
                if buffer() is self._imu_previous_pass:
                    break
            time.sleep(0.002)
        with self._imu_lock:
            imu = buffer()
            samples = [s for s in imu if (t0 is None or s[0] + offset > t0) and s[0] + offset <= t1]
            before = [s for s in imu if s[0] + offset <= t0] if t0 is not None else []
        if not samples:
            if t0 is not None and self._last_imu_rx is not None:
                self.drop("imu_gap", f"no IMU sample between frames {t0:.6f} and {t1:.6f}: tracked without IMU")
            return None
        stamps = np.array([s[0] for s in samples])
        # gaps inside the interval and at its ends (from the last sample before t0) count
        edges = np.concatenate([[before[-1][0]] if before else [], stamps])
        gaps = np.diff(edges) if len(edges) > 1 else np.zeros(0)
        end_gap = t1 - (stamps[-1] + offset)
        worst = max(float(gaps.max()) if gaps.size else 0.0, end_gap)
        if worst > self.params.imu_max_gap_s:
            self.drop("imu_gap", f"IMU gap of {worst * 1e3:.1f} ms before frame {t1:.6f}: tracked without IMU")
            return None
        return ImuSamples(stamps, np.stack([s[1] for s in samples]), np.stack([s[2] for s in samples]))

    def _last_imu_stamp_s(self) -> float | None:
        with self._imu_lock:
            return self._imu[-1][0] if self._imu else None

    def _T_camera_imu(self, camera_frame: str) -> np.ndarray:
        if self.tf_reader.backend == "tf2_ros" and camera_frame and self._imu_frame and camera_frame != self._imu_frame:
            try:
                return self.tf_reader.lookup(camera_frame, self._imu_frame)
            except ValueError:
                pass
        return self.T_camera_imu_param

    def _work(self) -> None:
        from ..io.frame import Frame

        item = self.frame_q.get(timeout=0.1)
        if item is None:
            return
        # A new trajectory starts at the first frame stamped well before the last one tracked, not at the
        # moment any stream jumped back: frames of the previous pass may still be queued (or arrive late,
        # after the IMU has looped), and tracked after a reset they would make every frame of the new pass
        # "not after the last one".
        last = self._last_track_stamp
        if last is not None and item.stamp_s < last - self.params.time_reset_jump_s:
            self._apply_reset()
        camera = self.color_info.camera
        if camera is None:
            self.drop("no_camera_info", "color/camera_info not received yet")
            return
        if camera.shape != item.depth_m.shape:
            self.drop("size_mismatch", f"images {item.depth_m.shape} vs color camera_info {camera.shape}")
            return
        imu = self._imu_between(self._last_frame_stamp, item.stamp_s)
        frame = Frame(index=len(self._stamps), stamp_s=item.stamp_s, color=item.color, depth_m=item.depth_m,
                      camera=camera, imu=imu, semantic=item.semantic,
                      T_camera_imu=self._T_camera_imu(item.frame_id))
        with self.timed("track"):
            res = self.vio.track(frame)
        self._last_track_stamp = item.stamp_s
        status = str(res.status.value)
        self.tracking_counts[status] = self.tracking_counts.get(status, 0) + 1
        if not res.in_trajectory:
            self.drop(f"tracking_{status}", res.message)
            return
        self._last_frame_stamp = item.stamp_s
        self._publish(item.stamp_s, item.stamp, res.T_world_camera, res.covariance,
                      self.params.camera_frame or item.frame_id)

    def _work_ground_truth(self) -> None:
        item = self.frame_q.get(timeout=0.1)
        if item is None:
            return
        stamp_s, stamp, T, _frame = item
        self.tracking_counts["ground_truth"] = self.tracking_counts.get("ground_truth", 0) + 1
        self._publish(stamp_s, stamp, T, np.zeros((6, 6)), self.params.camera_frame or "camera_color_optical_frame")

    def _publish(self, stamp_s: float, stamp: Any, T_world_camera: np.ndarray, covariance: np.ndarray,
                 camera_frame: str) -> None:
        from geometry_msgs.msg import PoseStamped
        from nav_msgs.msg import Odometry

        from ..ros.path import serialize_path
        from ..ros.stamps import stamp_to_ns
        from ..ros.tf import matrix_to_pose, matrix_to_transform_stamped

        p = self.params
        with self.timed("publish"):
            pose = matrix_to_pose(T_world_camera)
            cov = np.where(np.isfinite(covariance), covariance, _UNKNOWN_COV)
            odom = Odometry(child_frame_id=camera_frame)
            odom.header.frame_id, odom.header.stamp = p.world_frame, stamp
            odom.pose.pose = pose
            odom.pose.covariance = [float(v) for v in cov.ravel()]  # (x y z rx ry rz), world frame
            self.pub_odom.publish(odom)
            ps = PoseStamped(pose=pose)
            ps.header.frame_id, ps.header.stamp = p.world_frame, stamp
            self.pub_pose.publish(ps)
            self._stamps.append(stamp_s)
            self._poses.append(np.asarray(T_world_camera, dtype=np.float64).copy())
            t, o = pose.position, pose.orientation
            stamp_ns = stamp_to_ns(stamp)
            self._path.append((stamp_ns, (t.x, t.y, t.z, o.x, o.y, o.z, o.w)))
            now = time.monotonic()
            if now - self._path_published_at >= p.path_period_s:
                # CDR bytes from arrays: rclpy takes ~120 ms to serialize a path of 5000 PoseStamped objects
                stamps_ns, poses = zip(*self._path)
                self.pub_path.publish(serialize_path(np.array(stamps_ns), np.array(poses), p.world_frame, stamp_ns))
                self._path_published_at = now
            if self.tf_pub is not None and self.tf_pub.available:
                self.tf_pub.publish([matrix_to_transform_stamped(T_world_camera, p.odom_frame, camera_frame,
                                                                 stamp=stamp)])
        self.record_latency(stamp_s)

    # ------------------------------------------------------------------------------ state
    def _apply_reset(self) -> None:
        if self.vio is not None:
            self.vio.reset()
        self._last_frame_stamp = self._last_track_stamp = None
        with self._imu_lock:
            self._imu_previous_pass = deque()
        self._path.clear()
        self.get_logger().warning("time reset: tracking starts a new trajectory")

    def status(self) -> dict[str, Any]:
        st = super().status()
        st["tracking"] = dict(self.tracking_counts)
        return st

    def on_shutdown(self) -> None:
        if self.params.trajectory_path and self._poses:
            from ..io.trajectory import write_tum_trajectory

            path = write_tum_trajectory(self.params.trajectory_path, np.array(self._stamps), np.stack(self._poses))
            self.get_logger().info(f"wrote the trajectory ({len(self._poses)} poses) to {path}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vio_node`` executable."""
    return run_node(VioNode, argv)
