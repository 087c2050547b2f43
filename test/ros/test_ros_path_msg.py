"""nav_msgs/Path written as CDR bytes from arrays (ros/path.py) against rclpy's serialization of objects."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy")

from metric_semantic_slam.ros.path import serialize_path  # noqa: E402


def _slow_path(stamps_ns, poses, frame_id, stamp_ns):
    from geometry_msgs.msg import PoseStamped
    from nav_msgs.msg import Path

    msg = Path()
    msg.header.frame_id = frame_id
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(stamp_ns), 10**9)
    for s, p in zip(stamps_ns, poses):
        ps = PoseStamped()
        ps.header.frame_id = frame_id
        ps.header.stamp.sec, ps.header.stamp.nanosec = (int(v) for v in divmod(int(s), 10**9))
        ps.pose.position.x, ps.pose.position.y, ps.pose.position.z = (float(v) for v in p[:3])
        o = ps.pose.orientation
        o.x, o.y, o.z, o.w = (float(v) for v in p[3:])
        msg.poses.append(ps)
    return msg


# frame ids of every length modulo 8 move the poses' doubles to every padding case
@pytest.mark.parametrize("frame_id", ["", "m", "ma", "map", "odom", "world", "camera", "map_0001", "odom_frame"])
@pytest.mark.parametrize("n", [0, 1, 2, 7])
def test_path_bytes_match_rclpys_serialization_of_objects(frame_id, n):
    from nav_msgs.msg import Path
    from rclpy.serialization import deserialize_message, serialize_message

    rng = np.random.default_rng(n)
    stamps = rng.integers(0, 2**42, n)
    poses = rng.normal(size=(n, 7))
    stamp = int(rng.integers(0, 2**42))
    slow = _slow_path(stamps, poses, frame_id, stamp)
    ours, theirs = serialize_path(stamps, poses, frame_id, stamp), serialize_message(slow)
    assert len(ours) == len(theirs)
    # rclpy leaves CDR padding bytes undefined (we write zeros): any difference is a short run of our zeros
    diff = np.flatnonzero(np.frombuffer(ours, np.uint8) != np.frombuffer(theirs, np.uint8))
    assert all(ours[i] == 0 for i in diff)
    runs = np.split(diff, np.flatnonzero(np.diff(diff) > 1) + 1) if len(diff) else []
    assert all(len(r) <= 7 for r in runs), [len(r) for r in runs]
    assert deserialize_message(ours, Path) == slow


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="7"):
        serialize_path(np.zeros(2), np.zeros((2, 6)), "map", 0)
    with pytest.raises(ValueError, match="stamps"):
        serialize_path(np.zeros(3), np.zeros((2, 7)), "map", 0)
