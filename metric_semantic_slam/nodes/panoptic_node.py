"""ROS 2 node ``panoptic_node``: color (+ depth) -> ``panoptic/semantic``, ``panoptic/instance``, ``panoptic/overlay``.

Thin adapter over a :mod:`metric_semantic_slam.core.panoptic` backend chosen by the ``backend`` parameter
(``make_backend``): ``oracle`` (ground-truth labels from ``ground_truth/semantic`` + ``ground_truth/instance``,
e.g. a simulator bag), ``geometric`` (model-free, needs depth + camera_info), ``builtin``, ``torchscript``,
``onnx`` (a user's model). Inputs are synchronized by stamp; up to ``batch_size`` queued frames go to the
backend at once (``predict_batch``, for GPUs). Outputs carry the color image's stamp and frame.
Private classes (label space ``is_private``) are blacked out in the overlay, color included; the label
images keep them (the mapper needs them to keep private things out of the map, DESIGN.md §5).
With ``follow_depth`` a backend that does not read depth still waits for the depth message of each frame
and labels only those frames: after depth_fusion (``depth/fused``) it labels exactly what the mapper can
integrate, so on a CPU where both nodes drop frames they drop the same ones (sim_replay.yaml and edge.yaml
set it). ``process_rate_hz`` aligns the two nodes without the wait: both take the first frame of each slot
of sensor time and work in parallel (sim_replay_realtime.yaml).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..ros.node_runtime import CameraInfoCache, StageNode, TopicSpec, run_node
from ..ros.params import ParamSpec

__all__ = ["PARAMS", "SUBSCRIBES", "PUBLISHES", "PanopticNode", "main"]

# backends that read depth (and the camera) when it is given
_DEPTH_BACKENDS = ("geometric",)

PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("backend", "geometric", "panoptic backend: oracle, geometric, builtin, torchscript, onnx"),
    ParamSpec("use_depth", True, "synchronize depth (depth_input) + camera_info with color for backends that "
              "use it"),
    ParamSpec("depth_input", "fused", "depth topic: 'fused' -> depth/fused, 'raw' -> depth/image_raw"),
    ParamSpec("follow_depth", False, "label only the frames that have a depth message (depth_input), also with a "
              "backend that does not read depth: with depth/fused the node then labels exactly the frames "
              "depth_fusion produced, the only ones the mapper can integrate. On a CPU that cannot keep the camera "
              "rate both nodes drop frames, and when each drops different ones the mapper integrates few; "
              "following also saves the labelling of frames no one will use"),
    ParamSpec("process_rate_hz", 0.0, "label only the first frame of each 1/process_rate_hz slot of sensor time "
              "(0: every frame); the others are skipped and counted (rate_skipped). With depth_fusion's same rate "
              "both nodes pick the same frames from the stamps alone and work on them in parallel"),
    ParamSpec("warmup", True, "backend builtin: label one black 640x480 image before reporting ready, so that "
              "CUDA graph capture and kernel loading do not stall the first frames of a stream"),
    ParamSpec("sync_queue_size", 30, "messages per input the synchronizer keeps (covers the depth's latency "
              "when depth is synchronized)"),
    ParamSpec("label_space", "", "label space YAML ('' = the bundled indoor space)"),
    ParamSpec("model_path", "", "model file for torchscript/onnx/builtin backends ('' = the backend's default)"),
    ParamSpec("adapter_path", "", "adapter YAML mapping a model's outputs to the label space"),
    ParamSpec("device", "cpu", "torch device of the backend ('cpu', 'cuda')"),
    ParamSpec("backend_options", "{}", "extra backend options as a YAML mapping, e.g. '{noise_fraction: 0.1, seed: 0}'"),
    ParamSpec("batch_size", 1, "frames per backend call when several are queued"),
    ParamSpec("queue_size", 1, "frame queue length (the oldest frame is dropped when full; 1: always the newest "
              "frame; raise it with batch_size > 1)"),
    ParamSpec("sync_slop_s", 0.02, "largest stamp difference between color, depth and ground-truth labels"),
    ParamSpec("publish_overlay", True, "publish panoptic/overlay (color blended with class colors)"),
    ParamSpec("overlay_alpha", 0.5, "weight of the class colors in the overlay", dimensionless=True),
)

SUBSCRIBES: tuple[TopicSpec, ...] = (
    TopicSpec("color/image_raw", "sensor_msgs/msg/Image", "input_qos", "color rgb8/bgr8/rgba8/mono8"),
    TopicSpec("color/camera_info", "sensor_msgs/msg/CameraInfo", "input_qos", "intrinsics (depth backends)"),
    TopicSpec("depth/fused", "sensor_msgs/msg/Image", "input_qos", "depth (or depth/image_raw) for depth backends"),
    TopicSpec("ground_truth/semantic", "sensor_msgs/msg/Image", "input_qos", "oracle backend: class ids mono16"),
    TopicSpec("ground_truth/instance", "sensor_msgs/msg/Image", "input_qos", "oracle backend: instance ids mono16"),
)
PUBLISHES: tuple[TopicSpec, ...] = (
    TopicSpec("panoptic/semantic", "sensor_msgs/msg/Image", "reliable", "class ids mono16 (0 = unknown)"),
    TopicSpec("panoptic/instance", "sensor_msgs/msg/Image", "reliable", "instance ids mono16 (0 = none)"),
    TopicSpec("panoptic/overlay", "sensor_msgs/msg/Image", "reliable", "rgb8 color + class colors, private "
              "classes black"),
)


@dataclass
class _FrameIn:
    stamp_s: float
    stamp: Any
    frame_id: str
    color: np.ndarray
    depth_m: np.ndarray | None
    gt_semantic: np.ndarray | None
    gt_instance: np.ndarray | None


def _labels(msg: Any, what: str) -> np.ndarray:
    from ..ros.image_conversion import image_to_numpy

    if msg.encoding not in ("mono16", "16UC1"):
        raise ValueError(f"{what} must be mono16, got {msg.encoding}")
    return image_to_numpy(msg)


class PanopticNode(StageNode):
    """Runs a panoptic backend on synchronized frames and publishes label images and an overlay."""

    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__("panoptic", PARAMS, **node_kwargs)
        import yaml
        from sensor_msgs.msg import Image

        from ..core.labels import load_label_space
        from ..core.panoptic import make_backend
        from ..ros.qos import qos_profile
        from ..ros.sync import SyncedSubscriptions

        p = self.params
        if p.depth_input not in ("fused", "raw"):
            raise ValueError(f"depth_input must be 'fused' or 'raw', got {p.depth_input!r}")
        if p.process_rate_hz < 0:
            raise ValueError(f"process_rate_hz must be >= 0, got {p.process_rate_hz}")
        if p.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {p.batch_size}")
        options = yaml.safe_load(p.backend_options) or {}
        if not isinstance(options, dict):
            raise ValueError(f"backend_options must be a YAML mapping, got {p.backend_options!r}")
        if p.model_path:
            options["model_path"] = p.model_path
        if p.adapter_path:
            options["adapter_path"] = p.adapter_path
        options.setdefault("device", p.device)
        if p.backend in ("builtin", "person"):
            # the node publishes labels only: no per-class probability maps (~10 ms CPU a frame)
            options.setdefault("return_probabilities", False)
        self.label_space = load_label_space(p.label_space or None)
        self.backend = make_backend(p.backend, self.label_space, **options)
        self.get_logger().info(f"panoptic backend {p.backend!r} with options {options}")
        if p.warmup and p.backend == "builtin":
            from ..core.panoptic.types import PanopticInput

            t0 = time.perf_counter()
            self.backend.predict(PanopticInput(color=np.zeros((480, 640, 3), np.uint8)))
            self.get_logger().info(f"warm-up prediction took {1e3 * (time.perf_counter() - t0):.0f} ms")
        self._private = self.label_space.private_mask
        self._colors = self.label_space.color_table()
        qos = self.input_qos()
        self.use_gt = p.backend == "oracle"
        self.use_depth = bool(p.use_depth) and p.backend in _DEPTH_BACKENDS
        # a followed depth the backend does not read is synchronized for its stamp only (never decoded)
        self.follow_only = bool(p.follow_depth) and not self.use_depth
        self.color_info = CameraInfoCache(self, "color/camera_info", qos) if self.use_depth else None
        topics = [(Image, "color/image_raw")]
        if self.use_depth or self.follow_only:
            topics.append((Image, "depth/fused" if p.depth_input == "fused" else "depth/image_raw"))
        if self.use_gt:
            topics += [(Image, "ground_truth/semantic"), (Image, "ground_truth/instance")]
        self.frame_q = self.make_queue("frames", p.queue_size)
        out_qos = qos_profile("reliable")
        self.pub_semantic = self.create_publisher(Image, "panoptic/semantic", out_qos)
        self.pub_instance = self.create_publisher(Image, "panoptic/instance", out_qos)
        self.pub_overlay = self.create_publisher(Image, "panoptic/overlay", out_qos) if p.publish_overlay else None
        if len(topics) == 1:
            self.create_subscription(Image, "color/image_raw", self._on_images, qos)
        else:
            self._sync = SyncedSubscriptions(self, topics, self._on_images, qos, queue_size=int(p.sync_queue_size),
                                             slop_s=p.sync_slop_s, time_reset_s=p.time_reset_jump_s)
            self.add_sync_status("sync", self._sync)
        self.start_worker(self._work)

    # ------------------------------------------------------------------ callbacks: convert + enqueue
    def _on_images(self, color_msg: Any, *others: Any) -> None:
        from ..ros.image_conversion import image_to_depth_m, image_to_rgb8
        from ..ros.stamps import stamp_to_seconds

        others = list(others)
        try:
            color = image_to_rgb8(color_msg)
        except ValueError as exc:
            self.drop("bad_color", str(exc))
            return
        depth = sem = inst = None
        try:
            if self.use_depth:
                depth = image_to_depth_m(others.pop(0))
            elif self.follow_only:
                others.pop(0)  # only its stamp mattered (the synchronizer matched it)
            if self.use_gt:
                sem = _labels(others.pop(0), "ground_truth/semantic")
                inst = _labels(others.pop(0), "ground_truth/instance")
        except ValueError as exc:
            self.drop("bad_input", str(exc))
            return
        if color.size == 0:
            self.drop("empty_image", f"color {color.shape}")
            return
        shapes = [a.shape[:2] for a in (color, depth, sem, inst) if a is not None]
        if any(s != shapes[0] for s in shapes):
            self.drop("size_mismatch", f"input shapes disagree: {shapes}")
            return
        stamp_s = stamp_to_seconds(color_msg.header.stamp)
        if not self.accept_stamp("frames", stamp_s):
            return
        if not self.on_rate_grid("frames", stamp_s, self.params.process_rate_hz):
            return
        self.frame_q.put(_FrameIn(stamp_s, color_msg.header.stamp, color_msg.header.frame_id, color, depth, sem, inst))

    # ------------------------------------------------------------------------------ worker
    def _work(self) -> None:
        from ..core.panoptic import PanopticInput

        first = self.frame_q.get(timeout=0.1)
        if first is None:
            return
        items = [first]
        while len(items) < self.params.batch_size and (nxt := self.frame_q.get_nowait()) is not None:
            items.append(nxt)
        camera = None
        if self.use_depth:
            camera = self.color_info.camera
            if camera is None:
                self.drop("no_camera_info", "color/camera_info not received yet")
                return
            if camera.shape != items[0].color.shape[:2]:
                self.drop("size_mismatch", f"images {items[0].color.shape[:2]} vs camera_info {camera.shape}")
                return
        inputs = [PanopticInput(color=it.color, depth_m=it.depth_m, camera=camera, gt_semantic=it.gt_semantic,
                                gt_instance=it.gt_instance) for it in items]
        try:
            with self.timed("predict"):
                results = (self.backend.predict_batch(inputs) if len(inputs) > 1
                           else [self.backend.predict(inputs[0])])
        except ValueError as exc:
            self.drop("backend_rejected", str(exc))
            return
        for it, res in zip(items, results):
            self._publish(it, res)

    def overlay(self, color: np.ndarray, semantic: np.ndarray) -> np.ndarray:
        """Color blended with class colors; private classes black. Shape: (H, W, 3), (H, W) -> (H, W, 3) uint8."""
        ids = semantic.astype(np.int64)
        known = (ids >= 0) & (ids < len(self._colors))
        ids = np.where(known, ids, 0)  # ids outside the label space draw as unknown
        a = float(self.params.overlay_alpha)
        out = (1.0 - a) * color.astype(np.float32) + a * self._colors[ids].astype(np.float32)
        out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
        out[self._private[ids]] = 0
        return out

    def _publish(self, it: _FrameIn, res: Any) -> None:
        from ..ros.image_conversion import numpy_to_image

        with self.timed("publish"):
            sem = np.ascontiguousarray(res.semantic, dtype=np.uint16)
            inst = np.ascontiguousarray(res.instance, dtype=np.uint16)
            self.pub_semantic.publish(numpy_to_image(sem, "mono16", frame_id=it.frame_id, stamp=it.stamp))
            self.pub_instance.publish(numpy_to_image(inst, "mono16", frame_id=it.frame_id, stamp=it.stamp))
            if self.pub_overlay is not None and self.pub_overlay.get_subscription_count() > 0:
                self.pub_overlay.publish(numpy_to_image(self.overlay(it.color, sem), "rgb8", frame_id=it.frame_id,
                                                        stamp=it.stamp))
        self.record_latency(it.stamp_s)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``panoptic_node`` executable."""
    return run_node(PanopticNode, argv)
