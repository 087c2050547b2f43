"""``ros/tf.py`` through ``tf2_ros`` (the Kilted stand-in of ``fake_ros_extras``): transforms published by one
node reach another node's TF reader over DDS (ROS_DOMAIN_ID 85), chained and inverted, and agree with the
parameter fallback."""
from __future__ import annotations

import importlib
import threading
import time

import numpy as np
import pytest

pytest.importorskip("rclpy")

import rclpy  # noqa: E402
import rclpy.executors  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.duration import Duration  # noqa: E402
from rclpy.time import Time  # noqa: E402

import fake_ros_extras as fx  # noqa: E402
from metric_semantic_slam.core.geometry import make_transform, so3_exp  # noqa: E402

pytestmark = pytest.mark.ros
DOMAIN = 85

T_MAP_ODOM = make_transform(so3_exp(np.array([0.0, 0.0, 0.4])), np.array([1.0, 2.0, 0.0]))
T_ODOM_CAMERA = make_transform(so3_exp(np.array([0.3, -0.2, 1.1])), np.array([0.5, -1.0, 1.2]))
T_CAMERA_IMU = make_transform(so3_exp(np.array([0.01, 0.02, -0.03])), np.array([-0.005, 0.011, 0.0]))


@pytest.fixture
def ros_nodes():
    ctx = Context()
    rclpy.init(context=ctx, domain_id=DOMAIN)
    made = []
    ex = rclpy.executors.SingleThreadedExecutor(context=ctx)
    thread = threading.Thread(target=ex.spin, daemon=True)

    def make(name):
        n = rclpy.create_node(name, context=ctx)
        made.append(n)
        ex.add_node(n)
        return n

    make.start = thread.start
    yield make
    ex.shutdown()
    for n in made:
        n.destroy_node()
    ctx.try_shutdown()


def test_tf2_ros_path_publishes_and_reads_the_chain_over_dds(ros_extras, ros_nodes):
    ros_extras("tf2_ros")
    rtf = importlib.import_module("metric_semantic_slam.ros.tf")
    assert rtf.HAVE_TF2_ROS
    before = fx.USED.copy()
    talker, listener = ros_nodes("talker"), ros_nodes("listener")
    static, dynamic = rtf.TfPublisher(talker, static=True), rtf.TfPublisher(talker)
    assert static.backend == dynamic.backend == "tf2_ros" and static.available
    reader = rtf.TfReader(listener, fallbacks={("camera_link", "camera_imu_optical_frame"): T_CAMERA_IMU})
    assert reader.backend == "tf2_ros"
    ros_nodes.start()
    assert static.publish([rtf.matrix_to_transform_stamped(T_MAP_ODOM, "map", "odom", stamp_s=0.0),
                           rtf.matrix_to_transform_stamped(T_CAMERA_IMU, "camera", "camera_imu", stamp_s=0.0)])
    for k in range(3):  # the camera moves: the reader answers with the latest pose
        T = make_transform(np.eye(3), np.array([0.1 * k, 0, 0])) @ T_ODOM_CAMERA
        assert dynamic.publish([rtf.matrix_to_transform_stamped(T, "odom", "camera", stamp_s=10.0 + k)])
    assert static.published == 2 and dynamic.published == 3
    T_last = make_transform(np.eye(3), np.array([0.2, 0, 0])) @ T_ODOM_CAMERA

    def latest():
        return np.allclose(reader.lookup("map", "camera", timeout_s=2.0), T_MAP_ODOM @ T_last, atol=1e-9)

    deadline = time.monotonic() + 10
    while not latest() and time.monotonic() < deadline:  # the three dynamic messages may arrive one by one
        time.sleep(0.02)
    np.testing.assert_allclose(reader.lookup("map", "camera"), T_MAP_ODOM @ T_last, atol=1e-9)
    np.testing.assert_allclose(reader.lookup("camera", "map"), np.linalg.inv(T_MAP_ODOM @ T_last), atol=1e-9)
    np.testing.assert_allclose(reader.lookup("odom", "camera_imu"), T_last @ T_CAMERA_IMU, atol=1e-9)
    np.testing.assert_allclose(reader.lookup("camera", "camera"), np.eye(4))
    # not in TF: the parameters answer (as the reader without tf2_ros does), the inverse pair too
    np.testing.assert_allclose(reader.lookup("camera_link", "camera_imu_optical_frame"), T_CAMERA_IMU)
    np.testing.assert_allclose(reader.lookup("camera_imu_optical_frame", "camera_link"), np.linalg.inv(T_CAMERA_IMU))
    with pytest.raises(ValueError, match="no transform"):
        reader.lookup("map", "nowhere")
    used = fx.USED - before
    assert used["tf2_ros.TransformBroadcaster"] == 1 and used["tf2_ros.StaticTransformBroadcaster"] == 1
    assert used["tf2_ros.TransformListener"] == 1 and used["tf2_ros.Buffer.lookup_transform"] >= 5


def _ts(T, parent, child, stamp_s):
    return fx._transform_msg(T, parent, child, int(stamp_s * 1e9))


def test_buffer_stand_in_follows_tf2_semantics():
    buf = fx.Buffer()
    buf.set_transform_static(_ts(T_MAP_ODOM, "map", "odom", 0.0), "a")
    buf.set_transform(_ts(T_ODOM_CAMERA, "odom", "camera", 1.0), "a")
    buf.set_transform(_ts(T_ODOM_CAMERA @ T_CAMERA_IMU, "odom", "camera", 2.0), "a")
    buf.set_transform(_ts(T_CAMERA_IMU, "base", "other", 1.0), "a")
    msg = buf.lookup_transform("map", "camera", Time())
    assert (msg.header.frame_id, msg.child_frame_id, msg.header.stamp.sec) == ("map", "camera", 2)
    np.testing.assert_allclose(fx._T_of(msg), T_MAP_ODOM @ T_ODOM_CAMERA @ T_CAMERA_IMU, atol=1e-9)
    np.testing.assert_allclose(fx._T_of(buf.lookup_transform("map", "camera", Time(seconds=1.5))),
                               T_MAP_ODOM @ T_ODOM_CAMERA, atol=1e-9)
    with pytest.raises(fx.ExtrapolationException):
        buf.lookup_transform("map", "camera", Time(seconds=3.0))
    with pytest.raises(fx.LookupException):
        buf.lookup_transform("map", "ghost", Time())
    with pytest.raises(fx.ConnectivityException):
        buf.lookup_transform("map", "other", Time())
    assert not buf.can_transform("map", "ghost", Time(), timeout=Duration(seconds=0.05))
    assert issubclass(fx.LookupException, fx.TransformException)
