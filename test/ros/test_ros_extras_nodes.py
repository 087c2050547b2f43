"""Suite nodes as real processes over DDS (ROS_DOMAIN_ID 86) with the ``cv_bridge``, ``message_filters`` and
``tf2_ros`` stand-ins of ``fake_ros_extras`` importable (shim packages on PYTHONPATH): the nodes take those
paths (their logs say so) and give what the fallback paths give (the same checks as test_node_panoptic.py and
test_node_vio.py), and vio_node's TF (map -> odom -> camera) reaches a tf2 reader in this process."""
from __future__ import annotations

import importlib
import os

import numpy as np
import pytest

pytest.importorskip("rclpy")

from geometry_msgs.msg import PoseStamped  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

import fake_ros_extras  # noqa: E402
from metric_semantic_slam.core.labels import load_label_space  # noqa: E402
from test_node_panoptic import INST, OVER, SEM, exchange_oracle_frames, start_panoptic  # noqa: E402
from test_node_vio import POSE, send_gt_poses, start_vio  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.timeout(150)]

DOMAIN = 86


def test_nodes_take_the_ros_extras_paths_with_the_same_results(sim_frames, node_rig, ros_extras, tmp_path):
    frames = sim_frames
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [fake_ros_extras.write_shim_packages(tmp_path / "shims"),
                                                       os.environ.get("PYTHONPATH")])),
           "FAKE_ROS_EXTRAS_TRACE": "1"}
    # both processes start at once (their imports dominate the time)
    pan = start_panoptic(node_rig, DOMAIN, {SEM: Image, INST: Image, OVER: Image}, env=env, backend="oracle",
                         queue_size=10)
    vio = start_vio(node_rig, DOMAIN, {POSE: PoseStamped}, env=env, pose_source="ground_truth", queue_size=10,
                    publish_tf=True)
    ros_extras("tf2_ros")  # this process reads the TF the node publishes through the tf2_ros stand-in
    rtf = importlib.import_module("metric_semantic_slam.ros.tf")
    reader = rtf.TfReader(vio.col.node)
    assert reader.backend == "tf2_ros"

    # panoptic_node: cv_bridge in and out, message_filters pairing color with the ground-truth labels
    space = load_label_space()
    exchange_oracle_frames(pan, frames, space)
    sync = pan.status()["sync"]
    assert (sync["emitted"], sync["received"], sync["dropped"]) == (3, [3, 3, 3], [0, 0, 0]), sync

    # vio_node: TF map -> odom (static) -> camera through the tf2_ros broadcasters
    vio.wait_ready(("gt",))
    send_gt_poses(vio, frames[:4])
    assert vio.wait(lambda: vio.count(POSE) >= 4, 20), vio.log()
    want = frames[3].gt.T_world_camera

    def tf_is_latest():
        try:
            return np.allclose(reader.lookup("map", "camera_color_optical_frame"), want, atol=1e-9)
        except ValueError:
            return False

    assert vio.wait(tf_is_latest, 10), vio.log()
    np.testing.assert_allclose(reader.lookup("odom", "map"), np.eye(4), atol=1e-12)

    assert pan.stop() == 0, pan.log()
    assert vio.stop() == 0, vio.log()
    for api in ("cv_bridge.CvBridge.imgmsg_to_cv2", "cv_bridge.CvBridge.cv2_to_imgmsg", "message_filters.Subscriber",
                "message_filters.ApproximateTimeSynchronizer"):
        assert f"[fake_ros_extras] used {api}" in pan.log(), api
    for api in ("tf2_ros.TransformBroadcaster", "tf2_ros.StaticTransformBroadcaster"):
        assert f"[fake_ros_extras] used {api}" in vio.log(), api
