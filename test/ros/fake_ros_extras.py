"""Stand-ins for the ROS 2 Python packages a full install has and the PyPI wheels here lack.

``cv_bridge``, ``message_filters``, ``tf2_ros``, ``launch`` and ``launch_ros`` do not install here, so the code
paths of ``ros/image_conversion.py``, ``ros/sync.py``, ``ros/tf.py`` and ``launch/*.launch.py`` that use them
would go untested. The classes below implement the public API those paths call, with the signatures and the
observable behaviour of the **ROS 2 Kilted** releases (written from their documentation and sources; no code
copied). Each class docstring says what it mirrors and where it deviates.

Two ways in:

- in-process: :func:`install` puts module objects into ``sys.modules`` (with ``monkeypatch.setitem``), after
  which the project's modules are reloaded so their ``try: import ...`` picks them up;
- in a node process: :func:`write_shim_packages` writes tiny ``cv_bridge/``, ``message_filters/`` and
  ``tf2_ros/`` packages re-exporting these classes; put that folder and this file's folder on ``PYTHONPATH``.

Every stand-in call is counted in :data:`USED` and, when ``FAKE_ROS_EXTRAS_TRACE=1``, reported once per API
on stderr as ``[fake_ros_extras] used <api>`` (tests read it in a node's log to prove the path was taken).
"""
from __future__ import annotations

import itertools
import os
import sys
import threading
import time
import time as _time
import types
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["USED", "install", "write_shim_packages", "MODULE_NAMES", "CvBridge", "CvBridgeError",
           "Subscriber", "ApproximateTimeSynchronizer", "TransformBroadcaster", "StaticTransformBroadcaster",
           "Buffer", "TransformListener", "LaunchContext", "run_launch_description"]

USED: Counter = Counter()
_TRACE_LOCK = threading.Lock()


def _used(api: str) -> None:
    with _TRACE_LOCK:
        first = api not in USED
        USED[api] += 1
    if first and os.environ.get("FAKE_ROS_EXTRAS_TRACE") == "1":
        print(f"[fake_ros_extras] used {api}", file=sys.stderr, flush=True)


# ====================================================================================== cv_bridge
class CvBridgeError(TypeError):
    """``cv_bridge.CvBridgeError`` (Kilted): a ``TypeError`` subclass raised by CvBridge methods."""


# encoding -> (numpy dtype name, channels), as cv_bridge's getCvType answers for the encodings used here
_CV_TYPES = {
    "rgb8": ("uint8", 3), "bgr8": ("uint8", 3), "rgba8": ("uint8", 4), "bgra8": ("uint8", 4),
    "mono8": ("uint8", 1), "mono16": ("uint16", 1), "rgb16": ("uint16", 3), "bgr16": ("uint16", 3),
    "8UC1": ("uint8", 1), "8UC2": ("uint8", 2), "8UC3": ("uint8", 3), "8UC4": ("uint8", 4),
    "16UC1": ("uint16", 1), "16SC1": ("int16", 1), "32SC1": ("int32", 1), "32FC1": ("float32", 1),
    "32FC3": ("float32", 3), "64FC1": ("float64", 1),
}
_NUMPY_TO_CV = {"uint8": "8U", "int8": "8S", "uint16": "16U", "int16": "16S", "int32": "32S", "float32": "32F",
                "float64": "64F"}


class CvBridge:
    """``cv_bridge.CvBridge`` of vision_opencv (Kilted), the two methods the project calls.

    ``imgmsg_to_cv2(img_msg, desired_encoding="passthrough")`` views ``img_msg.data`` as
    ``(height, int(step / itemsize / channels)[, channels])`` with the message's byte order, crops to
    ``width``, byte-swaps to native order when the message's differs, and returns it (a view for
    native-order data, like upstream). Like upstream it derives the row length from ``step`` by integer
    division, so padding that is not a whole number of pixels is *not* handled (rows come out sheared) and
    ``step`` below the row size yields fewer columns: callers must guard. Only ``passthrough`` is supported
    (upstream also converts colour spaces through its C++ extension; the project never asks for it).

    ``cv2_to_imgmsg(cvim, encoding="passthrough", header=None)``: ``TypeError`` for a non-array, a
    ``KeyError`` for dtypes OpenCV has no type for (bool, int64, ...), ``CvBridgeError`` when the array's
    OpenCV type does not match ``encoding``; ``is_bigendian`` set for a big-endian array; ``step`` is
    ``len(data) // height`` (``ZeroDivisionError`` for a zero-height array, as upstream).
    """

    @staticmethod
    def _cv_type(encoding: str) -> tuple[str, int]:
        try:
            return _CV_TYPES[encoding]
        except KeyError:
            raise CvBridgeError(f"Unrecognized image encoding [{encoding}]") from None

    def imgmsg_to_cv2(self, img_msg: Any, desired_encoding: str = "passthrough") -> np.ndarray:
        _used("cv_bridge.CvBridge.imgmsg_to_cv2")
        if desired_encoding != "passthrough":
            raise NotImplementedError("the stand-in converts only with desired_encoding='passthrough'")
        name, channels = self._cv_type(img_msg.encoding)
        dtype = np.dtype(name).newbyteorder(">" if img_msg.is_bigendian else "<")
        cols = int(img_msg.step / dtype.itemsize / channels)
        shape = (img_msg.height, cols) if channels == 1 else (img_msg.height, cols, channels)
        im = np.ndarray(shape=shape, dtype=dtype, buffer=img_msg.data)  # TypeError when the buffer is short
        im = np.ascontiguousarray(im[:, :img_msg.width])
        if bool(img_msg.is_bigendian) == (sys.byteorder == "little"):
            im = im.byteswap().view(im.dtype.newbyteorder())
        return im

    def cv2_to_imgmsg(self, cvim: Any, encoding: str = "passthrough", header: Any = None):
        _used("cv_bridge.CvBridge.cv2_to_imgmsg")
        from sensor_msgs.msg import Image

        if not isinstance(cvim, (np.ndarray, np.generic)):
            raise TypeError("Your input type is not a numpy array")
        msg = Image()
        msg.height, msg.width = int(cvim.shape[0]), int(cvim.shape[1])
        if header is not None:
            msg.header = header
        channels = 1 if cvim.ndim < 3 else int(cvim.shape[2])
        cv_type = f"{_NUMPY_TO_CV[cvim.dtype.name]}C{channels}"  # KeyError for dtypes OpenCV lacks
        if encoding == "passthrough":
            msg.encoding = cv_type
        else:
            msg.encoding = encoding
            name, ch = self._cv_type(encoding)
            if f"{_NUMPY_TO_CV[name]}C{ch}" != cv_type:
                raise CvBridgeError(f"encoding specified as {encoding}, but image has incompatible type {cv_type}")
        if cvim.dtype.byteorder == ">":
            msg.is_bigendian = 1
        msg.data = cvim.tobytes()
        msg.step = len(msg.data) // msg.height
        return msg


# ================================================================================ message_filters
class SimpleFilter:
    """``message_filters.SimpleFilter`` (Kilted): ``registerCallback(cb, *args)`` -> connection id."""

    def __init__(self) -> None:
        self.callbacks: dict[int, tuple[Callable, tuple]] = {}

    def registerCallback(self, cb: Callable, *args: Any) -> int:  # noqa: N802 (upstream name)
        conn = len(self.callbacks)
        self.callbacks[conn] = (cb, args)
        return conn

    def signalMessage(self, *msg: Any) -> None:  # noqa: N802
        for cb, args in list(self.callbacks.values()):
            cb(*(msg + args))


class Subscriber(SimpleFilter):
    """(Kilted) ``message_filters.Subscriber(node, msg_type, topic, **kwargs)``: a real rclpy subscription.

    As upstream, the rest of the arguments go to ``node.create_subscription(msg_type, topic, callback,
    **kwargs)`` with ``qos_profile`` defaulting to 10, and unknown attributes forward to the subscription.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _used("message_filters.Subscriber")
        super().__init__()
        self.node, self.topic = args[0], args[2]
        kwargs.setdefault("qos_profile", 10)
        self.sub = self.node.create_subscription(*args[1:], self.callback, **kwargs)

    def callback(self, msg: Any) -> None:
        self.signalMessage(msg)

    def getTopic(self) -> str:  # noqa: N802
        return self.topic

    def __getattr__(self, key: str) -> Any:
        return getattr(self.__dict__["sub"], key)


class ApproximateTimeSynchronizer(SimpleFilter):
    """(Kilted) ``message_filters.ApproximateTimeSynchronizer(fs, queue_size, slop, allow_headerless=False)``.

    Mirrors the Python implementation of Kilted's message_filters: one dict per input keyed by stamp in
    nanoseconds (a newer message with the same stamp replaces the older), overflow deletes the oldest stamp;
    on each arrival the other inputs' stamps within ``slop`` of the new one are tried, nearest first, in
    input order (``itertools.product``), and the first combination whose spread is strictly below ``slop``
    is emitted and only its messages are removed. Headerless messages are ignored unless
    ``allow_headerless`` (then stamped with the current time).
    """

    def __init__(self, fs: Sequence[SimpleFilter], queue_size: int, slop: float, allow_headerless: bool = False
                 ) -> None:
        _used("message_filters.ApproximateTimeSynchronizer")
        super().__init__()
        self.queue_size = queue_size
        self.slop_ns = int(round(slop * 1e9))
        self.allow_headerless = allow_headerless
        self.lock = threading.Lock()
        self.queues: list[dict[int, Any]] = [{} for _ in fs]
        self.input_connections = [f.registerCallback(self.add, q, i) for i, (f, q) in enumerate(zip(fs, self.queues))]

    def add(self, msg: Any, my_queue: dict[int, Any], my_queue_index: int | None = None) -> None:
        header = getattr(msg, "header", None)
        if header is None or not hasattr(header, "stamp"):
            if not self.allow_headerless:
                return
            stamp_ns = time.time_ns()
        else:
            stamp_ns = int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
        with self.lock:
            my_queue[stamp_ns] = msg
            while len(my_queue) > self.queue_size:
                del my_queue[min(my_queue)]
            others = [i for i in range(len(self.queues)) if i != my_queue_index]
            candidates = []
            for i in others:
                near = sorted((s for s in self.queues[i] if abs(s - stamp_ns) <= self.slop_ns),
                              key=lambda s: abs(s - stamp_ns))
                if not near:
                    return
                candidates.append(near)
            for combo in itertools.product(*candidates):
                stamps = list(combo)
                if my_queue_index is not None:
                    stamps.insert(my_queue_index, stamp_ns)
                if max(stamps) - min(stamps) < self.slop_ns and all(s in q for q, s in zip(self.queues, stamps)):
                    msgs = [q[s] for q, s in zip(self.queues, stamps)]
                    for q, s in zip(self.queues, stamps):
                        del q[s]
                    break
            else:
                return
        self.signalMessage(*msgs)  # upstream calls it under its lock; outside is equivalent for one thread


# ========================================================================================= tf2_ros
class TransformException(Exception):
    """(Kilted) ``tf2_ros.TransformException`` (tf2_py); the three below derive from it as upstream."""


class LookupException(TransformException):
    pass


class ConnectivityException(TransformException):
    pass


class ExtrapolationException(TransformException):
    pass


def _tf_qos(static: bool, depth: int = 100):
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    # Upstream: /tf depth 100 volatile; /tf_static depth 1 transient-local carrying one merged TFMessage.
    # Here each transform is its own message (see TransformBroadcaster), so /tf_static keeps up to 100.
    return QoSProfile(depth=depth, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if static else DurabilityPolicy.VOLATILE)


def _tf_wire_type():
    # tf2_msgs/TFMessage is not installable here: each TransformStamped travels on its own on /tf(/_static).
    from geometry_msgs.msg import TransformStamped

    return TransformStamped


class TransformBroadcaster:
    """(Kilted) ``tf2_ros.TransformBroadcaster(node, qos=None)``; ``sendTransform(transform | [transforms])``.

    Deviation (the only one): upstream publishes ``tf2_msgs/TFMessage`` on ``/tf``; tf2_msgs is not
    installable here, so every ``geometry_msgs/TransformStamped`` goes out on ``/tf`` as its own message.
    Only :class:`TransformListener` here reads it, so the API and the DDS hop are what is exercised.
    """

    _static = False

    def __init__(self, node: Any, qos: Any = None) -> None:
        _used("tf2_ros." + type(self).__name__)
        self.pub_tf = node.create_publisher(_tf_wire_type(), "/tf_static" if self._static else "/tf",
                                            qos or _tf_qos(self._static))

    def sendTransform(self, transform: Any) -> None:  # noqa: N802
        transforms = list(transform) if isinstance(transform, (list, tuple)) else [transform]
        for t in transforms:
            self.pub_tf.publish(t)


class StaticTransformBroadcaster(TransformBroadcaster):
    """(Kilted) ``tf2_ros.StaticTransformBroadcaster(node, qos=None)``: latched ``/tf_static`` (same deviation)."""

    _static = True


def _T_of(ts: Any) -> np.ndarray:
    r, t = ts.transform.rotation, ts.transform.translation
    x, y, z, w = r.x, r.y, r.z, r.w
    n = x * x + y * y + z * z + w * w
    s = 2.0 / n if n > 0 else 0.0
    T = np.eye(4)
    T[:3, :3] = [[1 - s * (y * y + z * z), s * (x * y - z * w), s * (x * z + y * w)],
                 [s * (x * y + z * w), 1 - s * (x * x + z * z), s * (y * z - x * w)],
                 [s * (x * z - y * w), s * (y * z + x * w), 1 - s * (x * x + y * y)]]
    T[:3, 3] = [t.x, t.y, t.z]
    return T


def _transform_msg(T: np.ndarray, target: str, source: str, stamp_ns: int):
    from geometry_msgs.msg import TransformStamped

    R = T[:3, :3]
    w = np.sqrt(max(0.0, 1.0 + R[0, 0] + R[1, 1] + R[2, 2])) / 2
    x = np.copysign(np.sqrt(max(0.0, 1.0 + R[0, 0] - R[1, 1] - R[2, 2])) / 2, R[2, 1] - R[1, 2])
    y = np.copysign(np.sqrt(max(0.0, 1.0 - R[0, 0] + R[1, 1] - R[2, 2])) / 2, R[0, 2] - R[2, 0])
    z = np.copysign(np.sqrt(max(0.0, 1.0 - R[0, 0] - R[1, 1] + R[2, 2])) / 2, R[1, 0] - R[0, 1])
    msg = TransformStamped()
    msg.header.frame_id, msg.child_frame_id = target, source
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(stamp_ns), 1_000_000_000)
    msg.transform.translation.x, msg.transform.translation.y, msg.transform.translation.z = (float(v) for v in T[:3, 3])
    r = msg.transform.rotation
    r.x, r.y, r.z, r.w = float(x), float(y), float(z), float(w)
    return msg


class Buffer:
    """(Kilted) ``tf2_ros.Buffer(cache_time=None, node=None)`` with ``set_transform(transform, authority)``,
    ``set_transform_static``, ``can_transform`` and ``lookup_transform(target_frame, source_frame, time,
    timeout=Duration())``.

    A tree of parent <- child edges; a lookup chains through the common ancestor and returns a
    ``TransformStamped`` (``header.frame_id = target``, ``child_frame_id = source``) carrying
    ``T_target_source``. ``time`` zero (``rclpy.time.Time()``) means the latest common time, as upstream;
    a non-zero time picks, per edge, the newest sample not after it (no interpolation: a deviation), and
    raises ``ExtrapolationException`` when it is older than an edge's oldest or newer than its newest
    dynamic sample. Unknown frames raise ``LookupException``, disconnected trees ``ConnectivityException``.
    A positive ``timeout`` waits for the transform to become available, as upstream.
    """

    def __init__(self, cache_time: Any = None, node: Any = None) -> None:
        _used("tf2_ros.Buffer")
        self._edges: dict[str, tuple[str, bool, list[tuple[int, np.ndarray]]]] = {}  # child -> parent, static, samples
        self._cond = threading.Condition()

    def _set(self, transform: Any, static: bool) -> None:
        child, parent = transform.child_frame_id.lstrip("/"), transform.header.frame_id.lstrip("/")
        stamp_ns = int(transform.header.stamp.sec) * 1_000_000_000 + int(transform.header.stamp.nanosec)
        with self._cond:
            old = self._edges.get(child)
            samples = [] if static or old is None or old[0] != parent else old[2]
            samples = [s for s in samples if s[0] != stamp_ns] + [(stamp_ns, _T_of(transform))]
            samples.sort(key=lambda s: s[0])
            self._edges[child] = (parent, static, samples[-1000:])
            self._cond.notify_all()

    def set_transform(self, transform: Any, authority: str) -> bool:
        self._set(transform, static=False)
        return True

    def set_transform_static(self, transform: Any, authority: str) -> bool:
        self._set(transform, static=True)
        return True

    def _chain(self, frame: str) -> list[str]:
        chain, seen = [frame], {frame}
        while chain[-1] in self._edges:
            parent = self._edges[chain[-1]][0]
            if parent in seen:
                break
            chain.append(parent)
            seen.add(parent)
        return chain

    def _sample(self, child: str, time_ns: int) -> np.ndarray:
        _parent, static, samples = self._edges[child]
        if static or time_ns == 0:
            return samples[-1][1]
        if time_ns < samples[0][0] or time_ns > samples[-1][0]:
            raise ExtrapolationException(f"lookup of {child} at {time_ns} ns outside [{samples[0][0]}, "
                                         f"{samples[-1][0]}]")
        return [T for s, T in samples if s <= time_ns][-1]

    def _lookup(self, target: str, source: str, time_ns: int):
        known = set(self._edges) | {p for p, _s, _x in self._edges.values()}
        for f in (target, source):
            if f not in known:
                raise LookupException(f'"{f}" passed to lookupTransform argument does not exist.')
        up_t, up_s = self._chain(target), self._chain(source)
        common = next((f for f in up_s if f in up_t), None)
        if common is None:
            raise ConnectivityException(f"could not find a connection between '{target}' and '{source}'")
        T_common_source, T_common_target = np.eye(4), np.eye(4)
        for chain, acc in ((up_s, "s"), (up_t, "t")):
            T = np.eye(4)
            for child in chain[:chain.index(common)]:
                T = self._sample(child, time_ns) @ T
            if acc == "s":
                T_common_source = T
            else:
                T_common_target = T
        stamps = [self._edges[c][2][-1][0] for c in up_s[:up_s.index(common)] + up_t[:up_t.index(common)]
                  if not self._edges[c][1]]
        stamp_ns = time_ns or (min(stamps) if stamps else 0)
        return _transform_msg(np.linalg.inv(T_common_target) @ T_common_source, target, source, stamp_ns)

    def lookup_transform(self, target_frame: str, source_frame: str, time: Any, timeout: Any = None):
        _used("tf2_ros.Buffer.lookup_transform")
        time_ns = int(getattr(time, "nanoseconds", 0))
        timeout_s = 0.0 if timeout is None else float(getattr(timeout, "nanoseconds", 0)) / 1e9
        deadline = _time.monotonic() + timeout_s  # (`time` is the lookup time here, hence _time)
        with self._cond:
            while True:
                try:
                    return self._lookup(target_frame.lstrip("/"), source_frame.lstrip("/"), time_ns)
                except TransformException:
                    left = deadline - _time.monotonic()
                    if left <= 0:
                        raise
                    self._cond.wait(min(left, 0.05))

    def can_transform(self, target_frame: str, source_frame: str, time: Any, timeout: Any = None) -> bool:
        try:
            self.lookup_transform(target_frame, source_frame, time, timeout)
            return True
        except TransformException:
            return False


class TransformListener:
    """(Kilted) ``tf2_ros.TransformListener(buffer, node, *, spin_thread=False, qos=None, static_qos=None)``.

    Subscribes ``/tf`` and ``/tf_static`` on ``node`` and feeds ``buffer`` (authority ``default_authority``);
    the node's executor runs the callbacks unless ``spin_thread`` (then a thread spins its own executor,
    as upstream). Wire format as in :class:`TransformBroadcaster`.
    """

    def __init__(self, buffer: Buffer, node: Any, *, spin_thread: bool = False, qos: Any = None,
                 static_qos: Any = None) -> None:
        _used("tf2_ros.TransformListener")
        self.buffer, self.node = buffer, node
        msg_type = _tf_wire_type()
        self.tf_sub = node.create_subscription(msg_type, "/tf", lambda m: buffer.set_transform(m, "default_authority"),
                                               qos or _tf_qos(False))
        self.tf_static_sub = node.create_subscription(
            msg_type, "/tf_static", lambda m: buffer.set_transform_static(m, "default_authority"),
            static_qos or _tf_qos(True))
        self.executor = None
        if spin_thread:
            from rclpy.executors import SingleThreadedExecutor

            self.executor = SingleThreadedExecutor(context=node.context)
            self.executor.add_node(node)
            threading.Thread(target=self.executor.spin, daemon=True).start()

    def unregister(self) -> None:
        self.node.destroy_subscription(self.tf_sub)
        self.node.destroy_subscription(self.tf_static_sub)
        if self.executor is not None:
            self.executor.shutdown()


# ================================================================================= launch/launch_ros
class SubstitutionFailure(Exception):
    """(Kilted) ``launch.substitutions.substitution_failure.SubstitutionFailure``."""


class LaunchContext:
    """(Kilted) ``launch.LaunchContext``: ``launch_configurations`` (launch arguments) and ``environment``.

    ``run_launch_description`` plays the part of ``launch.LaunchService`` over it.
    """

    def __init__(self, argv: Sequence[str] = (), environment: dict[str, str] | None = None) -> None:
        self.argv = list(argv)
        self.launch_configurations: dict[str, str] = {}
        self.environment: dict[str, str] = dict(os.environ if environment is None else environment)
        self.launched: list[Any] = []  # ExecuteProcess/Node actions executed, with their performed command


def perform(value: Any, context: LaunchContext) -> Any:
    """Substitutions -> text, as ``launch.utilities.perform_substitutions``: a list concatenates."""
    if isinstance(value, Substitution):
        return value.perform(context)
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, (str, Substitution)) for v in value):
            return "".join(perform(v, context) for v in value)
    return value


class Substitution:
    """(Kilted) ``launch.Substitution``: ``perform(context) -> str``."""

    def perform(self, context: LaunchContext) -> str:  # pragma: no cover - abstract
        raise NotImplementedError


class LaunchConfiguration(Substitution):
    """(Kilted) ``launch.substitutions.LaunchConfiguration(variable_name, *, default=None)``."""

    def __init__(self, variable_name: Any, *, default: Any = None) -> None:
        self.variable_name, self.default = variable_name, default

    def perform(self, context: LaunchContext) -> str:
        name = perform(self.variable_name, context)
        if name in context.launch_configurations:
            return context.launch_configurations[name]
        if self.default is None:
            raise SubstitutionFailure(f"launch configuration '{name}' does not exist")
        return perform(self.default, context)


class EnvironmentVariable(Substitution):
    """(Kilted) ``launch.substitutions.EnvironmentVariable(name, *, default_value='')``."""

    def __init__(self, name: Any, *, default_value: Any = "") -> None:
        self.name, self.default_value = name, default_value

    def perform(self, context: LaunchContext) -> str:
        return context.environment.get(perform(self.name, context), perform(self.default_value, context))


class Action:
    """(Kilted) ``launch.Action``: ``execute(context)`` returns entities to visit next (or None)."""

    def __init__(self, **kwargs: Any) -> None:
        unknown = set(kwargs) - {"condition"}
        if unknown:  # upstream: TypeError from the constructor chain
            raise TypeError(f"{type(self).__name__} got unexpected keyword arguments {sorted(unknown)}")

    def execute(self, context: LaunchContext) -> list | None:
        return None


class LaunchDescription:
    """(Kilted) ``launch.LaunchDescription(initial_entities=None, *, deprecated_reason=None)``."""

    def __init__(self, initial_entities: Sequence[Any] | None = None, *, deprecated_reason: str | None = None) -> None:
        self.entities = list(initial_entities or [])

    def add_action(self, action: Any) -> None:
        self.entities.append(action)

    def get_launch_arguments(self) -> list["DeclareLaunchArgument"]:
        found = []
        for e in self.entities:
            if isinstance(e, DeclareLaunchArgument):
                found.append(e)
            elif isinstance(e, IncludeLaunchDescription):
                found += [a for a in e.launch_description_source.get().get_launch_arguments()
                          if a.name not in dict(e.launch_arguments)]
        return found

    def execute(self, context: LaunchContext) -> list:
        return self.entities


class DeclareLaunchArgument(Action):
    """(Kilted) ``launch.actions.DeclareLaunchArgument(name, *, default_value=None, description=None, choices=None)``.

    Executing it sets the default when the argument was not given, and fails for a missing required one.
    """

    def __init__(self, name: str, *, default_value: Any = None, description: str | None = None,
                 choices: Sequence[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name, self.default_value, self.description, self.choices = name, default_value, description, choices

    def execute(self, context: LaunchContext) -> None:
        if self.name not in context.launch_configurations:
            if self.default_value is None:
                raise RuntimeError(f"Required launch argument '{self.name}' (description: '{self.description}') "
                                   "was not provided")
            context.launch_configurations[self.name] = perform(self.default_value, context)
        if self.choices is not None and context.launch_configurations[self.name] not in self.choices:
            raise RuntimeError(f"argument '{self.name}' not in {self.choices}")
        return None


class SetEnvironmentVariable(Action):
    """(Kilted) ``launch.actions.SetEnvironmentVariable(name, value)``."""

    def __init__(self, name: Any, value: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name, self.value = name, value

    def execute(self, context: LaunchContext) -> None:
        context.environment[perform(self.name, context)] = perform(self.value, context)


class OpaqueFunction(Action):
    """(Kilted) ``launch.actions.OpaqueFunction(*, function, args=None, kwargs=None)``: ``function(context, *args,
    **kwargs)`` returns entities (or None)."""

    def __init__(self, *, function: Callable, args: Sequence | None = None, kwargs: dict | None = None,
                 **left_over: Any) -> None:
        super().__init__(**left_over)
        if not callable(function):
            raise TypeError("OpaqueFunction expected a callable for 'function'")
        self.function, self.args, self.kwargs = function, list(args or []), dict(kwargs or {})

    def execute(self, context: LaunchContext) -> list | None:
        return self.function(context, *self.args, **self.kwargs)


_OUTPUTS = {"log", "screen", "both", "own_log", "full"}


class ExecuteProcess(Action):
    """(Kilted) ``launch.actions.ExecuteProcess(*, cmd, name=None, cwd=None, env=None, additional_env=None,
    shell=False, sigterm_timeout=..., sigkill_timeout=..., emulate_tty=False, output='log',
    output_format=..., cached_output=False, log_cmd=False, on_exit=None, respawn=False, respawn_delay=None,
    respawn_max_retries=-1)``. Executing performs the command (the process is not started) and records it."""

    def __init__(self, *, cmd: Sequence[Any], name: Any = None, cwd: Any = None, env: dict | None = None,
                 additional_env: dict | None = None, shell: bool = False, sigterm_timeout: Any = 5,
                 sigkill_timeout: Any = 5, emulate_tty: bool = False, output: str = "log",
                 output_format: str = "[{this.process_description.final_name}] {line}", cached_output: bool = False,
                 log_cmd: bool = False, on_exit: Any = None, respawn: Any = False, respawn_delay: float | None = None,
                 respawn_max_retries: int = -1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if output not in _OUTPUTS:
            raise ValueError(f"output must be one of {sorted(_OUTPUTS)}, got {output!r}")
        for key, val in (additional_env or {}).items():
            if not isinstance(key, (str, Substitution)) or not isinstance(val, (str, Substitution)):
                raise TypeError(f"additional_env entries must be text, got {key!r}: {val!r}")
        if respawn_delay is not None and not isinstance(respawn_delay, (int, float)):
            raise TypeError(f"respawn_delay must be a number, got {respawn_delay!r}")
        self.cmd, self.name, self.env, self.additional_env = list(cmd), name, env, additional_env
        self.output, self.respawn, self.respawn_delay = output, respawn, respawn_delay
        self.respawn_max_retries = respawn_max_retries
        self.performed_cmd: list[str] | None = None
        self.performed_env: dict[str, str] | None = None

    def _perform_cmd(self, context: LaunchContext) -> list[str]:
        # upstream: every cmd item is a substitution list (a bare string is one literal item)
        return [str(perform(c, context)) for c in self.cmd]

    def execute(self, context: LaunchContext) -> None:
        self.performed_cmd = self._perform_cmd(context)
        env = dict(context.environment if self.env is None else {perform(k, context): perform(v, context)
                                                                   for k, v in self.env.items()})
        env.update({perform(k, context): perform(v, context) for k, v in (self.additional_env or {}).items()})
        self.performed_env = env
        context.launched.append(self)


def _flatten_params(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if not isinstance(k, str):
            raise TypeError(f"parameter names must be strings, got {k!r}")
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten_params(v, name + "."))
        else:
            out[name] = _normalize_param_value(name, v)
    return out


def _perform_param(v: Any, context: LaunchContext) -> Any:
    # a parameter value list is an array value (its substitutions performed one by one), not text to join
    if isinstance(v, dict):
        return {k: _perform_param(x, context) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [perform(x, context) for x in v]
    return perform(v, context)


def _normalize_param_value(name: str, v: Any) -> Any:
    # launch_ros.utilities.normalize_parameters: scalars bool/int/float/str, uniform sequences of them
    if isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (list, tuple)):
        kinds = {bool if isinstance(x, bool) else float if isinstance(x, (int, float)) else str if isinstance(x, str)
                 else None for x in v}
        if not v or None in kinds or len(kinds) != 1:
            raise TypeError(f"parameter {name}: expected a non-empty sequence of one scalar type, got {v!r}")
        if kinds == {float}:
            return tuple(float(x) for x in v) if any(isinstance(x, float) for x in v) else tuple(v)
        return tuple(v)
    raise TypeError(f"parameter {name}: unsupported value type {type(v).__name__} ({v!r})")


class Node(ExecuteProcess):
    """(Kilted) ``launch_ros.actions.Node(*, executable, package=None, name=None, namespace=None, exec_name=None,
    parameters=None, remappings=None, ros_arguments=None, arguments=None, **kwargs)``; the rest go to
    :class:`ExecuteProcess`.

    Executing builds the command upstream builds: ``<prefix>/lib/<package>/<executable> [arguments]
    --ros-args -r __node:=<name> -r __ns:=<namespace> --params-file <file|temp YAML per dict> ...
    -r <from>:=<to> ...``. Parameter dicts are validated like launch_ros (scalars or uniform lists; nested
    dicts flattened with '.') and kept in :attr:`param_dicts`; a relative namespace gets a leading '/'.
    """

    def __init__(self, *, executable: Any, package: Any = None, name: Any = None, namespace: Any = None,
                 exec_name: Any = None, parameters: Sequence[Any] | None = None,
                 remappings: Sequence[tuple[Any, Any]] | None = None, ros_arguments: Sequence[Any] | None = None,
                 arguments: Sequence[Any] | None = None, **kwargs: Any) -> None:
        super().__init__(cmd=[executable], **kwargs)
        self.package, self.executable, self.node_name, self.namespace = package, executable, name, namespace
        self.parameters, self.remappings = list(parameters or []), list(remappings or [])
        self.ros_arguments, self.arguments = list(ros_arguments or []), list(arguments or [])
        for r in self.remappings:
            if not (isinstance(r, tuple) and len(r) == 2):
                raise TypeError(f"remappings must be (from, to) tuples, got {r!r}")
        self.param_files: list[str] = []
        self.param_dicts: list[dict[str, Any]] = []

    def _perform_cmd(self, context: LaunchContext) -> list[str]:
        exe = f"<prefix>/lib/{perform(self.package, context)}/{perform(self.executable, context)}"
        cmd = [exe, *(str(perform(a, context)) for a in self.arguments), "--ros-args"]
        if self.node_name is not None:
            cmd += ["-r", f"__node:={perform(self.node_name, context)}"]
        if self.namespace is not None:
            ns = str(perform(self.namespace, context))
            cmd += ["-r", f"__ns:={ns if ns.startswith('/') else '/' + ns}"]
        self.param_files, self.param_dicts = [], []
        for i, p in enumerate(self.parameters):
            if isinstance(p, dict):
                self.param_dicts.append(_flatten_params({perform(k, context): _perform_param(v, context)
                                                         for k, v in p.items()}))
                cmd += ["--params-file", f"<tmp>/launch_params_{i}.yaml"]
            elif isinstance(p, (str, Path, Substitution)):
                f = str(perform(p, context))
                if not Path(f).is_file():
                    raise FileNotFoundError(f"parameter file {f} does not exist")
                self.param_files.append(f)
                cmd += ["--params-file", f]
            else:
                raise TypeError(f"parameters entries must be files or dicts, got {p!r}")
        cmd += [str(perform(a, context)) for a in self.ros_arguments]
        for src, dst in self.remappings:
            cmd += ["-r", f"{perform(src, context)}:={perform(dst, context)}"]
        return cmd


class PythonLaunchDescriptionSource:
    """(Kilted) ``launch.launch_description_sources.PythonLaunchDescriptionSource(launch_file_path)``: imports the
    file and calls its ``generate_launch_description()``."""

    def __init__(self, launch_file_path: Any) -> None:
        self.launch_file_path = launch_file_path
        self._description: LaunchDescription | None = None

    def get(self, context: LaunchContext | None = None) -> LaunchDescription:
        if self._description is None:
            import importlib.util

            path = str(perform(self.launch_file_path, context) if context else self.launch_file_path)
            spec = importlib.util.spec_from_file_location(Path(path).stem.replace(".", "_"), path)
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            self._description = mod.generate_launch_description()
        return self._description


class IncludeLaunchDescription(Action):
    """(Kilted) ``launch.actions.IncludeLaunchDescription(launch_description_source, *, launch_arguments=None)``:
    the given arguments become launch configurations, then the included description runs (upstream
    scopes configurations per include; the stand-in shares one context, enough for one include)."""

    def __init__(self, launch_description_source: Any, *, launch_arguments: Sequence[tuple[Any, Any]] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(launch_description_source, str):
            launch_description_source = PythonLaunchDescriptionSource(launch_description_source)
        self.launch_description_source = launch_description_source
        self.launch_arguments = list(launch_arguments or [])

    def execute(self, context: LaunchContext) -> list:
        for k, v in self.launch_arguments:
            context.launch_configurations[perform(k, context)] = perform(v, context)
        return [self.launch_description_source.get(context)]


def run_launch_description(description: LaunchDescription, context: LaunchContext) -> LaunchContext:
    """What ``ros2 launch`` does with a description, minus starting processes: execute every entity depth
    first in order (arguments, environment, opaque functions, includes), recording each process action with
    its performed command in ``context.launched``."""
    if not isinstance(description, LaunchDescription):
        raise TypeError(f"generate_launch_description() must return a LaunchDescription, got {description!r}")
    for arg in context.argv:  # "name:=value" as on the ros2 launch command line
        name, sep, value = arg.partition(":=")
        if not sep:
            raise ValueError(f"launch arguments are name:=value, got {arg!r}")
        context.launch_configurations[name] = value

    def visit(entity: Any) -> None:
        if not isinstance(entity, (Action, LaunchDescription)):
            raise TypeError(f"not a launch entity: {entity!r}")
        for sub in entity.execute(context) or []:
            visit(sub)

    visit(description)
    return context


# ================================================================================ modules and shims
def _module(name: str, **attrs: Any) -> types.ModuleType:
    m = types.ModuleType(name)
    m.__dict__.update(attrs)
    m.__fake_ros_extras__ = True
    return m


def _modules() -> dict[str, types.ModuleType]:
    launch_actions = _module("launch.actions", DeclareLaunchArgument=DeclareLaunchArgument,
                             SetEnvironmentVariable=SetEnvironmentVariable, OpaqueFunction=OpaqueFunction,
                             ExecuteProcess=ExecuteProcess, IncludeLaunchDescription=IncludeLaunchDescription)
    launch_subs = _module("launch.substitutions", LaunchConfiguration=LaunchConfiguration,
                          EnvironmentVariable=EnvironmentVariable)
    launch_sources = _module("launch.launch_description_sources",
                             PythonLaunchDescriptionSource=PythonLaunchDescriptionSource)
    launch = _module("launch", LaunchDescription=LaunchDescription, LaunchContext=LaunchContext,
                     Action=Action, Substitution=Substitution, actions=launch_actions,
                     substitutions=launch_subs, launch_description_sources=launch_sources)
    launch_ros_actions = _module("launch_ros.actions", Node=Node)
    return {
        "cv_bridge": _module("cv_bridge", CvBridge=CvBridge, CvBridgeError=CvBridgeError),
        "message_filters": _module("message_filters", SimpleFilter=SimpleFilter, Subscriber=Subscriber,
                                   ApproximateTimeSynchronizer=ApproximateTimeSynchronizer),
        "tf2_ros": _module("tf2_ros", Buffer=Buffer, TransformListener=TransformListener,
                           TransformBroadcaster=TransformBroadcaster,
                           StaticTransformBroadcaster=StaticTransformBroadcaster,
                           TransformException=TransformException, LookupException=LookupException,
                           ConnectivityException=ConnectivityException, ExtrapolationException=ExtrapolationException),
        "launch": launch, "launch.actions": launch_actions, "launch.substitutions": launch_subs,
        "launch.launch_description_sources": launch_sources,
        "launch_ros": _module("launch_ros", actions=launch_ros_actions), "launch_ros.actions": launch_ros_actions,
    }


MODULE_NAMES = {"cv_bridge": ("cv_bridge",), "message_filters": ("message_filters",), "tf2_ros": ("tf2_ros",),
                "launch": ("launch", "launch.actions", "launch.substitutions", "launch.launch_description_sources",
                           "launch_ros", "launch_ros.actions")}


def install(monkeypatch: Any, *packages: str) -> dict[str, types.ModuleType]:
    """Put the stand-ins for ``packages`` (keys of :data:`MODULE_NAMES`) into ``sys.modules`` for one test."""
    mods = _modules()
    out = {}
    for pkg in packages:
        for name in MODULE_NAMES[pkg]:
            monkeypatch.setitem(sys.modules, name, mods[name])
            out[name] = mods[name]
    return out


_SHIMS = {
    "cv_bridge": "from fake_ros_extras import CvBridge, CvBridgeError  # noqa: F401\n",
    "message_filters": "from fake_ros_extras import (ApproximateTimeSynchronizer, SimpleFilter,  # noqa: F401\n"
                       "                            Subscriber)\n",
    "tf2_ros": "from fake_ros_extras import (Buffer, ConnectivityException, ExtrapolationException,  # noqa: F401\n"
               "                            LookupException, StaticTransformBroadcaster, TransformBroadcaster,\n"
               "                            TransformException, TransformListener)\n",
}


def write_shim_packages(folder: Path, packages: Sequence[str] = ("cv_bridge", "message_filters", "tf2_ros")
                        ) -> str:
    """Write importable ``cv_bridge``/``message_filters``/``tf2_ros`` packages into ``folder`` and return the
    ``PYTHONPATH`` (folder + this module's folder) that makes a child process import them."""
    folder = Path(folder)
    for pkg in packages:
        (folder / pkg).mkdir(parents=True, exist_ok=True)
        (folder / pkg / "__init__.py").write_text(f'"""Test stand-in (see fake_ros_extras.py)."""\n{_SHIMS[pkg]}')
    return os.pathsep.join([str(folder), str(Path(__file__).resolve().parent)])
