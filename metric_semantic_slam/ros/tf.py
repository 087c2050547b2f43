"""TF: ``TransformStamped``/``Pose`` <-> 4x4 matrices, publishing and lookup through ``tf2_ros`` when it imports.

Convention: a ``TransformStamped`` with ``header.frame_id = parent`` and ``child_frame_id = child`` carries
``T_parent_child`` (it maps child-frame points into the parent frame), the repo's ``T_target_source``.

Fallbacks without ``tf2_ros``: publishing goes straight to ``/tf`` and ``/tf_static`` as
``tf2_msgs/TFMessage`` when ``tf2_msgs`` imports; when it does not (the PyPI wheels here ship no
tf2_msgs), :class:`TfPublisher` has ``backend == "none"``, says so once in the log and drops transforms,
and :class:`TfReader` answers from the fallback matrices the node got from its parameters.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..core.geometry import make_transform, matrix_to_quat_xyzw, quat_xyzw_to_matrix
from .stamps import seconds_to_stamp

__all__ = ["HAVE_TF2_ROS", "HAVE_TF2_MSGS", "transform_to_matrix", "matrix_to_transform_stamped",
           "pose_to_matrix", "matrix_to_pose", "TfPublisher", "TfReader"]

try:
    import tf2_ros  # noqa: F401

    HAVE_TF2_ROS = True
except ImportError:
    HAVE_TF2_ROS = False
try:
    import tf2_msgs.msg  # noqa: F401

    HAVE_TF2_MSGS = True
except ImportError:
    HAVE_TF2_MSGS = False


def _check_T(T: np.ndarray) -> np.ndarray:
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        raise ValueError(f"expected a finite 4x4 transform, got shape {T.shape}")
    return T


def transform_to_matrix(msg: Any) -> np.ndarray:
    """4x4 ``T_parent_child`` of a ``geometry_msgs/Transform`` or ``TransformStamped``.

    Shape: -> (4, 4). Raises ValueError for a zero or non-finite quaternion.
    """
    tr = getattr(msg, "transform", msg)
    q = np.array([tr.rotation.x, tr.rotation.y, tr.rotation.z, tr.rotation.w], dtype=np.float64)
    n = np.linalg.norm(q)
    if not np.isfinite(n) or n < 1e-9:
        raise ValueError(f"transform has an invalid rotation quaternion {q}")
    t = np.array([tr.translation.x, tr.translation.y, tr.translation.z], dtype=np.float64)
    return make_transform(quat_xyzw_to_matrix(q / n), t)


def matrix_to_transform_stamped(T_parent_child: np.ndarray, parent_frame: str, child_frame: str,
                                stamp_s: float | None = None, stamp: Any | None = None):
    """A ``geometry_msgs/TransformStamped`` carrying ``T_parent_child``. Shape: (4, 4) ->."""
    from geometry_msgs.msg import TransformStamped

    T = _check_T(T_parent_child)
    q = matrix_to_quat_xyzw(T[:3, :3])
    msg = TransformStamped()
    msg.header.frame_id, msg.child_frame_id = parent_frame, child_frame
    if stamp is not None:
        msg.header.stamp = stamp
    elif stamp_s is not None:
        msg.header.stamp = seconds_to_stamp(stamp_s)
    msg.transform.translation.x, msg.transform.translation.y, msg.transform.translation.z = (float(v) for v in T[:3, 3])
    r = msg.transform.rotation
    r.x, r.y, r.z, r.w = (float(v) for v in q)
    return msg


def pose_to_matrix(pose: Any) -> np.ndarray:
    """4x4 of a ``geometry_msgs/Pose`` (or ``PoseStamped``). Shape: -> (4, 4)."""
    p = getattr(pose, "pose", pose)
    q = np.array([p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w], dtype=np.float64)
    n = np.linalg.norm(q)
    if not np.isfinite(n) or n < 1e-9:
        raise ValueError(f"pose has an invalid orientation quaternion {q}")
    return make_transform(quat_xyzw_to_matrix(q / n), np.array([p.position.x, p.position.y, p.position.z]))


def matrix_to_pose(T: np.ndarray):
    """A ``geometry_msgs/Pose`` for a 4x4 transform. Shape: (4, 4) ->."""
    from geometry_msgs.msg import Pose

    T = _check_T(T)
    q = matrix_to_quat_xyzw(T[:3, :3])
    pose = Pose()
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in T[:3, 3])
    pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = (float(v) for v in q)
    return pose


class TfPublisher:
    """Publishes transforms on ``/tf`` (or ``/tf_static`` when ``static``).

    ``backend``: ``"tf2_ros"`` (TransformBroadcaster), ``"tf2_msgs"`` (a TFMessage publisher with the
    QoS tf2 uses) or ``"none"`` (no TF types available: transforms are dropped, one warning is logged).
    """

    def __init__(self, node: Any, static: bool = False) -> None:
        self.node, self.static, self.published = node, static, 0
        self._warned = False
        if HAVE_TF2_ROS:
            import tf2_ros as t2

            self._impl = t2.StaticTransformBroadcaster(node) if static else t2.TransformBroadcaster(node)
            self.backend = "tf2_ros"
        elif HAVE_TF2_MSGS:
            from tf2_msgs.msg import TFMessage

            from .qos import qos_profile

            qos = qos_profile("latched") if static else qos_profile("reliable", depth=100)
            self._impl = node.create_publisher(TFMessage, "/tf_static" if static else "/tf", qos)
            self.backend = "tf2_msgs"
        else:
            self._impl = None
            self.backend = "none"

    @property
    def available(self) -> bool:
        return self._impl is not None

    def publish(self, transforms: Sequence[Any]) -> bool:
        """Send ``TransformStamped`` messages; returns False (and warns once) when TF is unavailable."""
        transforms = list(transforms)
        if self._impl is None:
            if not self._warned:
                self.node.get_logger().warning(
                    "tf2_ros and tf2_msgs are not importable: TF is not published (poses still go out on "
                    "the odometry/pose topics)")
                self._warned = True
            return False
        if self.backend == "tf2_ros":
            self._impl.sendTransform(transforms)
        else:
            from tf2_msgs.msg import TFMessage

            self._impl.publish(TFMessage(transforms=transforms))
        self.published += len(transforms)
        return True


class TfReader:
    """Reads transforms from TF when ``tf2_ros`` imports, else from fallbacks set from parameters.

    ``fallbacks`` maps ``(target_frame, source_frame)`` to ``T_target_source``; the inverse pair is
    answered too.
    """

    def __init__(self, node: Any, fallbacks: dict[tuple[str, str], np.ndarray] | None = None) -> None:
        self.node = node
        self.fallbacks = {k: _check_T(v) for k, v in (fallbacks or {}).items()}
        if HAVE_TF2_ROS:
            import tf2_ros as t2

            self._buffer = t2.Buffer()
            self._listener = t2.TransformListener(self._buffer, node)
            self.backend = "tf2_ros"
        else:
            self._buffer = None
            self.backend = "parameters"

    def lookup(self, target_frame: str, source_frame: str, timeout_s: float = 0.0) -> np.ndarray:
        """Latest ``T_target_source``. Shape: -> (4, 4). Raises ValueError when neither TF nor a fallback knows it."""
        if self._buffer is not None:
            from rclpy.duration import Duration
            from rclpy.time import Time

            try:
                msg = self._buffer.lookup_transform(target_frame, source_frame, Time(),
                                                    timeout=Duration(seconds=timeout_s))
                return transform_to_matrix(msg)
            except Exception as exc:  # tf2 raises several unrelated exception types; fall back below
                self.node.get_logger().debug(f"TF lookup {target_frame}<-{source_frame} failed: {exc}")
        if target_frame == source_frame and target_frame:
            return np.eye(4)
        if (target_frame, source_frame) in self.fallbacks:
            return self.fallbacks[(target_frame, source_frame)].copy()
        if (source_frame, target_frame) in self.fallbacks:
            return np.linalg.inv(self.fallbacks[(source_frame, target_frame)])
        raise ValueError(f"no transform {target_frame} <- {source_frame} in TF ({self.backend}) or parameters")
