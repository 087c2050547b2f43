"""ROS 2 node ``depth_fusion_node``: active depth + IR stereo -> ``depth/fused`` and ``depth/confidence``.

Thin adapter over :class:`metric_semantic_slam.core.depth_fusion.DepthFuser` (the offline pipeline's object).
Active depth frames drive the output; the IR pair (synchronized with each other) joins the depth frame whose
stamp is within ``sync_slop_s``. Either source missing passes the other through: without IR pairs
(``use_stereo`` false, or none received for ``source_timeout_s``) the output is the active depth with its
confidence; without active depth for ``source_timeout_s`` (counted from the first message of either source
while none came yet) the IR pairs drive a stereo-only output. The left IR camera's pose in the color camera
comes from TF when ``tf2_ros`` imports, else from the ``ir_left_pose_in_color`` parameter (T_color_left).
Outputs are 32FC1 in the color camera frame with the depth frame's stamp.

Cost on a CPU: stereo matching dominates, so it runs on the pair shrunk by ``stereo_downsample`` (2 by
default: ~1/4 of the matching time, fused accuracy unchanged on the simulator, see bench_depth_fusion.py).
The input queue holds one frame by default (a slow fusion works on the newest frame, never a backlog), and
``process_rate_hz`` fuses one frame per slot of sensor time (e.g. 10 of a 30 Hz camera) when the CPU is
shared with the rest of the suite; an IR pair that can match none of the frames it lets through is skipped
before conversion and counted with them (``rate_skipped``), and the status's ``frames_fused`` says how many
frames were fused with their IR pair and how many, while stereo was streaming, without one. On a machine with
cores to spare, ``workers`` > 1 fuses that many frames at once, each with its own fuser in a thread (OpenCV and
most numpy work release the GIL): a frame's latency stays what one fusion costs, the rate it can sustain grows
with the workers, and outputs leave in input order.
"""
from __future__ import annotations

import queue
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..ros.node_runtime import CameraInfoCache, StageNode, TopicSpec, grid_slot, matrix_param, run_node
from ..ros.params import ParamSpec

__all__ = ["PARAMS", "SUBSCRIBES", "PUBLISHES", "DepthFusionNode", "depth_missing", "main", "pair_outside_grid"]

_IDENTITY = tuple(float(v) for v in np.eye(4).ravel())

PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("method", "local", "fusion method: 'local' (per-pixel inverse variance + edge-aware smoothing) or "
              "'variational' (primal-dual Huber-TV in torch)"),
    ParamSpec("use_active", True, "subscribe to the active depth (depth/image_raw)"),
    ParamSpec("use_stereo", True, "subscribe to the IR pair (ir_left/ir_right image_raw + camera_info)"),
    ParamSpec("w_active", 1.0, "weight of the active depth data term", dimensionless=True),
    ParamSpec("w_stereo", 1.0, "weight of the stereo data term", dimensionless=True),
    ParamSpec("sigma_ref_m", 0.02, "depth std at which the output confidence is 0.5"),
    ParamSpec("max_relative_sigma", 0.025, "with both sources, drop pixels whose std exceeds this fraction of "
              "their depth (0 keeps all)", dimensionless=True),
    ParamSpec("smooth_sigma_px", 2.0, "local method: Gaussian std of the edge-aware smoothing (0: none)"),
    ParamSpec("tv_weight", 10.0, "variational: smoothness weight", dimensionless=True),
    ParamSpec("iterations", 10, "variational: primal-dual iterations per frame"),
    ParamSpec("device", "cpu", "torch device of the variational solver ('cpu', 'cuda')"),
    ParamSpec("stereo_num_disparities", 96, "stereo disparity search range (multiple of 16)"),
    ParamSpec("stereo_lr_check", True, "stereo left-right consistency check (about doubles matching time)"),
    ParamSpec("stereo_downsample", 2, "match the IR pair shrunk by this factor (1, 2 or 4), disparities brought back "
              "to full size: 2 costs ~1/3 of full-resolution matching per 640x480 frame (~50 instead of ~160 ms CPU "
              "for the whole fusion) at equal fused accuracy on the simulator (bench_depth_fusion.py)",
              dimensionless=True),
    ParamSpec("sync_slop_s", 0.02, "largest stamp difference between the IR images and the depth frame"),
    ParamSpec("source_timeout_s", 1.0, "a source silent this long counts as missing (the other passes through)"),
    ParamSpec("stereo_wait_s", 0.05, "how long a depth frame waits for its IR pair while stereo is alive"),
    ParamSpec("queue_size", 1, "input queue length (the oldest frame is dropped when full; 1: always the newest "
              "frame, so a slow fusion adds no queueing delay)"),
    ParamSpec("process_rate_hz", 0.0, "fuse only the first depth frame of each 1/process_rate_hz slot of sensor "
              "time (0: every frame); the others are skipped and counted (rate_skipped). A CPU budget that keeps "
              "the nodes aligned: panoptic with the same rate picks the same frames from the same stamps"),
    ParamSpec("ir_left_pose_in_color", list(_IDENTITY), "left IR camera pose in the color camera (row-major 4x4), used "
              "when TF does not know it", dimensionless=True),
    ParamSpec("output_frame_id", "", "frame of the outputs ('' = the color camera_info's frame)"),
    ParamSpec("workers", 1, "frames fused at the same time, each by its own fuser in a thread, outputs in input "
              "order: > 1 lets a multi-core machine sustain 30 Hz when one frame's CPU work (stereo matching, "
              "confidences) takes longer than a frame period"),
)

SUBSCRIBES: tuple[TopicSpec, ...] = (
    TopicSpec("color/camera_info", "sensor_msgs/msg/CameraInfo", "input_qos", "color intrinsics (depth is "
              "registered to color)"),
    TopicSpec("depth/image_raw", "sensor_msgs/msg/Image", "input_qos", "active depth 16UC1 mm / 32FC1 m"),
    TopicSpec("ir_left/image_raw", "sensor_msgs/msg/Image", "input_qos", "rectified left IR mono8"),
    TopicSpec("ir_right/image_raw", "sensor_msgs/msg/Image", "input_qos", "rectified right IR mono8"),
    TopicSpec("ir_left/camera_info", "sensor_msgs/msg/CameraInfo", "input_qos", "rectified IR intrinsics"),
    TopicSpec("ir_right/camera_info", "sensor_msgs/msg/CameraInfo", "input_qos", "baseline from P[0,3]"),
)
PUBLISHES: tuple[TopicSpec, ...] = (
    TopicSpec("depth/fused", "sensor_msgs/msg/Image", "reliable", "fused depth 32FC1 meters (0 = invalid)"),
    TopicSpec("depth/confidence", "sensor_msgs/msg/Image", "reliable", "confidence 32FC1 in [0, 1]"),
)


@dataclass
class _Depth:
    stamp_s: float
    stamp: Any
    depth_m: np.ndarray
    frame_id: str


@dataclass
class _Pair:
    stamp_s: float
    stamp: Any
    left: np.ndarray
    right: np.ndarray


def pair_outside_grid(pair_s: float, grid_depth_s: float | None, rate_hz: float, slop_s: float) -> bool:
    """True when an IR pair stamped ``pair_s`` can match no depth frame that the rate grid lets through.

    ``grid_depth_s`` is the last depth frame let through (slot k). The next one is at or after the start of
    slot k + 1, so a pair later than ``grid_depth_s + slop_s`` and earlier than ``(k + 1) / rate_hz - slop_s``
    matches neither; anything else (older pairs a queued frame may still want, pairs near the next slot,
    a time reset) may be needed. Always False without a grid (``rate_hz`` <= 0) or before the first frame.
    """
    if rate_hz <= 0 or grid_depth_s is None:
        return False
    next_slot_s = (grid_slot(grid_depth_s, rate_hz) + 1) / rate_hz
    return grid_depth_s + slop_s < pair_s < next_slot_s - slop_s


def depth_missing(use_active: bool, last_depth_rx: float | None, first_rx: float | None, now: float,
                  timeout_s: float) -> bool:
    """True when the active depth counts as missing, so that the IR pairs drive a stereo-only output: ``use_active``
    is off, or no depth frame came for ``timeout_s`` (monotonic seconds), counted from the first message of either
    source while none came yet (an IR pair that arrives just before the first depth frame must not be fused alone
    and then again with it: two outputs with one stamp)."""
    if not use_active:
        return True
    since = last_depth_rx if last_depth_rx is not None else first_rx
    return since is not None and now - since >= timeout_s


class DepthFusionNode(StageNode):
    """Subscribes depth + IR pair, fuses them with :class:`DepthFuser`, publishes fused depth + confidence."""

    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__("depth_fusion", PARAMS, **node_kwargs)
        from sensor_msgs.msg import Image

        from ..core.depth_fusion import DepthFuser, DepthFusionConfig
        from ..core.stereo import StereoConfig
        from ..ros.qos import qos_profile
        from ..ros.sync import SyncedSubscriptions
        from ..ros.tf import TfReader

        p = self.params
        if not (p.use_active or p.use_stereo):
            raise ValueError("use_active and use_stereo are both false: nothing to fuse")
        config = DepthFusionConfig(
            method=p.method, w_active=p.w_active, w_stereo=p.w_stereo, sigma_ref_m=p.sigma_ref_m,
            max_relative_sigma=p.max_relative_sigma, smooth_sigma_px=p.smooth_sigma_px, tv_weight=p.tv_weight,
            iterations=p.iterations, device=p.device,
            stereo=StereoConfig(num_disparities=p.stereo_num_disparities, lr_check=p.stereo_lr_check,
                                downsample=int(p.stereo_downsample)))
        if p.workers < 1:
            raise ValueError(f"workers must be >= 1, got {p.workers}")
        self.fuser = DepthFuser(config)
        # workers > 1: a pool of fusers (each has its own stereo matcher and solver state) and the frames in
        # flight, published oldest first
        self._pool = ThreadPoolExecutor(p.workers, thread_name_prefix="fuse") if p.workers > 1 else None
        self._free_fusers: queue.SimpleQueue = queue.SimpleQueue()
        for fuser in [self.fuser] + [DepthFuser(config) for _ in range(p.workers - 1)]:
            self._free_fusers.put(fuser)
        self._inflight: deque[tuple[Future, float, Any, str]] = deque()
        self.T_color_left_param = matrix_param(p.ir_left_pose_in_color, "ir_left_pose_in_color")
        qos = self.input_qos()
        self.color_info = CameraInfoCache(self, "color/camera_info", qos)
        self.depth_q = self.make_queue("depth", p.queue_size)
        self.stereo_q = self.make_queue("stereo", max(2, p.queue_size * 2))
        self._pairs: list[_Pair] = []
        self._last_depth_rx = None  # monotonic time of the last depth frame
        self._last_pair_rx = None
        self._first_rx = None       # ... of the first message of either source
        self._grid_depth_s: float | None = None  # stamp of the last depth frame the rate grid let through
        self._pair_counts = {"with_pair": 0, "without_pair": 0}
        if p.process_rate_hz < 0:
            raise ValueError(f"process_rate_hz must be >= 0, got {p.process_rate_hz}")
        if p.use_active:
            self.create_subscription(Image, "depth/image_raw", self._on_depth, qos)
        if p.use_stereo:
            self.left_info = CameraInfoCache(self, "ir_left/camera_info", qos)
            self.right_info = CameraInfoCache(self, "ir_right/camera_info", qos)
            self._stereo_sync = SyncedSubscriptions(self, [(Image, "ir_left/image_raw"), (Image, "ir_right/image_raw")],
                                                    self._on_pair, qos, queue_size=5, slop_s=p.sync_slop_s,
                                                    time_reset_s=p.time_reset_jump_s)
            self.add_sync_status("sync_ir", self._stereo_sync)
            self.add_status_source("frames_fused", lambda: dict(self._pair_counts))
            self.tf = TfReader(self, fallbacks={})
        out_qos = qos_profile("reliable")
        self.pub_depth = self.create_publisher(Image, "depth/fused", out_qos)
        self.pub_conf = self.create_publisher(Image, "depth/confidence", out_qos)
        self.start_worker(self._work)

    # ------------------------------------------------------------------ callbacks: convert + enqueue
    def _on_depth(self, msg: Any) -> None:
        from ..ros.image_conversion import image_to_depth_m
        from ..ros.stamps import stamp_to_seconds

        self._last_depth_rx = time.monotonic()
        if self._first_rx is None:
            self._first_rx = self._last_depth_rx
        stamp_s = stamp_to_seconds(msg.header.stamp)
        if not self.accept_stamp("depth", stamp_s):
            return
        # before the conversion: a frame between the slots costs nothing
        if not self.on_rate_grid("depth", stamp_s, self.params.process_rate_hz):
            return
        self._grid_depth_s = stamp_s
        try:
            depth = image_to_depth_m(msg)
        except ValueError as exc:
            self.drop("bad_depth", str(exc))
            return
        if depth.size == 0:
            self.drop("empty_depth", f"{msg.width}x{msg.height} depth image")
            return
        self.depth_q.put(_Depth(stamp_s, msg.header.stamp, depth, msg.header.frame_id))

    def _on_pair(self, left_msg: Any, right_msg: Any) -> None:
        from ..ros.image_conversion import image_to_numpy
        from ..ros.stamps import stamp_to_seconds

        self._last_pair_rx = time.monotonic()
        if self._first_rx is None:
            self._first_rx = self._last_pair_rx
        stamp_s = stamp_to_seconds(left_msg.header.stamp)
        if not self.accept_stamp("ir", stamp_s):
            return
        p = self.params
        if (p.use_active and self._alive(self._last_depth_rx)
                and pair_outside_grid(stamp_s, self._grid_depth_s, p.process_rate_hz, p.sync_slop_s)):
            self.count_rate_skipped()  # its depth frame was skipped by the grid: not a dropped frame
            return
        try:
            left, right = image_to_numpy(left_msg), image_to_numpy(right_msg)
        except ValueError as exc:
            self.drop("bad_ir", str(exc))
            return
        if left_msg.encoding != "mono8" or right_msg.encoding != "mono8":
            self.drop("bad_ir", f"IR images must be mono8, got {left_msg.encoding}/{right_msg.encoding}")
            return
        if left.size == 0 or left.shape != right.shape:
            self.drop("bad_ir", f"IR pair shapes {left.shape} / {right.shape}")
            return
        self.stereo_q.put(_Pair(stamp_s, left_msg.header.stamp, left, right))

    # ------------------------------------------------------------------------------ worker
    def _alive(self, last_rx: float | None) -> bool:
        return last_rx is not None and time.monotonic() - last_rx < self.params.source_timeout_s

    def _collect_pairs(self) -> None:
        while (pair := self.stereo_q.get_nowait()) is not None:
            self._pairs.append(pair)
        # bounded: a few frames of IR history, or as many as the depth queue may hold waiting for them
        del self._pairs[:-max(8, 2 * self.params.queue_size)]

    def _match_pair(self, stamp_s: float) -> _Pair | None:
        """The IR pair nearest ``stamp_s`` within the slop, waiting briefly when stereo is streaming."""
        if not self.params.use_stereo:
            return None
        deadline = time.monotonic() + self.params.stereo_wait_s
        while True:
            self._collect_pairs()
            best = min(self._pairs, key=lambda q: abs(q.stamp_s - stamp_s), default=None)
            if best is not None and abs(best.stamp_s - stamp_s) <= self.params.sync_slop_s:
                self._pairs = [q for q in self._pairs if q.stamp_s > best.stamp_s]
                return best
            newest = max((q.stamp_s for q in self._pairs), default=-np.inf)
            if (newest > stamp_s + self.params.sync_slop_s or not self._alive(self._last_pair_rx)
                    or time.monotonic() >= deadline or self.stopping):
                return None
            time.sleep(0.002)

    def _stereo_pair(self, pair: _Pair, camera: Any) -> Any:
        """An ``io.frame.StereoPair`` for ``pair``, or None (logged drop) when its calibration is missing."""
        from ..io.frame import StereoPair
        from ..ros.camera_info import stereo_baseline_m

        left_cam, right_msg = self.left_info.camera, self.right_info.msg
        if left_cam is None or right_msg is None:
            self.drop("no_ir_camera_info", "IR camera_info not received yet: the IR pair is skipped")
            return None
        if left_cam.shape != pair.left.shape:
            self.drop("size_mismatch", f"IR images {pair.left.shape} vs IR camera_info {left_cam.shape}")
            return None
        try:
            baseline_m = stereo_baseline_m(right_msg)
        except ValueError as exc:
            self.drop("bad_camera_info", f"ir_right/camera_info: {exc}")
            return None
        if not baseline_m > 0:
            self.drop("bad_camera_info", f"ir_right/camera_info gives baseline {baseline_m} m (P[0,3] = -fx*b)")
            return None
        T_color_left = self.T_color_left_param
        color_frame, left_frame = self.color_info.frame_id, self.left_info.frame_id
        if self.tf.backend == "tf2_ros" and color_frame and left_frame and color_frame != left_frame:
            try:
                T_color_left = self.tf.lookup(color_frame, left_frame)
            except ValueError:
                pass  # the parameter stays in use
        return StereoPair(pair.left, pair.right, left_cam, baseline_m, T_color_left)

    def _work(self) -> None:
        self._publish_finished(wait_for_room=False)  # before taking a frame: a fusion that raised loses only its own
        item = self.depth_q.get(timeout=0.002 if self._inflight else 0.05)
        if item is None:
            # stereo-only: no active depth for a while, the IR pairs drive the output
            p = self.params
            if p.use_stereo and depth_missing(p.use_active, self._last_depth_rx, self._first_rx, time.monotonic(),
                                              p.source_timeout_s):
                self._collect_pairs()
                if self._pairs:
                    pair = self._pairs.pop(0)
                    self._fuse(None, pair, pair.stamp_s, pair.stamp, "")
            return
        pair = self._match_pair(item.stamp_s)
        if self.params.use_stereo and self._alive(self._last_pair_rx):
            # the loss that matters with both sources: a frame fused from the active depth alone
            self._pair_counts["with_pair" if pair is not None else "without_pair"] += 1
        self._fuse(item.depth_m, pair, item.stamp_s, item.stamp, item.frame_id)

    def _fuse(self, depth_m: np.ndarray | None, pair: _Pair | None, stamp_s: float, stamp: Any, frame_id: str) -> None:
        camera = self.color_info.camera
        if camera is None:
            self.drop("no_camera_info", "color/camera_info not received yet")
            return
        if depth_m is not None and depth_m.shape != camera.shape:
            self.drop("size_mismatch", f"depth {depth_m.shape} vs color camera_info {camera.shape}")
            return
        stereo = self._stereo_pair(pair, camera) if pair is not None else None
        if depth_m is not None and not (depth_m > 0).any() and stereo is None:
            self.drop("no_valid_depth", "depth frame has no valid pixel and no IR pair came with it")
            return
        if depth_m is None and stereo is None:
            return
        frame = self.params.output_frame_id or self.color_info.frame_id or frame_id
        if self._pool is None:
            self._publish(self._fuse_with_free_fuser(camera, depth_m, stereo), stamp_s, stamp, frame)
            return
        future = self._pool.submit(self._fuse_with_free_fuser, camera, depth_m, stereo)
        self._inflight.append((future, stamp_s, stamp, frame))
        self._publish_finished(wait_for_room=True)

    def _fuse_with_free_fuser(self, camera: Any, depth_m: np.ndarray | None, stereo: Any) -> Any:
        fuser = self._free_fusers.get()
        try:
            with self.timed("fuse"):
                return fuser.fuse(camera, depth_m=depth_m, stereo=stereo)
        finally:
            self._free_fusers.put(fuser)

    def _publish_finished(self, wait_for_room: bool) -> None:
        """Publish the frames in flight that are done, oldest first; with ``wait_for_room``, first wait until
        fewer than ``workers`` are in flight. A fusion that raised is re-raised here (logged, dropped) after
        leaving the line."""
        while self._inflight:
            future, stamp_s, stamp, frame = self._inflight[0]
            if not future.done() and not (wait_for_room and len(self._inflight) >= self.params.workers):
                return
            self._inflight.popleft()
            self._publish(future.result(), stamp_s, stamp, frame)

    def _publish(self, out: Any, stamp_s: float, stamp: Any, frame: str) -> None:
        from ..ros.image_conversion import numpy_to_image

        with self.timed("publish"):
            self.pub_depth.publish(numpy_to_image(out.depth_m.astype(np.float32), "32FC1", frame_id=frame,
                                                  stamp=stamp))
            self.pub_conf.publish(numpy_to_image(out.confidence.astype(np.float32), "32FC1", frame_id=frame,
                                                 stamp=stamp))
        self.record_latency(stamp_s)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``depth_fusion_node`` executable."""
    return run_node(DepthFusionNode, argv)
